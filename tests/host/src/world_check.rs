//! Checks a built component against the WIT world it is allowed to import from.
//!
//! CI runs this on every component so that an import Spin cannot provide (a key-value store, a
//! newer WASI) fails the build rather than the deployment. An import passes when the world
//! imports the same `namespace:package/interface` at a semver-compatible version that is not
//! older than the component's: a component built against `wasi:io/poll@0.2.0` runs on a host
//! providing 0.2.6, but not the other way round.

use anyhow::{Context, bail};
use semver::Version;
use std::collections::BTreeMap;
use std::path::Path;
use wasmtime::component::Component;
use wit_parser::{Resolve, WorldItem};

/// Fails, listing the offending imports, if `component_wasm` imports anything outside `world`
/// (e.g. `cd-images:app/component`) of the WIT package in `wit_dir`.
/// Checks every component of the manifest at `manifest` (its built wasm, found as the host
/// finds it: `CARGO_TARGET_DIR` first) against `world`; the ids checked, in id order.
pub fn check_manifest_world(
    manifest: &Path,
    wit_dir: &Path,
    world: &str,
) -> anyhow::Result<Vec<String>> {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(std::path::PathBuf::from);
    let components =
        crate::manifest::Manifest::load(manifest)?.component_sources(target_dir.as_deref())?;
    for (id, wasm) in &components {
        check_world(wasm, wit_dir, world).with_context(|| format!("component {id}"))?;
    }
    Ok(components.into_iter().map(|(id, _)| id).collect())
}

pub fn check_world(component_wasm: &Path, wit_dir: &Path, world: &str) -> anyhow::Result<()> {
    let allowed = world_imports(wit_dir, world)?;
    let component = Component::from_file(crate::server::engine(), component_wasm)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot load component {}", component_wasm.display()))?;
    let imports: Vec<String> = component
        .component_type()
        .imports(crate::server::engine())
        .map(|(name, _)| name.to_string())
        .collect();
    let offending: Vec<String> = imports
        .iter()
        .filter(|import| !is_allowed(import, &allowed))
        .cloned()
        .collect();
    if !offending.is_empty() {
        bail!(
            "{} imports what world {world} does not provide: {}",
            component_wasm.display(),
            offending.join(", ")
        );
    }
    Ok(())
}

/// The interfaces `world` imports: `ns:pkg/name` → package version.
fn world_imports(wit_dir: &Path, world: &str) -> anyhow::Result<BTreeMap<String, Option<Version>>> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_dir(wit_dir)
        .with_context(|| format!("cannot parse WIT in {}", wit_dir.display()))?;
    let world_id = resolve.select_world(&[package], Some(world))?;
    let mut allowed = BTreeMap::new();
    for item in resolve.worlds[world_id].imports.values() {
        let WorldItem::Interface { id, .. } = item else {
            continue;
        };
        let interface = &resolve.interfaces[*id];
        let (Some(name), Some(package)) = (&interface.name, interface.package) else {
            continue;
        };
        let package = &resolve.packages[package].name;
        allowed.insert(
            format!("{}:{}/{}", package.namespace, package.name, name),
            package.version.clone(),
        );
    }
    Ok(allowed)
}

/// Whether one import name (`ns:pkg/name@version`) is provided by the world.
fn is_allowed(import: &str, allowed: &BTreeMap<String, Option<Version>>) -> bool {
    let (name, version) = match import.split_once('@') {
        Some((name, version)) => match Version::parse(version) {
            Ok(version) => (name, Some(version)),
            Err(_) => return false,
        },
        None => (import, None),
    };
    match (allowed.get(name), version) {
        (None, _) => false,
        (Some(None), None) => true,
        (Some(Some(provided)), Some(wanted)) => compatible(&wanted, provided),
        _ => false,
    }
}

/// `wanted` can be served by `provided`: same semver-compatibility track, not newer.
fn compatible(wanted: &Version, provided: &Version) -> bool {
    let same_track = if wanted.major == 0 {
        provided.major == 0 && wanted.minor == provided.minor
    } else {
        wanted.major == provided.major
    };
    same_track && wanted <= provided
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> BTreeMap<String, Option<Version>> {
        BTreeMap::from([
            ("wasi:io/poll".to_string(), Some(Version::new(0, 2, 6))),
            (
                "fermyon:spin/variables".to_string(),
                Some(Version::new(2, 0, 0)),
            ),
        ])
    }

    #[test]
    fn older_and_equal_compatible_versions_pass() {
        assert!(is_allowed("wasi:io/poll@0.2.0", &allowed()));
        assert!(is_allowed("wasi:io/poll@0.2.6", &allowed()));
        assert!(is_allowed("fermyon:spin/variables@2.0.0", &allowed()));
    }

    #[test]
    fn newer_incompatible_or_unknown_imports_fail() {
        assert!(!is_allowed("wasi:io/poll@0.2.7", &allowed()));
        assert!(!is_allowed("wasi:io/poll@0.3.0", &allowed()));
        assert!(!is_allowed("fermyon:spin/variables@3.0.0", &allowed()));
        assert!(!is_allowed("fermyon:spin/key-value@2.0.0", &allowed()));
        assert!(!is_allowed("wasi:keyvalue/store@0.2.0-draft", &allowed()));
        assert!(!is_allowed("wasi:io/poll", &allowed()));
    }

    #[test]
    fn the_repository_world_lists_spin_and_wasi_interfaces() {
        let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
        let allowed = world_imports(&wit, "cd-images:app/component").unwrap();
        for name in [
            "spin:sqlite/sqlite",
            "fermyon:spin/sqlite",
            "fermyon:spin/variables",
            "wasi:io/streams",
            "wasi:cli/environment",
            "wasi:http/types",
            "wasi:http/outgoing-handler",
        ] {
            assert!(
                allowed.contains_key(name),
                "{name} missing from {allowed:?}"
            );
        }
        assert!(!allowed.contains_key("wasi:http/incoming-handler"));
    }
}
