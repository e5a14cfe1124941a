//! The lead-time component: deployments and DORA lead time for changes.
//! Routes (spin.toml): `/api/v1/deployments/...`, `/api/v1/dora/...`, `/api/v1/health/lead-time`.

// `#[http_component]` expands to the wasi:http export glue, which is `unsafe` by nature.
#![allow(unsafe_code)]

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    cd_spin_shell::serve(request, response_out, cd_core::handle_lead_time_request).await
}
