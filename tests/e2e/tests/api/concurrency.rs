//! Concurrency: parallel writers on one channel, and components racing on an empty database.

use std::sync::Arc;

use serde_json::json;

use crate::helpers::{TestApp, cd_request};

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
    let applied: Vec<i64> = app
        .sql()
        .execute(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .unwrap()
        .rows
        .iter()
        .map(|row| match row[0] {
            cd_core::Value::Integer(version) => version,
            ref other => panic!("a version: {other:?}"),
        })
        .collect();
    assert_eq!(applied, (1..=applied.len() as i64).collect::<Vec<_>>());
    assert!(!applied.is_empty());
}

#[test]
fn parallel_pipelines_and_their_retries_record_each_run_once_with_consecutive_versions() {
    const RUNS: usize = 8;
    let app = Arc::new(TestApp::spawn());
    let token = app.token("acme", "write");
    let registry = app.registry(&token, "app", false);
    let images = format!(
        "/api/v1/registries/{}/images",
        registry["registry_id"].as_str().unwrap()
    );
    // Every run is sent twice at once: the retry races the original for the run's row.
    let handles: Vec<_> = (0..RUNS * 2)
        .map(|i| {
            let (app, token, images) = (Arc::clone(&app), token.clone(), images.clone());
            std::thread::spawn(move || {
                let run_id = format!("run-{}", i % RUNS);
                let response = app
                    .post(&images, &cd_request(&run_id))
                    .bearer(&token)
                    .send();
                assert!(
                    response.status == 200 || response.status == 201,
                    "{run_id}: {} {}",
                    response.status,
                    response.text()
                );
                let body = response.json();
                (
                    run_id,
                    body["image_id"].as_str().unwrap().to_owned(),
                    body["version"].as_str().unwrap().to_owned(),
                )
            })
        })
        .collect();
    let mut answers: Vec<(String, String, String)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    answers.sort();
    // Both sends of a run got the same image.
    for pair in answers.chunks(2) {
        assert_eq!(pair[0], pair[1], "a run answered with two different images");
    }
    let mut versions: Vec<String> = answers.chunks(2).map(|pair| pair[0].2.clone()).collect();
    versions.sort_by_key(|v| v.rsplit('.').next().unwrap().parse::<u64>().unwrap());
    let expected: Vec<String> = (1..=RUNS).map(|p| format!("default-0.0.{p}")).collect();
    assert_eq!(
        versions, expected,
        "each run bumped the channel exactly once"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM images"), RUNS as i64);
}

#[test]
fn a_retried_run_is_answered_while_another_writer_holds_the_lock() {
    // Another process's lock on the file (a server queues its writers itself).
    let app = TestApp::spawn_on_file();
    let token = app.token("acme", "write");
    let registry = app.registry(&token, "app", false);
    let images = format!(
        "/api/v1/registries/{}/images",
        registry["registry_id"].as_str().unwrap()
    );
    let first = app
        .post(&images, &cd_request("run-1"))
        .bearer(&token)
        .send();
    first.assert_status(201);

    // Another writer takes the write lock and keeps it past the request's 5 s busy wait.
    let writer = rusqlite::Connection::open(app.file()).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    let retry = app
        .post(&images, &cd_request("run-1"))
        .bearer(&token)
        .send();
    retry.assert_status(200);
    assert_eq!(retry.json()["image_id"], first.json()["image_id"]);
    writer.execute_batch("ROLLBACK").unwrap();
}
