//! A hot org: recording a deployment into a day that already holds 10,000 deployments of its
//! environment, against recording the first deployment of a day (issue 17's target: ≤ 1.5×).
//!
//! Both workloads deploy the same image to a new app each request (so every request records
//! a new lead-time record and rolls it up), to the same environment; only the day differs:
//! the hot day, filled with [`HOT_DAY_DEPLOYMENTS`] beforehand, or a day no deployment has
//! reached yet. The fill writes through cd-core's handler in-process on the database file
//! the app serves (synchronous off on that connection only, so it takes seconds), the same
//! rows the HTTP route would write.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use chrono::{Duration, TimeZone, Utc};
use serde_json::json;

use crate::load::{Baseline, Call, Turn, Workload};
use crate::report::{Row, Target, Via};
use crate::scenarios::{Ctx, Scenario, Side, find, find_mut};

pub const HOT_DAY: &str = "POST deployments into a day holding 10,000";
pub const FIRST_OF_DAY: &str = "POST deployments, the first of their day";
const HOT_DAY_DEPLOYMENTS: u64 = 10_000;
const ORG: &str = "hot-org";

/// Every image's commit; the hot day and the first-of-day days come after it. In year 1: a
/// run of the first-of-day scenario takes a day per request (tens of thousands in-process),
/// and days from 2001 on ran into the future, which deployments may not be in.
fn commit_time() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap()
}

fn hot_day() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(1, 6, 1, 0, 0, 0).unwrap()
}

fn stamp(instant: chrono::DateTime<Utc>) -> String {
    instant.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A deployment of `image_id` to a new app at `deployed_at`.
fn deployment(image_id: &str, app: &str, deployed_at: chrono::DateTime<Utc>) -> serde_json::Value {
    json!({"image_id": image_id, "project_id": "hot", "app_id": app,
           "environment": "production", "prod": true, "deployed_at": stamp(deployed_at)})
}

/// The org's write token and its one image (committed at [`commit_time`]).
fn setup(side: &Side<'_>, admin: &str) -> anyhow::Result<(String, String)> {
    let token = side.token(admin, ORG, "write")?;
    let registry = side.create_registry(&token, "bench/hot")?;
    let image = side.call(&Call::post(
        format!("/api/v1/registries/{registry}/images"),
        Some(&token),
        &json!({"tag_name": "hot", "image_name": "hot", "image_name_with_tag": "hot:hot",
                "git_hash": "abcdef1", "run_id": "hot",
                "git_hash_commit_timestamp": stamp(commit_time())}),
    ))?;
    let image_id = image["image_id"].as_str().context("image_id")?.to_owned();
    Ok((token, image_id))
}

/// The `n`-th of the [`HOT_DAY_DEPLOYMENTS`] that fill the hot day.
fn fill_call(token: &str, image_id: &str, n: u64) -> Call {
    let at = hot_day() + Duration::microseconds((n * 8_000_000) as i64);
    Call::post(
        "/api/v1/deployments",
        Some(token),
        &deployment(image_id, &format!("fill-{n}"), at),
    )
}

/// Fills the hot day in-process on `database` (what the HTTP route would write, in seconds),
/// or through `http` when the app's file is not ours to open (`--base-url`).
fn fill(
    database: Option<&Path>,
    http: &Side<'_>,
    admin: &str,
    token: &str,
    image_id: &str,
) -> anyhow::Result<()> {
    let Some(database) = database else {
        for n in 0..HOT_DAY_DEPLOYMENTS {
            http.call(&fill_call(token, image_id, n))?;
        }
        return Ok(());
    };
    let baseline = Baseline {
        database: database.to_owned(),
        admin_token: admin.to_owned(),
    };
    let db = cd_core::testing::RusqliteDb::open(database)
        .map_err(|e| anyhow::anyhow!("opening {}: {e:?}", database.display()))?;
    db.connection().pragma_update(None, "synchronous", "OFF")?;
    for n in 0..HOT_DAY_DEPLOYMENTS {
        let (status, body) = baseline.call_with(&db, &fill_call(token, image_id, n));
        anyhow::ensure!(
            status == 201,
            "filling the hot day: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

/// Deploys to a new app per request: into the hot day, or each into a day of its own.
fn workload(token: &str, image_id: &str, hot: bool) -> Workload {
    let token = token.to_owned();
    let image_id = image_id.to_owned();
    let next_day = Arc::new(AtomicU64::new(0));
    Arc::new(move |turn: Turn| {
        let app = format!(
            "{}-{}-{}-{}",
            if hot { "hot" } else { "first" },
            turn.run,
            turn.client,
            turn.seq
        );
        let at = if hot {
            // Late in the day (after the fill), a distinct microsecond per request.
            hot_day() + Duration::hours(23) + Duration::microseconds(turn.seq as i64)
        } else {
            let day = next_day.fetch_add(1, Ordering::Relaxed);
            Utc.with_ymd_and_hms(2, 1, 1, 12, 0, 0).unwrap() + Duration::days(day as i64)
        };
        Call::post(
            "/api/v1/deployments",
            Some(&token),
            &deployment(&image_id, &app, at),
        )
        .expecting(&[201])
    })
}

/// The two scenarios, on the app under test and (unless `--http-only`) in-process.
pub fn scenarios(ctx: &Ctx) -> anyhow::Result<Vec<Scenario>> {
    let http = Side::Http(ctx, &ctx.fresh);
    let (token, image_id) = setup(&http, &ctx.admin_token)?;
    fill(
        ctx.fresh_db.as_deref(),
        &http,
        &ctx.admin_token,
        &token,
        &image_id,
    )?;
    let baseline = if ctx.http_only {
        None
    } else {
        let side = Side::InProcess(&ctx.baseline_fresh);
        let (token, image_id) = setup(&side, &ctx.admin_token)?;
        fill(
            Some(&ctx.baseline_fresh.database),
            &side,
            &ctx.admin_token,
            &token,
            &image_id,
        )?;
        Some((token, image_id))
    };
    Ok([(FIRST_OF_DAY, false), (HOT_DAY, true)]
        .into_iter()
        .map(|(name, hot)| Scenario {
            name: name.to_owned(),
            via: Via::Http,
            transport: ctx.fresh.clone(),
            workload: workload(&token, &image_id, hot),
            clients: vec![1],
            baseline: baseline.as_ref().map(|(token, image_id)| {
                (ctx.baseline_fresh.clone(), workload(token, image_id, hot))
            }),
            variants: Vec::new(),
            hold_open: None,
            records: None,
            response_bytes: None,
            _keep_alive: None,
        })
        .collect())
}

/// The hot day's p50 over the first-of-day p50, over HTTP and in-process.
pub fn apply_targets(rows: &mut [Row]) {
    for via in [Via::Http, Via::InProcess] {
        let p50 = |name| find(rows, name, via, 1).map(Row::p50_ms);
        let (Some(first), Some(hot)) = (p50(FIRST_OF_DAY), p50(HOT_DAY)) else {
            continue;
        };
        let ratio = hot / first;
        if let Some(row) = find_mut(rows, HOT_DAY, via, 1) {
            row.targets.push(
                Target::check("p50 ≤ 1.5× the first of a day", ratio, 1.5, false)
                    .showing(format!("{ratio:.2}× ({hot:.2} of {first:.2} ms)")),
            );
        }
    }
}
