//! Deployments and DORA: the lead-time component's routes.
//!
//! - `POST /api/v1/deployments`: an image reached an app environment (`GET
//!   /api/v1/deployments/{lead_time_id}` reads one back). Records the seed's
//!   lead-time row (upserting the environment and app environment). Idempotent: the same
//!   `deployment_id`, or the same image to the same app environment, answers 200 with the
//!   first record.
//! - `GET /api/v1/dora/lead-time?start&end[&project_id&app_id&environment&prod&interval]`:
//!   GetLeadTimeToChangeDataFromRange, plus summary, DORA level and a gap-free series.
//! - `GET /api/v1/dora/deployment-frequency?…`: deployments per period and the DORA level.

use chrono::{DateTime, Utc};
use http::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Caller;
use crate::db::{read_snapshot, transaction};
use crate::domain::image::{COMMIT_CLOCK_SKEW_SECONDS, ImageId};
use crate::domain::lead_time::{
    DoraLevel, EnvironmentName, Interval, LeadTimeSummary, TimeRange, duration_mins,
};
use crate::domain::lead_times::LeadTimes;
use crate::domain::{Role, Timestamp, check_text};
use crate::env::Env;
use crate::error::Error;
use crate::store::dora;
use crate::store::images;
use crate::store::lead_time_days;
use crate::store::lead_times::{self as store, DoraFilter, LeadTimeRecord};

use super::{ApiRequest, BASE_PATH, created, json_response, method_not_allowed, no_route};

pub fn routes(
    request: &ApiRequest<'_>,
    caller: &Caller,
    env: &Env<'_>,
) -> Result<Response<Vec<u8>>, Error> {
    let method = request.method;
    match request.segments.as_slice() {
        ["health", "lead-time"] => super::health::health(request, "lead-time"),
        ["deployments"] => match *method {
            Method::POST => record_deployment(request, caller, env),
            _ => method_not_allowed("POST"),
        },
        ["deployments", lead_time_id] => match *method {
            Method::GET => get_deployment(request, lead_time_id, caller, env),
            _ => method_not_allowed("GET"),
        },
        ["dora", "lead-time"] => match *method {
            Method::GET => lead_time(request, caller, env),
            _ => method_not_allowed("GET"),
        },
        ["dora", "deployment-frequency"] => match *method {
            Method::GET => deployment_frequency(request, caller, env),
            _ => method_not_allowed("GET"),
        },
        _ => no_route(request),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeploymentBody {
    image_id: String,
    #[serde(default)]
    project_id: Option<String>,
    app_id: String,
    environment: String,
    #[serde(default)]
    prod: bool,
    #[serde(default)]
    deployment_id: Option<String>,
    #[serde(default)]
    deployed_at: Option<String>,
    #[serde(default)]
    org_id: Option<String>,
}

/// A lead-time record as JSON (the POST answer).
#[derive(Serialize)]
struct DeploymentRecordBody {
    lead_time_id: String,
    org_id: String,
    image_id: String,
    deployment_id: Option<String>,
    project_id: Option<String>,
    app_id: String,
    environment: String,
    prod: bool,
    git_hash: String,
    git_hash_commit_timestamp: Option<String>,
    image_name_with_tag: String,
    created_at: String,
    duration_mins: Option<f64>,
    /// The commit is later than the deployment: excluded from lead-time figures.
    clock_skew: bool,
    recorded_at: String,
}

impl From<LeadTimeRecord> for DeploymentRecordBody {
    fn from(r: LeadTimeRecord) -> Self {
        DeploymentRecordBody {
            lead_time_id: r.lead_time_id.hyphenated().to_string(),
            org_id: r.org_id.to_string(),
            image_id: r.image_id.to_text(),
            deployment_id: r.deployment_id,
            project_id: r.project_id,
            app_id: r.app_id,
            environment: r.environment,
            prod: r.prod,
            git_hash: r.git_hash,
            git_hash_commit_timestamp: r.git_hash_commit_timestamp.map(|t| t.to_stored()),
            image_name_with_tag: r.image_name_with_tag,
            created_at: r.created_at.to_stored(),
            duration_mins: r.duration_mins,
            clock_skew: r.duration_mins.is_some_and(|d| d < 0.0),
            recorded_at: r.recorded_at.to_stored(),
        }
    }
}

const MAX_ID_CHARS: usize = 255;

enum Recorded {
    New(LeadTimeRecord),
    Existing(LeadTimeRecord),
}

fn record_deployment(
    request: &ApiRequest<'_>,
    caller: &Caller,
    env: &Env<'_>,
) -> Result<Response<Vec<u8>>, Error> {
    let body: DeploymentBody = request.json()?;
    let named = body
        .org_id
        .as_deref()
        .map(|o| crate::domain::OrgId::parse("org_id", o))
        .transpose()?;
    let org_id = caller.act_for(request.named_org()?.or(named), Role::Write)?;
    let image_id = ImageId::parse("image_id", &body.image_id)
        .map_err(|_| Error::invalid("image_id", "must be a UUID of an image"))?;
    if let Some(project_id) = &body.project_id {
        check_text("project_id", project_id, MAX_ID_CHARS)?;
    }
    check_text("app_id", &body.app_id, MAX_ID_CHARS)?;
    let environment = EnvironmentName::parse("environment", &body.environment)?;
    if let Some(deployment_id) = &body.deployment_id {
        check_text("deployment_id", deployment_id, MAX_ID_CHARS)?;
    }
    let now = env.clock.now();
    let created_at = match body.deployed_at.as_deref() {
        None => now,
        Some(deployed_at) => {
            let deployed_at = Timestamp::parse("deployed_at", deployed_at)?;
            if (deployed_at.instant() - now.instant()).num_seconds() > COMMIT_CLOCK_SKEW_SECONDS {
                return Err(Error::invalid(
                    "deployed_at",
                    "must not be in the future (back-filling only)",
                ));
            }
            deployed_at
        }
    };
    let recorded = transaction(env.db, || {
        let image = images::find_in_org(env.db, image_id, &org_id)?
            .ok_or_else(|| Error::not_found(format!("image {image_id} does not exist")))?;
        let same_context = |r: &LeadTimeRecord| {
            r.image_id == image_id
                && r.project_id == body.project_id
                && r.app_id == body.app_id
                && r.environment == environment.as_str()
        };
        if let Some(deployment_id) = &body.deployment_id
            && let Some(existing) = store::find_by_deployment_id(env.db, &org_id, deployment_id)?
        {
            return if same_context(&existing) {
                Ok(Recorded::Existing(existing))
            } else {
                Err(Error::Conflict {
                    detail: format!(
                        "deployment_id {deployment_id:?} is already recorded for another image or app environment"
                    ),
                    field: Some("deployment_id".to_owned()),
                })
            };
        }
        let environment_id = store::upsert_environment(
            env.db,
            &org_id,
            &environment,
            body.prod,
            env.ids.new_id(),
            now,
        )?;
        let app_environment_id = store::upsert_app_environment(
            env.db,
            &org_id,
            body.project_id.as_deref(),
            &body.app_id,
            environment_id,
            env.ids.new_id(),
            now,
        )?;
        if let Some(existing) =
            store::find_by_image_app_environment(env.db, image_id, app_environment_id)?
        {
            return Ok(Recorded::Existing(existing));
        }
        let commit = image.request.git_hash_commit_timestamp;
        let record = LeadTimeRecord {
            lead_time_id: env.ids.new_id(),
            org_id: org_id.clone(),
            image_id,
            app_environment_id,
            deployment_id: body.deployment_id.clone(),
            project_id: body.project_id.clone(),
            app_id: body.app_id.clone(),
            environment: environment.as_str().to_owned(),
            prod: body.prod,
            git_hash: image.request.git_hash,
            git_hash_commit_timestamp: commit,
            image_name_with_tag: image.request.image_name_with_tag,
            created_at,
            duration_mins: commit.map(|c| duration_mins(c, created_at)),
            recorded_at: now,
        };
        store::insert(env.db, &record)?;
        lead_time_days::add(env.db, &record)?;
        Ok(Recorded::New(record))
    })?;
    match recorded {
        Recorded::New(record) => {
            let location = format!(
                "{BASE_PATH}/deployments/{}",
                record.lead_time_id.hyphenated()
            );
            created(location, &DeploymentRecordBody::from(record))
        }
        Recorded::Existing(record) => {
            json_response(StatusCode::OK, &DeploymentRecordBody::from(record))
        }
    }
}

/// `GET /api/v1/deployments/{lead_time_id}`: one recorded deployment (the `Location` of a 201).
fn get_deployment(
    request: &ApiRequest<'_>,
    lead_time_id: &str,
    caller: &Caller,
    env: &Env<'_>,
) -> Result<Response<Vec<u8>>, Error> {
    let org_id = caller.act_for(request.named_org()?, Role::Read)?;
    let lead_time_id = crate::domain::ids::parse_uuid("lead_time_id", lead_time_id)?;
    let record = store::find(env.db, &org_id, lead_time_id)?
        .ok_or_else(|| Error::not_found(format!("deployment {lead_time_id} does not exist")))?;
    json_response(StatusCode::OK, &DeploymentRecordBody::from(record))
}

/// The range, filters and interval shared by both DORA queries.
struct DoraQuery {
    org_id: crate::domain::OrgId,
    range: TimeRange,
    filter: DoraFilter,
    interval: Interval,
}

fn dora_query(request: &ApiRequest<'_>, caller: &Caller) -> Result<DoraQuery, Error> {
    let org_id = caller.act_for(request.named_org()?, Role::Read)?;
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
    Ok(DoraQuery {
        org_id,
        range,
        filter,
        interval,
    })
}

/// Period starts in Unix seconds (whole seconds: `All` starts at the range start, truncated
/// like the rows' `unixepoch`).
fn period_seconds(periods: &[DateTime<Utc>]) -> Vec<i64> {
    periods.iter().map(DateTime::timestamp).collect()
}

fn rfc3339(instant: DateTime<Utc>) -> String {
    Timestamp::from_utc(instant).to_stored()
}

/// One value of the seed's DoraLeadTimeToChangeMetricResponse.
#[derive(Serialize)]
struct LeadTimeValueBody {
    duration_mins: f64,
    created_at: String,
    git_hash_commit_timestamp: Option<String>,
    git_hash: String,
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
    dora_level: Option<&'static str>,
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

fn parse_values_cursor(cursor: &str) -> Result<(Timestamp, Uuid), Error> {
    let (created_at, id) = cursor.split_once('~').ok_or_else(Error::bad_cursor)?;
    let created_at = Timestamp::parse("cursor", created_at).map_err(|_| Error::bad_cursor())?;
    let id = Uuid::try_parse(id).map_err(|_| Error::bad_cursor())?;
    Ok((created_at, id))
}

fn lead_time(
    request: &ApiRequest<'_>,
    caller: &Caller,
    env: &Env<'_>,
) -> Result<Response<Vec<u8>>, Error> {
    let query = dora_query(request, caller)?;
    let (limit, cursor) = request.page_request()?;
    let after = cursor.map(parse_values_cursor).transpose()?;

    let periods = query.interval.periods(&query.range);
    let starts = period_seconds(&periods);
    let plan = dora::plan(&query.range, &query.filter);
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
    let clock_skew_excluded = by_period.clock_skew as usize;

    let values = page
        .items
        .into_iter()
        .map(|r| LeadTimeValueBody {
            duration_mins: r.duration_mins.unwrap_or_default(),
            created_at: r.created_at.to_stored(),
            git_hash_commit_timestamp: r.git_hash_commit_timestamp.map(|t| t.to_stored()),
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
            start_time: query.range.start.to_stored(),
            end_time: query.range.end.to_stored(),
            values,
            next_cursor: page.next_cursor,
            summary: SummaryBody {
                count: summary.count,
                median_mins: summary.median_mins,
                p90_mins: summary.p90_mins,
                mean_mins: summary.mean_mins,
                min_mins: summary.min_mins,
                max_mins: summary.max_mins,
                dora_level: summary.level.map(|l| l.as_str()),
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

fn deployment_frequency(
    request: &ApiRequest<'_>,
    caller: &Caller,
    env: &Env<'_>,
) -> Result<Response<Vec<u8>>, Error> {
    let query = dora_query(request, caller)?;
    let periods = query.interval.periods(&query.range);
    let starts = period_seconds(&periods);
    let plan = dora::plan(&query.range, &query.filter);
    let counts = read_snapshot(env.db, || {
        dora::deployments_by_period(env.db, &query.org_id, &plan, &query.filter, &starts)
    })?;
    let total: u64 = counts.iter().sum();
    let days = query.range.days();
    let per_day = total as f64 / days;
    json_response(
        StatusCode::OK,
        &FrequencyBody {
            start_time: query.range.start.to_stored(),
            end_time: query.range.end.to_stored(),
            summary: FrequencySummaryBody {
                count: total as usize,
                days,
                per_day,
                per_week: per_day * 7.0,
                dora_level: (total > 0)
                    .then(|| DoraLevel::for_deployment_frequency(per_day).as_str()),
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
