//! The daily rollup answers exactly what the records answer.
//!
//! Deployments are recorded through the real handler (so `lead_time_days` is written by the
//! real write path) with back-filled times spread over days, environments, prod flags,
//! records without a project, images without a commit time, and skewed clocks. Then, for
//! generated ranges and intervals, the figures read through the rollup plan must equal —
//! exactly, not approximately — the figures read from every record. The rollup that
//! migration 0004 builds from existing records must equal the one the handler wrote.

use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;

use crate::db::{Db, Value};
use crate::domain::dora::{Interval, LeadTimeSummary, ReadPlan, TimeRange};
use crate::domain::{OrgId, Timestamp};
use crate::store::deployments::DoraFilter;
use crate::store::dora;
use crate::testing::RusqliteDb;
use crate::testing::fixtures::{Handler, SequentialIds, serve};

const ADMIN: &str = "rollup-admin-token";

/// A small deterministic generator (the data of one proptest case comes from its seed).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct World {
    db: RusqliteDb,
    ids: SequentialIds,
    /// An admin token of the org, and its registry.
    token: String,
    registry: String,
}

/// The first instant of the generated data: deployments fall in the 20 days after it.
fn epoch() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap()
}

fn rfc3339(instant: chrono::DateTime<Utc>) -> String {
    Timestamp::from_utc(instant).to_stored()
}

impl World {
    fn call(
        &self,
        handler: Handler,
        method: &str,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        self.call_on(&self.db, handler, method, path, token, body)
    }

    /// [`World::call`] through another `Db` (a second connection, an interposer).
    fn call_on(
        &self,
        db: &dyn Db,
        handler: Handler,
        method: &str,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let response = serve(db, &self.ids, ADMIN, handler, (method, path), token, &body);
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert!(response.status().is_success(), "{method} {path}: {body}");
        body
    }

    /// `deployments` deployments of images with generated commit times.
    fn generate(seed: u64, deployments: usize) -> World {
        World::generate_in(RusqliteDb::open_in_memory(), seed, deployments)
    }

    fn generate_in(db: RusqliteDb, seed: u64, deployments: usize) -> World {
        let mut world = World {
            db,
            ids: SequentialIds::default(),
            token: String::new(),
            registry: String::new(),
        };
        let mut rng = SplitMix(seed);
        let token = world.call(
            crate::handle_registry_request,
            "POST",
            "/api/v1/tokens",
            ADMIN,
            serde_json::json!({"org_id": "acme", "role": "admin", "name": "t"}),
        )["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let registry = world.call(
            crate::handle_registry_request,
            "POST",
            "/api/v1/registries",
            &token,
            serde_json::json!({"image_repository_name": "app", "container_registry_id": "ghcr"}),
        )["registry_id"]
            .as_str()
            .unwrap()
            .to_owned();
        world.token = token.clone();
        world.registry = registry.clone();
        for n in 0..deployments {
            let deployed = epoch() + Duration::seconds(rng.below(20 * 86_400) as i64);
            // Lead times from a second to ~3 days, some equal (whole minutes), a few negative.
            let lead = match rng.below(10) {
                0 => -(rng.below(3_600) as i64),
                1..=3 => 60 * rng.below(240) as i64,
                _ => rng.below(3 * 86_400) as i64 + 1,
            };
            let mut image = serde_json::json!({"tag_name": format!("t{n}"), "image_name": "i",
                "image_name_with_tag": format!("i:t{n}"), "git_hash": "abcdef1", "run_id": format!("r{n}")});
            if rng.below(20) != 0 {
                image["git_hash_commit_timestamp"] = rfc3339(
                    deployed
                        - Duration::seconds(lead)
                        - Duration::microseconds(rng.below(1_000_000) as i64),
                )
                .into();
            }
            let image_id = world.call(
                crate::handle_images_request,
                "POST",
                &format!("/api/v1/registries/{registry}/images"),
                &token,
                image,
            )["image_id"]
                .as_str()
                .unwrap()
                .to_owned();
            let environment = ["dev", "staging", "production"][rng.below(3) as usize];
            let mut deployment = serde_json::json!({"image_id": image_id, "app_id": "app",
                "environment": environment, "prod": environment == "production" && rng.below(8) != 0,
                "deployed_at": rfc3339(deployed)});
            if rng.below(12) != 0 {
                deployment["project_id"] = format!("project-{}", rng.below(2)).into();
            }
            world.call(
                crate::handle_lead_time_request,
                "POST",
                "/api/v1/deployments",
                &token,
                deployment,
            );
        }
        world
    }

    /// Records one image with this commit time (`None`: none) and deploys it to production at
    /// `deployed`, through `db`.
    fn deploy(
        &self,
        db: &dyn Db,
        run_id: &str,
        commit: Option<&str>,
        deployed: &str,
    ) -> serde_json::Value {
        let mut image = serde_json::json!({"tag_name": run_id, "image_name": "i",
            "image_name_with_tag": format!("i:{run_id}"), "git_hash": "abcdef1", "run_id": run_id});
        if let Some(commit) = commit {
            image["git_hash_commit_timestamp"] = commit.into();
        }
        let path = format!("/api/v1/registries/{}/images", self.registry);
        let image = self.call_on(
            db,
            crate::handle_images_request,
            "POST",
            &path,
            &self.token,
            image,
        );
        let deployment = serde_json::json!({"image_id": image["image_id"], "app_id": "app",
            "project_id": "project-0", "environment": "production", "prod": true,
            "deployed_at": deployed});
        self.call_on(
            db,
            crate::handle_lead_time_request,
            "POST",
            "/api/v1/deployments",
            &self.token,
            deployment,
        )
    }

    fn org() -> OrgId {
        OrgId::parse("org_id", "acme").unwrap()
    }

    /// The figures of every period, and the deployments, read by `plan`.
    fn figures(&self, plan: &ReadPlan, filter: &DoraFilter, starts: &[i64]) -> Figures {
        let lead_times =
            dora::lead_times_by_period(&self.db, &Self::org(), plan, filter, starts).unwrap();
        let deployments =
            dora::deployments_by_period(&self.db, &Self::org(), plan, filter, starts).unwrap();
        let mut all = crate::domain::sorted_runs::LeadTimes::default();
        let periods = lead_times
            .periods
            .iter()
            .map(|set| {
                all.extend(set);
                LeadTimeSummary::of(set)
            })
            .collect();
        Figures {
            summary: LeadTimeSummary::of(&all),
            periods,
            clock_skew: lead_times.clock_skew,
            deployments,
        }
    }

    fn rollup_rows(&self) -> Vec<Vec<Value>> {
        self.db
            .execute(
                "SELECT org_id, day, environment, prod, deployments, clock_skew, lead_times \
                 FROM lead_time_days ORDER BY org_id, day, environment, prod",
                &[],
            )
            .unwrap()
            .rows
    }
}

#[derive(Debug, PartialEq)]
struct Figures {
    summary: LeadTimeSummary,
    periods: Vec<LeadTimeSummary>,
    clock_skew: u64,
    deployments: Vec<u64>,
}

#[test]
fn migration_0004_builds_the_rollup_the_write_path_keeps() {
    let world = World::generate(7, 300);
    let written = world.rollup_rows();
    assert!(written.len() > 30, "the data spans days and environments");
    world.db.execute("DELETE FROM lead_time_days", &[]).unwrap();
    assert!(world.rollup_rows().is_empty());
    crate::store::daily_rollup::rebuild(&world.db).unwrap();
    assert_eq!(world.rollup_rows(), written);
}

/// A day in microseconds.
const DAY: i64 = 86_400_000_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn the_rollup_gives_exactly_the_figures_of_the_records(
        seed in any::<u64>(),
        // Any microsecond, or exactly midnight; lengths of whole days, and whole days less
        // a microsecond (a range ending at 23:59:59.999999), the edges a dashboard sends.
        start_offset in prop_oneof![0i64..22 * DAY, (0i64..22).prop_map(|d| d * DAY)],
        length in prop_oneof![
            0i64..22 * DAY,
            (0i64..22).prop_map(|d| d * DAY),
            (1i64..22).prop_map(|d| d * DAY - 1),
        ],
        interval in prop::sample::select(vec![Interval::Day, Interval::Week, Interval::Month, Interval::All]),
        environment in prop::option::of(prop::sample::select(vec!["dev", "production"])),
        prod in prop::option::of(any::<bool>()),
    ) {
        let world = World::generate(seed, 120);
        let start = epoch() - Duration::days(1) + Duration::microseconds(start_offset);
        let range = TimeRange {
            start: Timestamp::from_utc(start),
            end: Timestamp::from_utc(start + Duration::microseconds(length)),
        };
        let filter = DoraFilter {
            environment: environment.map(str::to_owned),
            prod,
            ..DoraFilter::default()
        };
        let starts: Vec<i64> = interval.periods(&range).iter().map(|p| p.timestamp()).collect();
        let with_rollup = ReadPlan::with_rollup(&range);
        let records = world.figures(&ReadPlan::records_only(&range), &filter, &starts);
        prop_assert_eq!(world.figures(&with_rollup, &filter, &starts), records);
    }
}

/// A `Db` that runs `interleaved` once, right after the first statement that reads the daily
/// rollup: another request's write landing between this request's reads.
struct WriteBetweenReads<'a> {
    db: &'a dyn Db,
    interleaved: std::cell::RefCell<Option<Box<dyn FnOnce() + 'a>>>,
}

impl Db for WriteBetweenReads<'_> {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<crate::db::Rows, crate::db::DbError> {
        let rows = self.db.execute(sql, params);
        if sql.contains("FROM lead_time_days") {
            let interleaved = self.interleaved.borrow_mut().take();
            if let Some(interleaved) = interleaved {
                interleaved();
            }
        }
        rows
    }
}

#[test]
fn a_deployment_recorded_between_the_reads_of_a_query_is_in_all_of_them_or_none() {
    // "Until 14:00" covers most of 10 May: that day is its rollup row minus the records after
    // 14:00. A deployment at 14:30, recorded by another connection after the rollup row was
    // read, must not be subtracted from a row that never counted it.
    let dir = std::env::temp_dir().join(format!("cd-rollup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("snapshot.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let world = World::generate_in(RusqliteDb::open(&path).unwrap(), 11, 150);
    let range = TimeRange {
        start: Timestamp::parse("start", "2026-05-03T00:00:00Z").unwrap(),
        end: Timestamp::parse("end", "2026-05-10T14:00:00Z").unwrap(),
    };
    assert!(
        !ReadPlan::with_rollup(&range).subtract.is_empty(),
        "the query subtracts the end of its last day"
    );
    let expected = world.figures(
        &ReadPlan::records_only(&range),
        &DoraFilter::default(),
        &[range.start.instant().timestamp()],
    );
    assert!(expected.summary.count > 10);

    let other_connection = RusqliteDb::open(&path).unwrap();
    let interposer = WriteBetweenReads {
        db: &world.db,
        interleaved: std::cell::RefCell::new(Some(Box::new(|| {
            world.deploy(
                &other_connection,
                "late",
                Some("2026-05-10T14:00:30Z"),
                "2026-05-10T14:30:00Z",
            );
        }))),
    };
    let answer = world.call_on(
        &interposer,
        crate::handle_lead_time_request,
        "GET",
        &format!(
            "/api/v1/dora/lead-time?start={}&end={}",
            range.start.to_stored(),
            range.end.to_stored()
        ),
        &world.token,
        serde_json::Value::Null,
    );
    assert!(
        interposer.interleaved.borrow().is_none(),
        "the write happened between the reads"
    );
    assert_eq!(answer["summary"]["count"], expected.summary.count);
    assert_eq!(
        answer["summary"]["median_mins"],
        expected.summary.median_mins.unwrap()
    );
    assert_eq!(
        answer["summary"]["clock_skew_excluded"],
        expected.clock_skew
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lead_times_too_long_for_exact_minutes_read_the_same_from_the_rollup_and_the_records() {
    // A commit in year 1 (a client's zero time) makes a lead time of ~2,025 years: more
    // microseconds than a REAL holds exactly. The rollup and the records must still agree.
    let world = World::generate(3, 0);
    world.deploy(
        &world.db,
        "zero-time",
        Some("0001-01-01T00:00:00Z"),
        "2026-05-05T20:00:00.123457Z",
    );
    world.deploy(
        &world.db,
        "normal",
        Some("2026-05-05T05:55:00Z"),
        "2026-05-05T06:00:00Z",
    );
    for (start, end) in [
        ("2026-05-05T00:00:00Z", "2026-05-05T13:00:00Z"),
        ("2026-05-05T00:00:00Z", "2026-05-05T23:59:59.999999Z"),
        ("2026-05-04T18:00:00Z", "2026-05-06T03:00:00Z"),
    ] {
        let range = TimeRange {
            start: Timestamp::parse("start", start).unwrap(),
            end: Timestamp::parse("end", end).unwrap(),
        };
        let starts = [range.start.instant().timestamp()];
        let records = world.figures(
            &ReadPlan::records_only(&range),
            &DoraFilter::default(),
            &starts,
        );
        let rollup = world.figures(
            &ReadPlan::with_rollup(&range),
            &DoraFilter::default(),
            &starts,
        );
        assert_eq!(rollup, records, "{start} – {end}");
    }
    let morning = TimeRange {
        start: Timestamp::parse("start", "2026-05-05T00:00:00Z").unwrap(),
        end: Timestamp::parse("end", "2026-05-05T13:00:00Z").unwrap(),
    };
    let figures = world.figures(
        &ReadPlan::with_rollup(&morning),
        &DoraFilter::default(),
        &[morning.start.instant().timestamp()],
    );
    assert_eq!(figures.summary.count, 1);
    assert_eq!(figures.summary.mean_mins, Some(5.0));
}
