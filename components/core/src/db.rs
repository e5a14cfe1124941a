//! The storage seam: a `Db` trait shaped like Spin's SQLite interface.
//!
//! Spin gives a component `execute(sql, params) -> result<query-result, error>` and nothing
//! else, and every SQL error arrives as `io(<message>)`. Core is written against exactly that,
//! so the same code runs on `spin_sdk::sqlite` in a component and on rusqlite in native tests.
//! Two facts of Spin shape the helpers here: only the first statement of an `execute` string
//! runs, and a connection's open transaction is rolled back when the instance ends.

use crate::env::Clock;
use crate::error::Error;

/// One SQLite value, as Spin's `value` variant.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Text(text.to_owned())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::Text(text)
    }
}

impl From<i64> for Value {
    fn from(integer: i64) -> Self {
        Value::Integer(integer)
    }
}

impl From<bool> for Value {
    fn from(flag: bool) -> Self {
        Value::Integer(i64::from(flag))
    }
}

impl From<crate::domain::Timestamp> for Value {
    /// Instants are stored as microseconds since the Unix epoch (migration 0007).
    fn from(instant: crate::domain::Timestamp) -> Self {
        Value::Integer(instant.micros())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

/// The rows of one statement, as Spin's `query-result`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// A storage failure, classified from the message Spin gives us (`io(<message>)`).
#[derive(Debug, Clone, PartialEq)]
pub enum DbError {
    /// `database is locked` / `database is busy`: another writer held the lock past the busy
    /// timeout. Retryable.
    Busy(String),
    /// A UNIQUE or PRIMARY KEY constraint failed; the message names `table.column`.
    Unique(String),
    /// A FOREIGN KEY constraint failed.
    ForeignKey(String),
    /// The database cannot be opened (Spin's `access-denied`, `no-such-database`, ...).
    Unavailable(String),
    /// A libSQL server shed the statement for load: it interrupts (`SQLITE_INTERRUPT`) a write
    /// transaction that has held the lock for 5 s while others wait, rolling it back, or it
    /// could not open a connection for the stream in time (`Timed out while opening database
    /// connection`: sqld's `--max-concurrent-connections`, 128 by default, all taken). Not
    /// retried in place — a transaction it belonged to is gone — but the request is: 503 with
    /// `Retry-After`, as for [`DbError::Busy`].
    Overloaded(String),
    /// The backend refuses the statement as one it does not run: a libSQL server answers a
    /// connection PRAGMA (`busy_timeout`, `wal_checkpoint`) with `SQL_PARSE_ERROR:
    /// unsupported statement`.
    Unsupported(String),
    /// Anything else: an I/O error, a full disk, or a bug in our SQL.
    Other(String),
}

impl DbError {
    /// Classifies an error message from SQLite (via Spin's `io(..)` or rusqlite's `Display`).
    pub fn from_message(message: impl Into<String>) -> DbError {
        let message = message.into();
        if message.contains("database is locked") || message.contains("database is busy") {
            DbError::Busy(message)
        } else if message.contains("UNIQUE constraint failed")
            || message.contains("PRIMARY KEY constraint failed")
        {
            DbError::Unique(message)
        } else if message.contains("FOREIGN KEY constraint failed") {
            DbError::ForeignKey(message)
        } else if message.contains("SQLITE_INTERRUPT")
            || message == "interrupted"
            || message.contains("Timed out while opening database connection")
        {
            DbError::Overloaded(message)
        } else if message.contains("unsupported statement") {
            DbError::Unsupported(message)
        } else {
            DbError::Other(message)
        }
    }

    pub fn message(&self) -> &str {
        match self {
            DbError::Busy(m)
            | DbError::Unique(m)
            | DbError::ForeignKey(m)
            | DbError::Unavailable(m)
            | DbError::Overloaded(m)
            | DbError::Unsupported(m)
            | DbError::Other(m) => m,
        }
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// What core needs from a database: Spin's `execute`, one statement per call.
pub trait Db {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError>;

    /// What kind of database answers. Only [`PatientDb`] knows (it finds out once per
    /// connection, in [`PatientDb::open`]); any other `Db` says `File`, so code that asks must
    /// be handed the request's `PatientDb`, as migrations and [`crate::AfterResponse`] are.
    fn backend(&self) -> Backend {
        Backend::File
    }
}

/// The two kinds of database Spin can hand a component, and the one place the code tells
/// them apart (Spin gives no other way to know: the label is all a component sees).
///
/// They differ in what the connection controls. On a file (Spin's in-process SQLite) this
/// connection runs SQLite itself: its busy handler, the file's journal mode and the WAL
/// checkpoint are ours to set. On a libSQL server (sqld, Turso; runtime config
/// `type = "libsql"`) the server owns all three: it refuses those PRAGMAs, keeps its own WAL,
/// and queues writers itself. Statements, transactions across `execute` calls (the Hrana
/// stream's baton), the trigger and the SQL functions we use behave alike on both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Backend {
    #[default]
    File,
    Server,
}

/// How long a statement waits for another connection's lock before the request fails with
/// 503: Spin's own busy timeout.
pub(crate) const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A database whose statements wait out `database is locked` with short pauses of our own.
///
/// SQLite's busy handler (Spin leaves rusqlite's 5 s timeout on) sleeps 1, 2, 5, 10 … up to
/// 100 ms between attempts, so a waiter often sleeps long after the lock is free: that is the
/// 828 ms p99 of DESIGN.md §5. Locks are met in two places here: writers queueing for
/// `BEGIN IMMEDIATE`, and — because Spin opens a connection per request and closing the last
/// connection of a WAL database checkpoints it under an exclusive lock — any first read that
/// meets a checkpoint. [`PatientDb::open`] turns SQLite's handler off (`busy_timeout = 0`)
/// and every busy statement is retried every 1–2 ms (a wasm sleep is a host timer: 1 ms is
/// its resolution) for up to [`BUSY_WAIT`], then fails as [`DbError::Busy`] (503).
///
/// Retrying is sound for every statement: a busy statement did nothing. Outside a
/// transaction it rolled back whole; inside one, SQLite keeps the transaction and the
/// statement may be run again — the documented way to finish a busy `COMMIT`.
///
/// On a libSQL server the PRAGMA is refused: the server waits for the lock itself, and what
/// reaches us as busy is retried the same way. That refusal is how the backend is known.
pub(crate) struct PatientDb<'a> {
    db: &'a dyn Db,
    clock: &'a dyn Clock,
    backend: Backend,
}

impl<'a> PatientDb<'a> {
    /// Switches SQLite's own busy handler off for this connection and wraps it, learning
    /// from that first statement which [`Backend`] answers.
    pub(crate) fn open(db: &'a dyn Db, clock: &'a dyn Clock) -> Result<PatientDb<'a>, DbError> {
        let mut patient = PatientDb {
            db,
            clock,
            backend: Backend::File,
        };
        match patient.execute("PRAGMA busy_timeout = 0", &[]) {
            Ok(_) => {}
            Err(DbError::Unsupported(_)) => patient.backend = Backend::Server,
            Err(other) => return Err(other),
        }
        Ok(patient)
    }
}

impl Db for PatientDb<'_> {
    fn backend(&self) -> Backend {
        self.backend
    }

    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        const FIRST_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);
        const LONGEST_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);
        // A backstop for clocks that do not move (tests): BUSY_WAIT / FIRST_PAUSE attempts.
        const MAX_ATTEMPTS: u32 = 5_000;
        let mut started = None;
        let mut pause = FIRST_PAUSE;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.db.execute(sql, params) {
                Err(DbError::Busy(message)) => {
                    let started = *started.get_or_insert_with(|| self.clock.now().instant());
                    let waited = (self.clock.now().instant() - started)
                        .to_std()
                        .unwrap_or_default();
                    if attempts >= MAX_ATTEMPTS || waited >= BUSY_WAIT {
                        return Err(DbError::Busy(message));
                    }
                    self.clock.sleep(pause);
                    pause = (pause * 2).min(LONGEST_PAUSE);
                }
                other => return other,
            }
        }
    }
}

/// Runs `work` inside `BEGIN IMMEDIATE … COMMIT`, rolling back on any error.
///
/// `IMMEDIATE` takes the write lock up front, so two writers never deadlock upgrading a read
/// lock; give it a [`PatientDb`] so the wait for that lock is short-paced. If `COMMIT` itself
/// fails the transaction is still open in SQLite, so it is rolled back too: a failed request
/// never leaves half a write behind, even if the connection outlived the request.
pub(crate) fn transaction<T>(
    db: &dyn Db,
    work: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    within(db, "BEGIN IMMEDIATE", work)
}

/// Runs reads that must see one state of the database — one snapshot — inside a deferred
/// `BEGIN … COMMIT`.
///
/// Outside a transaction every statement sees the database as it is when it runs. An answer
/// built from several reads (the DORA figures: a daily rollup plus the records at the range's
/// edges, some of them subtracted) would otherwise count a deployment recorded between two of
/// them once in one read and not in the other. In WAL mode the snapshot blocks no writer.
pub(crate) fn read_snapshot<T>(
    db: &dyn Db,
    work: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    within(db, "BEGIN", work)
}

fn within<T>(
    db: &dyn Db,
    begin: &str,
    work: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    db.execute(begin, &[])?;
    let outcome = work().and_then(|value| {
        db.execute("COMMIT", &[])?;
        Ok(value)
    });
    if outcome.is_err()
        && let Err(rollback) = db.execute("ROLLBACK", &[])
        // Nothing to roll back is expected when COMMIT succeeded halfway; anything else is
        // worth a line in the log. The original error still wins.
        && !rollback.message().contains("no transaction is active")
    {
        eprintln!("cd-core: ROLLBACK failed: {rollback}");
    }
    outcome
}

/// How much of a database file a DORA read maps into memory (SQLite caps it at its compile-time
/// `SQLITE_MAX_MMAP_SIZE`, just under 2 GiB by default).
const MAPPED_READ_BYTES: i64 = 1 << 31;

/// Lets the rest of this request's connection read a database file through memory-mapped I/O
/// (`PRAGMA mmap_size`): for the DORA reads, which read MBs of rollup pages on a connection
/// whose page cache starts cold. At 1M records the summary read 2.5 MB in ~2,000 `pread`s; mapped
/// it is ~18 % faster over HTTP, the lead-time query unchanged (docs/performance.md). Only
/// reads: SQLite writes through the file as before. SQLite's caveat applies: an I/O error on a
/// mapped page is a signal, not an error code, so a failing disk ends the process instead of
/// failing the request. A libSQL server has no such pragma; neither has it files, so nothing
/// is asked of it. A refusal leaves the reads as they were.
pub(crate) fn map_for_reading(db: &dyn Db) {
    if db.backend() == Backend::File {
        let _ = db.execute(&format!("PRAGMA mmap_size = {MAPPED_READ_BYTES}"), &[]);
    }
}

/// Typed access to one row, by column position.
pub struct Row<'a> {
    values: &'a [Value],
}

impl<'a> Row<'a> {
    pub fn new(values: &'a [Value]) -> Self {
        Row { values }
    }

    fn value(&self, index: usize) -> Result<&'a Value, Error> {
        self.values
            .get(index)
            .ok_or_else(|| Error::storage(format!("row has no column {index}")))
    }

    pub fn text(&self, index: usize) -> Result<String, Error> {
        match self.value(index)? {
            Value::Text(text) => Ok(text.clone()),
            other => Err(Error::storage(format!(
                "column {index}: expected text, got {other:?}"
            ))),
        }
    }

    pub fn optional_text(&self, index: usize) -> Result<Option<String>, Error> {
        match self.value(index)? {
            Value::Null => Ok(None),
            _ => self.text(index).map(Some),
        }
    }

    pub fn integer(&self, index: usize) -> Result<i64, Error> {
        match self.value(index)? {
            Value::Integer(integer) => Ok(*integer),
            other => Err(Error::storage(format!(
                "column {index}: expected integer, got {other:?}"
            ))),
        }
    }

    pub fn optional_integer(&self, index: usize) -> Result<Option<i64>, Error> {
        match self.value(index)? {
            Value::Null => Ok(None),
            _ => self.integer(index).map(Some),
        }
    }

    pub fn real(&self, index: usize) -> Result<f64, Error> {
        match self.value(index)? {
            Value::Real(real) => Ok(*real),
            Value::Integer(integer) => Ok(*integer as f64),
            other => Err(Error::storage(format!(
                "column {index}: expected real, got {other:?}"
            ))),
        }
    }

    pub fn optional_real(&self, index: usize) -> Result<Option<f64>, Error> {
        match self.value(index)? {
            Value::Null => Ok(None),
            _ => self.real(index).map(Some),
        }
    }

    pub fn blob(&self, index: usize) -> Result<&'a [u8], Error> {
        match self.value(index)? {
            Value::Blob(blob) => Ok(blob),
            other => Err(Error::storage(format!(
                "column {index}: expected a blob, got {other:?}"
            ))),
        }
    }

    pub fn optional_blob(&self, index: usize) -> Result<Option<&'a [u8]>, Error> {
        match self.value(index)? {
            Value::Null => Ok(None),
            _ => self.blob(index).map(Some),
        }
    }

    /// An id stored as its 16 bytes (or, in a row packed into JSON, as their hex).
    pub(crate) fn id<T: crate::domain::ids::StoredId>(&self, index: usize) -> Result<T, Error> {
        let id = match self.value(index)? {
            Value::Blob(bytes) => uuid::Uuid::from_slice(bytes).ok(),
            Value::Text(hex) if hex.len() == 32 => uuid::Uuid::try_parse(hex).ok(),
            _ => None,
        };
        id.map(T::from_uuid).ok_or_else(|| {
            Error::storage(format!(
                "column {index}: unreadable id {:?}",
                self.values[index]
            ))
        })
    }

    pub(crate) fn optional_id<T: crate::domain::ids::StoredId>(
        &self,
        index: usize,
    ) -> Result<Option<T>, Error> {
        match self.value(index)? {
            Value::Null => Ok(None),
            _ => self.id(index).map(Some),
        }
    }

    /// An instant stored as microseconds since the Unix epoch.
    pub fn timestamp(&self, index: usize) -> Result<crate::domain::Timestamp, Error> {
        crate::domain::Timestamp::from_micros(self.integer(index)?)
    }

    pub fn optional_timestamp(
        &self,
        index: usize,
    ) -> Result<Option<crate::domain::Timestamp>, Error> {
        self.optional_integer(index)?
            .map(crate::domain::Timestamp::from_micros)
            .transpose()
    }

    pub fn flag(&self, index: usize) -> Result<bool, Error> {
        Ok(self.integer(index)? != 0)
    }
}

/// Takes the blob out of column `index` of an owned row (leaving `Null`): a reader that keeps
/// a blob, without a copy.
pub(crate) fn take_blob(values: &mut [Value], index: usize) -> Result<Vec<u8>, Error> {
    match values.get_mut(index) {
        Some(Value::Blob(blob)) => Ok(std::mem::take(blob)),
        Some(other) => Err(Error::storage(format!(
            "column {index}: expected a blob, got {other:?}"
        ))),
        None => Err(Error::storage(format!("row has no column {index}"))),
    }
}

impl Rows {
    /// Each row's values, owned (see [`take_blob`]).
    pub(crate) fn into_values(self) -> impl Iterator<Item = Vec<Value>> {
        self.rows.into_iter()
    }

    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|values| Row::new(values))
    }

    pub fn first(&self) -> Option<Row<'_>> {
        self.rows.first().map(|values| Row::new(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libsql_servers_messages_are_classified_like_sqlites() {
        // As libSQL's client words what sqld answered (Spin passes them on as `io(..)`).
        let cases = [
            (
                "Hrana: `api error: `status=400 Bad Request, body={\"message\":\"SQL string could \
                 not be parsed: unsupported statement: PRAGMA busy_timeout = 0\",\"code\":\
                 \"SQL_PARSE_ERROR\"}``",
                "unsupported",
            ),
            (
                "Hrana: `cursor error: `error at step 0: (error code: SQLITE_INTERRUPT) \
                 `SQLite error: interrupted```",
                "overloaded",
            ),
            (
                "Hrana: `api error: `{\"error\":\"Timed out while opening database connection\"}``",
                "overloaded",
            ),
            (
                "Hrana: `cursor error: `error at step 0: (error code: SQLITE_BUSY) \
                 `SQLite error: database is locked```",
                "busy",
            ),
            (
                "Hrana: `cursor error: `error at step 0: (error code: SQLITE_CONSTRAINT_UNIQUE) \
                 `UNIQUE constraint failed: images.registry_key, images.run_id```",
                "unique",
            ),
        ];
        for (message, expected) in cases {
            let kind = match DbError::from_message(message) {
                DbError::Unsupported(_) => "unsupported",
                DbError::Overloaded(_) => "overloaded",
                DbError::Busy(_) => "busy",
                DbError::Unique(_) => "unique",
                other => panic!("{message}: {other:?}"),
            };
            assert_eq!(kind, expected, "{message}");
        }
    }
}
