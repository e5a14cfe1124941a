//! The dashboard's reads, through the API's own handlers, in-process.
//!
//! Every figure a page shows is what `GET /api/v1/…` answers for the same query, because it
//! *is* that answer: the request is built here with the signed-in token as its bearer and
//! served by [`cd_core::handle_api_request`], the route tables and handlers the API
//! components serve. There is no second implementation of a figure to drift.

use cd_core::Env;
use serde_json::Value;

/// A read the API refused or failed: its status and its problem's detail, shown on the page.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiFailure {
    pub(crate) status: u16,
    pub(crate) detail: String,
}

impl ApiFailure {
    /// The token is missing, unknown or revoked: the page asks to sign in.
    pub(crate) fn needs_sign_in(&self) -> bool {
        self.status == 401
    }
}

/// The API as the signed-in caller (or an anonymous one) sees it.
pub(crate) struct Api<'a> {
    env: &'a Env<'a>,
    token: Option<&'a str>,
    /// The org a bootstrap admin acts for (the page's `?org_id=`), passed on to every read.
    org_id: Option<&'a str>,
}

impl<'a> Api<'a> {
    pub(crate) fn new(env: &'a Env<'a>, token: Option<&'a str>) -> Api<'a> {
        Api {
            env,
            token,
            org_id: None,
        }
    }

    /// Every read acts for `org_id` (the bootstrap admin's way of naming an org).
    pub(crate) fn acting_for(mut self, org_id: Option<&'a str>) -> Api<'a> {
        self.org_id = org_id.filter(|org| !org.is_empty());
        self
    }

    pub(crate) fn signed_in(&self) -> bool {
        self.token.is_some()
    }

    /// `GET /api/v1{path_and_query}`; the JSON of a 200, or the failure.
    pub(crate) fn get(&self, path_and_query: &str) -> Result<Value, ApiFailure> {
        let mut uri = format!("/api/v1{path_and_query}");
        if let Some(org_id) = self.org_id {
            let separator = if uri.contains('?') { '&' } else { '?' };
            uri.push_str(&format!("{separator}org_id={}", segment(org_id)));
        }
        let mut request = http::Request::builder().method(http::Method::GET).uri(uri);
        if let Some(token) = self.token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(Vec::new()).map_err(|e| ApiFailure {
            status: 400,
            detail: format!("not a request: {e}"),
        })?;
        let response = cd_core::handle_api_request(&request, self.env);
        let status = response.status().as_u16();
        let body: Value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
        if status == 200 {
            Ok(body)
        } else {
            let detail = body["detail"]
                .as_str()
                .or(body["title"].as_str())
                .unwrap_or("the API answered without a problem document")
                .to_owned();
            Err(ApiFailure { status, detail })
        }
    }
}

/// The value of `name` among a query's or a form's decoded pairs (the first, if repeated).
pub(crate) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A query string from pairs, each value percent-encoded; empty values are left out.
pub(crate) fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            serializer.append_pair(name, value);
        }
    }
    let query = serializer.finish();
    if query.is_empty() {
        query
    } else {
        format!("?{query}")
    }
}

/// A path segment, percent-encoded (ids come from links a page made, but a hand-typed URL
/// must not reach another route).
pub(crate) fn segment(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
