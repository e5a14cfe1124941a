//! Deploy triggers through the real handlers and the real outbox: an event is recorded with
//! its cause or not at all, sent once when the subscriber answers 2xx, signed both ways,
//! retried on schedule when it does not, given up after eight attempts, claimed by one
//! instance at a time, and sent again (never lost) when an instance dies between sending and
//! recording the attempt.

use std::cell::{Cell, RefCell};

use hmac::{Hmac, Mac};
use serde_json::{Value as Json, json};
use sha2::Sha256;

use crate::db::{Db, DbError, Rows, Value};
use crate::domain::Timestamp;
use crate::env::{Clock, Config, Env};
use crate::testing::RusqliteDb;
use crate::testing::fixtures::{SequentialIds, WEBHOOK_SIGNING_KEY, serve, serve_json};

const ADMIN: &str = "webhook-admin-token";

/// A clock the test moves.
struct SteppingClock(Cell<i64>);

impl SteppingClock {
    fn advance(&self, seconds: i64) {
        self.0.set(self.0.get() + seconds * 1_000_000);
    }
}

impl Clock for SteppingClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.0.get()).unwrap()
    }

    fn sleep(&self, _: std::time::Duration) {}
}

/// Records what it is asked to send and answers `status` (or fails with `error`).
#[derive(Default)]
struct Subscriber {
    sent: RefCell<Vec<http::Request<Vec<u8>>>>,
    status: Cell<u16>,
    error: RefCell<Option<String>>,
}

impl crate::Outbound for Subscriber {
    fn send(&self, request: &http::Request<Vec<u8>>) -> Result<u16, String> {
        self.sent.borrow_mut().push(request.clone());
        match self.error.borrow().clone() {
            Some(error) => Err(error),
            None => Ok(self.status.get()),
        }
    }
}

/// Fails statements that start with `prefix` while armed.
struct FailingDb {
    inner: RusqliteDb,
    failing: RefCell<Option<&'static str>>,
}

impl Db for FailingDb {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        if self
            .failing
            .borrow()
            .is_some_and(|prefix| sql.starts_with(prefix))
        {
            return Err(DbError::Other("disk I/O error".to_owned()));
        }
        self.inner.execute(sql, params)
    }
}

struct World {
    db: FailingDb,
    ids: SequentialIds,
    clock: SteppingClock,
    token: String,
    registry: String,
}

impl World {
    fn new() -> World {
        let mut world = World {
            db: FailingDb {
                inner: RusqliteDb::open_in_memory(),
                failing: RefCell::new(None),
            },
            ids: SequentialIds::default(),
            // The fixtures' fixed clock's instant: subscriptions made through `serve` are as old.
            clock: SteppingClock(Cell::new(
                Timestamp::parse("t", "2026-06-01T12:00:00Z")
                    .unwrap()
                    .micros(),
            )),
            token: String::new(),
            registry: String::new(),
        };
        let token = world.call(
            crate::handle_registry_request,
            "POST",
            "/api/v1/tokens",
            ADMIN,
            json!({"org_id": "acme", "role": "admin", "name": "ci"}),
        );
        world.token = token["token"].as_str().unwrap().to_owned();
        let registry = world.call(
            crate::handle_registry_request,
            "POST",
            "/api/v1/registries",
            &world.token.clone(),
            json!({"image_repository_name": "acme/service-api", "container_registry_id": "ghcr"}),
        );
        world.registry = registry["registry_id"].as_str().unwrap().to_owned();
        world
    }

    fn send(
        &self,
        handler: crate::testing::fixtures::Handler,
        method: &str,
        path: &str,
        token: &str,
        body: Json,
    ) -> (u16, Json) {
        serve_json(
            &self.db,
            &self.ids,
            ADMIN,
            handler,
            (method, path),
            token,
            &body,
        )
    }

    fn call(
        &self,
        handler: crate::testing::fixtures::Handler,
        method: &str,
        path: &str,
        token: &str,
        body: Json,
    ) -> Json {
        let (status, body) = self.send(handler, method, path, token, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {body}"
        );
        body
    }

    fn subscribe(&self, events: &[&str]) -> Json {
        self.call(
            crate::handle_registry_request,
            "POST",
            &format!("/api/v1/registries/{}/subscriptions", self.registry),
            &self.token,
            json!({"url": "https://flux.example.com/hook/abc", "events": events}),
        )
    }

    fn create_image(&self, run: &str) -> (u16, Json) {
        self.send(
            crate::handle_images_request,
            "POST",
            &format!("/api/v1/registries/{}/images", self.registry),
            &self.token,
            json!({"tag_name": run, "image_name": "ghcr.io/acme/service-api",
                   "image_name_with_tag": format!("ghcr.io/acme/service-api:{run}"),
                   "git_hash": "abcdef1", "run_id": run}),
        )
    }

    /// One after-response step of an instance, with this world's clock.
    fn after_response(&self, subscriber: &Subscriber) {
        let config = Config::from_variables(None, None)
            .with_webhook_signing_key(Some(WEBHOOK_SIGNING_KEY.to_owned()));
        let env = Env {
            db: &self.db,
            clock: &self.clock,
            ids: &self.ids,
            config,
        };
        crate::send_due_deliveries(&env, subscriber);
    }

    fn deliveries(&self, subscription: &Json) -> Json {
        self.call(
            crate::handle_registry_request,
            "GET",
            &format!(
                "/api/v1/registries/{}/subscriptions/{}/deliveries",
                self.registry,
                subscription["subscription_id"].as_str().unwrap()
            ),
            &self.token,
            json!({}),
        )
    }

    fn count(&self, sql: &str) -> i64 {
        match self.db.inner.execute(sql, &[]).unwrap().rows[0][0] {
            Value::Integer(n) => n,
            ref other => panic!("not a count: {other:?}"),
        }
    }
}

#[test]
fn a_new_image_is_delivered_once_signed_per_standard_webhooks_and_for_flux() {
    let world = World::new();
    let subscription = world.subscribe(&["image.created"]);
    let secret = subscription["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let (status, image) = world.create_image("run-1");
    assert_eq!(status, 201);

    let subscriber = Subscriber::default();
    subscriber.status.set(204);
    world.after_response(&subscriber);
    world.after_response(&subscriber);
    let sent = subscriber.sent.borrow();
    assert_eq!(sent.len(), 1, "sent once");
    let request = &sent[0];
    assert_eq!(request.uri(), "https://flux.example.com/hook/abc");
    let body: Json = serde_json::from_slice(request.body()).unwrap();
    assert_eq!(body["type"], "image.created");
    assert_eq!(body["data"]["image_id"], image["image_id"]);
    assert_eq!(body["data"]["version"], "default-0.0.1");
    // Standard Webhooks: the reference library, keyed with the secret as shown, signs the
    // same id, timestamp and body to the same value. (Its `verify` also checks the timestamp
    // against the real clock; this test's clock is fixed in 2026.)
    let webhook = standardwebhooks::Webhook::new(&secret).unwrap();
    let header = |name: &str| request.headers()[name].to_str().unwrap().to_owned();
    assert!(header("webhook-id").starts_with("msg_"));
    let timestamp: i64 = header("webhook-timestamp").parse().unwrap();
    assert_eq!(timestamp, world.clock.now().unix_seconds());
    let expected = webhook
        .sign(&header("webhook-id"), timestamp, request.body())
        .unwrap();
    assert_eq!(header("webhook-signature"), expected);
    // Flux's generic-hmac: HMAC-SHA256 of the body under the secret text.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(request.body());
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(request.headers()["x-signature"], expected.as_str());

    let deliveries = world.deliveries(&subscription);
    let delivery = &deliveries["items"][0];
    assert_eq!(delivery["status"], "delivered");
    assert_eq!(delivery["attempts"][0]["response_status"], 204);
    assert_eq!(delivery["next_attempt_at"], Json::Null);
}

#[test]
fn a_failing_subscriber_is_retried_on_schedule_and_given_up_after_eight_attempts() {
    let world = World::new();
    let subscription = world.subscribe(&["image.created"]);
    world.create_image("run-1");
    let subscriber = Subscriber::default();
    subscriber.status.set(500);
    let waits = [60, 300, 900, 3600, 7200, 21600, 50400];
    world.after_response(&subscriber);
    for (attempt, wait) in waits.iter().enumerate() {
        let delivery = &world.deliveries(&subscription)["items"][0];
        assert_eq!(delivery["status"], "pending");
        let started = Timestamp::parse(
            "t",
            delivery["attempts"][attempt]["started_at"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let next = Timestamp::parse("t", delivery["next_attempt_at"].as_str().unwrap()).unwrap();
        assert_eq!(
            next.micros_since(started),
            wait * 1_000_000,
            "after attempt {}",
            attempt + 1
        );
        // Not due a second early.
        world.clock.advance(wait - 1);
        world.after_response(&subscriber);
        assert_eq!(subscriber.sent.borrow().len(), attempt + 1);
        world.clock.advance(1);
        world.after_response(&subscriber);
        assert_eq!(subscriber.sent.borrow().len(), attempt + 2);
    }
    let delivery = &world.deliveries(&subscription)["items"][0];
    assert_eq!(delivery["status"], "failed");
    assert_eq!(delivery["attempts"].as_array().unwrap().len(), 8);
    assert_eq!(delivery["next_attempt_at"], Json::Null);
    // Every attempt carried the same id and body, so receivers can de-duplicate.
    let sent = subscriber.sent.borrow();
    assert!(
        sent.iter()
            .all(|r| r.headers()["webhook-id"] == sent[0].headers()["webhook-id"])
    );
    assert!(sent.iter().all(|r| r.body() == sent[0].body()));
    drop(sent);

    // A redelivery is due at once.
    subscriber.status.set(200);
    let delivery_id = delivery["delivery_id"].as_str().unwrap();
    world.call(
        crate::handle_registry_request,
        "POST",
        &format!(
            "/api/v1/registries/{}/subscriptions/{}/deliveries/{delivery_id}/redeliver",
            world.registry,
            subscription["subscription_id"].as_str().unwrap()
        ),
        &world.token,
        json!({}),
    );
    world.after_response(&subscriber);
    assert_eq!(
        world.deliveries(&subscription)["items"][0]["status"],
        "delivered"
    );
}

#[test]
fn a_delivery_in_flight_is_not_sent_by_another_instance_and_one_lost_mid_attempt_is_sent_again() {
    let world = World::new();
    world.subscribe(&["image.created"]);
    world.create_image("run-1");
    // An instance that dies after sending, before recording the attempt.
    let subscriber = Subscriber::default();
    subscriber.status.set(200);
    *world.db.failing.borrow_mut() = Some("INSERT INTO delivery_attempts");
    world.after_response(&subscriber);
    *world.db.failing.borrow_mut() = None;
    assert_eq!(subscriber.sent.borrow().len(), 1);
    // Meanwhile, under its lease, no other instance sends it.
    world.clock.advance(59);
    world.after_response(&subscriber);
    assert_eq!(subscriber.sent.borrow().len(), 1);
    // Once the lease is over it is sent again: at least once, never lost.
    world.clock.advance(2);
    world.after_response(&subscriber);
    assert_eq!(subscriber.sent.borrow().len(), 2);
    assert_eq!(
        world.count("SELECT count(*) FROM deliveries WHERE status = 'delivered'"),
        1
    );
}

#[test]
fn an_event_that_cannot_be_recorded_leaves_no_image_and_nothing_is_sent_without_a_subscriber() {
    let world = World::new();
    world.subscribe(&["image.created"]);
    *world.db.failing.borrow_mut() = Some("INSERT INTO images");
    let (status, _) = world.create_image("run-1");
    assert_eq!(status, 500);
    *world.db.failing.borrow_mut() = None;
    assert_eq!(world.count("SELECT count(*) FROM images"), 0);
    assert_eq!(world.count("SELECT count(*) FROM deliveries"), 0);
    // The outbox row is written by the image's own statement (a trigger): a failure of the
    // outbox fails the image with it.
    world
        .db
        .inner
        .execute(
            "CREATE TRIGGER fail_outbox BEFORE INSERT ON deliveries \
             BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END",
            &[],
        )
        .unwrap();
    let (status, _) = world.create_image("run-2");
    assert_eq!(status, 500);
    assert_eq!(world.count("SELECT count(*) FROM images"), 0);
    world
        .db
        .inner
        .execute("DROP TRIGGER fail_outbox", &[])
        .unwrap();

    // Events no subscription asked for are not recorded.
    world.subscribe(&["deployment.recorded"]);
    let (status, _) = world.create_image("run-3");
    assert_eq!(status, 201);
    assert_eq!(
        world.count("SELECT count(*) FROM deliveries"),
        1,
        "image.created only"
    );
}

#[test]
fn subscription_urls_outside_the_rule_or_not_https_are_refused_when_made() {
    let world = World::new();
    let path = format!("/api/v1/registries/{}/subscriptions", world.registry);
    for (body, field) in [
        (
            json!({"url": "http://flux.example.com/hook", "events": ["image.created"]}),
            "url",
        ),
        (
            json!({"url": "not a url", "events": ["image.created"]}),
            "url",
        ),
        (
            json!({"url": "https://flux.example.com/", "events": []}),
            "events",
        ),
        (
            json!({"url": "https://flux.example.com/", "events": ["image.deleted"]}),
            "events[0]",
        ),
        (
            json!({"url": "https://flux.example.com/", "events": ["image.created", "image.created"]}),
            "events",
        ),
        (
            json!({"url": "https://flux.example.com/", "events": ["image.created"], "channel": "Bad Channel"}),
            "channel",
        ),
    ] {
        let (status, problem) = world.send(
            crate::handle_registry_request,
            "POST",
            &path,
            &world.token,
            body,
        );
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["field"], field, "{problem}");
    }
}

#[test]
fn a_push_a_receiver_attaches_is_an_image_pushed_event_and_a_repeat_of_it_is_not() {
    let world = World::new();
    let subscription = world.subscribe(&["image.pushed"]);
    let (_, image) = world.create_image("build-7");
    let receiver = world.call(
        crate::handle_registry_request,
        "POST",
        &format!("/api/v1/registries/{}/receivers", world.registry),
        &world.token,
        json!({"source": "quay"}),
    );
    let url = receiver["url"].as_str().unwrap();
    let path = &url[url.find("/api/").unwrap()..];
    let push = json!({"repository": "acme/service-api", "namespace": "acme", "name": "service-api",
                      "docker_url": "quay.io/acme/service-api", "updated_tags": ["build-7"]});
    for _ in 0..2 {
        let answer = world.call(crate::handle_images_request, "POST", path, "", push.clone());
        assert_eq!(answer["pushes"][0]["image_id"], image["image_id"]);
    }
    let subscriber = Subscriber::default();
    subscriber.status.set(200);
    world.after_response(&subscriber);
    let sent = subscriber.sent.borrow();
    assert_eq!(sent.len(), 1, "the repeat of the delivery changed nothing");
    let body: Json = serde_json::from_slice(sent[0].body()).unwrap();
    assert_eq!(body["type"], "image.pushed");
    assert_eq!(body["data"]["image_id"], image["image_id"]);
    assert!(body["data"]["pushed_at"].is_string());
    assert_eq!(
        world.deliveries(&subscription)["items"][0]["type"],
        "image.pushed"
    );
}

#[test]
fn a_paused_subscription_keeps_its_deliveries_until_it_is_active_again() {
    let world = World::new();
    let subscription = world.subscribe(&["image.created"]);
    world.create_image("run-1");
    let path = format!(
        "/api/v1/registries/{}/subscriptions/{}",
        world.registry,
        subscription["subscription_id"].as_str().unwrap()
    );
    let patch = |active: bool| {
        world.call(
            crate::handle_registry_request,
            "PATCH",
            &path,
            &world.token,
            json!({"active": active}),
        )
    };
    patch(false);
    let subscriber = Subscriber::default();
    subscriber.status.set(200);
    world.after_response(&subscriber);
    assert!(subscriber.sent.borrow().is_empty());
    assert_eq!(
        world.deliveries(&subscription)["items"][0]["status"],
        "pending"
    );
    patch(true);
    world.after_response(&subscriber);
    assert_eq!(subscriber.sent.borrow().len(), 1);
}

#[test]
fn only_requests_that_may_find_a_delivery_due_look_for_one_after_responding() {
    let world = World::new();
    let after = |method: &str, path: &str, body: Json| {
        let response = serve(
            &world.db,
            &world.ids,
            ADMIN,
            if path.contains("/images") {
                crate::handle_images_request
            } else {
                crate::handle_registry_request
            },
            (method, path),
            &world.token,
            &body,
        );
        crate::AfterResponse::of(&response).deliveries
    };
    let images = format!("/api/v1/registries/{}/images", world.registry);
    let image = |run: &str| {
        json!({"tag_name": run, "image_name": "i", "image_name_with_tag": format!("i:{run}"),
               "git_hash": "abcdef1", "run_id": run})
    };
    // No subscription anywhere: neither a write nor a read reads the outbox.
    assert!(!after("POST", &images, image("run-1")));
    assert!(!after("GET", &images, json!({})));
    world.subscribe(&["deployment.recorded"]);
    // A write may now queue a delivery; a read finds none pending.
    assert!(after("POST", &images, image("run-2")));
    assert!(!after("GET", &images, json!({})));
    world.subscribe(&["image.created"]);
    world.create_image("run-3");
    // A delivery waits: every request looks until it is sent.
    assert!(after("GET", &images, json!({})));
    let subscriber = Subscriber::default();
    subscriber.status.set(200);
    world.after_response(&subscriber);
    assert!(!after("GET", &images, json!({})));
}
