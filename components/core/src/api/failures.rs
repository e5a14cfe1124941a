//! Failures in production, the lead-time component's other write:
//! `POST /api/v1/failures` (idempotent on `failure_id`), `GET /api/v1/failures` (the org's,
//! newest first), `GET` and `PATCH /api/v1/failures/{failure_id}` (its resolution, title,
//! severity). Incident tools' webhooks map to the POST body with a `jq` line (README).

use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::db::transaction;
use crate::domain::OrgId;
use crate::domain::failure::{Failure, FailureFields, FailureReport, not_in_future};
use crate::error::Error;
use crate::store::failures as store;

use super::{BASE_PATH, Context, PageBody, json_response, present, respond};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailureBody {
    failure_id: String,
    #[serde(default)]
    deployment_id: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    app_id: Option<String>,
    #[serde(default)]
    environment: Option<String>,
    started_at: String,
    #[serde(default)]
    resolved_at: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    org_id: Option<String>,
}

/// A failure as JSON.
#[derive(Serialize)]
struct FailureRecordBody {
    failure_id: String,
    org_id: String,
    /// Opened by a failed deployment that no reported failure names.
    implicit: bool,
    /// The deployment it is attributed to (its record, and the deploy tool's id).
    lead_time_id: Option<String>,
    deployment_id: Option<String>,
    project_id: Option<String>,
    app_id: String,
    environment: String,
    prod: bool,
    started_at: String,
    resolved_at: Option<String>,
    /// From start to resolution; `null` while open.
    recovery_mins: Option<f64>,
    title: Option<String>,
    severity: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<Failure> for FailureRecordBody {
    fn from(f: Failure) -> Self {
        FailureRecordBody {
            recovery_mins: f.recovery_mins(),
            failure_id: f.failure_id.as_str().to_owned(),
            org_id: f.org_id.to_string(),
            implicit: f.implicit,
            lead_time_id: f.lead_time_id.map(|id| id.to_text()),
            deployment_id: f.deployment_id,
            project_id: f.project_id,
            app_id: f.app_id,
            environment: f.environment,
            prod: f.prod,
            started_at: f.started_at.to_rfc3339(),
            resolved_at: f.resolved_at.map(|t| t.to_rfc3339()),
            title: f.title,
            severity: f.severity,
            created_at: f.created_at.to_rfc3339(),
            updated_at: f.updated_at.to_rfc3339(),
        }
    }
}

fn location(failure: &Failure) -> String {
    format!("{BASE_PATH}/failures/{}", failure.failure_id.as_str())
}

pub(super) fn report(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let env = ctx.env;
    let body: FailureBody = ctx.request.json()?;
    let named = body
        .org_id
        .as_deref()
        .map(|o| OrgId::parse("org_id", o))
        .transpose()?;
    let org_id = ctx.act_for(ctx.request.named_org()?.or(named))?;
    let now = env.clock.now();
    let report = FailureReport::parse(
        FailureFields {
            failure_id: &body.failure_id,
            deployment_id: body.deployment_id.as_deref(),
            project_id: body.project_id.as_deref(),
            app_id: body.app_id.as_deref(),
            environment: body.environment.as_deref(),
            started_at: &body.started_at,
            resolved_at: body.resolved_at.as_deref(),
            title: body.title.as_deref(),
            severity: body.severity.as_deref(),
        },
        now,
    )?;
    ctx.whole_tables()?;
    let recorded = transaction(env.db, || store::report(env.db, &org_id, &report, now))?;
    respond(recorded, location, FailureRecordBody::from)
}

pub(super) fn get(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let org_id = ctx.acting_org()?;
    let failure_id = ctx.failure_id()?;
    let failure = store::find(ctx.env.db, &org_id, &failure_id)?.ok_or_else(|| {
        Error::not_found(format!("failure {} does not exist", failure_id.as_str()))
    })?;
    json_response(StatusCode::OK, &FailureRecordBody::from(failure))
}

pub(super) fn list(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let org_id = ctx.acting_org()?;
    let (limit, cursor) = ctx.request.page_request()?;
    let after = cursor
        .map(|c| c.parse::<i64>().map_err(|_| Error::bad_cursor()))
        .transpose()?;
    let page = store::list(ctx.env.db, &org_id, after, limit)?;
    json_response(
        StatusCode::OK,
        &PageBody::from_page(page, FailureRecordBody::from),
    )
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FailurePatch {
    #[serde(default, deserialize_with = "present")]
    resolved_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    title: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    severity: Option<Option<String>>,
}

/// `PATCH /api/v1/failures/{failure_id}`: `resolved_at` (or `null` to reopen), `title`,
/// `severity`.
pub(super) fn update(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let env = ctx.env;
    let org_id = ctx.acting_org()?;
    let failure_id = ctx.failure_id()?;
    let patch: FailurePatch = ctx.request.json()?;
    let now = env.clock.now();
    let resolved_at = patch
        .resolved_at
        .map(|r| r.map(|r| not_in_future("resolved_at", &r, now)).transpose())
        .transpose()?;
    let title = patch.title.as_ref().map(Option::as_deref);
    let severity = patch.severity.as_ref().map(Option::as_deref);
    if let Some(Some(title)) = title {
        crate::domain::check_text("title", title, 1000)?;
    }
    if let Some(Some(severity)) = severity {
        crate::domain::check_text("severity", severity, 63)?;
    }
    let updated = transaction(env.db, || {
        let failure = store::find(env.db, &org_id, &failure_id)?.ok_or_else(|| {
            Error::not_found(format!("failure {} does not exist", failure_id.as_str()))
        })?;
        store::update(env.db, failure, resolved_at, title, severity, now)
    })?;
    json_response(StatusCode::OK, &FailureRecordBody::from(updated))
}
