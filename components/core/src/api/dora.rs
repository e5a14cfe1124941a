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
use crate::domain::deployment::LeadTimeRecord;
use crate::domain::deployment::MAX_ID_CHARS;
use crate::domain::dora::{
    Benchmark, Interval, LeadTimeSummary, LeadTimeUnit, Standing, TimeRange,
};
use crate::domain::sorted_runs::{LeadTimes, MICROS_PER_MINUTE};
use crate::error::Error;
use crate::store::commit_lead_times::{self, CommitLeadTime, STAGES};
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
    /// What a lead time is of, as answered ([`unit_of`]).
    pub(super) unit: LeadTimeUnit,
}

/// The unit a lead-time figure is answered in: the one asked for (commit by default), but
/// per deployment while the head commits of records from before migration 0011 are still
/// being counted (the answer's `unit` says so).
pub(super) fn unit_of(ctx: &Context<'_>, asked: Option<&str>) -> Result<LeadTimeUnit, Error> {
    let unit = asked
        .map(LeadTimeUnit::parse)
        .transpose()?
        .unwrap_or_default();
    Ok(match unit {
        LeadTimeUnit::Commit if !ctx.head_commits_counted() => LeadTimeUnit::Deployment,
        unit => unit,
    })
}

fn dora_query(ctx: &Context<'_>) -> Result<DoraQuery, Error> {
    let request: &ApiRequest<'_> = ctx.request;
    let org_id = ctx.acting_org()?;
    let range = TimeRange::parse(request.query("start")?, request.query("end")?)?;
    let (settings, _) = crate::store::settings::find(ctx.env.db, &org_id)?;
    let filter = DoraFilter {
        excluded_authors: settings.excluded_author_globs(),
        ..site_filter(request)?
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
    let unit = unit_of(ctx, request.query("unit")?)?;
    Ok(DoraQuery {
        org_id,
        range,
        filter,
        interval,
        benchmark,
        unit,
    })
}

/// The query's `project_id`, `app_id`, `environment` and `prod` (no author exclusions): where
/// deployments ran, as every DORA query and the deployments list filter them.
pub(super) fn site_filter(request: &ApiRequest<'_>) -> Result<DoraFilter, Error> {
    let prod = match request.query("prod")? {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            return Err(Error::malformed_field("prod", "prod must be true or false"));
        }
    };
    Ok(DoraFilter {
        project_id: text_filter(request, "project_id")?,
        app_id: text_filter(request, "app_id")?,
        environment: text_filter(request, "environment")?,
        prod,
        excluded_authors: Vec::new(),
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
    /// The commit's author (commit lead times, when the pipeline listed one).
    #[serde(skip_serializing_if = "Option::is_none")]
    author: Option<String>,
}

impl From<LeadTimeRecord> for LeadTimeValueBody {
    fn from(r: LeadTimeRecord) -> LeadTimeValueBody {
        LeadTimeValueBody {
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
            author: None,
        }
    }
}

impl LeadTimeValueBody {
    /// A commit's lead time: `git_hash` is the commit, the rest its deployment's.
    fn of_commit(c: CommitLeadTime, org_id: &crate::domain::OrgId) -> LeadTimeValueBody {
        LeadTimeValueBody {
            duration_mins: c.duration_micros as f64 / MICROS_PER_MINUTE,
            created_at: c.created_at.to_rfc3339(),
            git_hash_commit_timestamp: Some(c.committed_at.to_rfc3339()),
            git_hash: Some(c.sha),
            image_name_with_tag: c.image_name_with_tag,
            app_id: c.app_id,
            project_id: c.project_id,
            environment: c.environment,
            prod: c.prod,
            organization_id: org_id.to_string(),
            image_id: c.image_id.to_text(),
            deployment_id: c.deployment_id,
            clock_skew: c.duration_micros < 0,
            author: c.author,
        }
    }
}

/// Where a figure stands: its level by `benchmark` (2023, 2024) or its Quick Check bucket
/// (2025); both `null` without figures (or for a metric the year gives neither).
#[derive(Serialize)]
struct GradeBody {
    dora_level: Option<&'static str>,
    dora_bucket: Option<&'static str>,
}

impl GradeBody {
    fn of(standing: Option<Standing>) -> GradeBody {
        GradeBody {
            dora_level: standing.and_then(Standing::level),
            dora_bucket: standing.and_then(Standing::bucket),
        }
    }
}

/// The summary figures of a set of durations (lead times, recovery times), in minutes.
#[derive(Serialize)]
struct DurationsBody {
    count: usize,
    median_mins: Option<f64>,
    p90_mins: Option<f64>,
    mean_mins: Option<f64>,
    min_mins: Option<f64>,
    max_mins: Option<f64>,
}

impl From<&LeadTimeSummary> for DurationsBody {
    fn from(summary: &LeadTimeSummary) -> DurationsBody {
        DurationsBody {
            count: summary.count,
            median_mins: summary.median_mins,
            p90_mins: summary.p90_mins,
            mean_mins: summary.mean_mins,
            min_mins: summary.min_mins,
            max_mins: summary.max_mins,
        }
    }
}

#[derive(Serialize)]
struct SummaryBody {
    #[serde(flatten)]
    durations: DurationsBody,
    /// The median's level or bucket.
    #[serde(flatten)]
    grade: GradeBody,
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
    /// The 90th percentile: with the median, the spread a chart draws as a band.
    p90_mins: Option<f64>,
}

/// A series of durations: each period's count and median.
fn durations_series(periods: &[DateTime<Utc>], sets: &[LeadTimes]) -> Vec<LeadTimePeriodBody> {
    periods
        .iter()
        .zip(sets)
        .map(|(start, set)| LeadTimePeriodBody {
            period_start: rfc3339(*start),
            count: set.count() as usize,
            median_mins: set.quantile_mins(0.5),
            p90_mins: set.quantile_mins(0.9),
        })
        .collect()
}

/// The answer of a per-period DORA query without values: its range, summary and series.
#[derive(Serialize)]
struct SeriesBody<S, P> {
    start_time: String,
    end_time: String,
    summary: S,
    interval: &'static str,
    series: Vec<P>,
}

impl<S, P> SeriesBody<S, P> {
    fn of(query: &DoraQuery, summary: S, series: Vec<P>) -> SeriesBody<S, P> {
        SeriesBody {
            start_time: query.range.start.to_rfc3339(),
            end_time: query.range.end.to_rfc3339(),
            summary,
            interval: interval_name(query.interval),
            series,
        }
    }
}

#[derive(Serialize)]
struct LeadTimeBody {
    start_time: String,
    end_time: String,
    /// `commit` or `deployment`: what each value is of.
    unit: &'static str,
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

/// `{created_at}~{lead_time_id}`, and `~{sha}` for commit lead times.
pub(super) fn parse_values_cursor(
    cursor: &str,
) -> Result<(Timestamp, LeadTimeId, Option<String>), Error> {
    let mut parts = cursor.split('~');
    let (Some(created_at), Some(id)) = (parts.next(), parts.next()) else {
        return Err(Error::bad_cursor());
    };
    let sha = parts.next().map(str::to_owned);
    if parts.next().is_some() {
        return Err(Error::bad_cursor());
    }
    let created_at = Timestamp::parse("cursor", created_at).map_err(|_| Error::bad_cursor())?;
    let id = LeadTimeId::parse("cursor", id).map_err(|_| Error::bad_cursor())?;
    Ok((created_at, id, sha))
}

pub(super) fn lead_time(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let env = ctx.env;
    let query = dora_query(ctx)?;
    let (limit, cursor) = ctx.request.page_request()?;
    let after = cursor.map(parse_values_cursor).transpose()?;

    let periods = query.interval.periods(&query.range);
    let starts = period_seconds(&periods);
    let plan = ctx.dora_plan(&query.range, &query.filter)?;
    // The figures and the page of values from one snapshot: a deployment recorded meanwhile
    // must be in all of the reads or in none.
    let (by_period, values, next_cursor) = read_snapshot(env.db, || {
        let by_period = dora::lead_times_by_period(
            env.db,
            &query.org_id,
            &plan,
            &query.filter,
            query.unit,
            &starts,
            None,
        )?;
        let (values, next_cursor) = match query.unit {
            LeadTimeUnit::Deployment => {
                let after = after.map(|(created_at, id, _)| (created_at, id));
                let page = store::lead_time_values(
                    env.db,
                    &query.org_id,
                    &query.range,
                    &query.filter,
                    after,
                    limit,
                )?;
                let values = page.items.into_iter().map(LeadTimeValueBody::from);
                (values.collect::<Vec<_>>(), page.next_cursor)
            }
            LeadTimeUnit::Commit => {
                let after = after
                    .map(|(created_at, id, sha)| {
                        Ok::<_, Error>((created_at, id, sha.ok_or_else(Error::bad_cursor)?))
                    })
                    .transpose()?;
                let page = commit_lead_times::values(
                    env.db,
                    &query.org_id,
                    &query.range,
                    &query.filter,
                    after,
                    limit,
                )?;
                let values = page
                    .items
                    .into_iter()
                    .map(|c| LeadTimeValueBody::of_commit(c, &query.org_id));
                (values.collect::<Vec<_>>(), page.next_cursor)
            }
        };
        Ok((by_period, values, next_cursor))
    })?;
    let series = durations_series(&periods, &by_period.periods);
    let summary = LeadTimeSummary::of(&union(&by_period.periods));
    let standing = summary.median_mins.map(|m| query.benchmark.lead_time(m));
    let clock_skew_excluded = by_period.clock_skew() as usize;

    json_response(
        StatusCode::OK,
        &LeadTimeBody {
            start_time: query.range.start.to_rfc3339(),
            end_time: query.range.end.to_rfc3339(),
            unit: query.unit.as_str(),
            values,
            next_cursor,
            summary: SummaryBody {
                durations: DurationsBody::from(&summary),
                grade: GradeBody::of(standing),
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
    #[serde(flatten)]
    grade: GradeBody,
    benchmark: &'static str,
}

#[derive(Serialize)]
struct FrequencyPeriodBody {
    period_start: String,
    count: usize,
}

pub(super) fn deployment_frequency(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let needs = Needs {
        outcomes: true,
        ..Needs::NONE
    };
    let (query, periods, figures) = query_figures(ctx, needs)?;
    let total = total(&figures.outcomes).deployments;
    let days = query.range.days();
    let per_day = total as f64 / days;
    let standing = (total > 0).then(|| query.benchmark.deployment_frequency(per_day));
    let summary = FrequencySummaryBody {
        count: total as usize,
        days,
        per_day,
        per_week: per_day * 7.0,
        grade: GradeBody::of(standing),
        benchmark: query.benchmark.as_str(),
    };
    let series = periods
        .iter()
        .zip(&figures.outcomes)
        .map(|(start, outcomes)| FrequencyPeriodBody {
            period_start: rfc3339(*start),
            count: outcomes.deployments as usize,
        })
        .collect();
    json_response(StatusCode::OK, &SeriesBody::of(&query, summary, series))
}

/// The figures behind every DORA answer for one range, read in one snapshot.
pub(super) struct Figures {
    pub(super) lead_times: Vec<LeadTimes>,
    /// Of each period; `None` unless asked for.
    pub(super) stages: Option<Vec<[LeadTimes; STAGES]>>,
    pub(super) clock_skew_by_period: Vec<u64>,
    pub(super) outcomes: Vec<dora::Outcomes>,
    pub(super) recoveries: Vec<LeadTimes>,
    pub(super) open_failures: u64,
}

/// Which figures a query needs (each is a read).
#[derive(Clone, Copy)]
pub(super) struct Needs {
    /// Lead times, of this unit.
    pub(super) lead_times: Option<LeadTimeUnit>,
    pub(super) outcomes: bool,
    pub(super) recoveries: bool,
    /// The stages of commit lead times.
    pub(super) stages: bool,
}

impl Needs {
    pub(super) const NONE: Needs = Needs {
        lead_times: None,
        outcomes: false,
        recoveries: false,
        stages: false,
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
    let plan = ctx.dora_plan(range, filter)?;
    read_snapshot(db, || {
        // The stages come with the commit lead times, from the same rows.
        let (lead_times, clock_skew_by_period, stages) = match needs.lead_times {
            Some(unit) => {
                let by_period = dora::lead_times_by_period(
                    db,
                    org_id,
                    &plan,
                    filter,
                    unit,
                    starts,
                    // The last period's: what the summary shows.
                    starts.last().copied().filter(|_| needs.stages),
                )?;
                (
                    by_period.periods,
                    by_period.clock_skew_by_period,
                    by_period.stages,
                )
            }
            None => (Vec::new(), vec![0; starts.len()], None),
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
            stages,
            clock_skew_by_period,
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

/// A rate's figures over some deployments: how many, how many failed (change failure rate)
/// or were rework (rework rate), and the share, 0–1 (`null` without deployments).
#[derive(Serialize)]
struct RateFiguresBody {
    deployments: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    failed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rework: Option<u64>,
    rate: Option<f64>,
}

#[derive(Serialize)]
struct RateSummaryBody {
    #[serde(flatten)]
    figures: RateFiguresBody,
    #[serde(flatten)]
    grade: GradeBody,
    benchmark: &'static str,
}

#[derive(Serialize)]
struct RatePeriodBody {
    period_start: String,
    #[serde(flatten)]
    figures: RateFiguresBody,
}

/// Change failure rate or rework rate.
#[derive(Clone, Copy, PartialEq)]
enum Rate {
    ChangeFailure,
    Rework,
}

impl Rate {
    fn of(self, outcomes: &dora::Outcomes) -> RateFiguresBody {
        let (failed, rework, rate) = match self {
            Rate::ChangeFailure => (Some(outcomes.failed), None, outcomes.failure_rate()),
            Rate::Rework => (None, Some(outcomes.rework), outcomes.rework_rate()),
        };
        RateFiguresBody {
            deployments: outcomes.deployments,
            failed,
            rework,
            rate,
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
        outcomes: true,
        ..Needs::NONE
    };
    let (query, periods, figures) = query_figures(ctx, needs)?;
    let all = kind.of(&total(&figures.outcomes));
    let standing = match kind {
        Rate::ChangeFailure => all
            .rate
            .and_then(|r| query.benchmark.change_failure_rate(r)),
        // DORA gives rework rate no level in any year (docs/dora-benchmarks.md).
        Rate::Rework => None,
    };
    let summary = RateSummaryBody {
        figures: all,
        grade: GradeBody::of(standing),
        benchmark: query.benchmark.as_str(),
    };
    let series = periods
        .iter()
        .zip(&figures.outcomes)
        .map(|(start, outcomes)| RatePeriodBody {
            period_start: rfc3339(*start),
            figures: kind.of(outcomes),
        })
        .collect();
    json_response(StatusCode::OK, &SeriesBody::of(&query, summary, series))
}

pub(super) fn change_failure_rate(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    rate(ctx, Rate::ChangeFailure)
}

pub(super) fn rework_rate(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    rate(ctx, Rate::Rework)
}

#[derive(Serialize)]
struct RecoverySummaryBody {
    /// Of the change failures resolved in the range.
    #[serde(flatten)]
    durations: DurationsBody,
    /// Change failures started by the range's end and not resolved.
    open: u64,
    #[serde(flatten)]
    grade: GradeBody,
    benchmark: &'static str,
}

pub(super) fn recovery_time(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let needs = Needs {
        recoveries: true,
        ..Needs::NONE
    };
    let (query, periods, figures) = query_figures(ctx, needs)?;
    let summary = LeadTimeSummary::of(&union(&figures.recoveries));
    let standing = summary
        .median_mins
        .map(|m| query.benchmark.recovery_time(m));
    let summary = RecoverySummaryBody {
        durations: DurationsBody::from(&summary),
        open: figures.open_failures,
        grade: GradeBody::of(standing),
        benchmark: query.benchmark.as_str(),
    };
    let series = durations_series(&periods, &figures.recoveries);
    json_response(StatusCode::OK, &SeriesBody::of(&query, summary, series))
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
    #[serde(flatten)]
    grade: GradeBody,
    previous_value: Option<f64>,
    previous_count: u64,
    /// (value − previous) / previous × 100; `null` when either is missing or previous is 0.
    change_percent: Option<f64>,
}

/// One stage of the commit lead times: how many commits it has a duration for, and their
/// median.
#[derive(Serialize)]
struct StageBody {
    count: u64,
    median_mins: Option<f64>,
}

/// The lead time split in its stages, per commit (each stage's own median: they need not add
/// up to the lead time's).
#[derive(Serialize)]
struct StagesBody {
    commit_to_build: StageBody,
    build_to_deploy_start: StageBody,
    deploy_start_to_finish: StageBody,
}

impl StagesBody {
    fn of(stages: &[LeadTimes; STAGES]) -> StagesBody {
        let stage = |set: &LeadTimes| StageBody {
            count: set.count(),
            median_mins: set.quantile_mins(0.5),
        };
        StagesBody {
            commit_to_build: stage(&stages[0]),
            build_to_deploy_start: stage(&stages[1]),
            deploy_start_to_finish: stage(&stages[2]),
        }
    }
}

#[derive(Serialize)]
struct DoraSummaryBody {
    start_time: String,
    end_time: String,
    previous_start_time: String,
    previous_end_time: String,
    benchmark: &'static str,
    /// What the lead time is of: `commit` or `deployment`.
    unit: &'static str,
    lead_time: MetricBody,
    deployment_frequency: MetricBody,
    change_failure_rate: MetricBody,
    recovery_time: MetricBody,
    rework_rate: MetricBody,
    /// Lead times left out because the commit is later than its deployment.
    clock_skew_excluded: u64,
    /// Change failures started by the end and still open.
    open_failures: u64,
    /// The commit lead times' stages in the range (`null` while the commits of records from
    /// before the upgrade are still being counted).
    stages: Option<StagesBody>,
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
    stages: Option<[LeadTimes; STAGES]>,
}

/// The five figures of each of `ranges` (consecutive, ascending): read in one pass when every
/// cut between them is a UTC midnight (each rollup day then falls in one period), else one
/// pass per range. Stages for the last range only, if `with_stages`.
fn five_figures(
    ctx: &Context<'_>,
    query: &DoraQuery,
    ranges: &[TimeRange],
    with_stages: bool,
) -> Result<Vec<FiveFigures>, Error> {
    const MICROS_PER_DAY: i64 = 86_400_000_000;
    let cuts_at_midnight = ranges
        .windows(2)
        .all(|pair| pair[1].start.micros().rem_euclid(MICROS_PER_DAY) == 0);
    let needs = |stages: bool| Needs {
        lead_times: Some(query.unit),
        outcomes: true,
        recoveries: true,
        stages: stages && ctx.head_commits_counted(),
    };
    let passes: Vec<(TimeRange, Vec<i64>, Figures)> = match (ranges.first(), ranges.last()) {
        (Some(first), Some(last)) if cuts_at_midnight => {
            let whole = TimeRange {
                start: first.start,
                end: last.end,
            };
            let starts: Vec<i64> = ranges
                .iter()
                .map(|r| r.start.instant().timestamp())
                .collect();
            let figures = figures(
                ctx,
                &query.org_id,
                &whole,
                &query.filter,
                &starts,
                needs(with_stages),
            )?;
            vec![(whole, starts, figures)]
        }
        _ => ranges
            .iter()
            .enumerate()
            .map(|(index, range)| {
                let starts = vec![range.start.instant().timestamp()];
                let stages = with_stages && index + 1 == ranges.len();
                let figures = figures(
                    ctx,
                    &query.org_id,
                    range,
                    &query.filter,
                    &starts,
                    needs(stages),
                )?;
                Ok((*range, starts, figures))
            })
            .collect::<Result<_, Error>>()?,
    };
    let mut all = Vec::with_capacity(ranges.len());
    for (_, starts, figures) in &passes {
        for period in 0..starts.len() {
            all.push((figures, period));
        }
    }
    Ok(ranges
        .iter()
        .zip(all)
        .enumerate()
        .map(|(index, (range, (figures, period)))| {
            let lead_times = &figures.lead_times[period];
            let outcomes = figures.outcomes[period];
            let recoveries = &figures.recoveries[period];
            FiveFigures {
                lead_time: (lead_times.quantile_mins(0.5), lead_times.count()),
                deployment_frequency: (
                    Some(outcomes.deployments as f64 / range.days()),
                    outcomes.deployments,
                ),
                change_failure_rate: (outcomes.failure_rate(), outcomes.deployments),
                recovery_time: (recoveries.quantile_mins(0.5), recoveries.count()),
                rework_rate: (outcomes.rework_rate(), outcomes.deployments),
                clock_skew: figures.clock_skew_by_period[period],
                // Open at the end of the pass: the last range's.
                open_failures: figures.open_failures,
                stages: figures
                    .stages
                    .as_ref()
                    .filter(|_| with_stages && index + 1 == ranges.len())
                    .map(|stages| stages[period].clone()),
            }
        })
        .collect())
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
        grade: GradeBody::of(standing),
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
    let mut figures = five_figures(ctx, &query, &[previous, query.range], true)?;
    let (Some(now), Some(before)) = (figures.pop(), figures.pop()) else {
        return Err(Error::storage(
            "the summary read fewer periods than it asked for",
        ));
    };
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
            unit: query.unit.as_str(),
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
            stages: now.stages.as_ref().map(StagesBody::of),
        },
    )
}
