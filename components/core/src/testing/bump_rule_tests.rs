//! The bump rule is spelled twice: in Rust (`SemVersion::bump`, which the bump route runs
//! inside `BEGIN IMMEDIATE`) and in SQL (the image INSERT's version and migration 0005's
//! trigger, the pipeline's hot path). For generated versions — the maximum part included —
//! and every update type, a pipeline's new image gets exactly the version `bump` gives, the
//! channel is left there, and where `bump` refuses (a part at its maximum) the image is
//! refused with bump's own 409 and nothing moves.

use std::cell::Cell;

use proptest::prelude::*;
use serde_json::{Value as Json, json};

use crate::domain::{SemVersion, UpdateType};
use crate::testing::RusqliteDb;
use crate::testing::fixtures::{SequentialIds, serve_json};

const ADMIN: &str = "bump-rule-admin";

struct World {
    db: RusqliteDb,
    ids: SequentialIds,
    registry: String,
    cases: Cell<u64>,
}

impl World {
    fn new() -> World {
        let world = World {
            db: RusqliteDb::open_in_memory(),
            ids: SequentialIds::default(),
            registry: String::new(),
            cases: Cell::new(0),
        };
        let registry = world.call(
            crate::handle_registry_request,
            "POST",
            "/api/v1/registries?org_id=acme".to_owned(),
            &json!({"image_repository_name": "team/api", "container_registry_id": "ghcr"}),
        );
        World {
            registry: registry.1["registry_id"].as_str().unwrap().to_owned(),
            ..world
        }
    }

    fn call(
        &self,
        handler: crate::testing::fixtures::Handler,
        method: &str,
        path: String,
        body: &Json,
    ) -> (u16, Json) {
        serve_json(
            &self.db,
            &self.ids,
            ADMIN,
            handler,
            (method, &path),
            ADMIN,
            body,
        )
    }

    /// A new channel set to `version`, then one image with `update_type`: the answer, and the
    /// channel's version afterwards.
    fn record_image(&self, version: SemVersion, update_type: &str) -> ((u16, Json), String) {
        let case = self.cases.get() + 1;
        self.cases.set(case);
        let channel = format!("c{case}");
        let base = format!("/api/v1/registries/{}", self.registry);
        let set = self.call(
            crate::handle_registry_request,
            "PUT",
            format!("{base}/channels/{channel}/version?org_id=acme"),
            &json!({ "version": version.to_string() }),
        );
        assert_eq!(set.0, 200, "{set:?}");
        let image = self.call(
            crate::handle_images_request,
            "POST",
            format!("{base}/images?org_id=acme"),
            &json!({
                "channel": channel,
                "update_type": update_type,
                "tag_name": "latest",
                "image_name": "team/api",
                "image_name_with_tag": "team/api:latest",
                "git_hash": "0123456789abcdef0123456789abcdef01234567",
                "run_id": format!("run-{case}"),
            }),
        );
        let after = self.call(
            crate::handle_registry_request,
            "GET",
            format!("{base}/channels/{channel}?org_id=acme"),
            &json!({}),
        );
        (image, after.1["version"].as_str().unwrap().to_owned())
    }
}

/// A version part: small, near the maximum, or the maximum itself.
fn part() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..5u64,
        (SemVersion::MAX_PART - 2)..=SemVersion::MAX_PART,
        any::<u64>().prop_map(|p| p % SemVersion::MAX_PART),
    ]
}

fn update_type() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("major"), Just("minor"), Just("patch"), Just("none")]
}

thread_local! {
    static WORLD: World = World::new();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_new_image_gets_the_version_bump_gives(
        major in part(), minor in part(), patch in part(), update in update_type()
    ) {
        let version = SemVersion::new(major, minor, patch).unwrap();
        let expected = match UpdateType::parse("update_type", update) {
            Ok(update_type) => version.bump(update_type),
            Err(_) => Ok(version),
        };
        WORLD.with(|world| {
            let ((status, body), channel_after) = world.record_image(version, update);
            let channel = body.get("version").and_then(Json::as_str).map(|v| v.split_once('-').unwrap().0.to_owned());
            match expected {
                Ok(next) => {
                    assert_eq!(status, 201, "{version} {update}: {body}");
                    let channel = channel.unwrap();
                    assert_eq!(body["version"], format!("{channel}-{next}"), "{version} {update}");
                    assert_eq!(channel_after, format!("{channel}-{next}"), "{version} {update}");
                }
                Err(refused) => {
                    assert_eq!(status, 409, "{version} {update}: {body}");
                    assert_eq!(body["detail"], refused.problem().detail, "{version} {update}");
                    assert!(channel_after.ends_with(&format!("-{version}")), "{version} {update}: moved to {channel_after}");
                }
            }
        });
    }
}
