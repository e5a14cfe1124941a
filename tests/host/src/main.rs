//! `cd-host`: serve a Spin application (`spin.toml`) with the cd-images test host, like
//! `spin up` (and `spin build --up` with `--build`).
//!
//! ```text
//! cd-host [--manifest spin.toml] [--listen 127.0.0.1:3000] [--database PATH]
//!         [--runtime-config-file FILE] [--variable k=v]... [--component-id ID]... [--build]
//! ```
//! `SPIN_VARIABLE_*` are read from the process environment; guest output goes to stderr.
//! `-c`/`--component-id` serves only those components, like `spin up -c`. As with Spin CLI,
//! `SPIN_COMPONENTS_TO_RETAIN` (containerd-shim-spin's, set by SpinKube) is not read: pass
//! the ids as arguments.

use anyhow::Context;
use cd_host::manifest::Manifest;
use cd_host::runtime_config::RuntimeConfig;
use cd_host::server::Limits;
use cd_host::{Host, HostOptions};
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Serve a Spin application with the cd-images test host"
)]
struct Args {
    /// The application manifest.
    #[arg(long, default_value = "spin.toml")]
    manifest: PathBuf,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// The file behind the `default` SQLite database (default: `<manifest dir>/.spin/sqlite_db.db`).
    #[arg(long)]
    database: Option<PathBuf>,
    /// Spin's runtime-config file (`state_dir`, `[sqlite_database.<label>]` with
    /// `type = "spin"` or `type = "libsql"`), as `spin up --runtime-config-file`.
    #[arg(long, env = "RUNTIME_CONFIG_FILE")]
    runtime_config_file: Option<PathBuf>,
    /// A variable value, `name=value` (repeatable); wins over SPIN_VARIABLE_* and defaults.
    #[arg(long = "variable", value_parser = parse_variable)]
    variables: Vec<(String, String)>,
    /// Serve only this component's routes (repeatable), like `spin up -c`; the other routes
    /// answer 404.
    #[arg(short = 'c', long = "component-id", value_name = "ID")]
    component_ids: Vec<String>,
    /// Run every component's build command first, like `spin build`.
    #[arg(long)]
    build: bool,
    /// Open connections at most; one more is answered 503 and closed.
    #[arg(long, default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Component instances running at once at most; one more request is answered 503.
    #[arg(long, default_value_t = Limits::default().max_instances)]
    max_instances: usize,
    /// Seconds a client may take to send a request's head.
    #[arg(long, default_value_t = Limits::default().header_timeout.as_secs_f64())]
    header_timeout: f64,
    /// Seconds a request body may go without a byte before it fails.
    #[arg(long, default_value_t = Limits::default().body_idle_timeout.as_secs_f64())]
    body_idle_timeout: f64,
}

fn parse_variable(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected name=value, got {text:?}"))
}

fn seconds(option: &str, value: f64) -> anyhow::Result<std::time::Duration> {
    std::time::Duration::try_from_secs_f64(value)
        .map_err(|e| anyhow::anyhow!("{option} {value}: {e}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.build {
        Manifest::load(&args.manifest)?.build_components()?;
    }
    let options = HostOptions {
        manifest: args.manifest,
        database: args.database,
        runtime_config: args
            .runtime_config_file
            .as_deref()
            .map(RuntimeConfig::load)
            .transpose()?,
        variables: args.variables.into_iter().collect(),
        env: std::env::vars().collect(),
        limits: Limits {
            max_connections: args.max_connections,
            max_instances: args.max_instances,
            header_timeout: seconds("--header-timeout", args.header_timeout)?,
            body_idle_timeout: seconds("--body-idle-timeout", args.body_idle_timeout)?,
        },
        components: args.component_ids,
    };
    let host = Host::load(options)?;
    host.forward_guest_output(true);
    if let Some(database) = host.default_database() {
        eprintln!("Storing default SQLite data to {}.", database.summary());
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("Serving http://{}", listener.local_addr()?);
    println!("Available Routes:");
    for (route, component) in host.routes() {
        println!("  {component}: http://{}{route}", listener.local_addr()?);
    }
    cd_host::server::serve_listener(host, listener).await
}
