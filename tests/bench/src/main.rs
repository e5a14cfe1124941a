//! `cd-bench`: cd-images against its physical limit (issue 6).
//!
//! ```text
//! cargo run -p cd-bench -- [--quick] [--json PATH] [--lead-times 10000,100000] \
//!     [--base-url URL --token T]
//! cargo run -p cd-bench -- --seed PATH [--images N | --lead-times N]
//! ```
//! The dev profile, on purpose: the workspace's release profile is the wasm components'
//! size-optimised fat-LTO one (minutes to link wasmtime), while the dev profile builds every
//! dependency — wasmtime, cranelift, SQLite, hyper — and our own cd-core (the baseline),
//! cd-host (the host's glue) and cd-bench (the load generator) at opt-level 3 (the root `Cargo.toml` says so), so the
//! comparison is between optimised code on both sides. The wasm components must be built
//! first (`tests/run` does, or pass `--build`).
//!
//! It starts the in-repo host on loopback — on a fresh database, on a copy of a seeded one
//! (1M images, 20k with `--quick`), and on each DORA database (10k, 100k and 1M lead-time
//! records; 10k with `--quick`), all generated once and cached under `<target>/bench-cache/` —
//! and drives them over real HTTP with keep-alive connections from N concurrent client tasks.
//! In the same run it measures the baseline: the same requests through cd-core's handler on
//! rusqlite in this process (same SQL and SQLite defaults as the host, no wasm, no HTTP). It
//! prints a table with issue 6's targets (PASS/MISS, never a failure) and writes the figures
//! as JSON (default `<target>/bench/bench.json`).
//!
//! The `libSQL …` rows (issue 16; `--only libSQL`) run create-image and a read on the host with
//! its database on a libSQL server (`sqld`, through a runtime config; one and two replicas)
//! beside the host on a file, after the other scenarios (see `libsql.rs`).
//!
//! `--base-url http://HOST:PORT --token ADMIN_TOKEN` drives another running instance (e.g.
//! `spin up`) instead; for the list scenarios it must serve a database made by
//! `cd-bench --seed PATH`, for the DORA ones (run only when `--lead-times N` names one size)
//! one made by `cd-bench --seed PATH --lead-times N`. In-memory measurements are skipped; the
//! in-process baseline still runs here, so the ratios mean something when that instance runs
//! on this machine.

mod dora;
mod hot_org;
mod libsql;
mod load;
mod report;
mod scenarios;
mod seed;
mod storage;
mod upgrade;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use serde_json::json;

use load::{Baseline, Endpoint, Transport, Window};
use report::{Row, Target, Via};

#[derive(Parser, Debug)]
#[command(about = "Benchmark cd-images over HTTP against the in-process baseline (issue 6)")]
struct Args {
    /// Small data and short runs (CI smoke: under a minute).
    #[arg(long)]
    quick: bool,
    /// Where to write the JSON (default: <target>/bench/bench.json).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Drive a running instance instead of starting the in-repo host (http://host:port).
    #[arg(long, requires = "token")]
    base_url: Option<String>,
    /// The bootstrap admin token of the --base-url instance.
    #[arg(long, requires = "base_url")]
    token: Option<String>,
    /// Images in the seeded database (default 1,000,000; 20,000 with --quick).
    #[arg(long)]
    images: Option<u64>,
    /// Seconds measured per load run (default 4; 0.8 with --quick), after a warm-up.
    #[arg(long)]
    seconds: Option<f64>,
    /// Build the wasm components first (each component's build command from spin.toml).
    #[arg(long)]
    build: bool,
    /// Run only the scenarios whose name contains this text, or one of several separated by
    /// `|` (profiling one scenario, or a row and the one its target compares it with).
    #[arg(long)]
    only: Option<String>,
    /// Only these client counts of the HTTP runs, comma-separated (profiling one load).
    #[arg(long, value_delimiter = ',')]
    clients: Option<Vec<usize>>,
    /// Skip the in-process runs (profiling the app under test alone).
    #[arg(long)]
    http_only: bool,
    /// Lead-time records of the DORA databases, comma-separated (default 10000,100000,1000000;
    /// 10000 with --quick; none with --base-url).
    #[arg(long, value_delimiter = ',')]
    lead_times: Option<Vec<u64>>,
    /// Only write the seeded database to PATH (to serve it with `spin up` or cd-host) and exit:
    /// the images one, or with `--lead-times N` the DORA one of N records.
    #[arg(long)]
    seed: Option<PathBuf>,
}

const ADMIN_TOKEN: &str = "bench-admin-token";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let load_before = load_average();
    // This crate lives at `tests/bench/`: the workspace root (spin.toml, target/) is two up.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .context("the workspace root")?
        .to_path_buf();
    let manifest_path = root.join("spin.toml");
    let cargo_target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    let target_dir = cargo_target_dir
        .clone()
        .unwrap_or_else(|| root.join("target"));
    let images = args
        .images
        .unwrap_or(if args.quick { 20_000 } else { 1_000_000 });

    let cache_dir = target_dir.join("bench-cache");
    if let Some(path) = &args.seed {
        let (cache, what) = match args.lead_times.as_deref() {
            Some([records]) => (
                dora::cached(&cache_dir, *records)?,
                format!(
                    "{records} lead-time records (read token of {}: {})",
                    dora::BIG_ORG,
                    dora::read_token()
                ),
            ),
            Some(_) => anyhow::bail!("--seed takes one --lead-times size"),
            None => (
                seed::cached(&cache_dir, images)?,
                format!("{images} images"),
            ),
        };
        load::copy_database(&cache, path)?;
        println!(
            "seeded database with {what} written to {}\n\
             serve it, e.g.: SPIN_VARIABLE_ADMIN_TOKEN=T cargo run -p cd-host -- --database {}",
            path.display(),
            path.display()
        );
        return Ok(());
    }
    let seeded_cache = seed::cached(&cache_dir, images)?;

    let manifest = cd_host::manifest::Manifest::load(&manifest_path)?;
    if args.build {
        manifest.build_components()?;
    }
    let mut rows = wasm_sizes(&manifest, cargo_target_dir.as_deref());

    let run_dir = target_dir
        .join("bench")
        .join(format!("run-{}", std::process::id()));
    std::fs::create_dir_all(&run_dir)?;
    let outcome = run(
        &args,
        &manifest_path,
        &run_dir,
        &cache_dir,
        &seeded_cache,
        images,
    );
    let _ = std::fs::remove_dir_all(&run_dir);
    let (measured, mut meta) = outcome?;
    rows.extend(measured);
    scenarios::apply_targets(&mut rows);

    println!();
    print!("{}", report::table(&rows));
    println!(
        "\nratio = req/s ÷ the in-process baseline's req/s (cd-core's handler on rusqlite, 1 thread, \
         one connection, same SQLite defaults). Targets from issues 6, 17 and 18: PASS/MISS never fails the run."
    );
    if rows
        .iter()
        .any(|row| row.scenario.starts_with(libsql::PREFIX))
    {
        println!("{}", libsql::LEGEND);
    }
    meta["seconds_total"] = json!(started.elapsed().as_secs_f64());
    let load_after = load_average();
    println!(
        "Machine load average (1 min) before/after: {} / {} on {} CPUs (other processes compete \
         with both the host and the baseline).",
        load_before.as_deref().unwrap_or("?"),
        load_after.as_deref().unwrap_or("?"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    meta["load_average_1min"] = json!({"before": load_before, "after": load_after});
    let json_path = args
        .json
        .clone()
        .unwrap_or_else(|| target_dir.join("bench").join("bench.json"));
    if let Some(parent) = json_path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&report::json(&rows, meta))?,
    )?;
    println!("JSON: {}", json_path.display());
    Ok(())
}

/// Starts what the scenarios need, runs them, and stops it again.
fn run(
    args: &Args,
    manifest_path: &Path,
    run_dir: &Path,
    cache_dir: &Path,
    seeded_cache: &Path,
    images: u64,
) -> anyhow::Result<(Vec<Row>, serde_json::Value)> {
    let window = Window {
        warmup: Duration::from_secs_f64(if args.quick { 0.2 } else { 1.0 }),
        measure: Duration::from_secs_f64(args.seconds.unwrap_or(if args.quick {
            0.8
        } else {
            4.0
        })),
    };
    let seeded_copy = run_dir.join("seeded.db");
    load::copy_database(seeded_cache, &seeded_copy)?;
    let fresh_db = run_dir.join("fresh.db");

    // The app under test: two in-repo hosts, or the given instance for both.
    let mut hosts = Vec::new();
    let (fresh, seeded, host, host_db, admin_token) = match (&args.base_url, &args.token) {
        (Some(url), Some(token)) => {
            let endpoint = Endpoint::parse(url)?;
            (
                Transport::Http(endpoint.clone()),
                Transport::Http(endpoint),
                None,
                None,
                token.clone(),
            )
        }
        _ => {
            hosts.push(start_host(manifest_path, &fresh_db)?);
            hosts.push(start_host(manifest_path, &seeded_copy)?);
            (
                Transport::Http(Endpoint::from_addr(hosts[0].addr())),
                Transport::Http(Endpoint::from_addr(hosts[1].addr())),
                Some(hosts[0].host().clone()),
                Some(fresh_db.clone()),
                ADMIN_TOKEN.to_owned(),
            )
        }
    };
    let ctx = scenarios::Ctx {
        quick: args.quick,
        window,
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        fresh,
        seeded,
        host,
        fresh_db: host_db,
        baseline_fresh: Baseline {
            database: run_dir.join("baseline.db"),
            admin_token: admin_token.clone(),
        },
        baseline_seeded: Baseline {
            database: seeded_copy,
            admin_token: admin_token.clone(),
        },
        admin_token,
        clients: args.clients.clone(),
        http_only: args.http_only,
        cache_dir: cache_dir.to_owned(),
        lead_time_sizes: match (&args.lead_times, &args.base_url, args.quick) {
            (Some(sizes), _, _) => sizes.clone(),
            (None, Some(_), _) => Vec::new(),
            (None, None, true) => dora::QUICK_SIZES.to_vec(),
            (None, None, false) => dora::FULL_SIZES.to_vec(),
        },
        host_options: args.base_url.is_none().then(|| host_options(manifest_path)),
        run_dir: run_dir.to_owned(),
        start_host: args.base_url.is_none().then(|| {
            let manifest_path = manifest_path.to_owned();
            Box::new(move |database: &Path| start_host(&manifest_path, database))
                as Box<dyn Fn(&Path) -> anyhow::Result<cd_host::RunningHost>>
        }),
    };
    if args.base_url.is_some() && ctx.lead_time_sizes.len() > 1 {
        anyhow::bail!("with --base-url, --lead-times names the one size that instance serves");
    }

    let mut rows = Vec::new();
    let mut in_turns = Vec::new();
    for scenario in scenarios::all(&ctx, args.only.as_deref())? {
        if args
            .only
            .as_ref()
            .is_some_and(|only| !scenarios::matches_only(&scenario.name, only))
        {
            continue;
        }
        rows.extend(scenario.run(&ctx));
        if dora::measured_in_turns(&ctx, &scenario) {
            in_turns.push(scenario);
        }
    }
    rows.extend(dora::in_turns_rows(&ctx, &in_turns));
    drop(in_turns);
    let wanted = |name: &str| {
        args.only
            .as_ref()
            .is_none_or(|only| scenarios::matches_only(name, only))
    };
    // After the scenarios, so that its hosts and sqld are not running while the others are
    // measured.
    if libsql::NAMES.iter().any(|name| wanted(name)) {
        // Informational like every row: a libSQL failure is said, not the run's.
        match libsql::rows(&ctx, args.only.as_deref()) {
            Ok(measured) => rows.extend(measured),
            Err(error) => eprintln!("!!! bench: no libSQL rows: {error:#} !!!"),
        }
    }
    // One-off rows on the largest DORA database (the in-repo host's files only).
    let largest = ctx.lead_time_sizes.iter().copied().max();
    let upgrades: Vec<i64> = [6, 3]
        .into_iter()
        .filter(|from| wanted(&upgrade::label(*from)))
        .collect();
    if let (Some(records), None) = (largest, &args.base_url)
        && (!upgrades.is_empty() || wanted(storage::STORAGE))
    {
        let cached = dora::cached(cache_dir, records)?;
        for from in upgrades {
            rows.push(upgrade::row(
                &cached,
                &run_dir.join("upgrade.db"),
                records,
                from,
            )?);
        }
        if wanted(storage::STORAGE) {
            rows.extend(storage::rows(&cached, records)?);
        }
    }
    if let Some(host) = hosts.first() {
        let output = host.host().guest_output();
        if !output.trim().is_empty() {
            eprintln!(
                "bench: guest output (last 2 KB):\n{}",
                &output[output.len().saturating_sub(2048)..]
            );
        }
    }

    let host_db = Baseline {
        database: fresh_db,
        admin_token: String::new(),
    };
    let pragmas = |b: &Baseline| {
        json!({
            "journal_mode": b.pragma("journal_mode"),
            "synchronous": b.pragma("synchronous"),
            "busy_timeout": b.pragma("busy_timeout"),
            "foreign_keys": b.pragma("foreign_keys"),
        })
    };
    let meta = json!({
        "mode": if args.quick { "quick" } else { "full" },
        "base_url": args.base_url,
        "images_seeded": images,
        "lead_time_records": ctx.lead_time_sizes,
        "dora_org": dora::BIG_ORG,
        "warmup_seconds": window.warmup.as_secs_f64(),
        "measure_seconds": window.measure.as_secs_f64(),
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "unix_time": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        "git_commit": git_commit(),
        "quick": ctx.quick,
        "pragmas": {
            "baseline": pragmas(&ctx.baseline_fresh),
            "host": if args.base_url.is_none() { pragmas(&host_db) } else { json!(null) },
        },
    });
    drop(hosts);
    Ok((rows, meta))
}

/// The in-repo host's options, every one but where its database is.
fn host_options(manifest_path: &Path) -> cd_host::HostOptions {
    let mut options = cd_host::HostOptions::new(manifest_path);
    options.variables = HashMap::from([
        ("admin_token".to_owned(), ADMIN_TOKEN.to_owned()),
        // Subscribers on loopback (the dead-subscribers row), as in development.
        (
            "webhook_signing_key".to_owned(),
            "bench webhook signing key, 32 bytes or more".to_owned(),
        ),
        (
            "webhook_allowed_hosts".to_owned(),
            "http://127.0.0.1:*".to_owned(),
        ),
    ]);
    options.env = std::env::vars().collect();
    options
}

/// The in-repo host on loopback, serving `database`.
fn start_host(manifest_path: &Path, database: &Path) -> anyhow::Result<cd_host::RunningHost> {
    let mut options = host_options(manifest_path);
    options.database = Some(database.to_owned());
    start_with(options)
}

/// The in-repo host on loopback with `options`.
pub(crate) fn start_with(options: cd_host::HostOptions) -> anyhow::Result<cd_host::RunningHost> {
    cd_host::RunningHost::start(options)
        .context("the host starts (build the components first: tests/run, or pass --build)")
}

/// One row per component: its `.wasm` size against the 2 MB target (the files the host loads).
fn wasm_sizes(manifest: &cd_host::manifest::Manifest, cargo_target_dir: Option<&Path>) -> Vec<Row> {
    const LIMIT: f64 = 2.0 * 1024.0 * 1024.0;
    manifest
        .components
        .keys()
        .map(|id| {
            let size = manifest
                .component_source(id, cargo_target_dir)
                .ok()
                .and_then(|path| Some((std::fs::metadata(&path).ok()?.len(), path)));
            let (value, target) = match &size {
                Some((bytes, path)) => {
                    let name = path.file_name().unwrap_or_default().to_string_lossy();
                    let mb = *bytes as f64 / 1024.0 / 1024.0;
                    (
                        format!("{} KB", bytes / 1024),
                        Target::check("≤ 2 MB", *bytes as f64, LIMIT, false)
                            .showing(format!("{mb:.2} MB {name}")),
                    )
                }
                None => (
                    "missing".to_owned(),
                    Target::check("≤ 2 MB", f64::NAN, LIMIT, false).showing("not built".to_owned()),
                ),
            };
            let mut row = Row::value(format!("component {id} .wasm size"), Via::File, value);
            row.targets.push(target);
            row
        })
        .collect()
}

/// The 1-minute load average (Linux), to judge how noisy the figures are.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next().map(str::to_owned)
}

fn git_commit() -> Option<String> {
    let output = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
