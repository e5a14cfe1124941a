//! API tokens: minted by the bootstrap admin or an org admin, stored hashed, scoped, revocable.

use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, TestApp};

#[test]
fn the_admin_mints_an_org_token_whose_plaintext_is_shown_once() {
    let app = TestApp::spawn();
    let response = app
        .post(
            "/api/v1/tokens",
            &json!({"org_id": "acme", "role": "write", "name": "ci pipeline"}),
        )
        .bearer(ADMIN_TOKEN)
        .send();
    response.assert_status(201);
    let created = response.json();
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("cdi_") && token.len() == 68, "{token}");
    assert_eq!(created["org_id"], "acme");
    assert_eq!(created["role"], "write");
    assert_eq!(created["name"], "ci pipeline");
    let location = response.header("location").unwrap();
    assert!(location.ends_with(created["token_id"].as_str().unwrap()));

    let listed = app
        .get("/api/v1/tokens?org_id=acme")
        .bearer(ADMIN_TOKEN)
        .send();
    listed.assert_status(200);
    let items = listed.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert!(
        items[0].get("token").is_none(),
        "the plaintext is never listed"
    );

    // The database holds only the digest.
    let cd_core::Value::Text(stored) = app.one("SELECT token_sha256 FROM api_tokens", &[]) else {
        panic!("the digest is stored as text")
    };
    assert_ne!(stored, token);
    assert_eq!(stored.len(), 64);
}

#[test]
fn a_minted_token_works_and_stops_working_when_revoked() {
    let app = TestApp::spawn();
    let admin = app.token("acme", "admin");
    let reader = app
        .post(
            "/api/v1/tokens",
            &json!({"role": "read", "name": "dashboards"}),
        )
        .bearer(&admin)
        .send();
    reader.assert_status(201);
    let reader_json = reader.json();
    let reader_token = reader_json["token"].as_str().unwrap();
    app.get("/api/v1/registries")
        .bearer(reader_token)
        .send()
        .assert_status(200);

    let token_id = reader_json["token_id"].as_str().unwrap();
    app.delete(&format!("/api/v1/tokens/{token_id}"))
        .bearer(&admin)
        .send()
        .assert_status(204);
    app.get("/api/v1/registries")
        .bearer(reader_token)
        .send()
        .assert_problem(401, None);
    app.delete(&format!("/api/v1/tokens/{token_id}"))
        .bearer(&admin)
        .send()
        .assert_problem(404, None);
}

#[test]
fn only_admins_manage_tokens_and_only_for_their_own_org() {
    let app = TestApp::spawn();
    let writer = app.token("acme", "write");
    let admin = app.token("acme", "admin");
    let body = json!({"role": "read", "name": "x"});
    app.post("/api/v1/tokens", &body)
        .bearer(&writer)
        .send()
        .assert_problem(403, None);
    app.get("/api/v1/tokens")
        .bearer(&writer)
        .send()
        .assert_problem(403, None);
    let other_org = json!({"org_id": "globex", "role": "read", "name": "x"});
    app.post("/api/v1/tokens", &other_org)
        .bearer(&admin)
        .send()
        .assert_problem(403, None);
    app.post("/api/v1/tokens", &body)
        .send()
        .assert_problem(401, None);

    // Another org's token cannot be revoked (it is not found, not forbidden).
    let globex = app
        .post("/api/v1/tokens", &other_org)
        .bearer(ADMIN_TOKEN)
        .send()
        .json();
    let path = format!("/api/v1/tokens/{}", globex["token_id"].as_str().unwrap());
    app.delete(&path)
        .bearer(&admin)
        .send()
        .assert_problem(404, None);
}

#[test]
fn the_admin_must_name_the_org_it_acts_for() {
    let app = TestApp::spawn();
    let response = app
        .post("/api/v1/tokens", &json!({"role": "read", "name": "x"}))
        .bearer(ADMIN_TOKEN)
        .send();
    response.assert_problem(422, Some("org_id"));
    app.get("/api/v1/registries")
        .bearer(ADMIN_TOKEN)
        .send()
        .assert_problem(422, Some("org_id"));
    app.get("/api/v1/registries?org_id=acme")
        .bearer(ADMIN_TOKEN)
        .send()
        .assert_status(200);
}

#[test]
fn missing_malformed_and_unknown_credentials_are_401_problems() {
    let app = TestApp::spawn();
    let cases: [(&str, Option<&str>); 6] = [
        ("no header", None),
        ("unknown token", Some("Bearer cdi_0000")),
        ("wrong scheme", Some("Basic dXNlcjpwYXNz")),
        ("empty bearer", Some("Bearer ")),
        ("no scheme", Some(ADMIN_TOKEN)),
        (
            "admin token with a typo",
            Some("Bearer test-admin-token-012345678"),
        ),
    ];
    for (case, header) in cases {
        let mut request = app.get("/api/v1/registries?org_id=acme");
        if let Some(header) = header {
            request = request.header("authorization", header);
        }
        let response = request.send();
        let problem = response.assert_problem(401, None);
        assert_eq!(
            response.header("www-authenticate"),
            Some("Bearer"),
            "{case}: {problem}"
        );
    }
}

#[test]
fn token_fields_are_validated() {
    let app = TestApp::spawn();
    let post =
        |body: serde_json::Value| app.post("/api/v1/tokens", &body).bearer(ADMIN_TOKEN).send();
    post(json!({"org_id": "acme", "role": "owner", "name": "x"})).assert_problem(422, Some("role"));
    post(json!({"org_id": "acme", "role": "read", "name": ""})).assert_problem(422, Some("name"));
    post(json!({"org_id": "ac me", "role": "read", "name": "x"}))
        .assert_problem(422, Some("org_id"));
    post(json!({"org_id": "acme", "role": "read"})).assert_problem(422, Some("name"));
    // A token name is free text: stored verbatim.
    let name = "Robert'); DROP TABLE api_tokens;--";
    let created = post(json!({"org_id": "acme", "role": "read", "name": name}));
    created.assert_status(201);
    assert_eq!(created.json()["name"], name);
}

#[test]
fn one_token_reads_back_without_its_secret_for_its_orgs_admins_only() {
    let app = TestApp::spawn();
    let admin = app.token("acme", "admin");
    let minted = app
        .post("/api/v1/tokens", &json!({"role": "write", "name": "ci"}))
        .bearer(&admin)
        .send()
        .json();
    let token_id = minted["token_id"].as_str().unwrap();
    let path = format!("/api/v1/tokens/{token_id}");

    let read = app.get(&path).bearer(&admin).send();
    read.assert_status(200);
    let read = read.json();
    for field in ["token_id", "org_id", "role", "name", "created_at"] {
        assert_eq!(read[field], minted[field], "{field}");
    }
    assert!(
        read.get("token").is_none(),
        "the secret is never shown again: {read}"
    );

    let writer = minted["token"].as_str().unwrap();
    app.get(&path)
        .bearer(writer)
        .send()
        .assert_problem(403, None);
    let other = app.token("globex", "admin");
    app.get(&path)
        .bearer(&other)
        .send()
        .assert_problem(404, None);
    app.get("/api/v1/tokens/not-a-uuid")
        .bearer(&admin)
        .send()
        .assert_problem(400, Some("token_id"));

    app.delete(&path).bearer(&admin).send().assert_status(204);
    app.get(&path)
        .bearer(&admin)
        .send()
        .assert_problem(404, None);
}
