//! Migration 0007 changes how every row is stored and nothing a client sees.
//!
//! A database is filled through the real handlers — two orgs, public and private registries,
//! channels moved every way, images with and without their optional fields, a PATCHed image,
//! a revoked token, deployments with and without ids and projects — and a recorded set of
//! requests is answered. Then the database is taken back to schema 6 (the text encoding, as
//! the previous build wrote it) and migrated with its copy left pending, as a large database
//! is: the same requests, replayed while batches of three rows are copied between them, must
//! answer byte for byte what they answered before. Pipelines must keep writing meanwhile:
//! retries of runs and deployments recorded before the upgrade are found, not doubled.
//!
//! The same world reviews the indexes: every statement the requests run is explained, every
//! index must be used by some plan (or be named here as a uniqueness rule only), and no plan
//! may scan a large table.

use crate::db::Db;
use crate::testing::RusqliteDb;
use crate::testing::fixtures::{Handler, SequentialIds, serve};

const ADMIN: &str = "reencode-admin-token";

struct World {
    db: RusqliteDb,
    ids: SequentialIds,
    /// acme's admin token, globex's read token, and acme's two registries (private, public).
    acme: String,
    globex: String,
    private: String,
    public: String,
    /// The id of acme's live admin token.
    token_id: String,
    /// Ids of acme's recorded images and deployments, in order.
    images: Vec<String>,
    deployments: Vec<String>,
}

fn registry_handler() -> Handler {
    crate::handle_registry_request
}

fn images_handler() -> Handler {
    crate::handle_images_request
}

fn lead_time_handler() -> Handler {
    crate::handle_lead_time_request
}

impl World {
    fn send(
        &self,
        handler: Handler,
        method: &str,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> (u16, Vec<u8>) {
        self.send_on(&self.db, handler, method, path, token, body)
    }

    fn send_on(
        &self,
        db: &dyn Db,
        handler: Handler,
        method: &str,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> (u16, Vec<u8>) {
        let response = serve(db, &self.ids, ADMIN, handler, (method, path), token, &body);
        (response.status().as_u16(), response.body().clone())
    }

    /// Delivers `body` to a `generic` receiver (as its creation answered it), signed per
    /// Standard Webhooks with the receiver's secret.
    fn send_signed_push(
        &self,
        db: &dyn Db,
        receiver: &serde_json::Value,
        body: &serde_json::Value,
    ) -> (u16, Vec<u8>) {
        let payload = serde_json::to_vec(body).unwrap();
        let webhook = standardwebhooks::Webhook::new(receiver["secret"].as_str().unwrap()).unwrap();
        let now = chrono::Utc::now().timestamp();
        let delivery = format!("delivery-{}", body["tag"]);
        let signature = webhook.sign(&delivery, now, &payload).unwrap();
        let url = receiver["url"].as_str().unwrap();
        let request = http::Request::builder()
            .method("POST")
            .uri(&url[url.find("/api/").unwrap()..])
            .header("content-type", "application/json")
            .header("webhook-id", delivery)
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", signature)
            .body(payload)
            .unwrap();
        let response = crate::testing::fixtures::serve_request(
            db,
            &self.ids,
            ADMIN,
            images_handler(),
            &request,
        );
        (response.status().as_u16(), response.body().clone())
    }

    fn call(
        &self,
        handler: Handler,
        method: &str,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let (status, body) = self.send(handler, method, path, token, body);
        let body: serde_json::Value = if body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&body).unwrap()
        };
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {body}"
        );
        body
    }

    fn token(&self, org: &str, role: &str) -> String {
        self.call(
            registry_handler(),
            "POST",
            "/api/v1/tokens",
            ADMIN,
            serde_json::json!({"org_id": org, "role": role, "name": format!("{org} {role}")}),
        )["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn image_body(n: usize) -> serde_json::Value {
        let mut image = serde_json::json!({"tag_name": format!("t{n}"), "image_name": "ghcr.io/acme/app",
            "image_name_with_tag": format!("ghcr.io/acme/app:t{n}"), "git_hash": format!("{n:040x}"),
            "run_id": format!("run-{n}"), "tags": ["latest", format!("build-{n}")]});
        if !n.is_multiple_of(4) {
            image["git_hash_commit_timestamp"] = format!(
                "2026-05-{:02}T0{}:30:00.{:06}Z",
                1 + n % 20,
                n % 9,
                n * 7919 % 1_000_000
            )
            .into();
        }
        if n.is_multiple_of(3) {
            image["channel"] = "beta".into();
            image["update_type"] = (["minor", "major", "none"][n % 9 / 3]).into();
        }
        if n.is_multiple_of(5) {
            image["api_version_id"] = "v2".into();
            image["committer"] = "Dev <dev@example.com>".into();
            image["commit_msg"] = "fix: the thing ✓".into();
            image["gitops_hash"] = "0123abcd".into();
            image["image_ports"] =
                serde_json::json!([{"port": 8080, "protocol": "tcp", "name": "http"}]);
        }
        image
    }

    fn fill() -> World {
        let mut world = World {
            db: RusqliteDb::open_in_memory(),
            ids: SequentialIds::default(),
            acme: String::new(),
            globex: String::new(),
            private: String::new(),
            public: String::new(),
            token_id: String::new(),
            images: Vec::new(),
            deployments: Vec::new(),
        };
        world.acme = world.token("acme", "admin");
        world.globex = world.token("globex", "read");
        let revoked = world.token("acme", "read");
        let revoked_id = world.call(
            registry_handler(),
            "GET",
            "/api/v1/tokens",
            &world.acme,
            serde_json::json!({}),
        )["items"][0]["token_id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(!revoked.is_empty());
        world.call(
            registry_handler(),
            "DELETE",
            &format!("/api/v1/tokens/{revoked_id}"),
            &world.acme,
            serde_json::json!({}),
        );
        world.token_id = world.call(
            registry_handler(),
            "GET",
            "/api/v1/tokens",
            &world.acme,
            serde_json::json!({}),
        )["items"][0]["token_id"]
            .as_str()
            .unwrap()
            .to_owned();
        for (name, public) in [("app", false), ("lib", true)] {
            let id = world.call(
                registry_handler(),
                "POST",
                "/api/v1/registries",
                &world.acme,
                serde_json::json!({"image_repository_name": name, "container_registry_id": "ghcr",
                    "public": public, "token_vault_id": if public { None } else { Some("vault-1") }}),
            )["registry_id"]
                .as_str()
                .unwrap()
                .to_owned();
            if public {
                world.public = id;
            } else {
                world.private = id;
            }
        }
        let gone = world.call(
            registry_handler(),
            "POST",
            "/api/v1/registries",
            &world.acme,
            serde_json::json!({"image_repository_name": "gone", "container_registry_id": "ghcr"}),
        )["registry_id"]
            .as_str()
            .unwrap()
            .to_owned();
        world.call(
            registry_handler(),
            "DELETE",
            &format!("/api/v1/registries/{gone}"),
            &world.acme,
            serde_json::json!({}),
        );
        world.call(
            registry_handler(),
            "PUT",
            &format!(
                "/api/v1/registries/{}/channels/stable/version",
                world.public
            ),
            &world.acme,
            serde_json::json!({"version": "3.1.4"}),
        );
        for n in 0..24 {
            let registry = if n % 6 == 5 {
                &world.public
            } else {
                &world.private
            };
            let id = world.call(
                images_handler(),
                "POST",
                &format!("/api/v1/registries/{registry}/images"),
                &world.acme,
                Self::image_body(n),
            )["image_id"]
                .as_str()
                .unwrap()
                .to_owned();
            world.images.push(id);
        }
        world.call(
            images_handler(),
            "PATCH",
            &format!(
                "/api/v1/registries/{}/images/{}",
                world.private, world.images[1]
            ),
            &world.acme,
            serde_json::json!({"status": "inactive", "tags": ["old"]}),
        );
        for n in 0..18 {
            let mut deployment = serde_json::json!({"image_id": world.images[n],
                "app_id": format!("app-{}", n % 2), "environment": (["dev", "production"][n % 2]),
                "prod": n % 2 == 1, "deployed_at": format!("2026-05-{:02}T12:00:00.{:06}Z", 2 + n % 20, n * 31)});
            if n % 4 != 3 {
                deployment["project_id"] = "project-1".into();
            }
            if n % 3 != 2 {
                deployment["deployment_id"] = format!("deploy-{n}").into();
            }
            let id = world.call(
                lead_time_handler(),
                "POST",
                "/api/v1/deployments",
                &world.acme,
                deployment,
            )["lead_time_id"]
                .as_str()
                .unwrap()
                .to_owned();
            world.deployments.push(id);
        }
        world
    }

    /// The recorded requests: every read route, by key first (they copy rows themselves
    /// while the copy is pending), then the ones that read whole tables.
    fn requests(&self) -> Vec<(Handler, String, String)> {
        let (acme, globex) = (&self.acme, &self.globex);
        let (private, public) = (&self.private, &self.public);
        let mut requests: Vec<(Handler, String, String)> = Vec::new();
        for (n, image) in self.images.iter().enumerate() {
            let registry = if n % 6 == 5 { public } else { private };
            requests.push((
                images_handler(),
                format!("/api/v1/registries/{registry}/images/{image}"),
                acme.clone(),
            ));
        }
        requests.push((
            images_handler(),
            format!("/api/v1/registries/{public}/images/{}", self.images[5]),
            globex.clone(),
        ));
        for deployment in &self.deployments {
            requests.push((
                lead_time_handler(),
                format!("/api/v1/deployments/{deployment}"),
                acme.clone(),
            ));
        }
        let whole = [
            (registry_handler(), "/api/v1/tokens".to_owned(), acme),
            (registry_handler(), format!("/api/v1/tokens/{}", self.token_id), acme),
            (registry_handler(), "/api/v1/registries".to_owned(), acme),
            (registry_handler(), format!("/api/v1/registries/{private}"), acme),
            (registry_handler(), format!("/api/v1/registries/{public}"), globex),
            (registry_handler(), format!("/api/v1/registries/{private}/channels"), acme),
            (registry_handler(), format!("/api/v1/registries/{public}/channels/stable"), globex),
            (registry_handler(), format!("/api/v1/registries/{private}/channels/beta"), acme),
            (images_handler(), format!("/api/v1/registries/{private}/images"), acme),
            (images_handler(), format!("/api/v1/registries/{private}/images?limit=5"), acme),
            (images_handler(), format!("/api/v1/registries/{private}/images?limit=5&cursor={}", self.images[12]), acme),
            (images_handler(), format!("/api/v1/registries/{private}/images?channel=beta"), acme),
            (images_handler(), format!("/api/v1/registries/{private}/images?status=inactive"), acme),
            (images_handler(), format!("/api/v1/registries/{private}/images?tag=build-7"), acme),
            (images_handler(), format!("/api/v1/registries/{private}/images?api_version_id=v2"), acme),
            (images_handler(), format!("/api/v1/registries/{public}/images"), globex),
            (images_handler(), "/api/v1/images/inactive-orgs".to_owned(), &ADMIN.to_owned()),
            (lead_time_handler(), "/api/v1/dora/lead-time?start=2026-05-01T00:00:00Z&end=2026-05-31T00:00:00Z&interval=day&unit=deployment".to_owned(), acme),
            (lead_time_handler(), "/api/v1/dora/lead-time?start=2026-05-01T00:00:00Z&end=2026-05-31T00:00:00Z&limit=4&project_id=project-1&unit=deployment".to_owned(), acme),
            (lead_time_handler(), "/api/v1/dora/lead-time?start=2026-05-03T06:00:00Z&end=2026-05-20T00:00:00Z&environment=production&prod=true&unit=deployment".to_owned(), acme),
            (lead_time_handler(), "/api/v1/dora/deployment-frequency?start=2026-05-01T00:00:00Z&end=2026-05-31T00:00:00Z&interval=week".to_owned(), acme),
            (lead_time_handler(), "/api/v1/dora/deployment-frequency?start=2026-05-01T00:00:00Z&end=2026-05-31T00:00:00Z&app_id=app-1".to_owned(), acme),
        ];
        requests.extend(
            whole
                .into_iter()
                .map(|(h, path, token)| (h, path, token.clone())),
        );
        requests
    }

    /// Every recorded request's status and body, one step of pending back-fills (batches of
    /// three rows) after each.
    fn answers(&self) -> Vec<(String, u16, String)> {
        self.requests()
            .into_iter()
            .map(|(handler, path, token)| {
                let (status, body) =
                    self.send(handler, "GET", &path, &token, serde_json::json!({}));
                crate::testing::backfill_step(&self.db, 3, 5).unwrap();
                (path, status, String::from_utf8(body).unwrap())
            })
            .collect()
    }

    /// Back to schema 6, then migrated with the copy of images and records left pending.
    fn upgrade_leaving_the_copy_pending(&self) {
        crate::testing::take_back_to_schema_6(&self.db).unwrap();
        assert_eq!(crate::testing::ensure_schema_copying(&self.db).unwrap(), 6);
        assert!(self.copying());
    }

    fn copying(&self) -> bool {
        let rows = self
            .db
            .execute(
                "SELECT count(*) FROM backfills WHERE derived IN ('images', 'image_lead_times')",
                &[],
            )
            .unwrap();
        rows.first().unwrap().integer(0).unwrap() > 0
    }

    fn count(&self, sql: &str) -> i64 {
        self.db
            .execute(sql, &[])
            .unwrap()
            .first()
            .unwrap()
            .integer(0)
            .unwrap()
    }

    fn finish(&self) {
        while crate::testing::backfill_step(&self.db, 3, 5).unwrap() {}
        let left = self.count("SELECT count(*) FROM sqlite_master WHERE name LIKE '%_text'");
        assert_eq!(left, 0, "the old tables are dropped at the end");
    }
}

#[test]
fn every_answer_is_byte_identical_after_the_database_goes_through_schema_6_and_its_copy() {
    let world = World::fill();
    let before = world.answers();
    assert!(
        before
            .iter()
            .all(|(path, status, _)| *status == 200 || panic!("{path}: {status}"))
    );
    world.upgrade_leaving_the_copy_pending();
    let during = world.answers();
    for (was, is) in before.iter().zip(&during) {
        assert_eq!(was, is, "while the copy was pending");
    }
    world.finish();
    let after = world.answers();
    assert_eq!(before, after);
}

#[test]
fn pipelines_keep_writing_while_the_copy_is_pending_and_nothing_is_doubled() {
    let world = World::fill();
    let images = world.count("SELECT count(*) FROM images");
    let records = world.count("SELECT count(*) FROM image_lead_times");
    let beta = |world: &World| {
        world.call(
            registry_handler(),
            "GET",
            &format!("/api/v1/registries/{}/channels/beta", world.private),
            &world.acme,
            serde_json::json!({}),
        )["version"]
            .clone()
    };
    let beta_before = beta(&world);
    world.upgrade_leaving_the_copy_pending();
    let images_path = format!("/api/v1/registries/{}/images", world.private);
    // A retried run from before the upgrade finds its image (200, same id)...
    let (status, body) = world.send(
        images_handler(),
        "POST",
        &images_path,
        &world.acme,
        World::image_body(0),
    );
    let retried: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status, retried["image_id"].as_str()),
        (200, Some(world.images[0].as_str()))
    );
    // ...a different build reusing its run id is refused...
    let mut reused = World::image_body(2);
    reused["git_hash"] = "fffffff1".into();
    assert_eq!(
        world
            .send(images_handler(), "POST", &images_path, &world.acme, reused)
            .0,
        409
    );
    // ...and a new build moves the channel on from where the old rows left it.
    let new = world.call(
        images_handler(),
        "POST",
        &images_path,
        &world.acme,
        World::image_body(30),
    );
    assert_eq!(new["channel"], "beta");
    assert!(
        world.copying(),
        "still copying: batches run only after responses here"
    );
    // A retried deployment by id, and one by image and app environment, are found.
    let deploy = |n: usize, with_id: bool| {
        let mut body = serde_json::json!({"image_id": world.images[n], "app_id": format!("app-{}", n % 2),
            "environment": (["dev", "production"][n % 2]), "prod": n % 2 == 1,
            "deployed_at": format!("2026-05-{:02}T12:00:00.{:06}Z", 2 + n % 20, n * 31)});
        if n % 4 != 3 {
            body["project_id"] = "project-1".into();
        }
        if with_id {
            body["deployment_id"] = format!("deploy-{n}").into();
        }
        world.send(
            lead_time_handler(),
            "POST",
            "/api/v1/deployments",
            &world.acme,
            body,
        )
    };
    for (n, with_id) in [(16, true), (17, false)] {
        let (status, body) = deploy(n, with_id);
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (status, body["lead_time_id"].as_str()),
            (200, Some(world.deployments[n].as_str()))
        );
    }
    // A first deployment of an old image is new.
    assert_eq!(deploy(20, true).0, 201);
    world.finish();
    assert_eq!(world.count("SELECT count(*) FROM images"), images + 1);
    assert_eq!(
        world.count("SELECT count(*) FROM image_lead_times"),
        records + 1
    );
    // The copy moved no channel; the one new beta build did, once.
    let beta_after = beta(&world);
    assert_ne!(beta_after, beta_before);
    assert_eq!(new["version"], beta_after);
}

#[test]
fn a_whole_table_read_that_cannot_finish_the_copy_in_time_is_a_503_to_retry() {
    /// Each reading of the clock is three seconds after the last.
    struct Hurried(std::cell::Cell<i64>);
    impl crate::env::Clock for Hurried {
        fn now(&self) -> crate::Timestamp {
            self.0.set(self.0.get() + 3_000_000);
            crate::Timestamp::from_micros(1_780_000_000_000_000 + self.0.get()).unwrap()
        }
        fn sleep(&self, _: std::time::Duration) {}
    }
    let world = World::fill();
    world.upgrade_leaving_the_copy_pending();
    let error =
        crate::store::reencode::finish_copy(&world.db, &Hurried(Default::default())).unwrap_err();
    let response = error.into_response();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(String::from_utf8_lossy(response.body()).contains("urn:cd-images:problem:upgrading"));
    // With time to spare, the same read finishes it.
    crate::store::reencode::finish_copy(&world.db, &crate::testing::fixtures::FixedClock).unwrap();
    assert!(!world.copying());
}

/// Explains every statement before running it, and keeps the plans.
struct Planner<'a> {
    db: &'a dyn Db,
    plans: std::cell::RefCell<Vec<(String, String)>>,
}

impl Db for Planner<'_> {
    fn execute(
        &self,
        sql: &str,
        params: &[crate::db::Value],
    ) -> Result<crate::db::Rows, crate::db::DbError> {
        let verb = sql.split_whitespace().next().unwrap_or("").to_uppercase();
        if ["SELECT", "INSERT", "UPDATE", "DELETE"].contains(&verb.as_str()) {
            let plan = self
                .db
                .execute(&format!("EXPLAIN QUERY PLAN {sql}"), params)?;
            let plan = plan
                .iter()
                .map(|row| row.text(3).unwrap())
                .collect::<Vec<_>>()
                .join("\n");
            self.plans.borrow_mut().push((sql.to_owned(), plan));
        }
        self.db.execute(sql, params)
    }
}

/// Indexes no query reads: each exists for the rule it enforces.
const RULES_ONLY: [&str; 3] = [
    // A commit counts once per app environment: the key of commit_lead_times, which the
    // INSERT's conflict clause checks (conflict checks are not in query plans).
    "commit_lead_times_key",
    // One live registry per repository and container registry in an org (the INSERT's and
    // UPDATE's conflict is the check).
    "image_registries_live_repository",
    // The primary key of app environments: the parent key of every record's foreign key,
    // which SQLite looks up on each insert (foreign-key checks are not in query plans).
    "sqlite_autoindex_app_environments_1",
];

#[test]
fn every_index_is_used_by_a_query_plan_and_no_plan_scans_a_large_table() {
    let world = World::fill();
    let planner = Planner {
        db: &world.db,
        plans: Default::default(),
    };
    for (handler, path, token) in world.requests() {
        let (status, _) = world.send_on(
            &planner,
            handler,
            "GET",
            &path,
            &token,
            serde_json::json!({}),
        );
        assert_eq!(status, 200, "{path}");
    }
    let images_path = format!("/api/v1/registries/{}/images", world.private);
    for body in [World::image_body(0), World::image_body(40)] {
        world.send_on(
            &planner,
            images_handler(),
            "POST",
            &images_path,
            &world.acme,
            body,
        );
    }
    // The second deployment also turns `dev` into a prod environment (an UPDATE by its id).
    for with_id in [true, false] {
        let mut body = serde_json::json!({"image_id": world.images[22], "app_id": "app-9",
            "project_id": "project-1", "environment": "dev", "prod": !with_id});
        if with_id {
            body["deployment_id"] = "deploy-new".into();
        }
        world.send_on(
            &planner,
            lead_time_handler(),
            "POST",
            "/api/v1/deployments",
            &world.acme,
            body,
        );
    }
    // A registry push (a receiver made, listed, and a Quay delivery of a recorded tag and of
    // an unknown one), and the image found by the digest a push gave it.
    let registry_path = format!("/api/v1/registries/{}", world.private);
    let (_, registry) = world.send_on(
        &planner,
        registry_handler(),
        "GET",
        &registry_path,
        &world.acme,
        serde_json::json!({}),
    );
    let registry: serde_json::Value = serde_json::from_slice(&registry).unwrap();
    let (_, page) = world.send_on(
        &planner,
        images_handler(),
        "GET",
        &images_path,
        &world.acme,
        serde_json::json!({}),
    );
    let page: serde_json::Value = serde_json::from_slice(&page).unwrap();
    let (status, receiver) = world.send_on(
        &planner,
        registry_handler(),
        "POST",
        &format!("{registry_path}/receivers"),
        &world.acme,
        serde_json::json!({"source": "generic"}),
    );
    assert_eq!(status, 201);
    let receiver: serde_json::Value = serde_json::from_slice(&receiver).unwrap();
    let (status, _) = world.send_on(
        &planner,
        registry_handler(),
        "GET",
        &format!("{registry_path}/receivers"),
        &world.acme,
        serde_json::json!({}),
    );
    assert_eq!(status, 200);
    let digest = format!("sha256:{}", "ab".repeat(32));
    for tag in [
        page["items"][0]["tag_name"].as_str().unwrap(),
        "never-built",
    ] {
        let body = serde_json::json!({
            "repository": registry["image_repository_name"], "tag": tag, "digest": digest});
        let (status, answer) = world.send_signed_push(&planner, &receiver, &body);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    }
    let (status, _) = world.send_on(
        &planner,
        images_handler(),
        "GET",
        &format!("{images_path}?digest={digest}"),
        &world.acme,
        serde_json::json!({}),
    );
    assert_eq!(status, 200);
    // A subscription hears of an image; its delivery is sent after the response and listed.
    let (status, subscription) = world.send_on(
        &planner,
        registry_handler(),
        "POST",
        &format!("{registry_path}/subscriptions"),
        &world.acme,
        serde_json::json!({"url": "https://flux.example.com/hook",
                           "events": ["image.created", "image.pushed", "deployment.recorded"]}),
    );
    assert_eq!(status, 201);
    let subscription: serde_json::Value = serde_json::from_slice(&subscription).unwrap();
    let subscription_path = format!(
        "{registry_path}/subscriptions/{}",
        subscription["subscription_id"].as_str().unwrap()
    );
    world.send_on(
        &planner,
        images_handler(),
        "POST",
        &images_path,
        &world.acme,
        World::image_body(41),
    );
    struct Answers200;
    impl crate::Outbound for Answers200 {
        fn send(&self, _: &http::Request<Vec<u8>>) -> Result<u16, String> {
            Ok(200)
        }
    }
    let env = crate::Env {
        db: &planner,
        clock: &crate::testing::fixtures::FixedClock,
        ids: &world.ids,
        config: crate::Config::from_variables(None, None).with_webhook_signing_key(Some(
            crate::testing::fixtures::WEBHOOK_SIGNING_KEY.to_owned(),
        )),
    };
    crate::send_due_deliveries(&env, &Answers200);
    for path in [
        format!("{registry_path}/subscriptions"),
        subscription_path.clone(),
        format!("{subscription_path}/deliveries"),
    ] {
        let (status, _) = world.send_on(
            &planner,
            registry_handler(),
            "GET",
            &path,
            &world.acme,
            serde_json::json!({}),
        );
        assert_eq!(status, 200, "{path}");
    }
    let (_, deliveries) = world.send(
        registry_handler(),
        "GET",
        &format!("{subscription_path}/deliveries"),
        &world.acme,
        serde_json::json!({}),
    );
    let deliveries: serde_json::Value = serde_json::from_slice(&deliveries).unwrap();
    let delivery_id = deliveries["items"][0]["delivery_id"].as_str().unwrap();
    let (status, _) = world.send_on(
        &planner,
        registry_handler(),
        "POST",
        &format!("{subscription_path}/deliveries/{delivery_id}/redeliver"),
        &world.acme,
        serde_json::json!({}),
    );
    assert_eq!(status, 202);
    // Outcomes: a rollback (image 0 ran in app-0/dev before), a failure reported against the
    // app environment, read back, listed and resolved, a deployment marked failed, and the
    // stability figures (through the rollup, and from the records with a project filter).
    let rollback = serde_json::json!({"image_id": world.images[0], "app_id": "app-0",
        "project_id": "project-1", "environment": "dev", "deployed_at": "2026-05-30T12:00:00Z"});
    let failure = serde_json::json!({"failure_id": "INC-1", "project_id": "project-1",
        "app_id": "app-0", "environment": "dev", "started_at": "2026-05-30T13:00:00Z"});
    let writes = [
        ("POST", "/api/v1/deployments".to_owned(), rollback),
        ("POST", "/api/v1/failures".to_owned(), failure),
        (
            "PATCH",
            "/api/v1/failures/INC-1".to_owned(),
            serde_json::json!({"resolved_at": "2026-05-30T14:00:00Z"}),
        ),
        (
            "PATCH",
            format!("/api/v1/deployments/{}", world.deployments[1]),
            serde_json::json!({"status": "failed", "kind": "rework"}),
        ),
    ];
    for (method, path, body) in writes {
        let (status, answer) = world.send_on(
            &planner,
            lead_time_handler(),
            method,
            &path,
            &world.acme,
            body,
        );
        assert!(
            status == 200 || status == 201,
            "{method} {path}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    for path in [
        "/api/v1/failures/INC-1",
        "/api/v1/failures?limit=1",
        "/api/v1/dora/change-failure-rate?start=2026-05-01T00:00:00Z&end=2026-05-31T06:00:00Z",
        "/api/v1/dora/rework-rate?start=2026-05-01T00:00:00Z&end=2026-05-31T00:00:00Z&project_id=project-1",
        "/api/v1/dora/recovery-time?start=2026-05-01T00:00:00Z&end=2026-05-31T00:00:00Z&environment=dev",
        "/api/v1/dora/summary?start=2026-05-01T00:00:00Z&end=2026-05-31T00:00:00Z",
        "/api/v1/dora/metrics?metric=change_failure_rate&start_date=2026-05-01&end_date=2026-05-31",
    ] {
        let (status, answer) = world.send_on(
            &planner,
            lead_time_handler(),
            "GET",
            path,
            &world.acme,
            serde_json::json!({}),
        );
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&answer));
    }
    let plans = planner.plans.into_inner();
    for (sql, plan) in &plans {
        for large in ["images", "image_lead_times", "l", "i"] {
            let scan = format!("SCAN {large}");
            assert!(
                !plan
                    .lines()
                    .any(|line| line == scan || line.starts_with(&format!("{scan} "))),
                "{sql}\n{plan}"
            );
        }
    }
    let indexes = world
        .db
        .execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name <> 'schema_migrations' \
             AND tbl_name <> 'backfills'",
            &[],
        )
        .unwrap();
    for row in indexes.iter() {
        let index = row.text(0).unwrap();
        if RULES_ONLY.contains(&index.as_str()) {
            continue;
        }
        assert!(
            plans.iter().any(|(_, plan)| {
                plan.split(|c: char| !c.is_alphanumeric() && c != '_')
                    .any(|word| word == index)
            }),
            "no plan uses {index}"
        );
    }
}
