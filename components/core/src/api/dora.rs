//! DORA figures, the lead-time component's reads.
//!
//! - `GET /api/v1/dora/lead-time?start&end[&project_id&app_id&environment&prod&interval]`:
//!   GetLeadTimeToChangeDataFromRange, plus summary, DORA level and a gap-free series.
//! - `GET /api/v1/dora/deployment-frequency?…`: deployments per period and the DORA level.
//! - `GET /api/v1/dora/change-failure-rate?…`, `/dora/rework-rate?…`: failed (rework)
//!   deployments over deployments, per period.
//! - `GET /api/v1/dora/recovery-time?…`: how long change failures took to resolve.
//! - `GET /api/v1/dora/summary?…`: all five, with the previous period of equal length.

use crate::domain::ids::LeadTimeId;
use chrono::{DateTime, Datelike, Utc};
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

/// The range, filters and interval shared by the DORA queries.
pub(super) struct DoraQuery {
    pub(super) org_id: crate::domain::OrgId,
    pub(super) range: TimeRange,
    pub(super) filter: DoraFilter,
    pub(super) interval: Interval,
    pub(super) benchmark: Benchmark,
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
    let (settings, _) = crate::store::settings::find(ctx.env.db, &org_id)?;
    let filter = DoraFilter {
        project_id: text_filter(request, "project_id")?,
        app_id: text_filter(request, "app_id")?,
        environment: text_filter(request, "environment")?,
        prod,
        excluded_authors: settings
            .excluded_authors
            .iter()
            .map(|p| p.to_sqlite_glob())
            .collect(),
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
        .unwrap_or(settings.benchmark);
    Ok(DoraQuery {
        org_id,
        range,
        filter,
        interval,
        benchmark,
    })
}

/// A filter of the query: 1 to [`MAX_ID_CHARS`] characters, or absent.
pub(super) fn text_filter(request: &ApiRequest<'_>, name: &str) -> Result<Option<String>, Error> {
    match request.query(name)? {
        Some(value) if value.is_empty() || value.chars().count() > MAX_ID_CHARS => {
            Err(Error::malformed_field(
                name,
                format!("{name} must be 1 to {MAX_ID_CHARS} characters"),
            ))
        }
        other => Ok(other.map(str::to_owned)),
    }
}

/// Period starts in Unix seconds (whole seconds: `All` starts at the range start, truncated
/// like the rows' `unixepoch`).
pub(super) fn period_seconds(periods: &[DateTime<Utc>]) -> Vec<i64> {
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

pub(super) fn interval_name(interval: Interval) -> &'static str {
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
    let counts: Vec<u64> = read_snapshot(env.db, || {
        dora::outcomes_by_period(env.db, &query.org_id, &plan, &query.filter, &starts)
    })?
    .iter()
    .map(|outcomes| outcomes.deployments)
    .collect();
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

/// The figures behind every DORA answer for one range, read in one snapshot.
pub(super) struct Figures {
    pub(super) lead_times: Vec<LeadTimes>,
    pub(super) clock_skew: u64,
    pub(super) outcomes: Vec<dora::Outcomes>,
    pub(super) recoveries: Vec<LeadTimes>,
    pub(super) open_failures: u64,
}

/// Which figures a query needs (each is a read).
#[derive(Clone, Copy)]
pub(super) struct Needs {
    pub(super) lead_times: bool,
    pub(super) outcomes: bool,
    pub(super) recoveries: bool,
}

impl Needs {
    pub(super) const ALL: Needs = Needs {
        lead_times: true,
        outcomes: true,
        recoveries: true,
    };
}

/// Reads what `needs` says for `range` and `filter`, per period (`starts`).
pub(super) fn figures(
    ctx: &Context<'_>,
    org_id: &crate::domain::OrgId,
    range: &TimeRange,
    filter: &DoraFilter,
    starts: &[i64],
    needs: Needs,
) -> Result<Figures, Error> {
    let db = ctx.env.db;
    ctx.whole_tables()?;
    let plan = dora::plan(ctx.rollup_complete(), range, filter);
    read_snapshot(db, || {
        let (lead_times, clock_skew) = if needs.lead_times {
            let by_period = dora::lead_times_by_period(db, org_id, &plan, filter, starts)?;
            (by_period.periods, by_period.clock_skew)
        } else {
            (Vec::new(), 0)
        };
        let outcomes = if needs.outcomes {
            dora::outcomes_by_period(db, org_id, &plan, filter, starts)?
        } else {
            Vec::new()
        };
        let (recoveries, open_failures) = if needs.recoveries {
            let mut by_period: Vec<Vec<u64>> = vec![Vec::new(); starts.len()];
            for (second, micros) in
                crate::store::failures::recovery_times(db, org_id, range, filter)?
            {
                by_period[crate::domain::dora::period_index(starts, second)].push(micros);
            }
            let recoveries = by_period
                .into_iter()
                .map(|values| {
                    let mut set = LeadTimes::default();
                    set.add_unsorted(values);
                    set
                })
                .collect();
            let open = crate::store::failures::open_count(db, org_id, range.end, filter)?;
            (recoveries, open)
        } else {
            (Vec::new(), 0)
        };
        Ok(Figures {
            lead_times,
            clock_skew,
            outcomes,
            recoveries,
            open_failures,
        })
    })
}

/// Every set of a series, together.
pub(super) fn union(sets: &[LeadTimes]) -> LeadTimes {
    let mut all = LeadTimes::default();
    for set in sets {
        all.extend(set);
    }
    all
}

pub(super) fn total(outcomes: &[dora::Outcomes]) -> dora::Outcomes {
    let mut all = dora::Outcomes::default();
    for period in outcomes {
        all.add(*period);
    }
    all
}

#[derive(Serialize)]
struct RateSummaryBody {
    deployments: u64,
    /// Failed deployments (change failure rate) or rework ones (rework rate).
    #[serde(skip_serializing_if = "Option::is_none")]
    failed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rework: Option<u64>,
    /// The share of deployments, 0–1; `null` without deployments.
    rate: Option<f64>,
    dora_level: Option<&'static str>,
    dora_bucket: Option<&'static str>,
    benchmark: &'static str,
}

#[derive(Serialize)]
struct RatePeriodBody {
    period_start: String,
    deployments: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    failed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rework: Option<u64>,
    rate: Option<f64>,
}

#[derive(Serialize)]
struct RateBody {
    start_time: String,
    end_time: String,
    summary: RateSummaryBody,
    interval: &'static str,
    series: Vec<RatePeriodBody>,
}

/// Change failure rate or rework rate.
#[derive(Clone, Copy, PartialEq)]
enum Rate {
    ChangeFailure,
    Rework,
}

impl Rate {
    fn of(self, outcomes: &dora::Outcomes) -> (Option<u64>, Option<u64>, Option<f64>) {
        match self {
            Rate::ChangeFailure => (Some(outcomes.failed), None, outcomes.failure_rate()),
            Rate::Rework => (None, Some(outcomes.rework), outcomes.rework_rate()),
        }
    }
}

/// A query's parameters, its periods and the figures `needs` names, per period.
fn query_figures(
    ctx: &Context<'_>,
    needs: Needs,
) -> Result<(DoraQuery, Vec<DateTime<Utc>>, Figures), Error> {
    let query = dora_query(ctx)?;
    let periods = query.interval.periods(&query.range);
    let starts = period_seconds(&periods);
    let figures = figures(
        ctx,
        &query.org_id,
        &query.range,
        &query.filter,
        &starts,
        needs,
    )?;
    Ok((query, periods, figures))
}

fn rate(ctx: &Context<'_>, kind: Rate) -> Result<Response<Vec<u8>>, Error> {
    let needs = Needs {
        lead_times: false,
        outcomes: true,
        recoveries: false,
    };
    let (query, periods, figures) = query_figures(ctx, needs)?;
    let all = total(&figures.outcomes);
    let (failed, rework, value) = kind.of(&all);
    let standing = match kind {
        Rate::ChangeFailure => value.and_then(|r| query.benchmark.change_failure_rate(r)),
        // DORA gives rework rate no level in any year (docs/dora-benchmarks.md).
        Rate::Rework => None,
    };
    json_response(
        StatusCode::OK,
        &RateBody {
            start_time: query.range.start.to_rfc3339(),
            end_time: query.range.end.to_rfc3339(),
            summary: RateSummaryBody {
                deployments: all.deployments,
                failed,
                rework,
                rate: value,
                dora_level: standing.and_then(Standing::level),
                dora_bucket: standing.and_then(Standing::bucket),
                benchmark: query.benchmark.as_str(),
            },
            interval: interval_name(query.interval),
            series: periods
                .iter()
                .zip(&figures.outcomes)
                .map(|(start, outcomes)| {
                    let (failed, rework, rate) = kind.of(outcomes);
                    RatePeriodBody {
                        period_start: rfc3339(*start),
                        deployments: outcomes.deployments,
                        failed,
                        rework,
                        rate,
                    }
                })
                .collect(),
        },
    )
}

pub(super) fn change_failure_rate(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    rate(ctx, Rate::ChangeFailure)
}

pub(super) fn rework_rate(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    rate(ctx, Rate::Rework)
}

#[derive(Serialize)]
struct RecoverySummaryBody {
    /// Change failures resolved in the range.
    count: usize,
    median_mins: Option<f64>,
    p90_mins: Option<f64>,
    mean_mins: Option<f64>,
    min_mins: Option<f64>,
    max_mins: Option<f64>,
    /// Change failures started by the range's end and not resolved.
    open: u64,
    dora_level: Option<&'static str>,
    dora_bucket: Option<&'static str>,
    benchmark: &'static str,
}

#[derive(Serialize)]
struct RecoveryBody {
    start_time: String,
    end_time: String,
    summary: RecoverySummaryBody,
    interval: &'static str,
    series: Vec<LeadTimePeriodBody>,
}

pub(super) fn recovery_time(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let needs = Needs {
        lead_times: false,
        outcomes: false,
        recoveries: true,
    };
    let (query, periods, figures) = query_figures(ctx, needs)?;
    let summary = LeadTimeSummary::of(&union(&figures.recoveries));
    let standing = summary
        .median_mins
        .map(|m| query.benchmark.recovery_time(m));
    json_response(
        StatusCode::OK,
        &RecoveryBody {
            start_time: query.range.start.to_rfc3339(),
            end_time: query.range.end.to_rfc3339(),
            summary: RecoverySummaryBody {
                count: summary.count,
                median_mins: summary.median_mins,
                p90_mins: summary.p90_mins,
                mean_mins: summary.mean_mins,
                min_mins: summary.min_mins,
                max_mins: summary.max_mins,
                open: figures.open_failures,
                dora_level: standing.and_then(Standing::level),
                dora_bucket: standing.and_then(Standing::bucket),
                benchmark: query.benchmark.as_str(),
            },
            interval: interval_name(query.interval),
            series: periods
                .iter()
                .zip(&figures.recoveries)
                .map(|(start, set)| LeadTimePeriodBody {
                    period_start: rfc3339(*start),
                    count: set.count() as usize,
                    median_mins: set.quantile_mins(0.5),
                })
                .collect(),
        },
    )
}

/// One metric of the summary: its value now and in the previous period.
#[derive(Serialize)]
struct MetricBody {
    value: Option<f64>,
    /// `minutes` (lead time, recovery time: medians), `per_day` (deployment frequency),
    /// `ratio` (change failure rate, rework rate: 0–1).
    unit: &'static str,
    /// The figures behind the value: lead times, deployments, or failures resolved.
    count: u64,
    dora_level: Option<&'static str>,
    dora_bucket: Option<&'static str>,
    previous_value: Option<f64>,
    previous_count: u64,
    /// (value − previous) / previous × 100; `null` when either is missing or previous is 0.
    change_percent: Option<f64>,
}

#[derive(Serialize)]
struct DoraSummaryBody {
    start_time: String,
    end_time: String,
    previous_start_time: String,
    previous_end_time: String,
    benchmark: &'static str,
    lead_time: MetricBody,
    deployment_frequency: MetricBody,
    change_failure_rate: MetricBody,
    recovery_time: MetricBody,
    rework_rate: MetricBody,
    /// Lead times left out because the commit is later than its deployment.
    clock_skew_excluded: u64,
    /// Change failures started by the end and still open.
    open_failures: u64,
}

/// The five figures of one range.
struct FiveFigures {
    lead_time: (Option<f64>, u64),
    deployment_frequency: (Option<f64>, u64),
    change_failure_rate: (Option<f64>, u64),
    recovery_time: (Option<f64>, u64),
    rework_rate: (Option<f64>, u64),
    clock_skew: u64,
    open_failures: u64,
}

fn five_figures(
    ctx: &Context<'_>,
    query: &DoraQuery,
    range: &TimeRange,
) -> Result<FiveFigures, Error> {
    let starts = [range.start.instant().timestamp()];
    let figures = figures(
        ctx,
        &query.org_id,
        range,
        &query.filter,
        &starts,
        Needs::ALL,
    )?;
    let lead_times = union(&figures.lead_times);
    let outcomes = total(&figures.outcomes);
    let recoveries = union(&figures.recoveries);
    Ok(FiveFigures {
        lead_time: (lead_times.quantile_mins(0.5), lead_times.count()),
        deployment_frequency: (
            Some(outcomes.deployments as f64 / range.days()),
            outcomes.deployments,
        ),
        change_failure_rate: (outcomes.failure_rate(), outcomes.deployments),
        recovery_time: (recoveries.quantile_mins(0.5), recoveries.count()),
        rework_rate: (outcomes.rework_rate(), outcomes.deployments),
        clock_skew: figures.clock_skew,
        open_failures: figures.open_failures,
    })
}

fn metric(
    unit: &'static str,
    (value, count): (Option<f64>, u64),
    (previous_value, previous_count): (Option<f64>, u64),
    standing: Option<Standing>,
) -> MetricBody {
    let change_percent = match (value, previous_value) {
        (Some(value), Some(previous)) if previous != 0.0 => {
            Some((value - previous) / previous * 100.0)
        }
        _ => None,
    };
    MetricBody {
        value,
        unit,
        count,
        dora_level: standing.and_then(Standing::level),
        dora_bucket: standing.and_then(Standing::bucket),
        previous_value,
        previous_count,
        change_percent,
    }
}

/// `GET /api/v1/dora/summary?start&end[&filters][&benchmark]`: the five metrics of the range
/// and of the period of equal length just before it (ending a microsecond before `start`).
pub(super) fn summary(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let query = dora_query(ctx)?;
    let length = query.range.end.instant() - query.range.start.instant();
    let previous_end = query.range.start.instant() - chrono::Duration::microseconds(1);
    let previous_start = previous_end - length;
    if previous_start.year() < 1 {
        return Err(Error::malformed_field(
            "start",
            "the previous period of equal length must begin in year 1 or later",
        ));
    }
    let previous = TimeRange {
        start: Timestamp::from_utc(previous_start),
        end: Timestamp::from_utc(previous_end),
    };
    let now = five_figures(ctx, &query, &query.range)?;
    let before = five_figures(ctx, &query, &previous)?;
    let benchmark = query.benchmark;
    let deployments = now.deployment_frequency.1;
    json_response(
        StatusCode::OK,
        &DoraSummaryBody {
            start_time: query.range.start.to_rfc3339(),
            end_time: query.range.end.to_rfc3339(),
            previous_start_time: previous.start.to_rfc3339(),
            previous_end_time: previous.end.to_rfc3339(),
            benchmark: benchmark.as_str(),
            lead_time: metric(
                "minutes",
                now.lead_time,
                before.lead_time,
                now.lead_time.0.map(|m| benchmark.lead_time(m)),
            ),
            deployment_frequency: metric(
                "per_day",
                now.deployment_frequency,
                before.deployment_frequency,
                now.deployment_frequency
                    .0
                    .filter(|_| deployments > 0)
                    .map(|per_day| benchmark.deployment_frequency(per_day)),
            ),
            change_failure_rate: metric(
                "ratio",
                now.change_failure_rate,
                before.change_failure_rate,
                now.change_failure_rate
                    .0
                    .and_then(|rate| benchmark.change_failure_rate(rate)),
            ),
            recovery_time: metric(
                "minutes",
                now.recovery_time,
                before.recovery_time,
                now.recovery_time.0.map(|m| benchmark.recovery_time(m)),
            ),
            rework_rate: metric("ratio", now.rework_rate, before.rework_rate, None),
            clock_skew_excluded: now.clock_skew,
            open_failures: now.open_failures,
        },
    )
}
