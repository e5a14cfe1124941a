//! Deployment outcomes, failures and the three stability metrics (change failure rate,
//! recovery time, rework rate), the five-metric summary and the GitLab-shaped answer, on a
//! hand-built timeline whose every expected figure is worked out below by hand.
//!
//! The timeline (one app environment, shop/api in production; images I0…I6 built in order):
//!
//! | deployment | image | deployed (UTC)   | said              | becomes                                    |
//! |------------|-------|------------------|-------------------|--------------------------------------------|
//! | D0         | I0    | 02-10 10:00      |                   | planned, lead time 120 min (February)      |
//! | D1         | I1    | 03-02 10:00      |                   | planned, 60 min                            |
//! | D2         | I2    | 03-03 10:00      |                   | planned, 60 min; failed by D3's rollback   |
//! | D3         | I1    | 03-03 12:00      |                   | rollback: rework, no lead time; D2's implicit failure resolved, 120 min |
//! | D4         | I3    | 03-05 10:00      | status failed     | no lead time; implicit failure opened      |
//! | D5         | I4    | 03-05 11:00      | kind rework       | 30 min; resolves D4's failure (60 min); failed by F1 |
//! | F1         |       | 03-06 09:00–09:30| by app environment| attributed to D5 (30 min)                  |
//! | D6         | I5    | 03-07 10:00      |                   | 60 min; PATCHed failed, then succeeded, then rework |
//! | D7         | I2    | 03-08 10:00      | kind planned      | no rollback (said planned), no lead time (I2 counted by D2); failed by F2 |
//! | F2         |       | 03-09 00:00      | by app environment| attributed to D7; resolved by D8 (60 min)  |
//! | D8         | I6    | 03-09 01:00      | rework, fixes F2  | 30 min                                     |
//!
//! March: 8 deployments; failed D2, D4, D5, D7 (4/8); rework D3, D5, D6, D8 (4/8); recovery
//! times 120, 60, 30, 60 (median 60); lead times 60, 60, 30, 60, 30 (median 60).
//!
//! Per commit (each image has its own head commit, on one channel): D1 carries I1's (60),
//! D2 I2's (60), D3 and D7 nothing new (I1 and I2 ran already), D4 nothing (failed), D5 both
//! I3's (failed rollout: 03-05 09:00 → 11:00, 120) and I4's (30), D6 I5's (60), D8 I6's (30):
//! 60, 60, 120, 30, 60, 30 (median 60). February: I0's 120.

use serde_json::{Value, json};

use crate::helpers::TestApp;

const MARCH: &str = "start=2026-03-01T00:00:00Z&end=2026-03-31T23:59:59.999999Z";

struct Timeline {
    app: TestApp,
    writer: String,
    reader: String,
    /// lead_time_id of D0…D8.
    deployments: Vec<String>,
}

impl Timeline {
    fn get(&self, path: &str) -> Value {
        let response = self.app.get(path).bearer(&self.reader).send();
        response.assert_status(200);
        response.json()
    }

    fn deployment(&self, n: usize) -> Value {
        self.get(&format!("/api/v1/deployments/{}", self.deployments[n]))
    }
}

fn timeline() -> Timeline {
    let app = TestApp::spawn();
    let writer = app.token("acme", "write");
    let reader = app.token("acme", "read");
    let registry = app.registry(&writer, "shop/api", false);
    let images_path = format!(
        "/api/v1/registries/{}/images",
        registry["registry_id"].as_str().unwrap()
    );
    let commits = [
        "2026-02-10T08:00:00Z",
        "2026-03-02T09:00:00Z",
        "2026-03-03T09:00:00Z",
        "2026-03-05T09:00:00Z",
        "2026-03-05T10:30:00Z",
        "2026-03-07T09:00:00Z",
        "2026-03-09T00:30:00Z",
    ];
    let images: Vec<String> = commits
        .iter()
        .enumerate()
        .map(|(n, commit)| {
            let mut body = crate::helpers::cd_request(&format!("run-{n}"));
            body["git_hash_commit_timestamp"] = json!(commit);
            body["git_hash"] = json!(format!("{n:07x}"));
            let response = app.post(&images_path, &body).bearer(&writer).send();
            response.assert_status(201);
            response.json()["image_id"].as_str().unwrap().to_owned()
        })
        .collect();
    let mut timeline = Timeline {
        app,
        writer,
        reader,
        deployments: Vec::new(),
    };
    let deploy = |timeline: &mut Timeline, image: usize, at: &str, extra: Value| -> Value {
        let body = deployment(&images[image], at, extra);
        let response = timeline
            .app
            .post("/api/v1/deployments", &body)
            .bearer(&timeline.writer)
            .send();
        response.assert_status(201);
        let record = response.json();
        timeline
            .deployments
            .push(record["lead_time_id"].as_str().unwrap().to_owned());
        record
    };
    let failure = |timeline: &Timeline, body: Value| -> Value {
        let response = timeline
            .app
            .post("/api/v1/failures", &body)
            .bearer(&timeline.writer)
            .send();
        response.assert_status(201);
        response.json()
    };
    let patch = |timeline: &Timeline, n: usize, body: Value| -> Value {
        let response = timeline
            .app
            .patch(
                &format!("/api/v1/deployments/{}", timeline.deployments[n]),
                &body,
            )
            .bearer(&timeline.writer)
            .send();
        response.assert_status(200);
        response.json()
    };

    deploy(&mut timeline, 0, "2026-02-10T10:00:00Z", json!({}));
    deploy(&mut timeline, 1, "2026-03-02T10:00:00Z", json!({}));
    deploy(&mut timeline, 2, "2026-03-03T10:00:00Z", json!({}));
    let rollback = deploy(&mut timeline, 1, "2026-03-03T12:00:00Z", json!({}));
    assert_eq!(rollback["kind"], "rework", "{rollback}");
    assert_eq!(rollback["rollback_of"], timeline.deployments[2].as_str());
    assert!(
        rollback["duration_mins"].is_null(),
        "a commit counts once: {rollback}"
    );
    let failed = deploy(
        &mut timeline,
        3,
        "2026-03-05T10:00:00Z",
        json!({"status": "failed", "started_at": "2026-03-05T09:55:00Z"}),
    );
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["started_at"], "2026-03-05T09:55:00.000000Z");
    assert!(failed["duration_mins"].is_null());
    deploy(
        &mut timeline,
        4,
        "2026-03-05T11:00:00Z",
        json!({"kind": "rework"}),
    );
    let f1 = failure(
        &timeline,
        json!({"failure_id": "PD-Q1R2DLCB21K7NP", "project_id": "shop", "app_id": "api",
               "environment": "production", "started_at": "2026-03-06T09:00:00Z",
               "resolved_at": "2026-03-06T09:30:00Z", "title": "checkout 500s", "severity": "SEV2"}),
    );
    assert_eq!(f1["lead_time_id"], timeline.deployments[5].as_str(), "{f1}");
    assert_eq!(f1["recovery_mins"], 30.0);
    deploy(&mut timeline, 5, "2026-03-07T10:00:00Z", json!({}));
    assert_eq!(
        patch(&timeline, 6, json!({"status": "failed"}))["status"],
        "failed"
    );
    let implicit = timeline.get(&format!(
        "/api/v1/failures/deployment:{}",
        timeline.deployments[6]
    ));
    assert_eq!(implicit["implicit"], true);
    assert!(implicit["resolved_at"].is_null());
    let back = patch(
        &timeline,
        6,
        json!({"status": "succeeded", "kind": "rework"}),
    );
    assert_eq!(
        (back["status"].as_str(), back["kind"].as_str()),
        (Some("succeeded"), Some("rework"))
    );
    timeline
        .app
        .get(&format!(
            "/api/v1/failures/deployment:{}",
            timeline.deployments[6]
        ))
        .bearer(&timeline.reader)
        .send()
        .assert_problem(404, None);
    let planned = deploy(
        &mut timeline,
        2,
        "2026-03-08T10:00:00Z",
        json!({"kind": "planned"}),
    );
    assert!(planned["rollback_of"].is_null());
    assert!(planned["duration_mins"].is_null(), "I2 was counted by D2");
    let f2 = failure(
        &timeline,
        json!({"failure_id": "incident-01FCNDV6P870EA6S7TK1DSYDG0", "project_id": "shop",
               "app_id": "api", "environment": "production", "started_at": "2026-03-09T00:00:00Z"}),
    );
    assert_eq!(f2["lead_time_id"], timeline.deployments[7].as_str());
    deploy(
        &mut timeline,
        6,
        "2026-03-09T01:00:00Z",
        json!({"kind": "rework", "fixes_failure_id": "incident-01FCNDV6P870EA6S7TK1DSYDG0"}),
    );
    timeline
}

/// A deployment of `image` to shop/api in production at `at`, with `extra` fields.
fn deployment(image: &str, at: &str, extra: Value) -> Value {
    let mut body = json!({"image_id": image, "project_id": "shop", "app_id": "api",
        "environment": "production", "prod": true, "deployed_at": at});
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

/// `route`'s summary over March 2026 (`/dora/change-failure-rate`, `/dora/rework-rate`, …).
fn march_summary(app: &TestApp, token: &str, route: &str) -> Value {
    let response = app
        .get(&format!(
            "/api/v1/dora/{route}?start=2026-03-01T00:00:00Z&end=2026-03-31T00:00:00Z"
        ))
        .bearer(token)
        .send();
    response.assert_status(200);
    response.json()["summary"].clone()
}

/// `n` images built on the `default` channel of a new registry `shop/api` of `writer`'s org,
/// oldest first.
fn built_images(app: &TestApp, writer: &str, n: usize) -> Vec<String> {
    let registry = app.registry(writer, "shop/api", false);
    let images_path = format!(
        "/api/v1/registries/{}/images",
        registry["registry_id"].as_str().unwrap()
    );
    (0..n)
        .map(|n| {
            let response = app
                .post(
                    &images_path,
                    &crate::helpers::cd_request(&format!("run-{n}")),
                )
                .bearer(writer)
                .send();
            response.assert_status(201);
            response.json()["image_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn a_rollback_is_rework_and_fails_the_deployment_it_replaced() {
    let t = timeline();
    let replaced = t.deployment(2);
    assert_eq!(replaced["status"], "failed");
    let implicit = t.get(&format!("/api/v1/failures/deployment:{}", t.deployments[2]));
    assert_eq!(implicit["implicit"], true);
    assert_eq!(implicit["started_at"], "2026-03-03T10:00:00.000000Z");
    assert_eq!(implicit["resolved_at"], "2026-03-03T12:00:00.000000Z");
    assert_eq!(implicit["recovery_mins"], 120.0);
    // The failed rollout's failure was resolved by the next succeeded deployment.
    let d4 = t.get(&format!("/api/v1/failures/deployment:{}", t.deployments[4]));
    assert_eq!(d4["resolved_at"], "2026-03-05T11:00:00.000000Z");
    // A reported failure replaced nothing implicit on D5 and marked it failed.
    assert_eq!(t.deployment(5)["status"], "failed");
    assert_eq!(t.deployment(7)["status"], "failed");
    assert_eq!(t.deployment(6)["status"], "succeeded");
    let f2 = t.get("/api/v1/failures/incident-01FCNDV6P870EA6S7TK1DSYDG0");
    assert_eq!(f2["resolved_at"], "2026-03-09T01:00:00.000000Z");
    assert_eq!(f2["deployment_id"], Value::Null);
}

#[test]
fn the_stability_metrics_are_the_hand_worked_figures() {
    let t = timeline();
    let cfr = t.get(&format!(
        "/api/v1/dora/change-failure-rate?{MARCH}&interval=week"
    ));
    assert_eq!(cfr["summary"]["deployments"], 8);
    assert_eq!(cfr["summary"]["failed"], 4);
    assert_eq!(cfr["summary"]["rate"], 0.5);
    assert_eq!(cfr["summary"]["dora_level"], "low");
    assert_eq!(cfr["summary"]["benchmark"], "2024");
    let weekly: Vec<(u64, u64)> = cfr["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["deployments"].as_u64().unwrap(),
                p["failed"].as_u64().unwrap(),
            )
        })
        .collect();
    // Weeks from Monday 2026-02-23: D1–D7 in the week of Monday 03-02 (D7 on Sunday 03-08),
    // D8 in the week of 03-09.
    assert_eq!(
        weekly,
        [(0, 0), (7, 4), (1, 0), (0, 0), (0, 0), (0, 0)],
        "{cfr}"
    );

    let rework = t.get(&format!("/api/v1/dora/rework-rate?{MARCH}"));
    assert_eq!(rework["summary"]["rework"], 4);
    assert_eq!(rework["summary"]["rate"], 0.5);
    assert!(rework["summary"]["dora_level"].is_null());

    let recovery = t.get(&format!("/api/v1/dora/recovery-time?{MARCH}"));
    assert_eq!(recovery["summary"]["count"], 4);
    assert_eq!(recovery["summary"]["median_mins"], 60.0);
    assert_eq!(recovery["summary"]["min_mins"], 30.0);
    assert_eq!(recovery["summary"]["max_mins"], 120.0);
    assert_eq!(recovery["summary"]["open"], 0);
    assert_eq!(recovery["summary"]["dora_level"], "high");
    let quick_check = t.get(&format!(
        "/api/v1/dora/recovery-time?{MARCH}&benchmark=2025"
    ));
    assert_eq!(quick_check["summary"]["dora_bucket"], "less than one day");

    // Range edges, both inclusive, in any offset: D2 (failed) at the start's exact instant,
    // D3 (rework), and D4 (failed) at the end's; a microsecond less drops D4.
    let edge = |end: &str| {
        t.get(&format!(
            "/api/v1/dora/change-failure-rate?start=2026-03-03T15:30:00%2B05:30&end={end}"
        ))["summary"]
            .clone()
    };
    let inclusive = edge("2026-03-05T02:00:00-08:00");
    assert_eq!(
        (
            inclusive["deployments"].as_u64(),
            inclusive["failed"].as_u64()
        ),
        (Some(3), Some(2))
    );
    let short = edge("2026-03-05T09:59:59.999999Z");
    assert_eq!(
        (short["deployments"].as_u64(), short["failed"].as_u64()),
        (Some(2), Some(1))
    );
    // Filters reach the failures and the partial days too: production only, from 03-05 noon.
    let from_noon = t.get(
        "/api/v1/dora/change-failure-rate?start=2026-03-05T12:00:00Z&end=2026-03-31T00:00:00Z&prod=true&app_id=api",
    );
    assert_eq!(from_noon["summary"]["deployments"], 3, "{from_noon}");
    assert_eq!(from_noon["summary"]["failed"], 1);
}

#[test]
fn the_summary_compares_with_the_previous_period() {
    let t = timeline();
    let summary = t.get(&format!("/api/v1/dora/summary?{MARCH}"));
    assert_eq!(summary["previous_end_time"], "2026-02-28T23:59:59.999999Z");
    assert_eq!(
        summary["previous_start_time"],
        "2026-01-29T00:00:00.000000Z"
    );
    assert_eq!(summary["unit"], "commit");
    let lead = &summary["lead_time"];
    assert_eq!(lead["value"], 60.0);
    assert_eq!(lead["count"], 6, "I3's commit counts, carried by D5");
    let per_deployment = t.get(&format!("/api/v1/dora/summary?{MARCH}&unit=deployment"));
    assert_eq!(per_deployment["unit"], "deployment");
    assert_eq!(per_deployment["lead_time"]["count"], 5);
    assert_eq!(per_deployment["lead_time"]["value"], 60.0);
    assert_eq!(lead["previous_value"], 120.0);
    assert_eq!(lead["change_percent"], -50.0);
    assert_eq!(lead["dora_level"], "elite");
    let frequency = &summary["deployment_frequency"];
    assert_eq!(frequency["count"], 8);
    assert_eq!(frequency["previous_count"], 1);
    assert_eq!(frequency["change_percent"], 700.0);
    assert_eq!(summary["change_failure_rate"]["value"], 0.5);
    assert_eq!(summary["change_failure_rate"]["previous_value"], 0.0);
    assert!(summary["change_failure_rate"]["change_percent"].is_null());
    assert_eq!(summary["recovery_time"]["value"], 60.0);
    assert!(summary["recovery_time"]["previous_value"].is_null());
    assert_eq!(summary["rework_rate"]["value"], 0.5);
    assert_eq!(summary["rework_rate"]["unit"], "ratio");
}

#[test]
fn the_gitlab_shaped_endpoint_answers_in_gitlabs_units() {
    let t = timeline();
    let monthly = t.get(
        "/api/v1/dora/metrics?metric=deployment_frequency&start_date=2026-02-01&end_date=2026-03-31&interval=monthly",
    );
    assert_eq!(
        monthly,
        json!([{"date": "2026-02-01", "value": 1.0}, {"date": "2026-03-01", "value": 8.0}])
    );
    let daily = t.get(
        "/api/v1/dora/metrics?metric=lead_time_for_changes&start_date=2026-03-02&end_date=2026-03-04",
    );
    assert_eq!(
        daily,
        json!([{"date": "2026-03-02", "value": 3600.0}, {"date": "2026-03-03", "value": 3600.0},
               {"date": "2026-03-04", "value": null}])
    );
    let all = |metric: &str, tiers: &str| {
        t.get(&format!(
            "/api/v1/dora/metrics?metric={metric}&start_date=2026-03-01&end_date=2026-03-31&interval=all{tiers}"
        ))
    };
    assert_eq!(all("change_failure_rate", ""), json!(0.5));
    assert_eq!(all("time_to_restore_service", ""), json!(3600.0));
    assert_eq!(
        all("deployment_frequency", "&environment_tiers[]=staging"),
        json!(0.0)
    );
    assert_eq!(
        all(
            "deployment_frequency",
            "&environment_tiers[]=staging&environment_tiers[]=production"
        ),
        json!(8.0)
    );
    for (query, field) in [
        ("start_date=2024-01-01&end_date=2026-03-31", "end_date"),
        (
            "start_date=%2B10000-01-01&end_date=2026-03-31",
            "start_date",
        ),
        ("start_date=2026-04-01&end_date=2026-03-31", "start_date"),
    ] {
        t.app
            .get(&format!(
                "/api/v1/dora/metrics?metric=deployment_frequency&{query}"
            ))
            .bearer(&t.reader)
            .send()
            .assert_problem(400, Some(field));
    }
    t.app
        .get("/api/v1/dora/summary?start=0001-01-01T00:00:00Z&end=0001-02-01T00:00:00Z")
        .bearer(&t.reader)
        .send()
        .assert_problem(400, Some("start"));
    t.app
        .get("/api/v1/dora/metrics?metric=mttr")
        .bearer(&t.reader)
        .send()
        .assert_problem(400, Some("metric"));
    t.app
        .get("/api/v1/dora/metrics?metric=deployment_frequency&environment_tiers[]=prod")
        .bearer(&t.reader)
        .send()
        .assert_problem(400, Some("environment_tiers[]"));
}

#[test]
fn failures_are_idempotent_validated_and_listed() {
    let t = timeline();
    let body = json!({"failure_id": "PD-Q1R2DLCB21K7NP", "project_id": "shop", "app_id": "api",
        "environment": "production", "started_at": "2026-03-06T09:00:00Z"});
    let retry = t
        .app
        .post("/api/v1/failures", &body)
        .bearer(&t.writer)
        .send();
    retry.assert_status(200);
    assert_eq!(retry.json()["title"], "checkout 500s");
    let mut moved = body.clone();
    moved["started_at"] = json!("2026-03-06T08:00:00Z");
    t.app
        .post("/api/v1/failures", &moved)
        .bearer(&t.writer)
        .send()
        .assert_problem(409, Some("failure_id"));
    for (field, value) in [
        ("failure_id", json!("has space")),
        ("started_at", json!("yesterday")),
        ("started_at", json!("2099-01-01T00:00:00Z")),
    ] {
        let mut bad = body.clone();
        bad[field] = value;
        bad["failure_id"] = bad["failure_id"].clone();
        if field != "failure_id" {
            bad["failure_id"] = json!("new-one");
        }
        t.app
            .post("/api/v1/failures", &bad)
            .bearer(&t.writer)
            .send()
            .assert_problem(422, Some(field));
    }
    t.app
        .post(
            "/api/v1/failures",
            &json!({"failure_id": "x1", "deployment_id": "never-recorded", "started_at": "2026-03-06T09:00:00Z"}),
        )
        .bearer(&t.writer)
        .send()
        .assert_problem(404, None);
    t.app
        .post(
            "/api/v1/failures",
            &json!({"failure_id": "x2", "app_id": "api", "environment": "production",
                    "started_at": "2026-03-06T09:00:00Z"}),
        )
        .bearer(&t.writer)
        .send()
        .assert_problem(404, None);
    // Reopened and resolved again by PATCH; a resolution before the start is refused.
    let path = "/api/v1/failures/PD-Q1R2DLCB21K7NP";
    let reopened = t
        .app
        .patch(path, &json!({"resolved_at": null}))
        .bearer(&t.writer)
        .send();
    reopened.assert_status(200);
    assert!(reopened.json()["resolved_at"].is_null());
    t.app
        .patch(path, &json!({"resolved_at": "2026-03-06T08:00:00Z"}))
        .bearer(&t.writer)
        .send()
        .assert_problem(422, Some("resolved_at"));
    let resolved = t
        .app
        .patch(path, &json!({"resolved_at": "2026-03-06T10:00:00Z"}))
        .bearer(&t.writer)
        .send();
    assert_eq!(resolved.json()["recovery_mins"], 60.0);
    // An implicit failure's id read percent-encoded, as encodeURIComponent sends it; its
    // prefix is not a reported failure's to take.
    let encoded = format!("/api/v1/failures/deployment%3A{}", t.deployments[2]);
    assert_eq!(t.get(&encoded)["implicit"], true);
    let mut squatter = body.clone();
    squatter["failure_id"] = json!(format!("deployment:{}", t.deployments[1]));
    t.app
        .post("/api/v1/failures", &squatter)
        .bearer(&t.writer)
        .send()
        .assert_problem(422, Some("failure_id"));
    t.app
        .get("/api/v1/failures/unknown-one")
        .bearer(&t.reader)
        .send()
        .assert_problem(404, None);
    // The list: newest first, paged.
    let first = t.get("/api/v1/failures?limit=2");
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = t.get(&format!("/api/v1/failures?limit=50&cursor={cursor}"));
    let total = 2 + rest["items"].as_array().unwrap().len();
    // D2's, D4's implicit ones and F1, F2 (D6's was removed).
    assert_eq!(total, 4, "{first} {rest}");
    // Read tokens cannot write; deployments refuse bad outcomes.
    t.app
        .post(
            "/api/v1/failures",
            &json!({"failure_id": "r", "app_id": "api",
            "environment": "production", "started_at": "2026-03-06T09:00:00Z"}),
        )
        .bearer(&t.reader)
        .send()
        .assert_problem(403, None);
    t.app
        .patch(
            &format!("/api/v1/deployments/{}", t.deployments[1]),
            &json!({"status": "broken"}),
        )
        .bearer(&t.writer)
        .send()
        .assert_problem(422, Some("status"));
}

/// Concurrent copies of one failure report, one rollback and one PATCH: each recorded once,
/// the rollup's failed count moved once.
#[test]
fn concurrent_reports_rollbacks_and_patches_are_each_applied_once() {
    const CLIENTS: usize = 12;
    let app = std::sync::Arc::new(TestApp::spawn());
    let writer = app.token("acme", "write");
    let reader = app.token("acme", "read");
    let images = built_images(&app, &writer, 3);
    let deploy =
        |image: &str, at: &str, id: &str| deployment(image, at, json!({"deployment_id": id}));
    let recorded: Vec<String> = [
        (&images[0], "2026-03-02T10:00:00Z", "d0"),
        (&images[1], "2026-03-03T10:00:00Z", "d1"),
        (&images[2], "2026-03-04T10:00:00Z", "d2"),
    ]
    .into_iter()
    .map(|(image, at, id)| {
        let response = app
            .post("/api/v1/deployments", &deploy(image, at, id))
            .bearer(&writer)
            .send();
        response.assert_status(201);
        response.json()["lead_time_id"].as_str().unwrap().to_owned()
    })
    .collect();
    let race = |method: &'static str, path: String, body: Value| -> Vec<u16> {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (app, writer, path, body) = (
                    std::sync::Arc::clone(&app),
                    writer.clone(),
                    path.clone(),
                    body.clone(),
                );
                std::thread::spawn(move || {
                    app.request(method, &path)
                        .bearer(&writer)
                        .json(&body)
                        .send()
                        .status
                })
            })
            .collect();
        let mut statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        statuses.sort_unstable();
        statuses
    };
    // A rollback to image 1 (retried by its deploy tool), a failure on d0, d1 marked rework.
    let rollback = race(
        "POST",
        "/api/v1/deployments".to_owned(),
        deploy(&images[1], "2026-03-05T10:00:00Z", "d3"),
    );
    assert_eq!(
        rollback.iter().filter(|s| **s == 201).count(),
        1,
        "{rollback:?}"
    );
    assert!(
        rollback.iter().all(|s| *s == 200 || *s == 201),
        "{rollback:?}"
    );
    let failure = race(
        "POST",
        "/api/v1/failures".to_owned(),
        json!({"failure_id": "INC-7", "deployment_id": "d0", "started_at": "2026-03-02T11:00:00Z"}),
    );
    assert_eq!(
        failure.iter().filter(|s| **s == 201).count(),
        1,
        "{failure:?}"
    );
    assert!(
        failure.iter().all(|s| *s == 200 || *s == 201),
        "{failure:?}"
    );
    let patch = race(
        "PATCH",
        format!("/api/v1/deployments/{}", recorded[1]),
        json!({"kind": "rework"}),
    );
    assert!(patch.iter().all(|s| *s == 200), "{patch:?}");

    let cfr = march_summary(&app, &reader, "change-failure-rate");
    // d0 (INC-7) and d2 (replaced by the rollback) failed, of four deployments.
    assert_eq!(
        (cfr["deployments"].as_u64(), cfr["failed"].as_u64()),
        (Some(4), Some(2)),
        "{cfr}"
    );
    let rework = march_summary(&app, &reader, "rework-rate");
    // d1 (PATCHed) and d3 (the rollback).
    assert_eq!(rework["rework"], 2, "{rework}");
    let failures = app.get("/api/v1/failures").bearer(&reader).send().json();
    // INC-7 and d2's implicit one.
    assert_eq!(failures["items"].as_array().unwrap().len(), 2, "{failures}");
}

/// What ran where is what was rolled out, not what is marked failed since: a failed rollout
/// retried with success is no rollback, a failure reported after a rollback goes to the
/// deployment that ran, a retry after a PATCH is a retry, and a deployment named by a reported
/// failure stays failed.
#[test]
fn what_ran_is_what_was_rolled_out_whatever_was_marked_since() {
    let app = TestApp::spawn();
    let writer = app.token("acme", "write");
    let reader = app.token("acme", "read");
    let images = built_images(&app, &writer, 3);
    let deploy = |image: usize, at: &str, extra: Value| -> (u16, Value) {
        let body = deployment(&images[image], at, extra);
        let response = app
            .post("/api/v1/deployments", &body)
            .bearer(&writer)
            .send();
        (response.status, response.json())
    };
    // A at 10:00 (image 0); image 1 fails to roll out at 11:00, and its retry at 11:00 too is
    // the same report; at 12:00 it rolls out: no rollback, A stays succeeded.
    let (status, a) = deploy(0, "2026-03-02T10:00:00Z", json!({}));
    assert_eq!(status, 201);
    assert_eq!(
        deploy(1, "2026-03-02T11:00:00Z", json!({"status": "failed"})).0,
        201
    );
    assert_eq!(
        deploy(1, "2026-03-02T11:00:00Z", json!({"status": "failed"})).0,
        200
    );
    let (status, b) = deploy(1, "2026-03-02T12:00:00Z", json!({}));
    assert_eq!(status, 201);
    assert_eq!(b["kind"], "planned", "{b}");
    assert!(b["rollback_of"].is_null());
    let a_now = app
        .get(&format!(
            "/api/v1/deployments/{}",
            a["lead_time_id"].as_str().unwrap()
        ))
        .bearer(&reader)
        .send()
        .json();
    assert_eq!(a_now["status"], "succeeded");
    // B marked failed; its deploy tool retries B's report (no deployment_id): still B.
    let b_path = format!(
        "/api/v1/deployments/{}",
        b["lead_time_id"].as_str().unwrap()
    );
    app.patch(&b_path, &json!({"status": "failed"}))
        .bearer(&writer)
        .send()
        .assert_status(200);
    let (status, retried) = deploy(1, "2026-03-02T12:00:00Z", json!({}));
    assert_eq!(
        (status, &retried["lead_time_id"]),
        (200, &b["lead_time_id"])
    );
    // An incident that started under B is B's, though B is marked failed by now.
    let failure = app
        .post(
            "/api/v1/failures",
            &json!({"failure_id": "INC-9", "project_id": "shop", "app_id": "api",
                    "environment": "production", "started_at": "2026-03-02T12:30:00Z"}),
        )
        .bearer(&writer)
        .send();
    failure.assert_status(201);
    assert_eq!(failure.json()["lead_time_id"], b["lead_time_id"]);
    // A reported failure keeps B failed.
    app.patch(&b_path, &json!({"status": "succeeded"}))
        .bearer(&writer)
        .send()
        .assert_problem(409, Some("status"));
    let cfr = march_summary(&app, &reader, "change-failure-rate");
    // The failed rollout and B, of three deployments.
    assert_eq!(
        (cfr["deployments"].as_u64(), cfr["failed"].as_u64()),
        (Some(3), Some(2)),
        "{cfr}"
    );
}

/// An org's settings: authors left out of lead time (bots), and the default benchmark.
#[test]
fn excluded_authors_leave_lead_time_but_stay_deployments_and_the_benchmark_defaults() {
    let app = TestApp::spawn();
    let admin = app.token("acme", "admin");
    let writer = app.token("acme", "write");
    let defaults = app.get("/api/v1/settings").bearer(&admin).send();
    defaults.assert_status(200);
    assert_eq!(
        defaults.json(),
        json!({"org_id": "acme", "excluded_authors": [], "benchmark": "2024", "updated_at": null})
    );
    app.get("/api/v1/settings")
        .bearer(&writer)
        .send()
        .assert_problem(403, None);
    let registry = app.registry(&writer, "shop/api", false);
    let images_path = format!(
        "/api/v1/registries/{}/images",
        registry["registry_id"].as_str().unwrap()
    );
    let committers = [
        "dependabot[bot] <49699333+dependabot[bot]@users.noreply.github.com>",
        "renovate-bot <bot@renovateapp.com>",
        "Ada Lovelace <ada@example.com>",
        "abbot <abbot@example.com>",
    ];
    for (n, committer) in committers.iter().enumerate() {
        let mut body = crate::helpers::cd_request(&format!("run-{n}"));
        body["committer"] = json!(committer);
        let image = app.post(&images_path, &body).bearer(&writer).send();
        image.assert_status(201);
        app.post(
            "/api/v1/deployments",
            &json!({"image_id": image.json()["image_id"], "project_id": "shop", "app_id": format!("app-{n}"),
                    "environment": "production", "prod": true,
                    "deployed_at": format!("2026-03-0{}T10:00:00Z", n + 3)}),
        )
        .bearer(&writer)
        .send()
        .assert_status(201);
    }
    let range = "start=2026-03-01T00:00:00Z&end=2026-03-31T00:00:00Z";
    let lead_count = || {
        app.get(&format!("/api/v1/dora/lead-time?{range}"))
            .bearer(&writer)
            .send()
            .json()["summary"]["count"]
            .as_u64()
    };
    assert_eq!(lead_count(), Some(4));
    let put = app
        .put(
            "/api/v1/settings",
            &json!({"excluded_authors": ["*[bot]", "renovate*"], "benchmark": "2023"}),
        )
        .bearer(&admin)
        .send();
    put.assert_status(200);
    assert_eq!(
        put.json()["excluded_authors"],
        json!(["*[bot]", "renovate*"])
    );
    // Past deployments too: dependabot[bot] and renovate-bot are out, "abbot" is no "[bot]".
    assert_eq!(lead_count(), Some(2));
    let frequency = app
        .get(&format!("/api/v1/dora/deployment-frequency?{range}"))
        .bearer(&writer)
        .send()
        .json();
    assert_eq!(frequency["summary"]["count"], 4);
    assert_eq!(frequency["summary"]["benchmark"], "2023");
    let summary = app
        .get(&format!("/api/v1/dora/summary?{range}&benchmark=2025"))
        .bearer(&writer)
        .send()
        .json();
    assert_eq!(summary["benchmark"], "2025");
    assert_eq!(summary["lead_time"]["count"], 2);
    for (body, field) in [
        (
            json!({"excluded_authors": [], "benchmark": "2022"}),
            "benchmark",
        ),
        (json!({"excluded_authors": [""]}), "excluded_authors"),
        (
            json!({"excluded_authors": vec!["x"; 101]}),
            "excluded_authors",
        ),
        (json!({"excluded_authors": [], "colour": "red"}), "colour"),
    ] {
        let response = app.put("/api/v1/settings", &body).bearer(&admin).send();
        assert_eq!(response.status, 422, "{body}: {}", response.text());
        let _ = field;
    }
}
