//! The end-to-end harness: a fresh host on 127.0.0.1:0 with a fresh database per test, and a
//! small blocking HTTP client over real sockets.
//!
//! The database is a file, or with `CD_E2E_DATABASE=libsql` a libSQL server (a `sqld` of its
//! own per test) named in a Spin runtime-config file, as a deployment with replicas has it:
//! tests/run runs the whole suite both ways. Tests look into the database through cd-core's
//! `Db` ([`TestApp::sql`]), so the same test reads a file or the server.
//!
//! Guest output (the components' stderr: logged 5xx causes) is printed when a test fails, so a
//! failure shows what the component said.

use std::collections::HashMap;
use std::path::PathBuf;

use bytes::Bytes;
use cd_core::Db;
use cd_host::runtime_config::RuntimeConfig;
use cd_host::{HostOptions, RunningHost};

use crate::sqld::{HranaDb, Sqld};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

/// The deployment's `webhook_signing_key` (receivers' secrets derive from it).
pub const WEBHOOK_SIGNING_KEY: &str = "e2e webhook signing key: 32 bytes or more";

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct TestApp {
    pub host: RunningHost,
    pub storage: Storage,
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- guest output ---\n{}", self.host.host().guest_output());
        }
    }
}

pub fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../spin.toml")
}

/// Where a test app keeps its data.
pub enum Storage {
    /// The file behind `default`.
    File(PathBuf),
    /// A libSQL server of the test's own.
    Server(Sqld),
}

/// Whether this run of the suite puts its databases on a libSQL server.
pub fn on_libsql() -> bool {
    std::env::var("CD_E2E_DATABASE").is_ok_and(|kind| kind == "libsql")
}

impl TestApp {
    /// The app with the admin token set and default limits.
    pub fn spawn() -> TestApp {
        Self::spawn_with(&[])
    }

    /// The app with extra runtime variables (`spin up --variable k=v`).
    pub fn spawn_with(variables: &[(&str, &str)]) -> TestApp {
        Self::spawn_on(on_libsql(), variables)
    }

    /// The app on a file, in either run: for what only a file has (its journal mode, a lock
    /// another process takes on it).
    pub fn spawn_on_file() -> TestApp {
        Self::spawn_on(false, &[])
    }

    fn spawn_on(server: bool, variables: &[(&str, &str)]) -> TestApp {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut options = HostOptions::new(manifest());
        let storage = if server {
            let sqld = Sqld::start();
            // Through a runtime-config file, as `spin up --runtime-config-file` reads it.
            let config = sqld.runtime_config();
            options.runtime_config = Some(RuntimeConfig::load(&config).unwrap());
            Storage::Server(sqld)
        } else {
            let database = dir.path().join("sqlite_db.db");
            options.database = Some(database.clone());
            Storage::File(database)
        };
        options.variables = HashMap::from([
            ("admin_token".to_owned(), ADMIN_TOKEN.to_owned()),
            (
                "webhook_signing_key".to_owned(),
                WEBHOOK_SIGNING_KEY.to_owned(),
            ),
        ]);
        for (name, value) in variables {
            options
                .variables
                .insert((*name).to_owned(), (*value).to_owned());
        }
        let host = RunningHost::start(options)
            .expect("the host starts (run tests/run to build the components)");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        TestApp {
            host,
            storage,
            runtime,
            _dir: dir,
        }
    }

    /// A connection to the app's database, beside the app's own.
    pub fn sql(&self) -> Box<dyn Db> {
        match &self.storage {
            Storage::File(path) => Box::new(cd_core::testing::RusqliteDb::open(path).unwrap()),
            Storage::Server(sqld) => Box::new(HranaDb::connect(sqld)),
        }
    }

    /// The first column of the first row `sql` answers.
    pub fn one(&self, sql: &str, params: &[cd_core::Value]) -> cd_core::Value {
        let rows = self.sql().execute(sql, params).expect("the query runs");
        rows.rows
            .first()
            .and_then(|row| row.first())
            .cloned()
            .unwrap_or(cd_core::Value::Null)
    }

    /// `one` for an integer (a count).
    pub fn count(&self, sql: &str) -> i64 {
        match self.one(sql, &[]) {
            cd_core::Value::Integer(n) => n,
            other => panic!("{sql}: expected an integer, got {other:?}"),
        }
    }

    /// The file behind the app's database; panics on a libSQL server.
    pub fn file(&self) -> &std::path::Path {
        match &self.storage {
            Storage::File(path) => path,
            Storage::Server(_) => panic!("this test needs a file (TestApp::spawn_on_file)"),
        }
    }

    pub fn request(&self, method: &str, path: &str) -> RequestBuilder<'_> {
        RequestBuilder::new(&self.runtime, self.host.addr(), method, path)
    }

    pub fn get(&self, path: &str) -> RequestBuilder<'_> {
        self.request("GET", path)
    }

    pub fn post(&self, path: &str, body: &Value) -> RequestBuilder<'_> {
        self.request("POST", path).json(body)
    }

    pub fn put(&self, path: &str, body: &Value) -> RequestBuilder<'_> {
        self.request("PUT", path).json(body)
    }

    pub fn patch(&self, path: &str, body: &Value) -> RequestBuilder<'_> {
        self.request("PATCH", path).json(body)
    }

    pub fn delete(&self, path: &str) -> RequestBuilder<'_> {
        self.request("DELETE", path)
    }

    /// A new token of `role` for `org`, minted by the bootstrap admin.
    pub fn token(&self, org: &str, role: &str) -> String {
        let response = self
            .post(
                "/api/v1/tokens",
                &json!({"org_id": org, "role": role, "name": format!("{org}-{role}")}),
            )
            .bearer(ADMIN_TOKEN)
            .send();
        response.assert_status(201);
        response.json()["token"].as_str().unwrap().to_owned()
    }

    /// Creates a registry with `token` and returns its JSON.
    pub fn registry(&self, token: &str, name: &str, public: bool) -> Value {
        let response = self
            .post(
                "/api/v1/registries",
                &json!({"image_repository_name": name, "container_registry_id": "ghcr", "public": public}),
            )
            .bearer(token)
            .send();
        response.assert_status(201);
        response.json()
    }
}

/// A minimal CD request for `run_id` on the `default` channel (a patch bump), with a commit
/// time so that its deployments have a lead time.
pub fn cd_request(run_id: &str) -> Value {
    json!({
        "channel": "default",
        "update_type": "patch",
        "tag_name": run_id,
        "image_name": "ghcr.io/acme/app",
        "image_name_with_tag": format!("ghcr.io/acme/app:{run_id}"),
        "git_hash": "3f786850e387550fdab836ed7e6dc881de23001b",
        "git_hash_commit_timestamp": "2026-03-02T09:00:00Z",
        "run_id": run_id,
    })
}

/// Sends one request over a new connection to `addr` and reads the whole answer; `Err` when
/// the connection fails (a host that is gone).
async fn send_to(
    addr: std::net::SocketAddr,
    request: http::Request<Full<Bytes>>,
) -> Result<TestResponse, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("no response: {e}"))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes()
        .to_vec();
    Ok(TestResponse {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// One request to a host at `addr`, driven on `runtime`.
pub struct RequestBuilder<'a> {
    runtime: &'a tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl<'a> RequestBuilder<'a> {
    pub fn new(
        runtime: &'a tokio::runtime::Runtime,
        addr: std::net::SocketAddr,
        method: &str,
        path: &str,
    ) -> Self {
        RequestBuilder {
            runtime,
            addr,
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn json(self, body: &Value) -> Self {
        self.raw("application/json", serde_json::to_vec(body).unwrap())
    }

    pub fn raw(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self.header("content-type", content_type)
    }

    pub fn send(self) -> TestResponse {
        self.try_send().expect("a response")
    }

    /// `send`, for a host that may be gone.
    pub fn try_send(self) -> Result<TestResponse, String> {
        let mut request = http::Request::builder()
            .method(self.method.as_str())
            .uri(&self.path)
            .header("host", self.addr.to_string());
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(self.body)))
            .expect("a valid request");
        self.runtime.block_on(send_to(self.addr, request))
    }
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl TestResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.text()
        );
        self
    }

    /// Asserts an RFC 9457 problem with `status` (and `field`, when given) and returns it.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, field: Option<&str>) -> Value {
        self.assert_status(status);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text()
        );
        let problem = self.json();
        assert_eq!(problem["status"], status, "{problem}");
        assert!(
            problem["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("urn:cd-images:problem:")),
            "{problem}"
        );
        assert!(
            problem["title"].is_string() && problem["detail"].is_string(),
            "{problem}"
        );
        if let Some(field) = field {
            assert_eq!(problem["field"], field, "{problem}");
        }
        problem
    }
}
