//! cd-core: everything cd-images decides, with no I/O of its own.
#![warn(unreachable_pub)]
//!
//! The Spin components are thin shells: each adapts Spin's SQLite connection to [`Db`], reads
//! its variables into [`Config`], and calls one entry point here with an
//! `http::Request<Vec<u8>>`. Everything else — validation, version rules, SQL, authorization,
//! routing, problem+json — lives in this crate and is tested natively against rusqlite.
//!
//! # Layout
//! - [`domain`]: types made only by parsing (channel, semantic version, registry fields, org id,
//!   timestamp, role). No serde, no SQL.
//! - [`store`]: the SQL, one statement per `execute`, rows mapped to domain types.
//! - [`api`]: JSON counterparts, route tables and handlers, written against `http`.
//! - [`auth`]: bearer tokens → a caller, org scoping.
//! - [`db`]: the `Db` trait (Spin's SQLite interface) and the transaction helper.
//! - [`migrations`]: the embedded `migrations/*.sql` and the lazy, race-safe runner.
//! - [`error`]: the one error enum and its problem+json mapping.
//! - [`env`]: injected clock, ids and configuration.
//!
//! # Invariants
//! - Core never imports `spin_sdk` and does no I/O except through `Db`.
//! - Every query filters by the org the caller acts for; another org's row is a 404.
//! - Every write is one statement or one `BEGIN IMMEDIATE` transaction.
//! - No handler panics on client input; every error is problem+json.

mod api;
mod auth;
mod db;
mod domain;
mod env;
mod error;
mod migrations;
mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use api::outbox::{ATTEMPT_TIMEOUT, Outbound};
pub use api::routes::{Access, Component, Route};
pub use db::{Backend, Db, DbError, Rows, Value};
pub use domain::{Role, Timestamp, is_invisible};
pub use env::{Clock, Config, Env, Ids, SystemClock, SystemIds};
pub use error::Error;

/// The registry component: registries, channels and versions, tokens, its health route.
pub fn handle_registry_request(
    request: &http::Request<Vec<u8>>,
    env: &Env<'_>,
) -> http::Response<Vec<u8>> {
    api::serve(request, env, &[&api::routes::REGISTRY_TABLE])
}

/// The images component: image entries (the pipeline trigger), image queries and updates.
pub fn handle_images_request(
    request: &http::Request<Vec<u8>>,
    env: &Env<'_>,
) -> http::Response<Vec<u8>> {
    api::serve(request, env, &[&api::routes::IMAGES_TABLE])
}

/// The lead-time component: deployments and DORA lead time for changes.
pub fn handle_lead_time_request(
    request: &http::Request<Vec<u8>>,
    env: &Env<'_>,
) -> http::Response<Vec<u8>> {
    api::serve(request, env, &[&api::routes::LEAD_TIME_TABLE])
}

/// Any route of the API, served by the table that holds it, as if Spin had routed the
/// request to that component: the dashboard reads its figures through the API's own
/// handlers. A path no route names is a 404.
pub fn handle_api_request(
    request: &http::Request<Vec<u8>>,
    env: &Env<'_>,
) -> http::Response<Vec<u8>> {
    api::serve(request, env, &api::routes::every_table())
}

/// What a component does after its response is sent and before its connection closes,
/// decided while serving the request and carried in the response's extensions
/// ([`AfterResponse::of`]): one batch of a pending back-fill, and for a request that may have
/// written (or that ran that batch) a PASSIVE checkpoint of the WAL (it waits for no one and
/// blocks no one).
///
/// Back-fills (derived data for rows older than a migration, `store::daily_rollup`) run here,
/// a batch per request, because Spin has no background work: a database being upgraded is
/// rolled up by its own traffic, each batch a short write transaction, with no client waiting
/// on it. A batch that meets the write lock is left for the next request. Whether one is
/// pending comes from the schema read every request makes anyway: nothing is read here
/// otherwise.
///
/// Spin closes the connection when the instance ends, and closing the last connection of a
/// WAL database checkpoints the WAL under an exclusive lock and deletes it; the next request
/// meets that lock and sleeps a timer tick (1 ms) or more before retrying. Checkpointing here,
/// while other requests carry on, leaves the close nothing to copy. Reads add no WAL frames
/// and skip it. On a libSQL server it is not sent at all (the server checkpoints its own WAL and
/// refuses the pragma); on a file that is somehow not WAL it does nothing. Either way there is
/// nothing to report: the response is already sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AfterResponse {
    pub(crate) checkpoint: bool,
    pub(crate) backfill: bool,
    /// A libSQL server checkpoints its own WAL (and refuses the PRAGMA).
    pub(crate) backend: db::Backend,
    /// Whether deliveries may be due: the outbox holds some, or the request wrote while a
    /// subscription exists. Otherwise [`AfterResponse::send_deliveries`] reads nothing.
    pub(crate) deliveries: bool,
}

impl AfterResponse {
    /// What serving `response` left to do (nothing, for a response cd-core did not make).
    pub fn of(response: &http::Response<Vec<u8>>) -> AfterResponse {
        response.extensions().get().copied().unwrap_or_default()
    }

    /// Does it, on the request's own connection.
    pub fn run(self, db: &dyn Db) {
        let backfilled = self.backfill
            && match store::reencode::backfill_step(db) {
                Ok(_) => true,
                Err(Error::Busy) => false,
                Err(error) => {
                    eprintln!("cd-core: back-fill batch failed: {error:?}");
                    false
                }
            };
        if (backfilled || self.checkpoint) && self.backend == db::Backend::File {
            let _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)", &[]);
        }
    }
}

impl AfterResponse {
    /// After [`AfterResponse::run`]: sends what is due to subscriptions, when the schema read
    /// said deliveries may be ([`send_due_deliveries`]); nothing is read otherwise.
    pub fn send_deliveries(self, env: &Env<'_>, outbound: &dyn Outbound) {
        if self.deliveries {
            send_due_deliveries(env, outbound);
        }
    }
}

/// Sends up to a few deliveries that are due to subscriptions (`api::outbox`), each bounded by
/// [`ATTEMPT_TIMEOUT`]. Any component may, as Spin has no background work: events wait in the
/// outbox for the next request of any kind. Nothing to send costs one indexed read.
pub fn send_due_deliveries(env: &Env<'_>, outbound: &dyn Outbound) {
    api::outbox::send_due(env.db, env.clock, &env.config, outbound);
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::db::PatientDb;

    /// Remembers every statement; answers none.
    #[derive(Default)]
    struct Recording(RefCell<Vec<String>>);

    impl Db for Recording {
        fn execute(&self, sql: &str, _: &[Value]) -> Result<Rows, DbError> {
            self.0.borrow_mut().push(sql.to_owned());
            Err(DbError::Other("not a WAL database".to_owned()))
        }
    }

    /// Refuses every PRAGMA as a libSQL server does (in libSQL's client's words); answers
    /// nothing else.
    struct LibsqlServer;

    impl Db for LibsqlServer {
        fn execute(&self, sql: &str, _: &[Value]) -> Result<Rows, DbError> {
            Err(DbError::from_message(if sql.starts_with("PRAGMA") {
                format!(
                    "Hrana: `api error: `status=400 Bad Request, body={{\"message\":\"SQL string \
                     could not be parsed: unsupported statement: {sql}\",\"code\":\"SQL_PARSE_ERROR\"}}``"
                )
            } else {
                "no such table: schema_migrations".to_owned()
            }))
        }
    }

    /// The statements run after responding to `method` (the request itself fails: the
    /// database answers nothing).
    fn after(method: &str) -> Vec<String> {
        after_on(method, &Recording::default())
    }

    fn after_on(method: &str, db: &dyn Db) -> Vec<String> {
        let request = http::Request::builder()
            .method(method)
            .uri("/api/v1/registries")
            .body(Vec::new())
            .unwrap();
        let env = Env {
            db,
            clock: &SystemClock,
            ids: &SystemIds,
            config: Config::from_variables(None, None),
        };
        let response = handle_registry_request(&request, &env);
        let db = Recording::default();
        AfterResponse::of(&response).run(&db);
        db.0.into_inner()
    }

    #[test]
    fn writes_checkpoint_after_responding_and_reads_do_not() {
        let checkpoints = |method| {
            let statements = after(method);
            // Nothing but the checkpoint: no request reads or takes the write lock after
            // responding unless a back-fill is pending.
            assert!(
                statements
                    .iter()
                    .all(|s| s == "PRAGMA wal_checkpoint(PASSIVE)"),
                "{method}: {statements:?}"
            );
            statements.len()
        };
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            assert_eq!(checkpoints(method), 1, "{method}");
        }
        for method in ["GET", "HEAD", "OPTIONS"] {
            assert_eq!(checkpoints(method), 0, "{method}");
        }
    }

    #[test]
    fn on_a_libsql_server_no_write_checkpoints() {
        // The server refuses `PRAGMA busy_timeout` (how the backend is known) and the
        // checkpoint alike, and checkpoints its own WAL.
        assert_eq!(
            PatientDb::open(&LibsqlServer, &SystemClock)
                .unwrap()
                .backend(),
            db::Backend::Server
        );
        assert_eq!(
            PatientDb::open(&Recording::default(), &SystemClock)
                .map(|db| db.backend())
                .unwrap_err(),
            DbError::Other("not a WAL database".to_owned()),
            "any other failure of the first statement is the request's error"
        );
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            assert_eq!(after_on(method, &LibsqlServer), Vec::<String>::new());
        }
    }
}
