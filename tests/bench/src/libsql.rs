//! The app on a libSQL server (issue 16): the host's `default` database on `sqld`, named in a
//! Spin runtime config as a deployment with replicas names it, against the host on a file in
//! the same run.
//!
//! The rows, all named `libSQL …` (`--only libSQL` selects them): create-image, the write path,
//! on a file, on sqld behind one replica and behind two (two hosts on one sqld, the clients
//! split between them); and one image read at 1 client on a file and on sqld, whose p50
//! difference is what the remote database costs a request. sqld serialises writes, so the
//! second replica shows whether the write ceiling is the host's or the database's.
//!
//! sqld is `$CD_SQLD`, else `<workspace>/../shared/bin/sqld`, else `sqld` on `PATH`; without
//! one the rows say `skipped` (and one loud line), never an error.

use anyhow::{Context as _, bail};

use crate::load::{Call, Endpoint, Transport, Turn, Workload};
use crate::report::{Row, Target, Via};
use crate::scenarios::{Ctx, Scenario, Side, create_image_workload, find, find_mut, fixed};

pub const PREFIX: &str = "libSQL";
const CREATE_FILE: &str = "libSQL create-image: host on a file";
const CREATE_ONE: &str = "libSQL create-image: sqld, 1 replica";
const CREATE_TWO: &str = "libSQL create-image: sqld, 2 replicas";
const READ_FILE: &str = "libSQL GET one image: host on a file";
const READ_SQLD: &str = "libSQL GET one image: sqld, 1 replica";
pub const NAMES: [&str; 5] = [CREATE_FILE, CREATE_ONE, CREATE_TWO, READ_FILE, READ_SQLD];

/// Printed under the table when it has libSQL rows: their baseline is not the in-process one.
pub const LEGEND: &str = "libSQL rows: baseline and ratio are against the host on a file in \
     the same run at the same client count (sqld on this machine, over loopback).";

/// A sqld (`cd_host::sqld`) and what the rows ask of it besides serving the hosts.
struct Sqld(cd_host::sqld::Sqld);

impl Sqld {
    /// Statements sqld has run so far (its `query_count`).
    fn statements(&self, ctx: &Ctx) -> anyhow::Result<u64> {
        let admin = Transport::Http(Endpoint::from_addr(self.0.admin));
        let (_, body) = ctx
            .runtime
            .block_on(admin.once(&Call::get("/v1/namespaces/default/stats", None)))?;
        let stats: serde_json::Value = serde_json::from_slice(&body)?;
        stats["query_count"]
            .as_u64()
            .with_context(|| format!("no query_count in sqld's stats: {stats}"))
    }

    /// Runs `SELECT 1` on sqld directly, over Hrana HTTP.
    fn select_one(&self, ctx: &Ctx) -> anyhow::Result<()> {
        let transport = Transport::Http(Endpoint::parse(&self.0.url)?);
        let body = serde_json::json!({
            "requests": [{"type": "execute", "stmt": {"sql": "SELECT 1"}}, {"type": "close"}]
        });
        let (status, answer) =
            ctx.runtime
                .block_on(transport.once(&Call::post("/v2/pipeline", None, &body)))?;
        if status != 200 {
            bail!("status {status}: {}", String::from_utf8_lossy(&answer));
        }
        Ok(())
    }
}

/// The libSQL rows wanted by `only` (a `--only` text), in print order.
pub fn rows(ctx: &Ctx, only: Option<&str>) -> anyhow::Result<Vec<Row>> {
    let wanted = |name: &str| only.is_none_or(|only| name.contains(only));
    let Some(options) = &ctx.host_options else {
        eprintln!("bench: no libSQL rows with --base-url (they start their own hosts)");
        return Ok(Vec::new());
    };
    let Some(binary) = cd_host::sqld::binary() else {
        eprintln!(
            "!!! SKIPPED the libSQL rows: no sqld (set CD_SQLD, or put sqld on PATH; README → Testing) !!!"
        );
        return Ok(NAMES
            .iter()
            .filter(|name| wanted(name))
            .map(|name| Row::value(*name, Via::Http, "skipped".to_owned()))
            .collect());
    };
    let dir = ctx.run_dir.join("libsql");
    std::fs::create_dir_all(&dir)?;
    let sqld = Sqld(cd_host::sqld::Sqld::start(&binary, &dir)?);
    let config = sqld.0.runtime_config();
    let on_file = {
        let mut options = options.clone();
        options.database = Some(dir.join("file.db"));
        crate::start_with(options)?
    };
    let replica = || {
        let mut options = options.clone();
        options.runtime_config = Some(config.clone());
        crate::start_with(options)
    };
    let first = replica()?;
    // Started only when wanted: loading the components takes a few seconds per host.
    let second = wanted(CREATE_TWO).then(replica).transpose()?;
    let http = |host: &cd_host::RunningHost| Transport::Http(Endpoint::from_addr(host.addr()));

    // Each write scenario on its own registry, so each starts from a channel of its own.
    let repository = |what: &str| format!("bench/libsql-{what}-{}", std::process::id());
    let writes = |transport: &Transport, what: &str| -> anyhow::Result<Workload> {
        let side = Side::Http(ctx, transport);
        let token = side.token(&ctx.admin_token, "bench", "write")?;
        let registry_id = side.create_registry(&token, &repository(what))?;
        Ok(create_image_workload(&registry_id, &token))
    };
    // The read: one image, created through the write path's own request.
    let read = |transport: &Transport| -> anyhow::Result<Workload> {
        let side = Side::Http(ctx, transport);
        let token = side.token(&ctx.admin_token, "bench", "write")?;
        let registry_id = side.create_registry(&token, &repository("read"))?;
        let create = create_image_workload(&registry_id, &token)(Turn {
            run: u64::MAX,
            client: 0,
            seq: 0,
        });
        let created = side.call(&create)?;
        let image_id = created["image_id"].as_str().context("image_id")?;
        Ok(fixed(Call::get(
            format!("/api/v1/registries/{registry_id}/images/{image_id}"),
            Some(&token),
        )))
    };

    // 32 clients in full mode: the load at which a sqld with its default 128 connections
    // stalled (this one is started with 1024).
    let write_clients: &[usize] = if ctx.quick { &[1, 8] } else { &[1, 8, 32] };
    // One client on two replicas would use one of them: the split starts at 8.
    let spread_clients: &[usize] = if ctx.quick { &[8] } else { &[8, 32] };
    let scenario =
        |name: &str, transport: Transport, workload: Workload, clients: &[usize]| Scenario {
            name: name.to_owned(),
            via: Via::Http,
            transport,
            workload,
            clients: clients.to_vec(),
            baseline: None,
            variants: Vec::new(),
            hold_open: None,
            records: None,
            response_bytes: None,
            _keep_alive: None,
        };
    let mut rows = Vec::new();
    let mut run = |name: &str,
                   transport: Transport,
                   make: &dyn Fn(&Transport) -> anyhow::Result<Workload>,
                   clients: &[usize]| {
        if !wanted(name) {
            return;
        }
        let measure = || -> anyhow::Result<Vec<Row>> {
            let workload = make(&transport)?;
            // What a request costs in round trips: the statements sqld runs for a few of them,
            // one at a time, before the load.
            let per_request = if name.contains("sqld") {
                Some(statements_per_request(ctx, &sqld, &transport, &workload)?)
            } else {
                None
            };
            let mut measured = scenario(name, transport.clone(), workload, clients).run(ctx);
            if let (Some(per_request), Some(row)) = (per_request, measured.first_mut()) {
                row.targets.push(Target::note(
                    "statements per request (sqld)",
                    format!("{per_request:.1}"),
                ));
            }
            Ok(measured)
        };
        // A row that cannot be measured (sqld stopped answering) is said, not fatal: the
        // other rows and the rest of the benchmark still count.
        let measured = measure().unwrap_or_else(|error| {
            eprintln!("!!! bench: {name} not measured: {error:#} !!!");
            vec![Row::value(name, Via::Http, "failed".to_owned())]
        });
        let stalled = measured
            .iter()
            .any(|row| row.measurement.as_ref().is_none_or(|m| m.errors > 0));
        if stalled && name.contains("sqld") {
            // Whether sqld itself still answers tells the host's stall from the server's.
            eprintln!(
                "bench: after {name}, sqld answers a plain `SELECT 1`: {}",
                match sqld.select_one(ctx) {
                    Ok(()) => "yes".to_owned(),
                    Err(error) => format!("no ({error:#})"),
                }
            );
        }
        rows.extend(measured);
    };
    run(
        CREATE_FILE,
        http(&on_file),
        &|t| writes(t, "file"),
        write_clients,
    );
    run(
        CREATE_ONE,
        http(&first),
        &|t| writes(t, "one"),
        write_clients,
    );
    if let Some(second) = &second {
        let endpoints = [&first, second]
            .map(|host| Endpoint::from_addr(host.addr()))
            .to_vec();
        run(
            CREATE_TWO,
            Transport::Spread(endpoints),
            &|t| writes(t, "two"),
            spread_clients,
        );
    }
    run(READ_FILE, http(&on_file), &read, &[1]);
    run(READ_SQLD, http(&first), &read, &[1]);

    let failed = rows
        .iter()
        .filter(|row| row.scenario.contains("sqld"))
        .any(|row| row.measurement.as_ref().is_none_or(|m| m.errors > 0));
    if failed {
        eprintln!("bench: sqld's log (last 2 KB):\n{}", sqld.0.log_tail());
    }
    drop((second, first, on_file));
    drop(sqld);
    Ok(rows)
}

/// The statements sqld runs per call of `workload`, over 10 calls made one after another.
fn statements_per_request(
    ctx: &Ctx,
    sqld: &Sqld,
    transport: &Transport,
    workload: &Workload,
) -> anyhow::Result<f64> {
    const CALLS: u64 = 10;
    let before = sqld.statements(ctx)?;
    for seq in 0..CALLS {
        // A run number no load run uses, so these run ids are new.
        let call = workload(Turn {
            run: u64::MAX / 2,
            client: 0,
            seq,
        });
        Side::Http(ctx, transport).call(&call)?;
    }
    let after = sqld.statements(ctx)?;
    Ok((after - before) as f64 / CALLS as f64)
}

/// Each sqld row against the file row at its client count (baseline and ratio columns), and
/// the figures the docs quote: the remote database's cost per read, the second replica's gain.
pub fn apply_targets(rows: &mut [Row]) {
    let at = |rows: &[Row], name: &str, clients: usize| {
        find(rows, name, Via::Http, clients).map(|row| (row.rps(), row.p50_ms()))
    };
    let clients: Vec<usize> = rows
        .iter()
        .filter(|row| row.scenario.starts_with(PREFIX))
        .filter_map(|row| row.clients)
        .collect();
    for (name, file) in [
        (CREATE_ONE, CREATE_FILE),
        (CREATE_TWO, CREATE_FILE),
        (READ_SQLD, READ_FILE),
    ] {
        for &n in &clients {
            let Some((file_rps, file_p50)) = at(rows, file, n) else {
                continue;
            };
            let one = at(rows, CREATE_ONE, n);
            let Some(row) = find_mut(rows, name, Via::Http, n) else {
                continue;
            };
            if row.baseline_rps.is_some() {
                continue;
            }
            row.baseline_rps = Some(file_rps);
            let extra = row.p50_ms() - file_p50;
            row.targets.push(Target::note(
                "p50 over the file's",
                format!("{extra:+.2} ms ({:.1}×)", row.p50_ms() / file_p50),
            ));
            if let (CREATE_TWO, Some((one_rps, _))) = (name, one) {
                row.targets.push(Target::note(
                    "req/s over 1 replica's",
                    format!(
                        "{:.2}× ({:.0} of {one_rps:.0})",
                        row.rps() / one_rps,
                        row.rps()
                    ),
                ));
            }
        }
    }
}
