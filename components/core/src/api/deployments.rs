//! Deployments, the lead-time component's write: `POST /api/v1/deployments` (an image reached
//! an app environment), `GET /api/v1/deployments/{lead_time_id}` (one read back) and
//! `PATCH /api/v1/deployments/{lead_time_id}` (its outcome found later: failed, or rework).
//!
//! Recording upserts the environment and app environment, adds the deployment to the daily
//! rollup, and applies its outcome (a rollback marks the deployment it replaced failed; a
//! succeeded deployment resolves the implicit failures before it), in one transaction.
//! Idempotent: the same `deployment_id`, or the image already running in the app
//! environment, answers 200 with the first record.

use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::db::transaction;
use crate::domain::deployment::{
    Deployment, DeploymentFields, DeploymentKind, DeploymentStatus, LeadTimeRecord,
};
use crate::domain::dora::TimeRange;
use crate::domain::receiver::Digest;
use crate::domain::{ImageId, OrgId, RegistryId};
use crate::error::Error;
use crate::store::deployments as store;
use crate::store::reencode;

use super::{BASE_PATH, Context, json_response, respond};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeploymentBody {
    /// The image deployed; or, for a deploy tool that knows only what it pulled, `digest`
    /// with the `registry_id` it was pushed to.
    #[serde(default)]
    image_id: Option<String>,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    registry_id: Option<String>,
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
    started_at: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    fixes_failure_id: Option<String>,
    #[serde(default)]
    org_id: Option<String>,
}

/// A lead-time record as JSON (the POST answer).
#[derive(Serialize)]
pub(crate) struct DeploymentRecordBody {
    lead_time_id: String,
    org_id: String,
    image_id: String,
    /// The image's registry: with `image_id`, where the image's own page is.
    registry_id: String,
    deployment_id: Option<String>,
    project_id: Option<String>,
    app_id: String,
    environment: String,
    prod: bool,
    git_hash: Option<String>,
    git_hash_commit_timestamp: Option<String>,
    image_name_with_tag: String,
    created_at: String,
    duration_mins: Option<f64>,
    /// The commit is later than the deployment: excluded from lead-time figures.
    clock_skew: bool,
    recorded_at: String,
    status: &'static str,
    kind: &'static str,
    started_at: Option<String>,
    fixes_failure_id: Option<String>,
    /// A rollback: the deployment it replaced, marked failed.
    rollback_of: Option<String>,
}

impl From<LeadTimeRecord> for DeploymentRecordBody {
    fn from(r: LeadTimeRecord) -> Self {
        DeploymentRecordBody {
            lead_time_id: r.lead_time_id.to_text(),
            org_id: r.org_id.to_string(),
            image_id: r.image_id.to_text(),
            registry_id: r.registry_id.to_text(),
            deployment_id: r.deployment_id,
            project_id: r.project_id,
            app_id: r.app_id,
            environment: r.environment,
            prod: r.prod,
            git_hash: r.git_hash,
            git_hash_commit_timestamp: r.git_hash_commit_timestamp.map(|t| t.to_rfc3339()),
            image_name_with_tag: r.image_name_with_tag,
            created_at: r.created_at.to_rfc3339(),
            duration_mins: r.duration_mins,
            clock_skew: r.duration_mins.is_some_and(|d| d < 0.0),
            recorded_at: r.recorded_at.to_rfc3339(),
            status: r.status.as_str(),
            kind: r.kind.as_str(),
            started_at: r.started_at.map(|t| t.to_rfc3339()),
            fixes_failure_id: r.fixes_failure_id.map(|f| f.as_str().to_owned()),
            rollback_of: r.rollback_of.map(|id| id.to_text()),
        }
    }
}

pub(super) fn record(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let env = ctx.env;
    let body: DeploymentBody = ctx.request.json()?;
    let named = body
        .org_id
        .as_deref()
        .map(|o| OrgId::parse("org_id", o))
        .transpose()?;
    let named = ctx.request.named_org()?.or(named);
    let org_id = ctx.act_for(named.clone())?;
    let now = env.clock.now();
    let image_id = deployed_image(ctx, &body, named)?;
    let deployment = Deployment::parse(
        DeploymentFields {
            image_id: &image_id,
            project_id: body.project_id.as_deref(),
            app_id: &body.app_id,
            environment: &body.environment,
            prod: body.prod,
            deployment_id: body.deployment_id.as_deref(),
            deployed_at: body.deployed_at.as_deref(),
            started_at: body.started_at.as_deref(),
            status: body.status.as_deref(),
            kind: body.kind.as_deref(),
            fixes_failure_id: body.fixes_failure_id.as_deref(),
        },
        now,
    )?;
    ctx.copy_first(|db| {
        reencode::copy_image_with_records(db, deployment.image_id)?;
        match &deployment.deployment_id {
            Some(deployment_id) => reencode::copy_record_of_deployment(db, &org_id, deployment_id),
            None => Ok(()),
        }
    })?;
    let recorded = transaction(env.db, || {
        store::record(env.db, &org_id, &deployment, env.ids, now)
    })?;
    respond(recorded, location, DeploymentRecordBody::from)
}

/// The image a deployment names: its `image_id`, or the newest image of `registry_id` its
/// registry stored as `digest` (a receiver attached it).
fn deployed_image(
    ctx: &Context<'_>,
    body: &DeploymentBody,
    named_org: Option<OrgId>,
) -> Result<String, Error> {
    match (&body.image_id, &body.digest, &body.registry_id) {
        (Some(image_id), None, None) => Ok(image_id.clone()),
        (None, Some(digest), Some(registry_id)) => {
            let digest = Digest::parse("digest", digest)?;
            let registry_id = RegistryId::parse("registry_id", registry_id)
                .map_err(|_| Error::invalid("registry_id", "must be a UUID of a registry"))?;
            let registry = ctx.writable_registry_of(named_org, registry_id)?;
            // A retry of a deployment recorded by digest names the image it resolved to then,
            // even if the digest has since been attached to a newer image (a re-tag).
            if let Some(deployment_id) = &body.deployment_id {
                let org_id = &registry.registry().org_id;
                if let Some(record) =
                    store::find_by_deployment_id(ctx.env.db, org_id, deployment_id)?
                    && let Some(image) =
                        crate::store::images::find_in_org(ctx.env.db, record.image_id, org_id)?
                    && image.registry_id == registry_id
                    && image.push.as_ref().and_then(|p| p.digest.as_ref()) == Some(&digest)
                {
                    return Ok(record.image_id.to_text());
                }
            }
            let image_id =
                crate::store::images::newest_with_digest(ctx.env.db, registry.readable(), &digest)?
                    .ok_or_else(|| {
                        Error::invalid(
                            "digest",
                            format!(
                                "no image of registry {registry_id} was pushed as {} (a push \
                                 receiver attaches digests)",
                                digest.as_str()
                            ),
                        )
                    })?;
            Ok(image_id.to_text())
        }
        (None, None, None) => Err(Error::invalid(
            "image_id",
            "a deployment names its image_id, or its digest with the registry_id",
        )),
        (Some(_), _, _) => Err(Error::invalid(
            "digest",
            "name the image by image_id or by digest and registry_id, not both",
        )),
        (None, Some(_), None) => Err(Error::invalid(
            "registry_id",
            "a digest names an image only with the registry_id it was pushed to",
        )),
        (None, None, Some(_)) => Err(Error::invalid(
            "digest",
            "a registry_id names an image only with its digest",
        )),
    }
}

fn location(record: &LeadTimeRecord) -> String {
    format!("{BASE_PATH}/deployments/{}", record.lead_time_id)
}

/// `GET /api/v1/deployments`: the org's deployments, newest deployed first, failed ones and
/// those without a lead time too: optionally from `start` to `end` (each alone too), where
/// (`project_id`, `app_id`, `environment`, `prod`, as the DORA queries), of one `image_id`;
/// paged by `limit` and `cursor`. What a deployment timeline or an image's "where deployed"
/// reads.
pub(super) fn list(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    ctx.whole_tables()?;
    let org_id = ctx.acting_org()?;
    let request = ctx.request;
    let range = TimeRange::parse_open(request.query("start")?, request.query("end")?)?;
    let filter = super::dora::site_filter(request)?;
    let image_id = request
        .query("image_id")?
        .map(|value| ImageId::parse("image_id", value))
        .transpose()
        .map_err(|e| Error::malformed_field("image_id", e.problem().detail))?;
    let (limit, cursor) = request.page_request()?;
    // `{created_at}~{lead_time_id}`: a commit's `~{sha}` names no deployment.
    let after = match cursor.map(super::dora::parse_values_cursor).transpose()? {
        Some((_, _, Some(_))) => return Err(Error::bad_cursor()),
        Some((created_at, id, None)) => Some((created_at, id)),
        None => None,
    };
    let page = store::list(ctx.env.db, &org_id, &range, &filter, image_id, after, limit)?;
    json_response(
        StatusCode::OK,
        &super::PageBody::from_page(page, DeploymentRecordBody::from),
    )
}

/// `GET /api/v1/deployments/{lead_time_id}`: one recorded deployment (the `Location` of a 201).
pub(super) fn get(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let org_id = ctx.acting_org()?;
    let lead_time_id = ctx.lead_time_id()?;
    ctx.copy_first(|db| reencode::copy_record(db, lead_time_id))?;
    let record = store::find(ctx.env.db, &org_id, lead_time_id)?
        .ok_or_else(|| Error::not_found(format!("deployment {lead_time_id} does not exist")))?;
    json_response(StatusCode::OK, &DeploymentRecordBody::from(record))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DeploymentPatch {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    kind: Option<String>,
}

/// `PATCH /api/v1/deployments/{lead_time_id}`: `status` (a bad change found after rollout is
/// `failed`; back to `succeeded` if that was wrong) and `kind`. The lead time stays as
/// recorded; the change failure and rework figures follow at once.
pub(super) fn update(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let env = ctx.env;
    let org_id = ctx.acting_org()?;
    let lead_time_id = ctx.lead_time_id()?;
    let patch: DeploymentPatch = ctx.request.json()?;
    let status = patch
        .status
        .as_deref()
        .map(|s| DeploymentStatus::parse("status", s))
        .transpose()?;
    let kind = patch
        .kind
        .as_deref()
        .map(|k| DeploymentKind::parse("kind", k))
        .transpose()?;
    // What ran in the app environment decides an implicit failure's resolution: every record
    // must be in the new encoding first.
    ctx.whole_tables()?;
    let now = env.clock.now();
    let updated = transaction(env.db, || {
        let record = store::find(env.db, &org_id, lead_time_id)?
            .ok_or_else(|| Error::not_found(format!("deployment {lead_time_id} does not exist")))?;
        store::set_outcome(env.db, &record, status, kind, now)
    })?;
    json_response(StatusCode::OK, &DeploymentRecordBody::from(updated))
}
