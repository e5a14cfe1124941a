//! HTTP: request decoding, response encoding and the route table of each component.
//!
//! Handlers are written against the `http` crate only; a component turns Spin's request into
//! `http::Request<Vec<u8>>`, calls one entry point here, and sends back what it returns. Every
//! failure becomes problem+json through `Error::into_response`, so no path panics or leaks.

mod channels;
mod deployments;
mod dora;
mod failures;
mod gitlab_dora;
mod health;
mod hooks;
mod images;
pub(crate) mod outbox;
mod push_payloads;
mod receivers;
mod registries;
pub(crate) mod routes;
mod settings;
mod subscriptions;
mod tokens;

use http::{HeaderMap, Method, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::{self, Caller, ReadableRegistry, WritableRegistry};
use crate::db::{Db, PatientDb};
use crate::domain::ids::{DeliveryId, LeadTimeId, ReceiverId, SubscriptionId, TokenId};
use crate::domain::{Channel, ImageId, OrgId, Recorded, RegistryId};
use crate::env::Env;
use crate::error::Error;
use crate::migrations;
use crate::store::Page;

use routes::{Access, Table};

/// The API's path prefix.
pub(crate) const BASE_PATH: &str = "/api/v1";

/// The default and largest page sizes of every list.
pub(crate) const DEFAULT_LIMIT: usize = 50;
pub(crate) const MAX_LIMIT: usize = 500;

/// A request as handlers see it: the path after `/api/v1`, decoded query, headers, body.
pub(crate) struct ApiRequest<'a> {
    pub(crate) method: &'a Method,
    /// `/registries/…`, without trailing slashes.
    pub(crate) path: &'a str,
    query: Vec<(String, String)>,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: &'a [u8],
}

impl<'a> ApiRequest<'a> {
    pub(crate) fn new(request: &'a http::Request<Vec<u8>>) -> Result<ApiRequest<'a>, Error> {
        let path = request.uri().path();
        let rest = path
            .strip_prefix(BASE_PATH)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .ok_or_else(|| Error::not_found(format!("no route for {path}")))?;
        // Spin matches `/x/` and `/x//` like `/x`, and `//x` like `/x`; so do we.
        let leading = rest.len() - rest.trim_start_matches('/').len();
        let path = rest[leading.saturating_sub(1)..].trim_end_matches('/');
        let query = form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Ok(ApiRequest {
            method: request.method(),
            path,
            query,
            headers: request.headers(),
            body: request.body(),
        })
    }

    /// A query parameter; repeating one is ambiguous, so it is a 400.
    pub(crate) fn query(&self, name: &str) -> Result<Option<&str>, Error> {
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

    /// Every value of a repeatable query parameter (`environment_tiers[]=a&environment_tiers[]=b`).
    pub(crate) fn query_all(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `org_id` from the query, for the bootstrap admin (org tokens may repeat their own).
    pub(crate) fn named_org(&self) -> Result<Option<OrgId>, Error> {
        self.query("org_id")?
            .map(|v| OrgId::parse("org_id", v))
            .transpose()
    }

    /// `limit` and `cursor` of a list request.
    pub(crate) fn page_request(&self) -> Result<(usize, Option<&str>), Error> {
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
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        self.require_json_content_type()?;
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::malformed("this request needs a JSON body"));
        }
        decode_json(self.body)
    }

    /// Decodes an optional JSON body: an empty body is `T::default()`.
    pub(crate) fn optional_json<T: DeserializeOwned + Default>(&self) -> Result<T, Error> {
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
pub(crate) fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
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
pub(crate) fn json_response<T: Serialize>(
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
pub(crate) fn created<T: Serialize>(
    location: String,
    body: &T,
) -> Result<Response<Vec<u8>>, Error> {
    let mut response = json_response(StatusCode::CREATED, body)?;
    let location =
        http::HeaderValue::try_from(location).map_err(|e| Error::storage(e.to_string()))?;
    response
        .headers_mut()
        .insert(http::header::LOCATION, location);
    Ok(response)
}

/// The answer to a write that may be a retry: 201 at the new record's location, or 200 with
/// the record the first request made.
pub(crate) fn respond<T, B: Serialize>(
    recorded: Recorded<T>,
    location: impl FnOnce(&T) -> String,
    body: impl FnOnce(T) -> B,
) -> Result<Response<Vec<u8>>, Error> {
    match recorded {
        Recorded::New(record) => created(location(&record), &body(record)),
        Recorded::Existing(record) => json_response(StatusCode::OK, &body(record)),
    }
}

pub(crate) fn no_content() -> Response<Vec<u8>> {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Vec::new())
        .expect("a 204 is always valid")
}

/// The JSON form of a page: `{"items": [...], "next_cursor": "..."|null}`.
#[derive(Serialize)]
pub(crate) struct PageBody<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

impl<T> PageBody<T> {
    pub(crate) fn from_page<D>(page: Page<D>, convert: impl Fn(D) -> T) -> PageBody<T> {
        PageBody {
            items: page.items.into_iter().map(convert).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

/// What a handler is given: the request, who sent it, what it needs, and the route's access.
pub(crate) struct Context<'a> {
    pub(crate) request: &'a ApiRequest<'a>,
    pub(crate) caller: &'a Caller,
    pub(crate) env: &'a Env<'a>,
    access: Access,
    params: Vec<(&'static str, std::borrow::Cow<'a, str>)>,
    /// What the schema read said is pending (`migrations::Schema`).
    schema: migrations::Schema,
    /// Whether this request's connection was asked to map the database file: once is enough
    /// for a summary that reads its two periods apart.
    mapped: std::cell::Cell<bool>,
}

impl<'a> Context<'a> {
    /// Whether the daily lead-time rollup holds every record (no back-fill pending).
    pub(crate) fn rollup_complete(&self) -> bool {
        !self.schema.rollup_pending
    }

    /// Whether every commit lead time is counted: false while the head commits of records
    /// from before migration 0011 are (`store::commit_lead_times`).
    pub(crate) fn head_commits_counted(&self) -> bool {
        !self.schema.head_commits_pending
    }

    /// While migration 0007's copy is under way, copies the rows a lookup by key is about to
    /// read (`store::reencode`); nothing otherwise.
    pub(crate) fn copy_first(
        &self,
        copy: impl FnOnce(&dyn crate::db::Db) -> Result<(), Error>,
    ) -> Result<(), Error> {
        if self.schema.copying {
            copy(self.env.db)
        } else {
            Ok(())
        }
    }

    /// How a DORA read of `range` for `filter` reads: after finishing any copy under way
    /// ([`Context::whole_tables`]) and letting the connection map the database file for the
    /// rollups' pages (`db::map_for_reading`).
    pub(crate) fn dora_plan(
        &self,
        range: &crate::domain::dora::TimeRange,
        filter: &crate::store::deployments::DoraFilter,
    ) -> Result<crate::domain::dora::ReadPlan, Error> {
        if !self.mapped.replace(true) {
            crate::db::map_for_reading(self.env.db);
        }
        self.whole_tables()?;
        Ok(crate::store::dora::plan(
            self.rollup_complete(),
            range,
            filter,
        ))
    }

    /// For a read of whole tables: finishes migration 0007's copy if it is under way, or
    /// fails with a 503 to retry.
    pub(crate) fn whole_tables(&self) -> Result<(), Error> {
        if self.schema.copying {
            crate::store::reencode::finish_copy(self.env.db, self.env.clock)
        } else {
            Ok(())
        }
    }

    /// A path parameter of the route's pattern (the table names it, so it is there).
    fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(key, _)| *key == name)
            .map_or("", |(_, value)| value)
    }

    pub(crate) fn registry_id(&self) -> Result<RegistryId, Error> {
        RegistryId::parse("registry_id", self.param("registry_id"))
    }

    pub(crate) fn channel(&self) -> Result<Channel, Error> {
        Channel::parse(self.param("channel"))
    }

    pub(crate) fn image_id(&self) -> Result<ImageId, Error> {
        ImageId::parse("image_id", self.param("image_id"))
    }

    pub(crate) fn receiver_id(&self) -> Result<ReceiverId, Error> {
        ReceiverId::parse("receiver_id", self.param("receiver_id"))
    }

    pub(crate) fn subscription_id(&self) -> Result<SubscriptionId, Error> {
        SubscriptionId::parse("subscription_id", self.param("subscription_id"))
    }

    pub(crate) fn delivery_id(&self) -> Result<DeliveryId, Error> {
        DeliveryId::parse("delivery_id", self.param("delivery_id"))
    }

    /// A path parameter that may be absent from the matched pattern (`""` then).
    pub(crate) fn optional_param(&self, name: &str) -> Option<&str> {
        Some(self.param(name)).filter(|v| !v.is_empty())
    }

    /// `scheme://host[:port]` the client called, for URLs we hand out: from Spin's
    /// `spin-full-url` (the server's scheme and the request's `Host`); empty without it, so a
    /// URL is then a path on this server.
    pub(crate) fn origin(&self) -> String {
        let full = self
            .request
            .headers
            .get("spin-full-url")
            .and_then(|v| v.to_str().ok())
            .and_then(|url| url.parse::<http::Uri>().ok());
        match full
            .as_ref()
            .and_then(|u| Some((u.scheme_str()?, u.authority()?)))
        {
            Some((scheme, authority)) => format!("{scheme}://{authority}"),
            None => String::new(),
        }
    }

    pub(crate) fn token_id(&self) -> Result<TokenId, Error> {
        TokenId::parse("token_id", self.param("token_id"))
    }

    pub(crate) fn lead_time_id(&self) -> Result<LeadTimeId, Error> {
        LeadTimeId::parse("lead_time_id", self.param("lead_time_id"))
    }

    /// A failure id in the path; one that cannot be an id names no failure.
    pub(crate) fn failure_id(&self) -> Result<crate::domain::failure::FailureId, Error> {
        let value = self.param("failure_id");
        crate::domain::failure::FailureId::parse("failure_id", value)
            .map_err(|_| Error::not_found(format!("failure {value} does not exist")))
    }

    /// The org this request acts for, named by the query's `org_id` (the bootstrap admin
    /// must name one), with the role the route needs.
    pub(crate) fn acting_org(&self) -> Result<OrgId, Error> {
        self.act_for(self.request.named_org()?)
    }

    /// The org this request acts for, named as the handler found it (query or body).
    pub(crate) fn act_for(&self, named: Option<OrgId>) -> Result<OrgId, Error> {
        self.caller.act_for(named, self.access.role())
    }

    /// A registry whose rows the caller may read: public ones for anyone, the org's own for
    /// its tokens.
    pub(crate) fn readable_registry(
        &self,
        registry_id: RegistryId,
    ) -> Result<ReadableRegistry, Error> {
        // An anonymous caller names no org: a bad `org_id` is not its problem.
        let named = match self.caller {
            Caller::Anonymous => None,
            _ => self.request.named_org()?,
        };
        auth::readable_registry(self.env.db, self.caller, named, registry_id)
    }

    /// A live registry of the acting org, for a write with the route's role.
    pub(crate) fn writable_registry(
        &self,
        registry_id: RegistryId,
    ) -> Result<WritableRegistry, Error> {
        self.writable_registry_of(self.request.named_org()?, registry_id)
    }

    /// [`Context::writable_registry`] for a request that may also name its org in its body
    /// (`org_id` of a deployment): the org it named.
    pub(crate) fn writable_registry_of(
        &self,
        named_org: Option<OrgId>,
        registry_id: RegistryId,
    ) -> Result<WritableRegistry, Error> {
        auth::writable_registry(
            self.env.db,
            self.caller,
            named_org,
            self.access.role(),
            registry_id,
        )
    }
}

/// What every entry point does around its route table: enforce the body limit, bring the
/// schema up to date, authenticate, route, and turn any error into problem+json. The response
/// carries what the component does after sending it ([`crate::AfterResponse`]).
pub(crate) fn serve(
    request: &http::Request<Vec<u8>>,
    env: &Env<'_>,
    tables: &[&'static Table],
) -> Response<Vec<u8>> {
    let mut backfilling = false;
    let mut deliveries = false;
    let mut backend = crate::db::Backend::File;
    let outcome = (|| {
        if request.body().len() > env.config.max_body_bytes {
            return Err(Error::PayloadTooLarge {
                limit: env.config.max_body_bytes,
            });
        }
        let api_request = ApiRequest::new(request)?;
        let db = PatientDb::open(env.db, env.clock)?;
        backend = Db::backend(&db);
        let env = &Env {
            db: &db,
            config: env.config.clone(),
            ..*env
        };
        let schema = migrations::ensure_schema(env.db)?;
        backfilling = schema.backfilling;
        // Deliveries wait in the outbox, or this write may have queued some.
        deliveries =
            schema.deliveries_pending || (schema.subscribed && !request.method().is_safe());
        let known = migrations::latest_version();
        if schema.found > known && !request.method().is_safe() {
            return Err(Error::OutdatedInstance {
                schema: schema.found,
                known,
            });
        }
        let table = routes::table_of(tables, api_request.path);
        let matched = table.find(api_request.method, api_request.path);
        // A registry's push proves itself with its receiver's secret (`hooks`), and may carry
        // an `Authorization` that is that secret, not one of our tokens. Elsewhere credentials
        // are checked before the route (a 401 before a 404 or 405).
        let caller = match &matched {
            Ok(route) if route.access == Access::Sender => Caller::Anonymous,
            _ => auth::authenticate(api_request.headers, env)?,
        };
        let matched = matched?;
        // The one access a handler cannot check through the acting org.
        if matched.access == Access::BootstrapAdmin {
            caller.require_bootstrap_admin()?;
        }
        let context = Context {
            request: &api_request,
            caller: &caller,
            env,
            access: matched.access,
            params: matched.params,
            schema,
            mapped: std::cell::Cell::new(false),
        };
        (matched.handler)(&context)
    })();
    let mut response = outcome.unwrap_or_else(Error::into_response);
    response.extensions_mut().insert(crate::AfterResponse {
        checkpoint: !request.method().is_safe(),
        backend,
        backfill: backfilling,
        deliveries,
    });
    response
}
