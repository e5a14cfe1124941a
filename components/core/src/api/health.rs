//! `GET /api/v1/health/<component>`: the component runs and its database answers.

use http::{Method, Response, StatusCode};
use serde::Serialize;

use crate::error::Error;
use crate::migrations;

use super::{ApiRequest, json_response, method_not_allowed};

#[derive(Serialize)]
struct HealthBody<'a> {
    status: &'static str,
    component: &'a str,
    schema_version: i64,
}

/// Answers the health route of `component`. The schema was ensured before routing, so
/// reaching here means the database is readable and current.
pub fn health(request: &ApiRequest<'_>, component: &str) -> Result<Response<Vec<u8>>, Error> {
    if request.method != Method::GET {
        return method_not_allowed("GET");
    }
    json_response(
        StatusCode::OK,
        &HealthBody {
            status: "ok",
            component,
            schema_version: migrations::latest_version(),
        },
    )
}
