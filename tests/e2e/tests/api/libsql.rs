//! Migration 0007 and its copy on a libSQL server (`sqld`, `../shared/bin/sqld` or `CD_SQLD`),
//! where a deployment with many replicas keeps its database: the SQL the upgrade runs —
//! `unhex`, `unixepoch`, renames under foreign keys, the trigger's `WHEN`, copies that keep
//! rowids — must run there exactly as on Spin's bundled SQLite.
//!
//! cd-core is driven directly through a `Db` over sqld's Hrana HTTP protocol (`/v2/pipeline`,
//! one stream per `Db`, kept by its baton so transactions span statements). The components'
//! own connection to a libSQL server is the scale-out issue's.

use std::cell::RefCell;
use std::process::{Child, Command};

use base64::Engine as _;
use cd_core::{Db, DbError, Rows, Value};
use serde_json::{Value as Json, json};

/// A running sqld on loopback, killed on drop.
struct Sqld {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Sqld {
    fn start() -> Sqld {
        let binary = std::env::var("CD_SQLD")
            .unwrap_or_else(|_| format!("{}/../../../shared/bin/sqld", env!("CARGO_MANIFEST_DIR")));
        assert!(
            std::path::Path::new(&binary).exists(),
            "no sqld at {binary} (set CD_SQLD; ../shared/bin/README.md)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&binary)
            .arg("--db-path")
            .arg(dir.path().join("data.sqld"))
            .arg("--http-listen-addr")
            .arg(format!("127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("sqld starts");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "sqld did not listen");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Sqld {
            child,
            url,
            _dir: dir,
        }
    }
}

impl Drop for Sqld {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// cd-core's `Db` over one Hrana stream.
struct HranaDb {
    url: String,
    baton: RefCell<Option<String>>,
    runtime: tokio::runtime::Runtime,
}

impl HranaDb {
    fn connect(sqld: &Sqld) -> HranaDb {
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

fn one(db: &HranaDb, sql: &str) -> Value {
    db.execute(sql, &[]).unwrap().rows[0][0].clone()
}

/// Rows of schema 6 (the text encoding) as the build before 0007 wrote them: a token, a
/// registry, two images (one without a commit time; schema 6's trigger moves their channel)
/// and a deployment.
const SCHEMA_6_ROWS: [&str; 7] = [
    "INSERT INTO api_tokens (token_id, org_id, role, name, token_sha256, created_at) VALUES \
     ('01900000-0000-7000-8000-000000000001', 'acme', 'admin', 't', 'ab', '2026-05-01T00:00:00.000000Z')",
    "INSERT INTO image_registries (registry_id, org_id, image_repository_name, public, \
       container_registry_id, created_at, updated_at) VALUES \
     ('01900000-0000-7000-8000-000000000002', 'acme', 'app', 0, 'ghcr', \
      '2026-05-01T00:00:00.000000Z', '2026-05-01T00:00:00.000000Z')",
    "INSERT INTO images (image_id, org_id, registry_id, channel, version, update_type, tag_name, \
       image_name, image_name_with_tag, status, tags, git_hash, git_hash_commit_timestamp, run_id, \
       image_ports, cluster_image_tags, request_sha256, built_at, updated_at) VALUES \
     ('01900000-0000-7000-8000-00000000000a', 'acme', '01900000-0000-7000-8000-000000000002', \
      'default', 'default-0.0.1', 'patch', 't1', 'i', 'i:t1', 'active', '[]', 'abcdef1', \
      '2026-05-01T10:00:00.123456Z', 'run-1', '[]', '[]', \
      'a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4', \
      '2026-05-01T11:00:00.000000Z', '2026-05-01T11:00:00.000000Z')",
    "INSERT INTO images (image_id, org_id, registry_id, channel, version, update_type, tag_name, \
       image_name, image_name_with_tag, status, tags, git_hash, run_id, image_ports, \
       cluster_image_tags, request_sha256, built_at, updated_at) VALUES \
     ('01900000-0000-7000-8000-00000000000b', 'acme', '01900000-0000-7000-8000-000000000002', \
      'default', 'default-0.0.2', 'patch', 't2', 'i', 'i:t2', 'inactive', '[\"x\"]', 'abcdef2', \
      'run-2', '[]', '[]', \
      'ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff', \
      '2026-05-02T00:00:00.000000Z', '2026-05-02T00:00:00.000000Z')",
    "INSERT INTO environments (environment_id, org_id, name, prod, created_at, updated_at) VALUES \
     ('01900000-0000-7000-8000-000000000020', 'acme', 'production', 1, \
      '2026-05-01T12:00:00.000000Z', '2026-05-01T12:00:00.000000Z')",
    "INSERT INTO app_environments (app_environment_id, org_id, project_id, app_id, environment_id, \
       created_at) VALUES ('01900000-0000-7000-8000-000000000021', 'acme', 'p', 'app', \
      '01900000-0000-7000-8000-000000000020', '2026-05-01T12:00:00.000000Z')",
    "INSERT INTO image_lead_times (lead_time_id, org_id, image_id, app_environment_id, deployment_id, \
       project_id, app_id, environment, prod, git_hash, git_hash_commit_timestamp, \
       image_name_with_tag, created_at, duration_mins, recorded_at) VALUES \
     ('01900000-0000-7000-8000-000000000030', 'acme', '01900000-0000-7000-8000-00000000000a', \
      '01900000-0000-7000-8000-000000000021', 'd-1', 'p', 'app', 'production', 1, 'abcdef1', \
      '2026-05-01T10:00:00.123456Z', 'i:t1', '2026-05-01T12:00:00.000000Z', \
      119.9979424, '2026-05-01T12:00:00.000000Z')",
];

#[test]
fn the_upgrade_to_the_compact_encoding_runs_on_a_libsql_server() {
    let sqld = Sqld::start();
    let db = HranaDb::connect(&sqld);
    cd_core::testing::create_schema_at(&db, 6).unwrap();
    for statement in SCHEMA_6_ROWS {
        db.execute(statement, &[]).unwrap();
    }
    // Migrated with the copy pending, as a large database is, then copied step by step.
    assert_eq!(cd_core::testing::ensure_schema_copying(&db).unwrap(), 6);
    let mut steps = 0;
    while cd_core::testing::pending_backfill_step(&db).unwrap() {
        steps += 1;
        assert!(steps < 100, "the upgrade does not end");
    }
    assert_eq!(
        one(
            &db,
            "SELECT count(*) FROM sqlite_master WHERE name LIKE '%\\_text' ESCAPE '\\'"
        ),
        Value::Integer(0)
    );
    assert_eq!(
        one(
            &db,
            "SELECT lower(hex(image_id)) || ' ' || git_hash_commit_timestamp || ' ' || built_at \
             || ' ' || (SELECT org_id FROM orgs WHERE orgs.org_key = images.org_key) \
             || ' ' || lower(hex(request_sha256)) FROM images WHERE run_id = 'run-1'"
        ),
        Value::Text(
            "0190000000007000800000000000000a 1777629600123456 1777633200000000 acme \
             a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4"
                .to_owned()
        )
    );
    assert_eq!(
        one(&db, "SELECT duration_micros FROM image_lead_times"),
        Value::Integer(7_199_876_544)
    );
    // The channel kept its version through the copy, and the trigger moves it for a new image.
    db.execute(
        "INSERT INTO images (image_id, org_key, registry_key, channel, version, update_type, \
           tag_name, image_name, image_name_with_tag, status, tags, git_hash, run_id, image_ports, \
           cluster_image_tags, request_sha256, built_at, updated_at) \
         SELECT x'0190000000007000800000000000000c', org_key, registry_key, 'default', \
           'default-0.0.3', 'patch', 't3', 'i', 'i:t3', 'active', '[]', 'abcdef3', 'run-3', '[]', \
           '[]', x'00', 1777680000000000, 1777680000000000 FROM image_registries",
        &[],
    )
    .unwrap();
    assert_eq!(
        one(
            &db,
            "SELECT major || '.' || minor || '.' || patch FROM image_versions"
        ),
        Value::Text("0.0.3".to_owned())
    );
    // A new database on the server gets the current schema in one go.
    let fresh = Sqld::start();
    let fresh = HranaDb::connect(&fresh);
    assert_eq!(cd_core::testing::ensure_schema(&fresh).unwrap(), 0);
    assert_eq!(
        one(&fresh, "SELECT max(version) FROM schema_migrations"),
        Value::Integer(cd_core::testing::latest_schema_version())
    );
}
