//! What the dashboard reads beside the DORA figures: `GET /api/v1/deployments` (the org's
//! deployments, newest first, filtered and paged), a lead-time period's `p90_mins` and a
//! delivery's `subject_id`, each on a small hand-built history whose expected answers are
//! worked out below by hand.
//!
//! The list's history (org acme, one registry channel, images I0…I2 built in order; project
//! `shop` unless said; March 2026):
//!
//! | deployment | image | app / environment        | deployed (UTC) | said          |
//! |------------|-------|--------------------------|----------------|---------------|
//! | D0         | I0    | web / staging            | 03-02 10:00    |               |
//! | D1         | I0    | web / production (prod)  | 03-03 10:00    |               |
//! | D2         | I1    | api / staging            | 03-04 10:00    | status failed |
//! | D3         | I1    | api / production (prod)  | 03-05 10:00    | no project    |
//! | D4         | I2    | web / staging            | 03-05 10:00    |               |
//! | D5         | I2    | api / production (prod)  | 03-06 10:00    |               |
//!
//! Newest first: D5, then D3 and D4 (deployed at the same instant: by `lead_time_id`,
//! descending), D2, D1, D0. Pages of two put the tie across the first page's end, so the
//! cursor's `lead_time_id` part is what finds the second of them. Org globex has one
//! deployment of its own, which acme never sees.

use serde_json::{Value, json};

use crate::helpers::{TestApp, cd_request};

/// A row of the table above.
struct Seeded {
    /// Which of I0…I2.
    image: usize,
    project_id: Option<&'static str>,
    app_id: &'static str,
    environment: &'static str,
    prod: bool,
    deployed_at: &'static str,
    status: &'static str,
}

const fn seeded(
    image: usize,
    project_id: Option<&'static str>,
    (app_id, environment, prod): (&'static str, &'static str, bool),
    deployed_at: &'static str,
    status: &'static str,
) -> Seeded {
    Seeded {
        image,
        project_id,
        app_id,
        environment,
        prod,
        deployed_at,
        status,
    }
}

/// D0…D5, one line each as in the table.
#[rustfmt::skip]
const DEPLOYMENTS: [Seeded; 6] = [
    seeded(0, Some("shop"), ("web", "staging", false), "2026-03-02T10:00:00Z", "succeeded"),
    seeded(0, Some("shop"), ("web", "production", true), "2026-03-03T10:00:00Z", "succeeded"),
    seeded(1, Some("shop"), ("api", "staging", false), "2026-03-04T10:00:00Z", "failed"),
    seeded(1, None, ("api", "production", true), "2026-03-05T10:00:00Z", "succeeded"),
    seeded(2, Some("shop"), ("web", "staging", false), "2026-03-05T10:00:00Z", "succeeded"),
    seeded(2, Some("shop"), ("api", "production", true), "2026-03-06T10:00:00Z", "succeeded"),
];

struct History {
    app: TestApp,
    reader: String,
    /// image_id of I0…I2.
    images: Vec<String>,
    /// The records of D0…D5 as their POSTs answered.
    deployments: Vec<Value>,
    globex_reader: String,
    globex_image: String,
    globex_deployment: String,
}

/// A new image of the registry on its `default` channel (a patch bump), with its own head
/// commit `git_hash` made at `commit_at`.
fn build_image(
    app: &TestApp,
    writer: &str,
    registry_id: &str,
    run: &str,
    git_hash: &str,
    commit_at: &str,
) -> String {
    let mut body = cd_request(run);
    body["git_hash"] = json!(git_hash);
    body["git_hash_commit_timestamp"] = json!(commit_at);
    let response = app
        .post(&format!("/api/v1/registries/{registry_id}/images"), &body)
        .bearer(writer)
        .send();
    response.assert_status(201);
    response.json()["image_id"].as_str().unwrap().to_owned()
}

/// Records a deployment and answers its record (201: each is a first).
fn deploy(app: &TestApp, writer: &str, body: &Value) -> Value {
    let response = app.post("/api/v1/deployments", body).bearer(writer).send();
    response.assert_status(201);
    response.json()
}

fn lead_time_ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
        .iter()
        .map(|record| record["lead_time_id"].as_str().unwrap().to_owned())
        .collect()
}

impl History {
    fn post() -> History {
        let app = TestApp::spawn();
        let writer = app.token("acme", "write");
        let reader = app.token("acme", "read");
        let registry = app.registry(&writer, "shop/site", false);
        let registry_id = registry["registry_id"].as_str().unwrap();
        let images: Vec<String> = (0..3)
            .map(|n| {
                build_image(
                    &app,
                    &writer,
                    registry_id,
                    &format!("run-{n}"),
                    &format!("{n:07x}"),
                    "2026-03-01T09:00:00Z",
                )
            })
            .collect();
        let deployments = DEPLOYMENTS
            .iter()
            .map(|d| {
                let record = deploy(
                    &app,
                    &writer,
                    &json!({"image_id": images[d.image], "project_id": d.project_id,
                            "app_id": d.app_id, "environment": d.environment, "prod": d.prod,
                            "deployed_at": d.deployed_at, "status": d.status}),
                );
                assert_eq!(record["status"], d.status, "{record}");
                assert_eq!(record["kind"], "planned", "no rollback: {record}");
                record
            })
            .collect();

        let globex_writer = app.token("globex", "write");
        let globex_reader = app.token("globex", "read");
        let globex_registry = app.registry(&globex_writer, "globex/site", false);
        let globex_image = build_image(
            &app,
            &globex_writer,
            globex_registry["registry_id"].as_str().unwrap(),
            "run-g",
            "00000ff",
            "2026-03-01T09:00:00Z",
        );
        let globex_deployment = deploy(
            &app,
            &globex_writer,
            &json!({"image_id": globex_image, "project_id": "shop", "app_id": "web",
                    "environment": "staging", "deployed_at": "2026-03-04T10:00:00Z"}),
        )["lead_time_id"]
            .as_str()
            .unwrap()
            .to_owned();
        History {
            app,
            reader,
            images,
            deployments,
            globex_reader,
            globex_image,
            globex_deployment,
        }
    }

    fn id(&self, n: usize) -> String {
        self.deployments[n]["lead_time_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The ids of `which` (deployment numbers) in the list's order, worked out from the table:
    /// D5, the D3/D4 tie by `lead_time_id` descending, D2, D1, D0.
    fn newest_first(&self, which: &[usize]) -> Vec<String> {
        let tie = if self.id(3) > self.id(4) {
            [3, 4]
        } else {
            [4, 3]
        };
        [5, tie[0], tie[1], 2, 1, 0]
            .into_iter()
            .filter(|n| which.contains(n))
            .map(|n| self.id(n))
            .collect()
    }

    fn list_as(&self, token: &str, query: &str) -> Value {
        let response = self
            .app
            .get(&format!("/api/v1/deployments?{query}"))
            .bearer(token)
            .send();
        response.assert_status(200);
        response.json()
    }

    fn list(&self, query: &str) -> Value {
        self.list_as(&self.reader, query)
    }
}

#[test]
fn the_list_is_every_deployment_of_the_org_newest_first_failed_and_projectless_included() {
    let history = History::post();
    let page = history.list("");
    assert_eq!(
        lead_time_ids(&page),
        history.newest_first(&[0, 1, 2, 3, 4, 5])
    );
    assert!(page["next_cursor"].is_null(), "one page: {page}");
    for record in page["items"].as_array().unwrap() {
        let one = history
            .app
            .get(&format!(
                "/api/v1/deployments/{}",
                record["lead_time_id"].as_str().unwrap()
            ))
            .bearer(&history.reader)
            .send();
        one.assert_status(200);
        assert_eq!(record, &one.json(), "a list item is the record GET answers");
    }
    let item = |n: usize| {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["lead_time_id"] == history.id(n).as_str())
            .unwrap()
            .clone()
    };
    let failed = item(2);
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(failed["duration_mins"].is_null(), "{failed}");
    let projectless = item(3);
    assert!(projectless["project_id"].is_null(), "{projectless}");
    // I0's commit (03-01 09:00) to D0 (03-02 10:00): 25 hours.
    assert_eq!(item(0)["duration_mins"], 1500.0, "{}", item(0));
}

#[test]
fn each_filter_keeps_exactly_its_deployments() {
    let history = History::post();
    let i1 = &history.images[1];
    let i2 = &history.images[2];
    let cases: Vec<(String, Vec<usize>)> = vec![
        ("app_id=web".into(), vec![0, 1, 4]),
        ("app_id=api".into(), vec![2, 3, 5]),
        ("app_id=nothing-deployed".into(), vec![]),
        ("environment=staging".into(), vec![0, 2, 4]),
        ("environment=production".into(), vec![1, 3, 5]),
        ("prod=true".into(), vec![1, 3, 5]),
        ("prod=false".into(), vec![0, 2, 4]),
        ("project_id=shop".into(), vec![0, 1, 2, 4, 5]),
        (format!("image_id={i1}"), vec![2, 3]),
        (format!("image_id={i2}&environment=staging"), vec![4]),
        ("app_id=api&prod=true".into(), vec![3, 5]),
        (
            "project_id=shop&app_id=api&environment=production".into(),
            vec![5],
        ),
        // Both edges are inclusive: D2 at the start, D3 and D4 at the end.
        (
            "start=2026-03-04T10:00:00Z&end=2026-03-05T10:00:00Z".into(),
            vec![2, 3, 4],
        ),
        // A microsecond inside each edge leaves them out.
        (
            "start=2026-03-04T10:00:00.000001Z&end=2026-03-05T09:59:59.999999Z".into(),
            vec![],
        ),
        ("start=2026-03-05T10:00:00Z".into(), vec![3, 4, 5]),
        ("end=2026-03-03T10:00:00Z".into(), vec![0, 1]),
        // The same instant as 10:00Z, with an offset (`+` sent as %2B).
        ("start=2026-03-05T12:00:00%2B02:00".into(), vec![3, 4, 5]),
        (
            "start=2026-03-03T00:00:00Z&end=2026-03-05T23:59:59Z&app_id=web".into(),
            vec![1, 4],
        ),
    ];
    for (query, which) in cases {
        let page = history.list(&query);
        assert_eq!(
            lead_time_ids(&page),
            history.newest_first(&which),
            "{query}: {page}"
        );
        assert!(page["next_cursor"].is_null(), "{query}: {page}");
    }
}

#[test]
fn pages_of_two_walk_every_deployment_once_through_next_cursor() {
    let history = History::post();
    for (query, which, pages) in [
        ("", vec![0, 1, 2, 3, 4, 5], 3),
        ("prod=true", vec![1, 3, 5], 2),
    ] {
        let mut walked = Vec::new();
        let mut cursor: Option<String> = None;
        let mut count = 0;
        loop {
            let mut page_query = format!("{query}&limit=2");
            if let Some(cursor) = &cursor {
                page_query.push_str(&format!("&cursor={cursor}"));
            }
            let page = history.list(&page_query);
            let ids = lead_time_ids(&page);
            assert!(!ids.is_empty() && ids.len() <= 2, "{page_query}: {page}");
            walked.extend(ids);
            count += 1;
            match page["next_cursor"].as_str() {
                Some(next) => {
                    // `{created_at}~{lead_time_id}` of the page's last deployment.
                    let last = walked.last().unwrap();
                    assert!(next.ends_with(&format!("~{last}")), "{next}");
                    cursor = Some(next.to_owned());
                }
                None => break,
            }
            assert!(count < 10, "the pages never end: {walked:?}");
        }
        assert_eq!(walked, history.newest_first(&which), "{query}");
        assert_eq!(count, pages, "{query}");
    }
    // An empty cursor is the first page.
    assert_eq!(
        lead_time_ids(&history.list("limit=2&cursor=")),
        history.newest_first(&[0, 1, 2, 3, 4, 5])[..2]
    );
}

#[test]
fn a_bad_query_is_a_400_problem_naming_the_parameter() {
    let history = History::post();
    for (query, field) in [
        ("cursor=not-one-we-handed-out", "cursor"),
        ("cursor=2026-03-05T10:00:00Z~not-a-uuid", "cursor"),
        (
            "cursor=yesterday~0190a5c4-7a2e-7c1b-8c3d-5e6f7a8b9c0d",
            "cursor",
        ),
        ("image_id=not-a-uuid", "image_id"),
        ("image_id=0190a5c47a2e7c1b8c3d5e6f7a8b9c0d", "image_id"),
        ("prod=yes", "prod"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=two", "limit"),
        ("start=yesterday", "start"),
        ("end=2026-03-05", "end"),
        (
            "start=2026-03-06T00:00:00Z&end=2026-03-05T00:00:00Z",
            "start",
        ),
        ("app_id=", "app_id"),
        ("environment=staging&environment=production", "environment"),
    ] {
        let response = history
            .app
            .get(&format!("/api/v1/deployments?{query}"))
            .bearer(&history.reader)
            .send();
        let problem = response.assert_problem(400, Some(field));
        assert_eq!(
            problem["type"], "urn:cd-images:problem:malformed-request",
            "{query}: {problem}"
        );
    }
}

#[test]
fn another_org_sees_none_of_them_and_no_token_is_401() {
    let history = History::post();
    assert_eq!(
        lead_time_ids(&history.list_as(&history.globex_reader, "")),
        vec![history.globex_deployment.clone()],
        "globex sees its own deployment only"
    );
    let i0 = &history.images[0];
    let page = history.list_as(&history.globex_reader, &format!("image_id={i0}"));
    assert_eq!(lead_time_ids(&page), Vec::<String>::new(), "{page}");
    let page = history.list(&format!("image_id={}", history.globex_image));
    assert_eq!(lead_time_ids(&page), Vec::<String>::new(), "{page}");
    history
        .app
        .get("/api/v1/deployments?org_id=globex")
        .bearer(&history.reader)
        .send()
        .assert_problem(403, None);
    history
        .app
        .get("/api/v1/deployments")
        .send()
        .assert_problem(401, None);
    // The bootstrap admin reads an org's list when it names the org.
    let page = history.list_as(crate::helpers::ADMIN_TOKEN, "org_id=acme");
    assert_eq!(
        lead_time_ids(&page),
        history.newest_first(&[0, 1, 2, 3, 4, 5])
    );
}

/// One app environment (shop/web, production), images I0…I4 built in order, each deployed
/// once in order in the ISO week of Monday 2026-03-02, with lead times (commit → deployment)
/// 10, 20, 30, 40 and 100 minutes. Each deployment carries only its own image's commit (the
/// previous image ran there already), so per commit and per deployment agree.
///
/// R-7 (numpy's default): the q-quantile of n sorted values is at position q·(n−1), linear
/// between the values either side. n = 5: the median at 2 is 30; the 90th percentile at 3.6
/// is 40 + 0.6 · (100 − 40) = 76. The next week has no lead times: `null`.
///
/// Two failures of the app environment then recover in 30 and 90 minutes (both resolved on
/// 03-06): at 0.9 · 1 = 0.9, 30 + 0.9 · (90 − 30) = 84.
#[test]
fn a_weeks_p90_is_the_r7_interpolation_of_its_figures() {
    let app = TestApp::spawn();
    let writer = app.token("acme", "write");
    let reader = app.token("acme", "read");
    let registry = app.registry(&writer, "shop/web", false);
    let registry_id = registry["registry_id"].as_str().unwrap();
    for (n, (commit_at, deployed_at)) in [
        ("2026-03-03T09:50:00Z", "2026-03-03T10:00:00Z"),
        ("2026-03-03T10:40:00Z", "2026-03-03T11:00:00Z"),
        ("2026-03-03T11:30:00Z", "2026-03-03T12:00:00Z"),
        ("2026-03-03T12:20:00Z", "2026-03-03T13:00:00Z"),
        ("2026-03-03T12:20:00Z", "2026-03-03T14:00:00Z"),
    ]
    .into_iter()
    .enumerate()
    {
        let image = build_image(
            &app,
            &writer,
            registry_id,
            &format!("run-{n}"),
            &format!("{:07x}", n + 1),
            commit_at,
        );
        deploy(
            &app,
            &writer,
            &json!({"image_id": image, "project_id": "shop", "app_id": "web",
                    "environment": "production", "prod": true, "deployed_at": deployed_at}),
        );
    }
    let two_weeks = "start=2026-03-02T00:00:00Z&end=2026-03-15T23:59:59Z&interval=week";
    let series = |route: &str, query: &str| -> Vec<Value> {
        let response = app
            .get(&format!("/api/v1/dora/{route}?{two_weeks}{query}"))
            .bearer(&reader)
            .send();
        response.assert_status(200);
        response.json()["series"].as_array().unwrap().clone()
    };
    let close =
        |value: &Value, expected: f64| value.as_f64().is_some_and(|v| (v - expected).abs() < 1e-9);
    for unit in ["commit", "deployment"] {
        let weeks = series("lead-time", &format!("&unit={unit}"));
        assert_eq!(weeks.len(), 2, "{unit}: {weeks:?}");
        let (first, second) = (&weeks[0], &weeks[1]);
        assert_eq!(first["period_start"], "2026-03-02T00:00:00.000000Z");
        assert_eq!(first["count"], 5, "{unit}: {first}");
        assert!(close(&first["median_mins"], 30.0), "{unit}: {first}");
        assert!(close(&first["p90_mins"], 76.0), "{unit}: {first}");
        assert_eq!(second["count"], 0, "{unit}: {second}");
        assert!(
            second["p90_mins"].is_null() && second["median_mins"].is_null(),
            "{unit}: {second}"
        );
    }

    for (failure_id, started_at, resolved_at) in [
        ("INC-1", "2026-03-06T09:00:00Z", "2026-03-06T09:30:00Z"),
        ("INC-2", "2026-03-06T10:00:00Z", "2026-03-06T11:30:00Z"),
    ] {
        let response = app
            .post(
                "/api/v1/failures",
                &json!({"failure_id": failure_id, "project_id": "shop", "app_id": "web",
                        "environment": "production", "started_at": started_at,
                        "resolved_at": resolved_at}),
            )
            .bearer(&writer)
            .send();
        response.assert_status(201);
    }
    let weeks = series("recovery-time", "");
    assert_eq!(weeks.len(), 2, "{weeks:?}");
    assert_eq!(weeks[0]["count"], 2, "{}", weeks[0]);
    assert!(close(&weeks[0]["median_mins"], 60.0), "{}", weeks[0]);
    assert!(close(&weeks[0]["p90_mins"], 84.0), "{}", weeks[0]);
    assert!(weeks[1]["p90_mins"].is_null(), "{}", weeks[1]);
}

/// A loopback address where nothing listens (a port bound, then let go): deliveries to it
/// fail at once and stay pending, which is all this needs.
fn refusing_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/hook")
}

#[test]
fn a_delivery_names_the_image_or_the_deployment_it_is_about() {
    let app = TestApp::spawn_with(&[("webhook_allowed_hosts", "http://127.0.0.1:*")]);
    let writer = app.token("acme", "write");
    let registry = app.registry(&writer, "acme/service-api", false);
    let registry_id = registry["registry_id"].as_str().unwrap();
    let subscriptions = format!("/api/v1/registries/{registry_id}/subscriptions");
    let response = app
        .post(
            &subscriptions,
            &json!({"url": refusing_url(), "events": ["image.created", "deployment.recorded"]}),
        )
        .bearer(&writer)
        .send();
    response.assert_status(201);
    let subscription_id = response.json()["subscription_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let image_id = build_image(
        &app,
        &writer,
        registry_id,
        "run-1",
        "3f786850e387550fdab836ed7e6dc881de23001b",
        "2026-03-01T09:00:00Z",
    );
    let lead_time_id = deploy(
        &app,
        &writer,
        &json!({"image_id": image_id, "app_id": "api", "environment": "production"}),
    )["lead_time_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let response = app
        .get(&format!("{subscriptions}/{subscription_id}/deliveries"))
        .bearer(&writer)
        .send();
    response.assert_status(200);
    let deliveries = response.json()["items"].as_array().unwrap().clone();
    let subject = |event: &str| {
        let delivery = deliveries
            .iter()
            .find(|d| d["type"] == event)
            .unwrap_or_else(|| panic!("no {event} delivery: {deliveries:?}"));
        delivery["subject_id"].clone()
    };
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    assert_eq!(subject("image.created"), image_id.as_str());
    assert_eq!(subject("deployment.recorded"), lead_time_id.as_str());
}
