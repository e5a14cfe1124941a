//! Migration 0007 and its copy on a libSQL server (`sqld`, `../shared/bin/sqld` or `CD_SQLD`),
//! where a deployment with many replicas keeps its database: the SQL the upgrade runs —
//! `unhex`, `unixepoch`, renames under foreign keys, the trigger's `WHEN`, copies that keep
//! rowids — must run there exactly as on Spin's bundled SQLite.
//!
//! cd-core is driven directly through a `Db` over sqld's Hrana HTTP protocol (`/v2/pipeline`,
//! one stream per `Db`, kept by its baton so transactions span statements). The components
//! themselves run on a libSQL server in the suite's second run (`CD_E2E_DATABASE=libsql`) and in
//! the replica tests.

use crate::sqld::{HranaDb, Sqld};
use cd_core::{Db, Value};

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
    let Some(sqld) = Sqld::start_or_skip("the upgrade on a libSQL server") else {
        return;
    };
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
