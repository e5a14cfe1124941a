//! Upgrading the largest DORA database to the current schema, as the first request after a
//! deploy does: the migration's own transaction, then the back-fills step by step — from
//! schema 6 (the text encoding) migration 0007's copy of images and records and the drops of
//! the old tables; from schema 3 (records, no daily rollup) the rollup's back-fill as well.
//! Each step is one write transaction, so its duration is how long a pipeline may wait for
//! the write lock during the upgrade (issues 17 and 18: never more than about 1 s at a time).
//! Measured on a copy, in-process (cd-core on rusqlite: the same statements a component runs
//! after responding).

use std::path::Path;
use std::time::Instant;

use crate::report::{Row, Target, Via};

pub const UPGRADE: &str = "upgrade: migrate, then every back-fill step";

/// The name of the upgrade row from schema `from` (what `--only` matches).
pub fn label(from: i64) -> String {
    format!("{UPGRADE}, from schema {from}")
}

/// The upgrade from schema `from` (3 or 6).
pub fn row(cached: &Path, copy: &Path, records: u64, from: i64) -> anyhow::Result<Row> {
    crate::load::copy_database(cached, copy)?;
    let outcome = measure(copy, from);
    crate::seed::remove_database_files(copy);
    let (migration_ms, steps, total_s, rolled_up) = outcome?;
    // Per kind of step: the copies, the drops (as one kind), the rollup.
    let mut kinds: Vec<(String, Vec<f64>)> = Vec::new();
    for (step, ms) in &steps {
        let kind = if step.starts_with("DROP") {
            "drops"
        } else {
            step.as_str()
        };
        match kinds.iter_mut().find(|(k, _)| k == kind) {
            Some((_, times)) => times.push(*ms),
            None => kinds.push((kind.to_owned(), vec![*ms])),
        }
    }
    let parts = kinds
        .iter_mut()
        .map(|(kind, times)| {
            times.sort_by(f64::total_cmp);
            format!(
                "{kind} {}× p50 {:.0} max {:.0} ms",
                times.len(),
                times[times.len() / 2],
                times[times.len() - 1]
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let slowest = steps
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .cloned()
        .unwrap_or_default();
    let longest = slowest.1.max(migration_ms);
    let summary = format!(
        "migration {migration_ms:.0} ms; {parts} (slowest: {} {:.0} ms); {rolled_up} records, \
         {total_s:.1} s in all ({:.1} s per million records)",
        slowest.0,
        slowest.1,
        total_s * 1e6 / records.max(1) as f64,
    );
    let scenario = format!(
        "{}, {} records",
        label(from),
        crate::dora::size_label(records)
    );
    eprintln!("bench: {scenario}: {summary}");
    let mut row = Row::value(scenario, Via::InProcess, summary);
    row.targets.push(
        Target::check("every write lock ≤ 1 s", longest, 1_000.0, false)
            .showing(format!("longest {longest:.0} ms")),
    );
    row.records = Some((records, rolled_up));
    Ok(row)
}

/// What each step did, and its ms.
type Steps = Vec<(String, f64)>;

/// (migration ms, each step, total s, records rolled up).
fn measure(copy: &Path, from: i64) -> anyhow::Result<(f64, Steps, f64, u64)> {
    let db = cd_core::testing::RusqliteDb::open(copy)
        .map_err(|e| anyhow::anyhow!("opening {}: {e:?}", copy.display()))?;
    let take_back = match from {
        3 => cd_core::testing::take_back_to_schema_3,
        6 => cd_core::testing::take_back_to_schema_6,
        other => anyhow::bail!("no upgrade from schema {other}"),
    };
    take_back(&db).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    // Synced before timing, as the scenarios' copies are: the take-back's gigabyte of writes
    // must not be written back while the steps are measured.
    db.connection()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    let started = Instant::now();
    let found = cd_core::testing::ensure_schema(&db).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    anyhow::ensure!(found == from, "the copy was at schema {found}, not {from}");
    let migration_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut batches = Vec::new();
    loop {
        let step =
            cd_core::testing::next_backfill_step(&db).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let batch = Instant::now();
        if !cd_core::testing::pending_backfill_step(&db).map_err(|e| anyhow::anyhow!("{e:?}"))? {
            break;
        }
        let ms = batch.elapsed().as_secs_f64() * 1e3;
        batches.push((step.unwrap_or_default(), ms));
    }
    let total_s = started.elapsed().as_secs_f64();
    let rolled_up: i64 =
        db.connection()
            .query_row("SELECT sum(deployments) FROM lead_time_days", [], |row| {
                row.get(0)
            })?;
    Ok((migration_ms, batches, total_s, rolled_up as u64))
}
