//! What a record costs on disk: bytes per row of each table and each of its indexes, in the
//! largest DORA database (SQLite's `dbstat`: the pages each B-tree holds, so free space inside
//! pages counts — it is what the file costs). Issue 18's targets: a lead-time record ≤ 300 B
//! with its indexes, an image ≤ 300 B plus its own text, the whole database under half of
//! its size at issue 18's start (1.14 GB at 1M).

use std::path::Path;

use crate::report::{Row, Target, Via};

pub const STORAGE: &str = "storage per record";

/// The bytes of an image's own text: every TEXT column, as the client sent it (or as cd-core
/// derived it from what was sent: the version).
const IMAGE_TEXT: &str = "length(CAST(channel AS BLOB)) + length(CAST(version AS BLOB)) \
    + length(CAST(update_type AS BLOB)) + length(CAST(tag_name AS BLOB)) \
    + length(CAST(image_name AS BLOB)) + length(CAST(image_name_with_tag AS BLOB)) \
    + length(CAST(status AS BLOB)) + length(CAST(tags AS BLOB)) + length(CAST(git_hash AS BLOB)) \
    + coalesce(length(CAST(gitops_hash AS BLOB)), 0) \
    + coalesce(length(CAST(api_definition_path AS BLOB)), 0) \
    + coalesce(length(CAST(committer AS BLOB)), 0) + coalesce(length(CAST(commit_msg AS BLOB)), 0) \
    + length(CAST(run_id AS BLOB)) + length(CAST(image_ports AS BLOB)) \
    + length(CAST(cluster_image_tags AS BLOB)) + coalesce(length(CAST(api_version_id AS BLOB)), 0)";

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
    for (table, target) in [("image_lead_times", Some(300.0)), ("images", Some(300.0))] {
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
        match (table, target) {
            // An image's own text (names, hashes, messages, its JSON columns) is what the
            // client sent; the target is on the rest: keys, instants, index entries, overhead.
            ("images", Some(limit)) => {
                let text: f64 = connection
                    .query_row(
                        &format!("SELECT avg({IMAGE_TEXT}) FROM images"),
                        [],
                        |row| row.get::<_, Option<f64>>(0),
                    )?
                    .unwrap_or(0.0);
                let besides = per_row(total) - text;
                row.targets.push(
                    Target::check("≤ 300 B besides its own text", besides, limit, false)
                        .showing(format!("{besides:.0} B besides {text:.0} B of text")),
                );
            }
            (_, Some(limit)) => row.targets.push(
                Target::check(
                    "≤ 300 B a record with its indexes",
                    per_row(total),
                    limit,
                    false,
                )
                .showing(format!("{:.0} B", per_row(total))),
            ),
            (_, None) => {}
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
