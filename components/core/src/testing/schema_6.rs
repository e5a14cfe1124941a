//! A current database taken back to schema 6, the text encoding: every row as the previous
//! build wrote it. Upgrade tests record through the API, take the database back, and let
//! migration 0007 and its copy bring it forward again; the answers must not change.
//!
//! The conversions are migration 0007's, reversed: 16 bytes to hyphenated lowercase text,
//! microseconds to the 27-character UTC form, whole microseconds of lead time to REAL
//! minutes (the division cd-core did), and the copies a record made of its image back in it.

use crate::db::Db;
use crate::error::Error;

/// `column` (16 bytes) as the hyphenated UUID text of schema 6.
fn uuid_text(column: &str) -> String {
    let hex = format!("hex({column})");
    format!(
        "lower(substr({hex}, 1, 8) || '-' || substr({hex}, 9, 4) || '-' || substr({hex}, 13, 4) \
         || '-' || substr({hex}, 17, 4) || '-' || substr({hex}, 21, 12))"
    )
}

/// `column` (µs since the epoch) as schema 6's `2026-03-01T04:30:00.000000Z`; floored to the
/// second before the fraction, so instants before 1970 render as Timestamp does.
fn instant_text(column: &str) -> String {
    let fraction = format!("(({column} % 1000000 + 1000000) % 1000000)");
    format!(
        "strftime('%Y-%m-%dT%H:%M:%S', ({column} - {fraction}) / 1000000, 'unixepoch') \
         || '.' || printf('%06d', {fraction}) || 'Z'"
    )
}

fn org_id(table: &str) -> String {
    format!("(SELECT org_id FROM orgs WHERE orgs.org_key = {table}.org_key)")
}

/// The tables of schema 7, parents first.
const TABLES: [&str; 8] = [
    "api_tokens",
    "image_registries",
    "image_versions",
    "images",
    "environments",
    "app_environments",
    "image_lead_times",
    "lead_time_days",
];

/// Takes `db` (at the current schema, 0007's copy done, no receivers) back to schema 6.
pub(crate) fn take_back(db: &dyn Db) -> Result<(), Error> {
    // Migration 0008's to 0011's tables; their columns, indexes and triggers go with
    // `images_v7`, `image_lead_times_v7` and `lead_time_days_v7`.
    for statement in [
        "DROP TABLE commit_lead_time_days",
        "DROP TABLE commit_lead_times",
        "DROP TABLE org_settings",
        "DROP TABLE failures",
        "DROP TRIGGER images_created_event",
        "DROP TRIGGER images_pushed_event",
        "DROP TRIGGER image_lead_times_recorded_event",
        "DROP TABLE receiver_deliveries",
        "DROP TABLE receivers",
        "DROP TABLE delivery_attempts",
        "DROP TABLE deliveries",
        "DROP TABLE subscriptions",
    ] {
        db.execute(statement, &[])?;
    }
    db.execute("DROP TRIGGER images_advance_channel", &[])?;
    for table in TABLES {
        db.execute(&format!("ALTER TABLE {table} RENAME TO {table}_v7"), &[])?;
    }
    for migration in crate::migrations::MIGRATIONS
        .iter()
        .filter(|m| m.version <= 6)
    {
        for statement in crate::migrations::statements(migration.sql) {
            db.execute(&statement, &[])?;
        }
    }
    // The rows go back as they were written; the trigger would move the channels again.
    db.execute("DROP TRIGGER images_advance_channel", &[])?;
    let (u, t) = (uuid_text, instant_text);
    let copies = [
        format!(
            "INSERT INTO api_tokens (token_id, org_id, role, name, token_sha256, created_at, revoked_at) \
             SELECT {}, {}, role, name, token_sha256, {}, {} FROM api_tokens_v7 ORDER BY rowid",
            u("token_id"),
            org_id("api_tokens_v7"),
            t("created_at"),
            t("revoked_at")
        ),
        format!(
            "INSERT INTO image_registries (rowid, registry_id, org_id, image_repository_name, public, \
               container_registry_id, token_vault_id, created_at, updated_at, deleted_at) \
             SELECT registry_key, {}, {}, image_repository_name, public, container_registry_id, token_vault_id, \
               {}, {}, {} FROM image_registries_v7 ORDER BY rowid",
            u("registry_id"),
            org_id("image_registries_v7"),
            t("created_at"),
            t("updated_at"),
            t("deleted_at")
        ),
        format!(
            "INSERT INTO image_versions (registry_id, channel, org_id, major, minor, patch, created_at, updated_at) \
             SELECT {}, channel, {}, major, minor, patch, {}, {} FROM image_versions_v7",
            u("(SELECT registry_id FROM image_registries_v7 AS r \
                WHERE r.registry_key = image_versions_v7.registry_key)"),
            org_id("image_versions_v7"),
            t("created_at"),
            t("updated_at")
        ),
        format!(
            "INSERT INTO images (rowid, image_id, org_id, registry_id, channel, version, update_type, \
               tag_name, image_name, image_name_with_tag, status, tags, git_hash, \
               git_hash_commit_timestamp, gitops_hash, api_definition_path, committer, commit_msg, \
               run_id, image_ports, cluster_image_tags, api_version_id, request_sha256, built_at, \
               updated_at) \
             SELECT rowid, {}, {}, {}, channel, version, update_type, tag_name, image_name, \
               image_name_with_tag, status, tags, git_hash, {}, gitops_hash, api_definition_path, \
               committer, commit_msg, run_id, image_ports, cluster_image_tags, api_version_id, \
               lower(hex(request_sha256)), {}, {} FROM images_v7 ORDER BY rowid",
            u("image_id"),
            org_id("images_v7"),
            u("(SELECT registry_id FROM image_registries_v7 AS r \
                WHERE r.registry_key = images_v7.registry_key)"),
            t("git_hash_commit_timestamp"),
            t("built_at"),
            t("updated_at")
        ),
        format!(
            "INSERT INTO environments (environment_id, org_id, name, prod, created_at, updated_at) \
             SELECT {}, {}, name, prod, {}, {} FROM environments_v7 ORDER BY rowid",
            u("environment_id"),
            org_id("environments_v7"),
            t("created_at"),
            t("updated_at")
        ),
        format!(
            "INSERT INTO app_environments (app_environment_id, org_id, project_id, app_id, \
               environment_id, created_at) \
             SELECT {}, {}, project_id, app_id, {}, {} FROM app_environments_v7 ORDER BY rowid",
            u("app_environment_id"),
            org_id("app_environments_v7"),
            u("environment_id"),
            t("created_at")
        ),
        format!(
            "INSERT INTO image_lead_times (rowid, lead_time_id, org_id, image_id, app_environment_id, \
               deployment_id, project_id, app_id, environment, prod, git_hash, \
               git_hash_commit_timestamp, image_name_with_tag, created_at, duration_mins, recorded_at) \
             SELECT l.rowid, {}, {}, {}, {}, l.deployment_id, l.project_id, l.app_id, l.environment, \
               l.prod, i.git_hash, {}, i.image_name_with_tag, {}, l.duration_micros / 60000000.0, {} \
             FROM image_lead_times_v7 AS l JOIN images_v7 AS i ON i.image_id = l.image_id \
             ORDER BY l.rowid",
            u("l.lead_time_id"),
            org_id("l"),
            u("l.image_id"),
            u("l.app_environment_id"),
            t("i.git_hash_commit_timestamp"),
            t("l.created_at"),
            t("l.recorded_at")
        ),
        format!(
            "INSERT INTO lead_time_days (org_id, day, environment, prod, chunk, deployments, \
               clock_skew, lead_times) \
             SELECT {}, day, environment, prod, chunk, deployments, clock_skew, lead_times \
             FROM lead_time_days_v7 ORDER BY rowid",
            org_id("lead_time_days_v7")
        ),
    ];
    for copy in &copies {
        db.execute(copy, &[])?;
    }
    let trigger = crate::migrations::MIGRATIONS
        .iter()
        .filter(|m| m.version == 5)
        .flat_map(|m| crate::migrations::statements(m.sql))
        .find(|statement| statement.starts_with("CREATE TRIGGER"))
        .ok_or_else(|| Error::storage("migration 0005 creates no trigger"))?;
    db.execute(&trigger, &[])?;
    for table in TABLES.iter().rev() {
        db.execute(&format!("DROP TABLE {table}_v7"), &[])?;
    }
    db.execute("DROP TABLE orgs", &[])?;
    db.execute(
        "DELETE FROM backfills WHERE derived IN ('images', 'image_lead_times', 'text_tables')",
        &[],
    )?;
    db.execute("DELETE FROM schema_migrations WHERE version > 6", &[])?;
    Ok(())
}
