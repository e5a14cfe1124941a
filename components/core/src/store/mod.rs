//! SQL: every statement cd-core runs, and the mapping of rows to domain types.
//!
//! One statement per `Db::execute` (Spin runs only the first). Functions here do no
//! authorization: callers pass the org whose rows they may touch, and every query filters by it.

pub(crate) mod channels;
pub(crate) mod commit_lead_times;
pub(crate) mod daily_rollup;
pub(crate) mod deployments;
pub(crate) mod dora;
pub(crate) mod failures;
pub(crate) mod images;
pub(crate) mod json_columns;
pub(crate) mod receivers;
pub(crate) mod reencode;
pub(crate) mod registries;
pub(crate) mod settings;
pub(crate) mod subscriptions;
pub(crate) mod tokens;

/// The interned key of the org whose id is bound at this `?`: one lookup in the small `orgs`
/// table (NULL for an org that has no rows yet, which matches nothing).
pub(crate) const ORG_KEY: &str = "(SELECT org_key FROM orgs WHERE org_id = ?)";

/// The key of the registry whose id is bound at this `?`: images and channel versions carry
/// it (a small integer, the registry's rowid) instead of the 16-byte id.
pub(crate) const REGISTRY_KEY: &str =
    "(SELECT registry_key FROM image_registries WHERE registry_id = ?)";

/// Interns `org_id` (migration 0007's `orgs`) before a write that creates the org's first
/// rows: a token, a registry, an environment.
pub(crate) fn intern_org(
    db: &dyn crate::db::Db,
    org_id: &crate::domain::OrgId,
) -> Result<(), crate::Error> {
    db.execute(
        "INSERT INTO orgs (org_id) VALUES (?) ON CONFLICT (org_id) DO NOTHING",
        &[org_id.as_str().into()],
    )?;
    Ok(())
}

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

/// The whole Unix second of a stored instant in µs (floored, as SQLite's `unixepoch` floors).
pub(crate) fn seconds_of(micros: i64) -> i64 {
    micros.div_euclid(1_000_000)
}

/// The rows of numbers a `group_concat` query packs into its one text value (rows split by
/// `,`, numbers by ` `, an empty field a NULL), each made a `T` by `read`, which answers `None`
/// where a number it needs is NULL. A row that is not `N` numbers is refused, named as a
/// `what`.
///
/// Packed because a component receives every value of every row through the wasm boundary,
/// one allocation each: at a million records that per-row cost was two thirds of a DORA
/// query. The numbers are the stored integers, so what is read is what was recorded, exactly.
pub(crate) fn packed_numbers<const N: usize, T>(
    db: &dyn crate::db::Db,
    sql: &str,
    params: &[crate::db::Value],
    what: &str,
    read: impl Fn([Option<i64>; N]) -> Option<T>,
) -> Result<Vec<T>, crate::Error> {
    let packed = aggregated_text(&db.execute(sql, params)?)?.unwrap_or_default();
    packed
        .split(',')
        .filter(|row| !row.is_empty())
        .map(|row| {
            let unreadable = || crate::Error::storage(format!("unreadable {what} {row:?}"));
            let mut fields = row.split(' ');
            let mut numbers = [None; N];
            for number in &mut numbers {
                *number = match fields.next() {
                    Some("") => None,
                    Some(field) => Some(field.parse().map_err(|_| unreadable())?),
                    None => return Err(unreadable()),
                };
            }
            match fields.next() {
                None => read(numbers).ok_or_else(unreadable),
                Some(_) => Err(unreadable()),
            }
        })
        .collect()
}

/// The rows packed by `json_group_array(json_array(..))`.
pub(crate) fn packed_rows(
    rows: &crate::db::Rows,
) -> Result<Vec<Vec<crate::db::Value>>, crate::Error> {
    unpack_rows(aggregated_text(rows)?.as_deref().unwrap_or("[]"))
}

/// One page of a newest-first (or name-ordered) list.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    /// Pass back as `cursor` for the next page; `None` on the last page.
    pub(crate) next_cursor: Option<String>,
}

/// Which way a keyset list runs: newest first (ids are UUIDv7) or by name.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Order {
    NewestFirst,
    ByName,
}

/// One keyset-paginated list: `SELECT columns FROM table WHERE filter` ordered by `key`.
pub(crate) struct Keyset<'a> {
    pub(crate) columns: &'a str,
    pub(crate) table: &'a str,
    /// The rows of the list, with `?` for `params`.
    pub(crate) filter: &'a str,
    /// A unique column the list is ordered by; the cursor is its value in the last row.
    pub(crate) key: &'a str,
    pub(crate) order: Order,
}

impl Keyset<'_> {
    /// The page after `after` (the first page without one): `limit` rows read as `from_row`,
    /// and the cursor of the next page, taken from the last row with `cursor_of`.
    pub(crate) fn page<T>(
        &self,
        db: &dyn crate::db::Db,
        mut params: Vec<crate::db::Value>,
        after: Option<crate::db::Value>,
        limit: usize,
        from_row: fn(crate::db::Row<'_>) -> Result<T, crate::Error>,
        cursor_of: impl Fn(&T) -> String,
    ) -> Result<Page<T>, crate::Error> {
        let Keyset {
            columns,
            table,
            filter,
            key,
            order,
        } = self;
        let (after_key, direction) = match order {
            Order::NewestFirst => ("<", " DESC"),
            Order::ByName => (">", ""),
        };
        let mut sql = format!("SELECT {columns} FROM {table} WHERE {filter}");
        if let Some(after) = after {
            sql.push_str(&format!(" AND {key} {after_key} ?"));
            params.push(after);
        }
        sql.push_str(&format!(" ORDER BY {key}{direction} LIMIT ?"));
        params.push((limit as i64 + 1).into());
        let rows = db.execute(&sql, &params)?;
        let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(items, limit, cursor_of))
    }
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows: the extra row only tells that there is more.
    pub(crate) fn from_rows(
        mut items: Vec<T>,
        limit: usize,
        cursor_of: impl Fn(&T) -> String,
    ) -> Page<T> {
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(cursor_of)
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::packed_numbers;
    use crate::testing::RusqliteDb;

    fn pairs(db: &RusqliteDb, packed: &str) -> Result<Vec<(i64, Option<i64>)>, crate::Error> {
        packed_numbers(db, "SELECT ?", &[packed.into()], "pair", |[a, b]| {
            Some((a?, b))
        })
    }

    #[test]
    fn packed_numbers_read_each_row_and_refuse_a_row_of_another_shape() {
        let db = RusqliteDb::open_in_memory();
        assert_eq!(
            pairs(&db, "1 -2,30 ,").unwrap(),
            [(1, Some(-2)), (30, None)]
        );
        assert_eq!(pairs(&db, "").unwrap(), []);
        let nothing: Vec<(i64, i64)> =
            packed_numbers(&db, "SELECT NULL", &[], "pair", |[a, b]| Some((a?, b?))).unwrap();
        assert!(nothing.is_empty());
        for wrong in ["1", "1 2 3", "1 x", " 2"] {
            let error = pairs(&db, wrong).unwrap_err();
            assert!(
                matches!(&error, crate::Error::Internal { cause }
                    if *cause == format!("unreadable pair {wrong:?}")),
                "{wrong:?}: {error:?}"
            );
        }
    }
}
