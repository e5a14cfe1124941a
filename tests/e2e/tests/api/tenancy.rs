//! Tenancy: another org's rows are invisible (404), public registries are readable by anyone.

use serde_json::json;

use crate::helpers::TestApp;

#[test]
fn another_orgs_registry_is_not_found_for_every_operation() {
    let app = TestApp::spawn();
    let acme = app.token("acme", "admin");
    let globex = app.token("globex", "admin");
    let registry = app.registry(&acme, "secret-app", false);
    let path = format!(
        "/api/v1/registries/{}",
        registry["registry_id"].as_str().unwrap()
    );
    app.put(&format!("{path}/channels/default"), &json!({}))
        .bearer(&acme)
        .send()
        .assert_status(201);

    let receiver = app
        .post(&format!("{path}/receivers"), &json!({"source": "harbor"}))
        .bearer(&acme)
        .send();
    receiver.assert_status(201);
    let receiver_id = receiver.json()["receiver_id"].as_str().unwrap().to_owned();
    let subscription = app
        .post(
            &format!("{path}/subscriptions"),
            &json!({"url": "https://flux.example.com/hook", "events": ["image.created"]}),
        )
        .bearer(&acme)
        .send();
    subscription.assert_status(201);
    let subscription_id = subscription.json()["subscription_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Every route of the registry component under one registry, from its route table.
    let registry_id = registry["registry_id"].as_str().unwrap();
    let attempts: Vec<_> = cd_core::Component::Registry
        .routes()
        .iter()
        .filter(|route| route.path().starts_with("/registries/{registry_id}"))
        .map(|route| {
            let method = route.method().as_str();
            let path = format!("/api/v1{}", route.path())
                .replace("{registry_id}", registry_id)
                .replace("{channel}", "default")
                .replace("{receiver_id}", &receiver_id)
                .replace("{subscription_id}", &subscription_id)
                .replace("{delivery_id}", "0190a5c4-7a2e-7c1b-8c3d-5e6f7a8b9c0d");
            let body = match route.path() {
                "/registries/{registry_id}" if method == "PATCH" => Some(json!({"public": true})),
                "/registries/{registry_id}/channels/{channel}/bump" => {
                    Some(json!({"update_type": "major"}))
                }
                "/registries/{registry_id}/channels/{channel}/version" => {
                    Some(json!({"version": "9.9.9"}))
                }
                "/registries/{registry_id}/receivers" if method == "POST" => {
                    Some(json!({"source": "quay"}))
                }
                "/registries/{registry_id}/subscriptions" if method == "POST" => Some(
                    json!({"url": "https://globex.example.com/", "events": ["image.created"]}),
                ),
                "/registries/{registry_id}/subscriptions/{subscription_id}" if method == "PATCH" => {
                    Some(json!({"active": false}))
                }
                "/registries/{registry_id}/subscriptions/{subscription_id}/deliveries/{delivery_id}/redeliver" => {
                    Some(json!({}))
                }
                _ => None,
            };
            let request = app.request(method, &path).bearer(&globex);
            match body {
                Some(body) => request.json(&body).send(),
                None => request.send(),
            }
        })
        .collect();
    assert_eq!(attempts.len(), 19, "every registry-scoped route is probed");
    for response in &attempts {
        let problem = response.assert_problem(404, None);
        assert!(
            !problem["detail"].as_str().unwrap().contains("acme"),
            "{problem}"
        );
    }
    // A missing registry answers exactly the same way.
    let missing = app
        .get("/api/v1/registries/0190a5c4-7a2e-7c1b-8c3d-5e6f7a8b9c0d")
        .bearer(&globex)
        .send();
    let (a, b) = (attempts[0].json(), missing.json());
    assert_eq!(
        (a["status"].clone(), a["title"].clone()),
        (b["status"].clone(), b["title"].clone())
    );
    let listed = app.get("/api/v1/registries").bearer(&globex).send().json();
    assert!(listed["items"].as_array().unwrap().is_empty());
    // Nothing changed.
    let channel = app
        .get(&format!("{path}/channels/default"))
        .bearer(&acme)
        .send()
        .json();
    assert_eq!(channel["version"], "default-0.0.0");
    assert_eq!(app.get(&path).bearer(&acme).send().json()["public"], false);
}

#[test]
fn a_token_naming_another_org_is_forbidden() {
    let app = TestApp::spawn();
    let acme = app.token("acme", "admin");
    app.get("/api/v1/registries?org_id=globex")
        .bearer(&acme)
        .send()
        .assert_problem(403, None);
    app.get("/api/v1/registries?org_id=acme")
        .bearer(&acme)
        .send()
        .assert_status(200);
}

#[test]
fn public_registries_and_their_versions_are_readable_without_a_token_but_not_writable() {
    let app = TestApp::spawn();
    let acme = app.token("acme", "write");
    let globex = app.token("globex", "write");
    let public = app.registry(&acme, "open-source", true);
    let private = app.registry(&acme, "internal", false);
    let public_path = format!(
        "/api/v1/registries/{}",
        public["registry_id"].as_str().unwrap()
    );
    let private_path = format!(
        "/api/v1/registries/{}",
        private["registry_id"].as_str().unwrap()
    );
    app.post(
        &format!("{public_path}/channels/default/bump"),
        &json!({"update_type": "minor"}),
    )
    .bearer(&acme)
    .send()
    .assert_status(200);

    app.get(&public_path).send().assert_status(200);
    assert_eq!(
        app.get(&format!("{public_path}/channels/default"))
            .send()
            .json()["version"],
        "default-0.1.0"
    );
    assert_eq!(
        app.get(&format!("{public_path}/channels")).send().json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    app.get(&public_path)
        .bearer(&globex)
        .send()
        .assert_status(200);

    // Private: anonymous is asked for a token (whether or not it exists), other orgs see nothing.
    app.get(&private_path).send().assert_problem(401, None);
    app.get("/api/v1/registries/0190a5c4-7a2e-7c1b-8c3d-5e6f7a8b9c0d")
        .send()
        .assert_problem(401, None);
    app.get(&private_path)
        .bearer(&globex)
        .send()
        .assert_problem(404, None);

    // Public is read-only to everyone else.
    app.post(
        &format!("{public_path}/channels/default/bump"),
        &json!({"update_type": "major"}),
    )
    .send()
    .assert_problem(401, None);
    app.post(
        &format!("{public_path}/channels/default/bump"),
        &json!({"update_type": "major"}),
    )
    .bearer(&globex)
    .send()
    .assert_problem(404, None);
    app.patch(&public_path, &json!({"public": false}))
        .bearer(&globex)
        .send()
        .assert_problem(404, None);
    app.get("/api/v1/registries")
        .send()
        .assert_problem(401, None);
    assert_eq!(
        app.get(&format!("{public_path}/channels/default"))
            .send()
            .json()["version"],
        "default-0.1.0"
    );
}
