//! The end-to-end harness: a fresh host on 127.0.0.1:0 with a fresh database per test, and a
//! small blocking HTTP client over real sockets.
//!
//! Guest output (the components' stderr: logged 5xx causes) is printed when a test fails, so a
//! failure shows what the component said.

use std::collections::HashMap;
use std::path::PathBuf;

use bytes::Bytes;
use cd_host::{HostOptions, RunningHost};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct TestApp {
    pub host: RunningHost,
    pub database: PathBuf,
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

impl TestApp {
    /// The app with the admin token set and default limits.
    pub fn spawn() -> TestApp {
        Self::spawn_with(&[])
    }

    /// The app with extra runtime variables (`spin up --variable k=v`).
    pub fn spawn_with(variables: &[(&str, &str)]) -> TestApp {
        let dir = tempfile::tempdir().expect("a temp dir");
        let database = dir.path().join("sqlite_db.db");
        let mut options = HostOptions::new(manifest());
        options.database = Some(database.clone());
        options.variables = HashMap::from([("admin_token".to_owned(), ADMIN_TOKEN.to_owned())]);
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
            database,
            runtime,
            _dir: dir,
        }
    }

    pub fn request(&self, method: &str, path: &str) -> RequestBuilder<'_> {
        RequestBuilder {
            app: self,
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
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

    async fn send(&self, request: http::Request<Full<Bytes>>) -> TestResponse {
        let stream = tokio::net::TcpStream::connect(self.host.addr())
            .await
            .expect("connect to the host");
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("handshake");
        tokio::spawn(connection);
        let response = sender.send_request(request).await.expect("a response");
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .expect("the whole body")
            .to_bytes()
            .to_vec();
        TestResponse {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }
}

pub struct RequestBuilder<'a> {
    app: &'a TestApp,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RequestBuilder<'_> {
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
        let mut request = http::Request::builder()
            .method(self.method.as_str())
            .uri(&self.path)
            .header("host", self.app.host.addr().to_string());
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(self.body)))
            .expect("a valid request");
        let app = self.app;
        app.runtime.block_on(app.send(request))
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
