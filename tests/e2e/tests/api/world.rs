//! The built app's components against the WIT world `cd-images:app/component` (what a Spin
//! host provides), with the host's world check: a component importing anything else would
//! pass here under `cd-host` yet fail under `spin up`, so this belongs to the end-to-end tests
//! of the built app. (The check itself is tested with the host: `tests/host/tests/world.rs`.)

use cd_host::check_world;
use cd_host::manifest::Manifest;
use std::path::{Path, PathBuf};

const WORLD: &str = "cd-images:app/component";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn wit_dir() -> PathBuf {
    repo().join("wit")
}

/// The built wasm of every component of a manifest (panics with the fix if one is missing).
fn built_components(manifest: &Path) -> Vec<(String, PathBuf)> {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from);
    Manifest::load(manifest)
        .and_then(|manifest| manifest.component_sources(target_dir.as_deref()))
        .unwrap_or_else(|e| panic!("{e:#}"))
}

#[test]
fn every_app_component_imports_only_what_the_world_provides() {
    let components = built_components(&repo().join("spin.toml"));
    let ids: Vec<&str> = components.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, vec!["images", "lead-time", "registry"]);
    for (id, wasm) in components {
        check_world(&wasm, &wit_dir(), WORLD).unwrap_or_else(|e| panic!("{id}: {e:#}"));
    }
}
