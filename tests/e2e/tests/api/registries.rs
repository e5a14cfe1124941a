//! Registry CRUD: create, get, list (paginated, newest first), update, soft delete.

use serde_json::json;

use crate::helpers::TestApp;

#[test]
fn a_created_registry_can_be_read_back() {
    let app = TestApp::spawn();
    let token = app.token("acme", "write");
    let response = app
        .post(
            "/api/v1/registries",
            &json!({
                "image_repository_name": "team/service-api",
                "public": false,
                "container_registry_id": "ghcr",
                "token_vault_id": "vault://ci/ghcr-push"
            }),
        )
        .bearer(&token)
        .send();
    response.assert_status(201);
    let created = response.json();
    let id = created["registry_id"].as_str().unwrap();
    assert_eq!(
        response.header("location"),
        Some(format!("/api/v1/registries/{id}").as_str())
    );
    assert_eq!(created["org_id"], "acme");
    assert_eq!(created["image_repository_name"], "team/service-api");
    assert_eq!(created["public"], false);
    assert_eq!(created["container_registry_id"], "ghcr");
    assert_eq!(created["token_vault_id"], "vault://ci/ghcr-push");
    assert_eq!(created["created_at"], created["updated_at"]);
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));

    let fetched = app
        .get(&format!("/api/v1/registries/{id}"))
        .bearer(&token)
        .send();
    fetched.assert_status(200);
    assert_eq!(fetched.json(), created);
}

#[test]
fn registries_are_listed_newest_first_a_page_at_a_time() {
    let app = TestApp::spawn();
    let token = app.token("acme", "write");
    let ids: Vec<String> = (0..5)
        .map(|i| {
            app.registry(&token, &format!("app-{i}"), false)["registry_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut seen = Vec::new();
    let mut path = "/api/v1/registries?limit=2".to_owned();
    loop {
        let page = app.get(&path).bearer(&token).send();
        page.assert_status(200);
        let page = page.json();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|r| r["registry_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/registries?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.into_iter().rev().collect();
    assert_eq!(seen, newest_first);
}

#[test]
fn list_limits_outside_1_to_500_are_refused() {
    let app = TestApp::spawn();
    let token = app.token("acme", "read");
    for limit in ["0", "501", "-1", "ten", ""] {
        app.get(&format!("/api/v1/registries?limit={limit}"))
            .bearer(&token)
            .send()
            .assert_problem(400, Some("limit"));
    }
    app.get("/api/v1/registries?limit=500")
        .bearer(&token)
        .send()
        .assert_status(200);
    app.get("/api/v1/registries?cursor=not-a-uuid")
        .bearer(&token)
        .send()
        .assert_problem(400, Some("cursor"));
}

#[test]
fn patch_changes_only_the_given_fields_and_null_clears_the_vault_reference() {
    let app = TestApp::spawn();
    let token = app.token("acme", "write");
    let created = app.registry(&token, "app", false);
    let path = format!(
        "/api/v1/registries/{}",
        created["registry_id"].as_str().unwrap()
    );

    let patched = app
        .patch(
            &path,
            &json!({"public": true, "token_vault_id": "vault://x"}),
        )
        .bearer(&token)
        .send();
    patched.assert_status(200);
    let patched = patched.json();
    assert_eq!(patched["public"], true);
    assert_eq!(patched["token_vault_id"], "vault://x");
    assert_eq!(patched["image_repository_name"], "app");
    assert_eq!(patched["created_at"], created["created_at"]);

    let cleared = app
        .patch(&path, &json!({"token_vault_id": null}))
        .bearer(&token)
        .send()
        .json();
    assert_eq!(cleared["token_vault_id"], serde_json::Value::Null);
    assert_eq!(cleared["public"], true);
    assert_eq!(app.get(&path).bearer(&token).send().json(), cleared);
}

#[test]
fn a_registry_name_is_unique_among_live_registries_of_an_org() {
    let app = TestApp::spawn();
    let token = app.token("acme", "admin");
    let first = app.registry(&token, "app", false);
    let duplicate = app
        .post(
            "/api/v1/registries",
            &json!({"image_repository_name": "app", "container_registry_id": "ghcr"}),
        )
        .bearer(&token)
        .send();
    duplicate.assert_problem(409, Some("image_repository_name"));
    // Another container registry, or another org, may use the same name.
    app.post(
        "/api/v1/registries",
        &json!({"image_repository_name": "app", "container_registry_id": "ecr"}),
    )
    .bearer(&token)
    .send()
    .assert_status(201);
    app.registry(&app.token("globex", "write"), "app", false);
    // Renaming onto an existing name is the same conflict.
    let other = app.registry(&token, "other", false);
    let path = format!(
        "/api/v1/registries/{}",
        other["registry_id"].as_str().unwrap()
    );
    app.patch(&path, &json!({"image_repository_name": "app"}))
        .bearer(&token)
        .send()
        .assert_problem(409, None);
    // Deleting frees the name.
    let path = format!(
        "/api/v1/registries/{}",
        first["registry_id"].as_str().unwrap()
    );
    app.delete(&path).bearer(&token).send().assert_status(204);
    app.registry(&token, "app", false);
}

#[test]
fn delete_is_a_soft_delete_that_needs_an_admin_and_keeps_history() {
    let app = TestApp::spawn();
    let writer = app.token("acme", "write");
    let admin = app.token("acme", "admin");
    let registry = app.registry(&writer, "app", false);
    let id = registry["registry_id"].as_str().unwrap();
    let path = format!("/api/v1/registries/{id}");
    app.put(&format!("{path}/channels/default"), &json!({}))
        .bearer(&writer)
        .send()
        .assert_status(201);

    app.delete(&path)
        .bearer(&writer)
        .send()
        .assert_problem(403, None);
    app.delete(&path).bearer(&admin).send().assert_status(204);
    app.get(&path)
        .bearer(&admin)
        .send()
        .assert_problem(404, None);
    app.get(&format!("{path}/channels"))
        .bearer(&admin)
        .send()
        .assert_problem(404, None);
    app.delete(&path)
        .bearer(&admin)
        .send()
        .assert_problem(404, None);
    let listed = app.get("/api/v1/registries").bearer(&admin).send().json();
    assert!(listed["items"].as_array().unwrap().is_empty());

    // The rows are still there for history.
    // Ids are stored as their 16 bytes (migration 0007).
    let rows = app
        .sql()
        .execute(
            "SELECT deleted_at, (SELECT COUNT(*) FROM image_versions AS v \
                                 WHERE v.registry_key = r.registry_key) \
             FROM image_registries AS r WHERE registry_id = ?1",
            &[cd_core::Value::Blob(
                uuid::Uuid::parse_str(id).unwrap().as_bytes().to_vec(),
            )],
        )
        .unwrap();
    let (deleted_at, channels) = (&rows.rows[0][0], &rows.rows[0][1]);
    let deleted_at = matches!(deleted_at, cd_core::Value::Integer(_)).then_some(());
    let channels = match channels {
        cd_core::Value::Integer(n) => *n,
        other => panic!("a count: {other:?}"),
    };
    assert!(deleted_at.is_some());
    assert_eq!(channels, 1);
}

#[test]
fn read_tokens_read_but_do_not_write() {
    let app = TestApp::spawn();
    let writer = app.token("acme", "write");
    let reader = app.token("acme", "read");
    let registry = app.registry(&writer, "app", false);
    let path = format!(
        "/api/v1/registries/{}",
        registry["registry_id"].as_str().unwrap()
    );
    app.get(&path).bearer(&reader).send().assert_status(200);
    app.get(&format!("{path}/channels"))
        .bearer(&reader)
        .send()
        .assert_status(200);
    let body = json!({"image_repository_name": "x", "container_registry_id": "ghcr"});
    app.post("/api/v1/registries", &body)
        .bearer(&reader)
        .send()
        .assert_problem(403, None);
    app.patch(&path, &json!({"public": true}))
        .bearer(&reader)
        .send()
        .assert_problem(403, None);
    app.put(&format!("{path}/channels/default"), &json!({}))
        .bearer(&reader)
        .send()
        .assert_problem(403, None);
    app.post(
        &format!("{path}/channels/default/bump"),
        &json!({"update_type": "patch"}),
    )
    .bearer(&reader)
    .send()
    .assert_problem(403, None);
}

#[test]
fn the_admin_token_acts_for_the_org_it_names() {
    let app = TestApp::spawn();
    let admin = crate::helpers::ADMIN_TOKEN;
    let body =
        json!({"image_repository_name": "app", "container_registry_id": "ghcr", "org_id": "acme"});
    let created = app.post("/api/v1/registries", &body).bearer(admin).send();
    created.assert_status(201);
    assert_eq!(created.json()["org_id"], "acme");
    let acme = app.token("acme", "read");
    let listed = app.get("/api/v1/registries").bearer(&acme).send().json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}
