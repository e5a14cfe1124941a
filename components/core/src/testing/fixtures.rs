//! Deterministic time and ids for cd-core's own integration-style tests (fault injection, the
//! rollup equivalence): a clock stopped at one instant and ids that increase, so "newest
//! first" stays meaningful and a failing case replays exactly.

use std::cell::Cell;

use uuid::Uuid;

use crate::domain::Timestamp;
use crate::env::{Clock, Env, Ids};

/// A cd-core entry point (`handle_*_request`).
pub(crate) type Handler = fn(&http::Request<Vec<u8>>, &Env<'_>) -> http::Response<Vec<u8>>;

/// Always 2026-06-01T12:00:00Z; sleeping returns at once.
pub(crate) struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        Timestamp::parse("now", "2026-06-01T12:00:00Z").unwrap()
    }

    fn sleep(&self, _: std::time::Duration) {}
}

/// Increasing UUIDv7-shaped ids; token secrets derived from them.
#[derive(Default)]
pub(crate) struct SequentialIds(Cell<u128>);

impl Ids for SequentialIds {
    fn new_id(&self) -> Uuid {
        self.0.set(self.0.get() + 1);
        Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + self.0.get())
    }

    fn secret(&self) -> [u8; 32] {
        let mut secret = [7u8; 32];
        secret[..16].copy_from_slice(&self.new_id().as_u128().to_be_bytes());
        secret
    }
}

/// The `webhook_signing_key` of [`serve`]'s deployment.
#[cfg(test)]
pub(crate) const WEBHOOK_SIGNING_KEY: &str = "core tests' webhook signing key, 32+ bytes";

/// Serves one JSON request with `token` as the bearer through `handler`, on `db`, with the
/// fixed clock, `ids`, and `admin` as the bootstrap admin token.
#[cfg(test)]
pub(crate) fn serve(
    db: &dyn crate::db::Db,
    ids: &dyn Ids,
    admin: &str,
    handler: Handler,
    (method, path): (&str, &str),
    token: &str,
    body: &serde_json::Value,
) -> http::Response<Vec<u8>> {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
        .unwrap();
    serve_request(db, ids, admin, handler, &request)
}

/// [`serve`], answering the status and the body as JSON (`Null` for none).
#[cfg(test)]
pub(crate) fn serve_json(
    db: &dyn crate::db::Db,
    ids: &dyn Ids,
    admin: &str,
    handler: Handler,
    request: (&str, &str),
    token: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = serve(db, ids, admin, handler, request, token, body);
    (
        response.status().as_u16(),
        serde_json::from_slice(response.body()).unwrap_or(serde_json::Value::Null),
    )
}

/// Serves `request` as [`serve`] does, headers and all.
#[cfg(test)]
pub(crate) fn serve_request(
    db: &dyn crate::db::Db,
    ids: &dyn Ids,
    admin: &str,
    handler: Handler,
    request: &http::Request<Vec<u8>>,
) -> http::Response<Vec<u8>> {
    let env = Env {
        db,
        clock: &FixedClock,
        ids,
        config: crate::env::Config {
            admin_token: Some(admin.to_owned()),
            max_body_bytes: 1 << 20,
            webhook_signing_key: Some(WEBHOOK_SIGNING_KEY.to_owned()),
            webhook_allowed_hosts: Some("*://*:*".to_owned()),
        },
    };
    handler(request, &env)
}
