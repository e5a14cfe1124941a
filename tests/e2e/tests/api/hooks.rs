//! Registry pushes: receivers made per registry, each source's own payload (fixtures in
//! `tests/e2e/fixtures/hooks`, from the vendors' documentation) delivered with the source's
//! own credential, digests attached to the images pipelines recorded, unknown tags recorded
//! or ignored, and every delivery applied exactly once however often and however
//! concurrently it arrives.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::{TestApp, TestResponse};

const DIGEST: &str = "sha256:94b0226cc76c348facdafb26df96f4789959a422e78a43253ee4d10a03fbe801";

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/hooks")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An org with a write token and a registry for `acme/service-api`.
struct Setup {
    app: Arc<TestApp>,
    token: String,
    registry: String,
}

impl Setup {
    fn new() -> Setup {
        let app = TestApp::spawn();
        let token = app.token("acme", "write");
        let registry = app.registry(&token, "acme/service-api", false)["registry_id"]
            .as_str()
            .unwrap()
            .to_owned();
        Setup {
            app: Arc::new(app),
            token,
            registry,
        }
    }

    fn images(&self) -> String {
        format!("/api/v1/registries/{}/images", self.registry)
    }

    /// A pipeline's image tagged `tag`, built by run `run`.
    fn pipeline_image(&self, tag: &str, run: usize) -> Value {
        let response = self
            .app
            .post(
                &self.images(),
                &json!({"tag_name": tag, "image_name": "ghcr.io/acme/service-api",
                        "image_name_with_tag": format!("ghcr.io/acme/service-api:{tag}"),
                        "git_hash": "3f786850e387550fdab836ed7e6dc881de23001b",
                        "run_id": format!("run-{run}")}),
            )
            .bearer(&self.token)
            .send();
        response.assert_status(201);
        response.json()
    }

    fn receiver(&self, body: Value) -> Value {
        let response = self
            .app
            .post(
                &format!("/api/v1/registries/{}/receivers", self.registry),
                &body,
            )
            .bearer(&self.token)
            .send();
        response.assert_status(201);
        response.json()
    }

    fn image(&self, image_id: &str) -> Value {
        let response = self
            .app
            .get(&format!("{}/{image_id}", self.images()))
            .bearer(&self.token)
            .send();
        response.assert_status(200);
        response.json()
    }

    fn image_count(&self) -> usize {
        let response = self
            .app
            .get(&format!("{}?limit=500", self.images()))
            .bearer(&self.token)
            .send();
        response.json()["items"].as_array().unwrap().len()
    }
}

/// The path of a receiver's URL (its host is the test host's).
fn path_of(receiver: &Value) -> String {
    let url = receiver["url"].as_str().unwrap();
    url[url.find("/api/v1/").unwrap()..].to_owned()
}

/// Delivers `body` to `receiver` as its source sends it: with the right credential, or with a
/// wrong one when `secret` is not the receiver's.
fn deliver(app: &TestApp, receiver: &Value, secret: &str, body: &[u8]) -> TestResponse {
    let source = receiver["source"].as_str().unwrap();
    let mut path = path_of(receiver);
    let mut request = match source {
        "dockerhub" | "quay" => {
            let base = path.rsplit_once('/').unwrap().0.to_owned();
            path = format!("{base}/{secret}");
            app.request("POST", &path)
        }
        "harbor" | "acr" => app
            .request("POST", &path)
            .header("authorization", &format!("Bearer {secret}")),
        "ghcr" => {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(body);
            let signature = hex::encode(mac.finalize().into_bytes());
            let event = if body.windows(16).any(|w| w == b"registry_package") {
                "registry_package"
            } else {
                "package"
            };
            app.request("POST", &path)
                .header("x-hub-signature-256", &format!("sha256={signature}"))
                .header("x-github-event", event)
                .header("x-github-delivery", &format!("{:x}", sha2_of(body)))
        }
        "generic" => {
            let id = format!("msg_{:x}", sha2_of(body));
            let now = chrono::Utc::now().timestamp();
            let signature = standardwebhooks::Webhook::new(secret)
                .unwrap()
                .sign(&id, now, body)
                .unwrap();
            app.request("POST", &path)
                .header("webhook-id", &id)
                .header("webhook-timestamp", &now.to_string())
                .header("webhook-signature", &signature)
        }
        other => panic!("no sender for {other}"),
    };
    request = request.raw("application/json", body.to_vec());
    request.send()
}

fn sha2_of(body: &[u8]) -> u128 {
    use sha2::Digest;
    u128::from_be_bytes(Sha256::digest(body)[..16].try_into().unwrap())
}

/// A secret of the right form that is not the receiver's.
fn wrong_secret(receiver: &Value) -> String {
    match receiver["source"].as_str().unwrap() {
        "generic" => "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
        _ => "0".repeat(64),
    }
}

#[test]
fn each_source_attaches_its_digest_and_push_time_to_the_image_a_pipeline_recorded() {
    let setup = Setup::new();
    let cases = [
        ("harbor", "harbor_push_artifact.json", true),
        ("harbor", "harbor_push_artifact_cloudevents.json", true),
        ("ghcr", "ghcr_registry_package_published.json", true),
        ("ghcr", "ghcr_package_published.json", true),
        ("acr", "acr_push.json", true),
        ("acr", "acr_eventgrid_image_pushed.json", true),
        ("dockerhub", "dockerhub_push.json", false),
        ("quay", "quay_repo_push.json", false),
        ("generic", "generic_push.json", true),
    ];
    for (run, (source, file, sends_digest)) in cases.into_iter().enumerate() {
        // A fresh pipeline image per case: the newest image with the tag takes the push.
        let image = setup.pipeline_image("build-1234", run);
        let image_id = image["image_id"].as_str().unwrap();
        assert_eq!(image["digest"], Value::Null);
        let receiver = setup.receiver(json!({"source": source}));
        let secret = receiver["secret"].as_str().unwrap().to_owned();
        let body = fixture(file);

        let refused = deliver(&setup.app, &receiver, &wrong_secret(&receiver), &body);
        refused.assert_problem(401, None);
        assert_eq!(setup.image(image_id)["pushed_at"], Value::Null, "{file}");

        let answer = deliver(&setup.app, &receiver, &secret, &body);
        answer.assert_status(200);
        let answer = answer.json();
        assert_eq!(answer["duplicate"], false, "{file}: {answer}");
        assert_eq!(
            answer["pushes"][0]["outcome"], "attached",
            "{file}: {answer}"
        );
        assert_eq!(answer["pushes"][0]["image_id"], image_id, "{file}");
        let pushed = setup.image(image_id);
        let expected_digest = if sends_digest {
            json!(DIGEST)
        } else {
            Value::Null
        };
        assert_eq!(pushed["digest"], expected_digest, "{file}");
        assert!(pushed["pushed_at"].is_string(), "{file}");
        // The pipeline's fields stay as it sent them.
        assert_eq!(pushed["git_hash"], image["git_hash"]);
        assert_eq!(pushed["version"], image["version"]);
        assert_eq!(pushed["run_id"], image["run_id"]);

        // The registry retries: answered with the first outcome, nothing applied again.
        let again = deliver(&setup.app, &receiver, &secret, &body);
        again.assert_status(200);
        assert_eq!(again.json()["duplicate"], true, "{file}");
        assert_eq!(again.json()["pushes"], answer["pushes"], "{file}");
    }
    // The digest finds its image (the newest with it).
    let found = setup
        .app
        .get(&format!("{}?digest={DIGEST}", setup.images()))
        .bearer(&setup.token)
        .send();
    found.assert_status(200);
    assert!(!found.json()["items"].as_array().unwrap().is_empty());
    assert!(
        found.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["digest"] == DIGEST)
    );
    setup
        .app
        .get(&format!("{}?digest=sha256:nothex", setup.images()))
        .bearer(&setup.token)
        .send()
        .assert_problem(422, Some("digest"));
}

#[test]
fn another_sources_payload_is_422_and_a_bad_body_records_nothing() {
    let setup = Setup::new();
    let image = setup.pipeline_image("build-1234", 1);
    for (source, foreign) in [
        ("harbor", "quay_repo_push.json"),
        ("ghcr", "harbor_push_artifact.json"),
        ("acr", "dockerhub_push.json"),
        ("dockerhub", "acr_push.json"),
        ("quay", "ghcr_package_published.json"),
        ("generic", "harbor_push_artifact.json"),
    ] {
        let receiver = setup.receiver(json!({"source": source}));
        let secret = receiver["secret"].as_str().unwrap().to_owned();
        deliver(&setup.app, &receiver, &secret, &fixture(foreign)).assert_problem(422, None);
        deliver(&setup.app, &receiver, &secret, b"{not json").assert_problem(400, None);
    }
    assert_eq!(
        setup.image(image["image_id"].as_str().unwrap())["digest"],
        Value::Null
    );
    assert_eq!(setup.image_count(), 1);
}

#[test]
fn twenty_concurrent_copies_of_one_delivery_record_one_image() {
    let setup = Arc::new(Setup::new());
    let receiver = Arc::new(setup.receiver(json!({"source": "quay", "channel": "pushes"})));
    let secret = receiver["secret"].as_str().unwrap().to_owned();
    let body = fixture("quay_repo_push.json");
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let (setup, receiver, secret, body) = (
                Arc::clone(&setup),
                Arc::clone(&receiver),
                secret.clone(),
                body.clone(),
            );
            std::thread::spawn(move || {
                let answer = deliver(&setup.app, &receiver, &secret, &body);
                answer.assert_status(200);
                answer.json()
            })
        })
        .collect();
    let answers: Vec<Value> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let firsts = answers.iter().filter(|a| a["duplicate"] == false).count();
    assert_eq!(firsts, 1, "{answers:?}");
    let recorded = &answers[0]["pushes"][0];
    assert_eq!(recorded["outcome"], "recorded");
    assert!(answers.iter().all(|a| a["pushes"][0] == *recorded));
    assert_eq!(setup.image_count(), 1);
    let image = setup.image(recorded["image_id"].as_str().unwrap());
    assert_eq!(image["version"], "pushes-0.0.1");
    assert_eq!(image["tag_name"], "build-1234");
    assert_eq!(
        image["image_name_with_tag"],
        "quay.io/acme/service-api:build-1234"
    );
    assert_eq!(image["git_hash"], Value::Null, "no commit is known");
    assert!(image["run_id"].as_str().unwrap().starts_with("push-"));
}

#[test]
fn unknown_tags_are_recorded_or_ignored_as_the_receiver_says_and_untagged_manifests_never_fail() {
    let setup = Setup::new();
    let ignoring = setup.receiver(json!({"source": "ghcr", "on_unknown_tag": "ignore"}));
    let secret = ignoring["secret"].as_str().unwrap().to_owned();
    let answer = deliver(
        &setup.app,
        &ignoring,
        &secret,
        &fixture("ghcr_registry_package_published.json"),
    );
    answer.assert_status(200);
    assert_eq!(answer.json()["pushes"][0]["outcome"], "ignored");
    assert_eq!(setup.image_count(), 0);

    // A platform manifest of a multi-arch push (GitHub sends an empty tag).
    let untagged = deliver(
        &setup.app,
        &ignoring,
        &secret,
        &fixture("ghcr_untagged.json"),
    );
    untagged.assert_status(200);
    assert_eq!(untagged.json()["pushes"][0]["outcome"], "ignored");

    let recording = setup.receiver(json!({"source": "generic", "update_type": "minor"}));
    let secret = recording["secret"].as_str().unwrap().to_owned();
    let answer = deliver(
        &setup.app,
        &recording,
        &secret,
        &fixture("generic_push.json"),
    );
    answer.assert_status(200);
    let pushed = &answer.json()["pushes"][0];
    assert_eq!(pushed["outcome"], "recorded");
    let image = setup.image(pushed["image_id"].as_str().unwrap());
    assert_eq!(image["version"], "default-0.1.0");
    assert_eq!(image["digest"], DIGEST);
    assert_eq!(image["pushed_at"], "2026-12-01T10:00:00.000000Z");

    // The same digest pushed untagged later attaches to that image.
    let by_digest = json!({"repository": "ghcr.io/acme/service-api", "digest": DIGEST});
    let answer = deliver(
        &setup.app,
        &recording,
        &secret,
        &serde_json::to_vec(&by_digest).unwrap(),
    );
    answer.assert_status(200);
    assert_eq!(answer.json()["pushes"][0]["outcome"], "attached");
    assert_eq!(answer.json()["pushes"][0]["image_id"], pushed["image_id"]);

    // Another repository's push (a project-wide Harbor webhook) is acknowledged, not applied.
    let other = json!({"repository": "ghcr.io/acme/other-api", "tag": "v1"});
    let answer = deliver(
        &setup.app,
        &recording,
        &secret,
        &serde_json::to_vec(&other).unwrap(),
    );
    assert_eq!(answer.json()["pushes"][0]["outcome"], "ignored");
    assert_eq!(setup.image_count(), 1);
}

#[test]
fn event_grid_subscription_validation_is_answered_with_its_code() {
    let setup = Setup::new();
    let receiver = setup.receiver(json!({"source": "acr"}));
    // Event Grid validates before it sends the configured Authorization header.
    let answer = setup
        .app
        .request("POST", &path_of(&receiver))
        .header("aeg-event-type", "SubscriptionValidation")
        .raw(
            "application/json",
            fixture("acr_eventgrid_subscription_validation.json"),
        )
        .send();
    answer.assert_status(200);
    assert_eq!(
        answer.json(),
        json!({"validationResponse": "a56a2071-d440-40e4-adb2-45d6e20cab51"})
    );
    // Without a credential, anything but the handshake is refused.
    setup
        .app
        .request("POST", &path_of(&receiver))
        .raw(
            "application/json",
            fixture("acr_eventgrid_image_pushed.json"),
        )
        .send()
        .assert_problem(401, None);
    assert_eq!(setup.image_count(), 0);
}

#[test]
fn receivers_are_listed_without_secrets_and_a_deleted_one_stops_taking_pushes() {
    let setup = Setup::new();
    let receivers = format!("/api/v1/registries/{}/receivers", setup.registry);
    let made = setup.receiver(json!({"source": "dockerhub", "channel": "hub"}));
    let secret = made["secret"].as_str().unwrap().to_owned();
    assert!(
        made["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/{secret}"))
    );
    assert!(made["url"].as_str().unwrap().starts_with("http://"));
    let listed = setup.app.get(&receivers).bearer(&setup.token).send();
    listed.assert_status(200);
    let item = &listed.json()["items"][0];
    assert_eq!(item["receiver_id"], made["receiver_id"]);
    assert!(item.get("secret").is_none());
    assert!(!listed.text().contains(&secret), "the secret is shown once");
    assert!(item["url"].as_str().unwrap().ends_with("/{secret}"));

    // Bad requests are the client's: 422 naming the field.
    for (body, field) in [
        (json!({"source": "gitlab"}), "source"),
        (
            json!({"source": "quay", "on_unknown_tag": "drop"}),
            "on_unknown_tag",
        ),
        (
            json!({"source": "quay", "update_type": "huge"}),
            "update_type",
        ),
        (json!({}), "source"),
    ] {
        setup
            .app
            .post(&receivers, &body)
            .bearer(&setup.token)
            .send()
            .assert_problem(422, Some(field));
    }
    // A read token may not make one; another org does not see them.
    let reader = setup.app.token("acme", "read");
    setup
        .app
        .post(&receivers, &json!({"source": "quay"}))
        .bearer(&reader)
        .send()
        .assert_problem(403, None);
    let globex = setup.app.token("globex", "admin");
    setup
        .app
        .get(&receivers)
        .bearer(&globex)
        .send()
        .assert_problem(404, None);

    let receiver_path = format!("{receivers}/{}", made["receiver_id"].as_str().unwrap());
    setup
        .app
        .delete(&receiver_path)
        .bearer(&setup.token)
        .send()
        .assert_status(204);
    deliver(&setup.app, &made, &secret, &fixture("dockerhub_push.json")).assert_problem(404, None);
    assert_eq!(setup.image_count(), 0);
}

#[test]
fn without_a_signing_key_receivers_are_off_with_a_503_naming_the_variable() {
    let app = TestApp::spawn_with(&[("webhook_signing_key", "")]);
    let token = app.token("acme", "write");
    let registry = app.registry(&token, "acme/service-api", false);
    let problem = app
        .post(
            &format!(
                "/api/v1/registries/{}/receivers",
                registry["registry_id"].as_str().unwrap()
            ),
            &json!({"source": "harbor"}),
        )
        .bearer(&token)
        .send()
        .assert_problem(503, None);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("webhook_signing_key")
    );
}

#[test]
fn a_deploy_tool_that_knows_only_the_digest_records_the_deployment_of_the_pushed_image() {
    let setup = Setup::new();
    let image = setup.pipeline_image("build-1234", 1);
    let receiver = setup.receiver(json!({"source": "acr"}));
    let secret = receiver["secret"].as_str().unwrap().to_owned();
    deliver(&setup.app, &receiver, &secret, &fixture("acr_push.json")).assert_status(200);

    let deployment = json!({"digest": DIGEST, "registry_id": setup.registry,
                            "app_id": "api", "environment": "production", "prod": true});
    let recorded = setup
        .app
        .post("/api/v1/deployments", &deployment)
        .bearer(&setup.token)
        .send();
    recorded.assert_status(201);
    assert_eq!(recorded.json()["image_id"], image["image_id"]);
    assert_eq!(recorded.json()["git_hash"], image["git_hash"]);

    let unknown = format!("sha256:{}", "0".repeat(64));
    for (body, field) in [
        (
            json!({"digest": unknown, "registry_id": setup.registry, "app_id": "api", "environment": "dev"}),
            "digest",
        ),
        (
            json!({"digest": DIGEST, "app_id": "api", "environment": "dev"}),
            "registry_id",
        ),
        (
            json!({"image_id": image["image_id"], "digest": DIGEST, "registry_id": setup.registry,
                "app_id": "api", "environment": "dev"}),
            "digest",
        ),
        (json!({"app_id": "api", "environment": "dev"}), "image_id"),
    ] {
        setup
            .app
            .post("/api/v1/deployments", &body)
            .bearer(&setup.token)
            .send()
            .assert_problem(422, Some(field));
    }
}

#[test]
fn githubs_two_events_for_one_push_raise_one_image_pushed() {
    let setup = Setup::new();
    let image = setup.pipeline_image("build-1234", 1);
    let subscription = setup
        .app
        .post(
            &format!("/api/v1/registries/{}/subscriptions", setup.registry),
            &json!({"url": "https://flux.example.com/hook", "events": ["image.pushed"]}),
        )
        .bearer(&setup.token)
        .send();
    subscription.assert_status(201);
    let receiver = setup.receiver(json!({"source": "ghcr"}));
    let secret = receiver["secret"].as_str().unwrap().to_owned();
    for file in [
        "ghcr_registry_package_published.json",
        "ghcr_package_published.json",
    ] {
        let answer = deliver(&setup.app, &receiver, &secret, &fixture(file));
        answer.assert_status(200);
        assert_eq!(answer.json()["pushes"][0]["image_id"], image["image_id"]);
    }
    let deliveries = setup
        .app
        .get(&format!(
            "/api/v1/registries/{}/subscriptions/{}/deliveries",
            setup.registry,
            subscription.json()["subscription_id"].as_str().unwrap()
        ))
        .bearer(&setup.token)
        .send();
    deliveries.assert_status(200);
    let items = deliveries.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["type"], "image.pushed");
}

#[test]
fn a_push_that_beats_the_pipelines_call_is_completed_by_it_not_doubled() {
    let setup = Setup::new();
    let receiver = setup.receiver(json!({"source": "harbor"}));
    let secret = receiver["secret"].as_str().unwrap().to_owned();
    let pushed = deliver(
        &setup.app,
        &receiver,
        &secret,
        &fixture("harbor_push_artifact.json"),
    );
    pushed.assert_status(200);
    let pushed_image = pushed.json()["pushes"][0].clone();
    assert_eq!(pushed_image["outcome"], "recorded");

    // CI calls after `docker push`: the image the push recorded becomes the pipeline's.
    let image = setup.pipeline_image("build-1234", 1);
    assert_eq!(image["image_id"], pushed_image["image_id"]);
    assert_eq!(
        image["version"], "default-0.0.1",
        "the version the push was given"
    );
    assert_eq!(
        image["git_hash"],
        "3f786850e387550fdab836ed7e6dc881de23001b"
    );
    assert_eq!(image["run_id"], "run-1");
    assert_eq!(image["digest"], DIGEST);
    assert_eq!(setup.image_count(), 1);

    // A retry of the run is answered with it; a later build of the same tag is a new image.
    let retry = setup
        .app
        .post(
            &setup.images(),
            &json!({"tag_name": "build-1234", "image_name": "ghcr.io/acme/service-api",
                    "image_name_with_tag": "ghcr.io/acme/service-api:build-1234",
                    "git_hash": "3f786850e387550fdab836ed7e6dc881de23001b", "run_id": "run-1"}),
        )
        .bearer(&setup.token)
        .send();
    retry.assert_status(200);
    assert_eq!(retry.json()["image_id"], image["image_id"]);
    let next = setup.pipeline_image("build-1234", 2);
    assert_ne!(next["image_id"], image["image_id"]);
    assert_eq!(next["version"], "default-0.0.2");
    assert_eq!(setup.image_count(), 2);
}

#[test]
fn a_retried_deployment_by_digest_keeps_the_image_it_first_resolved_to() {
    let setup = Setup::new();
    let first = setup.pipeline_image("build-1234", 1);
    let receiver = setup.receiver(json!({"source": "generic"}));
    let secret = receiver["secret"].as_str().unwrap().to_owned();
    let push = |tag: &str| {
        let body = json!({"repository": "ghcr.io/acme/service-api", "tag": tag, "digest": DIGEST});
        deliver(
            &setup.app,
            &receiver,
            &secret,
            &serde_json::to_vec(&body).unwrap(),
        )
        .assert_status(200);
    };
    push("build-1234");
    let deployment = json!({"digest": DIGEST, "registry_id": setup.registry, "app_id": "api",
                            "environment": "production", "deployment_id": "argo-1"});
    let recorded = setup
        .app
        .post("/api/v1/deployments", &deployment)
        .bearer(&setup.token)
        .send();
    recorded.assert_status(201);
    assert_eq!(recorded.json()["image_id"], first["image_id"]);
    // The same manifest re-tagged: a newer image now has the digest.
    let second = setup.pipeline_image("stable", 2);
    push("stable");
    let retried = setup
        .app
        .post("/api/v1/deployments", &deployment)
        .bearer(&setup.token)
        .send();
    retried.assert_status(200);
    assert_eq!(
        retried.json()["lead_time_id"],
        recorded.json()["lead_time_id"]
    );
    assert_eq!(retried.json()["image_id"], first["image_id"]);
    assert_ne!(second["image_id"], first["image_id"]);
}
