//! Storage fault injection: every write path, with a failure injected at each of its
//! statements in turn (busy, shed by an overloaded libSQL server, I/O error, full disk). After
//! each failure the answer is a problem+json 5xx (503 for busy and overloaded) — not a panic,
//! not a hang — and the database holds all of
//! the write or none of it, checked by reading it back. The connection outlives the request
//! here (unlike in Spin), so a transaction left open would also show: the retry would fail.

use std::cell::Cell;

use crate::db::{Db, DbError, Rows, Value};
use crate::testing::RusqliteDb;
use crate::testing::fixtures::{Handler, SequentialIds, serve};

const ADMIN: &str = "fault-admin-token";

/// Fails the statement numbered `fail_at` (counting from when it is armed) with `error`.
struct FailingDb {
    inner: RusqliteDb,
    fail_at: Cell<Option<usize>>,
    executed: Cell<usize>,
    error: DbError,
}

impl Db for FailingDb {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let n = self.executed.get();
        self.executed.set(n + 1);
        // ROLLBACK is the recovery path; failing it too is a different (double) fault.
        if self.fail_at.get() == Some(n) && sql != "ROLLBACK" {
            return Err(self.error.clone());
        }
        self.inner.execute(sql, params)
    }
}

impl FailingDb {
    fn new(error: DbError) -> FailingDb {
        FailingDb {
            inner: RusqliteDb::open_in_memory(),
            fail_at: Cell::new(None),
            executed: Cell::new(0),
            error,
        }
    }

    fn arm(&self, fail_at: Option<usize>) {
        self.executed.set(0);
        self.fail_at.set(fail_at);
    }

    fn count(&self, sql: &str) -> i64 {
        match self.inner.execute(sql, &[]).unwrap().rows[0][0] {
            Value::Integer(n) => n,
            ref other => panic!("not a count: {other:?}"),
        }
    }

    fn text(&self, sql: &str) -> Option<String> {
        self.inner
            .execute(sql, &[])
            .unwrap()
            .rows
            .first()
            .map(|row| match &row[0] {
                Value::Text(t) => t.clone(),
                other => format!("{other:?}"),
            })
    }
}

struct World {
    db: FailingDb,
    ids: SequentialIds,
}

impl World {
    fn new(error: DbError) -> World {
        World {
            db: FailingDb::new(error),
            ids: SequentialIds::default(),
        }
    }

    fn call(
        &self,
        handler: Handler,
        method: &str,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value, String) {
        let response = serve(
            &self.db,
            &self.ids,
            ADMIN,
            handler,
            (method, path),
            token,
            &body,
        );
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let json = serde_json::from_slice(response.body()).unwrap_or(serde_json::Value::Null);
        (response.status().as_u16(), json, content_type)
    }

    /// An org write token, a registry and an image: what the write paths start from.
    fn seed(&self) -> (String, String, String) {
        let (status, token, _) = self.call(
            crate::handle_registry_request,
            "POST",
            "/api/v1/tokens",
            ADMIN,
            serde_json::json!({"org_id": "acme", "role": "admin", "name": "t"}),
        );
        assert_eq!(status, 201);
        let token = token["token"].as_str().unwrap().to_owned();
        let (status, registry, _) = self.call(
            crate::handle_registry_request,
            "POST",
            "/api/v1/registries",
            &token,
            serde_json::json!({"image_repository_name": "app", "container_registry_id": "ghcr"}),
        );
        assert_eq!(status, 201);
        let registry_id = registry["registry_id"].as_str().unwrap().to_owned();
        let (status, image, _) = self.call(
            crate::handle_images_request,
            "POST",
            &format!("/api/v1/registries/{registry_id}/images"),
            &token,
            cd_request("seed"),
        );
        assert_eq!(status, 201);
        (
            token,
            registry_id,
            image["image_id"].as_str().unwrap().to_owned(),
        )
    }
}

fn cd_request(run_id: &str) -> serde_json::Value {
    serde_json::json!({"tag_name": "t", "image_name": "i", "image_name_with_tag": "i:t", "git_hash": "abcdef1",
        "git_hash_commit_timestamp": "2026-06-01T11:00:00Z", "run_id": run_id, "tags": ["a"]})
}

/// The seeded org token, registry id and image id.
type Seeded = (String, String, String);

/// A write to replay: handler, method, path, body.
type WriteRequest = (Handler, &'static str, String, serde_json::Value);

/// One write path: what it does, and how to read back whether it happened.
struct Scenario {
    name: &'static str,
    /// What the write path needs first (with no fault armed).
    setup: fn(&World, &Seeded),
    /// (handler, method, path, body) from the seeded ids (and the rows `setup` made).
    request: fn(&Seeded, &FailingDb) -> WriteRequest,
    /// Reads the database: `Some(true)` all of the write, `Some(false)` none; `None` half.
    applied: fn(&FailingDb) -> Option<bool>,
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "create image",
            setup: no_setup,
            request: |(_, registry_id, _), _| {
                (
                    crate::handle_images_request,
                    "POST",
                    format!("/api/v1/registries/{registry_id}/images"),
                    cd_request("new"),
                )
            },
            applied: |db| {
                let images = db.count("SELECT COUNT(*) FROM images WHERE run_id = 'new'");
                let version = db.text("SELECT major || '.' || minor || '.' || patch FROM image_versions WHERE channel = 'default'");
                match (images, version.as_deref()) {
                    (1, Some("0.0.2")) => Some(true),
                    (0, Some("0.0.1")) => Some(false),
                    _ => None,
                }
            },
        },
        Scenario {
            name: "bump",
            setup: no_setup,
            request: |(_, registry_id, _), _| {
                (
                    crate::handle_registry_request,
                    "POST",
                    format!("/api/v1/registries/{registry_id}/channels/beta/bump"),
                    serde_json::json!({"update_type": "minor"}),
                )
            },
            applied: |db| {
                match db.text("SELECT major || '.' || minor || '.' || patch FROM image_versions WHERE channel = 'beta'").as_deref() {
                Some("0.1.0") => Some(true),
                None => Some(false),
                _ => None,
            }
            },
        },
        Scenario {
            name: "record deployment",
            setup: no_setup,
            request: |(_, _, image_id), _| {
                (
                    crate::handle_lead_time_request,
                    "POST",
                    "/api/v1/deployments".to_owned(),
                    serde_json::json!({"image_id": image_id, "project_id": "p", "app_id": "a", "environment": "production", "prod": true}),
                )
            },
            applied: |db| {
                let records = db.count("SELECT COUNT(*) FROM image_lead_times");
                let environments = db.count("SELECT COUNT(*) FROM environments");
                let app_environments = db.count("SELECT COUNT(*) FROM app_environments");
                match (records, environments, app_environments) {
                    (1, 1, 1) => Some(true),
                    (0, 0, 0) => Some(false),
                    _ => None,
                }
            },
        },
        Scenario {
            name: "create token",
            setup: no_setup,
            request: |_, _| {
                (
                    crate::handle_registry_request,
                    "POST",
                    "/api/v1/tokens".to_owned(),
                    serde_json::json!({"org_id": "globex", "role": "read", "name": "new"}),
                )
            },
            applied: |db| match db.count(
                "SELECT COUNT(*) FROM api_tokens JOIN orgs USING (org_key) WHERE org_id = 'globex'",
            ) {
                1 => Some(true),
                0 => Some(false),
                _ => None,
            },
        },
    ]
}

fn no_setup(_: &World, _: &Seeded) {}

/// Deploys `image_id` to p/a/production at `at` with `extra` fields; the answer's status.
fn deploy(
    world: &World,
    (token, _, image_id): &Seeded,
    image: Option<&str>,
    at: &str,
    extra: serde_json::Value,
) {
    let mut body = serde_json::json!({"image_id": image.unwrap_or(image_id), "project_id": "p",
        "app_id": "a", "environment": "production", "prod": true, "deployed_at": at});
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    let (status, answer, _) = world.call(
        crate::handle_lead_time_request,
        "POST",
        "/api/v1/deployments",
        token,
        body,
    );
    assert!(status == 201, "setup deployment: {status} {answer}");
}

/// The seeded image deployed as `d1` at 10:00, and (with `failure`) failure F1 reported
/// against it at 10:30.
fn deployed(world: &World, seeded: &Seeded, failure: bool) {
    deploy(
        world,
        seeded,
        None,
        "2026-06-01T10:00:00Z",
        serde_json::json!({"deployment_id": "d1"}),
    );
    if failure {
        let (status, answer, _) = world.call(
            crate::handle_lead_time_request,
            "POST",
            "/api/v1/failures",
            &seeded.0,
            serde_json::json!({"failure_id": "F1", "deployment_id": "d1",
                               "started_at": "2026-06-01T10:30:00Z"}),
        );
        assert_eq!(status, 201, "setup failure: {answer}");
    }
}

/// The hyphenated id of the deployment recorded as `d1`.
fn d1(db: &FailingDb) -> String {
    let hex = db
        .text("SELECT lower(hex(lead_time_id)) FROM image_lead_times WHERE deployment_id = 'd1'")
        .unwrap();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// (deployments, failed ones, rework ones, failures, open failures, the rollup's failed and
/// rework sums): every place an outcome is written.
fn outcomes(db: &FailingDb) -> [i64; 7] {
    [
        db.count("SELECT COUNT(*) FROM image_lead_times"),
        db.count("SELECT COUNT(*) FROM image_lead_times WHERE status = 'failed'"),
        db.count("SELECT COUNT(*) FROM image_lead_times WHERE kind = 'rework'"),
        db.count("SELECT COUNT(*) FROM failures"),
        db.count("SELECT COUNT(*) FROM failures WHERE resolved_at IS NULL"),
        db.count("SELECT coalesce(sum(failed), 0) FROM lead_time_days"),
        db.count("SELECT coalesce(sum(rework), 0) FROM lead_time_days"),
    ]
}

/// The outcome write paths: `Some(true)` when [`outcomes`] reads `after`, `Some(false)` when
/// it reads `before`.
fn outcome_scenarios() -> Vec<Scenario> {
    fn judge(db: &FailingDb, before: [i64; 7], after: [i64; 7]) -> Option<bool> {
        match outcomes(db) {
            now if now == after => Some(true),
            now if now == before => Some(false),
            _ => None,
        }
    }
    vec![
        Scenario {
            name: "record a failed deployment",
            setup: no_setup,
            request: |(_, _, image_id), _| {
                (
                    crate::handle_lead_time_request,
                    "POST",
                    "/api/v1/deployments".to_owned(),
                    serde_json::json!({"image_id": image_id, "project_id": "p", "app_id": "a",
                        "environment": "production", "prod": true, "status": "failed",
                        "started_at": "2026-06-01T11:50:00Z"}),
                )
            },
            applied: |db| judge(db, [0; 7], [1, 1, 0, 1, 1, 1, 0]),
        },
        Scenario {
            name: "record a rollback",
            // The seeded image at 10:00, a newer one at 11:00: the seeded image again is a
            // rollback that fails the newer one's deployment and resolves its failure.
            setup: |world, seeded| {
                deployed(world, seeded, false);
                let (status, image, _) = world.call(
                    crate::handle_images_request,
                    "POST",
                    &format!("/api/v1/registries/{}/images", seeded.1),
                    &seeded.0,
                    cd_request("newer"),
                );
                assert_eq!(status, 201);
                deploy(
                    world,
                    seeded,
                    image["image_id"].as_str(),
                    "2026-06-01T11:00:00Z",
                    serde_json::json!({}),
                );
            },
            request: |(_, _, image_id), _| {
                (
                    crate::handle_lead_time_request,
                    "POST",
                    "/api/v1/deployments".to_owned(),
                    serde_json::json!({"image_id": image_id, "project_id": "p", "app_id": "a",
                        "environment": "production", "prod": true,
                        "deployed_at": "2026-06-01T11:30:00Z"}),
                )
            },
            applied: |db| judge(db, [2, 0, 0, 0, 0, 0, 0], [3, 1, 1, 1, 0, 1, 1]),
        },
        Scenario {
            name: "report a failure",
            setup: |world, seeded| deployed(world, seeded, false),
            request: |(_, _, _), _| {
                (
                    crate::handle_lead_time_request,
                    "POST",
                    "/api/v1/failures".to_owned(),
                    serde_json::json!({"failure_id": "F1", "deployment_id": "d1",
                        "started_at": "2026-06-01T10:30:00Z", "title": "down"}),
                )
            },
            applied: |db| judge(db, [1, 0, 0, 0, 0, 0, 0], [1, 1, 0, 1, 1, 1, 0]),
        },
        Scenario {
            name: "mark a deployment failed and rework",
            setup: |world, seeded| deployed(world, seeded, false),
            request: |_, db| {
                (
                    crate::handle_lead_time_request,
                    "PATCH",
                    format!("/api/v1/deployments/{}", d1(db)),
                    serde_json::json!({"status": "failed", "kind": "rework"}),
                )
            },
            applied: |db| judge(db, [1, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]),
        },
        Scenario {
            name: "mark a failed deployment succeeded",
            setup: |world, seeded| {
                deployed(world, seeded, false);
                let (status, _, _) = world.call(
                    crate::handle_lead_time_request,
                    "PATCH",
                    &format!("/api/v1/deployments/{}", d1(&world.db)),
                    &seeded.0,
                    serde_json::json!({"status": "failed"}),
                );
                assert_eq!(status, 200);
            },
            request: |_, db| {
                (
                    crate::handle_lead_time_request,
                    "PATCH",
                    format!("/api/v1/deployments/{}", d1(db)),
                    serde_json::json!({"status": "succeeded"}),
                )
            },
            applied: |db| judge(db, [1, 1, 0, 1, 1, 1, 0], [1, 0, 0, 0, 0, 0, 0]),
        },
        Scenario {
            name: "put settings",
            setup: no_setup,
            request: |_, _| {
                (
                    crate::handle_lead_time_request,
                    "PUT",
                    "/api/v1/settings".to_owned(),
                    serde_json::json!({"excluded_authors": ["*[bot]"], "benchmark": "2023"}),
                )
            },
            applied: |db| match (
                db.count("SELECT COUNT(*) FROM org_settings"),
                db.text("SELECT excluded_authors || benchmark FROM org_settings")
                    .as_deref(),
            ) {
                (1, Some("[\"*[bot]\"]2023")) => Some(true),
                (0, None) => Some(false),
                _ => None,
            },
        },
        Scenario {
            name: "resolve a failure",
            setup: |world, seeded| deployed(world, seeded, true),
            request: |_, _| {
                (
                    crate::handle_lead_time_request,
                    "PATCH",
                    "/api/v1/failures/F1".to_owned(),
                    serde_json::json!({"resolved_at": "2026-06-01T11:00:00Z"}),
                )
            },
            applied: |db| judge(db, [1, 1, 0, 1, 1, 1, 0], [1, 1, 0, 1, 0, 1, 0]),
        },
    ]
}

/// (commit lead times, and what the commit rollup counts: its lead times and skewed ones).
fn commit_counts(db: &FailingDb) -> [i64; 2] {
    [
        db.count("SELECT COUNT(*) FROM commit_lead_times"),
        db.count(
            "SELECT coalesce(sum(length(lead_times) / 8 + clock_skew), 0) FROM commit_lead_time_days",
        ),
    ]
}

/// A build listing its commits, as a pipeline posts it.
fn listing(run_id: &str, head: &str, commits: &[(&str, &str)]) -> serde_json::Value {
    let mut body = cd_request(run_id);
    // Full shas, as a list needs: the short names padded.
    body["git_hash"] = format!("{head:0<40}").into();
    body["commits"] = commits
        .iter()
        .map(|(sha, at)| {
            serde_json::json!({"sha": format!("{sha:0<40}"), "timestamp": at, "author": "ann <a@x>"})
        })
        .collect();
    body
}

/// The write paths of commit lead times: a build listing its commits, and a deployment that
/// carries the commits of two builds (one it skipped) at once.
fn commit_scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "create an image listing its commits",
            setup: no_setup,
            request: |(_, registry_id, _), _| {
                (
                    crate::handle_images_request,
                    "POST",
                    format!("/api/v1/registries/{registry_id}/images"),
                    listing("listed", "abcdef2", &[("c0ffee1", "2026-06-01T09:00:00Z")]),
                )
            },
            applied: |db| {
                match db.count("SELECT COUNT(*) FROM images WHERE run_id = 'listed' AND json_array_length(commits) = 1") {
                    1 => Some(true),
                    0 => Some(false),
                    _ => None,
                }
            },
        },
        Scenario {
            name: "record a deployment carrying the commits of two builds",
            // The seeded image runs at 10:00; two builds follow, listing three commits and
            // their heads. Deploying the second carries both builds' (five commits).
            setup: |world, seeded| {
                deployed(world, seeded, false);
                for (run, head, commits) in [
                    (
                        "skipped",
                        "abcdef2",
                        [("c0ffee1", "2026-06-01T09:00:00Z")].as_slice(),
                    ),
                    (
                        "carrier",
                        "abcdef3",
                        &[
                            ("c0ffee2", "2026-06-01T09:30:00Z"),
                            ("c0ffee3", "2026-06-01T12:03:00Z"),
                        ],
                    ),
                ] {
                    let (status, answer, _) = world.call(
                        crate::handle_images_request,
                        "POST",
                        &format!("/api/v1/registries/{}/images", seeded.1),
                        &seeded.0,
                        listing(run, head, commits),
                    );
                    assert_eq!(status, 201, "{answer}");
                }
            },
            request: |_, db| {
                let hex = db
                    .text("SELECT lower(hex(image_id)) FROM images WHERE run_id = 'carrier'")
                    .unwrap();
                let image_id = format!(
                    "{}-{}-{}-{}-{}",
                    &hex[..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..]
                );
                (
                    crate::handle_lead_time_request,
                    "POST",
                    "/api/v1/deployments".to_owned(),
                    serde_json::json!({"image_id": image_id, "project_id": "p", "app_id": "a",
                        "environment": "production", "prod": true,
                        "deployed_at": "2026-06-01T12:00:00Z"}),
                )
            },
            // Before: the seeded head. After: c0ffee1, abcdef2, c0ffee2, abcdef3 and c0ffee3
            // (committed after the deployment: clock skew, in the rollup's count too).
            applied: |db| match commit_counts(db) {
                [6, 6] => Some(true),
                [1, 1] => Some(false),
                _ => None,
            },
        },
    ]
}

fn faults() -> Vec<(DbError, u16)> {
    vec![
        (DbError::Busy("database is locked".to_owned()), 503),
        // A libSQL server taking the lock from a transaction held past its 5 s limit.
        (
            DbError::Overloaded(
                "Hrana: `cursor error: `error at step 0: (error code: SQLITE_INTERRUPT) \
                 `SQLite error: interrupted```"
                    .to_owned(),
            ),
            503,
        ),
        (DbError::Other("disk I/O error".to_owned()), 500),
        (DbError::Other("database or disk is full".to_owned()), 500),
    ]
}

#[test]
fn every_write_is_all_or_nothing_under_a_failure_at_every_statement() {
    let mut cases = 0;
    let mut recovered = 0;
    let mut busy_cases = 0;
    for scenario in scenarios()
        .into_iter()
        .chain(outcome_scenarios())
        .chain(commit_scenarios())
    {
        // How many statements the write runs when nothing fails.
        let dry = World::new(DbError::Other(String::new()));
        let seeded = dry.seed();
        (scenario.setup)(&dry, &seeded);
        let (handler, method, path, body) = (scenario.request)(&seeded, &dry.db);
        let token = if scenario.name == "create token" {
            ADMIN.to_owned()
        } else {
            seeded.0.clone()
        };
        dry.db.arm(None);
        let (status, _, _) = dry.call(handler, method, &path, &token, body.clone());
        assert!(
            status == 200 || status == 201,
            "{}: dry run answered {status}",
            scenario.name
        );
        let statements = dry.db.executed.get();
        assert_eq!(
            (scenario.applied)(&dry.db),
            Some(true),
            "{}: dry run applied",
            scenario.name
        );

        for (fault, expected_status) in faults() {
            for fail_at in 0..statements {
                let world = World::new(fault.clone());
                let seeded = world.seed();
                (scenario.setup)(&world, &seeded);
                let (handler, method, path, body) = (scenario.request)(&seeded, &world.db);
                let token = if scenario.name == "create token" {
                    ADMIN.to_owned()
                } else {
                    seeded.0.clone()
                };
                world.db.arm(Some(fail_at));
                let (status, problem, content_type) =
                    world.call(handler, method, &path, &token, body.clone());
                let what = format!(
                    "{} with {fault:?} at statement {fail_at}/{statements}",
                    scenario.name
                );
                let applied = (scenario.applied)(&world.db)
                    .unwrap_or_else(|| panic!("{what}: half a write is stored"));
                if matches!(fault, DbError::Busy(_)) {
                    busy_cases += 1;
                }
                if status < 300 {
                    // Recovered (a busy statement is retried): the write must be complete, once.
                    assert!(applied, "{what}: success without the write");
                    recovered += 1;
                    cases += 1;
                    continue;
                } else {
                    assert_eq!(status, expected_status, "{what}: {problem}");
                    assert_eq!(content_type, "application/problem+json", "{what}");
                    assert!(!applied, "{what}: a failed request left its write behind");
                }
                // Nothing is left open: the same request now succeeds and applies fully.
                world.db.arm(None);
                let (status, _, _) = world.call(handler, method, &path, &token, body.clone());
                assert!(
                    status == 200 || status == 201,
                    "{what}: retry answered {status}"
                );
                assert_eq!(
                    (scenario.applied)(&world.db),
                    Some(true),
                    "{what}: retry applied"
                );
                cases += 1;
            }
        }
    }
    println!("fault-injection cases run: {cases} ({recovered} recovered by the busy retry)");
    assert!(cases > 50);
    // A busy statement is waited out wherever it happens (PatientDb); every other fault is
    // reported, with nothing stored.
    assert_eq!(recovered, busy_cases);
    assert!(busy_cases > 10);
}
