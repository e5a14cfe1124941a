//! The CD request decoder and validation, through the real route: any body posted as a CD
//! request gets a response, never a 5xx.
#![no_main]

use cd_core::testing::RouterHarness;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static HARNESS: RouterHarness = RouterHarness::new();
}

fuzz_target!(|body: &[u8]| {
    HARNESS.with(|harness| {
        let uri = format!("/api/v1/registries/{}/images", harness.registry_id);
        let authorization = format!("Bearer {}", harness.token);
        let headers = [("authorization", authorization.as_str()), ("content-type", "application/json")];
        harness.check(1, "POST", &uri, &headers, body);
    });
});
