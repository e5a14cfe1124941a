//! Image entries: the pipeline trigger (CreateImageEntry), its idempotency and atomicity, and
//! image queries and updates.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, TestApp};

/// A registry with a write token, and the path of its images.
struct Fixture {
    app: Arc<TestApp>,
    token: String,
    registry_id: String,
    images: String,
}

fn fixture() -> Fixture {
    let app = TestApp::spawn();
    let token = app.token("acme", "write");
    let registry = app.registry(&token, "team/service-api", false);
    let registry_id = registry["registry_id"].as_str().unwrap().to_owned();
    let images = format!("/api/v1/registries/{registry_id}/images");
    Fixture {
        app: Arc::new(app),
        token,
        registry_id,
        images,
    }
}

/// A complete CD request for `run_id`.
fn cd_request(run_id: &str) -> Value {
    json!({
        "channel": "default",
        "update_type": "patch",
        "tag_name": "build-1234",
        "image_name": "ghcr.io/acme/service-api",
        "image_name_with_tag": "ghcr.io/acme/service-api:build-1234",
        "status": "active",
        "tags": ["latest", "main"],
        "git_hash": "3f786850e387550fdab836ed7e6dc881de23001b",
        "git_hash_commit_timestamp": "2026-03-01T10:00:00+05:30",
        "gitops_hash": "9a0364b9e99bb480dd25e1f0284c8555",
        "api_definition_path": "api/openapi.yaml",
        "committer": "Ada Lovelace <ada@example.com>",
        "commit_msg": "Fix the thing\n\nLonger body.",
        "run_id": run_id,
        "image_ports": [{"port": 8080, "protocol": "tcp", "name": "http"}, {"port": 9090}],
        "cluster_image_tags": [{"cluster_id": "eu-1", "tag": "default-0.0.1"}],
        "api_version_id": "v1"
    })
}

impl Fixture {
    fn create(&self, body: &Value) -> crate::helpers::TestResponse {
        self.app.post(&self.images, body).bearer(&self.token).send()
    }

    fn channel_version(&self, channel: &str) -> Value {
        let path = format!("/api/v1/registries/{}/channels/{channel}", self.registry_id);
        self.app.get(&path).bearer(&self.token).send().json()["version"].clone()
    }

    fn image_count(&self) -> i64 {
        self.app.count("SELECT COUNT(*) FROM images")
    }
}

#[test]
fn a_cd_request_records_an_image_with_the_bumped_channel_version() {
    let f = fixture();
    let response = f.create(&cd_request("run-1"));
    response.assert_status(201);
    let image = response.json();
    assert_eq!(image["version"], "default-0.0.1");
    assert_eq!(image["registry_id"], f.registry_id.as_str());
    assert_eq!(image["org_id"], "acme");
    assert_eq!(
        image["git_hash_commit_timestamp"], "2026-03-01T04:30:00.000000Z",
        "offset honoured"
    );
    assert_eq!(image["built_at"], image["updated_at"]);
    let location = format!("{}/{}", f.images, image["image_id"].as_str().unwrap());
    assert_eq!(response.header("location"), Some(location.as_str()));
    // Every field of the request comes back as sent.
    let sent = cd_request("run-1");
    for field in [
        "tag_name",
        "image_name",
        "image_name_with_tag",
        "status",
        "tags",
        "git_hash",
        "gitops_hash",
        "api_definition_path",
        "committer",
        "commit_msg",
        "run_id",
        "image_ports",
        "cluster_image_tags",
        "api_version_id",
        "channel",
        "update_type",
    ] {
        assert_eq!(image[field], sent[field], "{field}");
    }
    assert_eq!(f.channel_version("default"), "default-0.0.1");
    assert_eq!(f.app.get(&location).bearer(&f.token).send().json(), image);
}

#[test]
fn update_types_move_the_channel_and_none_keeps_it() {
    let f = fixture();
    let mut versions = Vec::new();
    for (run, update_type) in [
        ("r1", "minor"),
        ("r2", "patch"),
        ("r3", "none"),
        ("r4", "major"),
        ("r5", "patch"),
    ] {
        let mut body = cd_request(run);
        body["update_type"] = json!(update_type);
        versions.push(
            f.create(&body).json()["version"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(
        versions,
        [
            "default-0.1.0",
            "default-0.1.1",
            "default-0.1.1",
            "default-1.0.0",
            "default-1.0.1"
        ]
    );
    // Defaults: channel "default", update type "patch", status "active".
    let minimal = json!({"tag_name": "t", "image_name": "i", "image_name_with_tag": "i:t",
        "git_hash": "abcdef1", "run_id": "minimal"});
    let image = f.create(&minimal).json();
    assert_eq!(
        (
            image["channel"].clone(),
            image["update_type"].clone(),
            image["status"].clone()
        ),
        (json!("default"), json!("patch"), json!("active"))
    );
    assert_eq!(image["version"], "default-1.0.2");
    assert_eq!(image["git_hash_commit_timestamp"], Value::Null);
    assert_eq!(image["tags"], json!([]));
    let mut beta = cd_request("beta-run");
    beta["channel"] = json!("beta");
    assert_eq!(f.create(&beta).json()["version"], "beta-0.0.1");
}

#[test]
fn a_bump_past_the_largest_version_is_409_and_records_nothing() {
    let f = fixture();
    let version = format!(
        "/api/v1/registries/{}/channels/default/version",
        f.registry_id
    );
    let largest = i64::MAX;
    f.app
        .put(
            &version,
            &json!({"version": format!("{largest}.0.{largest}")}),
        )
        .bearer(&f.token)
        .send()
        .assert_status(200);
    for update_type in ["major", "patch"] {
        let mut body = cd_request(&format!("too-far-{update_type}"));
        body["update_type"] = json!(update_type);
        f.create(&body).assert_problem(409, Some("update_type"));
    }
    assert_eq!(f.image_count(), 0, "no image for a refused bump");
    assert_eq!(
        f.channel_version("default"),
        format!("default-{largest}.0.{largest}")
    );
    let mut body = cd_request("minor-is-fine");
    body["update_type"] = json!("minor");
    assert_eq!(
        f.create(&body).json()["version"],
        format!("default-{largest}.1.0")
    );
}

#[test]
fn a_retried_cd_request_returns_the_first_image_and_changes_nothing() {
    let f = fixture();
    let first = f.create(&cd_request("run-7"));
    first.assert_status(201);
    let retry = f.create(&cd_request("run-7"));
    retry.assert_status(200);
    assert_eq!(retry.json(), first.json());
    assert_eq!(
        f.channel_version("default"),
        "default-0.0.1",
        "no second bump"
    );
    assert_eq!(f.image_count(), 1);

    let mut different = cd_request("run-7");
    different["git_hash"] = json!("0000000");
    f.create(&different).assert_problem(409, Some("run_id"));
    assert_eq!(f.image_count(), 1);
    // The same run id in another registry is another build.
    let other = f.app.registry(&f.token, "other", false);
    let path = format!(
        "/api/v1/registries/{}/images",
        other["registry_id"].as_str().unwrap()
    );
    f.app
        .post(&path, &cd_request("run-7"))
        .bearer(&f.token)
        .send()
        .assert_status(201);
}

#[test]
fn parallel_builds_on_one_channel_get_distinct_consecutive_versions() {
    const CLIENTS: usize = 16;
    let f = Arc::new(fixture());
    let handles: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let f = Arc::clone(&f);
            std::thread::spawn(move || {
                let response = f.create(&cd_request(&format!("parallel-{i}")));
                response.assert_status(201);
                response.json()["version"].as_str().unwrap().to_owned()
            })
        })
        .collect();
    let mut versions: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    versions.sort_by_key(|v| v.rsplit('.').next().unwrap().parse::<u32>().unwrap());
    let expected: Vec<String> = (1..=CLIENTS).map(|p| format!("default-0.0.{p}")).collect();
    assert_eq!(versions, expected);
    assert_eq!(f.image_count(), CLIENTS as i64);
}

#[test]
fn parallel_retries_of_one_run_record_one_image() {
    let f = Arc::new(fixture());
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let f = Arc::clone(&f);
            std::thread::spawn(move || f.create(&cd_request("same-run")).status)
        })
        .collect();
    let mut statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 200, 201]);
    assert_eq!(f.image_count(), 1);
    assert_eq!(f.channel_version("default"), "default-0.0.1");
}

#[test]
fn a_failure_after_the_bump_leaves_neither_the_bump_nor_the_image() {
    let f = fixture();
    f.create(&cd_request("before")).assert_status(201);
    // Inject a storage failure between the version bump and the image insert: a trigger that
    // aborts inserting this one run.
    f.app
        .sql()
        .execute(
            "CREATE TRIGGER explode BEFORE INSERT ON images WHEN NEW.run_id = 'explode' \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
            &[],
        )
        .unwrap();
    let failed = f.create(&cd_request("explode"));
    let problem = failed.assert_problem(500, None);
    assert!(
        !problem["detail"].as_str().unwrap().contains("injected"),
        "causes are not sent to clients"
    );
    assert!(
        f.app
            .host
            .host()
            .guest_output()
            .contains("injected failure"),
        "but they are logged"
    );
    assert_eq!(
        f.channel_version("default"),
        "default-0.0.1",
        "the bump was rolled back"
    );
    assert_eq!(f.image_count(), 1);
    // No gap: the next build gets the next version.
    assert_eq!(
        f.create(&cd_request("after")).json()["version"],
        "default-0.0.2"
    );
}

#[test]
fn images_are_listed_newest_first_and_filtered_by_channel_status_tag_and_api_version() {
    let f = fixture();
    let mut ids = Vec::new();
    for i in 0..6 {
        let mut body = cd_request(&format!("run-{i}"));
        body["channel"] = json!(if i % 2 == 0 { "default" } else { "beta" });
        body["status"] = json!(if i < 4 { "active" } else { "deprecated" });
        body["tags"] = json!([format!("build-{i}"), "nightly'; --"]);
        body["api_version_id"] = json!(format!("api-{}", i % 3));
        ids.push(
            f.create(&body).json()["image_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let listed = |query: &str| -> Vec<String> {
        let response = f
            .app
            .get(&format!("{}?{query}", f.images))
            .bearer(&f.token)
            .send();
        response.assert_status(200);
        response.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["image_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(listed(""), newest_first);
    assert_eq!(
        listed("channel=beta"),
        [ids[5].clone(), ids[3].clone(), ids[1].clone()]
    );
    assert_eq!(
        listed("status=deprecated"),
        [ids[5].clone(), ids[4].clone()]
    );
    assert_eq!(listed("tag=build-2"), [ids[2].clone()]);
    assert_eq!(listed("tag=nightly%27%3B%20--").len(), 6);
    assert_eq!(
        listed("api_version_id=api-1"),
        [ids[4].clone(), ids[1].clone()]
    );
    assert_eq!(
        listed("channel=default&status=active"),
        [ids[2].clone(), ids[0].clone()]
    );
    assert!(listed("tag=nope").is_empty());

    let first = f
        .app
        .get(&format!("{}?limit=4", f.images))
        .bearer(&f.token)
        .send()
        .json();
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = f
        .app
        .get(&format!("{}?limit=4&cursor={cursor}", f.images))
        .bearer(&f.token)
        .send()
        .json();
    let second: Vec<&str> = second["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["image_id"].as_str().unwrap())
        .collect();
    assert_eq!(second, [ids[1].as_str(), ids[0].as_str()]);

    f.app
        .get(&format!("{}?status=gone", f.images))
        .bearer(&f.token)
        .send()
        .assert_problem(422, Some("status"));
    f.app
        .get(&format!("{}?channel=Beta", f.images))
        .bearer(&f.token)
        .send()
        .assert_problem(422, Some("channel"));
}

#[test]
fn patch_changes_operational_fields_and_refuses_to_rewrite_the_build() {
    let f = fixture();
    let image = f.create(&cd_request("run-1")).json();
    let path = format!("{}/{}", f.images, image["image_id"].as_str().unwrap());
    let changes = json!({
        "status": "inactive",
        "tags": ["rolled-back"],
        "cluster_image_tags": [{"cluster_id": "us-2", "tag": "default-0.0.1"}],
        "image_ports": [{"port": 443, "protocol": "TCP"}],
        "gitops_hash": null
    });
    let patched = f.app.patch(&path, &changes).bearer(&f.token).send();
    patched.assert_status(200);
    let patched = patched.json();
    for field in [
        "status",
        "tags",
        "cluster_image_tags",
        "image_ports",
        "gitops_hash",
    ] {
        assert_eq!(patched[field], changes[field], "{field}");
    }
    assert_eq!(patched["version"], image["version"]);
    assert_eq!(patched["built_at"], image["built_at"]);

    // Sending the whole image back with one change works; rewriting build metadata does not.
    let mut whole = patched.clone();
    whole["status"] = json!("active");
    assert_eq!(
        f.app.patch(&path, &whole).bearer(&f.token).send().json()["status"],
        "active"
    );
    for (field, value) in [
        ("git_hash", json!("0000000")),
        ("git_hash_commit_timestamp", json!("2020-01-01T00:00:00Z")),
        ("run_id", json!("other")),
        ("built_at", json!("2020-01-01T00:00:00.000000Z")),
        ("version", json!("default-9.9.9")),
    ] {
        f.app
            .patch(&path, &json!({ field: value }))
            .bearer(&f.token)
            .send()
            .assert_problem(422, Some(field));
    }
    f.app
        .patch(&path, &json!({"colour": "red"}))
        .bearer(&f.token)
        .send()
        .assert_problem(422, Some("colour"));
    f.app
        .patch(&path, &json!({"status": "gone"}))
        .bearer(&f.token)
        .send()
        .assert_problem(422, Some("status"));
    f.app
        .patch(&path, &json!({"image_ports": [{"port": 0}]}))
        .bearer(&f.token)
        .send()
        .assert_problem(422, Some("image_ports[0].port"));
    let reader = f.app.token("acme", "read");
    f.app
        .patch(&path, &json!({"status": "inactive"}))
        .bearer(&reader)
        .send()
        .assert_problem(403, None);
    assert_eq!(
        f.app.get(&path).bearer(&reader).send().json()["status"],
        "active"
    );
}

#[test]
fn orgs_with_inactive_images_are_listed_for_the_admin_only() {
    let app = TestApp::spawn();
    for (org, status) in [
        ("acme", "inactive"),
        ("globex", "active"),
        ("initech", "failed"),
        ("umbrella", "deprecated"),
    ] {
        let token = app.token(org, "write");
        let registry = app.registry(&token, "app", false);
        let mut body = cd_request("run-1");
        body["status"] = json!(status);
        let path = format!(
            "/api/v1/registries/{}/images",
            registry["registry_id"].as_str().unwrap()
        );
        app.post(&path, &body)
            .bearer(&token)
            .send()
            .assert_status(201);
        app.post(&path, &cd_request("run-2"))
            .bearer(&token)
            .send()
            .assert_status(201);
    }
    let response = app
        .get("/api/v1/images/inactive-orgs")
        .bearer(ADMIN_TOKEN)
        .send();
    response.assert_status(200);
    assert_eq!(
        response.json()["items"],
        json!(["acme", "initech", "umbrella"])
    );
    let page = app
        .get("/api/v1/images/inactive-orgs?limit=2")
        .bearer(ADMIN_TOKEN)
        .send()
        .json();
    assert_eq!(page["items"], json!(["acme", "initech"]));
    let rest = app
        .get(&format!(
            "/api/v1/images/inactive-orgs?cursor={}",
            page["next_cursor"].as_str().unwrap()
        ))
        .bearer(ADMIN_TOKEN)
        .send()
        .json();
    assert_eq!(rest["items"], json!(["umbrella"]));
    // Regression found by schemathesis: a cursor we never handed out is a 400, as on every list.
    app.get("/api/v1/images/inactive-orgs?cursor=-x")
        .bearer(ADMIN_TOKEN)
        .send()
        .assert_problem(400, Some("cursor"));
    let org_admin = app.token("acme", "admin");
    app.get("/api/v1/images/inactive-orgs")
        .bearer(&org_admin)
        .send()
        .assert_problem(403, None);
    app.get("/api/v1/images/inactive-orgs")
        .send()
        .assert_problem(401, None);
}

#[test]
fn tenancy_and_roles_apply_to_images() {
    let f = fixture();
    let image = f.create(&cd_request("run-1")).json();
    let path = format!("{}/{}", f.images, image["image_id"].as_str().unwrap());
    let globex = f.app.token("globex", "admin");
    f.app
        .get(&path)
        .bearer(&globex)
        .send()
        .assert_problem(404, None);
    f.app
        .get(&f.images)
        .bearer(&globex)
        .send()
        .assert_problem(404, None);
    f.app
        .post(&f.images, &cd_request("x"))
        .bearer(&globex)
        .send()
        .assert_problem(404, None);
    f.app
        .patch(&path, &json!({"status": "inactive"}))
        .bearer(&globex)
        .send()
        .assert_problem(404, None);
    f.app
        .post(&f.images, &cd_request("x"))
        .send()
        .assert_problem(401, None);
    let reader = f.app.token("acme", "read");
    f.app
        .post(&f.images, &cd_request("x"))
        .bearer(&reader)
        .send()
        .assert_problem(403, None);
    f.app
        .post(
            "/api/v1/registries/0190a5c4-7a2e-7c1b-8c3d-5e6f7a8b9c0d/images",
            &cd_request("x"),
        )
        .bearer(&f.token)
        .send()
        .assert_problem(404, None);
    f.app
        .get(&format!(
            "{}/0190a5c4-7a2e-7c1b-8c3d-5e6f7a8b9c0d",
            f.images
        ))
        .bearer(&f.token)
        .send()
        .assert_problem(404, None);
    f.app
        .get(&format!("{}/nope", f.images))
        .bearer(&f.token)
        .send()
        .assert_problem(400, Some("image_id"));
    // A public registry's images are readable without a token.
    let public = f.app.registry(&f.token, "open", true);
    let public_images = format!(
        "/api/v1/registries/{}/images",
        public["registry_id"].as_str().unwrap()
    );
    f.app
        .post(&public_images, &cd_request("p"))
        .bearer(&f.token)
        .send()
        .assert_status(201);
    assert_eq!(
        f.app.get(&public_images).send().json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(f.image_count(), 2);
}

#[test]
fn bad_cd_requests_are_422_naming_the_field() {
    let f = fixture();
    let future = (chrono::Utc::now() + chrono::Duration::minutes(30)).to_rfc3339();
    let near_future = (chrono::Utc::now() + chrono::Duration::minutes(2)).to_rfc3339();
    let too_many_tags: Vec<String> = (0..1001).map(|i| format!("t{i}")).collect();
    let cases: Vec<(&str, Value)> = vec![
        ("tag_name", json!("")),
        ("tag_name", json!("has space")),
        ("tag_name", json!(5)),
        ("image_name", json!("")),
        ("image_name_with_tag", json!("x".repeat(513))),
        ("git_hash", json!("not-hex!")),
        ("git_hash", json!("abc")),
        ("git_hash_commit_timestamp", json!("2026-03-01T10:00:00")),
        ("git_hash_commit_timestamp", json!("yesterday")),
        ("git_hash_commit_timestamp", json!(future)),
        ("run_id", json!("")),
        ("run_id", json!(null)),
        ("status", json!("ACTIVE")),
        ("update_type", json!("build")),
        ("channel", json!("Main")),
        ("channel", json!("-x")),
        ("tags", json!("latest")),
        ("tags[1]", json!(["a", "a"])),
        ("tags", json!(too_many_tags)),
        ("image_ports[0].port", json!([{"port": 70000}])),
        (
            "image_ports[0].protocol",
            json!([{"port": 80, "protocol": "http"}]),
        ),
        (
            "image_ports[0].colour",
            json!([{"port": 80, "colour": "red"}]),
        ),
        (
            "cluster_image_tags[0].tag",
            json!([{"cluster_id": "eu-1", "tag": "bad tag"}]),
        ),
        ("cluster_image_tags[0].cluster_id", json!([{"tag": "x"}])),
        ("commit_msg", json!("nul\u{0}byte")),
        ("committer", json!("")),
    ];
    for (field, value) in cases {
        let mut body = cd_request("bad");
        let key = field.split(['[', '.']).next().unwrap();
        body[key] = value;
        let response = f.create(&body);
        response.assert_problem(422, Some(field));
    }
    let mut missing = cd_request("bad");
    missing.as_object_mut().unwrap().remove("git_hash");
    f.create(&missing).assert_problem(422, Some("git_hash"));
    assert_eq!(f.image_count(), 0);
    assert!(
        f.channel_version("default").is_null(),
        "a refused request does not create the channel"
    );

    // Within the clock-skew allowance, and at the list limits, a request is accepted.
    let mut body = cd_request("near-future");
    body["git_hash_commit_timestamp"] = json!(near_future);
    body["tags"] = json!((0..1000).map(|i| format!("t{i}")).collect::<Vec<_>>());
    f.create(&body).assert_status(201);
}

#[test]
fn commit_messages_are_stored_verbatim() {
    let f = fixture();
    let message = "Fix: ünïcødé 日本語 🚀\n\t'; DROP TABLE images; --\r\n\"quoted\" \\ backslash";
    let mut body = cd_request("verbatim");
    body["commit_msg"] = json!(message);
    body["committer"] = json!("Robert'); DROP TABLE image_registries;--");
    let image = f.create(&body).json();
    let path = format!("{}/{}", f.images, image["image_id"].as_str().unwrap());
    let fetched = f.app.get(&path).bearer(&f.token).send().json();
    assert_eq!(fetched["commit_msg"], message);
    assert_eq!(
        fetched["committer"],
        "Robert'); DROP TABLE image_registries;--"
    );
    assert_eq!(f.image_count(), 1);
}
