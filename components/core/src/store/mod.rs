//! SQL: every statement cd-core runs, and the mapping of rows to domain types.
//!
//! One statement per `Db::execute` (Spin runs only the first). Functions here do no
//! authorization: callers pass the org whose rows they may touch, and every query filters by it.

pub mod images;
pub mod json_columns;
pub mod lead_times;
pub mod registries;
pub mod tokens;
pub mod versions;

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
