//! Spin's SQLite for the guest: `spin:sqlite/sqlite@3.0.0` and `fermyon:spin/sqlite@2.0.0`,
//! backed by rusqlite 0.34 (`bundled`) exactly as Spin's in-process backend uses it, or by a
//! libSQL server through the `libsql` 0.5 client exactly as Spin's libSQL backend uses it
//! (runtime config `type = "libsql"`; SPIN_CONTRACT.md A2).
//!
//! What that means, and what this module reproduces:
//! - `open(label)` → `access-denied` unless the label is in the component's
//!   `sqlite_databases` (checked first, so unknown labels get it too); `default` and the
//!   runtime config's labels exist.
//! - Each `open` is a new connection, opened lazily on first use, so a bad path shows up as
//!   `io(..)` on the first `execute`. No pooling, no PRAGMAs: journal mode `delete`, busy
//!   timeout 5 s (rusqlite's default), foreign keys ON (the bundled build's default).
//! - `execute` uses `prepare_cached`, binds parameters by position and buffers all rows. Only the
//!   first statement of the string runs: rusqlite 0.34's `prepare` ignores the tail.
//! - Every error is `io(rusqlite::Error::to_string())`, or on libSQL
//!   `io(libsql::Error::to_string())`; a libSQL client that cannot be made is
//!   `invalid-connection`. On libSQL, `changes` and `last-insert-rowid` stay 0 (Spin's cursor
//!   path never sets them) and the server, not this host, decides busy and PRAGMA behaviour.
//! - Connections live in the store's `ResourceTable`; when the store ends they are dropped and
//!   SQLite rolls back any transaction left open.
//!
//! `execute` is an async host function. A guest served by [`crate::Host`] runs on a thread of
//! its own (see `server::Host::run`), so a statement runs right there: waiting on the busy
//! handler blocks only that request. Anywhere else it goes to tokio's blocking pool, as in
//! Spin, so it never stalls the runtime threads the lock holder needs. Spin hands every
//! statement to the blocking pool: two thread hand-offs per statement, which this host
//! spares (README → Performance says what that is worth).

use crate::bindings::fermyon::spin::sqlite as v2;
use crate::bindings::spin::sqlite::sqlite as v3;
pub use crate::runtime_config::SqliteDatabase;
use crate::server::State;
use rusqlite::types::{Value, ValueRef};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use wasmtime::component::Resource;

/// Spin's cap on live connections per instance (factor-sqlite host.rs).
const MAX_CONNECTIONS: usize = 256;
/// Spin's cap on one query result (world/src/lib.rs).
const MAX_RESULT_BYTES: usize = 128 * 1024 * 1024;

/// Per-component SQLite configuration shared by all of its instances.
#[derive(Debug)]
pub struct SqliteConfig {
    /// `sqlite_databases` of the component.
    pub allowed: Vec<String>,
    /// Every configured label (`default` always) and where its data lives.
    pub databases: Arc<BTreeMap<String, SqliteDatabase>>,
}

/// The label every Spin host configures.
pub const DEFAULT_LABEL: &str = "default";

/// Per-instance SQLite state (lives in the store).
#[derive(Debug)]
pub struct SqliteState {
    config: Arc<SqliteConfig>,
    live: usize,
}

impl SqliteState {
    pub fn new(config: Arc<SqliteConfig>) -> SqliteState {
        SqliteState { config, live: 0 }
    }
}

/// A guest connection: the resource behind both WIT `connection` types.
#[derive(Debug, Clone)]
pub struct Connection(Arc<Driver>);

/// Where a connection's statements go. Both connect lazily, on the first statement, as Spin's
/// do: `open` never fails on I/O.
#[derive(Debug)]
enum Driver {
    /// In-process SQLite. The rusqlite connection is shared with the blocking task that runs
    /// a statement, hence the mutex.
    Rusqlite(Mutex<LazyRusqlite>),
    /// A libSQL server: Spin's client (`libsql` 0.5, `remote`), one client and one Hrana
    /// stream per connection, made by the first statement.
    Libsql(LazyLibsql),
}

#[derive(Debug)]
struct LazyRusqlite {
    /// `None`: in memory.
    path: Option<std::path::PathBuf>,
    connection: Option<rusqlite::Connection>,
}

impl LazyRusqlite {
    fn get(&mut self) -> rusqlite::Result<&mut rusqlite::Connection> {
        if self.connection.is_none() {
            self.connection = Some(match &self.path {
                Some(path) => rusqlite::Connection::open(path)?,
                None => rusqlite::Connection::open_in_memory()?,
            });
        }
        Ok(self.connection.as_mut().expect("opened above"))
    }
}

struct LazyLibsql {
    url: String,
    token: String,
    connection: tokio::sync::OnceCell<libsql::Connection>,
}

impl std::fmt::Debug for LazyLibsql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyLibsql")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl LazyLibsql {
    /// The client, made on first use; a client that cannot be made is Spin's
    /// `invalid-connection` (e.g. no CA certificates for an https URL).
    async fn get(&self) -> Result<&libsql::Connection, ExecuteError> {
        self.connection
            .get_or_try_init(|| async {
                let database = libsql::Builder::new_remote(self.url.clone(), self.token.clone())
                    .build()
                    .await?;
                database.connect()
            })
            .await
            .map_err(|_| ExecuteError::InvalidConnection)
    }
}

/// Why `open` failed, before mapping to a WIT version's error.
enum OpenError {
    AccessDenied,
    /// A listed label no database is configured for (load-time checks make it unreachable).
    NoSuchDatabase,
    Io(String),
}

/// Why `execute` failed, before mapping to a WIT version's error.
enum ExecuteError {
    InvalidConnection,
    Io(String),
}

impl From<String> for ExecuteError {
    fn from(message: String) -> Self {
        ExecuteError::Io(message)
    }
}

/// Rows of one statement, before mapping to a WIT version's types.
struct Rows {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
    /// Bytes of TEXT and BLOB so far (8 a value for the rest), against the limit.
    size: usize,
}

impl Rows {
    fn new(columns: Vec<String>) -> Rows {
        Rows {
            columns,
            rows: Vec::new(),
            size: 0,
        }
    }

    /// Adds a row, failing as Spin does once the result passes its limit.
    fn push(&mut self, values: Vec<Value>) -> Result<(), String> {
        self.size += values
            .iter()
            .map(|value| match value {
                Value::Text(t) => t.len(),
                Value::Blob(b) => b.len(),
                _ => 8,
            })
            .sum::<usize>();
        if self.size > MAX_RESULT_BYTES {
            return Err(format!(
                "query result exceeds limit of {MAX_RESULT_BYTES} bytes"
            ));
        }
        self.rows.push(values);
        Ok(())
    }
}

impl State {
    fn sqlite_open(&mut self, label: &str) -> Result<Connection, OpenError> {
        let config = &self.sqlite.config;
        if !config.allowed.iter().any(|allowed| allowed == label) {
            return Err(OpenError::AccessDenied);
        }
        if self.sqlite.live >= MAX_CONNECTIONS {
            return Err(OpenError::Io("too many connections opened".to_string()));
        }
        // Load-time checks made sure every listed label is configured.
        let backend = match config.databases.get(label) {
            Some(SqliteDatabase::File(path)) => {
                // Spin creates the directory on every open; a failure surfaces on the first
                // execute.
                if let Some(parent) = path.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                Driver::Rusqlite(Mutex::new(LazyRusqlite {
                    path: Some(path.clone()),
                    connection: None,
                }))
            }
            Some(SqliteDatabase::Memory) => Driver::Rusqlite(Mutex::new(LazyRusqlite {
                path: None,
                connection: None,
            })),
            Some(SqliteDatabase::Libsql { url, token }) => Driver::Libsql(LazyLibsql {
                url: url.clone(),
                token: token.clone(),
                connection: tokio::sync::OnceCell::new(),
            }),
            None => return Err(OpenError::NoSuchDatabase),
        };
        self.sqlite.live += 1;
        Ok(Connection(Arc::new(backend)))
    }

    fn sqlite_connection(&self, resource: &Resource<Connection>) -> Option<Connection> {
        self.table.get(resource).ok().cloned()
    }

    fn sqlite_drop(&mut self, resource: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(resource)?;
        self.sqlite.live = self.sqlite.live.saturating_sub(1);
        Ok(())
    }
}

thread_local! {
    /// Set on a thread that runs one request's guest and nothing else (see `server::run`):
    /// a statement may block it, waiting for SQLite's busy handler, without stalling others.
    pub(crate) static REQUEST_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs the first statement of `sql`.
async fn execute(
    connection: Connection,
    sql: String,
    params: Vec<Value>,
) -> Result<Rows, ExecuteError> {
    match &*connection.0 {
        Driver::Rusqlite(_) => Ok(execute_local(connection, sql, params).await?),
        Driver::Libsql(remote) => execute_remote(remote.get().await?, &sql, params).await,
    }
}

/// In place on a request's own thread, otherwise on tokio's blocking pool.
async fn execute_local(
    connection: Connection,
    sql: String,
    params: Vec<Value>,
) -> Result<Rows, String> {
    let run = move || {
        let Driver::Rusqlite(local) = &*connection.0 else {
            unreachable!("execute_local is given local connections")
        };
        let mut lazy = local.lock().unwrap_or_else(|e| e.into_inner());
        run_statement(lazy.get().map_err(|e| e.to_string())?, &sql, params)
    };
    if REQUEST_THREAD.get() {
        return run();
    }
    let task = tokio::task::spawn_blocking(run);
    task.await.map_err(|e| e.to_string())?
}

/// Through libsql's cursor: it parses the SQL locally and sends only the first statement, and
/// every error is `io(<libsql's message>)` — the strings cd-core must classify on a server.
async fn execute_remote(
    connection: &libsql::Connection,
    sql: &str,
    params: Vec<Value>,
) -> Result<Rows, ExecuteError> {
    let io = |error: libsql::Error| ExecuteError::Io(error.to_string());
    let params: Vec<libsql::Value> = params.into_iter().map(to_libsql).collect();
    let mut cursor = connection.query(sql, params).await.map_err(io)?;
    let count = cursor.column_count();
    let mut rows = Rows::new(
        (0..count)
            .map(|index| cursor.column_name(index).unwrap_or("").to_string())
            .collect(),
    );
    while let Some(row) = cursor.next().await.map_err(io)? {
        let values = (0..count)
            .map(|index| row.get_value(index).map(from_libsql).map_err(io))
            .collect::<Result<Vec<_>, _>>()?;
        rows.push(values)?;
    }
    Ok(rows)
}

fn to_libsql(value: Value) -> libsql::Value {
    match value {
        Value::Null => libsql::Value::Null,
        Value::Integer(i) => libsql::Value::Integer(i),
        Value::Real(f) => libsql::Value::Real(f),
        Value::Text(t) => libsql::Value::Text(t),
        Value::Blob(b) => libsql::Value::Blob(b),
    }
}

fn from_libsql(value: libsql::Value) -> Value {
    match value {
        libsql::Value::Null => Value::Null,
        libsql::Value::Integer(i) => Value::Integer(i),
        libsql::Value::Real(f) => Value::Real(f),
        libsql::Value::Text(t) => Value::Text(t),
        libsql::Value::Blob(b) => Value::Blob(b),
    }
}

fn run_statement(
    connection: &mut rusqlite::Connection,
    sql: &str,
    params: Vec<Value>,
) -> Result<Rows, String> {
    let mut statement = connection.prepare_cached(sql).map_err(|e| e.to_string())?;
    let columns: Vec<String> = statement
        .column_names()
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut cursor = statement
        .query(rusqlite::params_from_iter(params))
        .map_err(|e| e.to_string())?;
    let mut rows = Rows::new(columns);
    while let Some(row) = cursor.next().map_err(|e| e.to_string())? {
        let values = (0..rows.columns.len())
            .map(|index| {
                Ok(match row.get_ref(index).map_err(|e| e.to_string())? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(i) => Value::Integer(i),
                    ValueRef::Real(f) => Value::Real(f),
                    // Spin panics on non-UTF-8 TEXT; an error is kinder and just as visible.
                    ValueRef::Text(t) => Value::Text(
                        String::from_utf8(t.to_vec())
                            .map_err(|_| "text column is not valid UTF-8".to_string())?,
                    ),
                    ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        rows.push(values)?;
    }
    Ok(rows)
}

/// Generates the conversions between one WIT version's types and rusqlite's.
macro_rules! conversions {
    ($wit:ident) => {
        impl From<OpenError> for $wit::Error {
            fn from(error: OpenError) -> Self {
                match error {
                    OpenError::AccessDenied => $wit::Error::AccessDenied,
                    OpenError::NoSuchDatabase => $wit::Error::NoSuchDatabase,
                    OpenError::Io(message) => $wit::Error::Io(message),
                }
            }
        }

        impl From<ExecuteError> for $wit::Error {
            fn from(error: ExecuteError) -> Self {
                match error {
                    ExecuteError::InvalidConnection => $wit::Error::InvalidConnection,
                    ExecuteError::Io(message) => $wit::Error::Io(message),
                }
            }
        }

        impl From<$wit::Value> for Value {
            fn from(value: $wit::Value) -> Self {
                match value {
                    $wit::Value::Integer(i) => Value::Integer(i),
                    $wit::Value::Real(f) => Value::Real(f),
                    $wit::Value::Text(t) => Value::Text(t),
                    $wit::Value::Blob(b) => Value::Blob(b),
                    $wit::Value::Null => Value::Null,
                }
            }
        }

        impl From<Rows> for $wit::QueryResult {
            fn from(rows: Rows) -> Self {
                let value = |value: Value| match value {
                    Value::Integer(i) => $wit::Value::Integer(i),
                    Value::Real(f) => $wit::Value::Real(f),
                    Value::Text(t) => $wit::Value::Text(t),
                    Value::Blob(b) => $wit::Value::Blob(b),
                    Value::Null => $wit::Value::Null,
                };
                $wit::QueryResult {
                    columns: rows.columns,
                    rows: rows
                        .rows
                        .into_iter()
                        .map(|values| $wit::RowResult {
                            values: values.into_iter().map(value).collect(),
                        })
                        .collect(),
                }
            }
        }
    };
}

conversions!(v3);
conversions!(v2);

impl v3::Host for State {}

impl v3::HostConnection for State {
    fn open(&mut self, database: String) -> Result<Resource<Connection>, v3::Error> {
        let connection = self.sqlite_open(&database)?;
        self.table
            .push(connection)
            .map_err(|e| v3::Error::Io(e.to_string()))
    }

    async fn execute(
        &mut self,
        resource: Resource<Connection>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> Result<v3::QueryResult, v3::Error> {
        let connection = self
            .sqlite_connection(&resource)
            .ok_or(v3::Error::InvalidConnection)?;
        let params = parameters.into_iter().map(Value::from).collect();
        match execute(connection, statement, params).await {
            Ok(rows) => Ok(rows.into()),
            Err(error) => Err(error.into()),
        }
    }

    fn last_insert_rowid(&mut self, resource: Resource<Connection>) -> i64 {
        self.with_opened(
            &resource,
            |c| c.last_insert_rowid(),
            |c| c.last_insert_rowid(),
        )
    }

    fn changes(&mut self, resource: Resource<Connection>) -> u64 {
        self.with_opened(&resource, |c| c.changes(), |c| c.changes())
    }

    fn drop(&mut self, resource: Resource<Connection>) -> wasmtime::Result<()> {
        self.sqlite_drop(resource)
    }
}

impl State {
    /// Reads per-connection counters; 0 for a connection that never ran a statement.
    fn with_opened<R: Default>(
        &self,
        resource: &Resource<Connection>,
        local: impl FnOnce(&rusqlite::Connection) -> R,
        remote: impl FnOnce(&libsql::Connection) -> R,
    ) -> R {
        let Some(connection) = self.sqlite_connection(resource) else {
            return R::default();
        };
        match &*connection.0 {
            Driver::Rusqlite(lazy) => {
                let lazy = lazy.lock().unwrap_or_else(|e| e.into_inner());
                lazy.connection.as_ref().map(local).unwrap_or_default()
            }
            // libsql's cursor path never updates these counters: 0, as under Spin.
            Driver::Libsql(lazy) => lazy.connection.get().map(remote).unwrap_or_default(),
        }
    }
}

impl v2::Host for State {}

impl v2::HostConnection for State {
    fn open(&mut self, database: String) -> Result<Resource<Connection>, v2::Error> {
        let connection = self.sqlite_open(&database)?;
        self.table
            .push(connection)
            .map_err(|e| v2::Error::Io(e.to_string()))
    }

    async fn execute(
        &mut self,
        resource: Resource<Connection>,
        statement: String,
        parameters: Vec<v2::Value>,
    ) -> Result<v2::QueryResult, v2::Error> {
        let connection = self
            .sqlite_connection(&resource)
            .ok_or(v2::Error::InvalidConnection)?;
        let params = parameters.into_iter().map(Value::from).collect();
        match execute(connection, statement, params).await {
            Ok(rows) => Ok(rows.into()),
            Err(error) => Err(error.into()),
        }
    }

    fn drop(&mut self, resource: Resource<Connection>) -> wasmtime::Result<()> {
        self.sqlite_drop(resource)
    }
}

/// Fails like Spin when a component lists a label no runtime config defines (`default` is
/// always defined).
pub fn check_labels<'a>(
    components: impl IntoIterator<Item = (&'a str, &'a [String])>,
    databases: &BTreeMap<String, SqliteDatabase>,
) -> anyhow::Result<()> {
    let errors: Vec<String> = components
        .into_iter()
        .flat_map(|(id, labels)| {
            labels
                .iter()
                .filter(|label| label.as_str() != DEFAULT_LABEL && !databases.contains_key(*label))
                .map(move |label| format!("- Component {id} uses database '{label}'"))
        })
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    let mut lines = vec![
        "One or more components use SQLite databases which are not defined.".to_string(),
        "Check the spelling, or pass a runtime configuration file that defines these stores."
            .to_string(),
        "See https://developer.fermyon.com/spin/dynamic-configuration#sqlite-storage-runtime-configuration".to_string(),
        "Details:".to_string(),
    ];
    lines.extend(errors);
    anyhow::bail!(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> rusqlite::Connection {
        rusqlite::Connection::open_in_memory().unwrap()
    }

    #[test]
    fn only_the_first_statement_of_a_string_runs() {
        let mut c = memory();
        run_statement(&mut c, "CREATE TABLE t (x INTEGER)", vec![]).unwrap();
        run_statement(
            &mut c,
            "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)",
            vec![],
        )
        .unwrap();
        let rows = run_statement(&mut c, "SELECT count(*) AS n FROM t", vec![]).unwrap();
        assert_eq!(rows.columns, vec!["n".to_string()]);
        assert_eq!(rows.rows, vec![vec![Value::Integer(1)]]);
    }

    #[test]
    fn errors_are_rusqlite_messages() {
        let mut c = memory();
        let error = run_statement(&mut c, "SELEC 1", vec![]).err().unwrap();
        assert_eq!(error, "near \"SELEC\": syntax error in SELEC 1 at offset 0");
        let error = run_statement(&mut c, "SELECT ?, ?", vec![Value::Null])
            .err()
            .unwrap();
        assert_eq!(
            error,
            "Wrong number of parameters passed to query. Got 1, needed 2"
        );
    }

    #[test]
    fn the_bundled_build_has_foreign_keys_on() {
        let mut c = memory();
        let rows = run_statement(&mut c, "PRAGMA foreign_keys", vec![]).unwrap();
        assert_eq!(rows.rows, vec![vec![Value::Integer(1)]]);
    }

    #[test]
    fn undefined_labels_fail_load_with_spins_message() {
        let labels = vec!["default".to_string(), "other".to_string()];
        let error = check_labels([("c", labels.as_slice())], &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("One or more components use SQLite databases which are not defined.")
        );
        assert!(
            error.ends_with("- Component c uses database 'other'"),
            "{error}"
        );
        let ok = vec!["default".to_string()];
        check_labels([("c", ok.as_slice())], &BTreeMap::new()).unwrap();
        let configured = BTreeMap::from([("other".to_string(), SqliteDatabase::Memory)]);
        check_labels([("c", labels.as_slice())], &configured).unwrap();
    }
}
