//! End-to-end tests: the built `.wasm` components, hosted by `cd-host` as Spin would host them,
//! driven over real HTTP on loopback. One binary, one harness (`helpers`), one module per area
//! (and `world`: the built components import only what a Spin host provides; `libsql`: the
//! upgrade on a libSQL server; `routes`: the
//! route tables, `spin.toml` and `openapi.yaml` agree).

mod helpers;
mod sqld;

mod bad_input;
mod channels;
mod commits;
mod concurrency;
mod deployment_list;
mod golden_reference;
mod health;
mod hooks;
mod images;
mod lead_time;
mod libsql;
mod outcomes;
mod registries;
mod replicas;
mod robustness;
mod routes;
mod subscriptions;
mod tenancy;
mod tokens;
mod world;
