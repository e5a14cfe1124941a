//! Migration 0007's copy of the two large tables, `images` and `image_lead_times`, from the
//! text encoding (`<table>_text`) into the compact one, a batch at a time, and the drops of
//! the old tables after it.
//!
//! Copying a million records in the migration itself would hold the write lock for tens of
//! seconds, and every pipeline would wait. So the migration copies the small tables, leaves
//! `backfills` rows for these two, and each batch here is its own write transaction, run
//! after a response (`crate::AfterResponse`), as the rollup's back-fill is. Rows keep their
//! rowid. Each table's last old row is copied by the migration itself, so a row written after
//! it gets a rowid above every old row's and never meets one being copied.
//!
//! Until the copy is done (`migrations::Schema::copying`), a request that looks rows up by
//! key copies those rows first ([`copy_image`] and its siblings, called by the handlers), so
//! a retried pipeline run still finds its image and a deployment its record; a request that
//! reads whole tables (lists, DORA) runs batches itself for a moment ([`finish_copy`]) and
//! answers 503 with Retry-After if rows are still left. A copied row is never copied again
//! (each copy skips rowids already present), so lookups, batches and replicas can race.

use crate::db::{Db, DbError, transaction};
use crate::domain::ids::LeadTimeId;
use crate::domain::{ImageId, OrgId, RegistryId};
use crate::env::Clock;
use crate::error::Error;

use super::daily_rollup::Backfill;

/// Rows one batch copies: at a million records a batch holds the write lock for well under a
/// second (p50 ~150 ms, the bench prints the figures), and the whole copy is ~300 batches.
pub(crate) const COPY_BATCH: i64 = 5_000;

/// A migration copies in its own transaction when no more rows than this are left: a new or
/// small database is never in the copying state at all.
pub(crate) const INLINE_ROWS: i64 = 20_000;

/// How long a read of whole tables copies batches itself before answering 503.
const FINISH_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

/// One table's copy: its `backfills` row, the tables, and the conversion of each column
/// (migration 0007 spells the same conversions).
struct Copy {
    derived: &'static str,
    table: &'static str,
    old: &'static str,
    columns: &'static str,
    values: &'static str,
}

const IMAGES: Copy = Copy {
    derived: "images",
    table: "images",
    old: "images_text",
    columns: "image_id, org_key, registry_key, channel, version, update_type, tag_name, image_name, \
        image_name_with_tag, status, tags, git_hash, git_hash_commit_timestamp, gitops_hash, \
        api_definition_path, committer, commit_msg, run_id, image_ports, cluster_image_tags, \
        api_version_id, request_sha256, built_at, updated_at",
    values: "unhex(replace(t.image_id, '-', '')), \
        (SELECT org_key FROM orgs WHERE orgs.org_id = t.org_id), \
        (SELECT registry_key FROM image_registries AS r \
         WHERE r.registry_id = unhex(replace(t.registry_id, '-', ''))), t.channel, t.version, t.update_type, t.tag_name, \
        t.image_name, t.image_name_with_tag, t.status, t.tags, t.git_hash, \
        unixepoch(substr(t.git_hash_commit_timestamp, 1, 19)) * 1000000 \
          + CAST(substr(t.git_hash_commit_timestamp, 21, 6) AS INTEGER), \
        t.gitops_hash, t.api_definition_path, t.committer, t.commit_msg, t.run_id, \
        t.image_ports, t.cluster_image_tags, t.api_version_id, unhex(t.request_sha256), \
        unixepoch(substr(t.built_at, 1, 19)) * 1000000 + CAST(substr(t.built_at, 21, 6) AS INTEGER), \
        unixepoch(substr(t.updated_at, 1, 19)) * 1000000 + CAST(substr(t.updated_at, 21, 6) AS INTEGER)",
};

const LEAD_TIMES: Copy = Copy {
    derived: "image_lead_times",
    table: "image_lead_times",
    old: "image_lead_times_text",
    columns: "lead_time_id, org_key, image_id, app_environment_id, deployment_id, project_id, \
        app_id, environment, prod, created_at, duration_micros, recorded_at",
    values: "unhex(replace(t.lead_time_id, '-', '')), \
        (SELECT org_key FROM orgs WHERE orgs.org_id = t.org_id), \
        unhex(replace(t.image_id, '-', '')), unhex(replace(t.app_environment_id, '-', '')), \
        t.deployment_id, t.project_id, t.app_id, t.environment, t.prod, \
        unixepoch(substr(t.created_at, 1, 19)) * 1000000 + CAST(substr(t.created_at, 21, 6) AS INTEGER), \
        CAST(round(t.duration_mins * 60000000.0) AS INTEGER), \
        unixepoch(substr(t.recorded_at, 1, 19)) * 1000000 + CAST(substr(t.recorded_at, 21, 6) AS INTEGER)",
};

/// The copies, parents first: a record's image must be there before the record.
const COPIES: [&Copy; 2] = [&IMAGES, &LEAD_TIMES];

/// The `backfills` row of the end of the copy, after both copies: `next_rowid` 0 while the
/// old images are deleted a batch at a time, 1 for the drops.
const DROPPING: &str = "text_tables";

/// The old tables, children first (foreign keys are on: a parent dropped while a child refers
/// to it would be emptied row by row). By the time they are dropped every one is empty —
/// the copy of the records deleted each batch it copied, the images were deleted after them
/// — so the drops free a few pages, whatever the size of the database. (Dropping a full table
/// or index visits every page of it with the write lock held: a second at a million records.)
/// The file does not shrink (README, *Upgrading*).
const DROPS: [&str; 5] = [
    "DROP TABLE IF EXISTS image_lead_times_text",
    "DROP TABLE IF EXISTS images_text",
    "DROP TABLE IF EXISTS app_environments_text",
    "DROP TABLE IF EXISTS environments_text",
    "DROP TABLE IF EXISTS image_registries_text",
];

impl Copy {
    /// Copies the old rows matching `condition` (on the old table, `t`) that are not copied
    /// yet, in rowid order, keeping their rowids.
    fn sql(&self, condition: &str) -> String {
        let Copy {
            table,
            old,
            columns,
            values,
            ..
        } = self;
        format!(
            "INSERT INTO {table} (rowid, {columns}) SELECT t.rowid, {values} FROM {old} AS t \
             WHERE ({condition}) AND NOT EXISTS (SELECT 1 FROM {table} AS n WHERE n.rowid = t.rowid) \
             ORDER BY t.rowid"
        )
    }
}

/// Copies the rows `condition` matches, unless the copy is already over (its tables gone
/// since the request read its schema: then every row is in place).
fn copy_matching(
    db: &dyn Db,
    copy: &Copy,
    condition: &str,
    params: &[crate::db::Value],
) -> Result<(), Error> {
    match db.execute(&copy.sql(condition), params) {
        Err(DbError::Other(message)) if message.contains("no such table") => Ok(()),
        other => other.map(|_| ()).map_err(Into::into),
    }
}

/// The image of `run_id` in the registry, copied if it is not yet (the pipeline's retry
/// check).
pub(crate) fn copy_image_of_run(
    db: &dyn Db,
    registry_id: RegistryId,
    run_id: &str,
) -> Result<(), Error> {
    copy_matching(
        db,
        &IMAGES,
        "t.registry_id = ? AND t.run_id = ?",
        &[registry_id.to_text().into(), run_id.into()],
    )
}

/// The image, copied if it is not yet.
pub(crate) fn copy_image(db: &dyn Db, image_id: ImageId) -> Result<(), Error> {
    copy_matching(db, &IMAGES, "t.image_id = ?", &[image_id.to_text().into()])
}

/// The image's records, and the image, copied if they are not yet (a deployment's retry
/// checks).
pub(crate) fn copy_image_with_records(db: &dyn Db, image_id: ImageId) -> Result<(), Error> {
    copy_image(db, image_id)?;
    copy_matching(
        db,
        &LEAD_TIMES,
        "t.image_id = ?",
        &[image_id.to_text().into()],
    )
}

/// The org's record of `deployment_id` and its image, copied if they are not yet.
pub(crate) fn copy_record_of_deployment(
    db: &dyn Db,
    org_id: &OrgId,
    deployment_id: &str,
) -> Result<(), Error> {
    let params = [org_id.as_str().into(), deployment_id.into()];
    copy_matching(
        db,
        &IMAGES,
        "t.image_id IN (SELECT image_id FROM image_lead_times_text \
                        WHERE org_id = ? AND deployment_id = ?)",
        &params,
    )?;
    copy_matching(
        db,
        &LEAD_TIMES,
        "t.org_id = ? AND t.deployment_id = ?",
        &params,
    )
}

/// The record and its image, copied if they are not yet.
pub(crate) fn copy_record(db: &dyn Db, lead_time_id: LeadTimeId) -> Result<(), Error> {
    let params = [lead_time_id.to_text().into()];
    copy_matching(
        db,
        &IMAGES,
        "t.image_id IN (SELECT image_id FROM image_lead_times_text WHERE lead_time_id = ?)",
        &params,
    )?;
    copy_matching(db, &LEAD_TIMES, "t.lead_time_id = ?", &params)
}

/// Right after migration 0007, in its transaction: copies each table's last old row (so that
/// later rows get higher rowids), then the whole copy and the drops too if at most
/// [`INLINE_ROWS`] rows are left (and `inline`).
pub(crate) fn begin(db: &dyn Db, inline: bool) -> Result<(), Error> {
    let last_record = "(SELECT max(rowid) FROM image_lead_times_text)";
    db.execute(
        &IMAGES.sql("t.rowid = (SELECT max(rowid) FROM images_text)"),
        &[],
    )?;
    db.execute(
        &IMAGES.sql(&format!(
            "t.image_id = (SELECT image_id FROM image_lead_times_text WHERE rowid = {last_record})"
        )),
        &[],
    )?;
    db.execute(&LEAD_TIMES.sql(&format!("t.rowid = {last_record}")), &[])?;
    let left = db.execute(
        "SELECT coalesce(sum(last_rowid - next_rowid + 1), 0) FROM backfills \
         WHERE derived IN ('images', 'image_lead_times')",
        &[],
    )?;
    let left = left
        .first()
        .map(|row| row.integer(0))
        .transpose()?
        .unwrap_or(0);
    if inline && left <= INLINE_ROWS {
        while step_in(db, INLINE_ROWS)? != Backfill::Complete {}
    }
    Ok(())
}

/// One step of the re-encoding inside the caller's write transaction: a batch of `batch` rows
/// of the first table still copying, or (both copied) the next drop. `Complete` if nothing
/// of it is left.
pub(crate) fn step_in(db: &dyn Db, batch: i64) -> Result<Backfill, Error> {
    let rows = db.execute(
        "SELECT derived, next_rowid, last_rowid FROM backfills \
         WHERE derived IN ('images', 'image_lead_times', 'text_tables')",
        &[],
    )?;
    let mut pending = Vec::new();
    for row in rows.iter() {
        pending.push((row.text(0)?, row.integer(1)?, row.integer(2)?));
    }
    let find = |derived: &str| pending.iter().find(|(name, ..)| name == derived);
    for copy in COPIES {
        if let Some((_, next, last)) = find(copy.derived) {
            let rowids = BackfillBatch::of(*next, *last, batch);
            let range = rowids.range();
            // Belt and braces: an org that only old images or records name is interned first.
            db.execute(
                &format!(
                    "INSERT OR IGNORE INTO orgs (org_id) SELECT DISTINCT org_id FROM {} \
                     WHERE rowid BETWEEN ? AND ?",
                    copy.old
                ),
                &range,
            )?;
            db.execute(&copy.sql("t.rowid BETWEEN ? AND ?"), &range)?;
            // Records are children only: the old ones go as they are copied. Old images are
            // parents of old records, so they go after every record has ([`DROPPING`]).
            if copy.derived == LEAD_TIMES.derived {
                db.execute(
                    &format!("DELETE FROM {} WHERE rowid BETWEEN ? AND ?", copy.old),
                    &range,
                )?;
            }
            rowids.done(db, copy.derived)?;
            return Ok(Backfill::Batch { finished: false });
        }
    }
    let Some((_, next, _)) = find(DROPPING) else {
        return Ok(Backfill::Complete);
    };
    if *next == 0 {
        // The old images, a batch at a time: their records are gone, so no foreign key
        // stops them, and each batch's lock is as short as a copy's.
        db.execute(
            "DELETE FROM images_text WHERE rowid IN \
             (SELECT rowid FROM images_text ORDER BY rowid LIMIT ?)",
            &[batch.max(1).into()],
        )?;
        let left = db.execute("SELECT EXISTS (SELECT 1 FROM images_text)", &[])?;
        if !left
            .first()
            .map(|row| row.flag(0))
            .transpose()?
            .unwrap_or(false)
        {
            move_cursor(db, DROPPING, 0, 1)?;
        }
        return Ok(Backfill::Batch { finished: false });
    }
    for drop in DROPS {
        db.execute(drop, &[])?;
    }
    move_cursor(db, DROPPING, 1, 1)?;
    Ok(Backfill::Batch { finished: true })
}

/// What the next [`backfill_step`] will do, in words (the bench labels its timings so).
#[cfg(any(test, feature = "testing"))]
pub(crate) fn next_step(db: &dyn Db) -> Result<Option<String>, Error> {
    let rows = db.execute("SELECT derived, next_rowid FROM backfills", &[])?;
    let mut pending = Vec::new();
    for row in rows.iter() {
        pending.push((row.text(0)?, row.integer(1)?));
    }
    let order = [
        "images",
        "image_lead_times",
        DROPPING,
        "lead_time_days",
        "commit_lead_times",
    ];
    Ok(order.iter().find_map(|derived| {
        let (_, next) = pending.iter().find(|(name, _)| name == derived)?;
        Some(match *derived {
            DROPPING if *next == 0 => "delete old images".to_owned(),
            DROPPING => "drop old tables".to_owned(),
            "lead_time_days" => "roll up records".to_owned(),
            "commit_lead_times" => "count head commits".to_owned(),
            copy => format!("copy {copy}"),
        })
    }))
}

/// The rows of a back-fill's next batch: rowids `first..=end`, of the back-fill that runs to
/// `last`. Read and moved inside the caller's write transaction, so steps running at once in
/// several components take turns and never do a row twice.
#[derive(Debug, Clone, Copy)]
pub(super) struct BackfillBatch {
    first: i64,
    end: i64,
    last: i64,
}

impl BackfillBatch {
    fn of(next: i64, last: i64, batch: i64) -> BackfillBatch {
        BackfillBatch {
            first: next,
            end: last.min(next.saturating_add(batch.max(1) - 1)),
            last,
        }
    }

    /// The next `batch` rows of the back-fill `derived`; `None` once it is done (or if it
    /// never was pending).
    pub(super) fn next(db: &dyn Db, derived: &str, batch: i64) -> Result<Option<Self>, Error> {
        let cursor = db.execute(
            "SELECT next_rowid, last_rowid FROM backfills WHERE derived = ?",
            &[derived.into()],
        )?;
        cursor
            .first()
            .map(|row| Ok(BackfillBatch::of(row.integer(0)?, row.integer(1)?, batch)))
            .transpose()
    }

    /// The rowid range to bind at `BETWEEN ? AND ?`.
    pub(super) fn range(self) -> [crate::db::Value; 2] {
        [self.first.into(), self.end.into()]
    }

    /// Moves the cursor of `derived` past this batch, or ends the back-fill if it was the
    /// last; answers whether it was.
    pub(super) fn done(self, db: &dyn Db, derived: &str) -> Result<bool, Error> {
        move_cursor(db, derived, self.end, self.last)?;
        Ok(self.end >= self.last)
    }
}

/// Moves a back-fill's cursor past `done`, or ends it at `last`.
fn move_cursor(db: &dyn Db, derived: &str, done: i64, last: i64) -> Result<(), Error> {
    if done >= last {
        db.execute("DELETE FROM backfills WHERE derived = ?", &[derived.into()])?;
    } else {
        db.execute(
            "UPDATE backfills SET next_rowid = ? WHERE derived = ?",
            &[(done + 1).into(), derived.into()],
        )?;
    }
    Ok(())
}

/// One step of whatever is pending, in its own write transaction: the re-encoding first,
/// then the rollup's back-fill (which reads the copied records).
pub(crate) fn backfill_step(db: &dyn Db) -> Result<Backfill, Error> {
    backfill_batch(db, COPY_BATCH, super::daily_rollup::BACKFILL_BATCH)
}

/// [`backfill_step`] with given batch sizes (tests take small ones).
pub(crate) fn backfill_batch(db: &dyn Db, copy: i64, rollup: i64) -> Result<Backfill, Error> {
    transaction(db, || match step_in(db, copy)? {
        Backfill::Complete => match super::daily_rollup::backfill_batch_in(db, rollup)? {
            Backfill::Complete => Ok(
                match super::commit_lead_times::backfill_batch_in(db, rollup)? {
                    None => Backfill::Complete,
                    Some(finished) => Backfill::Batch { finished },
                },
            ),
            // The commits' back-fill reads the records the rollup's has just finished: its
            // first batch runs in the same step, so a small database is done in one.
            Backfill::Batch { finished: true } => Ok(
                match super::commit_lead_times::backfill_batch_in(db, rollup)? {
                    None => Backfill::Batch { finished: true },
                    Some(finished) => Backfill::Batch { finished },
                },
            ),
            Backfill::Batch { finished: false } => Ok(Backfill::Batch { finished: false }),
        },
        Backfill::Batch { .. } => Ok(Backfill::Batch { finished: false }),
    })
}

/// Whether rows are still to be copied.
fn copying(db: &dyn Db) -> Result<bool, Error> {
    let rows = db.execute(
        "SELECT EXISTS (SELECT 1 FROM backfills WHERE derived IN ('images', 'image_lead_times'))",
        &[],
    )?;
    Ok(rows
        .first()
        .map(|row| row.flag(0))
        .transpose()?
        .unwrap_or(false))
}

/// For a read of whole tables while the copy is pending: copies batches (each its own write
/// transaction) for up to [`FINISH_BUDGET`]; a 503 to retry if rows are still left then.
pub(crate) fn finish_copy(db: &dyn Db, clock: &dyn Clock) -> Result<(), Error> {
    let started = clock.now().instant();
    while copying(db)? {
        let spent = (clock.now().instant() - started)
            .to_std()
            .unwrap_or_default();
        if spent >= FINISH_BUDGET {
            return Err(Error::Upgrading);
        }
        transaction(db, || step_in(db, COPY_BATCH))?;
    }
    Ok(())
}
