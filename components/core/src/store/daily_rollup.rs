//! `lead_time_days`: the daily rollup of `image_lead_times` that DORA queries read.
//!
//! Per (org, UTC day, environment, prod) the rollup holds one or more *chunks*: how many
//! deployments they count, how many of those that count for lead time had a skewed clock,
//! and the lead times of the rest, sorted, as a blob of 8-byte big-endian microseconds. A
//! month of a busy org is then tens of rows per environment instead of tens of thousands of
//! records, and the sorted runs let the median be *selected* (`domain::sorted_runs`) instead
//! of sorted. A day's figures are the sums of its chunks, its lead times the union of their
//! runs.
//!
//! Chunks exist so that recording costs the same in a day of ten thousand deployments as in
//! the first of the day: a write splices its lead time into the day's last chunk while that
//! holds fewer than [`CHUNK_LEAD_TIMES`], and starts a new chunk after — it never rewrites
//! the whole day. (One blob per day made a hot org's write O(n): 80 KB read and written back
//! at 10,000 deployments.) Chunks from before migration 0006 are larger; they are only read.
//!
//! The rollup is written in the same transaction as the record it counts ([`add`]), so it
//! never disagrees with `image_lead_times`. Records from before the rollup existed are rolled
//! up by [`backfill_batch_in`] (through `store::reencode::backfill_step`), a batch at a time (see `backfills` in migration 0004); until that
//! is done, a request's schema read says a back-fill is pending and DORA reads the records
//! instead.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::db::{Db, Row, Value, take_blob};
use crate::domain::deployment::{DeploymentKind, DeploymentStatus, LeadTimeRecord};
use crate::domain::sorted_runs::LeadTimes;
use crate::error::Error;

use super::reencode::BackfillBatch;

/// One day of the rollup: its chunks of every environment asked for, together.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LeadTimeDay {
    /// The day's first second (Unix time).
    pub(crate) midnight: i64,
    /// Records the chunk counts (deployment frequency counts them all).
    pub(crate) deployments: u64,
    /// Records that count for lead time but whose commit is later than the deployment.
    pub(crate) clock_skew: u64,
    /// The lead times (µs) of the other records that count: the chunks' blobs as stored,
    /// concatenated (`LeadTimes::add_stored`).
    pub(crate) lead_times: Vec<u8>,
    /// Deployments that failed (change failure rate) and rework ones (rework rate).
    pub(crate) failed: u64,
    pub(crate) rework: u64,
}

/// The day as stored: `YYYY-MM-DD`, the first ten characters of a stored instant.
pub(crate) fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

// The blobs' form is the one the DORA reads select over without decoding it.
pub(super) use crate::domain::sorted_runs::{BYTES_PER_LEAD_TIME, encode};

/// The lead times a chunk takes before the next write starts a new one: 2 KB of blob, under
/// SQLite's 4 KB page, so a write reads and writes one page of it, not an overflow chain.
pub(crate) const CHUNK_LEAD_TIMES: usize = 256;

/// The records one back-fill batch rolls up: one batch is one write transaction, and at
/// this size it holds the write lock for tens of milliseconds (the bench prints the figures
/// at 10M records), so pipelines keep writing while a large database is rolled up.
pub(crate) const BACKFILL_BATCH: i64 = 20_000;

/// The `backfills` row of this rollup.
const BACKFILL: &str = "lead_time_days";

/// `ascending` with `micros` inserted in order (equal values keep their relative order; they
/// are equal).
fn insert_sorted(ascending: &[u8], micros: u64) -> Result<Vec<u8>, Error> {
    let count = checked_len(ascending)?;
    let at = |index: usize| {
        let start = index * BYTES_PER_LEAD_TIME;
        u64::from_be_bytes(
            ascending[start..start + BYTES_PER_LEAD_TIME]
                .try_into()
                .expect("8-byte chunk"),
        )
    };
    let (mut low, mut high) = (0, count);
    while low < high {
        let middle = (low + high) / 2;
        if at(middle) <= micros {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    let split = low * BYTES_PER_LEAD_TIME;
    let mut spliced = Vec::with_capacity(ascending.len() + BYTES_PER_LEAD_TIME);
    spliced.extend_from_slice(&ascending[..split]);
    spliced.extend_from_slice(&micros.to_be_bytes());
    spliced.extend_from_slice(&ascending[split..]);
    Ok(spliced)
}

fn checked_len(blob: &[u8]) -> Result<usize, Error> {
    if !blob.len().is_multiple_of(BYTES_PER_LEAD_TIME) {
        return Err(Error::storage(format!(
            "a lead_time_days blob of {} bytes is not a whole number of lead times",
            blob.len()
        )));
    }
    Ok(blob.len() / BYTES_PER_LEAD_TIME)
}

/// The lead times of a stored blob; refuses one that is not whole or not sorted.
pub(super) fn decode(blob: &[u8]) -> Result<Vec<u64>, Error> {
    checked_len(blob)?;
    let values: Vec<u64> = blob
        .chunks_exact(BYTES_PER_LEAD_TIME)
        .map(|chunk| u64::from_be_bytes(chunk.try_into().expect("8-byte chunk")))
        .collect();
    if !values.is_sorted() {
        return Err(Error::storage("a lead_time_days blob is not sorted"));
    }
    Ok(values)
}

/// The lead time a record adds to its day, if it counts (a project and a commit time);
/// `Err` if its clock is skewed. `micros` as `LeadTimeRecord::duration_micros` derives it.
fn counted_micros(has_project: bool, micros: Option<i64>) -> Option<Result<u64, ()>> {
    let micros = micros.filter(|_| has_project)?;
    Some(u64::try_from(micros).map_err(|_| ()))
}

/// The day's key columns, as bound in every statement here: the org (its id in [`add`],
/// its key in a back-fill, see [`ORG_BY_ID`]), the day, the environment and the prod flag.
fn day_key(org: Value, day: NaiveDate, environment: &str, prod: bool) -> [Value; 4] {
    [org, day_text(day).into(), environment.into(), prod.into()]
}

/// `?1` of [`add`]'s statements is the org's id, of a back-fill's its key.
const ORG_BY_ID: &str = "(SELECT org_key FROM orgs WHERE org_id = ?1)";

/// Counts `record` in its day. Call inside the transaction that inserts the record.
pub(crate) fn add(db: &dyn Db, record: &LeadTimeRecord) -> Result<(), Error> {
    let [org_id, day, environment, prod] = day_key(
        record.org_id.as_str().into(),
        record.created_at.instant().date_naive(),
        &record.environment,
        record.prod,
    );
    let counted = counted_micros(record.project_id.is_some(), record.duration_micros());
    // A lead time is spliced into the day's last chunk, read first with its lead times only if
    // it has room for one more; a record without one only counts, in the last chunk, which
    // the upsert finds itself (`chunk` NULL below): no read.
    let (chunk, lead_times) = match counted {
        Some(Ok(micros)) => {
            let last = db.execute(
                &format!(
                    "SELECT chunk, CASE WHEN length(lead_times) < ?5 THEN lead_times END \
                     FROM lead_time_days \
                     WHERE org_key = {ORG_BY_ID} AND day = ?2 AND environment = ?3 AND prod = ?4 \
                     ORDER BY chunk DESC LIMIT 1"
                ),
                &[
                    org_id.clone(),
                    day.clone(),
                    environment.clone(),
                    prod.clone(),
                    ((CHUNK_LEAD_TIMES * BYTES_PER_LEAD_TIME) as i64).into(),
                ],
            )?;
            match last.first() {
                None => (Some(0), Some(encode(&[micros]))),
                Some(row) => match (row.integer(0)?, row.optional_blob(1)?) {
                    (chunk, Some(open)) => (Some(chunk), Some(insert_sorted(open, micros)?)),
                    (chunk, None) => (Some(chunk + 1), Some(encode(&[micros]))),
                },
            }
        }
        _ => (None, None),
    };
    let clock_skew = i64::from(matches!(counted, Some(Err(()))));
    let (failed, rework) = outcome_counts(record);
    db.execute(
        &format!(
            "INSERT INTO lead_time_days \
               (org_key, day, environment, prod, chunk, deployments, clock_skew, lead_times, \
                failed, rework) \
             VALUES ({ORG_BY_ID}, ?2, ?3, ?4, \
               coalesce(?5, (SELECT coalesce(max(chunk), 0) FROM lead_time_days \
                             WHERE org_key = {ORG_BY_ID} AND day = ?2 AND environment = ?3 \
                               AND prod = ?4)), \
               1, ?6, coalesce(?7, x''), ?8, ?9) \
             ON CONFLICT (org_key, day, environment, prod, chunk) DO UPDATE SET \
               deployments = deployments + 1, \
               clock_skew = clock_skew + ?6, \
               lead_times = coalesce(?7, lead_times), \
               failed = failed + ?8, \
               rework = rework + ?9"
        ),
        &[
            org_id,
            day,
            environment,
            prod,
            chunk.map_or(Value::Null, Value::Integer),
            clock_skew.into(),
            lead_times.map_or(Value::Null, Value::Blob),
            failed.into(),
            rework.into(),
        ],
    )?;
    Ok(())
}

/// What a record adds to its day's failed and rework counts.
fn outcome_counts(record: &LeadTimeRecord) -> (i64, i64) {
    (
        i64::from(record.status == DeploymentStatus::Failed),
        i64::from(record.kind == DeploymentKind::Rework),
    )
}

/// Moves the failed and rework counts of `record`'s day by the deltas, when a recorded
/// deployment's status or kind changes; in the same transaction as the change. A record a
/// pending back-fill has yet to reach is left to it: the back-fill reads the record's
/// current status and kind. A decrement is taken from a chunk that counts one.
pub(crate) fn adjust(
    db: &dyn Db,
    record: &LeadTimeRecord,
    failed: i64,
    rework: i64,
) -> Result<(), Error> {
    let [org_id, day, environment, prod] = day_key(
        record.org_id.as_str().into(),
        record.created_at.instant().date_naive(),
        &record.environment,
        record.prod,
    );
    let rows = db.execute(
        &format!(
            "SELECT EXISTS (SELECT 1 FROM backfills AS b JOIN image_lead_times AS l \
                            ON l.rowid BETWEEN b.next_rowid AND b.last_rowid \
                            WHERE b.derived = '{BACKFILL}' AND l.lead_time_id = ?1)"
        ),
        &[record.lead_time_id.into()],
    )?;
    if rows.first().map(|row| row.flag(0)).transpose()? == Some(true) {
        return Ok(());
    }
    let updated = db.execute(
        &format!(
            "UPDATE lead_time_days SET failed = failed + ?5, rework = rework + ?6 \
             WHERE rowid = (SELECT rowid FROM lead_time_days \
                            WHERE org_key = {ORG_BY_ID} AND day = ?2 AND environment = ?3 \
                              AND prod = ?4 AND failed + ?5 >= 0 AND rework + ?6 >= 0 \
                            ORDER BY chunk DESC LIMIT 1) \
             RETURNING 1"
        ),
        &[org_id, day, environment, prod, failed.into(), rework.into()],
    )?;
    if updated.rows.is_empty() {
        return Err(Error::storage(format!(
            "lead_time_days has no day to count deployment {} in",
            record.lead_time_id
        )));
    }
    Ok(())
}

/// The org's chunks of the days from `first` to `last` (inclusive), optionally of one
/// environment and/or prod flag, in day order; without their lead times unless
/// `with_lead_times`.
pub(crate) fn read(
    db: &dyn Db,
    org_id: &crate::domain::OrgId,
    (first, last): (NaiveDate, NaiveDate),
    environment: Option<&str>,
    prod: Option<bool>,
    with_lead_times: bool,
) -> Result<Vec<LeadTimeDay>, Error> {
    // Deployment frequency needs only the counts: the blobs stay in the database.
    let lead_times = if with_lead_times {
        concatenated("lead_times")
    } else {
        "x''".to_owned()
    };
    let (condition, params) = days_condition(org_id, (first, last), environment, prod);
    let rows = db.execute(
        &format!(
            "SELECT unixepoch(day), sum(deployments), sum(clock_skew), {lead_times}, sum(failed), \
                    sum(rework) \
             FROM lead_time_days WHERE {condition} GROUP BY day ORDER BY day"
        ),
        &params,
    )?;
    rows.into_values()
        .map(|mut values| {
            let lead_times = take_blob(&mut values, 3)?;
            let row = Row::new(&values);
            let count = |index: usize| {
                u64::try_from(row.integer(index)?)
                    .map_err(|_| Error::storage("a negative count in lead_time_days"))
            };
            Ok(LeadTimeDay {
                midnight: row.integer(0)?,
                deployments: count(1)?,
                clock_skew: count(2)?,
                lead_times,
                failed: count(4)?,
                rework: count(5)?,
            })
        })
        .collect()
}

/// A day's blobs of `column`, concatenated into one (its rows `GROUP BY day`): a read of a
/// range moves one value per day into the component instead of one per chunk. SQLite's
/// `group_concat` reads a blob as text of the same bytes in a UTF-8 database, and the `CAST`
/// takes them back as they are.
pub(super) fn concatenated(column: &str) -> String {
    format!("coalesce(CAST(group_concat({column}, '') AS BLOB), x'')")
}

/// Adds a read blob of lead times to `set`, refusing one that is not whole.
pub(crate) fn add_stored(set: &mut LeadTimes, stored: Vec<u8>) -> Result<(), Error> {
    set.add_stored(stored)
        .map_err(|_| Error::storage("a lead-time blob is not a whole number of lead times"))
}

/// `WHERE` for a rollup's chunks of one org, the days from `first` to `last` (inclusive), and
/// optionally one environment and/or prod flag (this rollup's and the commits' share it).
pub(super) fn days_condition(
    org_id: &crate::domain::OrgId,
    (first, last): (NaiveDate, NaiveDate),
    environment: Option<&str>,
    prod: Option<bool>,
) -> (String, Vec<Value>) {
    let mut sql = format!("org_key = {} AND day BETWEEN ? AND ?", super::ORG_KEY);
    let mut params: Vec<Value> = vec![
        org_id.as_str().into(),
        day_text(first).into(),
        day_text(last).into(),
    ];
    if let Some(environment) = environment {
        sql.push_str(" AND environment = ?");
        params.push(environment.into());
    }
    if let Some(prod) = prod {
        sql.push_str(" AND prod = ?");
        params.push(prod.into());
    }
    (sql, params)
}

/// Whether every record is in the rollup: false while its back-fill is pending (a database
/// that had records before migration 0004). Requests learn it from their schema read
/// (`migrations::Schema::backfilling`); tests ask here.
#[cfg(test)]
pub(crate) fn is_complete(db: &dyn Db) -> Result<bool, Error> {
    let rows = db.execute(
        "SELECT 1 FROM backfills WHERE derived = ?",
        &[BACKFILL.into()],
    )?;
    Ok(rows.rows.is_empty())
}

/// What a back-fill batch adds to one day.
#[derive(Default)]
struct DayTotals {
    deployments: i64,
    clock_skew: i64,
    failed: i64,
    rework: i64,
    lead_times: Vec<u64>,
}

/// (org key, day, environment, prod): what a day's chunks share.
type DayKey = (i64, NaiveDate, String, bool);

/// What one back-fill step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backfill {
    /// Nothing was pending.
    Complete,
    /// A batch was rolled up; `finished` if it was the last.
    Batch { finished: bool },
}

/// One batch of `batch` records in its own write transaction (tests; requests run
/// [`backfill_batch_in`] through `store::reencode::backfill_step`).
#[cfg(test)]
pub(crate) fn backfill_batch(db: &dyn Db, batch: i64) -> Result<Backfill, Error> {
    crate::db::transaction(db, || backfill_batch_in(db, batch))
}

/// Rolls up the next `batch` records a pending back-fill has not reached, inside the
/// caller's write transaction.
///
/// The back-fill covers the records that existed when the migration ran (rowids up to
/// `last_rowid`); every later record rolled itself up in [`add`]. The cursor is read and
/// moved inside the transaction, so components running steps at once take turns and never
/// roll up a record twice. Each group of a batch becomes new chunks of its day (its sorted
/// lead times, [`CHUNK_LEAD_TIMES`] to a chunk).
pub(crate) fn backfill_batch_in(db: &dyn Db, batch: i64) -> Result<Backfill, Error> {
    let Some(rowids) = BackfillBatch::next(db, BACKFILL, batch)? else {
        return Ok(Backfill::Complete);
    };
    let records = db.execute(
        "SELECT org_key, created_at, environment, prod, project_id IS NOT NULL, duration_micros, \
                status = 'failed', kind = 'rework' \
         FROM image_lead_times WHERE rowid BETWEEN ? AND ?",
        &rowids.range(),
    )?;
    let mut days: BTreeMap<DayKey, DayTotals> = BTreeMap::new();
    for record in records.iter() {
        let created_at = record.timestamp(1)?;
        let key = (
            record.integer(0)?,
            created_at.instant().date_naive(),
            record.text(2)?,
            record.flag(3)?,
        );
        let totals = days.entry(key).or_default();
        totals.deployments += 1;
        totals.failed += i64::from(record.flag(6)?);
        totals.rework += i64::from(record.flag(7)?);
        match counted_micros(record.flag(4)?, record.optional_integer(5)?) {
            Some(Ok(micros)) => totals.lead_times.push(micros),
            Some(Err(())) => totals.clock_skew += 1,
            None => {}
        }
    }
    for ((org_key, day, environment, prod), totals) in days {
        let DayTotals {
            deployments,
            clock_skew,
            failed,
            rework,
            mut lead_times,
        } = totals;
        lead_times.sort_unstable();
        let mut counts = Some((deployments, clock_skew, failed, rework));
        let chunks: Vec<&[u64]> = if lead_times.is_empty() {
            vec![&[]]
        } else {
            lead_times.chunks(CHUNK_LEAD_TIMES).collect()
        };
        for chunk in chunks {
            let (deployments, clock_skew, failed, rework) = counts.take().unwrap_or((0, 0, 0, 0));
            let [org_key, day, environment, prod] =
                day_key(org_key.into(), day, &environment, prod);
            db.execute(
                "INSERT INTO lead_time_days \
                   (org_key, day, environment, prod, chunk, deployments, clock_skew, lead_times, \
                    failed, rework) \
                 VALUES (?1, ?2, ?3, ?4, \
                   (SELECT coalesce(max(chunk) + 1, 0) FROM lead_time_days \
                    WHERE org_key = ?1 AND day = ?2 AND environment = ?3 AND prod = ?4), \
                   ?5, ?6, ?7, ?8, ?9)",
                &[
                    org_key,
                    day,
                    environment,
                    prod,
                    deployments.into(),
                    clock_skew.into(),
                    Value::Blob(encode(chunk)),
                    failed.into(),
                    rework.into(),
                ],
            )?;
        }
    }
    let finished = rowids.done(db, BACKFILL)?;
    Ok(Backfill::Batch { finished })
}

/// Empties the rollup and makes it pending again, as migration 0004 leaves a database that
/// already had records (tests and the benchmark's bulk loads then run [`backfill_step`]).
#[cfg(any(test, feature = "testing"))]
pub(crate) fn restart_backfill(db: &dyn Db) -> Result<(), Error> {
    let register = crate::migrations::MIGRATIONS
        .iter()
        .filter(|m| m.name == "0004_lead_time_days")
        .flat_map(|m| crate::migrations::statements(m.sql))
        .find(|statement| statement.starts_with("INSERT INTO backfills"))
        .ok_or_else(|| Error::storage("migration 0004 registers no back-fill"))?;
    crate::db::transaction(db, || {
        db.execute("DELETE FROM lead_time_days", &[])?;
        db.execute(
            "DELETE FROM backfills WHERE derived = ?",
            &[BACKFILL.into()],
        )?;
        db.execute(&register, &[])?;
        Ok(())
    })
}

/// Rebuilds the whole rollup from the records, `batch` rowids at a time, as a migrated
/// database is.
#[cfg(test)]
pub(crate) fn rebuild(db: &dyn Db, batch: i64) -> Result<(), Error> {
    restart_backfill(db)?;
    while backfill_batch(db, batch)? != Backfill::Complete {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserting_keeps_the_blob_sorted() {
        let mut stored = Vec::new();
        for value in [50, 10, 30, 10, u64::MAX >> 1, 0] {
            stored = insert_sorted(&stored, value).unwrap();
        }
        assert_eq!(decode(&stored).unwrap(), [0, 10, 10, 30, 50, u64::MAX >> 1]);
    }

    #[test]
    fn a_torn_or_unsorted_blob_is_a_storage_error() {
        assert!(decode(&[0; 9]).is_err());
        assert!(decode(&encode(&[2, 1])).is_err());
        assert!(insert_sorted(&[0; 7], 1).is_err());
    }
}
