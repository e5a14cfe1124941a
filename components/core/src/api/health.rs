//! `GET /api/v1/health/<component>`: the component runs and its database answers.

use http::{Response, StatusCode};
use serde::Serialize;

use crate::error::Error;
use crate::migrations;

use super::{Context, json_response};

#[derive(Serialize)]
struct HealthBody<'a> {
    status: &'static str,
    component: &'a str,
    schema_version: i64,
}

pub(super) fn registry(_: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    health("registry")
}

pub(super) fn images(_: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    health("images")
}

pub(super) fn lead_time(_: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    health("lead-time")
}

/// Answers the health route of `component`. The schema was ensured before routing, so
/// reaching here means the database is readable and current.
fn health(component: &str) -> Result<Response<Vec<u8>>, Error> {
    json_response(
        StatusCode::OK,
        &HealthBody {
            status: "ok",
            component,
            schema_version: migrations::latest_version(),
        },
    )
}
