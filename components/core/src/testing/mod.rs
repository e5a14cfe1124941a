//! Test infrastructure, behind the `testing` feature: what cd-core's own tests, the fuzz
//! targets (`components/core/fuzz`) and the benchmark (`tests/bench`) share. Nothing here is
//! part of the API a component uses.

pub(crate) mod fixtures;
mod properties;
mod schema_6;
mod sqlite;

#[cfg(test)]
mod bump_rule_tests;
#[cfg(test)]
mod encoding_tests;
#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod rollup_tests;
#[cfg(test)]
mod webhook_tests;

pub use properties::{ADMIN_TOKEN, RouterHarness, time_range_parser, version_parser};

/// SplitMix64, the one small seeded generator of every test and generator (cd-core's rollup
/// tests, the golden history of the end-to-end tests, the benchmark's data): the same seed
/// gives the same numbers everywhere, the Python golden reference's included.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    // Not an `Iterator`: it never ends, and callers draw numbers one at a time.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (not 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
pub use sqlite::RusqliteDb;

/// The schema's migrations, in order, as (name, SQL): the benchmark keys its cached databases
/// by them.
pub fn migrations() -> impl Iterator<Item = (&'static str, &'static str)> {
    crate::migrations::MIGRATIONS
        .iter()
        .map(|m| (m.name, m.sql))
}

/// Brings `db` to the current schema, as the first request would; the version it is at.
pub fn ensure_schema(db: &dyn crate::Db) -> Result<i64, crate::Error> {
    Ok(crate::migrations::ensure_schema(db)?.found)
}

/// The lead times a commit rollup chunk holds, as the write path splits them: bulk loads
/// lay their rollup out the same, so that reads cost what they do on a database the app wrote.
pub const COMMIT_ROLLUP_CHUNK: usize = crate::store::daily_rollup::CHUNK_LEAD_TIMES;

/// The schema version this build writes.
pub fn latest_schema_version() -> i64 {
    crate::migrations::latest_version()
}

/// Empties the daily lead-time rollup and makes its back-fill pending, as migration 0004
/// leaves a database that has records: a bulk load runs it, then [`pending_backfill_step`]
/// until it answers `false`.
pub fn restart_rollup_backfill(db: &dyn crate::Db) -> Result<(), crate::Error> {
    crate::store::daily_rollup::restart_backfill(db)
}

/// Takes a current database back to what schema 3 left — its records, no daily rollup, none
/// of what came after — the starting point of an upgrade the tests and the bench replay.
pub fn take_back_to_schema_3(db: &dyn crate::Db) -> Result<(), crate::Error> {
    take_back_to_schema_6(db)?;
    for statement in [
        "DROP TABLE lead_time_days",
        "DROP TABLE backfills",
        "DROP TRIGGER images_advance_channel",
        "DELETE FROM schema_migrations WHERE version > 3",
    ] {
        db.execute(statement, &[])?;
    }
    Ok(())
}

/// Takes a current database back to schema 6: every row in the text encoding, as the build
/// before migration 0007 wrote it (`schema_6`).
pub fn take_back_to_schema_6(db: &dyn crate::Db) -> Result<(), crate::Error> {
    schema_6::take_back(db)
}

/// Brings `db` to the current schema but leaves migration 0007's copy pending however small
/// the database, as a large one is left; the version it was at.
pub fn ensure_schema_copying(db: &dyn crate::Db) -> Result<i64, crate::Error> {
    Ok(crate::migrations::ensure_schema_copying(db, false)?.found)
}

/// One step of whatever back-fill is pending, in its own write transaction, with batches of
/// `copy` rows (the re-encoding) and `rollup` records (the rollup); `Ok(false)` once nothing
/// is pending.
pub fn backfill_step(db: &dyn crate::Db, copy: i64, rollup: i64) -> Result<bool, crate::Error> {
    Ok(crate::store::reencode::backfill_batch(db, copy, rollup)?
        != crate::store::daily_rollup::Backfill::Complete)
}

/// One step of whatever back-fill is pending — migration 0007's copy first, then the
/// rollup's — in its own write transaction, as a request runs it after responding;
/// `Ok(false)` once nothing is pending.
pub fn pending_backfill_step(db: &dyn crate::Db) -> Result<bool, crate::Error> {
    Ok(
        crate::store::reencode::backfill_step(db)?
            != crate::store::daily_rollup::Backfill::Complete,
    )
}

/// What the next [`pending_backfill_step`] will do, in words (`None`: nothing is pending).
pub fn next_backfill_step(db: &dyn crate::Db) -> Result<Option<String>, crate::Error> {
    crate::store::reencode::next_step(db)
}

/// Creates a new database at schema `version` exactly: `6` is the text encoding the bench
/// bulk-loads and then upgrades.
pub fn create_schema_at(db: &dyn crate::Db, version: i64) -> Result<(), crate::Error> {
    crate::migrations::create_at(db, version)
}

/// A deployment's lead time in minutes, as recording it computes it.
pub fn duration_mins(commit: crate::Timestamp, deployed: crate::Timestamp) -> f64 {
    crate::domain::dora::duration_mins(commit, deployed)
}

/// An org token's text for 32 secret bytes, as minted.
pub fn format_token(secret: [u8; 32]) -> String {
    crate::domain::token::format_token(secret)
}

/// The stored digest of a token.
pub fn token_digest(token: &str) -> String {
    crate::domain::token::token_digest(token)
}

/// Whether `text` is an id as cd-core parses ids from paths and cursors.
pub fn parses_as_id(text: &str) -> bool {
    crate::domain::ids::parse_uuid("id", text).is_ok()
}
