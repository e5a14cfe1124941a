//! Query-string parsing (pagination, filters, DORA ranges) on every list route. Input: the
//! query string.
#![no_main]

use cd_core::testing::RouterHarness;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static HARNESS: RouterHarness = RouterHarness::new();
}

fuzz_target!(|data: &[u8]| {
    let query = String::from_utf8_lossy(data);
    HARNESS.with(|harness| {
        let authorization = format!("Bearer {}", harness.token);
        let headers = [("authorization", authorization.as_str())];
        let registry = &harness.registry_id;
        for (component, path) in [
            (0, "/api/v1/registries".to_owned()),
            (0, format!("/api/v1/registries/{registry}/channels")),
            (1, format!("/api/v1/registries/{registry}/images")),
            (2, "/api/v1/dora/lead-time".to_owned()),
            (2, "/api/v1/dora/deployment-frequency".to_owned()),
        ] {
            harness.check(component, "GET", &format!("{path}?{query}"), &headers, &[]);
        }
    });
});
