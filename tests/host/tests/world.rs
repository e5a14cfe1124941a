//! The host's world check ([`check_world`]) against the WIT world `cd-images:app/component`
//! (what a Spin host provides): the probe passes it, and it rejects components importing
//! anything else. The app's own components are checked by the end-to-end tests
//! (`tests/e2e/tests/api/world.rs`), where the built app is under test.
//!
//! Needs the built probe (`cd_probe.wasm`): run `tests/run` first.

use cd_host::check_world;
use cd_host::world_check::check_manifest_world;
use std::path::{Path, PathBuf};

const WORLD: &str = "cd-images:app/component";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn wit_dir() -> PathBuf {
    repo().join("wit")
}

#[test]
fn the_probe_imports_only_what_the_world_provides() {
    check_manifest_world(
        &repo().join("tests/host/probe/spin.toml"),
        &wit_dir(),
        WORLD,
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
}

/// Writes a component (WebAssembly text) that imports `imports` as empty instances.
fn component_importing(dir: &Path, imports: &[&str]) -> PathBuf {
    let imports: String = imports
        .iter()
        .map(|name| format!("  (import \"{name}\" (instance))\n"))
        .collect();
    let path = dir.join("component.wat");
    std::fs::write(&path, format!("(component\n{imports})\n")).unwrap();
    path
}

#[test]
fn imports_outside_the_world_are_rejected_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = component_importing(
        dir.path(),
        &[
            "wasi:io/poll@0.2.0",
            "wasi:keyvalue/store@0.2.0-draft",
            "fermyon:spin/key-value@2.0.0",
            "wasi:io/streams@0.2.9",
        ],
    );
    let error = check_world(&wasm, &wit_dir(), WORLD)
        .unwrap_err()
        .to_string();
    for offending in [
        "wasi:keyvalue/store@0.2.0-draft",
        "fermyon:spin/key-value@2.0.0",
        "wasi:io/streams@0.2.9",
    ] {
        assert!(error.contains(offending), "{offending} not in: {error}");
    }
    assert!(!error.contains("wasi:io/poll@0.2.0"), "{error}");
}

#[test]
fn older_compatible_versions_of_world_interfaces_pass() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = component_importing(
        dir.path(),
        &[
            "wasi:io/poll@0.2.0",
            "wasi:http/types@0.2.6",
            "spin:sqlite/sqlite@3.0.0",
            "fermyon:spin/variables@2.0.0",
        ],
    );
    check_world(&wasm, &wit_dir(), WORLD).unwrap();
}
