//! Lead time for changes and deployment frequency, checked against a golden data set whose
//! expected figures are computed here, independently, in plain Rust over the generated records
//! (not with the SQL or the code under test).

use chrono::{DateTime, Duration, FixedOffset, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, TestApp};

/// A deterministic pseudo-random sequence (64-bit LCG): the data set is the same every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// One deployment as the test knows it (the truth the API must reproduce).
#[derive(Clone, Debug)]
struct Truth {
    deployed_at: DateTime<Utc>,
    commit: Option<DateTime<Utc>>,
    project: Option<String>,
    app: String,
    environment: String,
    prod: bool,
    image_name_with_tag: String,
}

impl Truth {
    /// Exact elapsed minutes, computed from chrono instants.
    fn minutes(&self) -> Option<f64> {
        self.commit
            .map(|c| (self.deployed_at - c).num_microseconds().unwrap() as f64 / 60_000_000.0)
    }
}

fn at(value: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value)
        .unwrap()
        .with_timezone(&Utc)
}

fn wire(instant: DateTime<Utc>, offset_secs: i32) -> String {
    instant
        .with_timezone(&FixedOffset::east_opt(offset_secs).unwrap())
        .to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// Median and p90 by linear interpolation between closest ranks, written independently.
fn interpolated(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let h = (sorted.len() as f64 - 1.0) * q;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    Some(sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
}

fn close(actual: &Value, expected: Option<f64>, what: &str) {
    match expected {
        None => assert!(actual.is_null(), "{what}: expected null, got {actual}"),
        Some(expected) => {
            let actual = actual
                .as_f64()
                .unwrap_or_else(|| panic!("{what}: expected {expected}, got {actual}"));
            assert!(
                (actual - expected).abs() <= 1e-9 * expected.abs().max(1.0),
                "{what}: {actual} != {expected}"
            );
        }
    }
}

struct Golden {
    app: TestApp,
    reader: String,
    truth: Vec<Truth>,
}

const START: &str = "2026-03-01T00:00:00Z";
const END: &str = "2026-03-31T23:59:59.999999Z";
const OFFSETS: [i32; 6] = [0, 19_800, -28_800, -25_200, 49_500, 3_600]; // Z, +05:30, -08:00, -07:00, +13:45, +01:00

impl Golden {
    /// The month's weekly lead-time answer (200).
    fn weekly_lead_time(&self) -> serde_json::Value {
        let query =
            format!("/api/v1/dora/lead-time?unit=deployment&start={START}&end={END}&interval=week");
        let response = self.app.get(&query).bearer(&self.reader).send();
        response.assert_status(200);
        response.json()
    }
}

/// Builds the data set through the API: images (via the pipeline trigger) with commits in
/// several time zones, then back-filled deployments, retries and another org's rows.
fn golden() -> Golden {
    let app = TestApp::spawn();
    let writer = app.token("acme", "write");
    let reader = app.token("acme", "read");
    let registry = app.registry(&writer, "team/service-api", false);
    let images_path = format!(
        "/api/v1/registries/{}/images",
        registry["registry_id"].as_str().unwrap()
    );
    let mut rng = Lcg(0x5eed);
    let mut truth = Vec::new();

    let create_image = |run: usize,
                        commit: Option<DateTime<Utc>>,
                        offset: i32,
                        token: &str,
                        path: &str|
     -> (String, String) {
        let mut body = json!({
            "tag_name": format!("build-{run}"), "image_name": "ghcr.io/acme/api",
            "image_name_with_tag": format!("ghcr.io/acme/api:build-{run}"),
            "git_hash": format!("{:07x}", 0xabc0000 + run), "run_id": format!("run-{run}")
        });
        if let Some(commit) = commit {
            body["git_hash_commit_timestamp"] = json!(wire(commit, offset));
        }
        let response = app.post(path, &body).bearer(token).send();
        response.assert_status(201);
        let image = response.json();
        (
            image["image_id"].as_str().unwrap().to_owned(),
            image["image_name_with_tag"].as_str().unwrap().to_owned(),
        )
    };
    let deploy = |token: &str, body: Value| -> (u16, Value) {
        let response = app.post("/api/v1/deployments", &body).bearer(token).send();
        (response.status, response.json())
    };

    // Generated deployments: commits from mid-February to the end of March in six zones,
    // deployed 0–5 days later, to one to three environments.
    let environments = [("production", true), ("staging", false), ("dev", false)];
    for run in 0..40 {
        let commit = at("2026-02-20T00:00:00Z") + Duration::seconds(rng.next(40 * 86_400) as i64);
        let offset = OFFSETS[run % OFFSETS.len()];
        let (image_id, name) = create_image(run, Some(commit), offset, &writer, &images_path);
        for (environment, prod) in environments.iter().take(1 + rng.next(3) as usize) {
            let deployed_at = commit
                + Duration::seconds(rng.next(5 * 86_400) as i64 + 1)
                + Duration::microseconds(rng.next(1_000_000) as i64);
            let body = json!({"image_id": image_id, "project_id": "shop", "app_id": format!("app-{}", run % 3),
                "environment": environment, "prod": prod, "deployed_at": wire(deployed_at, OFFSETS[(run + 1) % OFFSETS.len()])});
            assert_eq!(deploy(&writer, body).0, 201);
            truth.push(Truth {
                deployed_at,
                commit: Some(commit),
                project: Some("shop".into()),
                app: format!("app-{}", run % 3),
                environment: environment.to_string(),
                prod: *prod,
                image_name_with_tag: name.clone(),
            });
        }
    }

    // Hand-picked edges. (commit, its zone, deployed_at, project)
    let edges: [(Option<&str>, i32, &str, Option<&str>); 10] = [
        (Some("2026-02-28T23:00:00Z"), 0, START, Some("shop")), // exactly at start: in
        (
            Some("2026-02-28T23:00:00Z"),
            0,
            "2026-02-28T23:59:59.999999Z",
            Some("shop"),
        ), // 1 µs before: out
        (Some("2026-03-31T20:00:00Z"), 0, END, Some("shop")),   // exactly at end: in
        (
            Some("2026-03-31T20:00:00Z"),
            0,
            "2026-04-01T00:00:00Z",
            Some("shop"),
        ), // 1 µs after: out
        (
            Some("2026-03-08T01:30:00-08:00"),
            -28_800,
            "2026-03-08T03:30:00-07:00",
            Some("shop"),
        ), // US DST: 60 min
        (
            Some("2026-03-29T00:30:00+01:00"),
            3_600,
            "2026-03-29T03:30:00+02:00",
            Some("shop"),
        ), // EU DST: 120 min
        (
            Some("2026-03-10T23:59:59.999999Z"),
            0,
            "2026-03-11T00:00:00Z",
            Some("shop"),
        ), // midnight crossing
        (
            Some("2026-03-20T12:00:00+05:30"),
            19_800,
            "2026-03-20T06:00:00Z",
            Some("shop"),
        ), // skewed: commit later
        (None, 0, "2026-03-15T12:00:00Z", Some("shop")),        // no commit time
        (
            Some("2026-03-12T00:00:00Z"),
            0,
            "2026-03-12T06:00:00Z",
            None,
        ), // no project
    ];
    for (i, (commit, offset, deployed_at, project)) in edges.into_iter().enumerate() {
        let run = 1000 + i;
        let commit = commit.map(at);
        let (image_id, name) = create_image(run, commit, offset, &writer, &images_path);
        let mut body = json!({"image_id": image_id, "app_id": "edge", "environment": "production", "prod": true,
            "deployed_at": deployed_at, "deployment_id": format!("deploy-{run}")});
        if let Some(project) = project {
            body["project_id"] = json!(project);
        }
        assert_eq!(deploy(&writer, body.clone()).0, 201);
        // A retried post with the same deployment id is answered with the first record.
        let (status, retried) = deploy(&writer, body.clone());
        assert_eq!(status, 200);
        assert_eq!(
            retried["created_at"].as_str().map(at),
            Some(at(deployed_at))
        );
        // A redeploy of the image running in the app environment is not a second change.
        // (Deploying it again after another image is a rollback: outcomes.rs.)
        body["deployment_id"] = json!(format!("redeploy-{run}"));
        assert_eq!(deploy(&writer, body).0, 200);
        truth.push(Truth {
            deployed_at: at(deployed_at),
            commit,
            project: project.map(str::to_owned),
            app: "edge".into(),
            environment: "production".into(),
            prod: true,
            image_name_with_tag: name,
        });
    }

    // Another org's deployments in the same range: never counted for acme.
    let globex = app.token("globex", "write");
    let globex_registry = app.registry(&globex, "team/service-api", false);
    let globex_images = format!(
        "/api/v1/registries/{}/images",
        globex_registry["registry_id"].as_str().unwrap()
    );
    for run in 0..5 {
        let (image_id, _) = create_image(
            run,
            Some(at("2026-03-05T00:00:00Z")),
            0,
            &globex,
            &globex_images,
        );
        let body = json!({"image_id": image_id, "project_id": "shop", "app_id": "app-0", "environment": "production",
            "prod": true, "deployed_at": "2026-03-06T00:00:00Z"});
        assert_eq!(deploy(&globex, body).0, 201);
    }
    Golden { app, reader, truth }
}

fn in_range(t: &Truth) -> bool {
    t.deployed_at >= at(START) && t.deployed_at <= at(END)
}

fn counts_for_lead_time(t: &Truth) -> bool {
    in_range(t) && t.project.is_some() && t.commit.is_some()
}

#[test]
fn lead_time_values_summary_and_series_match_the_independently_computed_truth() {
    let g = golden();
    let expected: Vec<&Truth> = {
        let mut v: Vec<&Truth> = g.truth.iter().filter(|t| counts_for_lead_time(t)).collect();
        v.sort_by_key(|t| std::cmp::Reverse(t.deployed_at));
        v
    };
    assert!(expected.len() > 40, "the data set exercises enough rows");

    // Every value, page by page, newest first.
    let mut values = Vec::new();
    let mut path = format!(
        "/api/v1/dora/lead-time?unit=deployment&start={START}&end={END}&interval=day&limit=7"
    );
    let first = loop {
        let response = g.app.get(&path).bearer(&g.reader).send();
        response.assert_status(200);
        let body = response.json();
        values.extend(body["values"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!(
                    "/api/v1/dora/lead-time?unit=deployment&start={START}&end={END}&interval=day&limit=7&cursor={cursor}"
                )
            }
            None => break body,
        }
    };
    assert_eq!(values.len(), expected.len());
    for (value, truth) in values.iter().zip(&expected) {
        assert_eq!(
            at(value["created_at"].as_str().unwrap()),
            truth.deployed_at,
            "{value}"
        );
        close(&value["duration_mins"], truth.minutes(), "duration_mins");
        assert_eq!(
            value["git_hash_commit_timestamp"].as_str().map(at),
            truth.commit
        );
        assert_eq!(
            value["image_name_with_tag"],
            truth.image_name_with_tag.as_str()
        );
        assert_eq!(value["project_id"], truth.project.as_deref().unwrap());
        assert_eq!(
            (
                value["app_id"].as_str().unwrap(),
                value["environment"].as_str().unwrap(),
                value["prod"].as_bool().unwrap()
            ),
            (truth.app.as_str(), truth.environment.as_str(), truth.prod)
        );
        assert_eq!(value["organization_id"], "acme");
        assert_eq!(value["clock_skew"], truth.minutes().unwrap() < 0.0);
    }
    assert_eq!(first["start_time"].as_str().map(at), Some(at(START)));
    assert_eq!(first["end_time"].as_str().map(at), Some(at(END)));

    // Summary over the non-negative durations; skewed ones are counted apart.
    let mut minutes: Vec<f64> = expected
        .iter()
        .filter_map(|t| t.minutes())
        .filter(|m| *m >= 0.0)
        .collect();
    minutes.sort_by(f64::total_cmp);
    let summary = &first["summary"];
    assert_eq!(summary["count"], minutes.len());
    assert_eq!(
        summary["clock_skew_excluded"],
        expected.len() - minutes.len()
    );
    assert_eq!(summary["clock_skew_excluded"], 1);
    close(
        &summary["median_mins"],
        interpolated(&minutes, 0.5),
        "median",
    );
    close(&summary["p90_mins"], interpolated(&minutes, 0.9), "p90");
    close(
        &summary["mean_mins"],
        Some(minutes.iter().sum::<f64>() / minutes.len() as f64),
        "mean",
    );
    close(&summary["min_mins"], minutes.first().copied(), "min");
    close(&summary["max_mins"], minutes.last().copied(), "max");
    let median = interpolated(&minutes, 0.5).unwrap();
    let level = if median < 1440.0 {
        "elite"
    } else if median < 7.0 * 1440.0 {
        "high"
    } else if median < 30.0 * 1440.0 {
        "medium"
    } else {
        "low"
    };
    assert_eq!(summary["dora_level"], level);

    // A daily series with every day of March, empty days included.
    let series = first["series"].as_array().unwrap();
    assert_eq!(series.len(), 31);
    for (day, period) in series.iter().enumerate() {
        let day_start = at(START) + Duration::days(day as i64);
        assert_eq!(period["period_start"].as_str().map(at), Some(day_start));
        let mut in_day: Vec<f64> = expected
            .iter()
            .filter(|t| t.deployed_at >= day_start && t.deployed_at < day_start + Duration::days(1))
            .filter_map(|t| t.minutes())
            .filter(|m| *m >= 0.0)
            .collect();
        in_day.sort_by(f64::total_cmp);
        assert_eq!(period["count"], in_day.len(), "day {day}");
        close(
            &period["median_mins"],
            interpolated(&in_day, 0.5),
            "daily median",
        );
    }
    assert_eq!(
        series
            .iter()
            .map(|p| p["count"].as_u64().unwrap())
            .sum::<u64>(),
        minutes.len() as u64
    );
}

#[test]
fn filters_narrow_the_figures_to_matching_deployments() {
    let g = golden();
    for (query, keep) in [
        (
            "environment=staging",
            Box::new(|t: &Truth| t.environment == "staging") as Box<dyn Fn(&Truth) -> bool>,
        ),
        ("prod=true", Box::new(|t: &Truth| t.prod)),
        (
            "app_id=app-1&prod=false",
            Box::new(|t: &Truth| t.app == "app-1" && !t.prod),
        ),
        (
            "project_id=shop&environment=production",
            Box::new(|t: &Truth| t.environment == "production"),
        ),
        ("project_id=none", Box::new(|_: &Truth| false)),
    ] {
        let body = g
            .app
            .get(&format!(
                "/api/v1/dora/lead-time?unit=deployment&start={START}&end={END}&{query}&limit=500"
            ))
            .bearer(&g.reader)
            .send()
            .json();
        let mut minutes: Vec<f64> = g
            .truth
            .iter()
            .filter(|t| counts_for_lead_time(t) && keep(t))
            .filter_map(|t| t.minutes())
            .filter(|m| *m >= 0.0)
            .collect();
        minutes.sort_by(f64::total_cmp);
        assert_eq!(body["summary"]["count"], minutes.len(), "{query}");
        close(
            &body["summary"]["median_mins"],
            interpolated(&minutes, 0.5),
            query,
        );
        close(
            &body["summary"]["p90_mins"],
            interpolated(&minutes, 0.9),
            query,
        );
    }
}

#[test]
fn deployment_frequency_counts_every_deployment_once_per_week() {
    let g = golden();
    let body = g
        .app
        .get(&format!(
            "/api/v1/dora/deployment-frequency?start={START}&end={END}&interval=week"
        ))
        .bearer(&g.reader)
        .send();
    body.assert_status(200);
    let body = body.json();
    let in_range: Vec<&Truth> = g.truth.iter().filter(|t| in_range(t)).collect();
    assert_eq!(
        body["summary"]["count"],
        in_range.len(),
        "retries and redeploys are not counted twice; other orgs never"
    );
    let days = (at(END) - at(START)).num_seconds() as f64 / 86_400.0;
    close(
        &body["summary"]["per_day"],
        Some(in_range.len() as f64 / days),
        "per_day",
    );
    let per_day = in_range.len() as f64 / days;
    let level = if per_day >= 1.0 {
        "elite"
    } else if per_day >= 1.0 / 7.0 {
        "high"
    } else if per_day >= 1.0 / 30.0 {
        "medium"
    } else {
        "low"
    };
    assert_eq!(body["summary"]["dora_level"], level);
    // ISO weeks: Monday 2026-02-23 to Monday 2026-03-30.
    let series = body["series"].as_array().unwrap();
    assert_eq!(series.len(), 6);
    for (week, period) in series.iter().enumerate() {
        let week_start = at("2026-02-23T00:00:00Z") + Duration::weeks(week as i64);
        assert_eq!(period["period_start"].as_str().map(at), Some(week_start));
        let count = in_range
            .iter()
            .filter(|t| {
                t.deployed_at >= week_start && t.deployed_at < week_start + Duration::weeks(1)
            })
            .count();
        assert_eq!(period["count"], count, "week of {week_start}");
    }
}

#[test]
fn the_admin_reads_the_figures_of_the_org_it_names() {
    let g = golden();
    let acme = g
        .app
        .get(&format!(
            "/api/v1/dora/deployment-frequency?start={START}&end={END}"
        ))
        .bearer(&g.reader)
        .send()
        .json();
    let as_admin = g
        .app
        .get(&format!(
            "/api/v1/dora/deployment-frequency?start={START}&end={END}&org_id=acme"
        ))
        .bearer(ADMIN_TOKEN)
        .send()
        .json();
    assert_eq!(acme["summary"], as_admin["summary"]);
    let globex = g
        .app
        .get(&format!(
            "/api/v1/dora/deployment-frequency?start={START}&end={END}&org_id=globex"
        ))
        .bearer(ADMIN_TOKEN)
        .send()
        .json();
    assert_eq!(globex["summary"]["count"], 5);
    g.app
        .get(&format!(
            "/api/v1/dora/lead-time?unit=deployment&start={START}&end={END}&org_id=globex"
        ))
        .bearer(&g.reader)
        .send()
        .assert_problem(403, None);
    g.app
        .get(&format!(
            "/api/v1/dora/lead-time?unit=deployment&start={START}&end={END}"
        ))
        .send()
        .assert_problem(401, None);
}

#[test]
fn an_empty_range_has_zero_counts_and_no_level() {
    let app = TestApp::spawn();
    let reader = app.token("acme", "read");
    let body = app.get("/api/v1/dora/lead-time?unit=deployment&start=2026-01-01T00:00:00Z&end=2026-01-03T00:00:00Z&interval=day").bearer(&reader).send().json();
    assert_eq!(body["summary"]["count"], 0);
    assert!(body["summary"]["median_mins"].is_null() && body["summary"]["dora_level"].is_null());
    assert_eq!(body["series"].as_array().unwrap().len(), 3);
    assert!(body["values"].as_array().unwrap().is_empty());
}

#[test]
fn bad_dora_queries_and_deployments_are_documented_4xx() {
    let app = TestApp::spawn();
    let writer = app.token("acme", "write");
    let reader = app.token("acme", "read");
    let ok = "start=2026-03-01T00:00:00Z&end=2026-03-02T00:00:00Z";
    for (query, field) in [
        ("end=2026-03-02T00:00:00Z", "start"),
        ("start=2026-03-01T00:00:00Z", "end"),
        ("start=yesterday&end=2026-03-02T00:00:00Z", "start"),
        (
            "start=2026-03-01T00:00:00&end=2026-03-02T00:00:00Z",
            "start",
        ),
        (
            "start=2026-03-03T00:00:00Z&end=2026-03-02T00:00:00Z",
            "start",
        ),
        ("start=2025-01-01T00:00:00Z&end=2026-03-02T00:00:00Z", "end"),
        (&format!("{ok}&interval=hour"), "interval"),
        (&format!("{ok}&prod=yes"), "prod"),
        (&format!("{ok}&environment="), "environment"),
        (&format!("{ok}&cursor=garbage"), "cursor"),
    ] {
        for route in ["lead-time", "deployment-frequency"] {
            if route == "deployment-frequency" && field == "cursor" {
                continue;
            }
            app.get(&format!("/api/v1/dora/{route}?{query}"))
                .bearer(&reader)
                .send()
                .assert_problem(400, Some(field));
        }
    }

    // Deployments.
    let registry = app.registry(&writer, "app", false);
    let images = format!(
        "/api/v1/registries/{}/images",
        registry["registry_id"].as_str().unwrap()
    );
    let image = app
        .post(&images, &json!({"tag_name": "t", "image_name": "i", "image_name_with_tag": "i:t", "git_hash": "abcdef1", "run_id": "r"}))
        .bearer(&writer)
        .send()
        .json();
    let image_id = image["image_id"].as_str().unwrap();
    let base = json!({"image_id": image_id, "project_id": "p", "app_id": "a", "environment": "production", "prod": true});
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    for (body, status, field) in [
        (with("image_id", json!("nope")), 422, Some("image_id")),
        (
            with("image_id", json!("0190a5c4-7a2e-7c1b-8c3d-5e6f7a8b9c0d")),
            404,
            None,
        ),
        (
            with("environment", json!("prod env")),
            422,
            Some("environment"),
        ),
        (with("environment", json!("")), 422, Some("environment")),
        (with("app_id", json!("")), 422, Some("app_id")),
        (with("prod", json!("yes")), 422, Some("prod")),
        (
            with("deployed_at", json!("2026-03-01T10:00:00")),
            422,
            Some("deployed_at"),
        ),
        (
            with(
                "deployed_at",
                json!((Utc::now() + Duration::hours(1)).to_rfc3339()),
            ),
            422,
            Some("deployed_at"),
        ),
        (with("colour", json!("red")), 422, Some("colour")),
    ] {
        app.post("/api/v1/deployments", &body)
            .bearer(&writer)
            .send()
            .assert_problem(status, field);
    }
    app.post("/api/v1/deployments", &base)
        .bearer(&reader)
        .send()
        .assert_problem(403, None);
    app.post("/api/v1/deployments", &base)
        .send()
        .assert_problem(401, None);
    // Another org cannot deploy (or learn of) this image.
    let globex = app.token("globex", "write");
    app.post("/api/v1/deployments", &base)
        .bearer(&globex)
        .send()
        .assert_problem(404, None);
    // A deployment id reused for another app environment is a conflict.
    let first = with("deployment_id", json!("d-1"));
    app.post("/api/v1/deployments", &first)
        .bearer(&writer)
        .send()
        .assert_status(201);
    let mut clash = first.clone();
    clash["app_id"] = json!("other");
    app.post("/api/v1/deployments", &clash)
        .bearer(&writer)
        .send()
        .assert_problem(409, Some("deployment_id"));
    // An image without a commit time is recorded, without a duration.
    let recorded = app
        .post(
            "/api/v1/deployments",
            &with("environment", json!("staging")),
        )
        .bearer(&writer)
        .send();
    recorded.assert_status(201);
    assert!(recorded.json()["duration_mins"].is_null());
}

/// Regressions found by schemathesis: instants outside years 0001–9999 (in UTC) are refused
/// everywhere (they would be stored in a form that cannot be read back), and the `Location`
/// of a recorded deployment can be fetched.
#[test]
fn out_of_range_years_are_refused_and_a_deployment_location_resolves() {
    let app = TestApp::spawn();
    let writer = app.token("acme", "write");
    let registry = app.registry(&writer, "app", false);
    let images = format!(
        "/api/v1/registries/{}/images",
        registry["registry_id"].as_str().unwrap()
    );
    let image = json!({"tag_name": "t", "image_name": "i", "image_name_with_tag": "i:t", "git_hash": "abcdef1",
        "run_id": "r", "git_hash_commit_timestamp": "0000-01-01T00:00:00+01:00"});
    app.post(&images, &image)
        .bearer(&writer)
        .send()
        .assert_problem(422, Some("git_hash_commit_timestamp"));
    let mut image = image;
    image["git_hash_commit_timestamp"] = json!("2026-03-01T00:00:00Z");
    let image_id = app.post(&images, &image).bearer(&writer).send().json()["image_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deployment = json!({"image_id": image_id, "project_id": "p", "app_id": "a", "environment": "e",
        "deployed_at": "0000-01-01T00:00:00+01:00"});
    app.post("/api/v1/deployments", &deployment)
        .bearer(&writer)
        .send()
        .assert_problem(422, Some("deployed_at"));
    for range in [
        "start=0000-01-01T00:00:00%2B02:00&end=0000-01-01T10:00:00Z",
        "start=9999-12-31T20:00:00-05:00&end=9999-12-31T23:00:00Z",
    ] {
        app.get(&format!("/api/v1/dora/lead-time?unit=deployment&{range}"))
            .bearer(&writer)
            .send()
            .assert_problem(400, Some("start"));
    }

    let mut deployment = deployment;
    deployment["deployed_at"] = json!("2026-03-01T01:00:00Z");
    let created = app
        .post("/api/v1/deployments", &deployment)
        .bearer(&writer)
        .send();
    created.assert_status(201);
    let location = created.header("location").unwrap().to_owned();
    let fetched = app.get(&location).bearer(&writer).send();
    fetched.assert_status(200);
    assert_eq!(fetched.json(), created.json());
    assert_eq!(fetched.json()["duration_mins"], 60.0);
    app.get(&location)
        .bearer(&app.token("globex", "read"))
        .send()
        .assert_problem(404, None);
    app.get("/api/v1/deployments/nope")
        .bearer(&writer)
        .send()
        .assert_problem(400, Some("lead_time_id"));
}

#[test]
fn a_database_upgraded_from_before_the_rollup_is_rolled_up_by_its_own_traffic_with_the_same_answers()
 {
    let g = golden();
    let answer = || g.weekly_lead_time();
    let before = answer();
    assert!(before["summary"]["count"].as_u64().unwrap() > 40);
    // The database as schema 3 left it: the records, no rollup, nothing after.
    cd_core::testing::take_back_to_schema_3(&*g.app.sql()).unwrap();
    // The next request migrates and, the rollup being pending, answers from the records; once
    // it has responded, the component rolls up a batch (here every record).
    assert_eq!(answer(), before);
    let pending = || g.app.count("SELECT count(*) FROM backfills");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pending() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the back-fill is still pending 10 s after a request"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let rolled_up = g.app.count("SELECT sum(deployments) FROM lead_time_days");
    let records = g.app.count("SELECT count(*) FROM image_lead_times");
    assert_eq!(rolled_up, records, "every record is rolled up once");
    assert_eq!(answer(), before, "the same answer from the rollup");
}

#[test]
fn a_database_in_the_text_encoding_is_copied_by_its_own_traffic_with_the_same_answers() {
    let g = golden();
    let answer = || g.weekly_lead_time();
    let before = answer();
    // The database as the build before migration 0007 left it, then migrated with the copy
    // of images and records left pending, as a large database is.
    let db = g.app.sql();
    cd_core::testing::take_back_to_schema_6(&*db).unwrap();
    assert_eq!(cd_core::testing::ensure_schema_copying(&*db).unwrap(), 6);
    drop(db);
    let pending = || g.app.count("SELECT count(*) FROM backfills");
    assert!(pending() > 0);
    // The component's DORA read needs every record: it finishes the copy itself and answers
    // the same; after responding, the component drops the old tables a step at a time.
    assert_eq!(answer(), before);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pending() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the upgrade is still pending 10 s after its last request"
        );
        answer();
    }
    let old_tables = g
        .app
        .count("SELECT count(*) FROM sqlite_master WHERE name LIKE '%\\_text' ESCAPE '\\'");
    assert_eq!(old_tables, 0, "the text tables are dropped");
    assert_eq!(answer(), before);
}

#[test]
fn the_benchmark_year_decides_the_level_or_the_quick_check_bucket_and_is_named() {
    let g = golden();
    let query = |metric: &str, benchmark: Option<&str>| {
        let extra = benchmark.map_or(String::new(), |b| format!("&benchmark={b}"));
        let response = g
            .app
            .get(&format!(
                "/api/v1/dora/{metric}?start={START}&end={END}{extra}"
            ))
            .bearer(&g.reader)
            .send();
        response.assert_status(200);
        response.json()["summary"].clone()
    };
    for metric in ["lead-time", "deployment-frequency"] {
        let default = query(metric, None);
        assert_eq!(default["benchmark"], "2024", "{metric}");
        assert!(default["dora_level"].is_string() && default["dora_bucket"].is_null());
        assert_eq!(query(metric, Some("2024")), default, "{metric}");
        let of_2023 = query(metric, Some("2023"));
        assert_eq!(of_2023["benchmark"], "2023");
        assert_eq!(
            of_2023["dora_level"], default["dora_level"],
            "the same bands"
        );
        let of_2025 = query(metric, Some("2025"));
        assert_eq!(of_2025["benchmark"], "2025");
        assert!(of_2025["dora_level"].is_null(), "2025 has no levels");
        assert_eq!(of_2025["count"], default["count"]);
        let bucket = of_2025["dora_bucket"].as_str().unwrap().to_owned();
        // The bucket is the median's (or the rate's) under the Quick Check's bounds.
        let expected = if metric == "lead-time" {
            let median = default["median_mins"].as_f64().unwrap();
            match median {
                m if m < 60.0 => "less than one hour",
                m if m < 1_440.0 => "less than one day",
                m if m < 7.0 * 1_440.0 => "one day to one week",
                m if m < 30.0 * 1_440.0 => "one week to one month",
                m if m < 180.0 * 1_440.0 => "one to six months",
                _ => "more than six months",
            }
        } else {
            match default["per_day"].as_f64().unwrap() {
                r if r > 24.0 => "on demand (multiple deploys per day)",
                r if r >= 1.0 => "between once per hour and once per day",
                r if r >= 1.0 / 7.0 => "between once per day and once per week",
                r if r >= 1.0 / 30.0 => "between once per week and once per month",
                r if r * 180.0 >= 1.0 => "between once per month and once every six months",
                _ => "less than once per six months",
            }
        };
        assert_eq!(bucket, expected, "{metric}");
    }
    g.app
        .get(&format!(
            "/api/v1/dora/lead-time?unit=deployment&start={START}&end={END}&benchmark=2022"
        ))
        .bearer(&g.reader)
        .send()
        .assert_problem(400, Some("benchmark"));
}
