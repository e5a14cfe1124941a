//! The built app's components against the WIT world `cd-images:app/component` (what a Spin
//! host provides), with the host's world check: a component importing anything else would
//! pass here under `cd-host` yet fail under `spin up`, so this belongs to the end-to-end tests
//! of the built app. (The check itself is tested with the host: `tests/host/tests/world.rs`.)

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
fn every_app_component_imports_only_what_the_world_provides() {
    let ids = check_manifest_world(&repo().join("spin.toml"), &wit_dir(), WORLD)
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(ids, vec!["dashboard", "images", "lead-time", "registry"]);
}
