//! A libSQL server for the tests (`cd_host::sqld`, in a temporary directory of its own), and
//! cd-core's `Db` over its Hrana HTTP
//! protocol (`/v2/pipeline`, one stream per `Db`, kept by its baton so transactions span
//! statements) for looking into what the components stored.

use std::cell::RefCell;

use base64::Engine as _;
use cd_core::{Db, DbError, Rows, Value};
use serde_json::{Value as Json, json};

/// A sqld of a test's own (`cd_host::sqld`), its data in a temporary directory.
pub struct Sqld {
    server: cd_host::sqld::Sqld,
    pub url: String,
    dir: tempfile::TempDir,
}

impl Sqld {
    /// A sqld for `test`, or `None` — said in one loud line — where none is installed and
    /// `CD_SQLD` names none (tests/run sets `CD_SQLD` whenever it finds one, and CI always).
    pub fn start_or_skip(test: &str) -> Option<Sqld> {
        if cd_host::sqld::binary().is_none() {
            eprintln!("!!! SKIPPED {test}: no sqld (set CD_SQLD; README → Testing) !!!");
            return None;
        }
        Some(Sqld::start())
    }

    pub fn start() -> Sqld {
        let binary =
            cd_host::sqld::binary().expect("no sqld: set CD_SQLD (../shared/bin/README.md)");
        let dir = tempfile::tempdir().unwrap();
        let server = cd_host::sqld::Sqld::start(&binary, dir.path())
            .unwrap_or_else(|error| panic!("sqld at {}: {error:#}", binary.display()));
        Sqld {
            url: server.url.clone(),
            server,
            dir,
        }
    }

    /// A Spin runtime-config file, in the server's own directory, that makes this server the
    /// `default` database, as a deployment names it.
    pub fn runtime_config(&self) -> std::path::PathBuf {
        self.server
            .write_runtime_config(self.dir.path())
            .expect("the runtime config is written")
    }
}

/// cd-core's `Db` over one Hrana stream.
pub struct HranaDb {
    url: String,
    baton: RefCell<Option<String>>,
    runtime: tokio::runtime::Runtime,
}

impl HranaDb {
    pub fn connect(sqld: &Sqld) -> HranaDb {
        HranaDb {
            url: sqld.url.clone(),
            baton: RefCell::new(None),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    fn post(&self, body: Json) -> Json {
        let uri: http::Uri = format!("{}/v2/pipeline", self.url).parse().unwrap();
        self.runtime.block_on(async move {
            use http_body_util::BodyExt;
            let authority = uri.authority().unwrap().clone();
            let stream = tokio::net::TcpStream::connect(authority.as_str())
                .await
                .unwrap();
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(connection);
            let request = http::Request::post(uri.path())
                .header("host", authority.as_str())
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(bytes::Bytes::from(
                    serde_json::to_vec(&body).unwrap(),
                )))
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice(&bytes).unwrap()
        })
    }
}

fn to_hrana(value: &Value) -> Json {
    match value {
        Value::Integer(n) => json!({"type": "integer", "value": n.to_string()}),
        Value::Real(x) => json!({"type": "float", "value": x}),
        Value::Text(t) => json!({"type": "text", "value": t}),
        Value::Blob(b) => json!({"type": "blob",
            "base64": base64::engine::general_purpose::STANDARD_NO_PAD.encode(b)}),
        Value::Null => json!({"type": "null"}),
    }
}

fn from_hrana(value: &Json) -> Value {
    match value["type"].as_str() {
        Some("integer") => Value::Integer(value["value"].as_str().unwrap().parse().unwrap()),
        Some("float") => Value::Real(value["value"].as_f64().unwrap()),
        Some("text") => Value::Text(value["value"].as_str().unwrap().to_owned()),
        Some("blob") => {
            let encoded = value["base64"].as_str().unwrap().trim_end_matches('=');
            Value::Blob(
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(encoded)
                    .unwrap(),
            )
        }
        _ => Value::Null,
    }
}

impl Db for HranaDb {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let body = json!({
            "baton": *self.baton.borrow(),
            "requests": [{"type": "execute",
                          "stmt": {"sql": sql, "args": params.iter().map(to_hrana).collect::<Vec<_>>()}}],
        });
        let answer = self.post(body);
        *self.baton.borrow_mut() = answer["baton"].as_str().map(str::to_owned);
        let result = &answer["results"][0];
        if result["type"] != "ok" {
            let message = result["error"]["message"]
                .as_str()
                .map_or_else(|| answer.to_string(), str::to_owned);
            return Err(DbError::from_message(message));
        }
        let result = &result["response"]["result"];
        Ok(Rows {
            columns: result["cols"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap_or("").to_owned())
                .collect(),
            rows: result["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| row.as_array().unwrap().iter().map(from_hrana).collect())
                .collect(),
        })
    }
}
