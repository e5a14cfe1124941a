//! UpdateSemVersion's parser. Input: `<channel>\n<version string>`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (channel, version) = text.split_once('\n').unwrap_or(("default", &text));
    cd_core::testing::version_parser(channel, version);
});
