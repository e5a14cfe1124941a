//! The registry component: image registries, channels and versions, API tokens.
//! Routes (spin.toml): `/api/v1/registries/...`, `/api/v1/tokens/...`, `/api/v1/health/registry`.

// `#[http_component]` expands to the wasi:http export glue, which is `unsafe` by nature.
#![allow(unsafe_code)]

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    cd_spin_shell::serve(request, response_out, cd_core::handle_registry_request).await
}
