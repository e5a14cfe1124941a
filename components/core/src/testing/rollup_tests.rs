//! The daily rollup answers exactly what the records answer.
//!
//! Deployments are recorded through the real handler (so `lead_time_days` is written by the
//! real write path) with back-filled times spread over days, environments, prod flags,
//! records without a project, images without a commit time, and skewed clocks. Then, for
//! generated ranges and intervals, the figures read through the rollup plan must equal —
//! exactly, not approximately — the figures read from every record. The rollup that the
//! back-fill builds from existing records, batch by batch, must hold what the handler wrote;
//! a day of more deployments than a chunk holds must read the same; and a database upgraded
//! from before the rollup must answer the same before, during and after its back-fill.

use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;

use crate::db::{Db, Value};
use crate::domain::dora::{Interval, LeadTimeSummary, LeadTimeUnit, ReadPlan, TimeRange};
use crate::domain::{OrgId, Timestamp};
use crate::store::deployments::DoraFilter;
use crate::store::dora;
use crate::testing::fixtures::{Handler, SequentialIds, serve};
use crate::testing::{RusqliteDb, SplitMix};

const ADMIN: &str = "rollup-admin-token";

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
    Timestamp::from_utc(instant).to_rfc3339()
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
        let mut recorded_ids = Vec::new();
        for n in 0..deployments {
            let deployed = epoch() + Duration::seconds(rng.below(20 * 86_400) as i64);
            // Lead times from a second to ~3 days, some equal (whole minutes), a few negative.
            let lead = match rng.below(10) {
                0 => -(rng.below(3_600) as i64),
                1..=3 => 60 * rng.below(240) as i64,
                _ => rng.below(3 * 86_400) as i64 + 1,
            };
            // Head commits from a small pool, so that rebuilds of a commit happen.
            let head = format!("{:040x}", 0x100_0000 + rng.below(deployments as u64 + 1));
            let mut image = serde_json::json!({"tag_name": format!("t{n}"), "image_name": "i",
                "image_name_with_tag": format!("i:t{n}"), "git_hash": head, "run_id": format!("r{n}")});
            let head_time = deployed
                - Duration::seconds(lead)
                - Duration::microseconds(rng.below(1_000_000) as i64);
            if rng.below(20) != 0 {
                image["git_hash_commit_timestamp"] = rfc3339(head_time).into();
            }
            // Some builds list their commits (`git log`), from a pool shared between builds,
            // by authors some settings exclude.
            if rng.below(3) == 0 {
                let commits: Vec<serde_json::Value> = (0..rng.below(5))
                    .map(|k| {
                        let sha = format!(
                            "{:040x}",
                            0x200_0000 + rng.below(4 * deployments as u64 + 1) * 8 + k
                        );
                        let at = head_time - Duration::seconds(rng.below(86_400) as i64 - 600);
                        let author = ["ann <a@x>", "renovate[bot]", "bob"][rng.below(3) as usize];
                        serde_json::json!({"sha": sha, "timestamp": rfc3339(at), "author": author})
                    })
                    .collect();
                image["commits"] = commits.into();
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
            // Outcomes: some failed, some said to be rework or planned (the rest left to
            // rollback detection, which the random deployment order triggers often).
            if rng.below(8) == 0 {
                deployment["status"] = "failed".into();
            }
            match rng.below(6) {
                0 => deployment["kind"] = "rework".into(),
                1 => deployment["kind"] = "planned".into(),
                _ => {}
            }
            let recorded = world.call(
                crate::handle_lead_time_request,
                "POST",
                "/api/v1/deployments",
                &token,
                deployment,
            );
            recorded_ids.push(recorded["lead_time_id"].as_str().unwrap().to_owned());
        }
        // Outcomes found later: a status or kind changed on some deployments.
        for lead_time_id in &recorded_ids {
            let patch = match rng.below(10) {
                0 => serde_json::json!({"status": "failed"}),
                1 => serde_json::json!({"status": "succeeded"}),
                2 => serde_json::json!({"kind": "rework"}),
                3 => serde_json::json!({"kind": "planned", "status": "failed"}),
                _ => continue,
            };
            world.call(
                crate::handle_lead_time_request,
                "PATCH",
                &format!("/api/v1/deployments/{lead_time_id}"),
                &token,
                patch,
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
        let lead_times = dora::lead_times_by_period(
            &self.db,
            &Self::org(),
            plan,
            filter,
            LeadTimeUnit::Deployment,
            starts,
            None,
        )
        .unwrap();
        let read_commits = |with_stages: bool| {
            dora::lead_times_by_period(
                &self.db,
                &Self::org(),
                plan,
                filter,
                LeadTimeUnit::Commit,
                starts,
                with_stages.then_some(i64::MIN),
            )
            .unwrap()
        };
        let (commits, with_stages) = (read_commits(false), read_commits(true));
        // Read with their stages, the lead times are the same.
        assert_eq!(with_stages.periods, commits.periods);
        assert_eq!(with_stages.clock_skew(), commits.clock_skew());
        assert_eq!(
            with_stages.clock_skew_by_period,
            commits.clock_skew_by_period
        );
        // Each stage over the whole range: the union of its periods'.
        let mut stages: [crate::domain::sorted_runs::LeadTimes; 3] = Default::default();
        for period in with_stages.stages.unwrap() {
            for (all, set) in stages.iter_mut().zip(&period) {
                all.extend(set);
            }
        }
        let stages = stages.map(|set| LeadTimeSummary::of(&set));
        let deployments =
            dora::outcomes_by_period(&self.db, &Self::org(), plan, filter, starts).unwrap();
        let mut all = crate::domain::sorted_runs::LeadTimes::default();
        let periods = lead_times
            .periods
            .iter()
            .map(|set| {
                all.extend(set);
                LeadTimeSummary::of(set)
            })
            .collect();
        let mut all_commits = crate::domain::sorted_runs::LeadTimes::default();
        let commit_periods = commits
            .periods
            .iter()
            .map(|set| {
                all_commits.extend(set);
                LeadTimeSummary::of(set)
            })
            .collect();
        Figures {
            summary: LeadTimeSummary::of(&all),
            periods,
            clock_skew: lead_times.clock_skew(),
            deployments,
            commit_summary: LeadTimeSummary::of(&all_commits),
            commit_periods,
            commit_clock_skew: commits.clock_skew(),
            stages,
        }
    }

    /// The rollup per (day, environment, prod): the summed counts of its chunks and the union
    /// of their lead times. Where the chunks are cut depends on the order rows were written;
    /// what a day holds does not.
    fn rollup_rows(&self) -> RollupDays {
        let rows = self
            .db
            .execute(
                "SELECT org_id, day, environment, prod, deployments, clock_skew, lead_times, \
                   failed, rework \
                 FROM lead_time_days JOIN orgs USING (org_key)",
                &[],
            )
            .unwrap();
        let mut days = RollupDays::new();
        for row in rows.iter() {
            let key = (
                row.text(0).unwrap(),
                row.text(1).unwrap(),
                row.text(2).unwrap(),
                row.flag(3).unwrap(),
            );
            let day = days.entry(key).or_default();
            day.0 += row.integer(4).unwrap();
            day.1 += row.integer(5).unwrap();
            day.3 += row.integer(7).unwrap();
            day.4 += row.integer(8).unwrap();
            day.2.extend(
                row.blob(6)
                    .unwrap()
                    .chunks_exact(8)
                    .map(|b| u64::from_be_bytes(b.try_into().unwrap())),
            );
            day.2.sort_unstable();
        }
        days
    }

    /// The commit rollup per (day, environment, prod): clock skew and the union of each blob.
    fn commit_rollup_rows(&self) -> CommitRollupDays {
        let rows = self
            .db
            .execute(
                "SELECT day, environment, prod, clock_skew, lead_times, commit_to_build, \
                   build_to_start, start_to_finish FROM commit_lead_time_days",
                &[],
            )
            .unwrap();
        let mut days = CommitRollupDays::new();
        for row in rows.iter() {
            let key = (
                row.text(0).unwrap(),
                row.text(1).unwrap(),
                row.flag(2).unwrap(),
            );
            let day = days.entry(key).or_default();
            day.0 += row.integer(3).unwrap();
            for (index, values) in day.1.iter_mut().enumerate() {
                values.extend(
                    row.blob(4 + index)
                        .unwrap()
                        .chunks_exact(8)
                        .map(|b| u64::from_be_bytes(b.try_into().unwrap())),
                );
                values.sort_unstable();
            }
        }
        days
    }

    /// The figures of `start`..`end` as one period: (through the rollup, from the records).
    fn both_ways(&self, start: &str, end: &str) -> (Figures, Figures) {
        let range = TimeRange {
            start: Timestamp::parse("start", start).unwrap(),
            end: Timestamp::parse("end", end).unwrap(),
        };
        let starts = [range.start.instant().timestamp()];
        let filter = DoraFilter::default();
        (
            self.figures(&ReadPlan::with_rollup(&range), &filter, &starts),
            self.figures(&ReadPlan::records_only(&range), &filter, &starts),
        )
    }

    /// Over all the generated days, the rollup's figures are the records' figures.
    fn assert_the_rollup_reads_as_the_records(&self) {
        let (rollup, records) = self.both_ways("2026-04-29T00:00:00Z", "2026-05-23T00:00:00Z");
        assert_eq!(rollup, records);
    }

    /// The figures of the org's whole data as the API answers them.
    fn answer(&self, db: &dyn Db) -> serde_json::Value {
        self.call_on(
            db,
            crate::handle_lead_time_request,
            "GET",
            "/api/v1/dora/lead-time?start=2026-04-29T00:00:00Z&end=2026-05-23T00:00:00Z&interval=day&unit=deployment",
            &self.token,
            serde_json::Value::Null,
        )
    }
}

/// (org, day, environment, prod) → (deployments, clock skew, lead times ascending, failed,
/// rework).
type RollupDays =
    std::collections::BTreeMap<(String, String, String, bool), (i64, i64, Vec<u64>, i64, i64)>;

/// (day, environment, prod) → (clock skew, [lead times, three stages] ascending).
type CommitRollupDays = std::collections::BTreeMap<(String, String, bool), (i64, [Vec<u64>; 4])>;

#[derive(Debug, PartialEq)]
struct Figures {
    summary: LeadTimeSummary,
    periods: Vec<LeadTimeSummary>,
    clock_skew: u64,
    deployments: Vec<dora::Outcomes>,
    commit_summary: LeadTimeSummary,
    commit_periods: Vec<LeadTimeSummary>,
    commit_clock_skew: u64,
    stages: [LeadTimeSummary; crate::store::commit_lead_times::STAGES],
}

#[test]
fn the_backfill_builds_batch_by_batch_the_rollup_the_write_path_keeps() {
    let world = World::generate(7, 300);
    let written = world.rollup_rows();
    assert!(written.len() > 30, "the data spans days and environments");
    for batch in [1, 7, 300, 20_000] {
        world.db.execute("DELETE FROM lead_time_days", &[]).unwrap();
        assert!(world.rollup_rows().is_empty());
        crate::store::daily_rollup::rebuild(&world.db, batch).unwrap();
        assert_eq!(world.rollup_rows(), written, "batches of {batch}");
    }
    let commits = world.commit_rollup_rows();
    assert!(commits.len() > 30, "the commits span days and environments");
    for batch in [1, 7, 300, 20_000] {
        crate::store::commit_lead_times::rebuild_rollup(&world.db, batch).unwrap();
        assert_eq!(world.commit_rollup_rows(), commits, "batches of {batch}");
    }
}

#[test]
fn a_day_of_more_deployments_than_a_chunk_holds_reads_the_same_as_its_records() {
    let world = World::generate(9, 0);
    let mut rng = SplitMix(9);
    for n in 0..700 {
        let deployed = Utc.with_ymd_and_hms(2026, 5, 5, 0, 0, 0).unwrap()
            + Duration::seconds(rng.below(86_400) as i64);
        let commit = deployed - Duration::seconds(rng.below(86_400) as i64 - 600);
        world.deploy(
            &world.db,
            &format!("r{n}"),
            (n % 50 != 0).then(|| rfc3339(commit)).as_deref(),
            &rfc3339(deployed),
        );
    }
    let chunks = world
        .db
        .execute(
            "SELECT count(*), max(length(lead_times)), sum(deployments) FROM lead_time_days",
            &[],
        )
        .unwrap();
    let row = chunks.first().unwrap();
    assert!(row.integer(0).unwrap() >= 3, "700 lead times fill chunks");
    assert!(
        row.integer(1).unwrap() <= (crate::store::daily_rollup::CHUNK_LEAD_TIMES * 8) as i64,
        "no chunk grows past its size"
    );
    assert_eq!(row.integer(2).unwrap(), 700);
    for (start, end) in [
        ("2026-05-04T00:00:00Z", "2026-05-07T00:00:00Z"),
        ("2026-05-05T00:00:00Z", "2026-05-05T23:59:59.999999Z"),
        ("2026-05-05T06:00:00Z", "2026-05-06T00:00:00Z"),
    ] {
        let (rollup, records) = world.both_ways(start, end);
        assert!(records.summary.count > 100);
        assert_eq!(rollup, records, "{start} – {end}");
    }
}

#[test]
fn a_database_upgraded_from_before_the_rollup_answers_the_same_before_during_and_after_its_backfill()
 {
    use crate::store::daily_rollup::{Backfill, backfill_batch, is_complete};
    let world = World::generate(5, 200);
    let before = world.answer(&world.db);
    assert!(before["summary"]["count"].as_u64().unwrap() > 100);
    // The database as schema 3 left it: records, no rollup.
    crate::testing::take_back_to_schema_3(&world.db).unwrap();
    // The first request migrates; the rollup is pending, so it reads the records.
    assert_eq!(world.answer(&world.db), before);
    assert!(!is_complete(&world.db).unwrap());
    // Pipelines keep recording meanwhile, between batches of the back-fill.
    let mut batches = 0;
    loop {
        let n = batches;
        world.deploy(
            &world.db,
            &format!("during-{n}"),
            Some(&format!("2026-05-0{}T01:00:00Z", 1 + n % 9)),
            &format!("2026-05-0{}T0{}:00:00Z", 1 + n % 9, 2 + n % 7),
        );
        match backfill_batch(&world.db, 23).unwrap() {
            Backfill::Batch { finished: true, .. } => break,
            Backfill::Batch { .. } => batches += 1,
            Backfill::Complete => panic!("the back-fill ended without its last batch"),
        }
    }
    assert!(batches >= 8, "200 records in batches of 23: {batches}");
    assert!(is_complete(&world.db).unwrap());
    // The rollup now holds every record exactly once: what a rebuild from scratch holds.
    let upgraded = world.rollup_rows();
    let after = world.answer(&world.db);
    assert_eq!(
        after["summary"]["count"].as_u64().unwrap(),
        before["summary"]["count"].as_u64().unwrap() + batches as u64 + 1
    );
    crate::store::daily_rollup::rebuild(&world.db, 1_000).unwrap();
    assert_eq!(world.rollup_rows(), upgraded);
    assert_eq!(world.answer(&world.db), after);
    world.assert_the_rollup_reads_as_the_records();
}

#[test]
fn a_pending_backfill_is_advanced_by_the_requests_that_come_after_it() {
    let world = World::generate(6, 120);
    crate::store::daily_rollup::restart_backfill(&world.db).unwrap();
    assert!(!crate::store::daily_rollup::is_complete(&world.db).unwrap());
    // A read of the figures (from the records, the rollup being pending), then what the
    // component does after responding.
    let response = serve(
        &world.db,
        &world.ids,
        ADMIN,
        crate::handle_lead_time_request,
        (
            "GET",
            "/api/v1/dora/lead-time?start=2026-04-29T00:00:00Z&end=2026-05-23T00:00:00Z",
        ),
        &world.token,
        &serde_json::Value::Null,
    );
    assert_eq!(response.status(), 200);
    crate::AfterResponse::of(&response).run(&world.db);
    assert!(
        crate::store::daily_rollup::is_complete(&world.db).unwrap(),
        "one batch rolls up 120 records"
    );
    world.assert_the_rollup_reads_as_the_records();
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
        if sql.contains("FROM lead_time_days") || sql.contains("FROM commit_lead_time_days") {
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
    let through_rollup = world.figures(
        &ReadPlan::with_rollup(&range),
        &DoraFilter::default(),
        &[range.start.instant().timestamp()],
    );
    assert_eq!(through_rollup, expected);

    let other_connection = RusqliteDb::open(&path).unwrap();
    // Per deployment, then per commit (each a new late deployment, at 14:30 and 14:40).
    for (unit, late) in [("deployment", "late"), ("commit", "later")] {
        let interposer = WriteBetweenReads {
            db: &world.db,
            interleaved: std::cell::RefCell::new(Some(Box::new(|| {
                let deployed = if unit == "commit" {
                    "2026-05-10T14:40:00Z"
                } else {
                    "2026-05-10T14:30:00Z"
                };
                world.deploy(
                    &other_connection,
                    late,
                    Some("2026-05-10T14:00:30Z"),
                    deployed,
                );
            }))),
        };
        let answer = world.call_on(
            &interposer,
            crate::handle_lead_time_request,
            "GET",
            &format!(
                "/api/v1/dora/lead-time?start={}&end={}&unit={unit}",
                range.start.to_rfc3339(),
                range.end.to_rfc3339()
            ),
            &world.token,
            serde_json::Value::Null,
        );
        assert!(
            interposer.interleaved.borrow().is_none(),
            "the write happened between the reads"
        );
        let (summary, clock_skew) = if unit == "commit" {
            (&expected.commit_summary, expected.commit_clock_skew)
        } else {
            (&expected.summary, expected.clock_skew)
        };
        assert_eq!(answer["unit"], unit);
        assert_eq!(answer["summary"]["count"], summary.count, "{unit}");
        assert_eq!(
            answer["summary"]["median_mins"],
            summary.median_mins.unwrap(),
            "{unit}"
        );
        assert_eq!(
            answer["summary"]["clock_skew_excluded"], clock_skew,
            "{unit}"
        );
    }
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
        let (rollup, records) = world.both_ways(start, end);
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

#[test]
fn a_database_from_before_commit_lead_times_counts_each_records_head_commit_once() {
    let world = World::generate(13, 250);
    // As migration 0011 finds a database: records, no commit lead times, no commit lists.
    for statement in [
        "DELETE FROM commit_lead_time_days",
        "DELETE FROM commit_lead_times",
        "UPDATE images SET commits = NULL",
    ] {
        world.db.execute(statement, &[]).unwrap();
    }
    let register = crate::migrations::MIGRATIONS
        .iter()
        .filter(|m| m.name == "0011_commit_lead_times")
        .flat_map(|m| crate::migrations::statements(m.sql))
        .find(|statement| statement.starts_with("INSERT INTO backfills"))
        .unwrap();
    world.db.execute(&register, &[]).unwrap();
    let commit_answer = || {
        world.call(
            crate::handle_lead_time_request,
            "GET",
            "/api/v1/dora/lead-time?start=2026-04-29T00:00:00Z&end=2026-05-23T00:00:00Z",
            &world.token,
            serde_json::Value::Null,
        )
    };
    // Pending: a commit query answers per deployment, and says so.
    let pending = commit_answer();
    assert_eq!(pending["unit"], "deployment");

    // What the back-fill must count, worked out plainly: each counted record's head commit,
    // the first record of each (app environment, commit) in recording order.
    let records = world
        .db
        .execute(
            "SELECT hex(l.app_environment_id), i.git_hash, l.duration_micros, \
                    l.project_id IS NOT NULL \
             FROM image_lead_times AS l JOIN images AS i ON i.image_id = l.image_id \
             WHERE l.duration_micros IS NOT NULL ORDER BY l.rowid",
            &[],
        )
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    let (mut lead_times, mut skewed) = (Vec::new(), 0);
    for row in records.iter() {
        let key = (row.text(0).unwrap(), row.text(1).unwrap());
        if !seen.insert(key) || !row.flag(3).unwrap() {
            continue;
        }
        match row.integer(2).unwrap() {
            micros if micros < 0 => skewed += 1,
            micros => lead_times.push(micros),
        }
    }
    lead_times.sort_unstable();
    assert!(lead_times.len() > 20, "{}", lead_times.len());

    let mut batches = 0;
    while crate::store::reencode::backfill_batch(&world.db, 5, 23).unwrap()
        != crate::store::daily_rollup::Backfill::Complete
    {
        batches += 1;
    }
    assert!(batches >= 5, "batches of 23: {batches}");
    let done = commit_answer();
    assert_eq!(done["unit"], "commit");
    assert_eq!(done["summary"]["count"], lead_times.len(), "{done}");
    assert_eq!(done["summary"]["clock_skew_excluded"], skewed);
    let minutes = |micros: i64| micros as f64 / 60_000_000.0;
    assert_eq!(done["summary"]["min_mins"], minutes(lead_times[0]));
    assert_eq!(
        done["summary"]["max_mins"],
        minutes(*lead_times.last().unwrap())
    );
    world.assert_the_rollup_reads_as_the_records();
}

#[test]
fn the_summary_answers_what_each_metric_answers_for_both_periods() {
    let world = World::generate(17, 300);
    let get = |path: String| {
        world.call(
            crate::handle_lead_time_request,
            "GET",
            &path,
            &world.token,
            serde_json::Value::Null,
        )
    };
    // A start at midnight (one pass for both periods) and one that is not (a pass each).
    for (start, end) in [
        ("2026-05-09T00:00:00Z", "2026-05-16T23:59:59.999999Z"),
        ("2026-05-09T07:30:00Z", "2026-05-16T13:00:00Z"),
    ] {
        let summary = get(format!("/api/v1/dora/summary?start={start}&end={end}"));
        let previous = (
            summary["previous_start_time"].as_str().unwrap().to_owned(),
            summary["previous_end_time"].as_str().unwrap().to_owned(),
        );
        for ((from, to), value, count) in [
            ((start.to_owned(), end.to_owned()), "value", "count"),
            (previous, "previous_value", "previous_count"),
        ] {
            let range = format!("start={from}&end={to}");
            let what = format!("{start}: {range}");
            let lead = get(format!("/api/v1/dora/lead-time?{range}&limit=1"));
            assert_eq!(
                summary["lead_time"][count], lead["summary"]["count"],
                "{what}"
            );
            assert_eq!(
                summary["lead_time"][value], lead["summary"]["median_mins"],
                "{what}"
            );
            let frequency = get(format!("/api/v1/dora/deployment-frequency?{range}"));
            assert_eq!(
                summary["deployment_frequency"][count], frequency["summary"]["count"],
                "{what}"
            );
            for (metric, route) in [
                ("change_failure_rate", "change-failure-rate"),
                ("rework_rate", "rework-rate"),
            ] {
                let rate = get(format!("/api/v1/dora/{route}?{range}"));
                assert_eq!(
                    summary[metric][value], rate["summary"]["rate"],
                    "{what} {metric}"
                );
            }
            let recovery = get(format!("/api/v1/dora/recovery-time?{range}"));
            assert_eq!(
                summary["recovery_time"][value], recovery["summary"]["median_mins"],
                "{what}"
            );
            if value == "value" {
                assert_eq!(
                    summary["clock_skew_excluded"], lead["summary"]["clock_skew_excluded"],
                    "{what}"
                );
                // The stages, as the records give them for the range alone.
                let range = TimeRange {
                    start: Timestamp::parse("start", &from).unwrap(),
                    end: Timestamp::parse("end", &to).unwrap(),
                };
                let records = world.figures(
                    &ReadPlan::records_only(&range),
                    &DoraFilter::default(),
                    &[range.start.instant().timestamp()],
                );
                let stages = &summary["stages"];
                for (index, name) in [
                    "commit_to_build",
                    "build_to_deploy_start",
                    "deploy_start_to_finish",
                ]
                .iter()
                .enumerate()
                {
                    assert_eq!(
                        stages[name]["count"], records.stages[index].count,
                        "{what} {name}"
                    );
                    assert_eq!(
                        stages[name]["median_mins"].as_f64(),
                        records.stages[index].median_mins,
                        "{what} {name}"
                    );
                }
            }
        }
        assert!(
            summary["lead_time"]["count"].as_u64().unwrap() > 20,
            "{summary}"
        );
        assert!(
            summary["lead_time"]["previous_count"].as_u64().unwrap() > 20,
            "{summary}"
        );
    }
}
