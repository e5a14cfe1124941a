//! Properties that must hold for every input, whatever it is. The fuzz targets
//! (`components/core/fuzz`, run with `cargo fuzz`) and the bounded property tests run in CI
//! (`proptest`, below) both call these, so they check the same thing.
//!
//! Each function panics when its property is violated — that is what a fuzzer detects.

use crate::domain::dora::{Interval, MAX_RANGE_DAYS, TimeRange};
use crate::domain::{Channel, SemVersion};
use crate::env::{Config, Env};

use super::fixtures::{FixedClock, Handler, SequentialIds};
use super::sqlite::RusqliteDb;

/// UpdateSemVersion's parser: never panics; whatever it accepts formats back to a string it
/// accepts again as the same version.
pub fn version_parser(channel: &str, input: &str) {
    let Ok(channel) = Channel::parse(channel) else {
        return;
    };
    if let Ok(version) = SemVersion::parse_for_channel("version", &channel, input) {
        let formatted = version.for_channel(&channel);
        assert_eq!(
            SemVersion::parse_for_channel("version", &channel, &formatted).ok(),
            Some(version),
            "{formatted}"
        );
        assert_eq!(
            SemVersion::parse_for_channel("version", &channel, &version.to_string()).ok(),
            Some(version)
        );
    }
}

/// DORA's time range parser: never panics; an accepted range is ordered, bounded, and its
/// series periods are ordered, start at or before the range and number at most a day each.
pub fn time_range_parser(start: &str, end: &str) {
    let Ok(range) = TimeRange::parse(Some(start), Some(end)) else {
        return;
    };
    assert!(range.start <= range.end);
    for interval in [
        Interval::Day,
        Interval::Week,
        Interval::Month,
        Interval::All,
    ] {
        let periods = interval.periods(&range);
        assert!(
            !periods.is_empty() && periods.len() as i64 <= MAX_RANGE_DAYS + 2,
            "{interval:?}: {}",
            periods.len()
        );
        assert!(periods.windows(2).all(|w| w[0] < w[1]));
        assert!(periods[0] <= range.start.instant());
        assert_eq!(
            interval.period_start(range.end.instant(), &range),
            *periods.last().unwrap()
        );
    }
}

/// The whole request router of every component, on an in-memory database seeded with an org
/// token, a registry, a channel, an image and a deployment.
pub struct RouterHarness {
    db: RusqliteDb,
    ids: SequentialIds,
    /// Values a generated request may use to reach seeded rows.
    pub token: String,
    pub registry_id: String,
    pub image_id: String,
}

pub const ADMIN_TOKEN: &str = "properties-admin";

const HANDLERS: [Handler; 3] = [
    crate::handle_registry_request,
    crate::handle_images_request,
    crate::handle_lead_time_request,
];

impl Default for RouterHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl RouterHarness {
    pub fn new() -> RouterHarness {
        let mut harness = RouterHarness {
            db: RusqliteDb::open_in_memory(),
            ids: SequentialIds::default(),
            token: String::new(),
            registry_id: String::new(),
            image_id: String::new(),
        };
        let json = |response: http::Response<Vec<u8>>| -> serde_json::Value {
            assert!(
                response.status().is_success(),
                "seeding failed: {}",
                String::from_utf8_lossy(response.body())
            );
            serde_json::from_slice(response.body()).expect("seeding answers JSON")
        };
        let post = |h: &RouterHarness,
                    handler: usize,
                    path: &str,
                    token: &str,
                    body: serde_json::Value| {
            json(
                h.respond(
                    handler,
                    "POST",
                    path,
                    &[
                        ("authorization", &format!("Bearer {token}")),
                        ("content-type", "application/json"),
                    ],
                    &serde_json::to_vec(&body).expect("json"),
                )
                .expect("a valid request"),
            )
        };
        harness.token = post(
            &harness,
            0,
            "/api/v1/tokens",
            ADMIN_TOKEN,
            serde_json::json!({"org_id": "acme", "role": "admin", "name": "p"}),
        )["token"]
            .as_str()
            .expect("a token")
            .to_owned();
        let token = harness.token.clone();
        harness.registry_id = post(&harness, 0, "/api/v1/registries", &token, serde_json::json!({"image_repository_name": "app", "container_registry_id": "c", "public": true}))["registry_id"]
            .as_str()
            .expect("a registry id")
            .to_owned();
        let images = format!("/api/v1/registries/{}/images", harness.registry_id);
        harness.image_id = post(&harness, 1, &images, &token, serde_json::json!({"tag_name": "t", "image_name": "i", "image_name_with_tag": "i:t", "git_hash": "abcdef1", "git_hash_commit_timestamp": "2026-05-01T00:00:00Z", "run_id": "r"}))["image_id"]
            .as_str()
            .expect("an image id")
            .to_owned();
        let deployment = serde_json::json!({"image_id": harness.image_id, "project_id": "p", "app_id": "a", "environment": "production", "prod": true});
        post(&harness, 2, "/api/v1/deployments", &token, deployment);
        harness
    }

    /// Sends a request to component `handler % 3`; `None` if the `http` crate refuses to build
    /// it (Spin would never deliver such a request).
    pub fn respond(
        &self,
        handler: usize,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Option<http::Response<Vec<u8>>> {
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(body.to_vec()).ok()?;
        let env = Env {
            db: &self.db,
            clock: &FixedClock,
            ids: &self.ids,
            config: Config {
                admin_token: Some(ADMIN_TOKEN.to_owned()),
                max_body_bytes: 64 * 1024,
                webhook_signing_key: None,
                webhook_allowed_hosts: None,
            },
        };
        Some(HANDLERS[handler % HANDLERS.len()](&request, &env))
    }

    /// The router's property: any request gets a response (no panic), never a 5xx for client
    /// input, and every error is problem+json.
    pub fn check(
        &self,
        handler: usize,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) {
        let Some(response) = self.respond(handler, method, uri, headers, body) else {
            return;
        };
        let status = response.status();
        assert!(
            !status.is_server_error(),
            "{method} {uri} → {status}: {}",
            String::from_utf8_lossy(response.body())
        );
        if status.is_client_error() {
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok());
            assert_eq!(
                content_type,
                Some("application/problem+json"),
                "{method} {uri}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Path segments drawn from the API's words, the seeded ids and hostile strings.
    fn segment(harness_ids: (String, String)) -> impl Strategy<Value = String> {
        let (registry_id, image_id) = harness_ids;
        prop_oneof![
            Just("api".to_owned()),
            Just("v1".to_owned()),
            Just("registries".to_owned()),
            Just("images".to_owned()),
            Just("channels".to_owned()),
            Just("bump".to_owned()),
            Just("version".to_owned()),
            Just("tokens".to_owned()),
            Just("deployments".to_owned()),
            Just("dora".to_owned()),
            Just("lead-time".to_owned()),
            Just("deployment-frequency".to_owned()),
            Just("inactive-orgs".to_owned()),
            Just("health".to_owned()),
            Just("default".to_owned()),
            Just(registry_id),
            Just(image_id),
            Just("%27%3B--".to_owned()),
            Just(String::new()),
            "[a-zA-Z0-9._~%-]{0,12}",
        ]
    }

    fn query() -> impl Strategy<Value = String> {
        let pair = prop_oneof![
            Just("limit=".to_owned()),
            Just("cursor=".to_owned()),
            Just("start=2026-01-01T00:00:00Z".to_owned()),
            Just("end=2026-12-01T00:00:00Z".to_owned()),
            Just("interval=".to_owned()),
            Just("org_id=".to_owned()),
            Just("prod=".to_owned()),
            Just("tag=".to_owned()),
            Just("status=".to_owned()),
            Just("channel=".to_owned()),
        ];
        (proptest::collection::vec((pair, "[a-zA-Z0-9:%+._~-]{0,24}"), 0..4)).prop_map(|pairs| {
            pairs
                .into_iter()
                .map(|(k, v)| format!("{k}{v}"))
                .collect::<Vec<_>>()
                .join("&")
        })
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"{}".to_vec()),
            Just(br#"{"update_type":"patch","version":"1.2.3","image_repository_name":"a","container_registry_id":"c"}"#.to_vec()),
            Just(br#"{"tag_name":"t","image_name":"i","image_name_with_tag":"i:t","git_hash":"abcdef1","run_id":"x","tags":["a","a"]}"#.to_vec()),
            "\\PC{0,64}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..64),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn version_parser_round_trips(channel in "[a-z0-9.-]{1,8}", input in "(v|[a-z0-9.-]{1,8}-)?[0-9]{1,20}\\.[0-9]{1,3}\\.[0-9]{1,3}|\\PC{0,24}") {
            version_parser(&channel, &input);
        }

        #[test]
        fn time_ranges_are_sane(start in "2026-0[1-9]-[0-2][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](Z|[+-][01][0-9]:[0-5][0-9])|\\PC{0,30}",
                                end in "2026-(0[1-9]|1[0-2])-[0-2][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-][01][0-9]:[0-5][0-9])") {
            time_range_parser(&start, &end);
        }
    }

    #[test]
    fn the_router_answers_every_request_without_a_5xx() {
        let harness = RouterHarness::new();
        let ids = (harness.registry_id.clone(), harness.image_id.clone());
        let authorization = prop_oneof![
            Just(None),
            Just(Some(format!("Bearer {}", harness.token))),
            Just(Some(format!("Bearer {ADMIN_TOKEN}"))),
            Just(Some("Bearer nope".to_owned())),
            Just(Some("Basic x".to_owned())),
        ];
        let content_type = prop_oneof![
            Just("application/json"),
            Just("text/plain"),
            Just("application/problem+json")
        ];
        let method = prop_oneof![
            Just("GET"),
            Just("POST"),
            Just("PUT"),
            Just("PATCH"),
            Just("DELETE"),
            Just("HEAD")
        ];
        let prefix = prop_oneof![9 => Just("/api/v1/"), 1 => Just("/")];
        let request = (
            0usize..3,
            method,
            (prefix, proptest::collection::vec(segment(ids), 0..6)),
            query(),
            authorization,
            content_type,
            body(),
        );
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: 2000,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        runner
            .run(
                &request,
                |(
                    handler,
                    method,
                    (prefix, segments),
                    query,
                    authorization,
                    content_type,
                    body,
                )| {
                    let uri = format!("{prefix}{}?{query}", segments.join("/"));
                    let mut headers = vec![("content-type", content_type)];
                    if let Some(authorization) = &authorization {
                        headers.push(("authorization", authorization.as_str()));
                    }
                    harness.check(handler, method, &uri, &headers, &body);
                    Ok(())
                },
            )
            .unwrap();
    }
}
