//! SQL: every statement cd-core runs, and the mapping of rows to domain types.
//!
//! One statement per `Db::execute` (Spin runs only the first). Functions here do no
//! authorization: callers pass the org whose rows they may touch, and every query filters by it.

pub mod channels;
pub mod daily_rollup;
pub mod deployments;
pub mod dora;
pub mod images;
pub mod json_columns;
pub mod registries;
pub mod tokens;

/// The rows of a page, packed by SQLite into one JSON text: `json_group_array(json_array(..))`.
///
/// A component receives every value of every row through the wasm boundary, and the host
/// allocates each string in guest memory with a call into the guest: for a page of 50 rows of
/// 15–24 columns, that per-value cost was most of the request. One text per page crosses
/// once. Only TEXT, INTEGER and NULL columns may be packed: JSON renders REAL with 15
/// significant digits, so REAL columns travel as exact integers (see the callers).
fn unpack_rows(packed: &str) -> Result<Vec<Vec<crate::db::Value>>, crate::Error> {
    use crate::db::Value;
    let rows: Vec<Vec<serde_json::Value>> = serde_json::from_str(packed)
        .map_err(|e| crate::Error::storage(format!("unreadable packed rows: {e}")))?;
    rows.into_iter()
        .map(|row| {
            row.into_iter()
                .map(|value| match value {
                    serde_json::Value::Null => Ok(Value::Null),
                    serde_json::Value::String(text) => Ok(Value::Text(text)),
                    serde_json::Value::Number(n) if n.is_i64() => {
                        Ok(Value::Integer(n.as_i64().unwrap_or_default()))
                    }
                    other => Err(crate::Error::storage(format!(
                        "a packed row holds {other}, not text, integer or null"
                    ))),
                })
                .collect()
        })
        .collect()
}

/// The one TEXT value of an aggregating query (`json_group_array`, `group_concat`); `None`
/// when it aggregated nothing into NULL.
pub(crate) fn aggregated_text(rows: &crate::db::Rows) -> Result<Option<String>, crate::Error> {
    Ok(rows
        .first()
        .map(|row| row.optional_text(0))
        .transpose()?
        .flatten())
}

/// The rows packed by `json_group_array(json_array(..))`.
pub(crate) fn packed_rows(
    rows: &crate::db::Rows,
) -> Result<Vec<Vec<crate::db::Value>>, crate::Error> {
    unpack_rows(aggregated_text(rows)?.as_deref().unwrap_or("[]"))
}

/// One page of a newest-first (or name-ordered) list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows: the extra row only tells that there is more.
    pub fn from_rows(mut items: Vec<T>, limit: usize, cursor_of: impl Fn(&T) -> String) -> Page<T> {
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(cursor_of)
        } else {
            None
        };
        Page { items, next_cursor }
    }
}
