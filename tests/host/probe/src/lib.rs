//! `cd-probe`: a spin-sdk 5.2 HTTP component that reports what its host gives it, so the test
//! host's own tests can compare the host with Spin's contract. See `tests/host/probe/README.md`.
//!
//! It uses the native wasi-http handler form (`IncomingRequest`, `ResponseOutparam`) so it can
//! also misbehave on purpose: a path ending in `/trap` panics, one ending in `/no-response`
//! returns without setting a response. A path ending in `/outbound` makes the outgoing request
//! its body describes (module [`outbound`]).

use serde_json::{Map, Value as Json, json};
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};
use std::sync::atomic::{AtomicU64, Ordering};

/// Requests this instance has served: always 1 when every request gets a fresh instance.
static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// The wasi:http export. `#[http_component]` expands to `unsafe` FFI glue: allowed here only.
#[allow(unsafe_code)]
mod export {
    use spin_sdk::http::{IncomingRequest, ResponseOutparam};

    #[spin_sdk::http_component]
    async fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        super::handle(request, response_out).await
    }
}

async fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    let counter = REQUESTS.fetch_add(1, Ordering::SeqCst) + 1;
    let path_with_query = request.path_with_query().unwrap_or_default();
    let path = path_with_query
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();
    if path.ends_with("/trap") {
        panic!("cd-probe: trap requested");
    }
    if path.ends_with("/no-response") {
        println!("cd-probe: returning without a response");
        return;
    }

    let mut headers = Map::new();
    for (name, value) in request.headers().entries() {
        let values = headers.entry(name).or_insert_with(|| json!([]));
        if let Json::Array(values) = values {
            values.push(json!(String::from_utf8_lossy(&value)));
        }
    }
    let mut report = json!({
        "method": request.method().to_string(),
        "path_with_query": path_with_query,
        "headers": headers,
        "counter": counter,
        "env": std::env::vars().map(|(k, v)| (k, json!(v))).collect::<Map<String, Json>>(),
        "component": read_variable("component_id"),
    });
    if let Some(name) = query_param(&path_with_query, "var") {
        report["var"] = read_variable(&name);
    }

    let body = match request.into_body().await {
        Ok(body) => body,
        Err(error) => {
            return respond(response_out, 500, json!({"body_error": error.to_string()})).await;
        }
    };
    if !body.is_empty() {
        match serde_json::from_slice::<Json>(&body) {
            Ok(spec) if path.ends_with("/outbound") => {
                report["outbound"] = outbound::send(&spec).await;
            }
            Ok(sql) => report["sql"] = run_sql(&sql),
            Err(error) => report["body_error"] = json!(error.to_string()),
        }
    }
    respond(response_out, 200, report).await;
}

async fn respond(response_out: ResponseOutparam, status: u16, body: Json) {
    let headers = Fields::from_list(&[("content-type".to_string(), b"application/json".to_vec())])
        .expect("valid headers");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("valid status");
    if let Err(error) = response_out
        .set_with_body(response, body.to_string().into_bytes())
        .await
    {
        eprintln!("cd-probe: cannot write the response: {error}");
    }
}

/// `{"value": ..}` or `{"error": {"<variant>": "<message>"}}`.
fn read_variable(name: &str) -> Json {
    use spin_sdk::variables::Error;
    match spin_sdk::variables::get(name) {
        Ok(value) => json!({ "value": value }),
        Err(error) => {
            let (variant, message) = match error {
                Error::InvalidName(m) => ("invalid-name", m),
                Error::Undefined(m) => ("undefined", m),
                Error::Provider(m) => ("provider", m),
                Error::Other(m) => ("other", m),
            };
            json!({ "error": { variant: message } })
        }
    }
}

fn query_param(path_with_query: &str, key: &str) -> Option<String> {
    let query = path_with_query.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| v.to_string())
    })
}

/// Runs `{"db": "default", "api": "v2"|"v3", "statements": [{"sql", "params"}]}` on one
/// connection and reports each statement's typed result or error variant.
fn run_sql(request: &Json) -> Json {
    let db = request["db"].as_str().unwrap_or("default");
    let statements: Vec<(String, Vec<Json>)> = request["statements"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|s| {
                    let sql = s["sql"].as_str().unwrap_or_default().to_string();
                    let params = s["params"].as_array().cloned().unwrap_or_default();
                    (sql, params)
                })
                .collect()
        })
        .unwrap_or_default();
    match request["api"].as_str().unwrap_or("v3") {
        "v2" => v2::run(db, &statements),
        _ => v3::run(db, &statements),
    }
}

/// The same probe code for both SQLite APIs (their types are distinct but identical).
macro_rules! sqlite_probe {
    ($module:ident, $api:path, $extra:expr) => {
        mod $module {
            use super::{Json, json};
            use $api as api;

            fn error(error: api::Error) -> Json {
                match error {
                    api::Error::NoSuchDatabase => json!("no-such-database"),
                    api::Error::AccessDenied => json!("access-denied"),
                    api::Error::InvalidConnection => json!("invalid-connection"),
                    api::Error::DatabaseFull => json!("database-full"),
                    api::Error::Io(message) => json!({ "io": message }),
                }
            }

            fn to_value(value: &Json) -> api::Value {
                match value {
                    Json::Object(map) if map.contains_key("integer") => {
                        api::Value::Integer(map["integer"].as_i64().unwrap_or_default())
                    }
                    Json::Object(map) if map.contains_key("real") => {
                        api::Value::Real(map["real"].as_f64().unwrap_or_default())
                    }
                    Json::Object(map) if map.contains_key("text") => {
                        api::Value::Text(map["text"].as_str().unwrap_or_default().to_string())
                    }
                    Json::Object(map) if map.contains_key("blob") => api::Value::Blob(
                        map["blob"]
                            .as_array()
                            .map(|b| b.iter().map(|x| x.as_u64().unwrap_or(0) as u8).collect())
                            .unwrap_or_default(),
                    ),
                    _ => api::Value::Null,
                }
            }

            fn from_value(value: &api::Value) -> Json {
                match value {
                    api::Value::Integer(i) => json!({ "integer": i }),
                    api::Value::Real(f) => json!({ "real": f }),
                    api::Value::Text(t) => json!({ "text": t }),
                    api::Value::Blob(b) => json!({ "blob": b }),
                    api::Value::Null => json!("null"),
                }
            }

            pub fn run(db: &str, statements: &[(String, Vec<Json>)]) -> Json {
                let connection = match api::Connection::open(db) {
                    Ok(connection) => connection,
                    Err(e) => return json!({ "open_error": error(e) }),
                };
                let results: Vec<Json> = statements
                    .iter()
                    .map(|(sql, params)| {
                        let params: Vec<api::Value> = params.iter().map(to_value).collect();
                        let mut result = match connection.execute(sql, &params) {
                            Ok(result) => json!({
                                "columns": result.columns,
                                "rows": result
                                    .rows
                                    .iter()
                                    .map(|row| row.values.iter().map(from_value).collect::<Vec<_>>())
                                    .collect::<Vec<_>>(),
                            }),
                            Err(e) => json!({ "error": error(e) }),
                        };
                        let extra: fn(&api::Connection) -> Option<Json> = $extra;
                        if let Some(extra) = extra(&connection) {
                            result["counters"] = extra;
                        }
                        result
                    })
                    .collect();
                json!({ "results": results })
            }
        }
    };
}

sqlite_probe!(v2, spin_sdk::sqlite, |_| None);
sqlite_probe!(v3, spin_sdk::sqlite3, |connection| Some(json!({
    "last_insert_rowid": connection.last_insert_rowid(),
    "changes": connection.changes(),
})));

/// Outgoing requests, described by the JSON body of a `/outbound` request:
///
/// - `{"url": "..."}`: `spin_sdk::http::send` of a GET, as apps do (a URL without a host is
///   a self-request; the SDK passes no request options).
/// - `{"scheme": "http", "authority": "h:p", "path": "/x", "connect_timeout_ms": n,
///   "first_byte_timeout_ms": n, "between_bytes_timeout_ms": n}`: a GET built from the raw
///   `wasi:http` types and sent with `outgoing-handler.handle` (absent fields stay unset).
///
/// The answer is `{"status", "headers", "body"}` or `{"error": "<ErrorCode as Debug>",
/// "stage": "handle" | "response"}` (`handle` when `handle` itself failed, `response` when the
/// error came through the future). An array of such descriptions is sent in order, from the
/// same instance, and answered with an array.
mod outbound {
    use super::{Json, Map, json};
    use spin_sdk::http::{Fields, Method, OutgoingRequest, Scheme};
    use spin_sdk::wit::wasi::http0_2_0::{outgoing_handler, types::RequestOptions};

    /// One request, or (for an array) each in turn from this one instance.
    pub async fn send(spec: &Json) -> Json {
        match spec {
            Json::Array(specs) => {
                let mut reports = Vec::new();
                for spec in specs {
                    reports.push(send_one(spec).await);
                }
                Json::Array(reports)
            }
            spec => send_one(spec).await,
        }
    }

    async fn send_one(spec: &Json) -> Json {
        match spec["url"].as_str() {
            Some(url) => send_with_sdk(url).await,
            None => send_raw(spec).await,
        }
    }

    async fn send_with_sdk(url: &str) -> Json {
        let request = spin_sdk::http::Request::get(url).build();
        match spin_sdk::http::send::<_, spin_sdk::http::Response>(request).await {
            Ok(response) => {
                let mut headers = Map::new();
                for (name, value) in response.headers() {
                    headers.insert(
                        name.to_string(),
                        json!(String::from_utf8_lossy(value.as_bytes())),
                    );
                }
                json!({
                    "status": response.status(),
                    "headers": headers,
                    "body": String::from_utf8_lossy(response.body()),
                })
            }
            Err(spin_sdk::http::SendError::Http(code)) => {
                json!({ "error": format!("{code:?}"), "stage": "response" })
            }
            Err(error) => json!({ "error": error.to_string(), "stage": "sdk" }),
        }
    }

    async fn send_raw(spec: &Json) -> Json {
        let request = OutgoingRequest::new(Fields::new());
        let _ = request.set_method(&Method::Get);
        let scheme = match spec["scheme"].as_str() {
            Some("http") => Some(Scheme::Http),
            Some("https") => Some(Scheme::Https),
            Some(other) => Some(Scheme::Other(other.to_string())),
            None => None,
        };
        let _ = request.set_scheme(scheme.as_ref());
        let _ = request.set_authority(spec["authority"].as_str());
        let _ = request.set_path_with_query(spec["path"].as_str());

        let options = RequestOptions::new();
        let millis = |key: &str| spec[key].as_u64().map(|ms| ms * 1_000_000);
        let _ = options.set_connect_timeout(millis("connect_timeout_ms"));
        let _ = options.set_first_byte_timeout(millis("first_byte_timeout_ms"));
        let _ = options.set_between_bytes_timeout(millis("between_bytes_timeout_ms"));

        let future = match outgoing_handler::handle(request, Some(options)) {
            Ok(future) => future,
            Err(code) => return json!({ "error": format!("{code:?}"), "stage": "handle" }),
        };
        future.subscribe().block();
        let response = match future.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => {
                return json!({ "error": format!("{code:?}"), "stage": "response" });
            }
            other => return json!({ "error": format!("{other:?}"), "stage": "get" }),
        };
        let status = response.status();
        let mut headers = Map::new();
        for (name, value) in response.headers().entries() {
            headers.insert(name, json!(String::from_utf8_lossy(&value)));
        }
        match response.into_body().await {
            Ok(body) => json!({
                "status": status,
                "headers": headers,
                "body": String::from_utf8_lossy(&body),
            }),
            Err(error) => json!({ "status": status, "body_error": format!("{error:?}") }),
        }
    }
}
