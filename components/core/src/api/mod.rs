//! HTTP: request decoding, response encoding and the route table of each component.
//!
//! Handlers are written against the `http` crate only; a component turns Spin's request into
//! `http::Request<Vec<u8>>`, calls one entry point here, and sends back what it returns. Every
//! failure becomes problem+json through `Error::into_response`, so no path panics or leaks.

pub mod health;
pub mod images;
pub mod lead_time;
pub mod registries;
pub mod tokens;
pub mod versions;

use http::{HeaderMap, Method, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::{self, Caller};
use crate::db::PatientDb;
use crate::domain::OrgId;
use crate::env::Env;
use crate::error::Error;
use crate::migrations;
use crate::store::Page;

/// The API's path prefix.
pub const BASE_PATH: &str = "/api/v1";

/// The default and largest page sizes of every list.
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

/// A request as handlers see it: path segments after `/api/v1`, decoded query, headers, body.
pub struct ApiRequest<'a> {
    pub method: &'a Method,
    pub segments: Vec<&'a str>,
    query: Vec<(String, String)>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl<'a> ApiRequest<'a> {
    pub fn new(request: &'a http::Request<Vec<u8>>) -> Result<ApiRequest<'a>, Error> {
        let path = request.uri().path();
        let rest = path
            .strip_prefix(BASE_PATH)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .ok_or_else(|| Error::not_found(format!("no route for {path}")))?;
        // Spin matches `/x/` and `/x//` like `/x`; so do we.
        let segments = rest.trim_start_matches('/').trim_end_matches('/');
        let segments = if segments.is_empty() {
            Vec::new()
        } else {
            segments.split('/').collect()
        };
        let query = form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Ok(ApiRequest {
            method: request.method(),
            segments,
            query,
            headers: request.headers(),
            body: request.body(),
        })
    }

    /// A query parameter; repeating one is ambiguous, so it is a 400.
    pub fn query(&self, name: &str) -> Result<Option<&str>, Error> {
        let mut values = self
            .query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(Error::malformed_field(
                name,
                format!("query parameter {name} is given more than once"),
            ));
        }
        Ok(first)
    }

    /// `org_id` from the query, for the bootstrap admin (org tokens may repeat their own).
    pub fn named_org(&self) -> Result<Option<OrgId>, Error> {
        self.query("org_id")?
            .map(|v| OrgId::parse("org_id", v))
            .transpose()
    }

    /// `limit` and `cursor` of a list request.
    pub fn page_request(&self) -> Result<(usize, Option<&str>), Error> {
        let limit = match self.query("limit")? {
            None => DEFAULT_LIMIT,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| {
                    Error::malformed_field(
                        "limit",
                        format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
                    )
                })?,
        };
        let cursor = self.query("cursor")?.filter(|c| !c.is_empty());
        Ok((limit, cursor))
    }

    /// Decodes a required JSON body.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        self.require_json_content_type()?;
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::malformed("this request needs a JSON body"));
        }
        decode_json(self.body)
    }

    /// Decodes an optional JSON body: an empty body is `T::default()`.
    pub fn optional_json<T: DeserializeOwned + Default>(&self) -> Result<T, Error> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(T::default());
        }
        self.require_json_content_type()?;
        decode_json(self.body)
    }

    fn require_json_content_type(&self) -> Result<(), Error> {
        let content_type = self
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"))
        {
            Ok(())
        } else {
            Err(Error::UnsupportedMediaType)
        }
    }
}

/// Decodes JSON into `T`. Syntax errors are 400; a wrong type, a missing or an unknown field
/// is 422 naming the field (unknown fields are refused: a typo in a pipeline should fail
/// loudly, not be ignored).
pub fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    // serde would read a struct from a JSON array by position; a body is always an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Ok(_) => Err(Error::invalid("body", "must be a JSON object")),
            Err(e) => Err(Error::malformed(format!("the body is not valid JSON: {e}"))),
        };
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = inner.to_string();
                let message = message
                    .split(" at line ")
                    .next()
                    .unwrap_or(&message)
                    .to_owned();
                // serde names missing and unknown fields in backticks; others by the path.
                let named = message.split('`').nth(1).filter(|_| {
                    message.starts_with("missing field") || message.starts_with("unknown field")
                });
                let field = match (named, path.as_str()) {
                    (Some(name), "." | "") => name.to_owned(),
                    (Some(name), parent) if message.starts_with("missing field") => {
                        format!("{parent}.{name}")
                    }
                    (_, "." | "") => "body".to_owned(),
                    (_, path) => path.to_owned(),
                };
                Error::invalid(field, message)
            }
            _ => Error::malformed(format!("the body is not valid JSON: {inner}")),
        }
    })?;
    // Trailing garbage after the value.
    deserializer
        .end()
        .map_err(|e| Error::malformed(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// For `Option<Option<T>>` fields: tells `"field": null` (`Some(None)`, clear it) from an
/// absent field (`None`, leave it).
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// A JSON response.
pub fn json_response<T: Serialize>(
    status: StatusCode,
    body: &T,
) -> Result<Response<Vec<u8>>, Error> {
    let body = serde_json::to_vec(body)
        .map_err(|e| Error::storage(format!("response encoding failed: {e}")))?;
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(|e| Error::storage(format!("response building failed: {e}")))
}

/// A JSON response for a newly created resource at `location`.
pub fn created<T: Serialize>(location: String, body: &T) -> Result<Response<Vec<u8>>, Error> {
    let mut response = json_response(StatusCode::CREATED, body)?;
    let location =
        http::HeaderValue::try_from(location).map_err(|e| Error::storage(e.to_string()))?;
    response
        .headers_mut()
        .insert(http::header::LOCATION, location);
    Ok(response)
}

pub fn no_content() -> Response<Vec<u8>> {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Vec::new())
        .expect("a 204 is always valid")
}

/// The JSON form of a page: `{"items": [...], "next_cursor": "..."|null}`.
#[derive(Serialize)]
pub struct PageBody<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> PageBody<T> {
    pub fn from_page<D>(page: Page<D>, convert: impl Fn(D) -> T) -> PageBody<T> {
        PageBody {
            items: page.items.into_iter().map(convert).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

/// `Err(405)` listing the allowed methods.
pub fn method_not_allowed<T>(allowed: &'static str) -> Result<T, Error> {
    Err(Error::MethodNotAllowed { allowed })
}

/// What every entry point does around its route table: enforce the body limit, bring the
/// schema up to date, authenticate, route, and turn any error into problem+json.
pub fn serve(
    request: &http::Request<Vec<u8>>,
    env: &Env<'_>,
    routes: impl FnOnce(&ApiRequest<'_>, &Caller, &Env<'_>) -> Result<Response<Vec<u8>>, Error>,
) -> Response<Vec<u8>> {
    let outcome = (|| {
        if request.body().len() > env.config.max_body_bytes {
            return Err(Error::PayloadTooLarge {
                limit: env.config.max_body_bytes,
            });
        }
        let api_request = ApiRequest::new(request)?;
        let db = PatientDb::open(env.db, env.clock)?;
        let env = &Env {
            db: &db,
            config: env.config.clone(),
            ..*env
        };
        let schema = migrations::ensure_schema(env.db)?;
        let known = migrations::latest_version();
        if schema > known && !request.method().is_safe() {
            return Err(Error::OutdatedInstance { schema, known });
        }
        let caller = auth::authenticate(api_request.headers, env)?;
        routes(&api_request, &caller, env)
    })();
    outcome.unwrap_or_else(Error::into_response)
}

/// 404 for a path no route of this component knows.
pub fn no_route<T>(request: &ApiRequest<'_>) -> Result<T, Error> {
    Err(Error::not_found(format!(
        "no route for {BASE_PATH}/{}",
        request.segments.join("/")
    )))
}
