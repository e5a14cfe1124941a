//! Integration tests of the test host itself: the probe component (`tests/host/probe`) served over
//! real HTTP by [`RunningHost`], compared with Spin's contract (`SPIN_CONTRACT.md`).
//!
//! Needs `target/wasm32-wasip2/release/cd_probe.wasm`: run `tests/run` (or `cargo build
//! --target wasm32-wasip2 --release -p cd-probe`) first. Each test gets its own database file
//! and its own server on a free port; guest output is printed when a test fails.

use cd_host::{Host, HostOptions, RunningHost};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};

// --- harness -------------------------------------------------------------------------------

fn probe_manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("probe/spin.toml")
}

/// A probe server with a fresh database; prints guest output if the test panics.
struct Probe {
    server: RunningHost,
    _dir: tempfile::TempDir,
}

impl Probe {
    fn start() -> Probe {
        Probe::with(|_| {})
    }

    fn with(configure: impl FnOnce(&mut HostOptions)) -> Probe {
        let dir = tempfile::tempdir().unwrap();
        let mut options = options(dir.path());
        configure(&mut options);
        let server = RunningHost::start(options)
            .unwrap_or_else(|e| panic!("cannot start the probe host (run tests/run?): {e:#}"));
        Probe { server, _dir: dir }
    }

    fn get(&self, target: &str) -> Response {
        self.request("GET", target, &[], b"")
    }

    fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        http_request(self.server.addr(), method, target, headers, body)
    }

    /// Runs SQL through the probe (`/sql/...` has `default`, `/nodb/...` has no database).
    fn sql(&self, path: &str, request: Value) -> Value {
        let response = self.request("POST", path, &[], request.to_string().as_bytes());
        assert_eq!(response.status, 200, "{}", response.text());
        response.json()["sql"].clone()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- guest output ---\n{}",
                self.server.host().guest_output()
            );
        }
    }
}

fn options(dir: &Path) -> HostOptions {
    let mut options = HostOptions::new(probe_manifest());
    options.database = Some(dir.join("probe.db"));
    options
        .variables
        .insert("secret_token".into(), "s3cret".into());
    options
}

struct Response {
    status: u16,
    body: Vec<u8>,
    /// The client's own address, to compare with `spin-client-addr`.
    local_addr: SocketAddr,
}

impl Response {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The values the guest saw for a request header.
    fn seen(&self, name: &str) -> Vec<String> {
        match &self.json()["headers"][name] {
            Value::Array(values) => values
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect(),
            _ => vec![],
        }
    }

    fn seen_one(&self, name: &str) -> String {
        let values = self.seen(name);
        assert_eq!(values.len(), 1, "{name}: {values:?}");
        values[0].clone()
    }
}

/// A minimal HTTP/1.1 client (one request per connection), enough for these tests.
fn http_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap();
    let local_addr = stream.local_addr().unwrap();
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();

    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a full response head");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_ascii_lowercase(), value.trim().to_string())
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v == "chunked")
    {
        body = dechunk(&body);
    }
    Response {
        status,
        body,
        local_addr,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap().trim(), 16)
            .unwrap();
        if size == 0 {
            return body;
        }
        let start = line_end + 2;
        body.extend_from_slice(&raw[start..start + size]);
        raw = &raw[start + size + 2..];
    }
}

/// Writes a manifest serving the probe with the given `[[trigger.http]]` routes.
fn manifest_with_routes(dir: &Path, routes: &[&str]) -> PathBuf {
    let probe_dir = probe_manifest().parent().unwrap().to_path_buf();
    let source = probe_dir.join("../../../target/wasm32-wasip2/release/cd_probe.wasm");
    let mut text = String::from("spin_manifest_version = 2\n[application]\nname = \"routes\"\n");
    for route in routes {
        text.push_str(&format!(
            "[[trigger.http]]\nroute = \"{route}\"\ncomponent = \"probe\"\n"
        ));
    }
    text.push_str(&format!(
        "[component.probe]\nsource = {:?}\n",
        source.display().to_string()
    ));
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

// --- routing and headers -------------------------------------------------------------------

#[test]
fn routing_follows_spin_precedence_end_to_end() {
    let probe = Probe::start();
    let cases = [
        ("/exact", "/exact", "probe"),
        ("/exact/", "/exact", "probe"),
        ("/exact//", "/exact", "probe"),
        ("/items/7", "/items/:item_id", "probe"),
        ("/items/7/parts/a/b", "/items/:item_id/parts/...", "probe"),
        ("/items/7/x", "/items/...", "probe-nodb"),
        ("/items", "/items/...", "probe-nodb"),
        ("/a/b/c", "/a/b/...", "probe"),
        ("/a/x/c", "/a/:id/c", "probe-nodb"),
        ("/dup", "/dup", "probe"),
        ("/anything/else", "/...", "probe-nodb"),
        ("/", "/...", "probe-nodb"),
    ];
    for (path, route, component) in cases {
        let response = probe.get(path);
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(
            response.seen_one("spin-raw-component-route"),
            route,
            "{path}"
        );
        assert_eq!(response.json()["component"]["value"], component, "{path}");
    }
}

#[test]
fn the_guest_sees_every_spin_header_as_spin_sets_it() {
    let probe = Probe::start();
    let response = probe.get("/items/42/parts/a/b?x=1");
    let addr = probe.server.addr();
    let expected = [
        ("spin-path-info", "/a/b".to_string()),
        (
            "spin-full-url",
            format!("http://{addr}/items/42/parts/a/b?x=1"),
        ),
        (
            "spin-matched-route",
            "/items/:item_id/parts/...".to_string(),
        ),
        ("spin-base-path", "/".to_string()),
        (
            "spin-raw-component-route",
            "/items/:item_id/parts/...".to_string(),
        ),
        ("spin-component-route", "/items/:item_id/parts".to_string()),
        ("spin-client-addr", response.local_addr.to_string()),
        ("spin-path-match-item-id", "42".to_string()),
    ];
    for (name, value) in expected {
        assert_eq!(response.seen_one(name), value, "{name}");
    }
    assert_eq!(
        response.json()["path_with_query"],
        "/items/42/parts/a/b?x=1"
    );
    assert_eq!(response.json()["method"], "GET");
}

#[test]
fn wildcard_path_info_and_routes_for_the_catch_all() {
    let probe = Probe::start();
    let response = probe.get("/some/where/");
    assert_eq!(response.seen_one("spin-path-info"), "/some/where/");
    assert_eq!(response.seen_one("spin-matched-route"), "/...");
    assert_eq!(response.seen_one("spin-component-route"), "");
    let response = probe.get("/items/9/parts");
    assert_eq!(response.seen_one("spin-path-info"), "");
    assert_eq!(response.seen_one("spin-path-match-item-id"), "9");
}

#[test]
fn client_sent_spin_headers_come_first_and_host_is_hidden() {
    let probe = Probe::start();
    let response = probe.request(
        "GET",
        "/items/1/parts/z",
        &[("spin-path-info", "from-client"), ("x-custom", "kept")],
        b"",
    );
    assert_eq!(response.seen("spin-path-info"), vec!["from-client", "/z"]);
    assert_eq!(response.seen("x-custom"), vec!["kept"]);
    assert!(response.seen("host").is_empty(), "host leaked to the guest");
    assert!(
        response.seen("connection").is_empty(),
        "connection leaked to the guest"
    );
}

#[test]
fn health_answers_before_routing_and_other_well_known_paths_are_404() {
    let probe = Probe::start();
    let health = probe.get("/.well-known/spin/health");
    assert_eq!((health.status, health.text().as_str()), (200, "OK"));
    // The probe has a `/...` catch-all, so only the host can have answered these.
    let other = probe.get("/.well-known/spin/nope");
    assert_eq!((other.status, other.body.len()), (404, 0));
}

#[test]
fn no_matching_route_is_404_with_an_empty_body() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_with_routes(dir.path(), &["/only/:id", "/exact"]);
    let server = RunningHost::start(HostOptions::new(manifest)).unwrap();
    let response = http_request(server.addr(), "GET", "/elsewhere", &[], b"");
    assert_eq!((response.status, response.body.len()), (404, 0));
    let response = http_request(server.addr(), "GET", "/only/1/more", &[], b"");
    assert_eq!(response.status, 404);
    let response = http_request(server.addr(), "GET", "/only/1", &[], b"");
    assert_eq!(response.status, 200);
}

#[test]
fn a_trap_or_no_response_is_500_with_an_empty_body() {
    let probe = Probe::start();
    for path in ["/exact/trap", "/x/trap", "/x/no-response"] {
        let response = probe.get(path);
        assert_eq!((response.status, response.body.len()), (500, 0), "{path}");
    }
    let output = probe.server.host().guest_output();
    assert!(output.contains("cd-probe: trap requested"), "{output}");
    assert!(output.contains("did not set a response"), "{output}");
}

#[test]
fn every_request_gets_a_fresh_instance() {
    let probe = Probe::start();
    for _ in 0..3 {
        assert_eq!(probe.get("/exact").json()["counter"], 1);
    }
}

#[test]
fn the_component_environment_comes_from_the_manifest_only() {
    let probe = Probe::with(|o| {
        o.env.insert("LEAK".into(), "no".into());
    });
    assert_eq!(
        probe.get("/exact").json()["env"],
        json!({"PROBE_ENV": "from-manifest"})
    );
    assert_eq!(probe.get("/nodb/x").json()["env"], json!({}));
}

#[tokio::test]
async fn requests_can_be_served_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::load(options(dir.path())).unwrap();
    let request = http::Request::builder()
        .uri("/items/5")
        .header("host", "example.test")
        .body(bytes::Bytes::new())
        .unwrap();
    let response = host.handle(request, "10.0.0.1:1234".parse().unwrap()).await;
    assert_eq!(response.status(), 200);
    let body: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(
        body["headers"]["spin-client-addr"],
        json!(["10.0.0.1:1234"])
    );
    assert_eq!(
        body["headers"]["spin-full-url"],
        json!(["http://example.test/items/5"])
    );
    let health = http::Request::get("/.well-known/spin/health")
        .body(bytes::Bytes::new())
        .unwrap();
    let response = host.handle(health, "10.0.0.1:1".parse().unwrap()).await;
    assert_eq!(response.body().as_ref(), b"OK");
}

// --- SQLite --------------------------------------------------------------------------------

fn statements(list: &[(&str, Value)]) -> Value {
    Value::Array(
        list.iter()
            .map(|(sql, params)| json!({"sql": sql, "params": params}))
            .collect(),
    )
}

#[test]
fn sqlite_values_round_trip_through_both_apis() {
    let probe = Probe::start();
    for api in ["v2", "v3"] {
        let table = format!("t_{api}");
        let values = json!([
            "null",
            {"integer": i64::MIN},
            {"integer": i64::MAX},
            {"real": 2.5},
            {"text": "héllo ✓ 🦀"},
            {"blob": [0, 1, 254, 255]},
        ]);
        let sql = probe.sql(
            "/sql/x",
            json!({"api": api, "statements": statements(&[
                (&format!("CREATE TABLE {table} (a, b, c, d, e, f)"), json!([])),
                (&format!("INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?)"), values.clone()),
                (&format!("SELECT a, b, c, d, e, f FROM {table}"), json!([])),
            ])}),
        );
        let results = &sql["results"];
        // DML without RETURNING has no columns and no rows.
        assert_eq!(results[1]["columns"], json!([]), "{api}");
        assert_eq!(results[1]["rows"], json!([]), "{api}");
        assert_eq!(
            results[2]["columns"],
            json!(["a", "b", "c", "d", "e", "f"]),
            "{api}"
        );
        assert_eq!(results[2]["rows"], json!([values]), "{api}");
    }
}

#[test]
fn sqlite_v3_reports_last_insert_rowid_and_changes_per_connection() {
    let probe = Probe::start();
    let sql = probe.sql(
        "/sql/x",
        json!({"statements": statements(&[
            ("CREATE TABLE c (x)", json!([])),
            ("INSERT INTO c VALUES (1), (2), (3)", json!([])),
            ("UPDATE c SET x = x + 1 WHERE x > 1", json!([])),
        ])}),
    );
    let results = &sql["results"];
    assert_eq!(
        results[0]["counters"],
        json!({"last_insert_rowid": 0, "changes": 0})
    );
    assert_eq!(
        results[1]["counters"],
        json!({"last_insert_rowid": 3, "changes": 3})
    );
    assert_eq!(
        results[2]["counters"],
        json!({"last_insert_rowid": 3, "changes": 2})
    );
}

#[test]
fn only_the_first_statement_of_a_string_runs() {
    let probe = Probe::start();
    let sql = probe.sql(
        "/sql/x",
        json!({"statements": statements(&[
            ("CREATE TABLE m (x)", json!([])),
            ("INSERT INTO m VALUES (1); INSERT INTO m VALUES (2)", json!([])),
            ("SELECT count(*) FROM m", json!([])),
        ])}),
    );
    assert_eq!(sql["results"][1].get("error"), None);
    assert_eq!(sql["results"][2]["rows"], json!([[{"integer": 1}]]));
}

#[test]
fn foreign_keys_are_enforced() {
    let probe = Probe::start();
    let sql = probe.sql(
        "/sql/x",
        json!({"statements": statements(&[
            ("PRAGMA foreign_keys", json!([])),
            ("CREATE TABLE p (id INTEGER PRIMARY KEY)", json!([])),
            ("CREATE TABLE k (p INTEGER REFERENCES p(id))", json!([])),
            ("INSERT INTO k VALUES (42)", json!([])),
        ])}),
    );
    assert_eq!(sql["results"][0]["rows"], json!([[{"integer": 1}]]));
    assert_eq!(
        sql["results"][3]["error"],
        json!({"io": "FOREIGN KEY constraint failed"})
    );
}

#[test]
fn errors_arrive_as_io_with_rusqlites_message() {
    let probe = Probe::start();
    let sql = probe.sql(
        "/sql/x",
        json!({"api": "v2", "statements": statements(&[
            ("CREATE TABLE t (x UNIQUE)", json!([])),
            ("INSERT INTO t VALUES (1)", json!([])),
            ("INSERT INTO t VALUES (1)", json!([])),
            ("SELEC 1", json!([])),
            ("SELECT * FROM nope", json!([])),
        ])}),
    );
    let errors: Vec<&Value> = (2..5).map(|i| &sql["results"][i]["error"]).collect();
    assert_eq!(
        errors,
        vec![
            &json!({"io": "UNIQUE constraint failed: t.x"}),
            &json!({"io": "near \"SELEC\": syntax error in SELEC 1 at offset 0"}),
            &json!({"io": "no such table: nope"}),
        ]
    );
}

#[test]
fn undeclared_labels_and_components_without_databases_are_denied() {
    let probe = Probe::start();
    for api in ["v2", "v3"] {
        let other = probe.sql(
            "/sql/x",
            json!({"api": api, "db": "other", "statements": []}),
        );
        assert_eq!(other, json!({"open_error": "access-denied"}), "{api}");
        let nodb = probe.sql(
            "/nodb/x",
            json!({"api": api, "db": "default", "statements": []}),
        );
        assert_eq!(nodb, json!({"open_error": "access-denied"}), "{api}");
    }
}

#[test]
fn an_uncommitted_transaction_is_rolled_back_when_the_request_ends() {
    let probe = Probe::start();
    probe.sql(
        "/sql/x",
        json!({"statements": statements(&[("CREATE TABLE r (x)", json!([]))])}),
    );
    let open = probe.sql(
        "/sql/x",
        json!({"statements": statements(&[
            ("BEGIN", json!([])),
            ("INSERT INTO r VALUES (1)", json!([])),
        ])}),
    );
    assert_eq!(open["results"][1].get("error"), None, "{open}");
    // A write needs the lock the open transaction held: it only succeeds once it is gone.
    let after = probe.sql(
        "/sql/x",
        json!({"statements": statements(&[
            ("INSERT INTO r VALUES (2)", json!([])),
            ("SELECT x FROM r", json!([])),
        ])}),
    );
    assert_eq!(after["results"][1]["rows"], json!([[{"integer": 2}]]));
}

#[test]
fn the_default_database_lives_in_the_manifest_directory_unless_overridden() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_with_routes(dir.path(), &["/..."]);
    let text = std::fs::read_to_string(&manifest).unwrap() + "sqlite_databases = [\"default\"]\n";
    std::fs::write(&manifest, text).unwrap();
    let server = RunningHost::start(HostOptions::new(&manifest)).unwrap();
    let body = json!({"statements": statements(&[("CREATE TABLE d (x)", json!([]))])});
    let response = http_request(
        server.addr(),
        "POST",
        "/x",
        &[],
        body.to_string().as_bytes(),
    );
    assert_eq!(response.status, 200);
    assert!(dir.path().join(".spin/sqlite_db.db").is_file());
}

#[test]
fn a_listed_label_without_configuration_fails_load() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_with_routes(dir.path(), &["/..."]);
    let text = std::fs::read_to_string(&manifest).unwrap() + "sqlite_databases = [\"other\"]\n";
    std::fs::write(&manifest, text).unwrap();
    let error = Host::load(HostOptions::new(&manifest))
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.starts_with("One or more components use SQLite databases which are not defined."),
        "{error}"
    );
    assert!(
        error.contains("- Component probe uses database 'other'"),
        "{error}"
    );
}

// --- variables -----------------------------------------------------------------------------

fn variable(probe: &Probe, path: &str, name: &str) -> Value {
    probe.get(&format!("{path}?var={name}")).json()["var"].clone()
}

#[test]
fn variables_resolve_runtime_then_env_then_default() {
    let probe = Probe::start();
    assert_eq!(
        variable(&probe, "/exact", "greeting"),
        json!({"value": "hello, world"})
    );
    assert_eq!(
        variable(&probe, "/exact", "mixed"),
        json!({"value": "hello:80"})
    );
    assert_eq!(
        variable(&probe, "/exact", "token"),
        json!({"value": "Bearer s3cret"})
    );

    let env = Probe::with(|o| {
        o.env.insert("SPIN_VARIABLE_GREETING".into(), "hi".into());
        o.env.insert("SPIN_VARIABLE_PORT".into(), "8080".into());
    });
    assert_eq!(
        variable(&env, "/exact", "greeting"),
        json!({"value": "hi, world"})
    );
    assert_eq!(
        variable(&env, "/exact", "mixed"),
        json!({"value": "hi:8080"})
    );

    let runtime = Probe::with(|o| {
        o.env.insert("SPIN_VARIABLE_GREETING".into(), "hi".into());
        o.variables.insert("greeting".into(), "hey".into());
    });
    assert_eq!(
        variable(&runtime, "/exact", "greeting"),
        json!({"value": "hey, world"})
    );
}

#[test]
fn a_required_variable_can_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = HostOptions::new(probe_manifest());
    options.database = Some(dir.path().join("db"));
    options
        .env
        .insert("SPIN_VARIABLE_SECRET_TOKEN".into(), "from-env".into());
    let server = RunningHost::start(options).unwrap();
    let response = http_request(server.addr(), "GET", "/exact?var=token", &[], b"");
    assert_eq!(response.json()["var"], json!({"value": "Bearer from-env"}));
}

#[test]
fn a_missing_required_variable_fails_load() {
    let error = Host::load(HostOptions::new(probe_manifest()))
        .err()
        .unwrap();
    assert_eq!(
        error.to_string(),
        "no provider resolved required variable(s): secret_token"
    );
}

#[test]
fn guests_read_only_their_own_declared_keys() {
    let probe = Probe::start();
    assert_eq!(
        variable(&probe, "/nodb/x", "greeting"),
        json!({"error": {"undefined": "no variable for \"probe-nodb\".\"greeting\""}})
    );
    // An application variable is not a component key.
    assert_eq!(
        variable(&probe, "/exact", "secret_token"),
        json!({"error": {"undefined": "no variable for \"probe\".\"secret_token\""}})
    );
    assert_eq!(
        variable(&probe, "/exact", "Bad"),
        json!({"error": {"invalid-name": "\"Bad\": invalid character 'B'. Variable names may contain only lower-case letters, numbers, and underscores."}})
    );
    assert_eq!(
        variable(&probe, "/nodb/x", "component_id"),
        json!({"value": "probe-nodb"})
    );
}

#[test]
fn unknown_template_variables_fail_load() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_with_routes(dir.path(), &["/..."]);
    let text = std::fs::read_to_string(&manifest).unwrap()
        + "[component.probe.variables]\nx = \"{{ undeclared }}\"\n";
    std::fs::write(&manifest, text).unwrap();
    let error = Host::load(HostOptions::new(&manifest))
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("unknown variable \"undeclared\""), "{error}");
}

#[test]
fn a_missing_component_file_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spin.toml");
    std::fs::write(
        &path,
        "spin_manifest_version = 2\n[application]\nname = \"x\"\n[component.c]\nsource = \"nope.wasm\"\n",
    )
    .unwrap();
    let error = Host::load(HostOptions::new(&path))
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("run tests/run or spin build first"),
        "{error}"
    );
}

#[test]
fn the_routes_are_listed_in_precedence_order() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_with_routes(dir.path(), &["/...", "/a/:id", "/a/b"]);
    let host = Host::load(HostOptions::new(manifest)).unwrap();
    let routes: Vec<String> = host.routes().into_iter().map(|(route, _)| route).collect();
    assert_eq!(routes, vec!["/a/b", "/a/:id", "/..."]);
}

// --- selective deployment (`spin up -c`) ----------------------------------------------------

/// Writes a manifest with the cd-images app's components and routes (`spin.toml`), each
/// component played by the probe, which answers with its `component_id`. `extra` is appended.
fn app_like_manifest(dir: &Path, extra: &str) -> PathBuf {
    let source = probe_manifest()
        .parent()
        .unwrap()
        .join("../../../target/wasm32-wasip2/release/cd_probe.wasm");
    let routes = [
        ("/api/v1/registries/...", "registry"),
        ("/api/v1/tokens/...", "registry"),
        ("/api/v1/health/registry", "registry"),
        ("/api/v1/registries/:registry_id/images/...", "images"),
        ("/api/v1/images/...", "images"),
        ("/api/v1/health/images", "images"),
        ("/api/v1/deployments/...", "lead-time"),
        ("/api/v1/dora/...", "lead-time"),
        ("/api/v1/health/lead-time", "lead-time"),
    ];
    let mut text = String::from(
        "spin_manifest_version = 2\n[application]\nname = \"app-like\"\n\
         [variables]\nadmin_token = { required = true, secret = true }\n",
    );
    for (route, component) in routes {
        text.push_str(&format!(
            "[[trigger.http]]\nroute = \"{route}\"\ncomponent = \"{component}\"\n"
        ));
    }
    for component in ["registry", "images", "lead-time"] {
        text.push_str(&format!(
            "[component.{component}]\nsource = {:?}\n\
             [component.{component}.variables]\ncomponent_id = \"{component}\"\n\
             admin_token = \"{{{{ admin_token }}}}\"\n",
            source.display().to_string()
        ));
    }
    text.push_str(extra);
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Options for [`app_like_manifest`] serving only `components`.
fn app_like_options(manifest: &Path, components: &[&str]) -> HostOptions {
    let mut options = HostOptions::new(manifest);
    options.variables.insert("admin_token".into(), "t".into());
    options.components = components.iter().map(|id| id.to_string()).collect();
    options
}

/// The component that answered `path`, or the status and body length of a non-200 answer.
fn served_by(server: &RunningHost, path: &str) -> Result<String, (u16, usize)> {
    let response = http_request(server.addr(), "GET", path, &[], b"");
    if response.status != 200 {
        return Err((response.status, response.body.len()));
    }
    Ok(response.json()["component"]["value"]
        .as_str()
        .unwrap_or_else(|| panic!("no component_id in {}", response.text()))
        .to_string())
}

#[test]
fn retaining_one_component_serves_only_its_routes() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = app_like_manifest(dir.path(), "");
    let server = RunningHost::start(app_like_options(&manifest, &["registry"])).unwrap();

    assert_eq!(
        served_by(&server, "/api/v1/registries/7").as_deref(),
        Ok("registry")
    );
    assert_eq!(
        served_by(&server, "/api/v1/tokens").as_deref(),
        Ok("registry")
    );
    // The other components' routes are gone: Spin's no-match answer, 404 with no body.
    for path in [
        "/api/v1/images/abc",
        "/api/v1/health/images",
        "/api/v1/dora/lead-time",
    ] {
        assert_eq!(served_by(&server, path), Err((404, 0)), "{path}");
    }
    // Without the images route, registry's wildcard is what matches an images path.
    assert_eq!(
        served_by(&server, "/api/v1/registries/7/images/x").as_deref(),
        Ok("registry")
    );
    let health = http_request(server.addr(), "GET", "/.well-known/spin/health", &[], b"");
    assert_eq!((health.status, health.text().as_str()), (200, "OK"));
    assert!(
        server
            .host()
            .routes()
            .iter()
            .all(|(_, component)| component == "registry"),
        "{:?}",
        server.host().routes()
    );
}

#[test]
fn two_component_ids_serve_both() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = app_like_manifest(dir.path(), "");
    let server = RunningHost::start(app_like_options(&manifest, &["registry", "images"])).unwrap();

    assert_eq!(
        served_by(&server, "/api/v1/registries/7").as_deref(),
        Ok("registry")
    );
    assert_eq!(
        served_by(&server, "/api/v1/registries/7/images/x").as_deref(),
        Ok("images")
    );
    assert_eq!(
        served_by(&server, "/api/v1/images/abc").as_deref(),
        Ok("images")
    );
    assert_eq!(served_by(&server, "/api/v1/deployments"), Err((404, 0)));
}

#[test]
fn an_unknown_component_id_fails_load_with_spins_message() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = app_like_manifest(dir.path(), "");
    let error = Host::load(app_like_options(&manifest, &["registry", "imgaes"]))
        .err()
        .unwrap();
    let chain: Vec<String> = error.chain().map(ToString::to_string).collect();
    assert_eq!(
        chain,
        vec![
            "failed to resolve application with only components selected with --component",
            "Specified component \"imgaes\" not found in application",
        ]
    );
}

#[test]
fn a_dropped_components_undefined_sqlite_label_does_not_fail_load() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = app_like_manifest(dir.path(), "");
    let text = std::fs::read_to_string(&manifest).unwrap().replace(
        "[component.lead-time]\n",
        "[component.lead-time]\nsqlite_databases = [\"analytics\"]\n",
    );
    std::fs::write(&manifest, text).unwrap();

    let all = Host::load(app_like_options(&manifest, &[])).err().unwrap();
    assert!(
        all.to_string()
            .contains("- Component lead-time uses database 'analytics'"),
        "{all}"
    );
    let server = RunningHost::start(app_like_options(&manifest, &["registry"]))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        served_by(&server, "/api/v1/registries").as_deref(),
        Ok("registry")
    );
    // Selecting the component that uses it brings the check back.
    let selected = Host::load(app_like_options(&manifest, &["registry", "lead-time"]))
        .err()
        .unwrap();
    assert!(
        selected
            .to_string()
            .contains("- Component lead-time uses database 'analytics'"),
        "{selected}"
    );
}

#[test]
fn app_variables_stay_required_when_their_users_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    // Only images uses `extra`, and only registry is served.
    let manifest = app_like_manifest(dir.path(), "");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace(
            "[variables]\n",
            "[variables]\nextra = { required = true }\n",
        )
        .replace(
            "[component.images.variables]\n",
            "[component.images.variables]\nextra = \"{{ extra }}\"\n",
        );
    std::fs::write(&manifest, text).unwrap();
    let error = Host::load(app_like_options(&manifest, &["registry"]))
        .err()
        .unwrap();
    assert_eq!(
        error.to_string(),
        "no provider resolved required variable(s): extra"
    );
}

#[test]
fn the_binary_takes_repeated_component_ids_and_ignores_spin_components_to_retain() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_cd-host"))
            .args(["--manifest", &probe_manifest().display().to_string()])
            .args(["--database", &dir.path().join("db").display().to_string()])
            .args(["--variable", "secret_token=s3cret"])
            .args(args)
            .env_remove("SPIN_COMPONENTS_TO_RETAIN")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    // The first `-c` is known and the second is not: both were taken.
    let stderr = run(&["-c", "probe", "--component-id", "nope"], &[]);
    assert!(
        stderr.contains(
            "Error: failed to resolve application with only components selected with --component"
        ) && stderr.contains("Specified component \"nope\" not found in application"),
        "{stderr}"
    );
    // Spin CLI does not read the shim's variable: load succeeds and only the busy port fails.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = busy.local_addr().unwrap().to_string();
    let stderr = run(
        &["--listen", &listen],
        &[("SPIN_COMPONENTS_TO_RETAIN", "nope")],
    );
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}

// --- hostile clients ------------------------------------------------------------------------

/// Sends raw bytes as a request and reads the whole answer (the connection closes).
fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    raw
}

/// `request` (raw bytes) is answered 400 with a problem document saying `detail`.
fn assert_a_400_problem(addr: SocketAddr, request: &[u8], detail: &str) {
    let raw = raw_exchange(addr, request);
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    assert!(text.contains(detail), "{text}");
}

#[test]
fn a_header_value_that_is_not_utf8_is_a_400_problem_not_a_500() {
    let probe = Probe::start();
    assert_a_400_problem(
        probe.server.addr(),
        b"GET /exact HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-bin: \xff\xfe\r\n\r\n",
        "header x-bin is not UTF-8 text",
    );
}

#[test]
fn a_host_header_that_is_no_authority_is_a_400_problem_not_a_500() {
    let probe = Probe::start();
    assert_a_400_problem(
        probe.server.addr(),
        b"GET /exact HTTP/1.1\r\nhost: a b\r\nconnection: close\r\n\r\n",
        "is not a valid authority",
    );
}

#[test]
fn requests_past_the_instance_limit_get_a_503_and_stalled_bodies_free_their_instances() {
    let probe = Probe::with(|options| {
        options.limits.max_instances = 2;
        // Long enough that the stalled requests below surely hold their instances when the
        // third comes, however late this loaded machine runs the test's thread.
        options.limits.body_idle_timeout = std::time::Duration::from_secs(3);
    });
    // Two requests that announce a body and never send it: each holds an instance.
    let stalled: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = TcpStream::connect(probe.server.addr()).unwrap();
            stream
                .write_all(b"POST /exact HTTP/1.1\r\nhost: x\r\ncontent-length: 2000\r\n\r\n{")
                .unwrap();
            stream
        })
        .collect();
    let sent = std::time::Instant::now();
    // Time for the host to read both heads; not polled, since a GET that came first would
    // take an instance and leave one stalled request refused (the test's own race).
    std::thread::sleep(std::time::Duration::from_millis(500));
    let busy = probe.get("/exact");
    assert_eq!(busy.status, 503, "{}", busy.text());
    let problem = busy.json();
    assert_eq!(problem["status"], 503, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("retry"),
        "{problem}"
    );
    // The stalled bodies time out (3 s), their instances end, and the host serves again:
    // polled, since on a loaded 2-core machine the timeout's task may run late.
    let deadline = sent + std::time::Duration::from_secs(15);
    std::thread::sleep(std::time::Duration::from_secs(3).saturating_sub(sent.elapsed()));
    while probe.get("/exact").status != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "still refused 12 s after the stalled bodies' idle timeout"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(stalled);
}

#[test]
fn connections_past_the_limit_are_refused_with_a_503_and_idle_ones_time_out() {
    let probe = Probe::with(|options| {
        options.limits.max_connections = 3;
        // Long enough that the idle connections surely still count when the fourth comes.
        options.limits.header_timeout = std::time::Duration::from_secs(3);
    });
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(probe.server.addr()).unwrap())
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let refused = raw_exchange(
        probe.server.addr(),
        b"GET /exact HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&refused);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 1"),
        "{text}"
    );
    // A connection that sends no request head is closed after the header timeout.
    for mut stream in idle {
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(15)))
            .unwrap();
        let mut rest = Vec::new();
        let read = stream.read_to_end(&mut rest);
        assert!(read.is_ok(), "the idle connection was not closed: {read:?}");
    }
    assert_eq!(probe.get("/exact").status, 200);
}

/// With its file descriptors exhausted, the host keeps serving once they are free again
/// (`accept` failing with EMFILE used to end the serve loop and the process).
#[test]
fn running_out_of_file_descriptors_does_not_end_the_host() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let command = format!(
        "ulimit -n 96 && exec '{}' --manifest '{}' --database '{}' --listen 127.0.0.1:0 \
         --variable secret_token=s3cret",
        env!("CARGO_BIN_EXE_cd-host"),
        probe_manifest().display(),
        dir.path().join("probe.db").display(),
    );
    let mut child = std::process::Command::new("sh")
        .args(["-c", &command])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("Serving http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    // More connections than the host has descriptors: accept fails for the rest.
    let flood: Vec<TcpStream> = (0..150)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    drop(flood);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let alive = http_request(addr, "GET", "/exact", &[], b"");
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(alive.status, 200, "{stderr}");
    assert!(stderr.contains("accept failed"), "{stderr}");
}
