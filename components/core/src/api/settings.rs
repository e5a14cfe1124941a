//! `GET` and `PUT /api/v1/settings` (admin): the org's lead-time exclusions
//! (`excluded_authors`, author-name patterns such as `*[bot]`) and default `benchmark`.
//! Exclusions apply to every lead-time figure at once, past deployments included; the
//! deployments still count as deployments.

use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::db::transaction;
use crate::domain::settings::{AuthorPattern, Settings};
use crate::domain::{OrgId, Timestamp};
use crate::error::Error;
use crate::store::settings as store;

use super::{Context, json_response};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    excluded_authors: Vec<String>,
    #[serde(default)]
    benchmark: Option<String>,
}

#[derive(Serialize)]
struct SettingsAnswer {
    org_id: String,
    excluded_authors: Vec<String>,
    benchmark: &'static str,
    /// `null` until the org sets them.
    updated_at: Option<String>,
}

fn answer(
    org_id: &OrgId,
    settings: Settings,
    updated_at: Option<Timestamp>,
) -> Result<Response<Vec<u8>>, Error> {
    json_response(
        StatusCode::OK,
        &SettingsAnswer {
            org_id: org_id.to_string(),
            excluded_authors: settings
                .excluded_authors
                .iter()
                .map(|p| AuthorPattern::as_str(p).to_owned())
                .collect(),
            benchmark: settings.benchmark.as_str(),
            updated_at: updated_at.map(|t| t.to_rfc3339()),
        },
    )
}

pub(super) fn get(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let org_id = ctx.acting_org()?;
    let (settings, updated_at) = store::find(ctx.env.db, &org_id)?;
    answer(&org_id, settings, updated_at)
}

pub(super) fn put(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let env = ctx.env;
    let org_id = ctx.acting_org()?;
    let body: SettingsBody = ctx.request.json()?;
    let settings = Settings::parse(&body.excluded_authors, body.benchmark.as_deref())?;
    let now = env.clock.now();
    transaction(env.db, || store::put(env.db, &org_id, &settings, now))?;
    answer(&org_id, settings, Some(now))
}
