//! The seeded database: orgs, registries and a large `images` table, generated once per
//! (schema, size, generator) and cached under `<target>/bench-cache/`.
//!
//! Registries are created through cd-core's own handler (so they are exactly what the app
//! writes); images are bulk-inserted with one prepared statement in one transaction, with the
//! table's indexes dropped during the load and recreated from their own `CREATE INDEX` text.
//! Image ids are UUIDv7 over one fixed year, so a cursor "from the middle" can be computed
//! without the database (see [`middle_cursor`]) — also against another running instance
//! seeded with the same file.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use sha2::{Digest, Sha256};

use crate::load::{Baseline, Call};

/// Bump when the generated data changes shape: it is part of the cache key.
const GENERATOR_VERSION: u32 = 2;
/// The org and registry the list scenarios read: it holds half of all images.
pub const BIG_ORG: &str = "bench-org-00";
pub const BIG_REPOSITORY: &str = "bench/big";
const ORGS: usize = 10;
const REGISTRIES_PER_ORG: usize = 5;
/// 2025-10-01T00:00:00Z: the generated builds span one year from here.
pub const START_MS: u64 = 1_759_276_800_000;
pub const SPAN_MS: u64 = 365 * 86_400_000;
const SEED_ADMIN: &str = "bench-seed-admin";

/// The cached database with `images` images, generating it first if needed.
pub fn cached(cache_dir: &Path, images: u64) -> anyhow::Result<PathBuf> {
    cached_file(
        cache_dir,
        &format!("images-{images}-{}.db", cache_key(GENERATOR_VERSION)),
        &format!("{images} images"),
        |path| generate(path, images),
    )
}

/// `cache_dir/name`, made by `generate` (into a temporary file, then renamed) if missing.
pub fn cached_file(
    cache_dir: &Path,
    name: &str,
    what: &str,
    generate: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    let path = cache_dir.join(name);
    if path.is_file() {
        eprintln!("bench: seeded database (cached) {}", path.display());
        return Ok(path);
    }
    std::fs::create_dir_all(cache_dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let started = Instant::now();
    eprintln!(
        "bench: generating {what} into {} (once; cached for later runs)",
        path.display()
    );
    generate(&tmp)?;
    std::fs::rename(&tmp, &path)?;
    eprintln!(
        "bench: generated in {:.1} s ({} MB)",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&path)?.len() / 1_000_000
    );
    Ok(path)
}

/// Schema version, the migrations' text and the generator's version.
pub fn cache_key(generator_version: u32) -> String {
    let mut hasher = Sha256::new();
    for (name, sql) in cd_core::testing::migrations() {
        hasher.update(name.as_bytes());
        hasher.update(sql.as_bytes());
    }
    hasher.update(generator_version.to_le_bytes());
    let digest: String = hasher.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "schema{}-{digest}",
        cd_core::testing::latest_schema_version()
    )
}

/// A registry made by the generator.
struct Registry {
    registry_id: String,
    org_id: String,
    repository: String,
}

/// The seeded database, step by step: registries through the app, then the images in bulk
/// with the indexes down, then the indexes back and the channels' versions to match.
///
/// The rows are written in schema 6's text encoding (the registries taken back to it) and the
/// app's own migration and copy bring them to the current one ([`upgrade`]), so every
/// generated database has been through the upgrade a deployed one goes through.
fn generate(path: &Path, images: u64) -> anyhow::Result<()> {
    remove_database_files(path);
    let registries = create_registries(path)?;
    take_back_to_schema_6(path)?;
    let (mut connection, indexes) = open_for_bulk_load(path, &["images"])?;
    let tx = connection.transaction()?;
    drop_indexes(&tx, &indexes)?;
    let patches = insert_images(&tx, &registries, images)?;
    recreate_indexes(&tx, &indexes)?;
    record_channel_versions(&tx, &registries, &patches)?;
    tx.commit()?;
    close_as_served(connection)?;
    upgrade(path)
}

fn core_error(error: cd_core::Error) -> anyhow::Error {
    anyhow::anyhow!("{error:?}")
}

fn open_core(path: &Path) -> anyhow::Result<cd_core::testing::RusqliteDb> {
    cd_core::testing::RusqliteDb::open(path)
        .map_err(|e| anyhow::anyhow!("opening {}: {e:?}", path.display()))
}

/// The database at `path` (current schema, few rows) in schema 6's text encoding.
pub fn take_back_to_schema_6(path: &Path) -> anyhow::Result<()> {
    let db = open_core(path)?;
    cd_core::testing::take_back_to_schema_6(&db).map_err(core_error)
}

/// Migrates the database at `path` to the current schema and runs every back-fill that
/// leaves pending, batch by batch, as requests would after responding.
pub fn upgrade(path: &Path) -> anyhow::Result<()> {
    let db = open_core(path)?;
    cd_core::testing::ensure_schema(&db).map_err(core_error)?;
    while cd_core::testing::pending_backfill_step(&db).map_err(core_error)? {}
    // The dropped text tables' pages are free, not gone: compacted, the file is what a
    // database written in the new encoding from the start holds (README, *Upgrading*).
    db.connection().execute_batch("VACUUM")?;
    Ok(())
}

/// Removes a previous (interrupted) attempt at `path`, with its journal files.
pub fn remove_database_files(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// [`ORGS`] orgs of [`REGISTRIES_PER_ORG`] registries each, created through cd-core's own
/// handler, in that order: the first is the big one. The first request also migrates the new
/// database (and makes it WAL), as in production.
fn create_registries(path: &Path) -> anyhow::Result<Vec<Registry>> {
    let app = Baseline {
        database: path.to_owned(),
        admin_token: SEED_ADMIN.to_owned(),
    };
    let mut registries = Vec::new();
    for org in 0..ORGS {
        let org_id = format!("bench-org-{org:02}");
        for index in 0..REGISTRIES_PER_ORG {
            let repository = if org == 0 && index == 0 {
                BIG_REPOSITORY.to_owned()
            } else {
                format!("bench/service-{index}")
            };
            let call = Call::post(
                format!("/api/v1/registries?org_id={org_id}"),
                Some(SEED_ADMIN),
                &serde_json::json!({
                    "image_repository_name": repository,
                    "container_registry_id": "ghcr",
                    "public": false,
                }),
            );
            let (status, body) = app.once(&call);
            if status != 201 {
                bail!(
                    "seeding a registry: {status} {}",
                    String::from_utf8_lossy(&body)
                );
            }
            let created: serde_json::Value = serde_json::from_slice(&body)?;
            registries.push(Registry {
                registry_id: created["registry_id"]
                    .as_str()
                    .context("registry_id")?
                    .to_owned(),
                org_id: org_id.clone(),
                repository,
            });
        }
    }
    Ok(registries)
}

/// `images` images over one year, from one fixed seed, in id (= build time) order: half in the
/// big registry, ~10% on the beta channel, a few failed, deprecated or inactive. Returns the
/// last patch number given per registry and channel (`[default, beta]`).
fn insert_images(
    tx: &rusqlite::Transaction<'_>,
    registries: &[Registry],
    images: u64,
) -> anyhow::Result<Vec<[u64; 2]>> {
    let mut patches = vec![[0u64; 2]; registries.len()];
    let mut insert = tx.prepare(
        "INSERT INTO images (image_id, org_id, registry_id, channel, version, update_type, \
         tag_name, image_name, image_name_with_tag, status, tags, git_hash, \
         git_hash_commit_timestamp, gitops_hash, api_definition_path, committer, commit_msg, \
         run_id, image_ports, cluster_image_tags, api_version_id, request_sha256, built_at, \
         updated_at) VALUES (?, ?, ?, ?, ?, 'patch', ?, ?, ?, ?, ?, ?, ?, ?, \
         'api/openapi.yaml', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?;
    let mut rng = SplitMix(0x5eed_cd1a_u64);
    for i in 0..images {
        // The draws from `rng` happen in this order for every image (the data depends on it):
        // `r`, the id's two, the git hash's two, the digest's four, the gitops hash's one.
        let r = rng.next();
        // Half of all builds go to the big registry; the rest spread over the others.
        let registry_index = if r & 1 == 0 {
            0
        } else {
            1 + ((r >> 1) % (registries.len() as u64 - 1)) as usize
        };
        let registry = &registries[registry_index];
        let beta = (r >> 20).is_multiple_of(10);
        let channel = if beta { "beta" } else { "default" };
        let patch = &mut patches[registry_index][usize::from(beta)];
        *patch += 1;
        let version = format!("{channel}-0.0.{patch}");
        let ms = START_MS + i * SPAN_MS / images.max(1);
        let image_id = uuid_v7(ms, rng.next(), rng.next());
        let built_at = rfc3339_micros(ms);
        let committed = rfc3339_micros(ms.saturating_sub(3_600_000 + (r >> 40) % 86_400_000));
        let tag = format!("build-{i}");
        let image_name = format!("ghcr.io/{}/{}", registry.org_id, registry.repository);
        let status = match (r >> 8) % 50 {
            0 => "failed",
            1 => "deprecated",
            2 | 3 => "inactive",
            _ => "active",
        };
        let git_hash = format!("{:016x}{:016x}{:08x}", rng.next(), rng.next(), r >> 32);
        let digest = format!(
            "{:016x}{:016x}{:016x}{:016x}",
            rng.next(),
            rng.next(),
            rng.next(),
            rng.next()
        );
        insert.execute(rusqlite::params![
            image_id,
            registry.org_id,
            registry.registry_id,
            channel,
            version,
            tag,
            image_name,
            format!("{image_name}:{tag}"),
            status,
            r#"["latest","main"]"#,
            git_hash,
            committed,
            format!("{:032x}", (u128::from(rng.next()) << 64) | u128::from(r)),
            format!("Committer {} <dev{}@example.com>", r % 97, r % 97),
            format!("Change number {i}: fix the thing and update the docs"),
            format!("run-{i:09}"),
            r#"[{"port":8080,"protocol":"tcp","name":"http"}]"#,
            format!(r#"[{{"cluster_id":"eu-1","tag":"{version}"}}]"#),
            "v1",
            digest,
            built_at,
            built_at,
        ])?;
    }
    Ok(patches)
}

/// The channels' current versions, in agreement with the images recorded (what the dropped
/// triggers would have kept).
fn record_channel_versions(
    tx: &rusqlite::Transaction<'_>,
    registries: &[Registry],
    patches: &[[u64; 2]],
) -> anyhow::Result<()> {
    for (registry, counts) in registries.iter().zip(patches) {
        for (channel, patch) in [("default", counts[0]), ("beta", counts[1])] {
            if patch == 0 {
                continue;
            }
            tx.execute(
                "INSERT OR REPLACE INTO image_versions \
                 (registry_id, channel, org_id, major, minor, patch, created_at, updated_at) \
                 VALUES (?, ?, ?, 0, 0, ?, ?, ?)",
                rusqlite::params![
                    registry.registry_id,
                    channel,
                    registry.org_id,
                    patch as i64,
                    rfc3339_micros(START_MS),
                    rfc3339_micros(START_MS + SPAN_MS),
                ],
            )?;
        }
    }
    Ok(())
}

/// The indexes and triggers of the loaded tables — `(type, name, CREATE text)` — dropped for
/// a bulk load and recreated after it. The generators keep what the triggers would (the
/// channels' versions) themselves, in bulk.
pub type Indexes = Vec<(String, String, String)>;

/// Opens a freshly migrated database for loading (not serving): no journal to speak of, no
/// fsync, a big page cache; and the indexes and triggers of `tables`, to drop during the load.
pub fn open_for_bulk_load(
    path: &Path,
    tables: &[&str],
) -> anyhow::Result<(rusqlite::Connection, Indexes)> {
    let connection = rusqlite::Connection::open(path)?;
    connection.pragma_update(None, "journal_mode", "DELETE")?;
    connection.execute_batch(
        "PRAGMA synchronous = OFF; PRAGMA cache_size = -524288; PRAGMA temp_store = MEMORY;",
    )?;
    let indexes = connection
        .prepare(
            "SELECT type, name, sql, tbl_name FROM sqlite_master \
             WHERE type IN ('index', 'trigger') AND sql IS NOT NULL",
        )?
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|(_, _, _, table)| tables.contains(&table.as_str()))
        .map(|(kind, name, sql, _)| (kind, name, sql))
        .collect();
    Ok((connection, indexes))
}

/// Drops the indexes and triggers of [`open_for_bulk_load`] for the load: keeping them up to
/// date row by row is what would make it slow.
pub fn drop_indexes(tx: &rusqlite::Transaction<'_>, indexes: &Indexes) -> anyhow::Result<()> {
    for (kind, name, _) in indexes {
        tx.execute_batch(&format!("DROP {} \"{name}\"", kind.to_uppercase()))?;
    }
    Ok(())
}

/// Recreates the dropped indexes and triggers from their own `CREATE` text, once the rows are
/// in (one sort per index instead of one insert per row).
pub fn recreate_indexes(tx: &rusqlite::Transaction<'_>, indexes: &Indexes) -> anyhow::Result<()> {
    for (_, _, sql) in indexes {
        tx.execute_batch(sql)?;
    }
    Ok(())
}

/// Closes a loaded database as the app would have left it: WAL (a property of the file), so
/// host and baseline serve the cached file in the mode they serve any other.
pub fn close_as_served(connection: rusqlite::Connection) -> anyhow::Result<()> {
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection
        .close()
        .map_err(|(_, e)| anyhow::anyhow!("closing the seeded database: {e}"))?;
    Ok(())
}

/// A cursor (an image id) in the middle of the generated year: `image_id < cursor` starts a
/// page about halfway down every registry's list.
pub fn middle_cursor() -> String {
    uuid_v7(START_MS + SPAN_MS / 2, u64::MAX, u64::MAX)
}

/// A UUIDv7 text for `ms` with the given random bits.
pub fn uuid_v7(ms: u64, a: u64, b: u64) -> String {
    let value: u128 = (u128::from(ms & 0xffff_ffff_ffff) << 80)
        | (0x7 << 76)
        | (u128::from(a & 0xfff) << 64)
        | (0b10 << 62)
        | u128::from(b & ((1 << 62) - 1));
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        value >> 96,
        (value >> 80) & 0xffff,
        (value >> 64) & 0xffff,
        (value >> 48) & 0xffff,
        value & 0xffff_ffff_ffff
    )
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, the app's stored form of an instant.
pub fn rfc3339_micros(ms: u64) -> String {
    let seconds = ms / 1000;
    let (days, second_of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
        (ms % 1000) * 1000
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

pub use cd_core::testing::SplitMix;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_instants_are_formatted_like_the_app() {
        assert_eq!(rfc3339_micros(START_MS), "2025-10-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339_micros(951_782_400_123),
            "2000-02-29T00:00:00.123000Z"
        );
    }

    #[test]
    fn ids_are_uuid_v7_and_time_ordered() {
        let early = uuid_v7(START_MS, 1, 2);
        let late = uuid_v7(START_MS + 1, 0, 0);
        assert!(early < late);
        assert_eq!(&early[14..15], "7");
        assert!(cd_core::testing::parses_as_id(&middle_cursor()));
    }
}
