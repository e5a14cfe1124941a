//! The images component: image entries created by CI pipelines, image queries and updates.
//! Routes (spin.toml): `/api/v1/registries/:registry_id/images/...`, `/api/v1/images/...`,
//! `/api/v1/health/images`.

// `#[http_component]` expands to the wasi:http export glue, which is `unsafe` by nature.
#![allow(unsafe_code)]

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    cd_spin_shell::serve(request, response_out, cd_core::handle_images_request).await
}
