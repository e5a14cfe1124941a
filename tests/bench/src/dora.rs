//! The DORA scenarios: `GET /api/v1/dora/lead-time` (summary + weekly series + the first page
//! of values) and `GET /api/v1/dora/deployment-frequency` for the biggest org over the last 30
//! days, on databases of 10k, 100k and 1M lead-time records.
//!
//! The databases are generated once per (schema, size, generator) and cached under
//! `<target>/bench-cache/`, straight through rusqlite in one transaction with the tables'
//! indexes dropped during the load: 100 orgs over one year with a Zipf-like skew (s = 1.2: the
//! biggest org has ~28% of all records, the smallest ~0.1%), each org with its apps (one
//! registry and one app per repository, four apps per project, every 12th app without a
//! project), environments `dev`, `staging` and `production` (prod), and images built through
//! the year, each deployed to dev, ~70% of them on to staging and half of those to production.
//! ~3% of images carry no commit time and ~0.1% a commit later than the deployment (clock
//! skew). `duration_mins` is computed by cd-core's own function. Every row satisfies the
//! schema's foreign keys (images → registries, lead times → images and app environments →
//! environments). A read token of the biggest org is stored with the data, so the scenarios
//! write nothing: host and baseline read the cached file itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use cd_core::Timestamp;

use crate::load::{Baseline, Call, Endpoint, InProcess, Transport};
use crate::report::{Row, Target, Via};
use crate::scenarios::{Ctx, Scenario, fixed};
use crate::seed::{self, SplitMix, rfc3339_micros, uuid_v7};

/// Bump when the generated data changes shape: it is part of the cache key.
const GENERATOR_VERSION: u32 = 8;
/// The org every DORA scenario queries: the biggest.
pub const BIG_ORG: &str = "dora-org-000";
const ORGS: usize = 100;
/// The Zipf exponent of the orgs' sizes.
const ZIPF_S: f64 = 1.2;
/// The lead-time record sizes of a full run, and of `--quick`.
pub const FULL_SIZES: [u64; 3] = [10_000, 100_000, 1_000_000];
pub const QUICK_SIZES: [u64; 1] = [10_000];
/// Scenario name prefixes (the size and the rows in range follow).
/// Lead time per commit (the default unit).
pub const LEAD_TIME: &str = "GET dora/lead-time 30d weekly";
/// The summary and the lead-time query per commit measured in turns (issue 14's target).
pub const IN_TURNS: &str = "GET dora/summary 30d ÷ GET dora/lead-time 30d weekly, in turns";
/// The same per deployment (`unit=deployment`): not a prefix of [`LEAD_TIME`]'s names.
pub const LEAD_TIME_PER_DEPLOYMENT: &str = "GET dora/lead-time?unit=deployment 30d weekly";
pub const FREQUENCY: &str = "GET dora/deployment-frequency 30d weekly";
pub const SUMMARY: &str = "GET dora/summary 30d (five metrics, two periods, stages)";
/// The summary with lead time per deployment (no stages: they come with the commits' lead
/// times): what the commits add to it. Not a prefix of [`SUMMARY`]'s names.
pub const SUMMARY_PER_DEPLOYMENT: &str =
    "GET dora/summary?unit=deployment 30d (five metrics, two periods)";
/// Issue 15: the dashboard's pages (signed in as the read token), each within 2× the
/// summary's p50 and at most 100 KB. The page's name follows.
pub const PAGE: &str = "GET /ui page:";
/// Images with a commit time that list commits besides their head, per thousand.
const COMMIT_LIST_SHARE: u64 = 450;
const DAY_MS: u64 = 86_400_000;
const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 3_600_000;

/// The read token of [`BIG_ORG`] stored in every generated database.
pub fn read_token() -> String {
    cd_core::testing::format_token([0xd0; 32])
}

/// `10k`, `100k`, `1M`.
pub fn size_label(records: u64) -> String {
    match records {
        r if r >= 1_000_000 && r % 1_000_000 == 0 => format!("{}M", r / 1_000_000),
        r if r >= 1_000 && r % 1_000 == 0 => format!("{}k", r / 1_000),
        r => r.to_string(),
    }
}

/// The cached database with `records` lead-time records, generating it first if needed.
pub fn cached(cache_dir: &Path, records: u64) -> anyhow::Result<PathBuf> {
    seed::cached_file(
        cache_dir,
        &format!(
            "lead-times-{records}-{}.db",
            seed::cache_key(GENERATOR_VERSION)
        ),
        &format!("{records} lead-time records"),
        |path| generate(path, records),
    )
}

/// The last 30 days of the generated year, as the query's `start` and `end`.
fn window() -> (String, String) {
    let end = seed::START_MS + seed::SPAN_MS;
    (rfc3339_micros(end - 30 * DAY_MS), rfc3339_micros(end - 1))
}

fn query(route: &str) -> String {
    let (start, end) = window();
    format!("/api/v1/dora/{route}?start={start}&end={end}&interval=week")
}

/// Whether `scenario` is one of the two issue 14's target compares (kept for [`in_turns_rows`]).
/// The summary is measured on the largest database only, so only its lead-time query is kept:
/// a smaller one's host would otherwise keep running through every later scenario.
pub fn measured_in_turns(ctx: &Ctx, scenario: &Scenario) -> bool {
    let largest = ctx.lead_time_sizes.iter().copied().max();
    scenario.via == Via::Http
        && scenario
            .records
            .is_some_and(|(records, _)| Some(records) == largest)
        && (scenario.name.starts_with(LEAD_TIME) || scenario.name.starts_with(SUMMARY))
}

/// Per database size, the summary and the lead-time query measured again in turns
/// (`scenarios::in_turns`): a row of the summary's figures with the target's ratio.
pub fn in_turns_rows(ctx: &Ctx, scenarios: &[Scenario]) -> Vec<Row> {
    let mut rows = Vec::new();
    for summary in scenarios.iter().filter(|s| s.name.starts_with(SUMMARY)) {
        let records = summary.records.map(|(n, _)| n);
        let Some(lead_time) = scenarios
            .iter()
            .find(|s| s.name.starts_with(LEAD_TIME) && s.records.map(|(n, _)| n) == records)
        else {
            continue;
        };
        let (lead_time_m, summary_m) = crate::scenarios::in_turns(ctx, lead_time, summary);
        let name = format!(
            "{IN_TURNS}{}",
            summary.name.strip_prefix(SUMMARY).unwrap_or_default()
        );
        crate::scenarios::progress(&format!("{name} (lead time)"), 1, &lead_time_m);
        crate::scenarios::progress(&name, 1, &summary_m);
        let ratio = summary_m.p50_ms() / lead_time_m.p50_ms();
        let shown = format!(
            "{ratio:.2}× ({:.2} of {:.2} ms)",
            summary_m.p50_ms(),
            lead_time_m.p50_ms()
        );
        let mut row = Row::load(name, Via::Http, 1, summary_m);
        row.records = summary.records;
        row.targets.push(
            Target::check(
                "p50 ≤ 2× the lead-time query's, in turns",
                ratio,
                2.0,
                false,
            )
            .showing(shown),
        );
        rows.push(row);
    }
    rows
}

/// The DORA scenarios, one database (and, in-repo, one host) per size.
pub fn scenarios(ctx: &Ctx) -> anyhow::Result<Vec<Scenario>> {
    let mut scenarios = Vec::new();
    let largest = ctx.lead_time_sizes.iter().copied().max();
    for &records in &ctx.lead_time_sizes {
        let path = cached(&ctx.cache_dir, records)?;
        let (transport, host) = match &ctx.start_host {
            Some(start) => {
                let host = start(&path)?;
                (
                    Transport::Http(Endpoint::from_addr(host.addr())),
                    Some(Arc::new(host)),
                )
            }
            // --base-url: the instance serves this database (`cd-bench --seed PATH --lead-times N`).
            None => (ctx.seeded.clone(), None),
        };
        let baseline = Baseline {
            database: path.clone(),
            admin_token: ctx.admin_token.clone(),
        };
        let range = in_range(&path)?;
        eprintln!(
            "bench: {} records: {} commit lead times in all; in range {} deployments ({} with a \
             lead time), {} commits ({} with a lead time)",
            size_label(records),
            range.commits_in_all,
            range.deployments,
            range.deployments_counted,
            range.commits,
            range.commits_counted,
        );
        let token = read_token();
        // (name prefix, route, unit asked, rows in range the query reads)
        let mut routes = vec![(LEAD_TIME, "lead-time", None, range.commits)];
        if Some(records) == largest {
            routes.push((
                LEAD_TIME_PER_DEPLOYMENT,
                "lead-time",
                Some("deployment"),
                range.deployments,
            ));
            routes.push((FREQUENCY, "deployment-frequency", None, range.deployments));
            routes.push((SUMMARY, "summary", None, range.commits));
            routes.push((
                SUMMARY_PER_DEPLOYMENT,
                "summary",
                Some("deployment"),
                range.deployments,
            ));
        }
        if Some(records) == largest {
            for (page, path) in dashboard_pages(&path)? {
                let call = Call::page(path, &token);
                let (status, body) = baseline.once(&call);
                if status != 200 {
                    bail!("{page}: the dashboard answered {status} in-process");
                }
                let name = format!(
                    "{PAGE} {page}, {} records ({} deployments, {} commits in range)",
                    size_label(records),
                    range.deployments,
                    range.commits
                );
                scenarios.push(Scenario {
                    name,
                    via: Via::Http,
                    transport: transport.clone(),
                    workload: fixed(call.clone()),
                    clients: vec![1],
                    baseline: Some((baseline.clone(), fixed(call))),
                    variants: Vec::new(),
                    hold_open: None,
                    records: Some((records, range.commits)),
                    response_bytes: Some(body.len()),
                    _keep_alive: host.clone(),
                });
            }
        }
        for (prefix, route, unit, read) in routes {
            let mut path = query(route);
            if let Some(unit) = unit {
                path.push_str(&format!("&unit={unit}"));
            }
            let call = Call::get(path, Some(&token));
            check_same_answer(ctx, &transport, &baseline, &call, &range, route, unit)?;
            let name = format!(
                "{prefix}, {} records ({} deployments, {} commits in range)",
                size_label(records),
                range.deployments,
                range.commits
            );
            scenarios.push(Scenario {
                name: name.clone(),
                via: Via::Http,
                transport: transport.clone(),
                workload: fixed(call.clone()),
                clients: vec![1, 8],
                baseline: Some((baseline.clone(), fixed(call.clone()))),
                variants: vec![("connection per request", InProcess::PER_REQUEST, 1)],
                hold_open: None,
                records: Some((records, read)),
                response_bytes: None,
                _keep_alive: host.clone(),
            });
            if let (Some(host), true) = (&host, Some(records) == largest && prefix == LEAD_TIME) {
                // The same through `Host::handle`: the host without sockets (what HTTP adds).
                scenarios.push(Scenario {
                    name,
                    via: Via::InMemory,
                    transport: Transport::InMemory(host.host().clone()),
                    workload: fixed(call.clone()),
                    clients: vec![1],
                    baseline: None,
                    variants: Vec::new(),
                    hold_open: None,
                    records: Some((records, read)),
                    response_bytes: None,
                    _keep_alive: Some(host.clone()),
                });
            }
        }
    }
    Ok(scenarios)
}

/// The dashboard's pages for [`BIG_ORG`]: the overview of the summary's 30 days (as whole
/// UTC days: the page picks dates), its registries, its first registry, that registry's
/// newest image, and the deployments.
fn dashboard_pages(database: &Path) -> anyhow::Result<Vec<(&'static str, String)>> {
    let db = rusqlite::Connection::open(database)?;
    let (registry, registry_key): (Vec<u8>, i64) = db.query_row(
        "SELECT registry_id, registry_key FROM image_registries \
         WHERE org_key = (SELECT org_key FROM orgs WHERE org_id = ?) ORDER BY registry_key LIMIT 1",
        [BIG_ORG],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let image: Vec<u8> = db.query_row(
        "SELECT image_id FROM images WHERE registry_key = ? ORDER BY rowid DESC LIMIT 1",
        [registry_key],
        |row| row.get(0),
    )?;
    let uuid = |bytes: &[u8]| -> anyhow::Result<String> {
        Ok(uuid::Uuid::from_slice(bytes)?.hyphenated().to_string())
    };
    let (registry, image) = (uuid(&registry)?, uuid(&image)?);
    let (start, end) = window();
    let date = |instant: &str| instant.get(..10).unwrap_or("").to_owned();
    Ok(vec![
        (
            "overview 30d",
            format!("/ui/?start={}&end={}", date(&start), date(&end)),
        ),
        ("registries", "/ui/registries".to_owned()),
        ("registry", format!("/ui/registries/{registry}")),
        ("image", format!("/ui/registries/{registry}/images/{image}")),
        ("deployments", "/ui/deployments".to_owned()),
    ])
}

/// Issue 6's lead-time targets: on every size, over HTTP at 1 client, ≤ 2× the in-process
/// baseline's time and p50 ≤ 50 ms (the issue sets both for 1M); and from 100k to 1M records
/// the p50 grows ≤ 1.5×, shown beside how much more the query has to read.
/// How the in-process variant with a new connection per request is named after its scenario.
const PER_REQUEST_SUFFIX: &str = " (connection per request)";

pub fn apply_targets(rows: &mut [Row]) {
    let is_lead_time =
        |r: &Row| r.scenario.starts_with(LEAD_TIME) && r.via == Via::Http && r.clients == Some(1);
    let at = |rows: &[Row], records: u64| {
        rows.iter()
            .find(|r| is_lead_time(r) && r.records.is_some_and(|(n, _)| n == records))
            .map(|r| (r.p50_ms(), r.records.map_or(0, |(_, read)| read)))
    };
    let growth_between = |small, big| match (at(rows, small), at(rows, big)) {
        (Some((small_ms, small_read)), Some((big_ms, big_read))) => Some((
            big_ms / small_ms,
            big_read as f64 / small_read.max(1) as f64,
        )),
        _ => None,
    };
    let growth = growth_between(100_000, 1_000_000);
    // Issue 17: ten times the records again, p50 ≤ 1.2× its 1M figure.
    let growth_10m = growth_between(1_000_000, 10_000_000);
    // Spin's connection model alone, in-process (no wasm, no HTTP): the floor of the ratio.
    let per_request: Vec<(String, f64)> = rows
        .iter()
        .filter(|r| r.via == Via::InProcess && r.scenario.ends_with(PER_REQUEST_SUFFIX))
        .map(|r| (r.scenario.clone(), r.rps()))
        .collect();
    // Issue 14: the five-metric summary (two periods) within 2× the lead-time query (per
    // commit, the default unit of both); beside it, the ratio to the query per deployment.
    let per_deployment_at = |rows: &[Row], records: u64| {
        rows.iter()
            .find(|r| {
                r.scenario.starts_with(LEAD_TIME_PER_DEPLOYMENT)
                    && r.via == Via::Http
                    && r.clients == Some(1)
                    && r.records.is_some_and(|(n, _)| n == records)
            })
            .map(Row::p50_ms)
    };
    let is_summary =
        |r: &Row| r.scenario.starts_with(SUMMARY) && r.via == Via::Http && r.clients == Some(1);
    let summary_vs_lead_time: Vec<(u64, f64, Option<f64>, Option<f64>)> = rows
        .iter()
        .filter(|r| is_summary(r))
        .filter_map(|r| {
            let (records, _) = r.records?;
            let p50 = r.p50_ms();
            let per_commit = at(rows, records).map(|(ms, _)| p50 / ms);
            let per_deployment = per_deployment_at(rows, records).map(|ms| p50 / ms);
            Some((records, p50, per_commit, per_deployment))
        })
        .collect();
    let per_deployment: Vec<(u64, f64)> = rows
        .iter()
        .filter_map(|r| {
            let (records, _) = r.records?;
            Some((records, per_deployment_at(rows, records)?))
        })
        .collect();
    for row in rows.iter_mut().filter(|r| {
        r.scenario.starts_with(SUMMARY_PER_DEPLOYMENT) && r.via == Via::Http && r.clients == Some(1)
    }) {
        let p50 = row.p50_ms();
        let records = row.records.map(|(n, _)| n);
        if let Some((_, ms)) = per_deployment.iter().find(|(n, _)| Some(*n) == records) {
            row.targets.push(Target::note(
                "p50 ÷ the lead-time query's per deployment",
                format!("{:.2}× ({p50:.2} ms)", p50 / ms),
            ));
        }
    }
    let in_turns: Vec<Option<(u64, u64)>> = rows
        .iter()
        .filter(|r| r.scenario.starts_with(IN_TURNS))
        .map(|r| r.records)
        .collect();
    for row in rows.iter_mut().filter(|r| is_summary(r)) {
        let Some((_, p50, per_commit, per_deployment)) = summary_vs_lead_time
            .iter()
            .find(|(records, ..)| Some(*records) == row.records.map(|(n, _)| n))
        else {
            continue;
        };
        if let Some(ratio) = per_commit {
            let shown = format!("{ratio:.2}× ({p50:.2} ms)");
            // Measured in turns too: that row checks the target, this one says its ratio.
            row.targets.push(if in_turns.contains(&row.records) {
                Target::note("p50 ÷ the lead-time query's, one after the other", shown)
            } else {
                Target::check("p50 ≤ 2× the lead-time query's", *ratio, 2.0, false).showing(shown)
            });
        }
        if let Some(ratio) = per_deployment {
            row.targets.push(Target::note(
                "p50 ÷ the lead-time query's per deployment",
                format!("{ratio:.2}×"),
            ));
        }
    }
    // Issue 15: every page within 2× the summary's p50 on the same data, and ≤ 100 KB.
    for row in rows
        .iter_mut()
        .filter(|r| r.scenario.starts_with(PAGE) && r.via == Via::Http && r.clients == Some(1))
    {
        let p50 = row.p50_ms();
        let summary = summary_vs_lead_time
            .iter()
            .find(|(records, ..)| Some(*records) == row.records.map(|(n, _)| n));
        if let Some((_, summary_p50, ..)) = summary {
            let ratio = p50 / summary_p50;
            row.targets.push(
                Target::check("p50 ≤ 2× the summary's", ratio, 2.0, false)
                    .showing(format!("{ratio:.2}× ({p50:.2} of {summary_p50:.2} ms)")),
            );
        }
        if let Some(bytes) = row.response_bytes {
            let kb = bytes as f64 / 1000.0;
            row.targets.push(
                Target::check("page ≤ 100 KB", kb, 100.0, false).showing(format!("{kb:.1} KB")),
            );
        }
    }
    for row in rows.iter_mut().filter(|r| is_lead_time(r)) {
        let ratio = row.ratio();
        let p50 = row.p50_ms();
        let floor = per_request
            .iter()
            .find(|(name, _)| *name == format!("{}{PER_REQUEST_SUFFIX}", row.scenario))
            .and_then(|(_, rps)| row.baseline_rps.map(|baseline| baseline / rps));
        // Against Spin's model in-process (a connection per request, no wasm, no HTTP),
        // restated by issue 17 from "≤ 2× a persistent connection", which that model alone
        // exceeds.
        if let (Some(floor), Some((1_000_000, _))) = (floor, row.records) {
            // Host time over in-process-per-request time: (1 / ratio) ÷ floor.
            let cost = (1.0 / ratio) / floor;
            row.targets.push(
                Target::check(
                    "≤ 1.3× in-process connection-per-request time",
                    cost,
                    1.3,
                    false,
                )
                .showing(format!(
                    "{cost:.2}× (vs a persistent connection: {:.2}×)",
                    1.0 / ratio
                )),
            );
        }
        row.targets
            .push(Target::check("p50 ≤ 50 ms", p50, 50.0, false).showing(format!("{p50:.2} ms")));
        if let (Some((growth, read)), Some((1_000_000, _))) = (growth, row.records) {
            row.targets.push(
                Target::check("p50 1M ÷ 100k ≤ 1.5×", growth, 1.5, false).showing(format!(
                    "{growth:.2}× (rows read {read:.1}×; per row read {:.2}×)",
                    growth / read
                )),
            );
        }
        if let (Some((growth, read)), Some((10_000_000, _))) = (growth_10m, row.records) {
            row.targets.push(
                Target::check("p50 10M ÷ 1M ≤ 1.2×", growth, 1.2, false).showing(format!(
                    "{growth:.2}× (rows read {read:.1}×; per row read {:.2}×)",
                    growth / read
                )),
            );
        }
    }
}

/// An RFC 3339 instant as the database stores it (µs since the epoch).
fn micros_of(instant: &str) -> anyhow::Result<i64> {
    Ok(Timestamp::from_rfc3339(instant)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?
        .micros())
}

/// What the window holds for [`BIG_ORG`], and the commit lead times of the whole database.
struct InRange {
    deployments: u64,
    /// Deployments that count for lead time (a project and a lead time).
    deployments_counted: u64,
    commits: u64,
    /// Commit lead times that count (a project, not clock-skewed).
    commits_counted: u64,
    /// Of every org and day: the data set's size per commit.
    commits_in_all: u64,
    /// Commits with each stage, of those that count.
    stages: [u64; 3],
}

/// What the window of [`BIG_ORG`] holds, deployments and commits.
fn in_range(path: &Path) -> anyhow::Result<InRange> {
    let connection = rusqlite::Connection::open(path)?;
    let (start, end) = window();
    let params = rusqlite::params![BIG_ORG, micros_of(&start)?, micros_of(&end)?];
    let (deployments, deployments_counted) = connection.query_row(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE project_id IS NOT NULL AND duration_micros >= 0) \
         FROM image_lead_times \
         WHERE org_key = (SELECT org_key FROM orgs WHERE org_id = ?) \
           AND created_at BETWEEN ? AND ?",
        params,
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let counted = "project_id IS NOT NULL AND duration_micros >= 0";
    let (commits, commits_counted, commit_to_build, build_to_start, start_to_finish) = connection
        .query_row(
        &format!(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE {counted}), \
                        COUNT(*) FILTER (WHERE {counted} AND commit_to_build_micros >= 0), \
                        COUNT(*) FILTER (WHERE {counted} AND build_to_start_micros >= 0), \
                        COUNT(*) FILTER (WHERE {counted} AND start_to_finish_micros >= 0) \
                 FROM commit_lead_times \
                 WHERE org_key = (SELECT org_key FROM orgs WHERE org_id = ?) \
                   AND created_at BETWEEN ? AND ?"
        ),
        params,
        |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        },
    )?;
    let commits_in_all =
        connection.query_row("SELECT COUNT(*) FROM commit_lead_times", [], |row| {
            row.get(0)
        })?;
    Ok(InRange {
        deployments,
        deployments_counted,
        commits,
        commits_counted,
        commits_in_all,
        stages: [commit_to_build, build_to_start, start_to_finish],
    })
}

/// The app under test and the baseline must give the same answer (the same JSON, byte for
/// byte: the data and the code are the same), in the unit asked (commit by default: the
/// commits' back-fill is not pending), and lead time and the summary's stages must count what
/// the generator put in the window (the commit rollup agrees with `commit_lead_times`).
fn check_same_answer(
    ctx: &Ctx,
    transport: &Transport,
    baseline: &Baseline,
    call: &Call,
    range: &InRange,
    route: &str,
    unit: Option<&str>,
) -> anyhow::Result<()> {
    let (status, http_body) = ctx.runtime.block_on(transport.once(call))?;
    let (baseline_status, baseline_body) = baseline.once(call);
    if status != 200 || baseline_status != 200 {
        bail!(
            "{route}: {status} {} / in-process {baseline_status} {}",
            String::from_utf8_lossy(&http_body),
            String::from_utf8_lossy(&baseline_body)
        );
    }
    if http_body.as_ref() != baseline_body.as_slice() {
        bail!("{route}: the app and the in-process baseline answer differently");
    }
    let answer: serde_json::Value = serde_json::from_slice(&baseline_body)?;
    let unit = unit.unwrap_or("commit");
    let counted = match unit {
        "deployment" => range.deployments_counted,
        _ => range.commits_counted,
    };
    let count = match route {
        "lead-time" => Some(&answer["summary"]["count"]),
        "summary" => Some(&answer["lead_time"]["count"]),
        _ => None,
    };
    if let Some(count) = count {
        if answer["unit"] != unit {
            bail!("{route}: answered per {}, asked per {unit}", answer["unit"]);
        }
        let count = count.as_u64().context("the lead time's count")?;
        if count != counted {
            bail!("{route} per {unit} counts {count}, the database has {counted} in range");
        }
    }
    // The stages come with the commit lead times (per deployment: none, or the same).
    if route == "summary" && !(unit == "deployment" && answer["stages"].is_null()) {
        let stages = &answer["stages"];
        let counts = [
            "commit_to_build",
            "build_to_deploy_start",
            "deploy_start_to_finish",
        ]
        .map(|stage| stages[stage]["count"].as_u64());
        if counts != range.stages.map(Some) {
            bail!(
                "summary: stages {stages}, the database has {:?} in range",
                range.stages
            );
        }
    }
    Ok(())
}

/// An app: its registry, project, name and app environments (dev, staging, production).
struct App {
    registry_id: String,
    image_name: String,
    project_id: Option<String>,
    app_id: String,
    /// `(app_environment_id, environment, prod)` for dev, staging and production.
    environments: [(String, &'static str, bool); 3],
    patch: u64,
}

/// An org and its apps.
type Org = (String, Vec<App>);

/// The ids of the setup rows (environments, registries, app environments): UUIDv7 one
/// millisecond apart from the day before the year, in creation order.
struct SetupIds {
    issued: u64,
}

impl SetupIds {
    fn next(&mut self, rng: &mut SplitMix) -> String {
        self.issued += 1;
        uuid_v7(
            seed::START_MS - DAY_MS + self.issued,
            rng.next(),
            rng.next(),
        )
    }
}

/// The DORA database, step by step: the app's schema, then (indexes down) the read token, the
/// orgs with their environments and apps, the images with their deployments, then the indexes
/// back, the channels' versions, a foreign-key check, and the daily rollup.
///
/// One generator (`rng`) feeds every step in this order, so the steps must stay in it: the
/// same seed gives the same database.
fn generate(path: &Path, records: u64) -> anyhow::Result<()> {
    seed::remove_database_files(path);
    create_schema(path)?;
    let (mut connection, indexes) =
        seed::open_for_bulk_load(path, &["images", "image_lead_times"])?;
    let tx = connection.transaction()?;
    seed::drop_indexes(&tx, &indexes)?;
    let created = rfc3339_micros(seed::START_MS - DAY_MS);
    insert_read_token(&tx, &created)?;
    let (weights, cumulative) = org_weights();
    let mut rng = SplitMix(0xd02a_1ead_u64 ^ records);
    let mut orgs = insert_orgs(&tx, &weights, &created, &mut rng)?;
    insert_images_and_lead_times(&tx, &mut orgs, &cumulative, &mut rng, records)?;
    seed::recreate_indexes(&tx, &indexes)?;
    record_channel_versions(&tx, &orgs, &created)?;
    tx.commit()?;
    check_foreign_keys(&connection)?;
    seed::close_as_served(connection)?;
    upgrade(path)?;
    add_outcomes(path)?;
    add_commits(path)?;
    backfill_daily_rollup(path)?;
    compact(path)
}

/// The app's migrations and every back-fill they leave pending, as `seed::upgrade`, but not
/// migration 0011's count of head commits: [`add_commits`] counts the commits of every record
/// as the write path would have, listed ones included (the back-fill counts each record's own
/// head commit only, as for records written before the commit unit existed).
fn upgrade(path: &Path) -> anyhow::Result<()> {
    let db = cd_core::testing::RusqliteDb::open(path)
        .map_err(|e| anyhow::anyhow!("opening {}: {e:?}", path.display()))?;
    cd_core::testing::ensure_schema(&db).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    db.connection().execute(
        "DELETE FROM backfills WHERE derived = 'commit_lead_times'",
        [],
    )?;
    while cd_core::testing::pending_backfill_step(&db).map_err(|e| anyhow::anyhow!("{e:?}"))? {}
    Ok(())
}

/// The dropped text tables' pages, and those the updates moved, compacted (as
/// `seed::upgrade` leaves a generated database).
fn compact(path: &Path) -> anyhow::Result<()> {
    rusqlite::Connection::open(path)?.execute_batch("VACUUM")?;
    Ok(())
}

/// Outcomes, in the current schema (before the rollup is built from the records): 1 in 13
/// production deployments failed, each with its failure resolved 1 minute to ~1 day later, and
/// 1 in 17 deployments rework. Spread by rowid, so every org and day has some. And the deploy's
/// start, 30 s to 15 min before its end, on all but 1 in 20 (which report none): the commit
/// lead times' stages (build → start, start → finish) need it.
fn add_outcomes(path: &Path) -> anyhow::Result<()> {
    let connection = rusqlite::Connection::open(path)?;
    connection.execute_batch(
        "BEGIN;
         UPDATE image_lead_times
            SET started_at = created_at - (30 + (rowid * 48271) % 870) * 1000000
          WHERE rowid % 20 <> 0;
         UPDATE image_lead_times SET status = 'failed' WHERE prod = 1 AND rowid % 13 = 0;
         UPDATE image_lead_times SET kind = 'rework' WHERE rowid % 17 = 0;
         INSERT INTO failures (failure_id, org_key, implicit, lead_time_id, app_environment_id,
             project_id, app_id, environment, prod, started_at, resolved_at, created_at,
             updated_at)
         SELECT 'deployment:' || lower(substr(hex(lead_time_id), 1, 8) || '-' ||
                    substr(hex(lead_time_id), 9, 4) || '-' || substr(hex(lead_time_id), 13, 4)
                    || '-' || substr(hex(lead_time_id), 17, 4) || '-' ||
                    substr(hex(lead_time_id), 21)), org_key, 1, lead_time_id,
                app_environment_id, project_id, app_id, environment, prod, created_at,
                created_at + (60 + (rowid * 7919) % 86400) * 1000000, created_at, created_at
         FROM image_lead_times WHERE status = 'failed';
         COMMIT;",
    )?;
    Ok(())
}

/// The commits the builds list (the CD request's `commits`, kept in `images.commits`):
/// [`COMMIT_LIST_SHARE`] of the images with a commit time list 1 to 4 commits besides their
/// head, with their own shas, authors and times (each 1 minute to 6 hours before the next,
/// the newest before the head; newest first, as `git log` lists them). Drawn from a generator
/// of their own, so the records and images stay those of the earlier generators.
fn list_commits(tx: &rusqlite::Transaction<'_>) -> anyhow::Result<u64> {
    let mut rng = SplitMix(0xc0_11_1e_c7);
    let images: Vec<(i64, i64)> = tx
        .prepare(
            "SELECT rowid, git_hash_commit_timestamp FROM images \
             WHERE git_hash_commit_timestamp IS NOT NULL ORDER BY rowid",
        )?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut update = tx.prepare("UPDATE images SET commits = ?1 WHERE rowid = ?2")?;
    let mut listed = 0u64;
    for (rowid, head_at) in images {
        let r = rng.next();
        if r % 1000 >= COMMIT_LIST_SHARE {
            continue;
        }
        let mut committed_at = head_at;
        let commits: Vec<(String, i64, String)> = (0..1 + (r >> 32) % 4)
            .map(|_| {
                committed_at -= (MINUTE_MS + rng.next() % (6 * HOUR_MS)) as i64 * 1000;
                let author = rng.next() % 211;
                (
                    format!(
                        "{:016x}{:016x}{:08x}",
                        rng.next(),
                        rng.next(),
                        rng.next() >> 32
                    ),
                    committed_at,
                    format!("Author {author} <author{author}@example.com>"),
                )
            })
            .collect();
        listed += commits.len() as u64;
        update.execute(rusqlite::params![serde_json::to_string(&commits)?, rowid])?;
    }
    Ok(listed)
}

/// The images' listed commits, then each succeeded deployment's commits counted in
/// `commit_lead_times` exactly as recording it does (`store/commit_lead_times.rs`, `record`),
/// in recording order: nothing if an image of its channel newer than its own already ran in
/// the app environment; else the commits (listed, then the head) of its image and of every
/// image of the channel built after the newest one that ran there (its own alone if none
/// did), each with its three stages. The table's indexes are down during the insert; its
/// unique key, recreated after it, proves no commit counted twice in an app environment
/// (what the insert's `ON CONFLICT DO NOTHING` would have skipped). Then its daily rollup.
fn add_commits(path: &Path) -> anyhow::Result<()> {
    let (mut connection, indexes) = seed::open_for_bulk_load(path, &["commit_lead_times"])?;
    let tx = connection.transaction()?;
    let listed = list_commits(&tx)?;
    seed::drop_indexes(&tx, &indexes)?;
    let counted = tx.execute(
        "INSERT INTO commit_lead_times \
           (app_environment_id, sha, org_key, lead_time_id, image_id, project_id, app_id, \
            environment, prod, author, committed_at, created_at, duration_micros, \
            commit_to_build_micros, build_to_start_micros, start_to_finish_micros) \
         WITH deployments AS MATERIALIZED ( \
           SELECT l.rowid AS record, l.recorded_at, l.lead_time_id, l.image_id, \
                  l.app_environment_id, l.org_key, l.project_id, l.app_id, l.environment, \
                  l.prod, l.created_at, l.started_at, \
                  max(l.image_id) OVER (PARTITION BY l.app_environment_id \
                                        ORDER BY l.recorded_at, l.rowid \
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS ran \
           FROM image_lead_times AS l WHERE l.rolled_out = 1), \
         carrying AS MATERIALIZED ( \
           SELECT d.record, d.recorded_at, d.lead_time_id, d.app_environment_id, d.org_key, \
                  d.project_id, d.app_id, d.environment, d.prod, d.created_at, d.started_at, \
                  w.image_id AS built, w.built_at, w.commits, w.git_hash, \
                  w.git_hash_commit_timestamp AS head_at, w.committer \
           FROM deployments AS d JOIN images AS x ON x.image_id = d.image_id \
           JOIN images AS w ON w.registry_key = x.registry_key AND w.channel = x.channel \
                           AND w.image_id > d.ran AND w.image_id <= d.image_id \
           WHERE d.ran < d.image_id \
           UNION ALL \
           SELECT d.record, d.recorded_at, d.lead_time_id, d.app_environment_id, d.org_key, \
                  d.project_id, d.app_id, d.environment, d.prod, d.created_at, d.started_at, \
                  w.image_id, w.built_at, w.commits, w.git_hash, w.git_hash_commit_timestamp, \
                  w.committer \
           FROM deployments AS d JOIN images AS w ON w.image_id = d.image_id \
           WHERE d.ran IS NULL), \
         carried AS ( \
           SELECT c.*, json_extract(j.value, '$[0]') AS sha, \
                  json_extract(j.value, '$[1]') AS committed_at, \
                  json_extract(j.value, '$[2]') AS author, 0 AS head \
           FROM carrying AS c, json_each(c.commits) AS j \
           UNION ALL \
           SELECT c.*, c.git_hash, c.head_at, c.committer, 1 FROM carrying AS c \
           WHERE c.head_at IS NOT NULL AND c.git_hash <> '') \
         SELECT app_environment_id, sha, org_key, lead_time_id, built, project_id, app_id, \
                environment, prod, author, committed_at, created_at, created_at - committed_at, \
                built_at - committed_at, started_at - built_at, created_at - started_at \
         FROM carried ORDER BY recorded_at, record, built, head",
        [],
    )?;
    seed::recreate_indexes(&tx, &indexes)
        .context("a commit counted twice in one app environment")?;
    let chunks = roll_up_commits(&tx)?;
    tx.commit()?;
    seed::close_as_served(connection)?;
    eprintln!(
        "bench: {listed} listed commits; {counted} commit lead times counted, in {chunks} \
         rollup chunks"
    );
    Ok(())
}

/// Lead times a commit rollup chunk holds, as the write path splits them. Only the layout
/// depends on it, not what a query answers.
const ROLLUP_CHUNK: usize = cd_core::testing::COMMIT_ROLLUP_CHUNK;

/// What the commits of one (org key, day since the epoch, environment, prod) add up to.
#[derive(Default)]
struct CommitDay {
    clock_skew: i64,
    lead_times: Vec<u64>,
    stages: [Vec<u64>; 3],
}

/// `commit_lead_time_days` built from `commit_lead_times`, as the write path keeps it
/// (`store/commit_lead_times.rs`, `totals_of` and `write_day`): per org, UTC day, environment
/// and prod, the commits of deployments with a project; a negative lead time counts only as
/// clock skew, a negative stage is left out of its stage; each list sorted, 8-byte big-endian,
/// in chunks of [`ROLLUP_CHUNK`] (the clock skew on the first). The number of chunks.
fn roll_up_commits(tx: &rusqlite::Transaction<'_>) -> anyhow::Result<u64> {
    let mut days: std::collections::BTreeMap<(i64, i64, String, bool), CommitDay> =
        std::collections::BTreeMap::new();
    {
        let mut select = tx.prepare(
            "SELECT org_key, created_at, environment, prod, duration_micros, \
                    commit_to_build_micros, build_to_start_micros, start_to_finish_micros \
             FROM commit_lead_times WHERE project_id IS NOT NULL",
        )?;
        let mut rows = select.query([])?;
        while let Some(row) = rows.next()? {
            let created_at: i64 = row.get(1)?;
            let day = created_at.div_euclid(DAY_MS as i64 * 1000);
            let totals = days
                .entry((row.get(0)?, day, row.get(2)?, row.get(3)?))
                .or_default();
            let Ok(duration) = u64::try_from(row.get::<_, i64>(4)?) else {
                totals.clock_skew += 1;
                continue;
            };
            totals.lead_times.push(duration);
            for (stage, values) in totals.stages.iter_mut().enumerate() {
                if let Some(micros) = row
                    .get::<_, Option<i64>>(5 + stage)?
                    .and_then(|m| u64::try_from(m).ok())
                {
                    values.push(micros);
                }
            }
        }
    }
    let mut insert = tx.prepare(
        "INSERT INTO commit_lead_time_days (org_key, day, environment, prod, chunk, clock_skew, \
           lead_times, commit_to_build, build_to_start, start_to_finish) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?;
    let mut chunks = 0u64;
    for ((org_key, day, environment, prod), mut totals) in days {
        totals.lead_times.sort_unstable();
        for values in &mut totals.stages {
            values.sort_unstable();
        }
        let day = &rfc3339_micros(day as u64 * DAY_MS)[..10];
        let slice = |values: &[u64], index: usize| -> Vec<u8> {
            let start = (index * ROLLUP_CHUNK).min(values.len());
            let end = ((index + 1) * ROLLUP_CHUNK).min(values.len());
            values[start..end]
                .iter()
                .flat_map(|v| v.to_be_bytes())
                .collect()
        };
        for index in 0..totals.lead_times.len().div_ceil(ROLLUP_CHUNK).max(1) {
            insert.execute(rusqlite::params![
                org_key,
                day,
                environment,
                prod,
                index as i64,
                if index == 0 { totals.clock_skew } else { 0 },
                slice(&totals.lead_times, index),
                slice(&totals.stages[0], index),
                slice(&totals.stages[1], index),
                slice(&totals.stages[2], index),
            ])?;
            chunks += 1;
        }
    }
    Ok(chunks)
}

/// Schema 6 exactly as the app made it, the text encoding the rows are written in: the
/// app's migration 0007 and its copy then bring them to the current encoding.
fn create_schema(path: &Path) -> anyhow::Result<()> {
    let db = cd_core::testing::RusqliteDb::open(path)
        .map_err(|e| anyhow::anyhow!("opening {}: {e:?}", path.display()))?;
    cd_core::testing::create_schema_at(&db, 6)
        .map_err(|e| anyhow::anyhow!("creating {}: {e:?}", path.display()))?;
    Ok(())
}

/// The read token of [`BIG_ORG`] ([`read_token`]), so the scenarios need not write one.
fn insert_read_token(tx: &rusqlite::Transaction<'_>, created: &str) -> anyhow::Result<()> {
    tx.execute(
        "INSERT INTO api_tokens (token_id, org_id, role, name, token_sha256, created_at) \
         VALUES (?, ?, 'read', 'bench dora', ?, ?)",
        rusqlite::params![
            uuid_v7(seed::START_MS - DAY_MS, 0, 0),
            BIG_ORG,
            cd_core::testing::token_digest(&read_token()),
            created,
        ],
    )?;
    Ok(())
}

/// The orgs' Zipf weights (`k^-s`, unnormalised) and their normalised cumulative sums (to
/// pick an org for a uniform draw).
fn org_weights() -> (Vec<f64>, Vec<f64>) {
    let weights: Vec<f64> = (1..=ORGS).map(|k| (k as f64).powf(-ZIPF_S)).collect();
    let total: f64 = weights.iter().sum();
    let mut cumulative = Vec::with_capacity(ORGS);
    let mut sum = 0.0;
    for weight in &weights {
        sum += weight / total;
        cumulative.push(sum);
    }
    (weights, cumulative)
}

/// Every org with its three environments and its apps (1 to 30, in proportion to its
/// weight): a registry, a project (but for every 12th) and an app environment per
/// environment each.
fn insert_orgs(
    tx: &rusqlite::Transaction<'_>,
    weights: &[f64],
    created: &str,
    rng: &mut SplitMix,
) -> anyhow::Result<Vec<Org>> {
    let total: f64 = weights.iter().sum();
    let mut ids = SetupIds { issued: 0 };
    let mut orgs = Vec::with_capacity(ORGS);
    for (org, weight) in weights.iter().enumerate() {
        let org_id = format!("dora-org-{org:03}");
        let environments = insert_environments(tx, &org_id, created, rng, &mut ids)?;
        let app_count = ((weight / total * 100.0).round() as usize).clamp(1, 30);
        let mut apps = Vec::with_capacity(app_count);
        for index in 0..app_count {
            apps.push(insert_app(
                tx,
                &org_id,
                index,
                &environments,
                created,
                rng,
                &mut ids,
            )?);
        }
        orgs.push((org_id, apps));
    }
    Ok(orgs)
}

/// An org's `dev`, `staging` and `production` (the one prod) environments.
fn insert_environments(
    tx: &rusqlite::Transaction<'_>,
    org_id: &str,
    created: &str,
    rng: &mut SplitMix,
    ids: &mut SetupIds,
) -> anyhow::Result<Vec<(String, &'static str, bool)>> {
    let mut environments = Vec::new();
    for (name, prod) in [("dev", false), ("staging", false), ("production", true)] {
        let environment_id = ids.next(rng);
        tx.execute(
            "INSERT INTO environments (environment_id, org_id, name, prod, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
            rusqlite::params![environment_id, org_id, name, prod, created, created],
        )?;
        environments.push((environment_id, name, prod));
    }
    Ok(environments)
}

/// App `index` of an org: its registry (one per repository) and its app environment in each
/// of the org's environments.
fn insert_app(
    tx: &rusqlite::Transaction<'_>,
    org_id: &str,
    index: usize,
    environments: &[(String, &'static str, bool)],
    created: &str,
    rng: &mut SplitMix,
    ids: &mut SetupIds,
) -> anyhow::Result<App> {
    let registry_id = ids.next(rng);
    let repository = format!("dora/app-{index:02}");
    tx.execute(
        "INSERT INTO image_registries (registry_id, org_id, image_repository_name, public, \
         container_registry_id, created_at, updated_at) VALUES (?, ?, ?, 0, 'ghcr', ?, ?)",
        rusqlite::params![registry_id, org_id, repository, created, created],
    )?;
    let project_id = (index % 12 != 11).then(|| format!("project-{}", index / 4));
    let app_id = format!("app-{index:02}");
    let mut app_environments = Vec::new();
    for (environment_id, name, prod) in environments {
        let app_environment_id = ids.next(rng);
        tx.execute(
            "INSERT INTO app_environments (app_environment_id, org_id, project_id, app_id, \
             environment_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            rusqlite::params![
                app_environment_id,
                org_id,
                project_id,
                app_id,
                environment_id,
                created
            ],
        )?;
        app_environments.push((app_environment_id, *name, *prod));
    }
    Ok(App {
        registry_id,
        image_name: format!("ghcr.io/{org_id}/{repository}"),
        project_id,
        app_id,
        environments: app_environments
            .try_into()
            .map_err(|_| anyhow::anyhow!("three environments"))?,
        patch: 0,
    })
}

/// Images built through the year, each for a random app of an org picked by weight, and
/// deployed to dev, ~70% of them on to staging and half of those to production, until there
/// are `records` lead-time records.
fn insert_images_and_lead_times(
    tx: &rusqlite::Transaction<'_>,
    orgs: &mut [Org],
    cumulative: &[f64],
    rng: &mut SplitMix,
    records: u64,
) -> anyhow::Result<()> {
    let mut insert_image = tx.prepare(
        "INSERT INTO images (image_id, org_id, registry_id, channel, version, update_type, \
         tag_name, image_name, image_name_with_tag, status, tags, git_hash, \
         git_hash_commit_timestamp, gitops_hash, api_definition_path, committer, commit_msg, \
         run_id, image_ports, cluster_image_tags, api_version_id, request_sha256, built_at, \
         updated_at) VALUES (?, ?, ?, 'default', ?, 'patch', ?, ?, ?, 'active', \
         '[\"latest\",\"main\"]', ?, ?, NULL, 'api/openapi.yaml', ?, ?, ?, \
         '[{\"port\":8080}]', '[]', 'v1', ?, ?, ?)",
    )?;
    let mut insert_lead_time = tx.prepare(
        "INSERT INTO image_lead_times (lead_time_id, org_id, image_id, app_environment_id, \
         deployment_id, project_id, app_id, environment, prod, git_hash, \
         git_hash_commit_timestamp, image_name_with_tag, created_at, duration_mins, \
         recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?;
    // Each image is deployed ~2.05 times on average (dev, 70% staging, 35% production):
    // spread the builds so the records span the year.
    let images_expected = (records as f64 / 2.05).ceil().max(1.0) as u64;
    let mut written = 0u64;
    let mut image = 0u64;
    while written < records {
        let r = rng.next();
        let org = cumulative.partition_point(|c| *c < unit(r)).min(ORGS - 1);
        let (org_id, apps) = &mut orgs[org];
        let org_id = org_id.as_str();
        let app_index = (rng.next() % apps.len() as u64) as usize;
        let app = &mut apps[app_index];
        app.patch += 1;
        let built_ms =
            seed::START_MS + image.min(images_expected - 1) * seed::SPAN_MS / images_expected;
        let dev_ms = built_ms + 2 * MINUTE_MS + rng.next() % (28 * MINUTE_MS);
        // Commit to build: 10 minutes to ~42 hours, log-uniform; 3% without a commit
        // time; 0.1% with a skewed clock (the commit after the dev deployment).
        let lag = (10.0 * MINUTE_MS as f64 * 2f64.powf(unit(rng.next()) * 8.0)) as u64;
        let commit_ms = match r % 1000 {
            0..=29 => None,
            30 => Some(dev_ms + 5 * MINUTE_MS),
            _ => Some(built_ms - lag),
        };
        let image_id = uuid_v7(built_ms, rng.next(), rng.next());
        let version = format!("default-0.0.{}", app.patch);
        let tag = format!("build-{image}");
        let image_name_with_tag = format!("{}:{tag}", app.image_name);
        let git_hash = format!("{:016x}{:016x}{:08x}", rng.next(), rng.next(), r >> 32);
        let commit = commit_ms.map(rfc3339_micros);
        let built = rfc3339_micros(built_ms);
        insert_image.execute(rusqlite::params![
            image_id,
            org_id,
            app.registry_id,
            version,
            tag,
            app.image_name,
            image_name_with_tag,
            git_hash,
            commit,
            format!("Committer {} <dev{}@example.com>", r % 97, r % 97),
            format!("Change number {image}"),
            format!("run-{image:09}"),
            format!(
                "{:016x}{:016x}{:016x}{:016x}",
                rng.next(),
                rng.next(),
                rng.next(),
                r
            ),
            built,
            built,
        ])?;
        let staging_ms = dev_ms + HOUR_MS + rng.next() % (47 * HOUR_MS);
        let production_ms = staging_ms + HOUR_MS + rng.next() % (119 * HOUR_MS);
        let stages = match rng.next() % 20 {
            0..=5 => 1,  // 30%: dev only
            6..=12 => 2, // 35%: dev and staging
            _ => 3,      // 35%: on to production
        };
        let commit_at = commit
            .as_deref()
            .map(Timestamp::from_rfc3339)
            .transpose()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        for (stage, deployed_ms) in [dev_ms, staging_ms, production_ms]
            .into_iter()
            .enumerate()
            .take(stages)
        {
            if written == records {
                break;
            }
            let (app_environment_id, environment, prod) = &app.environments[stage];
            let created_at = rfc3339_micros(deployed_ms);
            let duration = match commit_at {
                Some(commit_at) => Some(cd_core::testing::duration_mins(
                    commit_at,
                    Timestamp::from_rfc3339(&created_at).map_err(|e| anyhow::anyhow!("{e:?}"))?,
                )),
                None => None,
            };
            let deployment_id =
                (!rng.next().is_multiple_of(5)).then(|| format!("deploy-{written}"));
            insert_lead_time.execute(rusqlite::params![
                uuid_v7(deployed_ms, rng.next(), rng.next()),
                org_id,
                image_id,
                app_environment_id,
                deployment_id,
                app.project_id,
                app.app_id,
                environment,
                prod,
                git_hash,
                commit,
                image_name_with_tag,
                created_at,
                duration,
                created_at,
            ])?;
            written += 1;
        }
        image += 1;
    }
    Ok(())
}

/// A uniform draw in [0, 1) from the top 53 bits of `r`.
fn unit(r: u64) -> f64 {
    (r >> 11) as f64 / (1u64 << 53) as f64
}

/// The channels' current versions agree with the images recorded (what the dropped triggers
/// would have kept).
fn record_channel_versions(
    tx: &rusqlite::Transaction<'_>,
    orgs: &[Org],
    created: &str,
) -> anyhow::Result<()> {
    for (org_id, apps) in orgs {
        for app in apps.iter().filter(|a| a.patch > 0) {
            tx.execute(
                "INSERT INTO image_versions \
                 (registry_id, channel, org_id, major, minor, patch, created_at, updated_at) \
                 VALUES (?, 'default', ?, 0, 0, ?, ?, ?)",
                rusqlite::params![
                    app.registry_id,
                    org_id,
                    app.patch as i64,
                    created,
                    rfc3339_micros(seed::START_MS + seed::SPAN_MS),
                ],
            )?;
        }
    }
    Ok(())
}

/// The daily rollup, built from the records as the app builds it for a database upgraded
/// from before the rollup: migration 0004's pending back-fill, run batch by batch.
fn backfill_daily_rollup(path: &Path) -> anyhow::Result<()> {
    let db = cd_core::testing::RusqliteDb::open(path)
        .map_err(|e| anyhow::anyhow!("opening {}: {e:?}", path.display()))?;
    cd_core::testing::restart_rollup_backfill(&db).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    while cd_core::testing::pending_backfill_step(&db).map_err(|e| anyhow::anyhow!("{e:?}"))? {}
    Ok(())
}

/// Every row satisfies the schema's foreign keys (checked once, after the bulk load).
fn check_foreign_keys(connection: &rusqlite::Connection) -> anyhow::Result<()> {
    let violations: i64 =
        connection.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |row| {
            row.get(0)
        })?;
    if violations != 0 {
        bail!("the generated database has {violations} foreign-key violations");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    type Rows = Vec<Vec<rusqlite::types::Value>>;

    fn rows_of(path: &Path, sql: &str) -> anyhow::Result<Rows> {
        let connection = rusqlite::Connection::open(path)?;
        let mut statement = connection.prepare(sql)?;
        let columns = statement.column_count();
        let rows = statement
            .query_map([], |row| (0..columns).map(|i| row.get(i)).collect())?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Per "org key day environment prod": the clock skew and the four sorted lists.
    type Rollup = std::collections::BTreeMap<String, (i64, [Vec<u64>; 4])>;

    /// Every org key, day, environment and prod of the commit rollup: its clock skew and its
    /// four lists, whatever the chunks.
    fn commit_rollup(path: &Path) -> anyhow::Result<Rollup> {
        let mut days = std::collections::BTreeMap::new();
        for row in rows_of(
            path,
            "SELECT org_key || ' ' || day || ' ' || environment || ' ' || prod, clock_skew, \
                    lead_times, commit_to_build, build_to_start, start_to_finish \
             FROM commit_lead_time_days",
        )? {
            let (rusqlite::types::Value::Text(key), rusqlite::types::Value::Integer(skew)) =
                (&row[0], &row[1])
            else {
                bail!("unexpected row {row:?}");
            };
            let entry: &mut (i64, [Vec<u64>; 4]) = days.entry(key.clone()).or_default();
            entry.0 += skew;
            for (values, blob) in entry.1.iter_mut().zip(&row[2..]) {
                let rusqlite::types::Value::Blob(blob) = blob else {
                    bail!("unexpected row {row:?}");
                };
                values.extend(
                    blob.chunks_exact(8)
                        .map(|b| u64::from_be_bytes(b.try_into().unwrap())),
                );
                values.sort_unstable();
            }
        }
        Ok(days)
    }

    /// The commits the generator counts are those the app counts: the generated records,
    /// replayed through cd-core's handler (`POST /api/v1/deployments`, in recording order)
    /// on the same database emptied of them, leave the same `commit_lead_times` (but for the
    /// new records' ids) and the same commit rollup.
    #[test]
    fn commits_are_counted_as_the_write_path_counts_them() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("cd-bench-commits-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let generated = dir.join("generated.db");
        generate(&generated, 3_000)?;
        let records = rows_of(
            &generated,
            "SELECT o.org_id, lower(hex(l.image_id)), l.project_id, l.app_id, l.environment, \
                    l.prod, l.created_at / 1000, l.started_at / 1000, l.deployment_id \
             FROM image_lead_times AS l JOIN orgs AS o ON o.org_key = l.org_key \
             ORDER BY l.recorded_at, l.rowid",
        )?;
        let replayed = dir.join("replayed.db");
        crate::load::copy_database(&generated, &replayed)?;
        rusqlite::Connection::open(&replayed)?.execute_batch(
            "DELETE FROM commit_lead_time_days; DELETE FROM commit_lead_times; \
             DELETE FROM failures; DELETE FROM image_lead_times; DELETE FROM lead_time_days;",
        )?;
        let baseline = Baseline {
            database: replayed.clone(),
            admin_token: "replay-admin".to_owned(),
        };
        let side = crate::scenarios::Side::InProcess(&baseline);
        let mut tokens = std::collections::HashMap::new();
        use rusqlite::types::Value as V;
        for record in &records {
            let [
                V::Text(org),
                V::Text(image),
                project,
                V::Text(app),
                V::Text(environment),
                V::Integer(prod),
                V::Integer(deployed_ms),
                started_ms,
                deployment_id,
            ] = record.as_slice()
            else {
                bail!("unexpected record {record:?}");
            };
            if !tokens.contains_key(org) {
                tokens.insert(org.clone(), side.token("replay-admin", org, "write")?);
            }
            let text = |value: &V| match value {
                V::Text(text) => Some(text.clone()),
                _ => None,
            };
            let mut body = serde_json::json!({
                "image_id": format!("{}-{}-{}-{}-{}", &image[..8], &image[8..12],
                                    &image[12..16], &image[16..20], &image[20..]),
                "app_id": app,
                "environment": environment,
                "prod": *prod == 1,
                "deployed_at": rfc3339_micros(*deployed_ms as u64),
            });
            if let Some(project) = text(project) {
                body["project_id"] = project.into();
            }
            if let Some(id) = text(deployment_id) {
                body["deployment_id"] = id.into();
            }
            if let V::Integer(started_ms) = started_ms {
                body["started_at"] = rfc3339_micros(*started_ms as u64).into();
            }
            side.call(
                &Call::post("/api/v1/deployments", Some(&tokens[org]), &body).expecting(&[201]),
            )?;
        }
        let commits = "SELECT hex(app_environment_id), sha, org_key, hex(image_id), project_id, \
                              app_id, environment, prod, author, committed_at, created_at, \
                              duration_micros, commit_to_build_micros, build_to_start_micros, \
                              start_to_finish_micros \
                       FROM commit_lead_times ORDER BY 1, 2";
        let (ours, theirs) = (rows_of(&generated, commits)?, rows_of(&replayed, commits)?);
        assert!(ours.len() > 2 * records.len(), "{} commits", ours.len());
        // Both rules beyond "its own commits" are exercised: a deployment carrying the commits
        // of builds that skipped the app environment, and one carrying nothing (a newer build
        // of its channel ran there first).
        let count = |sql: &str| -> anyhow::Result<i64> {
            Ok(rusqlite::Connection::open(&generated)?.query_row(sql, [], |row| row.get(0))?)
        };
        assert!(
            count(
                "SELECT COUNT(*) FROM commit_lead_times AS c \
                 JOIN image_lead_times AS l ON l.lead_time_id = c.lead_time_id \
                 WHERE c.image_id <> l.image_id"
            )? > 0
        );
        assert!(
            count(
                "SELECT COUNT(*) FROM image_lead_times AS l \
                 JOIN images AS i ON i.image_id = l.image_id \
                 WHERE i.git_hash_commit_timestamp IS NOT NULL AND NOT EXISTS \
                   (SELECT 1 FROM commit_lead_times AS c WHERE c.lead_time_id = l.lead_time_id)"
            )? > 0
        );
        assert_eq!(ours.len(), theirs.len());
        assert!(
            ours == theirs,
            "the generator counts other commits than the app"
        );
        assert!(
            commit_rollup(&generated)? == commit_rollup(&replayed)?,
            "the generator's commit rollup differs from the app's"
        );
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn sizes_are_labelled() {
        assert_eq!(size_label(10_000), "10k");
        assert_eq!(size_label(1_000_000), "1M");
        assert_eq!(size_label(12_345), "12345");
    }
}
