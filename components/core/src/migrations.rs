//! The schema, applied lazily and idempotently on the first request that needs it.
//!
//! Spin has no start-up hook and gives each request a fresh instance, so every request checks
//! the schema version (one read on an indexed table). Only when the database is behind does it
//! take the write lock with `BEGIN IMMEDIATE`, read the version again (another component may
//! have migrated meanwhile) and apply the missing migrations statement by statement, all in one
//! transaction: a crash midway leaves the previous schema, never half of a new one.

use crate::db::{Db, DbError, transaction};
use crate::error::Error;

/// One embedded migration file.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

/// Every migration, in order. Append only.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_registries_and_tokens",
        sql: include_str!("../../../migrations/0001_registries_and_tokens.sql"),
    },
    Migration {
        version: 2,
        name: "0002_images",
        sql: include_str!("../../../migrations/0002_images.sql"),
    },
    Migration {
        version: 3,
        name: "0003_lead_time",
        sql: include_str!("../../../migrations/0003_lead_time.sql"),
    },
    Migration {
        version: 4,
        name: "0004_lead_time_days",
        sql: include_str!("../../../migrations/0004_lead_time_days.sql"),
    },
    Migration {
        version: 5,
        name: "0005_images_advance_their_channel",
        sql: include_str!("../../../migrations/0005_images_advance_their_channel.sql"),
    },
    Migration {
        version: 6,
        name: "0006_lead_time_day_chunks",
        sql: include_str!("../../../migrations/0006_lead_time_day_chunks.sql"),
    },
    Migration {
        version: 7,
        name: "0007_compact_encoding",
        sql: include_str!("../../../migrations/0007_compact_encoding.sql"),
    },
    Migration {
        version: 8,
        name: "0008_webhooks",
        sql: include_str!("../../../migrations/0008_webhooks.sql"),
    },
    Migration {
        version: 9,
        name: "0009_deployment_outcomes",
        sql: include_str!("../../../migrations/0009_deployment_outcomes.sql"),
    },
    Migration {
        version: 10,
        name: "0010_org_settings",
        sql: include_str!("../../../migrations/0010_org_settings.sql"),
    },
    Migration {
        version: 11,
        name: "0011_commit_lead_times",
        sql: include_str!("../../../migrations/0011_commit_lead_times.sql"),
    },
];

/// The migration that re-encodes every table; cd-core copies its large tables after it
/// (`store::reencode`).
const COMPACT_ENCODING: i64 = 7;

/// The schema version this build expects.
pub(crate) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The schema as a request found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schema {
    /// The version the database was at before this request migrated it (if it did).
    pub(crate) found: i64,
    /// Whether anything is pending in `backfills`: a step runs after the response.
    pub(crate) backfilling: bool,
    /// Whether the lead-time rollup may still miss records written before its migration.
    /// Once false it stays false, so a request may act on it after reading it: a stale `true`
    /// only sends a read to the records.
    pub(crate) rollup_pending: bool,
    /// Whether the head commits of records written before migration 0011 are still being
    /// counted (`store::commit_lead_times`); stays false once false, as above.
    pub(crate) head_commits_pending: bool,
    /// Whether migration 0007's copy of images and records is still under way
    /// (`store::reencode`): lookups copy their rows first, whole-table reads finish it. A stale
    /// `true` costs a copy that finds nothing to do.
    pub(crate) copying: bool,
    /// Whether the outbox holds a delivery not yet delivered or given up (due or not).
    pub(crate) deliveries_pending: bool,
    /// Whether any subscription exists, so that a write may queue a delivery.
    pub(crate) subscribed: bool,
}

/// Brings the database up to [`latest_version`]; what it found. On a current database this
/// is one statement, which also says whether a back-fill is pending.
pub(crate) fn ensure_schema(db: &dyn Db) -> Result<Schema, Error> {
    ensure_schema_copying(db, true)
}

/// [`ensure_schema`]; a small copy of migration 0007 runs inline only if `inline` (tests
/// leave it pending to exercise the copying state).
pub(crate) fn ensure_schema_copying(db: &dyn Db, inline: bool) -> Result<Schema, Error> {
    let latest = latest_version();
    match current_schema(db) {
        Ok(schema) if schema.found >= latest => return Ok(schema),
        Ok(_) => {}
        // No `schema_migrations` (a new database), no `backfills` yet (schema 3 or older), or
        // no outbox yet (schema 7 or older).
        Err(DbError::Other(message)) if message.contains("no such table") => {}
        Err(other) => return Err(other.into()),
    }
    match current_version(db) {
        Ok(_) => {}
        Err(DbError::Other(message)) if message.contains("no such table") => {
            // A brand-new database: make it WAL before the first write. WAL is a property of
            // the file (it persists), lets readers run beside the one writer, and commits with
            // one fsync instead of journal-mode delete's several. It cannot be set inside a
            // transaction. A libSQL server keeps its own journal: nothing to set there.
            if db.backend() == crate::db::Backend::File
                && let Err(error) = db.execute("PRAGMA journal_mode = WAL", &[])
            {
                eprintln!("cd-core: journal_mode WAL not set: {error}");
            }
        }
        Err(other) => return Err(other.into()),
    }
    // A libSQL server interrupts a write transaction that has held its lock for 5 s while
    // another connection waits (a slow migration on a loaded server, replicas starting
    // together): the whole run was rolled back and nothing else depends on it, so it is run
    // again here rather than failing the first request of a new deployment.
    let attempts = if db.backend() == crate::db::Backend::Server {
        3
    } else {
        1
    };
    let mut attempt = 1;
    loop {
        match migrate(db, inline) {
            Err(Error::Busy) if attempt < attempts => attempt += 1,
            outcome => return outcome,
        }
    }
}

/// One all-or-nothing run of the pending migrations.
fn migrate(db: &dyn Db, inline: bool) -> Result<Schema, Error> {
    transaction(db, || {
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
            )",
            &[],
        )?;
        let found = current_version(db)?;
        for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
            for statement in statements(migration.sql) {
                db.execute(&statement, &[]).map_err(|e| match e {
                    // Contention, not a broken migration: the caller retries or answers 503.
                    DbError::Busy(_) | DbError::Overloaded(_) => Error::from(e),
                    other => {
                        Error::storage(format!("migration {} failed: {other}", migration.name))
                    }
                })?;
            }
            db.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                &[migration.version.into(), migration.name.into()],
            )?;
            if migration.version == COMPACT_ENCODING {
                crate::store::reencode::begin(db, inline)?;
            }
        }
        // Read inside the transaction: a failure here leaves the previous schema too.
        Ok(Schema {
            found,
            ..current_schema(db)?
        })
    })
}

/// A new database at schema `version` exactly (the benchmark bulk-loads older encodings and
/// upgrades them as a deploy does).
#[cfg(any(test, feature = "testing"))]
pub(crate) fn create_at(db: &dyn Db, version: i64) -> Result<(), Error> {
    transaction(db, || {
        db.execute(
            "CREATE TABLE schema_migrations (
                version INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
            )",
            &[],
        )?;
        for migration in MIGRATIONS.iter().filter(|m| m.version <= version) {
            for statement in statements(migration.sql) {
                db.execute(&statement, &[])?;
            }
            db.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                &[migration.version.into(), migration.name.into()],
            )?;
        }
        Ok(())
    })
}

/// The version and the pending back-fills, in one statement (a database at schema 4 or later).
fn current_schema(db: &dyn Db) -> Result<Schema, DbError> {
    let rows = db.execute(
        "SELECT (SELECT COALESCE(MAX(version), 0) FROM schema_migrations), \
                EXISTS (SELECT 1 FROM backfills), \
                EXISTS (SELECT 1 FROM backfills WHERE derived = 'lead_time_days'), \
                EXISTS (SELECT 1 FROM backfills WHERE derived = 'commit_lead_times'), \
                EXISTS (SELECT 1 FROM backfills WHERE derived IN ('images', 'image_lead_times')), \
                EXISTS (SELECT 1 FROM deliveries WHERE next_attempt_at IS NOT NULL), \
                EXISTS (SELECT 1 FROM subscriptions)",
        &[],
    )?;
    use crate::db::Value::Integer;
    match rows.rows.first().map(Vec::as_slice) {
        Some(
            [
                Integer(found),
                Integer(backfilling),
                Integer(rollup),
                Integer(head_commits),
                Integer(copying),
                Integer(deliveries),
                Integer(subscriptions),
            ],
        ) => Ok(Schema {
            found: *found,
            backfilling: *backfilling != 0,
            rollup_pending: *rollup != 0,
            head_commits_pending: *head_commits != 0,
            copying: *copying != 0,
            deliveries_pending: *deliveries != 0,
            subscribed: *subscriptions != 0,
        }),
        other => Err(DbError::Other(format!("unexpected schema row {other:?}"))),
    }
}

fn current_version(db: &dyn Db) -> Result<i64, DbError> {
    let rows = db.execute(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        &[],
    )?;
    match rows.rows.first().and_then(|row| row.first()) {
        Some(crate::db::Value::Integer(version)) => Ok(*version),
        other => Err(DbError::Other(format!(
            "unexpected schema version {other:?}"
        ))),
    }
}

/// Splits a migration file into statements at `;` ending a line, dropping `--` comments. A
/// `CREATE TRIGGER` runs to the line `END;`: its body's statements are part of it.
pub(crate) fn statements(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        let code = line.split("--").next().unwrap_or("").trim_end();
        if code.trim().is_empty() {
            continue;
        }
        current.push_str(code);
        current.push('\n');
        let in_trigger = current
            .trim_start()
            .get(..14)
            .is_some_and(|start| start.eq_ignore_ascii_case("CREATE TRIGGER"));
        let ends = if in_trigger {
            code.trim().eq_ignore_ascii_case("END;")
        } else {
            code.ends_with(';')
        };
        if ends {
            statements.push(std::mem::take(&mut current).trim().to_owned());
        }
    }
    if !current.trim().is_empty() {
        statements.push(current.trim().to_owned());
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_from_one() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, index as i64 + 1);
            assert!(
                migration
                    .name
                    .starts_with(&format!("{:04}_", migration.version))
            );
        }
    }

    #[test]
    fn running_pieces_one_by_one_builds_the_same_schema_as_the_whole_file() {
        // Spin runs only the first statement of each execute: if a piece hid a second
        // statement, the piecewise schema would lack what that statement creates.
        let piecewise = rusqlite::Connection::open_in_memory().unwrap();
        let whole = rusqlite::Connection::open_in_memory().unwrap();
        for migration in MIGRATIONS {
            for piece in statements(migration.sql) {
                piecewise.prepare(&piece).unwrap().raw_execute().unwrap();
            }
            whole.execute_batch(migration.sql).unwrap();
        }
        let schema = |c: &rusqlite::Connection| -> Vec<(String, String)> {
            let mut s = c
                .prepare("SELECT type, name FROM sqlite_master ORDER BY name")
                .unwrap();
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(schema(&piecewise), schema(&whole));
        assert!(schema(&whole).len() >= 4);
    }

    #[test]
    fn ensure_schema_migrates_once_and_is_a_no_op_afterwards() {
        let db = crate::testing::RusqliteDb::open_in_memory();
        assert_eq!(
            ensure_schema(&db).unwrap().found,
            0,
            "found an empty database"
        );
        assert_eq!(ensure_schema(&db).unwrap().found, latest_version());
        let rows = db
            .execute("SELECT COUNT(*) FROM schema_migrations", &[])
            .unwrap();
        assert_eq!(
            rows.rows[0][0],
            crate::db::Value::Integer(MIGRATIONS.len() as i64)
        );
    }

    #[test]
    fn a_failed_migration_leaves_the_previous_schema() {
        // A Db that fails the Nth statement, for every N of the migration run.
        struct FailAt<'a> {
            inner: &'a dyn Db,
            fail_at: usize,
            seen: std::cell::Cell<usize>,
        }
        impl Db for FailAt<'_> {
            fn execute(
                &self,
                sql: &str,
                params: &[crate::db::Value],
            ) -> Result<crate::db::Rows, DbError> {
                let n = self.seen.get();
                self.seen.set(n + 1);
                if n == self.fail_at && sql != "ROLLBACK" {
                    return Err(DbError::Other("disk I/O error".to_owned()));
                }
                self.inner.execute(sql, params)
            }
        }
        let statement_count = MIGRATIONS
            .iter()
            .map(|m| statements(m.sql).len() + 1)
            .sum::<usize>()
            + 5;
        for fail_at in 0..statement_count {
            let db = crate::testing::RusqliteDb::open_in_memory();
            let failing = FailAt {
                inner: &db,
                fail_at,
                seen: std::cell::Cell::new(0),
            };
            let outcome = ensure_schema(&failing);
            let tables = db
                .execute(
                    "SELECT COUNT(*) FROM sqlite_master WHERE name = 'image_registries'",
                    &[],
                )
                .unwrap();
            let migrated = tables.rows[0][0] == crate::db::Value::Integer(1);
            assert_eq!(
                outcome.is_ok(),
                migrated,
                "failure at statement {fail_at}: all or nothing"
            );
            // And a retry always completes.
            ensure_schema(&db).unwrap();
        }
    }

    #[test]
    fn a_migration_a_server_interrupts_is_run_again_and_elsewhere_is_a_503() {
        // A Db that interrupts the first statement of migration 0003 `times` times, as sqld
        // does to a write transaction that held the lock past its 5 s while others waited.
        struct Interrupting<'a> {
            inner: &'a dyn Db,
            backend: crate::db::Backend,
            times: std::cell::Cell<usize>,
        }
        impl Db for Interrupting<'_> {
            fn execute(
                &self,
                sql: &str,
                params: &[crate::db::Value],
            ) -> Result<crate::db::Rows, DbError> {
                if sql.contains("CREATE TABLE image_lead_times") && self.times.get() > 0 {
                    self.times.set(self.times.get() - 1);
                    return Err(DbError::from_message(
                        "Hrana: `cursor error: `error at step 0: (error code: SQLITE_INTERRUPT) \
                         `SQLite error: interrupted```",
                    ));
                }
                self.inner.execute(sql, params)
            }
            fn backend(&self) -> crate::db::Backend {
                self.backend
            }
        }
        assert!(
            MIGRATIONS[2].sql.contains("CREATE TABLE image_lead_times"),
            "the test interrupts migration 0003"
        );
        let db = crate::testing::RusqliteDb::open_in_memory();
        let server = Interrupting {
            inner: &db,
            backend: crate::db::Backend::Server,
            times: std::cell::Cell::new(2),
        };
        assert_eq!(
            ensure_schema(&server).unwrap().found,
            0,
            "the third run completes"
        );
        assert_eq!(current_version(&db).unwrap(), latest_version());

        // Interrupted every time, or where nothing retries: the request is a 503 to retry,
        // never a 500, and nothing is half-applied.
        for (backend, times) in [
            (crate::db::Backend::Server, usize::MAX),
            (crate::db::Backend::File, 1),
        ] {
            let db = crate::testing::RusqliteDb::open_in_memory();
            let interrupting = Interrupting {
                inner: &db,
                backend,
                times: std::cell::Cell::new(times),
            };
            assert_eq!(ensure_schema(&interrupting).unwrap_err(), Error::Busy);
            assert!(current_version(&db).is_err(), "no schema_migrations table");
        }
    }

    #[test]
    fn an_instance_older_than_the_schema_answers_reads_and_refuses_writes() {
        // During a rollout an old instance meets a database a newer build has migrated: it
        // must not write rows without what the newer schema derives from them.
        let db = crate::testing::RusqliteDb::open_in_memory();
        ensure_schema(&db).unwrap();
        db.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (?, 'a newer build')",
            &[(latest_version() + 1).into()],
        )
        .unwrap();
        let env = crate::Env {
            db: &db,
            clock: &crate::SystemClock,
            ids: &crate::SystemIds,
            config: crate::Config {
                admin_token: Some("admin-token".to_owned()),
                max_body_bytes: 1 << 20,
                webhook_signing_key: None,
                webhook_allowed_hosts: None,
            },
        };
        let request = |method: &str, path: &str, body: &str| {
            http::Request::builder()
                .method(method)
                .uri(path)
                .header("authorization", "Bearer admin-token")
                .header("content-type", "application/json")
                .body(body.as_bytes().to_vec())
                .unwrap()
        };
        let read =
            crate::handle_registry_request(&request("GET", "/api/v1/health/registry", ""), &env);
        assert_eq!(read.status(), 200);
        let write = crate::handle_registry_request(
            &request(
                "POST",
                "/api/v1/tokens",
                r#"{"org_id": "acme", "role": "admin", "name": "t"}"#,
            ),
            &env,
        );
        assert_eq!(write.status(), 503);
        assert_eq!(write.headers()["retry-after"], "1");
        let problem: serde_json::Value = serde_json::from_slice(write.body()).unwrap();
        assert_eq!(problem["type"], "urn:cd-images:problem:outdated-instance");
        let tokens = db.execute("SELECT COUNT(*) FROM api_tokens", &[]).unwrap();
        assert_eq!(
            tokens.rows[0][0],
            crate::db::Value::Integer(0),
            "nothing written"
        );
    }
}
