//! `cd-host`: a Spin-compatible host for the cd-images components, built on wasmtime 48 and
//! wasmtime-wasi-http 48, for tests, benchmarks and people without the `spin` CLI.
//!
//! It reads `spin.toml` and serves the components the way Spin 3.x/4.x does: the contract it
//! honours is `SPIN_CONTRACT.md` (routing precedence, the `spin-*` headers, SQLite and variables
//! semantics, a fresh instance per request). What passes here should run under `spin up`.
//!
//! # Layout
//! - [`manifest`]: the parts of `spin.toml` we need (variables, triggers, components).
//! - [`routing`]: Spin's route normalisation and precedence, as a pure function.
//! - [`headers`]: the `spin-*` headers a guest sees.
//! - [`variables`]: variable resolution and `fermyon:spin/variables@2.0.0`.
//! - [`outbound`]: `wasi:http/outgoing-handler` behind `allowed_outbound_hosts` (OUTBOUND.md).
//! - [`runtime_config`]: `--runtime-config-file` (`state_dir`, `[sqlite_database.<label>]`).
//! - [`sqlite`]: `spin:sqlite/sqlite@3.0.0` and `fermyon:spin/sqlite@2.0.0` on rusqlite 0.34
//!   or a libSQL server (the `libsql` 0.5 client, as Spin).
//! - [`sqld`]: a libSQL server on loopback for the tests and the benchmark.
//! - [`server`]: the engine, per-request instantiation, [`Host`] and [`RunningHost`] (real HTTP).
//! - [`world_check`]: checks a built component's imports against our WIT world.
//!
//! # Invariants
//! - Every request gets a new `Store` and instance; nothing a guest does survives it, except
//!   what it committed to SQLite.
//! - No match is 404 with an empty body; a trap, an error or no response is 500 with an empty
//!   body; `/.well-known/spin/health` answers before routing.

pub mod free_port;
pub mod headers;
pub mod manifest;
pub mod outbound;
pub mod routing;
pub mod runtime_config;
pub mod server;
pub mod sqld;
pub mod sqlite;
pub mod variables;
pub mod world_check;

pub use server::{Host, HostOptions, RunningHost};
pub use world_check::check_world;

/// Host bindings for Spin's interfaces, generated from the same WIT the components target.
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "cd-images:app/spin-imports",
        // SQLite statements may wait up to 5 s on a lock: they run on the blocking pool.
        imports: {
            "spin:sqlite/sqlite.[method]connection.execute": async,
            "fermyon:spin/sqlite.[method]connection.execute": async,
        },
        with: {
            "spin:sqlite/sqlite.connection": crate::sqlite::Connection,
            "fermyon:spin/sqlite.connection": crate::sqlite::Connection,
        },
    });
}
