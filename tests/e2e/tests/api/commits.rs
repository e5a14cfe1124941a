//! Lead time per commit: the commits a CD request lists, which deployment carries each to an
//! app environment, its stages, and the per-deployment unit beside it — on a hand-built
//! history whose every expected figure is worked out below by hand (not by cd-core).
//!
//! One registry channel, app `web` of project `shop`; images built in order (times 03-01 UTC):
//!
//! | image | head (time)  | commits listed                                 |
//! |-------|-------------|------------------------------------------------|
//! | I1    | h1 08:00    | c1 07:00 (ann), h1                             |
//! | I2    | h2 10:00    | none (the head is the one commit; sent at +05:30)|
//! | I3    | h3 12:00    | c3 11:00 (renovate[bot]), h3                   |
//! | I4    | h4 13:00    | c1 07:00 (ann, listed again), h4               |
//!
//! | deployment | where      | image | at    | carries (first time there)                       |
//! |------------|------------|-------|-------|--------------------------------------------------|
//! | D1         | staging    | I1    | 09:00 | c1 120, h1 60                                    |
//! | D2         | staging    | I3    | 13:00 | I2 and I3 (since I1): h2 180, c3 120, h3 60      |
//! | D3         | production | I3    | 14:00 | first there: own only, c3 180, h3 120            |
//! | D4         | production | I2    | 15:00 | nothing: I3, newer, ran there (a rollback)       |
//! | D5         | production | I4    | 16:00 | since I3: c1 540, h4 180                         |
//! | D6         | staging    | I4    | 17:00 | since I3: h4 240 (c1 counted by D1)              |
//! | D7         | staging    | I1    | 18:00 | nothing: newer images ran there                  |
//!
//! Per commit: 60, 60, 120, 120, 120, 180, 180, 180, 240, 540: 10, median 150. Production:
//! 120, 180, 180, 540: 4, median 180. Without `renovate*` authors (c3 twice): 8, median 150.
//! Per deployment (head commit, first deployment of each image there): D1 60, D2 60, D3 120,
//! D4 300, D5 180, D6 240: 6, median 150.

use serde_json::{Value, json};

use crate::helpers::{TestApp, cd_request};

const RANGE: &str = "start=2026-03-01T00:00:00Z&end=2026-03-01T23:59:59Z";

fn sha(name: &str) -> String {
    // A distinct, valid hex sha per name.
    let n: u32 = name
        .bytes()
        .fold(7, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("{n:08x}{}", "0".repeat(32))
}

fn commit(name: &str, time: &str, author: Option<&str>) -> Value {
    let mut commit = json!({"sha": sha(name), "timestamp": format!("2026-03-01T{time}:00Z")});
    if let Some(author) = author {
        commit["author"] = json!(author);
    }
    commit
}

struct History {
    app: TestApp,
    writer: String,
    admin: String,
}

impl History {
    fn get(&self, path: &str) -> Value {
        let response = self.app.get(path).bearer(&self.writer).send();
        response.assert_status(200);
        response.json()
    }

    fn lead_time(&self, query: &str) -> Value {
        self.get(&format!("/api/v1/dora/lead-time?{RANGE}&limit=500{query}"))
    }
}

fn history() -> History {
    let app = TestApp::spawn();
    let writer = app.token("acme", "write");
    let admin = app.token("acme", "admin");
    let registry = app.registry(&writer, "shop/web", false);
    let images_path = format!(
        "/api/v1/registries/{}/images",
        registry["registry_id"].as_str().unwrap()
    );
    let images: Vec<(&str, &str, Vec<Value>)> = vec![
        (
            "h1",
            "08:00",
            vec![
                commit("c1", "07:00", Some("ann <a@x>")),
                commit("h1", "08:00", None),
            ],
        ),
        ("h2", "10:00", vec![]),
        (
            "h3",
            "12:00",
            vec![
                commit("c3", "11:00", Some("renovate[bot]")),
                commit("h3", "12:00", None),
            ],
        ),
        (
            "h4",
            "13:00",
            vec![
                commit("c1", "07:00", Some("ann <a@x>")),
                commit("h4", "13:00", None),
            ],
        ),
    ];
    let image_ids: Vec<String> = images
        .into_iter()
        .enumerate()
        .map(|(n, (head, time, commits))| {
            let mut body = cd_request(&format!("run-{n}"));
            body["git_hash"] = json!(sha(head));
            // I2's head as a pipeline in India reports it (10:00 UTC).
            body["git_hash_commit_timestamp"] = if head == "h2" {
                json!("2026-03-01T15:30:00+05:30")
            } else {
                json!(format!("2026-03-01T{time}:00Z"))
            };
            if !commits.is_empty() {
                body["commits"] = json!(commits);
            }
            let response = app.post(&images_path, &body).bearer(&writer).send();
            response.assert_status(201);
            let image = response.json();
            let shown: Vec<(Value, Value)> = image["commits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (c["sha"].clone(), c["author"].clone()))
                .collect();
            let posted: Vec<(Value, Value)> = commits
                .iter()
                .map(|c| {
                    (
                        c["sha"].clone(),
                        c.get("author").cloned().unwrap_or(Value::Null),
                    )
                })
                .collect();
            assert_eq!(shown, posted, "an image shows its commits");
            image["image_id"].as_str().unwrap().to_owned()
        })
        .collect();
    for (environment, image, at) in [
        ("staging", 0, "09:00"),
        ("staging", 2, "13:00"),
        ("production", 2, "14:00"),
        ("production", 1, "15:00"),
        ("production", 3, "16:00"),
        ("staging", 3, "17:00"),
        ("staging", 0, "18:00"),
    ] {
        let body = json!({"image_id": image_ids[image], "project_id": "shop", "app_id": "web",
            "environment": environment, "prod": environment == "production",
            "deployed_at": format!("2026-03-01T{at}:00Z")});
        app.post("/api/v1/deployments", &body)
            .bearer(&writer)
            .send()
            .assert_status(201);
    }
    History { app, writer, admin }
}

#[test]
fn each_commit_counts_once_per_app_environment_at_the_first_deployment_that_carried_it() {
    let h = history();
    let all = h.lead_time("");
    assert_eq!(all["unit"], "commit");
    assert_eq!(all["summary"]["count"], 10, "{all}");
    assert_eq!(all["summary"]["median_mins"], 150.0);
    assert_eq!(all["summary"]["min_mins"], 60.0);
    assert_eq!(all["summary"]["max_mins"], 540.0);

    let production = h.lead_time("&environment=production");
    assert_eq!(production["summary"]["count"], 4);
    assert_eq!(production["summary"]["median_mins"], 180.0);
    // Each value is a commit, newest deployment first: D5's two, then D3's two.
    let values: Vec<(String, f64, Value)> = production["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["git_hash"].as_str().unwrap().to_owned(),
                v["duration_mins"].as_f64().unwrap(),
                v["author"].clone(),
            )
        })
        .collect();
    let mut expected = vec![
        (sha("c1"), 540.0, json!("ann <a@x>")),
        (sha("h4"), 180.0, Value::Null),
        (sha("c3"), 180.0, json!("renovate[bot]")),
        (sha("h3"), 120.0, Value::Null),
    ];
    // Within one deployment, by sha descending.
    expected[..2].sort_by(|a, b| b.0.cmp(&a.0));
    expected[2..].sort_by(|a, b| b.0.cmp(&a.0));
    assert_eq!(values, expected);

    // Paged one commit at a time, the same values.
    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = h.get(&format!(
            "/api/v1/dora/lead-time?{RANGE}&environment=production&limit=1{cursor}"
        ));
        paged.extend(
            page["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["git_hash"].clone()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(
        paged,
        expected.iter().map(|e| json!(e.0)).collect::<Vec<_>>()
    );

    let per_deployment = h.lead_time("&unit=deployment");
    assert_eq!(per_deployment["unit"], "deployment");
    assert_eq!(per_deployment["summary"]["count"], 6);
    assert_eq!(per_deployment["summary"]["median_mins"], 150.0);
    assert_eq!(per_deployment["summary"]["max_mins"], 300.0);

    let summary = h.get(&format!("/api/v1/dora/summary?{RANGE}"));
    assert_eq!(summary["unit"], "commit");
    assert_eq!(summary["lead_time"]["count"], 10);
    assert_eq!(summary["lead_time"]["value"], 150.0);
    let seconds = h.get(
        "/api/v1/dora/metrics?metric=lead_time_for_changes&start_date=2026-03-01&end_date=2026-03-01&interval=all&environment_tiers[]=production",
    );
    assert_eq!(
        seconds,
        json!(180.0 * 60.0),
        "GitLab's endpoint counts commits"
    );

    // Range edges are inclusive, in any offset: D5 at 16:00 UTC is 18:00 at +02:00.
    let until = |end: &str| {
        h.get(&format!(
            "/api/v1/dora/lead-time?start=2026-03-01T00:00:00Z&end={end}&environment=production"
        ))["summary"]["count"]
            .clone()
    };
    assert_eq!(until("2026-03-01T18:00:00%2B02:00"), 4, "D5 at the end");
    assert_eq!(
        until("2026-03-01T17:59:59.999999%2B02:00"),
        2,
        "D5 just after"
    );
    assert_eq!(until("2026-03-01T09:30:00-04:30"), 2, "D3 only");
    assert_eq!(until("2026-03-01T09:29:59.999999-04:30"), 0, "before D3");

    // Bots left out: c3 in both app environments.
    h.app
        .put(
            "/api/v1/settings",
            &json!({"excluded_authors": ["renovate*"]}),
        )
        .bearer(&h.admin)
        .send()
        .assert_status(200);
    let without_bots = h.lead_time("");
    assert_eq!(without_bots["summary"]["count"], 8);
    assert_eq!(without_bots["summary"]["median_mins"], 150.0);
    assert!(
        without_bots["values"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["git_hash"] != json!(sha("c3")))
    );
}

#[test]
fn an_unknown_unit_is_a_400() {
    let h = history();
    h.app
        .get(&format!("/api/v1/dora/lead-time?{RANGE}&unit=change"))
        .bearer(&h.writer)
        .send()
        .assert_problem(400, Some("unit"));
}

#[test]
fn the_summary_splits_the_lead_time_in_its_stages() {
    let app = TestApp::spawn();
    let writer = app.token("acme", "write");
    let registry = app.registry(&writer, "shop/web", false);
    let images_path = format!(
        "/api/v1/registries/{}/images",
        registry["registry_id"].as_str().unwrap()
    );
    // The build's time is the server's: the commits and the deployment are placed around it.
    let mut body = cd_request("run-stages");
    body.as_object_mut()
        .unwrap()
        .remove("git_hash_commit_timestamp");
    let probe = app.post(&images_path, &body).bearer(&writer).send();
    probe.assert_status(201);
    let built = chrono::DateTime::parse_from_rfc3339(probe.json()["built_at"].as_str().unwrap())
        .unwrap()
        .to_utc();
    let at = |minutes: i64| {
        (built + chrono::Duration::minutes(minutes))
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string()
    };
    let mut body = cd_request("run-stages-2");
    body["git_hash"] = json!(sha("s2"));
    body["git_hash_commit_timestamp"] = json!(at(-60));
    body["commits"] = json!([{"sha": sha("s1"), "timestamp": at(-120)},
                             {"sha": sha("s2"), "timestamp": at(-60)}]);
    let image = app.post(&images_path, &body).bearer(&writer).send();
    image.assert_status(201);
    let built_2 = chrono::DateTime::parse_from_rfc3339(image.json()["built_at"].as_str().unwrap())
        .unwrap()
        .to_utc();
    let build_delay_mins = (built_2 - built).num_microseconds().unwrap() as f64 / 60e6;
    app.post(
        "/api/v1/deployments",
        &json!({"image_id": image.json()["image_id"], "project_id": "shop", "app_id": "web",
                "environment": "production", "prod": true,
                "started_at": at(1), "deployed_at": at(2)}),
    )
    .bearer(&writer)
    .send()
    .assert_status(201);
    let summary = app
        .get(&format!(
            "/api/v1/dora/summary?start={}&end={}",
            at(-24 * 60),
            at(24 * 60)
        ))
        .bearer(&writer)
        .send()
        .json();
    let stages = &summary["stages"];
    let close = |value: &Value, expected: f64| {
        let value = value.as_f64().unwrap_or(f64::NAN);
        assert!(
            (value - expected).abs() < 1e-6,
            "{value} ≠ {expected}: {stages}"
        );
    };
    // Commit → build: 120 and 60 minutes before the first build, plus the second's delay.
    assert_eq!(stages["commit_to_build"]["count"], 2);
    close(
        &stages["commit_to_build"]["median_mins"],
        90.0 + build_delay_mins,
    );
    assert_eq!(stages["build_to_deploy_start"]["count"], 2);
    close(
        &stages["build_to_deploy_start"]["median_mins"],
        1.0 - build_delay_mins,
    );
    assert_eq!(stages["deploy_start_to_finish"]["count"], 2);
    close(&stages["deploy_start_to_finish"]["median_mins"], 1.0);
    assert_eq!(summary["lead_time"]["count"], 2);
    close(&summary["lead_time"]["value"], 92.0);
    // The stages split commit lead times: per deployment there are none to split.
    let per_deployment = app
        .get(&format!(
            "/api/v1/dora/summary?start={}&end={}&unit=deployment",
            at(-24 * 60),
            at(24 * 60)
        ))
        .bearer(&writer)
        .send()
        .json();
    assert!(per_deployment["stages"].is_null(), "{per_deployment}");
}

#[test]
fn a_commit_list_is_checked_and_part_of_the_retry() {
    let app = TestApp::spawn();
    let writer = app.token("acme", "write");
    let registry = app.registry(&writer, "shop/web", false);
    let images_path = format!(
        "/api/v1/registries/{}/images",
        registry["registry_id"].as_str().unwrap()
    );
    let with = |commits: Value| {
        let mut body = cd_request("run-1");
        body["commits"] = commits;
        body
    };
    let post = |body: &Value| app.post(&images_path, body).bearer(&writer).send();
    let c = |name: &str, time: &str| commit(name, time, None);
    for wrong in [
        json!("HEAD"),
        json!([1]),
        json!([{"sha": sha("a")}]),
        json!({"sha": sha("a")}),
    ] {
        post(&with(wrong)).assert_problem(422, None);
    }
    post(&with(json!([c("a", "07:00"), c("a", "08:00")])))
        .assert_problem(422, Some("commits[1].sha"));
    post(&with(
        json!([{"sha": "xyz", "timestamp": "2026-03-01T07:00:00Z"}]),
    ))
    .assert_problem(422, Some("commits[0].sha"));
    // A commit is counted by its sha: listed, it must be whole, and so must the head.
    post(&with(
        json!([{"sha": "3f78685", "timestamp": "2026-03-01T07:00:00Z"}]),
    ))
    .assert_problem(422, Some("commits[0].sha"));
    let mut short_head = with(json!([c("a", "07:00")]));
    short_head["git_hash"] = json!("3f78685");
    post(&short_head).assert_problem(422, Some("git_hash"));
    post(&with(json!([{"sha": sha("a"), "timestamp": "yesterday"}])))
        .assert_problem(422, Some("commits[0].timestamp"));
    post(&with(
        json!([{"sha": sha("a"), "timestamp": "2999-01-01T00:00:00Z"}]),
    ))
    .assert_problem(422, Some("commits[0].timestamp"));
    post(&with(
        json!([{"sha": sha("a"), "timestamp": "2026-03-01T07:00:00Z", "when": 1}]),
    ))
    .assert_problem(422, None);
    post(&with(
        json!([{"sha": sha("a"), "timestamp": "2026-03-01T07:00:00Z", "author": "x\u{202e}y"}]),
    ))
    .assert_problem(422, Some("commits[0].author"));
    // The head commit listed at another time than the request gives it.
    let head = cd_request("run-1")["git_hash"].clone();
    post(&with(
        json!([{"sha": head, "timestamp": "2026-03-01T07:00:00Z"}]),
    ))
    .assert_problem(422, Some("commits[0].timestamp"));
    let too_many: Vec<Value> = (0..5_001)
        .map(|n| json!({"sha": format!("{n:040x}"), "timestamp": "2026-03-01T07:00:00Z"}))
        .collect();
    post(&with(json!(too_many))).assert_problem(422, Some("commits"));
    let most: Vec<Value> = (0..5_000)
        .map(|n| json!({"sha": format!("{n:040x}"), "timestamp": "2026-03-01T07:00:00Z"}))
        .collect();
    let first = post(&with(json!(most)));
    first.assert_status(201);
    assert_eq!(first.json()["commits"].as_array().unwrap().len(), 5_000);
    // A retry is the same image; the same run with other commits is another build: 409.
    let retry = post(&with(json!(most)));
    retry.assert_status(200);
    assert_eq!(retry.json(), first.json());
    post(&with(json!([c("a", "07:00")]))).assert_problem(409, Some("run_id"));
    // Lists leave the commits out; one image's answer has them.
    let listed = app.get(&images_path).bearer(&writer).send().json();
    assert!(
        listed["items"][0].get("commits").is_none(),
        "{}",
        listed["items"][0]
    );
    let location = first.header("location").unwrap().to_owned();
    let fetched = app.get(&location).bearer(&writer).send().json();
    assert_eq!(fetched["commits"], first.json()["commits"]);
}
