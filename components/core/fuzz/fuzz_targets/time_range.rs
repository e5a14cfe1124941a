//! DORA's time-range parser and series periods. Input: `<start>\n<end>`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (start, end) = text.split_once('\n').unwrap_or((&text, "2026-12-31T00:00:00Z"));
    cd_core::testing::time_range_parser(start, end);
});
