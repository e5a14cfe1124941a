//! The adapter between Spin and cd-core, shared by every component.
//!
//! It is the only code that touches `spin_sdk`: it reads the component's variables, streams
//! the request body up to the configured limit, adapts `spin_sdk::sqlite::Connection` to
//! [`cd_core::Db`], and calls a cd-core entry point. Each component crate is then one
//! `#[http_component]` naming its entry point.

use cd_core::{Config, Db, DbError, Env, Error, Rows, SystemClock, SystemIds, Value};
use futures::StreamExt;
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};
use spin_sdk::sqlite::{self, Connection};
use spin_sdk::variables;

/// A cd-core entry point: one of `cd_core::handle_*_request`.
pub type EntryPoint = fn(&http::Request<Vec<u8>>, &Env<'_>) -> http::Response<Vec<u8>>;

/// Serves one request: the whole life of a component instance.
///
/// The response is sent, and its body finished, before the database connection closes: Spin
/// (like wasi-http hosts generally) streams the response while the handler still runs, and
/// closing the last connection of a WAL database checkpoints the WAL into the database file
/// and fsyncs it — milliseconds the client need not wait for. A write then checkpoints its
/// own frames first ([`cd_core::AfterResponse`]), so that the close is quick and the next
/// request does not meet its lock.
pub async fn serve(
    request: IncomingRequest,
    response_out: ResponseOutparam,
    entry_point: EntryPoint,
) {
    let config = Config::from_variables(
        variables::get("admin_token").ok(),
        variables::get("max_body_bytes").ok(),
    )
    .with_webhook_signing_key(variables::get("webhook_signing_key").ok())
    .with_webhook_allowed_hosts(variables::get("webhook_allowed_hosts").ok());
    let request = match read_request(request, config.max_body_bytes).await {
        Ok(request) => request,
        Err(error) => return send(response_out, error.into_response()).await,
    };
    // Spin opens lazily: this does no I/O, and a failure to open shows on the first execute.
    let db = match Connection::open_default() {
        Ok(connection) => SpinDb(connection),
        Err(error) => {
            let error = Error::storage(format!("cannot open the default database: {error}"));
            return send(response_out, error.into_response()).await;
        }
    };
    let env = Env {
        db: &db,
        clock: &SystemClock,
        ids: &SystemIds,
        config,
    };
    let response = entry_point(&request, &env);
    let after = cd_core::AfterResponse::of(&response);
    send(response_out, response).await;
    after.run(&db);
    after.send_deliveries(&env, &WasiOutbound);
    drop(db);
}

/// Outgoing HTTP through `wasi:http/outgoing-handler` (Spin checks `allowed_outbound_hosts`),
/// with connect, first-byte and between-bytes timeouts of [`cd_core::ATTEMPT_TIMEOUT`]: Spin's
/// own default is 600 s, and spin-sdk's `send` passes no options. Blocking is fine here: the
/// response has been sent, and nothing else runs in this instance.
struct WasiOutbound;

impl cd_core::Outbound for WasiOutbound {
    fn send(&self, request: &http::Request<Vec<u8>>) -> Result<u16, String> {
        use wasi::http::outgoing_handler;
        use wasi::http::types::{
            Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
        };

        let headers: Vec<(String, Vec<u8>)> = request
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
            .collect();
        let fields = Fields::from_list(&headers).map_err(|e| format!("headers refused: {e:?}"))?;
        let outgoing = OutgoingRequest::new(fields);
        let uri = request.uri();
        let method = match *request.method() {
            http::Method::POST => Method::Post,
            ref other => Method::Other(other.as_str().to_owned()),
        };
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::Http,
            _ => Scheme::Https,
        };
        outgoing
            .set_method(&method)
            .and_then(|()| outgoing.set_scheme(Some(&scheme)))
            .and_then(|()| outgoing.set_authority(uri.authority().map(|a| a.as_str())))
            .and_then(|()| outgoing.set_path_with_query(uri.path_and_query().map(|p| p.as_str())))
            .map_err(|()| format!("request {uri} refused"))?;
        let timeout = u64::try_from(cd_core::ATTEMPT_TIMEOUT.as_nanos()).unwrap_or(u64::MAX);
        let options = RequestOptions::new();
        // A host that does not support an option leaves it at its default.
        let _ = options.set_connect_timeout(Some(timeout));
        let _ = options.set_first_byte_timeout(Some(timeout));
        let _ = options.set_between_bytes_timeout(Some(timeout));
        let body = outgoing.body().map_err(|()| "no request body".to_owned())?;
        let future = outgoing_handler::handle(outgoing, Some(options))
            .map_err(|code| format!("{code:?}"))?;
        // A body the host stops taking (a refused or failed connection) is not the cause: the
        // response future says what happened, so it is asked in any case.
        let mut written = Ok(());
        if let Ok(stream) = body.write() {
            for chunk in request.body().chunks(4096) {
                if let Err(error) = stream.blocking_write_and_flush(chunk) {
                    written = Err(format!("request body: {error:?}"));
                    break;
                }
            }
        }
        let finished = OutgoingBody::finish(body, None);
        future.subscribe().block();
        match future.get() {
            Some(Ok(Ok(response))) => Ok(response.status()),
            Some(Ok(Err(code))) => Err(format!("{code:?}")),
            Some(Err(())) | None => Err(written
                .err()
                .or(finished.err().map(|code| format!("{code:?}")))
                .unwrap_or_else(|| "no response".to_owned())),
        }
    }
}

/// Sends `response` whole: status, headers, and the body, finished.
async fn send(response_out: ResponseOutparam, response: http::Response<Vec<u8>>) {
    let (parts, body) = response.into_parts();
    let headers: Vec<(String, Vec<u8>)> = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    // `http` has already checked every name and value; Fields refuses only forbidden ones.
    let (outgoing, body) = match Fields::from_list(&headers) {
        Ok(fields) => (OutgoingResponse::new(fields), body),
        Err(error) => {
            eprintln!("cd-spin-shell: response headers refused: {error:?}");
            let outgoing = OutgoingResponse::new(Fields::new());
            let _ = outgoing.set_status_code(500);
            response_out.set(outgoing);
            return;
        }
    };
    if outgoing.set_status_code(parts.status.as_u16()).is_err() {
        eprintln!("cd-spin-shell: status {} refused", parts.status);
    }
    if let Err(error) = response_out.set_with_body(outgoing, body).await {
        eprintln!("cd-spin-shell: the response body could not be sent: {error:?}");
    }
}

/// How much of a too-large body we read and discard before answering 413. Answering while the
/// client is still sending makes many clients (and proxies) see a reset connection instead of
/// our problem document; draining a bounded amount lets them read it. Bodies larger than this
/// get the 413 without draining.
const DRAIN_LIMIT: u64 = 32 * 1024 * 1024;

/// Turns Spin's request into `http::Request<Vec<u8>>`, refusing bodies over `limit` while
/// holding at most `limit` bytes of them.
async fn read_request(
    request: IncomingRequest,
    limit: usize,
) -> Result<http::Request<Vec<u8>>, Error> {
    let mut builder = http::Request::builder()
        .method(http::Method::from(request.method()))
        .uri(request.path_with_query().unwrap_or_else(|| "/".to_owned()));
    let mut declared_length = None;
    for (name, value) in request.headers().entries() {
        if name.eq_ignore_ascii_case("content-length") {
            declared_length = std::str::from_utf8(&value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok());
        }
        builder = builder.header(name, value);
    }
    let too_large = Error::PayloadTooLarge { limit };
    if declared_length.is_some_and(|length| length > DRAIN_LIMIT) {
        return Err(too_large);
    }
    let mut body = Vec::new();
    let mut received: u64 = 0;
    let mut stream = request.into_body_stream();
    while let Some(chunk) = stream.next().await {
        // The stream's error is a host resource handle, meaningless to the client: the log
        // gets it, the client a plain sentence.
        let chunk = chunk.map_err(|e| {
            eprintln!("cd-spin-shell: the request body could not be read: {e:?}");
            Error::malformed("the request body could not be read (malformed or cut short)")
        })?;
        received += chunk.len() as u64;
        if received > DRAIN_LIMIT {
            return Err(too_large);
        }
        if received <= limit as u64 {
            body.extend_from_slice(&chunk);
        }
    }
    if received > limit as u64 {
        return Err(too_large);
    }
    builder.body(body).map_err(|e| {
        eprintln!("cd-spin-shell: unreadable request: {e}");
        Error::malformed("the request line or a header could not be read")
    })
}

/// `spin_sdk::sqlite::Connection` as a [`Db`].
struct SpinDb(Connection);

impl Db for SpinDb {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let params: Vec<sqlite::Value> = params.iter().map(to_spin).collect();
        match self.0.execute(sql, &params) {
            Ok(result) => Ok(Rows {
                columns: result.columns,
                rows: result
                    .rows
                    .into_iter()
                    .map(|row| row.values.into_iter().map(from_spin).collect())
                    .collect(),
            }),
            Err(sqlite::Error::Io(message)) => Err(DbError::from_message(message)),
            Err(other) => Err(DbError::Unavailable(format!("{other:?}"))),
        }
    }
}

fn to_spin(value: &Value) -> sqlite::Value {
    match value {
        Value::Integer(i) => sqlite::Value::Integer(*i),
        Value::Real(r) => sqlite::Value::Real(*r),
        Value::Text(t) => sqlite::Value::Text(t.clone()),
        Value::Blob(b) => sqlite::Value::Blob(b.clone()),
        Value::Null => sqlite::Value::Null,
    }
}

fn from_spin(value: sqlite::Value) -> Value {
    match value {
        sqlite::Value::Integer(i) => Value::Integer(i),
        sqlite::Value::Real(r) => Value::Real(r),
        sqlite::Value::Text(t) => Value::Text(t),
        sqlite::Value::Blob(b) => Value::Blob(b),
        sqlite::Value::Null => Value::Null,
    }
}
