//! Deploy triggers end to end: subscribers on loopback (real HTTP servers) receive what the
//! built components send after their responses, signed per Standard Webhooks and with Flux's
//! `X-Signature`; subscribers that fail, hang or refuse are recorded and scheduled again, and
//! a URL the deployment's outbound rule does not allow is refused when the subscription is
//! made.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::TestApp;

/// What a subscriber does with a delivery.
#[derive(Clone, Copy)]
enum Behaviour {
    Answer(u16),
    /// Answers only after this long (past the 5 s bound of an attempt).
    Hang(Duration),
}

/// A subscriber on loopback: a hyper server that keeps every request it receives.
struct Subscriber {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<http::Request<Bytes>>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Subscriber {
    fn start(behaviour: Behaviour) -> Subscriber {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&received);
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let kept = Arc::clone(&kept);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: http::Request<hyper::body::Incoming>| {
                            let kept = Arc::clone(&kept);
                            async move {
                                let (parts, body) = request.into_parts();
                                let body = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                kept.lock()
                                    .unwrap()
                                    .push(http::Request::from_parts(parts, body));
                                let status = match behaviour {
                                    Behaviour::Answer(status) => status,
                                    Behaviour::Hang(duration) => {
                                        tokio::time::sleep(duration).await;
                                        200
                                    }
                                };
                                Ok::<_, std::convert::Infallible>(
                                    http::Response::builder()
                                        .status(status)
                                        .body(Full::new(Bytes::new()))
                                        .unwrap(),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Subscriber {
            addr,
            received,
            _runtime: runtime,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hooks/cd-images", self.addr)
    }

    fn received(&self) -> Vec<http::Request<Bytes>> {
        self.received.lock().unwrap().clone()
    }
}

/// A loopback address where nothing listens (a port bound, then let go).
fn refusing_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/hook")
}

struct Setup {
    app: TestApp,
    token: String,
    registry: String,
}

impl Setup {
    /// The app with deliveries allowed to loopback, as a developer would run it.
    fn new() -> Setup {
        let app = TestApp::spawn_with(&[("webhook_allowed_hosts", "http://127.0.0.1:*")]);
        let token = app.token("acme", "write");
        let registry = app.registry(&token, "acme/service-api", false)["registry_id"]
            .as_str()
            .unwrap()
            .to_owned();
        Setup {
            app,
            token,
            registry,
        }
    }

    fn subscriptions(&self) -> String {
        format!("/api/v1/registries/{}/subscriptions", self.registry)
    }

    fn subscribe(&self, url: &str) -> Value {
        let response = self
            .app
            .post(
                &self.subscriptions(),
                &json!({"url": url, "events": ["image.created", "deployment.recorded"]}),
            )
            .bearer(&self.token)
            .send();
        response.assert_status(201);
        response.json()
    }

    fn create_image(&self, run: &str) -> Value {
        let response = self
            .app
            .post(
                &format!("/api/v1/registries/{}/images", self.registry),
                &json!({"tag_name": run, "image_name": "ghcr.io/acme/service-api",
                        "image_name_with_tag": format!("ghcr.io/acme/service-api:{run}"),
                        "git_hash": "3f786850e387550fdab836ed7e6dc881de23001b",
                        "git_hash_commit_timestamp": "2026-12-01T09:00:00Z", "run_id": run}),
            )
            .bearer(&self.token)
            .send();
        response.assert_status(201);
        response.json()
    }

    fn deliveries(&self, subscription: &Value) -> Vec<Value> {
        let response = self
            .app
            .get(&format!(
                "{}/{}/deliveries",
                self.subscriptions(),
                subscription["subscription_id"].as_str().unwrap()
            ))
            .bearer(&self.token)
            .send();
        response.assert_status(200);
        response.json()["items"].as_array().unwrap().clone()
    }

    /// Polls the subscription's deliveries until `done` holds (deliveries are sent after
    /// responses, by whichever request comes next).
    fn wait_for(&self, subscription: &Value, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let deliveries = self.deliveries(subscription);
            if done(&deliveries) {
                return deliveries;
            }
            assert!(
                Instant::now() < deadline,
                "deliveries never settled: {deliveries:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn header(request: &http::Request<Bytes>, name: &str) -> String {
    request.headers()[name].to_str().unwrap().to_owned()
}

#[test]
fn a_new_image_and_its_deployment_reach_a_subscriber_signed_for_standard_webhooks_and_flux() {
    let setup = Setup::new();
    let subscriber = Subscriber::start(Behaviour::Answer(200));
    let subscription = setup.subscribe(&subscriber.url());
    let secret = subscription["secret"].as_str().unwrap().to_owned();
    let image = setup.create_image("run-1");
    let deployed = setup
        .app
        .post(
            "/api/v1/deployments",
            &json!({"image_id": image["image_id"], "app_id": "api", "environment": "production", "prod": true}),
        )
        .bearer(&setup.token)
        .send();
    deployed.assert_status(201);

    let deliveries = setup.wait_for(&subscription, |d| {
        d.len() == 2 && d.iter().all(|d| d["status"] == "delivered")
    });
    assert_eq!(deliveries[0]["type"], "deployment.recorded");
    assert_eq!(deliveries[1]["type"], "image.created");
    assert_eq!(deliveries[1]["attempts"][0]["response_status"], 200);
    let received = subscriber.received();
    assert_eq!(received.len(), 2, "each event sent once");
    let webhook = standardwebhooks::Webhook::new(&secret).unwrap();
    for request in &received {
        assert_eq!(request.method(), "POST");
        assert_eq!(request.uri().path(), "/hooks/cd-images");
        assert_eq!(header(request, "content-type"), "application/json");
        webhook
            .verify(request.body(), request.headers())
            .expect("a Standard Webhooks signature the reference library accepts");
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(request.body());
        assert_eq!(
            header(request, "x-signature"),
            format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
            "Flux's generic-hmac Receiver checks this"
        );
    }
    let bodies: Vec<Value> = received
        .iter()
        .map(|r| serde_json::from_slice(r.body()).unwrap())
        .collect();
    let created = bodies
        .iter()
        .find(|b| b["type"] == "image.created")
        .unwrap();
    assert_eq!(created["data"]["image_id"], image["image_id"]);
    assert_eq!(created["data"]["version"], "default-0.0.1");
    let recorded = bodies
        .iter()
        .find(|b| b["type"] == "deployment.recorded")
        .unwrap();
    assert_eq!(
        recorded["data"]["lead_time_id"],
        deployed.json()["lead_time_id"]
    );
}

#[test]
fn failing_hanging_and_refusing_subscribers_are_recorded_and_scheduled_again() {
    let setup = Setup::new();
    let failing = Subscriber::start(Behaviour::Answer(500));
    let hanging = Subscriber::start(Behaviour::Hang(Duration::from_secs(30)));
    let subscriptions = [
        setup.subscribe(&failing.url()),
        setup.subscribe(&hanging.url()),
        setup.subscribe(&refusing_url()),
    ];
    setup.create_image("run-1");
    let settled = |subscription: &Value| {
        setup.wait_for(subscription, |d| {
            d.len() == 1 && d[0]["attempts"].as_array().is_some_and(|a| a.len() == 1)
        })[0]
            .clone()
    };
    let next_after = |delivery: &Value| {
        let started = chrono::DateTime::parse_from_rfc3339(
            delivery["attempts"][0]["started_at"].as_str().unwrap(),
        )
        .unwrap();
        let next =
            chrono::DateTime::parse_from_rfc3339(delivery["next_attempt_at"].as_str().unwrap())
                .unwrap();
        (next - started).num_seconds()
    };

    let failed = settled(&subscriptions[0]);
    assert_eq!(failed["status"], "pending");
    assert_eq!(failed["attempts"][0]["response_status"], 500);
    assert_eq!(next_after(&failed), 60, "the second attempt a minute later");

    let hung = settled(&subscriptions[1]);
    assert_eq!(hung["status"], "pending");
    assert_eq!(hung["attempts"][0]["response_status"], Value::Null);
    assert!(
        hung["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("Timeout"),
        "{hung}"
    );
    let waited = hung["attempts"][0]["duration_ms"].as_f64().unwrap();
    assert!(
        (4_000.0..15_000.0).contains(&waited),
        "bounded by 5 s: {waited} ms"
    );
    assert_eq!(hanging.received().len(), 1);

    let refused = settled(&subscriptions[2]);
    assert_eq!(refused["status"], "pending");
    assert!(
        refused["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("Connection"),
        "{refused}"
    );
    assert_eq!(next_after(&refused), 60);
    // The component log says what happened to each, naming the subscriber's origin (its
    // path may be a secret, as a Flux Receiver's is).
    let log = setup.app.host.host().guest_output();
    for subscriber in [&failing, &hanging] {
        let origin = format!("to http://{} (subscription", subscriber.addr);
        assert!(
            log.lines()
                .any(|line| line.contains(&origin) && line.contains("attempt 1/8")),
            "{log}"
        );
    }
    assert!(log.contains("answered 500; next attempt at"), "{log}");
    assert!(!log.contains("/hooks/cd-images"), "{log}");

    // Redelivered at once on request: the subscriber has recovered.
    let delivery_id = failed["delivery_id"].as_str().unwrap();
    let again = setup
        .app
        .post(
            &format!(
                "{}/{}/deliveries/{delivery_id}/redeliver",
                setup.subscriptions(),
                subscriptions[0]["subscription_id"].as_str().unwrap()
            ),
            &json!({}),
        )
        .bearer(&setup.token)
        .send();
    again.assert_status(202);
    setup.wait_for(&subscriptions[0], |d| {
        d[0]["attempts"].as_array().is_some_and(|a| a.len() == 2)
    });
    assert_eq!(failing.received().len(), 2);
    assert_eq!(
        header(&failing.received()[0], "webhook-id"),
        header(&failing.received()[1], "webhook-id"),
        "one id for every attempt, so receivers de-duplicate"
    );
}

#[test]
fn subscriptions_outside_the_outbound_rule_are_refused_and_secrets_are_shown_once() {
    let setup = Setup::new();
    for url in [
        "https://flux.example.com/hook",
        "http://10.0.0.1:8080/hook",
        "ftp://127.0.0.1/hook",
    ] {
        setup
            .app
            .post(
                &setup.subscriptions(),
                &json!({"url": url, "events": ["image.created"]}),
            )
            .bearer(&setup.token)
            .send()
            .assert_problem(422, Some("url"));
    }
    let made = setup.subscribe("http://127.0.0.1:9/hook");
    let listed = setup
        .app
        .get(&setup.subscriptions())
        .bearer(&setup.token)
        .send();
    listed.assert_status(200);
    assert_eq!(
        listed.json()["items"][0]["subscription_id"],
        made["subscription_id"]
    );
    assert!(!listed.text().contains(made["secret"].as_str().unwrap()));
    let path = format!(
        "{}/{}",
        setup.subscriptions(),
        made["subscription_id"].as_str().unwrap()
    );
    let paused = setup
        .app
        .patch(&path, &json!({"active": false, "channel": "release"}))
        .bearer(&setup.token)
        .send();
    paused.assert_status(200);
    assert_eq!(paused.json()["active"], false);
    assert_eq!(paused.json()["channel"], "release");
    setup.create_image("run-1");
    assert!(
        setup.deliveries(&made).is_empty(),
        "an inactive subscription hears nothing"
    );
    setup
        .app
        .delete(&path)
        .bearer(&setup.token)
        .send()
        .assert_status(204);
    setup
        .app
        .get(&path)
        .bearer(&setup.token)
        .send()
        .assert_problem(404, None);
}
