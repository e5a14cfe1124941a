//! Robustness across the whole API: a cross-org probe of every route (from cd-core's route
//! tables), and writers meeting a
//! database locked by another writer.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::TestApp;

/// Org A's data, and every route that touches it.
#[test]
fn nothing_of_another_org_is_ever_revealed_on_any_route() {
    let app = TestApp::spawn();
    let a = app.token("acme", "admin");
    let registry = app.registry(&a, "secret-acme-app", false);
    let registry_id = registry["registry_id"].as_str().unwrap().to_owned();
    let base = format!("/api/v1/registries/{registry_id}");
    app.post(
        &format!("{base}/channels/secret-channel/bump"),
        &json!({"update_type": "major"}),
    )
    .bearer(&a)
    .send()
    .assert_status(200);
    let image = app
        .post(&format!("{base}/images"), &json!({"tag_name": "t", "image_name": "secret-image", "image_name_with_tag": "secret-image:t",
            "git_hash": "abcdef1", "git_hash_commit_timestamp": "2026-03-01T00:00:00Z", "run_id": "secret-run", "status": "inactive"}))
        .bearer(&a)
        .send()
        .json();
    let image_id = image["image_id"].as_str().unwrap().to_owned();
    let deployment = json!({"image_id": image_id, "project_id": "secret-project", "app_id": "secret-app", "environment": "production",
        "prod": true, "deployment_id": "secret-deployment", "deployed_at": "2026-03-02T00:00:00Z"});
    let recorded = app
        .post("/api/v1/deployments", &deployment)
        .bearer(&a)
        .send();
    recorded.assert_status(201);
    let recorded = recorded.json();
    app.post(
        "/api/v1/failures",
        &json!({"failure_id": "secret-failure", "deployment_id": "secret-deployment",
                "started_at": "2026-03-02T01:00:00Z", "title": "secret outage"}),
    )
    .bearer(&a)
    .send()
    .assert_status(201);
    let a_token_id = app.get("/api/v1/tokens").bearer(&a).send().json()["items"][0]["token_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let receiver = app
        .post(&format!("{base}/receivers"), &json!({"source": "quay"}))
        .bearer(&a)
        .send();
    receiver.assert_status(201);
    let receiver_id = receiver.json()["receiver_id"].as_str().unwrap().to_owned();
    let subscription = app
        .post(
            &format!("{base}/subscriptions"),
            &json!({"url": "https://secret.example.com/hook", "events": ["image.created"]}),
        )
        .bearer(&a)
        .send();
    subscription.assert_status(201);
    let subscription_id = subscription.json()["subscription_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let secrets = [
        "acme",
        "secret",
        registry_id.as_str(),
        image_id.as_str(),
        a_token_id.as_str(),
    ];
    let range = "start=2026-01-01T00:00:00Z&end=2026-06-01T00:00:00Z";
    let lead_time_id = recorded["lead_time_id"].as_str().unwrap().to_owned();
    // Every route of every component (health routes reveal nothing of any org), with A's ids
    // in its path and a body a write would accept.
    let routes: Vec<(&str, String, Value)> = cd_core::Component::ALL
        .iter()
        .flat_map(|component| component.routes())
        .filter(|route| route.access() != cd_core::Access::Anyone)
        .map(|route| {
            let method = route.method().as_str();
            let pattern = route.path();
            let mut path = format!("/api/v1{pattern}")
                .replace("{registry_id}", &registry_id)
                .replace("{channel}", "secret-channel")
                .replace("{image_id}", &image_id)
                .replace("{token_id}", &a_token_id)
                .replace("{lead_time_id}", &lead_time_id)
                .replace("{receiver_id}", &receiver_id)
                .replace("{failure_id}", "secret-failure")
                .replace("{subscription_id}", &subscription_id)
                // Any delivery id: A's subscription is not B's to look into.
                .replace("{delivery_id}", "0190a5c4-7a2e-7c1b-8c3d-5e6f7a8b9c0d")
                // Not A's receiver's secret: a guess.
                .replace("{secret}", &"0".repeat(64));
            if pattern == "/dora/metrics" {
                path = format!(
                    "{path}?metric=deployment_frequency&start_date=2026-01-01&end_date=2026-06-01"
                );
            } else if pattern.starts_with("/dora/") {
                path = format!("{path}?{range}");
            }
            assert!(!path.contains('{'), "no probe value for {pattern}");
            let body = match (method, pattern) {
                ("PATCH", "/registries/{registry_id}") => json!({"public": true}),
                ("PUT", "/registries/{registry_id}/channels/{channel}") => json!({}),
                ("POST", "/registries/{registry_id}/channels/{channel}/bump") => {
                    json!({"update_type": "patch"})
                }
                ("PUT", "/registries/{registry_id}/channels/{channel}/version") => {
                    json!({"version": "9.0.0"})
                }
                ("POST", "/registries/{registry_id}/images") => {
                    json!({"tag_name": "t", "image_name": "i", "image_name_with_tag": "i:t", "git_hash": "abcdef1", "run_id": "secret-run"})
                }
                ("PATCH", "/registries/{registry_id}/images/{image_id}") => {
                    json!({"status": "active"})
                }
                ("POST", "/deployments") => deployment.clone(),
                ("PATCH", "/deployments/{lead_time_id}") => json!({"status": "failed"}),
                ("POST", "/failures") => {
                    json!({"failure_id": "probe", "deployment_id": "secret-deployment",
                           "started_at": "2026-03-02T01:00:00Z"})
                }
                ("PATCH", "/failures/{failure_id}") => json!({"resolved_at": null}),
                ("PUT", "/settings") => json!({"excluded_authors": ["probe*"]}),
                ("POST", "/registries/{registry_id}/receivers") => json!({"source": "harbor"}),
                ("POST", "/registries/{registry_id}/subscriptions") => {
                    json!({"url": "https://probe.example.com/", "events": ["image.created"]})
                }
                ("PATCH", "/registries/{registry_id}/subscriptions/{subscription_id}") => {
                    json!({"active": false})
                }
                (
                    "POST",
                    "/registries/{registry_id}/subscriptions/{subscription_id}/deliveries/{delivery_id}/redeliver",
                ) => json!({}),
                ("POST", "/hooks/{receiver_id}" | "/hooks/{receiver_id}/{secret}") => {
                    json!({"repository": "acme/secret", "updated_tags": ["t"]})
                }
                ("POST", "/tokens") => json!({"role": "admin", "name": "probe"}),
                ("POST", "/registries") => {
                    json!({"image_repository_name": "probe", "container_registry_id": "ghcr"})
                }
                (method, pattern) => {
                    assert!(
                        matches!(method, "GET" | "DELETE"),
                        "no probe body for {method} {pattern}"
                    );
                    Value::Null
                }
            };
            (method, path, body)
        })
        .collect();
    let b = app.token("globex", "admin");
    for (method, path, body) in &routes {
        for token in [Some(b.as_str()), None] {
            let mut request = app.request(method, path);
            if !body.is_null() {
                request = request.json(body);
            }
            if let Some(token) = token {
                request = request.bearer(token);
            }
            let response = request.send();
            let text = response.text();
            // An id the caller itself sent may be echoed back ("registry X does not exist").
            let sent = format!("{path} {body}");
            for secret in secrets.iter().filter(|s| !sent.contains(*s)) {
                assert!(
                    !text.contains(secret),
                    "{method} {path} as {token:?} revealed {secret:?}: {text}"
                );
            }
            assert!(
                matches!(response.status, 200 | 201 | 401 | 403 | 404),
                "{method} {path} as {token:?}: {} {text}",
                response.status
            );
            if response.status == 201 {
                // Creating in the caller's own org (a registry, a token) is B's row.
                assert_eq!(
                    response.json()["org_id"],
                    "globex",
                    "{method} {path}: {text}"
                );
            }
            if response.status == 200 {
                // Only B's own views: B's rows (its token) and no counts of A's rows.
                let json = response.json();
                for key in ["items", "values"] {
                    for item in json
                        .get(key)
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        assert_eq!(item["org_id"], "globex", "{method} {path}: {json}");
                    }
                }
                if let Some(count) = json.pointer("/summary/count") {
                    assert_eq!(count, 0, "{method} {path}");
                }
            }
        }
    }
    // A's data is untouched.
    let version = app
        .get(&format!("{base}/channels/secret-channel"))
        .bearer(&a)
        .send()
        .json();
    assert_eq!(version["version"], "secret-channel-1.0.0");
    assert_eq!(
        app.get(&format!("{base}/images/{image_id}"))
            .bearer(&a)
            .send()
            .json()["status"],
        "inactive"
    );
    let dora = app
        .get(&format!("/api/v1/dora/deployment-frequency?{range}"))
        .bearer(&a)
        .send()
        .json();
    assert_eq!(dora["summary"]["count"], 1);
}

/// Holds the database's write lock from outside while one bump is attempted: for `hold`, or
/// until the bump is answered, whichever comes first.
fn bump_while_locked(hold: Duration) -> (crate::helpers::TestResponse, Duration) {
    // Another process's lock on the file: a libSQL server queues its own writers.
    let app = TestApp::spawn_on_file();
    let token = app.token("acme", "write");
    let registry = app.registry(&token, "app", false);
    let path = format!(
        "/api/v1/registries/{}/channels/default/bump",
        registry["registry_id"].as_str().unwrap()
    );
    let connection = rusqlite::Connection::open(app.file()).unwrap();
    connection.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (answered, answer) = std::sync::mpsc::channel::<()>();
    let releaser = std::thread::spawn(move || {
        let _ = answer.recv_timeout(hold);
        connection.execute_batch("COMMIT").unwrap();
    });
    let started = Instant::now();
    let response = app
        .post(&path, &json!({"update_type": "patch"}))
        .bearer(&token)
        .send();
    let waited = started.elapsed();
    let _ = answered.send(());
    releaser.join().unwrap();
    (response, waited)
}

#[test]
fn a_writer_waits_for_another_writers_lock_and_then_succeeds() {
    let (response, waited) = bump_while_locked(Duration::from_millis(1500));
    response.assert_status(200);
    assert_eq!(response.json()["version"], "default-0.0.1");
    assert!(
        waited >= Duration::from_millis(1400),
        "it waited for the lock ({waited:?})"
    );
}

#[test]
fn a_lock_held_past_the_busy_timeout_is_a_503_with_retry_after() {
    // Held until the answer comes (at most 60 s): a slow start on a loaded machine cannot
    // see the lock let go before its 5 s are up.
    let (response, waited) = bump_while_locked(Duration::from_secs(60));
    response.assert_problem(503, None);
    assert_eq!(response.header("retry-after"), Some("1"));
    assert!(
        waited >= Duration::from_millis(4900) && waited < Duration::from_secs(10),
        "bounded by the 5 s busy timeout ({waited:?})"
    );
}
