//! DORA figures, the lead-time component's reads.
//!
//! - `GET /api/v1/dora/lead-time?start&end[&project_id&app_id&environment&prod&interval]`:
//!   GetLeadTimeToChangeDataFromRange, plus summary, DORA level and a gap-free series.
//! - `GET /api/v1/dora/deployment-frequency?…`: deployments per period and the DORA level.

use crate::domain::ids::LeadTimeId;
use chrono::{DateTime, Utc};
use http::{Response, StatusCode};
use serde::Serialize;

use crate::db::read_snapshot;
use crate::domain::Timestamp;
use crate::domain::deployment::MAX_ID_CHARS;
use crate::domain::dora::{Benchmark, Interval, LeadTimeSummary, Standing, TimeRange};
use crate::domain::sorted_runs::LeadTimes;
use crate::error::Error;
use crate::store::deployments::{self as store, DoraFilter};
use crate::store::dora;

use super::{ApiRequest, Context, json_response};

/// The range, filters and interval shared by both DORA queries.
struct DoraQuery {
    org_id: crate::domain::OrgId,
    range: TimeRange,
    filter: DoraFilter,
    interval: Interval,
    benchmark: Benchmark,
}

fn dora_query(ctx: &Context<'_>) -> Result<DoraQuery, Error> {
    let request: &ApiRequest<'_> = ctx.request;
    let org_id = ctx.acting_org()?;
    let range = TimeRange::parse(request.query("start")?, request.query("end")?)?;
    let prod = match request.query("prod")? {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            return Err(Error::malformed_field("prod", "prod must be true or false"));
        }
    };
    let text_filter = |name: &str| -> Result<Option<String>, Error> {
        match request.query(name)? {
            Some(value) if value.is_empty() || value.chars().count() > MAX_ID_CHARS => {
                Err(Error::malformed_field(
                    name,
                    format!("{name} must be 1 to {MAX_ID_CHARS} characters"),
                ))
            }
            other => Ok(other.map(str::to_owned)),
        }
    };
    let filter = DoraFilter {
        project_id: text_filter("project_id")?,
        app_id: text_filter("app_id")?,
        environment: text_filter("environment")?,
        prod,
    };
    let interval = request
        .query("interval")?
        .map(Interval::parse)
        .transpose()?
        .unwrap_or(Interval::All);
    let benchmark = request
        .query("benchmark")?
        .map(Benchmark::parse)
        .transpose()?
        .unwrap_or_default();
    Ok(DoraQuery {
        org_id,
        range,
        filter,
        interval,
        benchmark,
    })
}

/// Period starts in Unix seconds (whole seconds: `All` starts at the range start, truncated
/// like the rows' `unixepoch`).
fn period_seconds(periods: &[DateTime<Utc>]) -> Vec<i64> {
    periods.iter().map(DateTime::timestamp).collect()
}

fn rfc3339(instant: DateTime<Utc>) -> String {
    Timestamp::from_utc(instant).to_rfc3339()
}

/// One value of the seed's DoraLeadTimeToChangeMetricResponse.
#[derive(Serialize)]
struct LeadTimeValueBody {
    duration_mins: f64,
    created_at: String,
    git_hash_commit_timestamp: Option<String>,
    git_hash: Option<String>,
    image_name_with_tag: String,
    app_id: String,
    project_id: Option<String>,
    environment: String,
    prod: bool,
    /// The seed's name for the org.
    organization_id: String,
    image_id: String,
    deployment_id: Option<String>,
    clock_skew: bool,
}

#[derive(Serialize)]
struct SummaryBody {
    count: usize,
    median_mins: Option<f64>,
    p90_mins: Option<f64>,
    mean_mins: Option<f64>,
    min_mins: Option<f64>,
    max_mins: Option<f64>,
    /// The median's level by `benchmark` (2023, 2024); `null` for 2025 or without figures.
    dora_level: Option<&'static str>,
    /// The median's Quick Check bucket (2025 only).
    dora_bucket: Option<&'static str>,
    /// The State of DevOps report the level or bucket is from.
    benchmark: &'static str,
    /// Deployments whose commit is later than the deployment (clock skew): left out of every
    /// figure above, listed in `values` with `clock_skew: true`.
    clock_skew_excluded: usize,
}

#[derive(Serialize)]
struct LeadTimePeriodBody {
    period_start: String,
    count: usize,
    median_mins: Option<f64>,
}

#[derive(Serialize)]
struct LeadTimeBody {
    start_time: String,
    end_time: String,
    values: Vec<LeadTimeValueBody>,
    next_cursor: Option<String>,
    summary: SummaryBody,
    interval: &'static str,
    series: Vec<LeadTimePeriodBody>,
}

fn interval_name(interval: Interval) -> &'static str {
    match interval {
        Interval::Day => "day",
        Interval::Week => "week",
        Interval::Month => "month",
        Interval::All => "all",
    }
}

fn parse_values_cursor(cursor: &str) -> Result<(Timestamp, LeadTimeId), Error> {
    let (created_at, id) = cursor.split_once('~').ok_or_else(Error::bad_cursor)?;
    let created_at = Timestamp::parse("cursor", created_at).map_err(|_| Error::bad_cursor())?;
    let id = LeadTimeId::parse("cursor", id).map_err(|_| Error::bad_cursor())?;
    Ok((created_at, id))
}

pub(super) fn lead_time(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let env = ctx.env;
    let query = dora_query(ctx)?;
    let (limit, cursor) = ctx.request.page_request()?;
    let after = cursor.map(parse_values_cursor).transpose()?;

    let periods = query.interval.periods(&query.range);
    let starts = period_seconds(&periods);
    ctx.whole_tables()?;
    let plan = dora::plan(ctx.rollup_complete(), &query.range, &query.filter);
    // The figures and the page of values from one snapshot: a deployment recorded meanwhile
    // must be in all of the reads or in none.
    let (by_period, page) = read_snapshot(env.db, || {
        let by_period =
            dora::lead_times_by_period(env.db, &query.org_id, &plan, &query.filter, &starts)?;
        let page = store::lead_time_values(
            env.db,
            &query.org_id,
            &query.range,
            &query.filter,
            after,
            limit,
        )?;
        Ok((by_period, page))
    })?;
    let mut all = LeadTimes::default();
    let series = periods
        .iter()
        .zip(&by_period.periods)
        .map(|(start, lead_times)| {
            all.extend(lead_times);
            LeadTimePeriodBody {
                period_start: rfc3339(*start),
                count: lead_times.count() as usize,
                median_mins: lead_times.quantile_mins(0.5),
            }
        })
        .collect();
    let summary = LeadTimeSummary::of(&all);
    let standing = summary.median_mins.map(|m| query.benchmark.lead_time(m));
    let clock_skew_excluded = by_period.clock_skew as usize;

    let values = page
        .items
        .into_iter()
        .map(|r| LeadTimeValueBody {
            duration_mins: r.duration_mins.unwrap_or_default(),
            created_at: r.created_at.to_rfc3339(),
            git_hash_commit_timestamp: r.git_hash_commit_timestamp.map(|t| t.to_rfc3339()),
            git_hash: r.git_hash,
            image_name_with_tag: r.image_name_with_tag,
            app_id: r.app_id,
            project_id: r.project_id,
            environment: r.environment,
            prod: r.prod,
            organization_id: r.org_id.to_string(),
            image_id: r.image_id.to_text(),
            deployment_id: r.deployment_id,
            clock_skew: r.duration_mins.is_some_and(|d| d < 0.0),
        })
        .collect();

    json_response(
        StatusCode::OK,
        &LeadTimeBody {
            start_time: query.range.start.to_rfc3339(),
            end_time: query.range.end.to_rfc3339(),
            values,
            next_cursor: page.next_cursor,
            summary: SummaryBody {
                count: summary.count,
                median_mins: summary.median_mins,
                p90_mins: summary.p90_mins,
                mean_mins: summary.mean_mins,
                min_mins: summary.min_mins,
                max_mins: summary.max_mins,
                dora_level: standing.and_then(Standing::level),
                dora_bucket: standing.and_then(Standing::bucket),
                benchmark: query.benchmark.as_str(),
                clock_skew_excluded,
            },
            interval: interval_name(query.interval),
            series,
        },
    )
}

#[derive(Serialize)]
struct FrequencySummaryBody {
    count: usize,
    days: f64,
    per_day: f64,
    per_week: f64,
    dora_level: Option<&'static str>,
    dora_bucket: Option<&'static str>,
    benchmark: &'static str,
}

#[derive(Serialize)]
struct FrequencyPeriodBody {
    period_start: String,
    count: usize,
}

#[derive(Serialize)]
struct FrequencyBody {
    start_time: String,
    end_time: String,
    summary: FrequencySummaryBody,
    interval: &'static str,
    series: Vec<FrequencyPeriodBody>,
}

pub(super) fn deployment_frequency(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let env = ctx.env;
    let query = dora_query(ctx)?;
    let periods = query.interval.periods(&query.range);
    let starts = period_seconds(&periods);
    ctx.whole_tables()?;
    let plan = dora::plan(ctx.rollup_complete(), &query.range, &query.filter);
    let counts = read_snapshot(env.db, || {
        dora::deployments_by_period(env.db, &query.org_id, &plan, &query.filter, &starts)
    })?;
    let total: u64 = counts.iter().sum();
    let days = query.range.days();
    let per_day = total as f64 / days;
    let standing = (total > 0).then(|| query.benchmark.deployment_frequency(per_day));
    json_response(
        StatusCode::OK,
        &FrequencyBody {
            start_time: query.range.start.to_rfc3339(),
            end_time: query.range.end.to_rfc3339(),
            summary: FrequencySummaryBody {
                count: total as usize,
                days,
                per_day,
                per_week: per_day * 7.0,
                dora_level: standing.and_then(Standing::level),
                dora_bucket: standing.and_then(Standing::bucket),
                benchmark: query.benchmark.as_str(),
            },
            interval: interval_name(query.interval),
            series: periods
                .iter()
                .zip(counts)
                .map(|(start, count)| FrequencyPeriodBody {
                    period_start: rfc3339(*start),
                    count: count as usize,
                })
                .collect(),
        },
    )
}
