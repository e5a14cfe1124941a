//! The dashboard component: the pages a platform team opens, at `/ui/` (and `/`, which
//! redirects there). Routes (spin.toml): `/`, `/ui/...`. Everything it shows comes from
//! cd-core's API handlers, called in-process (`cd_ui`).

// `#[http_component]` expands to the wasi:http export glue, which is `unsafe` by nature.
#![allow(unsafe_code)]

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    cd_spin_shell::serve(request, response_out, cd_ui::handle_dashboard_request).await
}
