//! A rusqlite-backed `Db` for native tests, the benchmark baseline and tools.
//!
//! It behaves as Spin's SQLite does (rusqlite 0.34, bundled): `prepare_cached`, positional
//! parameters, every row buffered, only the first statement of a string run, every error
//! reduced to its message.

use std::path::Path;

use crate::db::{Db, DbError, Rows, Value};

/// One rusqlite connection behind the `Db` trait.
pub struct RusqliteDb {
    connection: rusqlite::Connection,
}

impl RusqliteDb {
    /// Opens (creating if needed) a database file the way Spin does.
    pub fn open(path: &Path) -> Result<RusqliteDb, DbError> {
        let connection =
            rusqlite::Connection::open(path).map_err(|e| DbError::from_message(e.to_string()))?;
        Ok(RusqliteDb { connection })
    }

    /// A private in-memory database.
    pub fn open_in_memory() -> RusqliteDb {
        RusqliteDb {
            connection: rusqlite::Connection::open_in_memory()
                .expect("an in-memory SQLite database always opens"),
        }
    }

    pub fn connection(&self) -> &rusqlite::Connection {
        &self.connection
    }
}

impl Db for RusqliteDb {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let error = |e: rusqlite::Error| DbError::from_message(e.to_string());
        let mut statement = self.connection.prepare_cached(sql).map_err(error)?;
        let columns: Vec<String> = statement
            .column_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
        let params = rusqlite::params_from_iter(params.iter().map(to_sql));
        let mut rows = statement.query(params).map_err(error)?;
        let mut buffered = Vec::new();
        while let Some(row) = rows.next().map_err(error)? {
            let mut values = Vec::with_capacity(columns.len());
            for index in 0..columns.len() {
                values.push(from_sql(row.get_ref(index).map_err(error)?));
            }
            buffered.push(values);
        }
        Ok(Rows {
            columns,
            rows: buffered,
        })
    }
}

fn to_sql(value: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match value {
        Value::Integer(i) => V::Integer(*i),
        Value::Real(r) => V::Real(*r),
        Value::Text(t) => V::Text(t.clone()),
        Value::Blob(b) => V::Blob(b.clone()),
        Value::Null => V::Null,
    }
}

fn from_sql(value: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef as V;
    match value {
        V::Integer(i) => Value::Integer(i),
        V::Real(r) => Value::Real(r),
        V::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        V::Blob(b) => Value::Blob(b.to_vec()),
        V::Null => Value::Null,
    }
}
