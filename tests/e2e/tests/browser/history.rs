//! The history every browser test looks at, posted through the API as pipelines and deploy
//! tools would post it, in the last sixty days (the overview's default range is the last 30
//! days, and its tiles compare with the 30 before).
//!
//! Three registries of org `acme`, each an app of its own:
//!
//! | registry      | public | channel   | images | app    | environments            |
//! |---------------|--------|-----------|--------|--------|-------------------------|
//! | `shop/web`    | no     | `default` | W0–W4  | `web`  | staging, production     |
//! | `shop/api`    | yes    | `default` | A0–A2  | `api`  | production              |
//! | `tools/batch` | no     | `nightly` | B0–B1  | `batch`| staging                 |
//!
//! Deployments (days ago): W0 to production 45 (the previous period), A0 40, W0 to staging 25,
//! W1 staging 20 and production 19, W2 production 14 *failed*, W3 production 13 *rework*
//! (resolving W2's failure), A1 12, A2 10, A1 again 9 (a rollback: *rework*, A2 *failed*),
//! a failure reported on web production 7 days ago and resolved two hours later, B0 8, W4
//! staging 6 and production 5, B1 3; each deploy started 20 minutes before it finished. Last,
//! W4 to web canary, a second after it was built (the one deployment after its build).
//!
//! Every figure the pages show is compared with what the API answers for the same range and
//! filters, so none is worked out here.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::helpers::{TestApp, cd_request};

/// The org the history belongs to.
pub const ORG: &str = "acme";

/// A registry of the history.
pub struct Registry {
    pub registry_id: String,
    pub name: &'static str,
    pub public: bool,
}

/// An image of the history, as the API answered its creation.
pub struct Image {
    pub registry_id: String,
    pub image_id: String,
    pub version: String,
    pub git_hash: String,
    pub built_at: DateTime<Utc>,
}

/// The app with the history posted, and the tokens that read and wrote it.
pub struct History {
    pub app: TestApp,
    pub reader: String,
    pub writer: String,
    pub registries: Vec<Registry>,
    /// W0–W4, A0–A2, B0–B1, in that order.
    pub images: Vec<Image>,
    /// The deployments' `lead_time_id`s, in the order posted.
    pub deployments: Vec<String>,
    /// The instant the history was written relative to.
    pub now: DateTime<Utc>,
}

impl History {
    /// A new app with the history posted.
    pub fn post() -> History {
        let app = TestApp::spawn();
        let reader = app.token(ORG, "read");
        let writer = app.token(ORG, "write");
        let now = Utc::now();
        let mut history = History {
            app,
            reader,
            writer,
            registries: Vec::new(),
            images: Vec::new(),
            deployments: Vec::new(),
            now,
        };
        history.build_images();
        history.deploy();
        history
    }

    /// `GET path` as the reader; 200 and its JSON.
    pub fn api(&self, path: &str) -> Value {
        let response = self.app.get(path).bearer(&self.reader).send();
        response.assert_status(200);
        response.json()
    }

    /// The registry named `name`.
    pub fn registry(&self, name: &str) -> &Registry {
        self.registries
            .iter()
            .find(|registry| registry.name == name)
            .unwrap_or_else(|| panic!("no registry {name}"))
    }

    /// `days` days (and `hours` hours) before the history's `now`, RFC 3339.
    pub fn ago(&self, days: i64, hours: i64) -> String {
        rfc3339(self.now - Duration::days(days) - Duration::hours(hours))
    }

    fn build_images(&mut self) {
        for RegistryPlan {
            name,
            public,
            channel,
            images,
        } in REGISTRIES
        {
            let registry = self.app.registry(&self.writer, name, public);
            let registry_id = registry["registry_id"].as_str().unwrap().to_owned();
            for (n, &ImagePlan { days_ago, listed }) in images.iter().enumerate() {
                let run_id = format!("{}-run-{n}", name.replace('/', "-"));
                // The commits, oldest first, an hour apart; the head is the last, four hours
                // before the image's first deployment.
                let commits: Vec<Value> = (0..listed)
                    .map(|k| {
                        let hours = 4 + (listed - 1 - k) as i64;
                        json!({
                            "sha": sha(&format!("{run_id}/{k}")),
                            "timestamp": self.ago(days_ago, hours),
                            "author": format!("{} <{}@example.com>", AUTHORS[k], AUTHORS[k].to_lowercase()),
                        })
                    })
                    .collect();
                let head = commits.last().unwrap();
                let mut body = cd_request(&run_id);
                body["channel"] = json!(channel);
                body["image_name"] = json!(format!("ghcr.io/acme/{name}"));
                body["image_name_with_tag"] = json!(format!("ghcr.io/acme/{name}:{run_id}"));
                body["git_hash"] = head["sha"].clone();
                body["git_hash_commit_timestamp"] = head["timestamp"].clone();
                body["committer"] = head["author"].clone();
                body["commit_msg"] = json!(format!("Change {n} of {name}\n\nWhy it was made."));
                body["commits"] = json!(commits);
                let response = self
                    .app
                    .post(&format!("/api/v1/registries/{registry_id}/images"), &body)
                    .bearer(&self.writer)
                    .send();
                response.assert_status(201);
                let image = response.json();
                self.images.push(Image {
                    registry_id: registry_id.clone(),
                    image_id: image["image_id"].as_str().unwrap().to_owned(),
                    version: image["version"].as_str().unwrap().to_owned(),
                    git_hash: image["git_hash"].as_str().unwrap().to_owned(),
                    built_at: DateTime::parse_from_rfc3339(image["built_at"].as_str().unwrap())
                        .unwrap()
                        .with_timezone(&Utc),
                });
            }
            self.registries.push(Registry {
                registry_id,
                name,
                public,
            });
        }
    }

    fn deploy(&mut self) {
        const W: usize = 0;
        const A: usize = 5;
        const B: usize = 8;
        let steps: [(usize, &str, &str, i64, Value); 14] = [
            (W, "web", "production", 45, json!({})),
            (A, "api", "production", 40, json!({})),
            (W, "web", "staging", 25, json!({})),
            (W + 1, "web", "staging", 20, json!({})),
            (W + 1, "web", "production", 19, json!({})),
            (W + 2, "web", "production", 14, json!({"status": "failed"})),
            (W + 3, "web", "production", 13, json!({"kind": "rework"})),
            (A + 1, "api", "production", 12, json!({})),
            (A + 2, "api", "production", 10, json!({})),
            (A + 1, "api", "production", 9, json!({})),
            (B, "batch", "staging", 8, json!({})),
            (W + 4, "web", "staging", 6, json!({})),
            (W + 4, "web", "production", 5, json!({})),
            (B + 1, "batch", "staging", 3, json!({})),
        ];
        for (image, app_id, environment, days_ago, extra) in steps {
            // The failure reported on web production 7 days ago falls between W3 and W4.
            if days_ago == 6 {
                self.report_failure();
            }
            let mut body = json!({
                "image_id": self.images[image].image_id,
                "project_id": if app_id == "batch" { "tools" } else { "shop" },
                "app_id": app_id,
                "environment": environment,
                "prod": environment == "production",
                "deployed_at": self.ago(days_ago, 0),
                // Started 20 minutes before it finished: the deploy's own lead-time stage.
                "started_at": rfc3339(self.now - Duration::days(days_ago) - Duration::minutes(20)),
            });
            for (key, value) in extra.as_object().unwrap() {
                body[key] = value.clone();
            }
            self.post_deployment(&body);
        }
        self.deploy_after_the_build();
    }

    /// W4 to web canary, started a second after W4 was built and finished a second later: the
    /// back-filled deployments above all precede their images' builds (a build's time is the
    /// server's), so only this one has the build → deploy stage.
    fn deploy_after_the_build(&mut self) {
        let started_at = self.images[4].built_at + Duration::seconds(1);
        let finished_at = started_at + Duration::seconds(1);
        while Utc::now() <= finished_at {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let body = json!({
            "image_id": self.images[4].image_id, "project_id": "shop", "app_id": "web",
            "environment": "canary", "started_at": rfc3339(started_at),
            "deployed_at": rfc3339(finished_at),
        });
        self.post_deployment(&body);
    }

    /// Records one deployment (201) and keeps its id.
    fn post_deployment(&mut self, body: &Value) {
        let response = self
            .app
            .post("/api/v1/deployments", body)
            .bearer(&self.writer)
            .send();
        response.assert_status(201);
        let lead_time_id = response.json()["lead_time_id"].as_str().unwrap().to_owned();
        self.deployments.push(lead_time_id);
    }

    /// Every deployment as the API now tells it (a later rollback or failure marks an earlier
    /// one failed).
    pub fn deployment_records(&self) -> Vec<Value> {
        self.deployments
            .iter()
            .map(|id| self.api(&format!("/api/v1/deployments/{id}")))
            .collect()
    }

    fn report_failure(&self) {
        let body = json!({
            "failure_id": "INC-7", "project_id": "shop", "app_id": "web",
            "environment": "production", "started_at": self.ago(7, 0),
            "resolved_at": self.ago(7, -2), "title": "checkout answers 500", "severity": "SEV2",
        });
        self.app
            .post("/api/v1/failures", &body)
            .bearer(&self.writer)
            .send()
            .assert_status(201);
    }
}

/// A registry of the history and the images built in it, oldest first.
struct RegistryPlan {
    name: &'static str,
    public: bool,
    channel: &'static str,
    images: &'static [ImagePlan],
}

/// An image: how many days ago it was first deployed (its head commit four hours before),
/// and how many commits it lists.
struct ImagePlan {
    days_ago: i64,
    listed: usize,
}

const fn image(days_ago: i64, listed: usize) -> ImagePlan {
    ImagePlan { days_ago, listed }
}

const REGISTRIES: [RegistryPlan; 3] = [
    RegistryPlan {
        name: "shop/web",
        public: false,
        channel: "default",
        images: &[
            image(45, 1),
            image(20, 2),
            image(14, 1),
            image(13, 3),
            image(6, 2),
        ],
    },
    RegistryPlan {
        name: "shop/api",
        public: true,
        channel: "default",
        images: &[image(40, 1), image(12, 2), image(10, 1)],
    },
    RegistryPlan {
        name: "tools/batch",
        public: false,
        channel: "nightly",
        images: &[image(8, 1), image(3, 2)],
    },
];

/// Commit authors, by position in a commit list.
const AUTHORS: [&str; 3] = ["Ann", "Bo", "Cy"];

/// A distinct full sha for `name` (40 hex digits).
pub fn sha(name: &str) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(name.as_bytes())[..20])
}

/// `instant` as the API writes one (microseconds, `Z`).
pub fn rfc3339(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
