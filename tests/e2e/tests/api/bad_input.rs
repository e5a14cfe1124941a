//! Bad input: every malformed, mistyped, oversized or hostile request gets a documented 4xx
//! problem, never a 5xx, and SQL metacharacters are stored verbatim, never executed.

use serde_json::{Value, json};

use crate::helpers::TestApp;

fn registry_body() -> Value {
    json!({"image_repository_name": "app", "container_registry_id": "ghcr"})
}

#[test]
fn malformed_json_is_400() {
    let app = TestApp::spawn();
    let token = app.token("acme", "write");
    for body in [
        "{",
        "{\"image_repository_name\": }",
        "nul",
        "{\"image_repository_name\":\"app\",\"container_registry_id\":\"ghcr\"} trailing",
        "\u{0}",
        "{'single': 'quotes'}",
    ] {
        app.request("POST", "/api/v1/registries")
            .bearer(&token)
            .raw("application/json", body)
            .send()
            .assert_problem(400, None);
    }
    app.request("POST", "/api/v1/registries")
        .bearer(&token)
        .raw("application/json", "")
        .send()
        .assert_problem(400, None);
}

#[test]
fn wrong_types_missing_and_unknown_fields_are_422_naming_the_field() {
    let app = TestApp::spawn();
    let token = app.token("acme", "write");
    let cases = [
        (
            json!({"image_repository_name": 5, "container_registry_id": "ghcr"}),
            "image_repository_name",
        ),
        (
            json!({"image_repository_name": "app", "container_registry_id": "ghcr", "public": "yes"}),
            "public",
        ),
        (
            json!({"image_repository_name": "app", "container_registry_id": ["ghcr"]}),
            "container_registry_id",
        ),
        (
            json!({"image_repository_name": "app", "container_registry_id": "ghcr", "token_vault_id": 1}),
            "token_vault_id",
        ),
        (
            json!({"container_registry_id": "ghcr"}),
            "image_repository_name",
        ),
        (
            json!({"image_repository_name": "app"}),
            "container_registry_id",
        ),
        (
            json!({"image_repository_name": "app", "container_registry_id": "ghcr", "colour": "red"}),
            "colour",
        ),
        (
            json!({"image_repository_name": null, "container_registry_id": "ghcr"}),
            "image_repository_name",
        ),
        (json!([1, 2]), "body"),
        (json!("a string"), "body"),
    ];
    for (body, field) in cases {
        app.post("/api/v1/registries", &body)
            .bearer(&token)
            .send()
            .assert_problem(422, Some(field));
    }
}

#[test]
fn empty_and_oversized_strings_are_422() {
    let app = TestApp::spawn();
    let token = app.token("acme", "write");
    let cases = [
        (
            json!({"image_repository_name": "", "container_registry_id": "ghcr"}),
            "image_repository_name",
        ),
        (
            json!({"image_repository_name": "app", "container_registry_id": ""}),
            "container_registry_id",
        ),
        (
            json!({"image_repository_name": "app", "container_registry_id": "ghcr", "token_vault_id": ""}),
            "token_vault_id",
        ),
        (
            json!({"image_repository_name": "a".repeat(256), "container_registry_id": "ghcr"}),
            "image_repository_name",
        ),
        (
            json!({"image_repository_name": "app", "container_registry_id": "c".repeat(256)}),
            "container_registry_id",
        ),
        (
            json!({"image_repository_name": "App", "container_registry_id": "ghcr"}),
            "image_repository_name",
        ),
        (
            json!({"image_repository_name": "app", "container_registry_id": "line\nbreak"}),
            "container_registry_id",
        ),
    ];
    for (body, field) in cases {
        app.post("/api/v1/registries", &body)
            .bearer(&token)
            .send()
            .assert_problem(422, Some(field));
    }
}

#[test]
fn a_body_over_the_limit_is_413_and_the_limit_is_configurable() {
    let app = TestApp::spawn();
    let token = app.token("acme", "write");
    let ten_megabytes = format!(
        "{{\"image_repository_name\": \"{}\"}}",
        "a".repeat(10 * 1024 * 1024)
    );
    let response = app
        .request("POST", "/api/v1/registries")
        .bearer(&token)
        .raw("application/json", ten_megabytes)
        .send();
    response.assert_problem(413, None);

    let small = TestApp::spawn_with(&[("max_body_bytes", "100")]);
    let token = small.token("acme", "write");
    let padded = json!({"image_repository_name": "app", "container_registry_id": "g".repeat(120)});
    small
        .post("/api/v1/registries", &padded)
        .bearer(&token)
        .send()
        .assert_problem(413, None);
    small
        .post("/api/v1/registries", &registry_body())
        .bearer(&token)
        .send()
        .assert_status(201);
}

#[test]
fn a_body_that_is_not_json_is_415() {
    let app = TestApp::spawn();
    let token = app.token("acme", "write");
    let body = serde_json::to_vec(&registry_body()).unwrap();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
        "multipart/form-data",
    ] {
        app.request("POST", "/api/v1/registries")
            .bearer(&token)
            .raw(content_type, body.clone())
            .send()
            .assert_problem(415, None);
    }
    let response = app
        .request("POST", "/api/v1/registries")
        .bearer(&token)
        .raw("application/json; charset=utf-8", body.clone())
        .send();
    response.assert_status(201);
    // No Content-Type at all.
    let mut request = app.request("POST", "/api/v1/registries").bearer(&token);
    request = request.raw("", body);
    request.send().assert_problem(415, None);
}

#[test]
fn ids_that_are_not_uuids_are_400() {
    let app = TestApp::spawn();
    let token = app.token("acme", "admin");
    for id in [
        "42",
        "not-a-uuid",
        "0190a5c4-7a2e-7c1b-8c3d-5e6f7a8b9c0",
        "0190a5c47a2e7c1b8c3d5e6f7a8b9c0d0000",
        "%27%20OR%201%3D1",
    ] {
        app.get(&format!("/api/v1/registries/{id}"))
            .bearer(&token)
            .send()
            .assert_problem(400, Some("registry_id"));
        app.get(&format!("/api/v1/registries/{id}/channels"))
            .bearer(&token)
            .send()
            .assert_problem(400, Some("registry_id"));
    }
    app.delete("/api/v1/tokens/nope")
        .bearer(&token)
        .send()
        .assert_problem(400, Some("token_id"));
}

#[test]
fn sql_metacharacters_are_stored_verbatim_in_free_text_and_refused_in_names() {
    let app = TestApp::spawn();
    let token = app.token("acme", "write");
    let hostile = "x'); DROP TABLE image_registries; -- \" ; SELECT * FROM api_tokens; 💥";
    let body = json!({
        "image_repository_name": "app",
        "container_registry_id": hostile,
        "token_vault_id": format!("vault://{hostile}"),
    });
    let created = app.post("/api/v1/registries", &body).bearer(&token).send();
    created.assert_status(201);
    let created = created.json();
    assert_eq!(created["container_registry_id"], hostile);
    let path = format!(
        "/api/v1/registries/{}",
        created["registry_id"].as_str().unwrap()
    );
    let fetched = app.get(&path).bearer(&token).send().json();
    assert_eq!(fetched["container_registry_id"], hostile);
    assert_eq!(fetched["token_vault_id"], format!("vault://{hostile}"));

    let name_body = json!({"image_repository_name": "app'; DROP TABLE image_registries;--", "container_registry_id": "ghcr"});
    app.post("/api/v1/registries", &name_body)
        .bearer(&token)
        .send()
        .assert_problem(422, Some("image_repository_name"));
    app.get("/api/v1/registries?org_id=acme%27%20OR%20%271%27%3D%271")
        .bearer(&token)
        .send()
        .assert_problem(422, Some("org_id"));

    // Every table is intact and holds exactly what was written.
    assert_eq!(app.count("SELECT COUNT(*) FROM image_registries"), 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM api_tokens"), 1);
}

#[test]
fn wrong_methods_are_405_with_allow() {
    let app = TestApp::spawn();
    let token = app.token("acme", "admin");
    let registry = app.registry(&token, "app", false);
    let path = format!(
        "/api/v1/registries/{}",
        registry["registry_id"].as_str().unwrap()
    );
    let cases = [
        ("DELETE", "/api/v1/registries".to_owned(), "GET, POST"),
        ("POST", path.clone(), "GET, PATCH, DELETE"),
        ("PUT", format!("{path}/channels"), "GET"),
        ("GET", format!("{path}/channels/default/bump"), "POST"),
        ("PATCH", "/api/v1/tokens".to_owned(), "GET, POST"),
    ];
    for (method, path, allow) in cases {
        let response = app.request(method, &path).bearer(&token).send();
        response.assert_problem(405, None);
        assert_eq!(response.header("allow"), Some(allow));
    }
}

/// A sweep of odd requests over every route: whatever they are, the answer is a 4xx (or 2xx)
/// with a body we documented, never a 5xx or a trap.
#[test]
fn no_request_makes_a_component_fail() {
    let app = TestApp::spawn();
    let token = app.token("acme", "admin");
    let registry = app.registry(&token, "app", false);
    let id = registry["registry_id"].as_str().unwrap();
    let paths = [
        "/api/v1/registries".to_owned(),
        format!("/api/v1/registries/{id}"),
        format!("/api/v1/registries/{id}/"),
        format!("/api/v1/registries/{id}/channels"),
        format!("/api/v1/registries/{id}/channels/default"),
        format!("/api/v1/registries/{id}/channels/default/bump"),
        format!("/api/v1/registries/{id}/channels/default/version"),
        format!("/api/v1/registries/{id}/channels/default/version/extra"),
        "/api/v1/registries//channels".to_owned(),
        "/api/v1/tokens".to_owned(),
        "/api/v1/tokens/x/y".to_owned(),
        "/api/v1/health/registry".to_owned(),
        "/api/v1/registries?limit=1&limit=2".to_owned(),
        "/api/v1/registries?cursor=%ZZ".to_owned(),
    ];
    let bodies: [(&str, &[u8]); 5] = [
        ("application/json", b"{}"),
        ("application/json", b"[]"),
        (
            "application/json",
            b"{\"update_type\":\"patch\",\"version\":\"1.0.0\"}",
        ),
        ("application/json", &[0xff, 0xfe, 0x00]),
        ("text/plain", b"hello"),
    ];
    for path in &paths {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            for (content_type, body) in bodies {
                for authorization in [Some(token.as_str()), None] {
                    let mut request = app.request(method, path).raw(content_type, body.to_vec());
                    if let Some(token) = authorization {
                        request = request.bearer(token);
                    }
                    let response = request.send();
                    assert!(
                        response.status < 500,
                        "{method} {path} {content_type}: {} {}",
                        response.status,
                        response.text()
                    );
                    if response.status >= 400 {
                        assert_eq!(
                            response.header("content-type"),
                            Some("application/problem+json"),
                            "{method} {path}"
                        );
                    }
                }
            }
        }
    }
}

/// Bidi controls, zero-width and other invisible format characters (Unicode Cf) and the line
/// and paragraph separators let one identifier pass for another in a UI or a log: every
/// identifier and name refuses them with a 422 naming the field. A commit message is free text
/// and keeps them, with ESC and C1 controls, verbatim.
#[test]
fn identifiers_refuse_invisible_and_bidi_characters_and_free_text_keeps_them() {
    let app = TestApp::spawn();
    let token = app.token("acme", "admin");
    let registry = app.registry(&token, "app", false);
    let images = format!(
        "/api/v1/registries/{}/images",
        registry["registry_id"].as_str().unwrap()
    );
    let image = |field: &str, value: &str| {
        let mut body = json!({"tag_name": "t", "image_name": "app", "image_name_with_tag": "app:t",
            "git_hash": "abcdef1", "run_id": format!("run-{}", value.len())});
        body[field] = json!(value);
        body
    };
    let hostile = [
        "acme\u{202E}gpj.exe",
        "a\u{2066}b\u{2069}",
        "zero\u{200B}width",
        "\u{FEFF}bom",
        "line\u{2028}separator",
        "para\u{2029}graph",
        "soft\u{00AD}hyphen",
    ];
    for value in hostile {
        for field in ["image_name", "committer", "run_id", "api_version_id"] {
            app.post(&images, &image(field, value))
                .bearer(&token)
                .send()
                .assert_problem(422, Some(field));
        }
        let mut registry = registry_body();
        registry["container_registry_id"] = json!(value);
        app.post("/api/v1/registries", &registry)
            .bearer(&token)
            .send()
            .assert_problem(422, Some("container_registry_id"));
        app.post("/api/v1/tokens", &json!({"role": "read", "name": value}))
            .bearer(&token)
            .send()
            .assert_problem(422, Some("name"));
    }
    let created = app
        .post(&images, &image("tag_name", "t"))
        .bearer(&token)
        .send()
        .json();
    for value in hostile {
        app.post(
            "/api/v1/deployments",
            &json!({"image_id": created["image_id"], "app_id": value, "environment": "production"}),
        )
        .bearer(&token)
        .send()
        .assert_problem(422, Some("app_id"));
    }

    let message = "fix: \u{1b}[31mred\u{1b}[0m \u{9b}2J \u{202E}reversed\u{202C} \u{200B}";
    let mut body = image("commit_msg", message);
    body["run_id"] = json!("free-text");
    let stored = app.post(&images, &body).bearer(&token).send();
    stored.assert_status(201);
    assert_eq!(stored.json()["commit_msg"], message);
}

/// A chunked body that breaks off mid-chunk: a 400 problem that says so in words, with none of
/// the host's internal error text (it used to show `Error { handle: Resource { handle: 1 } }`).
#[test]
fn a_malformed_chunked_body_is_a_400_without_internal_text() {
    use std::io::{Read, Write};
    let app = TestApp::spawn();
    let token = app.token("acme", "write");
    let mut stream = std::net::TcpStream::connect(app.host.addr()).unwrap();
    let request = format!(
        "POST /api/v1/registries HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
         5\r\n{{\"ima\r\nzz\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(
        text.contains("the request body could not be read"),
        "{text}"
    );
    for internal in ["Error {", "handle", "Resource"] {
        assert!(!text.contains(internal), "{internal:?} in {text}");
    }
}
