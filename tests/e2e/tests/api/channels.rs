//! Channels and versions: GetVersionForChannel, UpdateVersion (bump), UpdateSemVersion (set).

use serde_json::{Value, json};

use crate::helpers::TestApp;

struct Fixture {
    app: TestApp,
    token: String,
    base: String,
}

fn fixture() -> Fixture {
    let app = TestApp::spawn();
    let token = app.token("acme", "write");
    let registry = app.registry(&token, "app", false);
    let base = format!(
        "/api/v1/registries/{}/channels",
        registry["registry_id"].as_str().unwrap()
    );
    Fixture { app, token, base }
}

impl Fixture {
    fn bump(&self, channel: &str, update_type: &str) -> Value {
        let response = self
            .app
            .post(
                &format!("{}/{channel}/bump", self.base),
                &json!({"update_type": update_type}),
            )
            .bearer(&self.token)
            .send();
        response.assert_status(200);
        response.json()
    }
}

#[test]
fn get_or_create_starts_a_channel_at_zero_then_returns_it_unchanged() {
    let f = fixture();
    let path = format!("{}/default", f.base);
    f.app
        .get(&path)
        .bearer(&f.token)
        .send()
        .assert_problem(404, None);
    let created = f.app.request("PUT", &path).bearer(&f.token).send();
    created.assert_status(201);
    assert_eq!(created.header("location"), Some(path.as_str()));
    let created = created.json();
    assert_eq!(created["version"], "default-0.0.0");
    assert_eq!(
        (
            created["major"].as_u64(),
            created["minor"].as_u64(),
            created["patch"].as_u64()
        ),
        (Some(0), Some(0), Some(0))
    );

    let again = f
        .app
        .put(&path, &json!({"initial_version": "5.0.0"}))
        .bearer(&f.token)
        .send();
    again.assert_status(200);
    assert_eq!(
        again.json(),
        created,
        "an existing channel ignores the initial version"
    );
    assert_eq!(f.app.get(&path).bearer(&f.token).send().json(), created);
}

#[test]
fn get_or_create_starts_from_an_initial_version_or_an_original_image_tag() {
    let f = fixture();
    let put = |channel: &str, body: Value| {
        f.app
            .put(&format!("{}/{channel}", f.base), &body)
            .bearer(&f.token)
            .send()
    };
    assert_eq!(
        put("default", json!({"initial_version": "v1.4.2"})).json()["version"],
        "default-1.4.2"
    );
    assert_eq!(
        put("beta", json!({"original_image_tag": "beta-2.0.7"})).json()["version"],
        "beta-2.0.7"
    );
    assert_eq!(
        put("rc", json!({"original_image_tag": "3.1.0"})).json()["version"],
        "rc-3.1.0"
    );
    put(
        "x",
        json!({"initial_version": "1.0.0", "original_image_tag": "1.0.0"}),
    )
    .assert_problem(422, Some("initial_version"));
    put("y", json!({"original_image_tag": "beta-1.0.0"}))
        .assert_problem(422, Some("original_image_tag"));
    put("z", json!({"initial_version": "1.0"})).assert_problem(422, Some("initial_version"));
}

#[test]
fn bumps_follow_semver_rules() {
    let f = fixture();
    assert_eq!(
        f.bump("default", "patch")["version"],
        "default-0.0.1",
        "bumping a new channel creates it"
    );
    assert_eq!(f.bump("default", "patch")["version"], "default-0.0.2");
    assert_eq!(f.bump("default", "minor")["version"], "default-0.1.0");
    assert_eq!(f.bump("default", "patch")["version"], "default-0.1.1");
    assert_eq!(f.bump("default", "major")["version"], "default-1.0.0");
    assert_eq!(f.bump("default", "patch")["version"], "default-1.0.1");
    // Channels are independent.
    assert_eq!(f.bump("beta", "minor")["version"], "beta-0.1.0");
    let current = f
        .app
        .get(&format!("{}/default", f.base))
        .bearer(&f.token)
        .send()
        .json();
    assert_eq!(current["version"], "default-1.0.1");
}

#[test]
fn set_version_accepts_the_three_spellings_and_never_moves_backwards() {
    let f = fixture();
    let set = |channel: &str, version: &str| {
        f.app
            .put(
                &format!("{}/{channel}/version", f.base),
                &json!({"version": version}),
            )
            .bearer(&f.token)
            .send()
    };
    assert_eq!(set("beta", "1.2.3").json()["version"], "beta-1.2.3");
    assert_eq!(set("beta", "v1.3.0").json()["version"], "beta-1.3.0");
    assert_eq!(set("beta", "beta-2.0.0").json()["version"], "beta-2.0.0");
    set("beta", "beta-2.0.0").assert_status(200);
    set("beta", "1.9.9").assert_problem(409, Some("version"));
    for bad in [
        "alpha-3.0.0",
        "3.0",
        "3.0.0-rc.1",
        "v3",
        "three",
        "",
        "3.0.0+build",
        "03.0.0",
    ] {
        set("beta", bad).assert_problem(422, Some("version"));
    }
    assert_eq!(
        f.app
            .get(&format!("{}/beta", f.base))
            .bearer(&f.token)
            .send()
            .json()["version"],
        "beta-2.0.0"
    );
    // The next bump continues from the set version.
    assert_eq!(f.bump("beta", "patch")["version"], "beta-2.0.1");
}

#[test]
fn unknown_update_types_and_bad_channel_names_are_422() {
    let f = fixture();
    for update_type in ["build", "MAJOR", "", "none"] {
        f.app
            .post(
                &format!("{}/default/bump", f.base),
                &json!({"update_type": update_type}),
            )
            .bearer(&f.token)
            .send()
            .assert_problem(422, Some("update_type"));
    }
    f.app
        .post(
            &format!("{}/default/bump", f.base),
            &json!({"update_type": 1}),
        )
        .bearer(&f.token)
        .send()
        .assert_problem(422, Some("update_type"));
    let long = "a".repeat(64);
    // "-beta", "beta-", ".x" and "..": regressions found by schemathesis (a channel must start
    // and end with a letter or digit, so its version string is a valid OCI tag).
    for channel in [
        "Beta",
        "beta_1",
        "b%C3%AAta",
        "beta%20x",
        "%27%3B--",
        long.as_str(),
        "-beta",
        "beta-",
        ".x",
        "..",
    ] {
        f.app
            .request("PUT", &format!("{}/{channel}", f.base))
            .bearer(&f.token)
            .send()
            .assert_problem(422, Some("channel"));
    }
    f.app
        .request("PUT", &format!("{}/{}", f.base, "a".repeat(63)))
        .bearer(&f.token)
        .send()
        .assert_status(201);
}

#[test]
fn channels_are_listed_by_name() {
    let f = fixture();
    for channel in ["stable", "beta", "default", "alpha"] {
        f.app
            .request("PUT", &format!("{}/{channel}", f.base))
            .bearer(&f.token)
            .send()
            .assert_status(201);
    }
    let first = f
        .app
        .get(&format!("{}?limit=3", f.base))
        .bearer(&f.token)
        .send()
        .json();
    let names: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["channel"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta", "default"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = f
        .app
        .get(&format!("{}?limit=3&cursor={cursor}", f.base))
        .bearer(&f.token)
        .send()
        .json();
    assert_eq!(second["items"][0]["channel"], "stable");
    assert_eq!(second["next_cursor"], Value::Null);
}
