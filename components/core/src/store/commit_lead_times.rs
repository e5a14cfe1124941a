//! `commit_lead_times` and its daily rollup `commit_lead_time_days`: lead time per commit, and
//! its three stages.
//!
//! A succeeded deployment carries to its app environment the commits of its image and of
//! every image of the same registry channel built since the newest one that already ran there
//! ([`record`]): pipelines list `git log <previous build>..HEAD`, so consecutive builds of a
//! channel partition its history, and a deployment that skips builds still carries theirs.
//! The first deployment of a channel to an app environment carries its own image's commits
//! only: what came before is not known. A deployment of an image older than one of its channel
//! that already ran there carries nothing: that one's history holds its. Each commit counts once per app environment, at the
//! first succeeded deployment that carried it there (the table's key; a later one inserts
//! nothing), with its stages: commit → build (of the image that listed it), build → deploy
//! start, deploy start → finish.
//!
//! The rollup is written in the transaction that inserts the rows, as `lead_time_days` is
//! (`store::daily_rollup`, whose chunking and blob format it shares). The records written
//! before migration 0011 count their head commit, through [`backfill_batch_in`].

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::db::{Db, Row, Rows, Value, take_blob};
use crate::domain::OrgId;
use crate::domain::deployment::LeadTimeRecord;
use crate::domain::dora::{LeadTimeUnit, TimeRange};
use crate::domain::ids::LeadTimeId;
use crate::domain::image::ImageId;
use crate::error::Error;

use super::Page;
use super::daily_rollup::{
    BYTES_PER_LEAD_TIME, CHUNK_LEAD_TIMES, concatenated, day_text, decode, encode,
};
use super::deployments::{DoraFilter, where_clause};
use super::reencode::BackfillBatch;
use super::seconds_of;

/// commit → build, build → deploy start, deploy start → finish.
pub(crate) const STAGES: usize = 3;

/// The stages' blob columns in the rollup (and, with `_micros`, in `commit_lead_times`).
const STAGE_COLUMNS: [&str; STAGES] = ["commit_to_build", "build_to_start", "start_to_finish"];

// A chunk takes as many lead times as one of `lead_time_days` (`CHUNK_LEAD_TIMES`) before a
// write starts a new one. It holds four blobs (the lead times and three stages), up to 8 KB:
// more than a page, but reads cost by the row, and a quarter of it (64, one page) made every
// commit read 1.7× slower at 1M records (docs/performance.md), for a write that costs about
// the same.

/// The `backfills` row of the head commits of records written before migration 0011.
const BACKFILL: &str = "commit_lead_times";

/// The name part of an author or committer `Name <email>`, as the exclusion patterns match it
/// (`settings.excluded_authors`), for the column `column`.
pub(crate) fn author_name_sql(column: &str) -> String {
    format!(
        "CASE WHEN instr({column}, ' <') > 0 THEN substr({column}, 1, instr({column}, ' <') - 1) \
         ELSE {column} END"
    )
}

/// The columns an insert returns, for the rollup: the day's key and the durations.
const RETURNING: &str = "org_key, created_at, environment, prod, project_id IS NOT NULL, \
     duration_micros, commit_to_build_micros, build_to_start_micros, start_to_finish_micros";

/// What commits add to one day.
#[derive(Debug, Default)]
struct CommitDayTotals {
    clock_skew: i64,
    lead_times: Vec<u64>,
    stages: [Vec<u64>; STAGES],
}

impl CommitDayTotals {
    /// A commit's lead time and stages: a negative lead time (the commit is later than the
    /// deployment) only counts as clock skew; a negative stage is left out of its stage.
    fn add(&mut self, duration: i64, stages: [Option<i64>; STAGES]) {
        let Ok(duration) = u64::try_from(duration) else {
            self.clock_skew += 1;
            return;
        };
        self.lead_times.push(duration);
        for (values, stage) in self.stages.iter_mut().zip(stages) {
            if let Some(micros) = stage.and_then(|m| u64::try_from(m).ok()) {
                values.push(micros);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.clock_skew == 0 && self.lead_times.is_empty()
    }
}

/// (org key, day, environment, prod): what a day's chunks share.
type CommitDayKey = (i64, NaiveDate, String, bool);

/// Adds the inserted rows an insert returned ([`RETURNING`]) to their days' totals; rows of a
/// deployment without a project do not count (as in every DORA query).
fn totals_of(rows: &Rows) -> Result<BTreeMap<CommitDayKey, CommitDayTotals>, Error> {
    let mut days: BTreeMap<CommitDayKey, CommitDayTotals> = BTreeMap::new();
    for row in rows.iter() {
        if !row.flag(4)? {
            continue;
        }
        let key = (
            row.integer(0)?,
            row.timestamp(1)?.instant().date_naive(),
            row.text(2)?,
            row.flag(3)?,
        );
        let stages = [
            row.optional_integer(6)?,
            row.optional_integer(7)?,
            row.optional_integer(8)?,
        ];
        days.entry(key).or_default().add(row.integer(5)?, stages);
    }
    Ok(days)
}

/// Counts the commits `record` (a succeeded deployment, just inserted) carried to its app
/// environment for the first time. Call inside the transaction that inserts the record.
pub(crate) fn record(db: &dyn Db, record: &LeadTimeRecord) -> Result<(), Error> {
    // An image of the channel newer than this one already ran there: its history holds this
    // one's, so nothing is new (a rollback, or a late deployment of an older build).
    let newer_ran = db.execute(
        "SELECT EXISTS (SELECT 1 FROM image_lead_times AS l \
                        JOIN images AS i ON i.image_id = l.image_id \
                        JOIN images AS x ON x.image_id = ?2 \
                        WHERE l.app_environment_id = ?1 AND l.rolled_out = 1 \
                          AND l.image_id > ?2 AND l.created_at <= ?3 \
                          AND i.registry_key = x.registry_key AND i.channel = x.channel)",
        &[
            record.app_environment_id.into(),
            record.image_id.into(),
            record.created_at.into(),
        ],
    )?;
    if newer_ran.first().map(|row| row.flag(0)).transpose()? == Some(true) {
        return Ok(());
    }
    let base = db.execute(
        "SELECT l.image_id FROM image_lead_times AS l \
         JOIN images AS i ON i.image_id = l.image_id \
         JOIN images AS x ON x.image_id = ?2 \
         WHERE l.app_environment_id = ?1 AND l.rolled_out = 1 AND l.image_id < ?2 \
           AND l.created_at <= ?3 \
           AND i.registry_key = x.registry_key AND i.channel = x.channel \
         ORDER BY l.image_id DESC LIMIT 1",
        &[
            record.app_environment_id.into(),
            record.image_id.into(),
            record.created_at.into(),
        ],
    )?;
    let base = match base.first() {
        Some(row) => Value::Blob(row.blob(0)?.to_vec()),
        None => Value::Null,
    };
    // The images whose commits the deployment carries (its own alone without a base), then
    // their commits: the listed ones, and each head commit (listed or not). The oldest image
    // that lists a commit is the build it went into, so rows are inserted in image order and
    // the first of a sha wins.
    let inserted = db.execute(
        &format!(
            "WITH carrying AS ( \
               SELECT w.image_id, w.built_at, w.commits, w.git_hash, \
                      w.git_hash_commit_timestamp AS committed_at, w.committer \
               FROM images AS x JOIN images AS w \
                 ON w.registry_key = x.registry_key AND w.channel = x.channel \
               WHERE x.image_id = ?1 AND w.image_id <= ?1 AND w.image_id > ?2 \
               UNION ALL \
               SELECT image_id, built_at, commits, git_hash, git_hash_commit_timestamp, committer \
               FROM images WHERE image_id = ?1 AND ?2 IS NULL), \
             carried AS ( \
               SELECT c.image_id, c.built_at, json_extract(j.value, '$[0]') AS sha, \
                      json_extract(j.value, '$[1]') AS committed_at, \
                      coalesce(json_extract(j.value, '$[2]'), \
                               CASE WHEN json_extract(j.value, '$[0]') = c.git_hash \
                                    THEN c.committer END) AS author, 0 AS head \
               FROM carrying AS c, json_each(c.commits) AS j \
               UNION ALL \
               SELECT image_id, built_at, git_hash, committed_at, committer, 1 \
               FROM carrying WHERE committed_at IS NOT NULL AND git_hash <> '') \
             INSERT INTO commit_lead_times \
               (app_environment_id, sha, org_key, lead_time_id, image_id, project_id, app_id, \
                environment, prod, author, committed_at, created_at, duration_micros, \
                commit_to_build_micros, build_to_start_micros, start_to_finish_micros) \
             SELECT ?3, sha, (SELECT org_key FROM orgs WHERE org_id = ?4), ?5, image_id, ?6, ?7, \
                    ?8, ?9, author, committed_at, ?10, ?10 - committed_at, \
                    built_at - committed_at, ?11 - built_at, ?10 - ?11 \
             FROM carried WHERE true ORDER BY image_id, head \
             ON CONFLICT (app_environment_id, sha) DO NOTHING \
             RETURNING {RETURNING}"
        ),
        &[
            record.image_id.into(),
            base,
            record.app_environment_id.into(),
            record.org_id.as_str().into(),
            record.lead_time_id.into(),
            record.project_id.as_deref().into(),
            record.app_id.as_str().into(),
            record.environment.as_str().into(),
            record.prod.into(),
            record.created_at.into(),
            record.started_at.into(),
        ],
    )?;
    for ((org_key, day, environment, prod), totals) in totals_of(&inserted)? {
        write_day(db, org_key, day, &environment, prod, totals, true)?;
    }
    Ok(())
}

/// Adds `totals` to the day: spliced into its last chunk when `splice` and that has room for
/// all of them, else as new chunks of up to [`CHUNK_LEAD_TIMES`] each after it.
fn write_day(
    db: &dyn Db,
    org_key: i64,
    day: NaiveDate,
    environment: &str,
    prod: bool,
    mut totals: CommitDayTotals,
    splice: bool,
) -> Result<(), Error> {
    if totals.is_empty() {
        return Ok(());
    }
    totals.lead_times.sort_unstable();
    for stage in &mut totals.stages {
        stage.sort_unstable();
    }
    let key: [Value; 4] = [
        org_key.into(),
        day_text(day).into(),
        environment.into(),
        prod.into(),
    ];
    // The largest blob that still takes every new lead time (-1: none does, or no splice: the
    // blobs are then not read, `length` reads a blob's size from its header).
    let room = CHUNK_LEAD_TIMES
        .checked_sub(totals.lead_times.len())
        .filter(|free| splice && (*free > 0 || totals.lead_times.is_empty()))
        .map_or(-1, |free| (free * BYTES_PER_LEAD_TIME) as i64);
    let blobs = |column: &str| format!("CASE WHEN length(lead_times) <= ?5 THEN {column} END");
    let last = db.execute(
        &format!(
            "SELECT chunk, length(lead_times) <= ?5, {}, {}, {}, {} FROM commit_lead_time_days \
             WHERE org_key = ?1 AND day = ?2 AND environment = ?3 AND prod = ?4 \
             ORDER BY chunk DESC LIMIT 1",
            blobs("lead_times"),
            blobs(STAGE_COLUMNS[0]),
            blobs(STAGE_COLUMNS[1]),
            blobs(STAGE_COLUMNS[2]),
        ),
        &[
            key[0].clone(),
            key[1].clone(),
            key[2].clone(),
            key[3].clone(),
            room.into(),
        ],
    )?;
    let mut next_chunk = 0;
    if let Some(row) = last.first() {
        let chunk = row.integer(0)?;
        if splice && row.flag(1)? {
            return splice_into(db, &key, chunk, row, totals);
        }
        next_chunk = chunk + 1;
    }
    let count = totals.lead_times.len().div_ceil(CHUNK_LEAD_TIMES).max(1);
    for index in 0..count {
        let slice = |values: &[u64]| {
            let start = (index * CHUNK_LEAD_TIMES).min(values.len());
            let end = ((index + 1) * CHUNK_LEAD_TIMES).min(values.len());
            encode(&values[start..end])
        };
        let clock_skew = if index == 0 { totals.clock_skew } else { 0 };
        db.execute(
            "INSERT INTO commit_lead_time_days \
               (org_key, day, environment, prod, chunk, clock_skew, lead_times, commit_to_build, \
                build_to_start, start_to_finish) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            &[
                key[0].clone(),
                key[1].clone(),
                key[2].clone(),
                key[3].clone(),
                (next_chunk + index as i64).into(),
                clock_skew.into(),
                Value::Blob(slice(&totals.lead_times)),
                Value::Blob(slice(&totals.stages[0])),
                Value::Blob(slice(&totals.stages[1])),
                Value::Blob(slice(&totals.stages[2])),
            ],
        )?;
    }
    Ok(())
}

/// Merges `totals` into the chunk `row` read (its blobs in columns 2 to 5).
fn splice_into(
    db: &dyn Db,
    key: &[Value; 4],
    chunk: i64,
    row: Row<'_>,
    totals: CommitDayTotals,
) -> Result<(), Error> {
    let merged = |index: usize, added: &[u64]| -> Result<Vec<u8>, Error> {
        let mut values = decode(row.blob(index)?)?;
        values.extend_from_slice(added);
        values.sort_unstable();
        Ok(encode(&values))
    };
    db.execute(
        "UPDATE commit_lead_time_days SET clock_skew = clock_skew + ?6, lead_times = ?7, \
           commit_to_build = ?8, build_to_start = ?9, start_to_finish = ?10 \
         WHERE org_key = ?1 AND day = ?2 AND environment = ?3 AND prod = ?4 AND chunk = ?5",
        &[
            key[0].clone(),
            key[1].clone(),
            key[2].clone(),
            key[3].clone(),
            chunk.into(),
            totals.clock_skew.into(),
            Value::Blob(merged(2, &totals.lead_times)?),
            Value::Blob(merged(3, &totals.stages[0])?),
            Value::Blob(merged(4, &totals.stages[1])?),
            Value::Blob(merged(5, &totals.stages[2])?),
        ],
    )?;
    Ok(())
}

/// One day of commit lead times: its chunks of every environment asked for, together, their
/// blobs as stored and concatenated (`LeadTimes::add_stored`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CommitDay {
    /// The day's first second (Unix time).
    pub(crate) midnight: i64,
    pub(crate) clock_skew: u64,
    pub(crate) lead_times: Vec<u8>,
    /// Empty unless read with them (`stages_from` its day or before).
    pub(crate) stages: [Vec<u8>; STAGES],
}

/// The org's chunks of the days from `first` to `last` (inclusive), optionally of one
/// environment and/or prod flag; the stages only of the days from `stages_from` on.
pub(crate) fn read_days(
    db: &dyn Db,
    org_id: &OrgId,
    (first, last): (NaiveDate, NaiveDate),
    environment: Option<&str>,
    prod: Option<bool>,
    stages_from: Option<NaiveDate>,
) -> Result<Vec<CommitDay>, Error> {
    // Blobs are read only where asked for: `CASE` leaves the others in the database.
    let stages = match stages_from {
        Some(from) => STAGE_COLUMNS
            .iter()
            .map(|column| {
                format!(
                    "CASE WHEN day >= '{}' THEN {} ELSE x'' END",
                    day_text(from),
                    concatenated(column)
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        None => "x'', x'', x''".to_owned(),
    };
    let (condition, params) =
        super::daily_rollup::days_condition(org_id, (first, last), environment, prod);
    let rows = db.execute(
        &format!(
            "SELECT unixepoch(day), sum(clock_skew), {}, {stages} FROM commit_lead_time_days \
             WHERE {condition} GROUP BY day",
            concatenated("lead_times")
        ),
        &params,
    )?;
    rows.into_values()
        .map(|mut values| {
            let mut blob = |index| take_blob(&mut values, index);
            let (lead_times, stages) = (blob(2)?, [blob(3)?, blob(4)?, blob(5)?]);
            let row = Row::new(&values);
            Ok(CommitDay {
                midnight: row.integer(0)?,
                clock_skew: u64::try_from(row.integer(1)?)
                    .map_err(|_| Error::storage("a negative count in commit_lead_time_days"))?,
                lead_times,
                stages,
            })
        })
        .collect()
}

/// A commit lead time as read from its record: (created_at in Unix seconds, lead time µs, each
/// stage in µs if known).
pub(crate) type RecordDurations = (i64, i64, [Option<i64>; STAGES]);

/// `(created_at in Unix seconds, lead time µs, stages µs)` of every commit lead time of
/// `range` that counts, in no particular order, packed ([`super::packed_numbers`]).
pub(crate) fn durations_with_stages(
    db: &dyn Db,
    org_id: &OrgId,
    range: &TimeRange,
    filter: &DoraFilter,
) -> Result<Vec<RecordDurations>, Error> {
    let (condition, params) = where_clause(org_id, range, filter, true, LeadTimeUnit::Commit);
    let sql = durations_with_stages_sql(&condition);
    super::packed_numbers(
        db,
        &sql,
        &params,
        "commit lead time",
        |[created, micros, build, start, finish]| {
            Some((seconds_of(created?), micros?, [build, start, finish]))
        },
    )
}

fn durations_with_stages_sql(condition: &str) -> String {
    format!(
        "SELECT group_concat(l.created_at || ' ' || l.duration_micros || ' ' || \
                             l.commit_to_build_micros || ' ' || \
                             coalesce(l.build_to_start_micros, '') || ' ' || \
                             coalesce(l.start_to_finish_micros, ''), ',') \
         FROM commit_lead_times AS l WHERE {condition}"
    )
}

/// Counts the head commits of the next `batch` records written before migration 0011, inside
/// the caller's write transaction; `None` if nothing is pending. Runs after the re-encoding
/// and the deployments' rollup (`store::reencode::backfill_batch`): it reads copied records.
/// A commit already counted in the app environment by a later deployment recorded since the
/// upgrade keeps that one (the key).
pub(crate) fn backfill_batch_in(db: &dyn Db, batch: i64) -> Result<Option<bool>, Error> {
    let Some(rowids) = BackfillBatch::next(db, BACKFILL, batch)? else {
        return Ok(None);
    };
    let inserted = db.execute(
        &format!(
            "INSERT INTO commit_lead_times \
               (app_environment_id, sha, org_key, lead_time_id, image_id, project_id, app_id, \
                environment, prod, author, committed_at, created_at, duration_micros, \
                commit_to_build_micros, build_to_start_micros, start_to_finish_micros) \
             SELECT l.app_environment_id, i.git_hash, l.org_key, l.lead_time_id, l.image_id, \
                    l.project_id, l.app_id, l.environment, l.prod, i.committer, \
                    i.git_hash_commit_timestamp, l.created_at, l.duration_micros, \
                    i.built_at - i.git_hash_commit_timestamp, l.started_at - i.built_at, \
                    l.created_at - l.started_at \
             FROM image_lead_times AS l JOIN images AS i ON i.image_id = l.image_id \
             WHERE l.rowid BETWEEN ? AND ? AND l.duration_micros IS NOT NULL \
               AND i.git_hash <> '' AND i.git_hash_commit_timestamp IS NOT NULL \
             ORDER BY l.rowid \
             ON CONFLICT (app_environment_id, sha) DO NOTHING \
             RETURNING {RETURNING}"
        ),
        &rowids.range(),
    )?;
    for ((org_key, day, environment, prod), totals) in totals_of(&inserted)? {
        write_day(db, org_key, day, &environment, prod, totals, false)?;
    }
    Ok(Some(rowids.done(db, BACKFILL)?))
}

/// Empties the commit rollup and rebuilds it from `commit_lead_times`, `batch` rows at a time
/// (tests: the rollup a rebuild makes must equal the one the writes kept).
#[cfg(test)]
pub(crate) fn rebuild_rollup(db: &dyn Db, batch: i64) -> Result<(), Error> {
    crate::db::transaction(db, || {
        db.execute("DELETE FROM commit_lead_time_days", &[])?;
        let mut after = 0_i64;
        loop {
            let rows = db.execute(
                &format!(
                    "SELECT {RETURNING}, rowid FROM commit_lead_times \
                     WHERE rowid > ? ORDER BY rowid LIMIT ?"
                ),
                &[after.into(), batch.into()],
            )?;
            let Some(last) = rows.rows.last() else {
                return Ok(());
            };
            after = match last.last() {
                Some(Value::Integer(rowid)) => *rowid,
                _ => return Err(Error::storage("no rowid")),
            };
            for ((org_key, day, environment, prod), totals) in totals_of(&rows)? {
                write_day(db, org_key, day, &environment, prod, totals, false)?;
            }
        }
    })
}

/// One commit's lead time, with the deployment that counted it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CommitLeadTime {
    pub(crate) sha: String,
    pub(crate) committed_at: crate::domain::Timestamp,
    pub(crate) author: Option<String>,
    pub(crate) duration_micros: i64,
    /// The deployment's: when, which, of which image, where.
    pub(crate) created_at: crate::domain::Timestamp,
    pub(crate) lead_time_id: LeadTimeId,
    pub(crate) deployment_id: Option<String>,
    pub(crate) image_id: ImageId,
    pub(crate) image_name_with_tag: String,
    pub(crate) project_id: Option<String>,
    pub(crate) app_id: String,
    pub(crate) environment: String,
    pub(crate) prod: bool,
}

/// A page of the commit lead times that count, newest deployment first. The cursor is
/// `{created_at}~{lead_time_id}~{sha}` of the last of the previous page.
pub(crate) fn values(
    db: &dyn Db,
    org_id: &OrgId,
    range: &TimeRange,
    filter: &DoraFilter,
    after: Option<(crate::domain::Timestamp, LeadTimeId, String)>,
    limit: usize,
) -> Result<Page<CommitLeadTime>, Error> {
    let (mut condition, mut params) =
        where_clause(org_id, range, filter, true, LeadTimeUnit::Commit);
    if let Some((created_at, lead_time_id, sha)) = after {
        condition.push_str(
            " AND (l.created_at < ? OR (l.created_at = ? AND (l.lead_time_id < ? \
               OR (l.lead_time_id = ? AND l.sha < ?))))",
        );
        params.extend([
            created_at.into(),
            created_at.into(),
            lead_time_id.into(),
            lead_time_id.into(),
            sha.into(),
        ]);
    }
    params.push((limit as i64 + 1).into());
    let rows = db.execute(
        &format!(
            "SELECT l.sha, l.committed_at, l.author, l.duration_micros, l.created_at, \
                    l.lead_time_id, d.deployment_id, d.image_id, i.image_name_with_tag, \
                    l.project_id, l.app_id, l.environment, l.prod \
             FROM commit_lead_times AS l \
             JOIN image_lead_times AS d ON d.lead_time_id = l.lead_time_id \
             JOIN images AS i ON i.image_id = d.image_id \
             WHERE {condition} \
             ORDER BY l.created_at DESC, l.lead_time_id DESC, l.sha DESC LIMIT ?"
        ),
        &params,
    )?;
    let items = rows
        .iter()
        .map(|row| {
            Ok(CommitLeadTime {
                sha: row.text(0)?,
                committed_at: row.timestamp(1)?,
                author: row.optional_text(2)?,
                duration_micros: row.integer(3)?,
                created_at: row.timestamp(4)?,
                lead_time_id: row.id(5)?,
                deployment_id: row.optional_text(6)?,
                image_id: row.id(7)?,
                image_name_with_tag: row.text(8)?,
                project_id: row.optional_text(9)?,
                app_id: row.text(10)?,
                environment: row.text(11)?,
                prod: row.flag(12)?,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(Page::from_rows(items, limit, |c| {
        format!("{}~{}~{}", c.created_at.to_rfc3339(), c.lead_time_id, c.sha)
    }))
}
