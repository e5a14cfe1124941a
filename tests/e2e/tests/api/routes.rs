//! The API is written down in three places: cd-core's route tables (what the components
//! answer), `spin.toml`'s `[[trigger.http]]` routes (what Spin sends each component) and
//! `openapi.yaml` (what users and the contract test are told). They must agree: a route added
//! to one place only fails here, naming it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use cd_core::Component;
use cd_host::manifest::Manifest;
use cd_host::routing::Router;
use yaml_rust2::{Yaml, YamlLoader};

const BASE_PATH: &str = "/api/v1";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A concrete request path for a table pattern: each `{name}` becomes a sample segment.
fn sample_path(pattern: &str) -> String {
    let segments: Vec<String> = pattern
        .split('/')
        .map(|segment| match segment.strip_prefix('{') {
            Some(name) => format!("sample-{}", name.trim_end_matches('}')),
            None => segment.to_owned(),
        })
        .collect();
    format!("{BASE_PATH}{}", segments.join("/"))
}

/// Spin's router over `spin.toml`'s public routes, as the host (and Spin) builds it.
fn spin_router() -> Router {
    let manifest = Manifest::load(&root().join("spin.toml")).expect("spin.toml loads");
    let triggers: Vec<(String, String)> = manifest
        .triggers
        .iter()
        .filter_map(|t| t.route.clone().map(|route| (route, t.component.clone())))
        .collect();
    Router::new(triggers.iter().map(|(r, c)| (r.as_str(), c.as_str())))
}

/// Every (method, path) of every component's table.
fn table_operations() -> BTreeSet<(String, String)> {
    Component::ALL
        .iter()
        .flat_map(|component| component.routes())
        .map(|route| (route.method().as_str().to_owned(), route.path().to_owned()))
        .collect()
}

/// Every (method, path) `openapi.yaml` documents.
fn openapi_operations() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(root().join("openapi.yaml")).expect("openapi.yaml");
    let documents = YamlLoader::load_from_str(&text).expect("openapi.yaml is YAML");
    let paths = documents[0]["paths"]
        .as_hash()
        .expect("openapi.yaml has paths");
    let mut operations = BTreeSet::new();
    for (path, item) in paths {
        let path = path.as_str().expect("a path is a string");
        for (key, _) in item.as_hash().expect("a path item is a mapping") {
            if let Yaml::String(key) = key
                && ["get", "put", "post", "patch", "delete", "head", "options"]
                    .contains(&key.as_str())
            {
                operations.insert((key.to_ascii_uppercase(), path.to_owned()));
            }
        }
    }
    operations
}

#[test]
fn spin_routes_every_table_route_to_the_component_that_serves_it() {
    let router = spin_router();
    let mut missing = Vec::new();
    for component in Component::ALL {
        for route in component.routes() {
            let path = sample_path(route.path());
            match router.route(&path) {
                Some(found) if found.route.component == component.id() => {}
                Some(found) => missing.push(format!(
                    "{} {} is served by {} but spin.toml routes it to {} ({})",
                    route.method(),
                    route.path(),
                    component.id(),
                    found.route.component,
                    found.route.raw
                )),
                None => missing.push(format!(
                    "{} {} is served by {} but no spin.toml route reaches it",
                    route.method(),
                    route.path(),
                    component.id()
                )),
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn every_spin_route_leads_to_routes_of_its_component() {
    let router = spin_router();
    let served: Vec<(String, &str)> = Component::ALL
        .iter()
        .flat_map(|component| {
            component
                .routes()
                .iter()
                .map(|route| (sample_path(route.path()), component.id()))
        })
        .collect();
    let mut unused = Vec::new();
    // The dashboard serves pages, not API routes: it has no table (its routes are cd-ui's).
    for spin_route in router
        .routes()
        .iter()
        .filter(|route| route.component != "dashboard")
    {
        let used = served.iter().any(|(path, component)| {
            *component == spin_route.component
                && router
                    .route(path)
                    .is_some_and(|found| found.route.raw == spin_route.raw)
        });
        if !used {
            unused.push(format!(
                "spin.toml routes {} to {}, whose table has no route there",
                spin_route.raw, spin_route.component
            ));
        }
    }
    assert!(unused.is_empty(), "{}", unused.join("\n"));
}

#[test]
fn openapi_documents_exactly_the_table_routes() {
    let table = table_operations();
    let documented = openapi_operations();
    let undocumented: Vec<_> = table.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&table).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "in the route tables but not in openapi.yaml: {undocumented:?}\n\
         in openapi.yaml but in no route table: {unserved:?}"
    );
}
