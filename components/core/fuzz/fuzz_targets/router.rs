//! The whole request router of every component. Input, HTTP-like and seedable by hand:
//! `<component 0-2> <METHOD> <uri>` on the first line, `name: value` header lines, a blank
//! line, then the body. Property: `cd_core::testing::RouterHarness::check`.
#![no_main]

use cd_core::testing::RouterHarness;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static HARNESS: RouterHarness = RouterHarness::new();
}

fuzz_target!(|data: &[u8]| {
    let split = data.windows(2).position(|w| w == b"\n\n").unwrap_or(data.len());
    let head = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 2..).unwrap_or(&[]);
    let mut lines = head.lines();
    let Some(request_line) = lines.next() else { return };
    let mut parts = request_line.splitn(3, ' ');
    let (Some(component), Some(method), Some(uri)) = (parts.next(), parts.next(), parts.next()) else { return };
    let handler = component.bytes().next().map_or(0, |b| usize::from(b) % 3);
    let headers: Vec<(&str, &str)> = lines.filter_map(|l| l.split_once(": ")).collect();
    HARNESS.with(|harness| {
        // Let inputs reach seeded rows: `$R` is the registry id, `$I` the image id, `$T` the token.
        let uri = uri.replace("$R", &harness.registry_id).replace("$I", &harness.image_id);
        let headers: Vec<(String, String)> =
            headers.iter().map(|(n, v)| (n.to_string(), v.replace("$T", &harness.token))).collect();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        harness.check(handler, method, &uri, &headers, body);
    });
});
