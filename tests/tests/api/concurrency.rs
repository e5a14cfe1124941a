//! Concurrency: parallel writers on one channel, and components racing on an empty database.

use std::sync::Arc;

use serde_json::json;

use crate::helpers::TestApp;

#[test]
fn parallel_bumps_on_one_channel_give_distinct_consecutive_versions() {
    const CLIENTS: usize = 16;
    let app = Arc::new(TestApp::spawn());
    let token = app.token("acme", "write");
    let registry = app.registry(&token, "app", false);
    let path = format!(
        "/api/v1/registries/{}/channels/default/bump",
        registry["registry_id"].as_str().unwrap()
    );
    let handles: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (app, token, path) = (Arc::clone(&app), token.clone(), path.clone());
            std::thread::spawn(move || {
                let response = app
                    .post(&path, &json!({"update_type": "patch"}))
                    .bearer(&token)
                    .send();
                response.assert_status(200);
                response.json()["patch"].as_u64().unwrap()
            })
        })
        .collect();
    let mut patches: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    patches.sort_unstable();
    assert_eq!(patches, (1..=CLIENTS as u64).collect::<Vec<_>>());
}

#[test]
fn three_components_racing_on_an_empty_database_end_with_one_schema() {
    let app = Arc::new(TestApp::spawn());
    let handles: Vec<_> = (0..12)
        .map(|i| {
            let app = Arc::clone(&app);
            std::thread::spawn(move || {
                let component = ["registry", "images", "lead-time"][i % 3];
                app.get(&format!("/api/v1/health/{component}"))
                    .send()
                    .status
            })
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().unwrap(), 200);
    }
    let connection = rusqlite::Connection::open(&app.database).unwrap();
    let applied: Vec<i64> = connection
        .prepare("SELECT version FROM schema_migrations ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(applied, (1..=applied.len() as i64).collect::<Vec<_>>());
    assert!(!applied.is_empty());
}
