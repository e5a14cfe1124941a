//! Outbound HTTP end to end: the probe (`tests/host/probe`, path `/outbound`) makes outgoing
//! requests through cd-host, against origins on loopback, under `allowed_outbound_hosts`
//! (SPIN_CONTRACT.md A1; what cd-host leaves out is in `tests/host/OUTBOUND.md`). The parser
//! and the matching rules are unit-tested in `src/outbound.rs`; this file checks they are
//! what a guest meets: denials through the response future with Spin's warning, templates
//! resolved per instance, self-requests over TCP, no redirects, the guest's request options.
//!
//! Needs `target/wasm32-wasip2/release/cd_probe.wasm`: run `tests/run` (or `cargo build
//! --target wasm32-wasip2 --release -p cd-probe`) first.

use bytes::Bytes;
use cd_host::{Host, HostOptions, RunningHost};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// --- harness -------------------------------------------------------------------------------

fn probe_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm32-wasip2/release/cd_probe.wasm")
}

/// Writes a manifest whose every route runs the probe as component `out`; `variables` is the
/// `[variables]` table's body and `component` extra lines of `[component.out]`.
fn manifest(dir: &Path, variables: &str, component: &str) -> PathBuf {
    let text = format!(
        "spin_manifest_version = 2\n[application]\nname = \"outbound\"\n\
         [variables]\n{variables}\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"out\"\n\
         [component.out]\nsource = {:?}\n{component}\n",
        probe_source().display().to_string()
    );
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The probe served on loopback; prints guest output (where the warnings also go) if the test
/// fails.
struct App {
    server: RunningHost,
    _dir: tempfile::TempDir,
}

impl App {
    fn start(variables: &str, component: &str) -> App {
        App::with(variables, component, |_| {})
    }

    fn with(variables: &str, component: &str, configure: impl FnOnce(&mut HostOptions)) -> App {
        let dir = tempfile::tempdir().unwrap();
        let mut options = HostOptions::new(manifest(dir.path(), variables, component));
        configure(&mut options);
        let server = RunningHost::start(options)
            .unwrap_or_else(|e| panic!("cannot start the probe host (run tests/run?): {e:#}"));
        App { server, _dir: dir }
    }

    /// Has the probe send what `spec` describes; its `outbound` report.
    fn send(&self, spec: Value) -> Value {
        outbound(self.server.host(), spec)
    }

    fn output(&self) -> String {
        self.server.host().guest_output()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- guest output ---\n{}", self.output());
        }
    }
}

/// `POST /outbound` with `spec` (in memory: the host's own requests still use its listener).
fn outbound(host: &Host, spec: Value) -> Value {
    let request = http::Request::post("/outbound")
        .header("host", "127.0.0.1")
        .body(Bytes::from(spec.to_string()))
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let response = runtime.block_on(host.handle(request, "127.0.0.1:40000".parse().unwrap()));
    let body = String::from_utf8_lossy(response.body()).into_owned();
    assert_eq!(response.status(), 200, "{body}");
    let report: Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    report["outbound"].clone()
}

/// The error a report carries, checking it came through the response future (Spin always
/// returns a pending future from `handle`).
fn future_error(report: &Value) -> String {
    assert_eq!(report["stage"], "response", "{report}");
    report["error"].as_str().unwrap().to_string()
}

/// An HTTP origin on loopback that answers every request with `response` (or never, if
/// `None`) and keeps the request heads it read.
struct Origin {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Origin {
    fn start(response: Option<String>) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopping) = (heads.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let seen = seen.clone();
                let response = response.clone();
                std::thread::spawn(move || {
                    let head = read_head(&mut stream);
                    seen.lock().unwrap().push(head);
                    match response {
                        Some(response) => {
                            let _ = stream.write_all(response.as_bytes());
                        }
                        // Hold the connection open without a byte, until the client goes.
                        None => {
                            let _ = stream.read(&mut [0; 1]);
                        }
                    }
                });
            }
        });
        Origin { addr, heads, stop }
    }

    /// An origin answering `200` with body `origin` and a header `x-origin: yes`.
    fn ok() -> Origin {
        Origin::start(Some(
            "HTTP/1.1 200 OK\r\ncontent-length: 6\r\nx-origin: yes\r\nconnection: close\r\n\r\norigin"
                .to_string(),
        ))
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Reads a request head; it stops at once on a first byte no method starts with (a TLS
/// ClientHello), so the answer goes out without waiting.
fn read_head(stream: &mut TcpStream) -> String {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) if head.is_empty() && !byte[0].is_ascii_uppercase() => break,
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn hosts(entries: &[impl AsRef<str>]) -> String {
    let entries: Vec<&str> = entries.iter().map(AsRef::as_ref).collect();
    format!("allowed_outbound_hosts = {entries:?}")
}

fn denial_warning(destination: &str) -> String {
    format!(
        "Warning: A component tried to make an outbound network connection to disallowed \
         destination '{destination}'.\nTo allow this request, add 'allowed_outbound_hosts = \
         [\"{destination}\"]' to the manifest component section.\n"
    )
}

// --- allowed and denied --------------------------------------------------------------------

#[test]
fn an_allowed_request_reaches_the_origin_with_the_uri_authority_as_host() {
    let origin = Origin::ok();
    let app = App::start(
        "",
        &hosts(&[&format!("http://127.0.0.1:{}", origin.port())]),
    );

    let report = app.send(json!({ "url": origin.url("/path?q=1") }));
    assert_eq!(report["status"], 200, "{report}");
    assert_eq!(report["body"], "origin");
    assert_eq!(report["headers"]["x-origin"], "yes");

    // The raw wasi:http path (request options passed) gets there too.
    let report = app.send(json!({
        "scheme": "http", "authority": origin.addr.to_string(), "path": "/raw",
        "connect_timeout_ms": 5000,
    }));
    assert_eq!(report["status"], 200, "{report}");

    let heads = origin.heads();
    assert_eq!(heads.len(), 2, "{heads:?}");
    assert!(
        heads[0].starts_with("GET /path?q=1 HTTP/1.1\r\n"),
        "{}",
        heads[0]
    );
    assert!(
        heads[1].starts_with("GET /raw HTTP/1.1\r\n"),
        "{}",
        heads[1]
    );
    for head in &heads {
        let host = format!("host: 127.0.0.1:{}\r\n", origin.port());
        assert_eq!(
            head.to_ascii_lowercase().matches(&host).count(),
            1,
            "{head}"
        );
    }
    assert!(!app.output().contains("Warning"), "{}", app.output());
}

#[test]
fn a_request_outside_the_list_is_denied_through_the_future_with_spins_warning() {
    let allowed = Origin::ok();
    let other = Origin::ok();
    let app = App::start(
        "",
        &hosts(&[&format!("http://127.0.0.1:{}", allowed.port())]),
    );

    let report = app.send(json!({
        "scheme": "http", "authority": other.addr.to_string(), "path": "/x",
    }));
    assert_eq!(future_error(&report), "ErrorCode::HttpRequestDenied");
    // What spin-sdk apps see: `SendError::Http(ErrorCode::HttpRequestDenied)`.
    let report = app.send(json!({ "url": other.url("/x") }));
    assert_eq!(future_error(&report), "ErrorCode::HttpRequestDenied");

    assert!(other.heads().is_empty());
    let warning = denial_warning(&format!("http://127.0.0.1:{}", other.port()));
    assert_eq!(
        app.output().matches(&warning).count(),
        2,
        "{}",
        app.output()
    );
}

#[test]
fn without_allowed_outbound_hosts_everything_is_denied() {
    let origin = Origin::ok();
    let app = App::start("", "");
    let report = app.send(json!({ "url": origin.url("/") }));
    assert_eq!(future_error(&report), "ErrorCode::HttpRequestDenied");
    assert!(origin.heads().is_empty());
    // A default port is left out of the warning, as Spin's URL parser drops it.
    let report = app.send(json!({ "url": "https://example.com:443/x" }));
    assert_eq!(future_error(&report), "ErrorCode::HttpRequestDenied");
    assert!(
        app.output()
            .contains(&denial_warning("https://example.com")),
        "{}",
        app.output()
    );
}

#[test]
fn schemes_ports_and_hosts_match_without_dns() {
    let origin = Origin::ok();
    let port = origin.port();
    let allowed = |entries: &[&str]| {
        let app = App::start("", &hosts(entries));
        let report = app.send(json!({ "url": origin.url("/") }));
        report["status"] == 200
    };
    assert!(allowed(&[&format!("http://127.0.0.1:{port}")]));
    assert!(allowed(&["http://127.0.0.1:*"]));
    assert!(allowed(&["*://*:*"]));
    assert!(allowed(&[&format!(
        "http://127.0.0.1:{port}..{}",
        port + 1
    )]));
    assert!(allowed(&["*://127.0.0.0/8:*"]));
    // The range's end is excluded; the scheme is exact; no DNS, so `localhost` is not
    // `127.0.0.1`; a CIDR for another network does not match.
    assert!(!allowed(&[&format!(
        "http://127.0.0.1:{}..{port}",
        port - 1
    )]));
    assert!(!allowed(&[&format!("https://127.0.0.1:{port}")]));
    assert!(!allowed(&[&format!("http://localhost:{port}")]));
    assert!(!allowed(&["*://10.0.0.0/8:*"]));
    assert!(!allowed(&["http://127.0.0.1"]));
}

#[test]
fn deprecated_allowed_http_hosts_still_allow() {
    let origin = Origin::ok();
    let app = App::start(
        "",
        &format!("allowed_http_hosts = [\"127.0.0.1:{}\"]", origin.port()),
    );
    let report = app.send(json!({ "url": origin.url("/") }));
    assert_eq!(report["status"], 200, "{report}");
}

// --- self-requests -------------------------------------------------------------------------

#[test]
fn self_requests_go_over_tcp_to_the_hosts_own_address() {
    // `http://self` means port 80, yet the host listens elsewhere: the port is ignored.
    let app = App::start("", &hosts(&["http://self"]));
    let own = format!("http://{}", app.server.addr());

    // The SDK sends a relative URL as `https://:443/inner`; it is served by the app itself.
    let report = app.send(json!({ "url": "/inner?x=1" }));
    assert_eq!(report["status"], 200, "{report}");
    let inner: Value = serde_json::from_str(report["body"].as_str().unwrap()).unwrap();
    assert_eq!(inner["path_with_query"], "/inner?x=1");
    assert_eq!(
        inner["headers"]["spin-full-url"],
        json!([format!("{own}/inner?x=1")])
    );

    // `self.alt` is the spelling for SDKs that need an authority.
    let report = app.send(json!({ "scheme": "https", "authority": "self.alt", "path": "/alt" }));
    assert_eq!(report["status"], 200, "{report}");
    let inner: Value = serde_json::from_str(report["body"].as_str().unwrap()).unwrap();
    assert_eq!(inner["path_with_query"], "/alt");
}

#[test]
fn self_requests_need_a_self_or_star_entry() {
    let app = App::start("", &hosts(&["http://127.0.0.1:*"]));
    let report = app.send(json!({ "url": "/inner" }));
    assert_eq!(future_error(&report), "ErrorCode::HttpRequestDenied");
    assert!(
        app.output().contains(
            "Warning: A component tried to make an HTTP request to its own app but it does not \
             have permission.\nTo allow this request, add 'allowed_outbound_hosts = \
             [\"http://self\"]' to the manifest component section.\n"
        ),
        "{}",
        app.output()
    );
    let app = App::start("", &hosts(&["*://*:*"]));
    assert_eq!(app.send(json!({ "url": "/inner" }))["status"], 200);
}

#[test]
fn without_a_listener_a_self_request_has_no_origin() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::load(HostOptions::new(manifest(
        dir.path(),
        "",
        &hosts(&["http://self"]),
    )))
    .unwrap();
    let report = outbound(&host, json!({ "url": "/inner" }));
    assert_eq!(future_error(&report), "ErrorCode::HttpRequestUriInvalid");
}

// --- templates -----------------------------------------------------------------------------

#[test]
fn templated_entries_resolve_per_instance_through_the_providers() {
    let origin = Origin::ok();
    let entry = hosts(&["http://127.0.0.1:{{ origin_port }}"]);
    // The default (port 1) only has to parse at load.
    let variables = "origin_port = { default = \"1\" }";
    let port = origin.port().to_string();

    let app = App::start(variables, &entry);
    let report = app.send(json!({ "url": origin.url("/") }));
    assert_eq!(future_error(&report), "ErrorCode::HttpRequestDenied");

    let app = App::with(variables, &entry, |o| {
        o.variables.insert("origin_port".into(), port.clone());
    });
    assert_eq!(app.send(json!({ "url": origin.url("/") }))["status"], 200);

    let app = App::with(variables, &entry, |o| {
        o.env
            .insert("SPIN_VARIABLE_ORIGIN_PORT".into(), port.clone());
    });
    assert_eq!(app.send(json!({ "url": origin.url("/") }))["status"], 200);
}

#[test]
fn an_entry_that_fails_to_resolve_denies_every_request() {
    let origin = Origin::ok();
    // `target` has no default, so nothing is checked at load; its value is no host.
    let app = App::with(
        "target = { required = true }",
        &hosts(&[
            format!("http://127.0.0.1:{}", origin.port()).as_str(),
            "https://{{ target }}",
        ]),
        |o| {
            o.variables.insert("target".into(), "a.dev/path".into());
        },
    );
    // Two incoming requests (two instances), the second sending twice.
    let report = app.send(json!({ "url": origin.url("/") }));
    assert_eq!(future_error(&report), "ErrorCode::HttpRequestDenied");
    let reports = app.send(json!([{ "url": origin.url("/") }, { "url": origin.url("/") }]));
    for report in reports.as_array().unwrap() {
        assert_eq!(future_error(report), "ErrorCode::HttpRequestDenied");
    }
    assert!(origin.heads().is_empty());
    // Spin logs the error once per instance (the list is resolved on its first request and
    // kept), and prints no warning: no request was ever checked.
    let output = app.output();
    let logged = "Error parsing allowed outbound hosts: Invalid allowed host \"a.dev/path\": \
                  must not include a path";
    assert_eq!(output.matches(logged).count(), 2, "{output}");
    assert!(!output.contains("Warning"), "{output}");
}

#[test]
fn malformed_entries_fail_load_with_spins_message() {
    let load = |variables: &str, component: &str| {
        let dir = tempfile::tempdir().unwrap();
        let options = HostOptions::new(manifest(dir.path(), variables, component));
        match Host::load(options) {
            Ok(_) => panic!("{component} loaded"),
            Err(error) => format!("{error:#}"),
        }
    };
    let error = load("", &hosts(&["http://[::1]"]));
    assert!(
        error.contains(
            "Failed to load component `out`: `allowed_outbound_hosts` is malformed: Invalid \
             allowed host port \"1]\""
        ),
        "{error}"
    );
    let error = load(
        "host = { default = \"a.dev/x\" }",
        &hosts(&["https://{{ host }}"]),
    );
    assert!(
        error.contains(
            "`allowed_outbound_hosts` is malformed: using default variable value(s) with \
             template \"https://{{ host }}\" results in invalid config \"https://a.dev/x\""
        ),
        "{error}"
    );
    let error = load("", &hosts(&["insecure:allow-all"]));
    assert!(
        error.contains("'insecure:allow-all' is not allowed"),
        "{error}"
    );
}

// --- how requests are sent -----------------------------------------------------------------

#[test]
fn what_wasmtime_refuses_fails_handle_itself() {
    // No policy is consulted for these: wasmtime's `handle` fails before the hook, in Spin
    // as here (SPIN_CONTRACT.md A1, "Guest side" and "Host pipeline" 1).
    let app = App::start("", &hosts(&["*://*:*"]));
    let report = app.send(json!({ "scheme": "http", "path": "/no-authority" }));
    assert_eq!(report["stage"], "handle", "{report}");
    assert_eq!(report["error"], "ErrorCode::HttpRequestUriInvalid");
    let report = app.send(json!({ "scheme": "ftp", "authority": "a.dev", "path": "/" }));
    assert_eq!(report["stage"], "handle", "{report}");
    assert_eq!(report["error"], "ErrorCode::HttpProtocolError");
}

#[test]
fn redirects_reach_the_guest_unfollowed() {
    let target = Origin::ok();
    let redirect = Origin::start(Some(format!(
        "HTTP/1.1 302 Found\r\nlocation: {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        target.url("/moved")
    )));
    let app = App::start("", &hosts(&["http://127.0.0.1:*"]));
    let report = app.send(json!({ "url": redirect.url("/") }));
    assert_eq!(report["status"], 302, "{report}");
    assert_eq!(report["headers"]["location"], target.url("/moved"));
    assert!(target.heads().is_empty());
}

#[test]
fn the_guests_request_options_are_honoured() {
    let silent = Origin::start(None);
    let app = App::start("", &hosts(&["http://127.0.0.1:*"]));
    let started = Instant::now();
    let report = app.send(json!({
        "scheme": "http", "authority": silent.addr.to_string(), "path": "/",
        "first_byte_timeout_ms": 200,
    }));
    assert_eq!(future_error(&report), "ErrorCode::ConnectionReadTimeout");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn connect_errors_get_spins_error_codes() {
    let app = App::start("", &hosts(&["*://127.0.0.1:*", "http://*.invalid:*"]));
    let report = app.send(json!({ "url": format!("http://127.0.0.1:{}/", closed_port()) }));
    assert_eq!(future_error(&report), "ErrorCode::ConnectionRefused");

    // Any TLS failure is `TlsProtocolError` (here: the origin speaks plain HTTP).
    let plain = Origin::ok();
    let report = app.send(json!({ "url": format!("https://{}/", plain.addr) }));
    assert_eq!(future_error(&report), "ErrorCode::TlsProtocolError");

    // `.invalid` never resolves (RFC 6761).
    let report = app.send(json!({ "url": "http://nothing.invalid/" }));
    let error = future_error(&report);
    assert!(
        error.starts_with("ErrorCode::DnsError(")
            && error.contains("\"address not available\"")
            && error.contains("Some(0)"),
        "{error}"
    );
}

#[test]
fn service_chaining_is_refused_plainly() {
    let app = App::start("", &hosts(&["http://*.spin.internal"]));
    let report = app.send(json!({ "url": "http://out.spin.internal/x" }));
    let error = future_error(&report);
    assert!(error.contains("service chaining"), "{error}");
    // Only component ids are expanded: another name is denied.
    let report = app.send(json!({ "url": "http://other.spin.internal/x" }));
    assert_eq!(future_error(&report), "ErrorCode::HttpRequestDenied");
}
