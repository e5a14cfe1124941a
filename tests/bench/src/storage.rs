//! What a record costs on disk: bytes per row of each table and each of its indexes, in the
//! largest DORA database (SQLite's `dbstat`: the pages each B-tree holds, so free space inside
//! pages counts — it is what the file costs). Issue 18's targets: a lead-time record ≤ 300 B
//! with its indexes, an image ≤ 300 B plus its own text, the whole database under half of
//! its size at issue 18's start (1.14 GB at 1M).

use std::path::Path;

use crate::report::{Row, Target, Via};

pub const STORAGE: &str = "storage per record";

/// Bytes of `name`'s B-tree (table or index).
fn btree_bytes(connection: &rusqlite::Connection) -> anyhow::Result<Vec<(String, String, i64)>> {
    let mut statement = connection.prepare(
        "SELECT m.tbl_name, s.name, sum(s.pgsize) FROM dbstat AS s \
         JOIN sqlite_master AS m ON m.name = s.name \
         GROUP BY s.name ORDER BY m.tbl_name, m.type DESC, s.name",
    )?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn rows(database: &Path, records: u64) -> anyhow::Result<Vec<Row>> {
    let connection = rusqlite::Connection::open_with_flags(
        database,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let btrees = btree_bytes(&connection)?;
    let file_bytes: i64 = btrees.iter().map(|(_, _, bytes)| bytes).sum();
    let size = crate::dora::size_label(records);
    let mut rows = Vec::new();
    for (table, target) in [("image_lead_times", Some(300.0)), ("images", None)] {
        let count: i64 =
            connection.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
                row.get(0)
            })?;
        let per_row = |bytes: i64| bytes as f64 / count.max(1) as f64;
        let own = btrees
            .iter()
            .filter(|(t, _, _)| t == table)
            .collect::<Vec<_>>();
        let total: i64 = own.iter().map(|(_, _, bytes)| bytes).sum();
        let parts = own
            .iter()
            .map(|(_, name, bytes)| format!("{name} {:.0}", per_row(*bytes)))
            .collect::<Vec<_>>()
            .join(", ");
        let mut row = Row::value(
            format!("{STORAGE}: {table}, {size} records ({count} rows)"),
            Via::File,
            format!("{:.0} B/row: {parts}", per_row(total)),
        );
        if let Some(limit) = target {
            row.targets.push(
                Target::check(
                    "≤ 300 B a record with its indexes",
                    per_row(total),
                    limit,
                    false,
                )
                .showing(format!("{:.0} B", per_row(total))),
            );
        }
        rows.push(row);
    }
    let mut whole = Row::value(
        format!("{STORAGE}: the whole database, {size} records"),
        Via::File,
        format!("{:.0} MB", file_bytes as f64 / 1e6),
    );
    if records == 1_000_000 {
        whole.targets.push(
            Target::check("< half of 1.14 GB", file_bytes as f64, 570e6, false)
                .showing(format!("{:.0} MB", file_bytes as f64 / 1e6)),
        );
    }
    rows.push(whole);
    Ok(rows)
}
