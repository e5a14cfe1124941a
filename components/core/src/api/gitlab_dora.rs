//! `GET /api/v1/dora/metrics`: GitLab's DORA metrics API, its parameters and its answer, so
//! dashboards and scripts written for `GET /projects/:id/dora/metrics` read ours unchanged.
//!
//! Parameters as GitLab's: `metric` (`deployment_frequency`, `lead_time_for_changes`,
//! `time_to_restore_service`, `change_failure_rate`), `start_date` and `end_date` (ISO dates,
//! both whole days included; default the last three months to today), `interval` (`daily`
//! default, `monthly`, `all`) and `environment_tiers[]` (default `production`: our prod
//! environments; `staging`, `testing`, `development` and `other` are the rest). Our
//! `project_id` and `app_id` narrow it as GitLab's project does. The answer: for `daily` and
//! `monthly` an array of `{"date": "2026-03-01", "value": …}` with every period, for `all`
//! the bare value, as GitLab's REST API answers. Values in GitLab's units: deployments in the
//! period; the median lead time and time to restore in seconds; failed deployments over
//! deployments. A period without figures is `null` (0 deployments for frequency).

use chrono::{Datelike, Months, NaiveDate, NaiveTime};
use http::{Response, StatusCode};
use serde::Serialize;

use crate::domain::Timestamp;
use crate::domain::dora::{Interval, LeadTimeUnit, TimeRange};
use crate::domain::sorted_runs::LeadTimes;
use crate::error::Error;
use crate::store::deployments::DoraFilter;

use super::dora::{Needs, figures, period_seconds, text_filter, unit_of};
use super::{Context, json_response};

#[derive(Clone, Copy, PartialEq)]
enum Metric {
    DeploymentFrequency,
    LeadTimeForChanges,
    TimeToRestoreService,
    ChangeFailureRate,
}

impl Metric {
    fn parse(value: Option<&str>) -> Result<Metric, Error> {
        match value {
            Some("deployment_frequency") => Ok(Metric::DeploymentFrequency),
            Some("lead_time_for_changes") => Ok(Metric::LeadTimeForChanges),
            Some("time_to_restore_service") => Ok(Metric::TimeToRestoreService),
            Some("change_failure_rate") => Ok(Metric::ChangeFailureRate),
            _ => Err(Error::malformed_field(
                "metric",
                "metric must be deployment_frequency, lead_time_for_changes, \
                 time_to_restore_service or change_failure_rate",
            )),
        }
    }

    /// What the metric reads; lead times are per commit (as `unit_of` answers by default).
    fn needs(self, unit: LeadTimeUnit) -> Needs {
        Needs {
            lead_times: (self == Metric::LeadTimeForChanges).then_some(unit),
            outcomes: matches!(
                self,
                Metric::DeploymentFrequency | Metric::ChangeFailureRate
            ),
            recoveries: self == Metric::TimeToRestoreService,
            stages: false,
        }
    }
}

/// A `YYYY-MM-DD` date of the years 0001–9999, as every instant of the API is (chrono alone
/// would also take signed and longer years).
fn date(name: &str, value: Option<&str>) -> Result<Option<NaiveDate>, Error> {
    value
        .map(|value| {
            let shaped = value.len() == 10 && value.starts_with(|c: char| c.is_ascii_digit());
            NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .ok()
                .filter(|date| shaped && date.year() >= 1)
                .ok_or_else(|| {
                    Error::malformed_field(name, format!("{name} must be a date like 2026-03-01"))
                })
        })
        .transpose()
}

/// `environment_tiers[]` as our prod flag: `None` when both kinds are asked for.
fn prod_of_tiers(tiers: &[&str]) -> Result<Option<bool>, Error> {
    let (mut production, mut other) = (tiers.is_empty(), false);
    for tier in tiers {
        match *tier {
            "production" => production = true,
            "staging" | "testing" | "development" | "other" => other = true,
            _ => {
                return Err(Error::malformed_field(
                    "environment_tiers[]",
                    "environment_tiers[] must be production, staging, testing, development or \
                     other",
                ));
            }
        }
    }
    Ok(match (production, other) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    })
}

#[derive(Serialize)]
struct DatedValue {
    date: String,
    value: Option<f64>,
}

fn median_seconds(set: &LeadTimes) -> Option<f64> {
    set.quantile_mins(0.5).map(|mins| mins * 60.0)
}

pub(super) fn metrics(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let request = ctx.request;
    let org_id = ctx.acting_org()?;
    let metric = Metric::parse(request.query("metric")?)?;
    let today = ctx.env.clock.now().instant().date_naive();
    let end_date = date("end_date", request.query("end_date")?)?.unwrap_or(today);
    let start_date = match date("start_date", request.query("start_date")?)? {
        Some(start) => start,
        None => end_date
            .checked_sub_months(Months::new(3))
            .unwrap_or(end_date),
    };
    let interval = match request.query("interval")?.unwrap_or("daily") {
        "daily" => Interval::Day,
        "monthly" => Interval::Month,
        "all" => Interval::All,
        _ => {
            return Err(Error::malformed_field(
                "interval",
                "interval must be all, monthly or daily",
            ));
        }
    };
    let mut tiers = request.query_all("environment_tiers[]");
    tiers.extend(request.query_all("environment_tiers"));
    let filter = DoraFilter {
        project_id: text_filter(request, "project_id")?,
        app_id: text_filter(request, "app_id")?,
        environment: None,
        prod: prod_of_tiers(&tiers)?,
        excluded_authors: crate::store::settings::find(ctx.env.db, &org_id)?
            .0
            .excluded_author_globs(),
    };
    let last_micro = NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).expect("a valid time");
    let range = TimeRange::checked(
        Timestamp::from_utc(start_date.and_time(NaiveTime::MIN).and_utc()),
        Timestamp::from_utc(end_date.and_time(last_micro).and_utc()),
        ("start_date", "end_date"),
    )?;
    let periods = interval.periods(&range);
    let starts = period_seconds(&periods);
    let unit = unit_of(ctx, None)?;
    let figures = figures(ctx, &org_id, &range, &filter, &starts, metric.needs(unit))?;
    let values: Vec<Option<f64>> = (0..periods.len())
        .map(|period| match metric {
            Metric::DeploymentFrequency => Some(figures.outcomes[period].deployments as f64),
            Metric::ChangeFailureRate => figures.outcomes[period].failure_rate(),
            Metric::LeadTimeForChanges => median_seconds(&figures.lead_times[period]),
            Metric::TimeToRestoreService => median_seconds(&figures.recoveries[period]),
        })
        .collect();
    if interval == Interval::All {
        return json_response(StatusCode::OK, &values.first().copied().flatten());
    }
    json_response(
        StatusCode::OK,
        &periods
            .iter()
            .zip(values)
            .map(|(start, value)| DatedValue {
                date: start.date_naive().format("%Y-%m-%d").to_string(),
                value,
            })
            .collect::<Vec<_>>(),
    )
}
