//! `cd-host`: serve a Spin application (`spin.toml`) with the cd-images test host, like
//! `spin up` (and `spin build --up` with `--build`).
//!
//! ```text
//! cd-host [--manifest spin.toml] [--listen 127.0.0.1:3000] [--database PATH]
//!         [--variable k=v]... [--build]
//! ```
//! `SPIN_VARIABLE_*` are read from the process environment; guest output goes to stderr.

use anyhow::Context;
use cd_host::manifest::Manifest;
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
    /// A variable value, `name=value` (repeatable); wins over SPIN_VARIABLE_* and defaults.
    #[arg(long = "variable", value_parser = parse_variable)]
    variables: Vec<(String, String)>,
    /// Run every component's build command first, like `spin build`.
    #[arg(long)]
    build: bool,
}

fn parse_variable(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected name=value, got {text:?}"))
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
        variables: args.variables.into_iter().collect(),
        env: std::env::vars().collect(),
    };
    let host = Host::load(options)?;
    host.forward_guest_output(true);
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
