//! Every component is built, loaded, routed and reaches its database.

use crate::helpers::TestApp;

#[test]
fn each_component_answers_its_health_route_with_the_current_schema() {
    let app = TestApp::spawn();
    for component in ["registry", "images", "lead-time"] {
        let response = app.get(&format!("/api/v1/health/{component}")).send();
        response.assert_status(200);
        let body = response.json();
        assert_eq!(body["status"], "ok");
        assert_eq!(body["component"], component);
        assert!(body["schema_version"].as_i64().unwrap() >= 1);
    }
}

#[test]
fn the_spin_health_route_answers_before_any_component() {
    let app = TestApp::spawn();
    let response = app.get("/.well-known/spin/health").send();
    response.assert_status(200);
}

#[test]
fn an_unrouted_path_is_a_404_from_the_host_and_an_unknown_path_inside_a_component_is_problem_json()
{
    let app = TestApp::spawn();
    let response = app.get("/api/v2/registries").send();
    assert_eq!(response.status, 404);
    assert!(response.body.is_empty());
    app.get("/api/v1/images/nope")
        .send()
        .assert_problem(404, None);
    app.get("/api/v1/dora/nope")
        .send()
        .assert_problem(404, None);
}

#[test]
fn the_database_is_created_in_wal_mode_on_first_use() {
    // A file's journal mode is ours to set; a libSQL server keeps its own.
    let app = TestApp::spawn_on_file();
    app.get("/api/v1/health/registry").send().assert_status(200);
    let connection = rusqlite::Connection::open(app.file()).unwrap();
    let mode: String = connection
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}
