//! Load generation: one request shape ([`Call`]), produced by a [`Workload`], sent three ways —
//! over real HTTP (keep-alive connections, one per client task), in memory through
//! [`cd_host::Host::handle`], or straight into cd-core's handler on a rusqlite connection (the
//! in-process baseline: same SQL, no wasm, no HTTP).

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use cd_core::testing::RusqliteDb;
use cd_core::{Config, Env, SystemClock, SystemIds};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;

/// One request, independent of how it is sent.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: http::Method,
    /// Path and query, from `/`.
    pub path: String,
    pub bearer: Option<String>,
    /// A `Cookie` header (the dashboard's pages are signed in by cookie, not bearer).
    pub cookie: Option<String>,
    /// A JSON body.
    pub body: Option<Vec<u8>>,
    /// The statuses that count as success.
    pub expect: &'static [u16],
}

impl Call {
    pub fn get(path: impl Into<String>, bearer: Option<&str>) -> Call {
        Call {
            method: http::Method::GET,
            path: path.into(),
            bearer: bearer.map(str::to_owned),
            cookie: None,
            body: None,
            expect: &[200],
        }
    }

    /// A dashboard page, signed in with `token` as the sign-in form's cookie would be.
    pub fn page(path: impl Into<String>, token: &str) -> Call {
        Call {
            cookie: Some(format!("cd_token={token}")),
            ..Call::get(path, None)
        }
    }

    pub fn post(path: impl Into<String>, bearer: Option<&str>, body: &serde_json::Value) -> Call {
        Call {
            method: http::Method::POST,
            path: path.into(),
            bearer: bearer.map(str::to_owned),
            cookie: None,
            body: Some(serde_json::to_vec(body).expect("JSON values serialise")),
            expect: &[200, 201],
        }
    }

    pub fn expecting(mut self, expect: &'static [u16]) -> Call {
        self.expect = expect;
        self
    }

    fn request<B>(&self, authority: &str, body: impl FnOnce(Vec<u8>) -> B) -> http::Request<B> {
        let mut builder = http::Request::builder()
            .method(self.method.clone())
            .uri(self.path.as_str())
            .header(http::header::HOST, authority);
        if let Some(token) = &self.bearer {
            builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(cookie) = &self.cookie {
            builder = builder.header(http::header::COOKIE, cookie);
        }
        if self.body.is_some() {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
        }
        builder
            .body(body(self.body.clone().unwrap_or_default()))
            .expect("a valid request")
    }
}

/// Which call to make: the `seq`-th of client (or thread) `client` in load run `run`.
#[derive(Debug, Clone, Copy)]
pub struct Turn {
    /// Unique per load run in this process, so workloads can make unique ids (run ids).
    pub run: u64,
    pub client: usize,
    pub seq: u64,
}

/// Makes the calls of a load run: the same function drives HTTP and the baseline, so both do
/// the same work.
pub type Workload = Arc<dyn Fn(Turn) -> Call + Send + Sync>;

fn next_run() -> u64 {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    RUNS.fetch_add(1, Ordering::Relaxed)
}

/// How long to warm up and then measure.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub warmup: Duration,
    pub measure: Duration,
}

/// What one load run measured: the latency of every request that completed inside the
/// measured window (successes only), and what went wrong.
#[derive(Debug, Clone, Default)]
pub struct Measurement {
    /// Sorted, in microseconds.
    pub latencies_us: Vec<u32>,
    pub seconds: f64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub statuses: BTreeMap<u16, u64>,
}

impl Measurement {
    pub fn requests(&self) -> usize {
        self.latencies_us.len()
    }

    pub fn rps(&self) -> f64 {
        self.requests() as f64 / self.seconds
    }

    /// The `q` quantile in milliseconds (nearest rank).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * self.latencies_us.len() as f64).ceil() as usize).max(1) - 1;
        f64::from(self.latencies_us[rank.min(self.latencies_us.len() - 1)]) / 1000.0
    }

    pub fn p50_ms(&self) -> f64 {
        self.quantile_ms(0.50)
    }

    pub fn p99_ms(&self) -> f64 {
        self.quantile_ms(0.99)
    }

    pub fn max_ms(&self) -> f64 {
        self.latencies_us
            .last()
            .map_or(f64::NAN, |l| f64::from(*l) / 1000.0)
    }

    /// Several windows' measurements as one (their latencies pooled, their seconds added).
    pub fn pooled(parts: Vec<Measurement>) -> Measurement {
        let mut all = Measurement::default();
        for part in parts {
            all.seconds += part.seconds;
            all.merge(Tally {
                latencies_us: part.latencies_us,
                errors: part.errors,
                first_error: part.first_error,
                statuses: part.statuses,
            });
        }
        all.latencies_us.sort_unstable();
        all
    }

    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
    }

    fn finish(mut self, window: Window) -> Measurement {
        self.latencies_us.sort_unstable();
        self.seconds = window.measure.as_secs_f64();
        self
    }
}

/// One client's (or thread's) record.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    statuses: BTreeMap<u16, u64>,
}

impl Tally {
    fn record(&mut self, span: (Instant, Instant), started: Instant, outcome: Outcome) {
        let done = Instant::now();
        if done < span.0 || done > span.1 {
            return;
        }
        match outcome {
            Ok((status, _)) if status.1 => {
                let micros = done.duration_since(started).as_micros();
                self.latencies_us
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
                *self.statuses.entry(status.0).or_default() += 1;
            }
            Ok(((status, _), body)) => {
                *self.statuses.entry(status).or_default() += 1;
                self.error(format!(
                    "status {status}: {}",
                    String::from_utf8_lossy(&body)
                ));
            }
            Err(error) => self.error(format!("{error:#}")),
        }
    }

    fn error(&mut self, message: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(message);
        }
    }
}

/// `((status, expected), body)` or a transport error.
type Outcome = anyhow::Result<((u16, bool), Bytes)>;

/// An HTTP server to drive: the in-repo host on loopback or any running instance.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The `Host` header (`host:port` as given).
    pub authority: String,
}

impl Endpoint {
    pub fn from_addr(addr: SocketAddr) -> Endpoint {
        Endpoint {
            addr,
            authority: addr.to_string(),
        }
    }

    /// `http://host:port` (a trailing `/` is fine; no path, no TLS).
    pub fn parse(url: &str) -> anyhow::Result<Endpoint> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("--base-url must be http://host:port, got {url:?}");
        };
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') {
            bail!("--base-url takes no path (the API is under /api/v1 there), got {url:?}");
        }
        let with_port = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {authority}"))?
            .next()
            .with_context(|| format!("{authority} has no address"))?;
        Ok(Endpoint {
            addr,
            authority: authority.to_owned(),
        })
    }
}

/// How requests reach the application.
#[derive(Clone)]
pub enum Transport {
    /// Real HTTP/1.1 with keep-alive: one connection per client.
    Http(Endpoint),
    /// Real HTTP to several replicas of the app: client `i` keeps its connection to replica
    /// `i % n`, as a balancer pinning keep-alive connections would (setup calls go to the
    /// first).
    Spread(Vec<Endpoint>),
    /// [`cd_host::Host::handle`]: routing and a fresh component instance, no sockets.
    InMemory(cd_host::Host),
}

type Connection = SendRequest<Full<Bytes>>;

async fn connect(endpoint: &Endpoint) -> anyhow::Result<Connection> {
    let stream = tokio::net::TcpStream::connect(endpoint.addr)
        .await
        .with_context(|| format!("cannot connect to {}", endpoint.addr))?;
    // Requests are small: without this, Nagle's algorithm can hold a write for a delayed ACK.
    stream.set_nodelay(true)?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One call on `connection` to `endpoint` (connecting first when there is none); a failed
/// connection is dropped so the next call reconnects.
async fn send_http(
    endpoint: &Endpoint,
    connection: &mut Option<Connection>,
    call: &Call,
) -> anyhow::Result<(u16, Bytes)> {
    if connection.as_ref().is_none_or(|c| c.is_closed()) {
        *connection = Some(connect(endpoint).await?);
    }
    let sender = connection.as_mut().expect("connected above");
    let result = async {
        sender.ready().await?;
        let response = sender
            .send_request(call.request(&endpoint.authority, |b| Full::new(b.into())))
            .await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, body))
    }
    .await;
    if result.is_err() {
        *connection = None;
    }
    result
}

impl Transport {
    /// What client `client` of a load run sends through.
    fn for_client(&self, client: usize) -> Transport {
        match self {
            Transport::Spread(endpoints) if !endpoints.is_empty() => {
                Transport::Http(endpoints[client % endpoints.len()].clone())
            }
            other => other.clone(),
        }
    }

    async fn send(&self, connection: &mut Option<Connection>, call: &Call) -> Outcome {
        let (status, body) = match self {
            Transport::Http(endpoint) => send_http(endpoint, connection, call).await?,
            Transport::Spread(endpoints) => {
                let endpoint = endpoints.first().context("no replica to send to")?;
                send_http(endpoint, connection, call).await?
            }
            Transport::InMemory(host) => {
                let request = call.request("localhost", Bytes::from);
                let response = host
                    .handle(request, SocketAddr::from(([127, 0, 0, 1], 1)))
                    .await;
                (response.status().as_u16(), response.into_body())
            }
        };
        Ok(((status, call.expect.contains(&status)), body))
    }

    /// Sends one call and returns its status and body (for setup requests), failing after
    /// [`ABANDON_AFTER`] without an answer rather than hanging the benchmark.
    pub async fn once(&self, call: &Call) -> anyhow::Result<(u16, Bytes)> {
        let ((status, _), body) = tokio::time::timeout(ABANDON_AFTER, self.send(&mut None, call))
            .await
            .with_context(|| {
                format!(
                    "{} {}: no answer in {} s",
                    call.method,
                    call.path,
                    ABANDON_AFTER.as_secs()
                )
            })??;
        Ok((status, body))
    }
}

/// How long after its window a load run waits for answers still outstanding.
const ABANDON_AFTER: Duration = Duration::from_secs(10);

/// Runs `workload` with `clients` concurrent client tasks on `runtime` for `window`.
pub fn drive(
    runtime: &tokio::runtime::Runtime,
    transport: &Transport,
    workload: &Workload,
    clients: usize,
    window: Window,
) -> Measurement {
    let run = next_run();
    runtime.block_on(async {
        let from = Instant::now() + window.warmup;
        let end = from + window.measure;
        let tasks: Vec<_> = (0..clients)
            .map(|client| {
                let transport = transport.for_client(client);
                let workload = workload.clone();
                tokio::spawn(async move {
                    let mut tally = Tally::default();
                    let mut connection = None;
                    let mut seq = 0;
                    while Instant::now() < end {
                        let call = workload(Turn { run, client, seq });
                        seq += 1;
                        let started = Instant::now();
                        // A request the app never answers must not hang the benchmark (seen
                        // with two replicas on one sqld): it is abandoned, as an error, a
                        // while after the window.
                        let deadline = tokio::time::Instant::from_std(end + ABANDON_AFTER);
                        let Ok(outcome) = tokio::time::timeout_at(
                            deadline,
                            transport.send(&mut connection, &call),
                        )
                        .await
                        else {
                            tally.error(format!(
                                "{} {}: no answer {} s after the window ended (abandoned)",
                                call.method,
                                call.path,
                                ABANDON_AFTER.as_secs()
                            ));
                            break;
                        };
                        tally.record((from, end), started, outcome);
                    }
                    tally
                })
            })
            .collect();
        let mut total = Measurement::default();
        for task in tasks {
            total.merge(task.await.expect("a client task does not panic"));
        }
        total.finish(window)
    })
}

/// How the in-process baseline holds its database.
#[derive(Debug, Clone, Copy)]
pub struct InProcess {
    /// A new connection per request, as a Spin component instance has (no statement cache
    /// carried over, and closing the last connection checkpoints a WAL database); otherwise
    /// one connection per thread for the whole run.
    pub connection_per_request: bool,
    /// `PRAGMA synchronous` to set on each connection (`None`: SQLite's default, as the host).
    pub synchronous: Option<&'static str>,
    /// `PRAGMA journal_mode` to set on each connection; runs on a copy of the database, since
    /// leaving WAL changes the file (`None`: the file's mode, WAL, as the app sets it).
    pub journal_mode: Option<&'static str>,
    /// Keep one more, idle connection open during the run (so no request's connection is the
    /// last one to close).
    pub hold_open: bool,
}

impl InProcess {
    pub const PERSISTENT: InProcess = InProcess {
        connection_per_request: false,
        synchronous: None,
        journal_mode: None,
        hold_open: false,
    };

    pub const PER_REQUEST: InProcess = InProcess {
        connection_per_request: true,
        ..InProcess::PERSISTENT
    };
}

/// An idle connection that has read the database once, so it holds WAL's shared lock: while
/// it is open, no other connection's close is the last one (which would checkpoint the WAL and
/// delete it).
pub fn hold_open(database: &Path) -> anyhow::Result<rusqlite::Connection> {
    let connection = rusqlite::Connection::open(database)?;
    connection.query_row("SELECT COUNT(*) FROM sqlite_master", [], |_| Ok(()))?;
    Ok(connection)
}

/// A cd-core entry point, as the Spin shell calls it.
type EntryPoint = fn(&http::Request<Vec<u8>>, &Env<'_>) -> http::Response<Vec<u8>>;

/// The cd-core entry point Spin's routing would pick for `path` (the spin.toml routes).
fn entry_point(path: &str) -> EntryPoint {
    let path = path.split('?').next().unwrap_or(path);
    if path == "/" || path.starts_with("/ui") {
        return cd_ui::handle_dashboard_request;
    }
    let images = path.starts_with("/api/v1/images")
        || path.starts_with("/api/v1/health/images")
        || path
            .strip_prefix("/api/v1/registries/")
            .and_then(|rest| rest.split('/').nth(1))
            .is_some_and(|segment| segment == "images");
    if images {
        cd_core::handle_images_request
    } else if path.starts_with("/api/v1/deployments")
        || path.starts_with("/api/v1/dora")
        || path.starts_with("/api/v1/health/lead-time")
    {
        cd_core::handle_lead_time_request
    } else {
        cd_core::handle_registry_request
    }
}

/// The database and configuration the in-process handlers run with.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub database: PathBuf,
    pub admin_token: String,
}

impl Baseline {
    fn open(&self, mode: InProcess) -> RusqliteDb {
        let db = RusqliteDb::open(&self.database).expect("the baseline database opens");
        if let Some(journal_mode) = mode.journal_mode {
            let _: String = db
                .connection()
                .pragma_update_and_check(None, "journal_mode", journal_mode, |row| row.get(0))
                .expect("PRAGMA journal_mode");
        }
        if let Some(synchronous) = mode.synchronous {
            db.connection()
                .pragma_update(None, "synchronous", synchronous)
                .expect("PRAGMA synchronous");
        }
        db
    }

    /// Serves one call in-process, exactly as a component would (same entry point, a
    /// connection with the host's defaults).
    pub fn call_with(&self, db: &RusqliteDb, call: &Call) -> (u16, Vec<u8>) {
        let response = self.serve_with(db, call);
        (response.status().as_u16(), response.into_body())
    }

    /// [`Baseline::call_with`], the whole response (its extensions say what comes after it).
    fn serve_with(&self, db: &RusqliteDb, call: &Call) -> http::Response<Vec<u8>> {
        let env = Env {
            db,
            clock: &SystemClock,
            ids: &SystemIds,
            config: Config::from_variables(Some(self.admin_token.clone()), None),
        };
        let request = call.request("localhost", |b| b);
        entry_point(&call.path)(&request, &env)
    }

    /// One call on a new connection (for setup).
    pub fn once(&self, call: &Call) -> (u16, Vec<u8>) {
        self.call_with(&self.open(InProcess::PERSISTENT), call)
    }

    /// Runs `workload` on `threads` OS threads, each with its own connection (or one per
    /// request), for `window`.
    pub fn drive(
        &self,
        mode: InProcess,
        workload: &Workload,
        threads: usize,
        window: Window,
    ) -> Measurement {
        if let Some(journal_mode) = mode.journal_mode {
            let copy = Baseline {
                database: self
                    .database
                    .with_extension(format!("{}.db", journal_mode.to_lowercase())),
                admin_token: self.admin_token.clone(),
            };
            if let Err(error) = copy_database(&self.database, &copy.database) {
                return Measurement {
                    errors: 1,
                    first_error: Some(format!("{error:#}")),
                    seconds: window.measure.as_secs_f64(),
                    ..Measurement::default()
                };
            }
            return copy.run_threads(mode, workload, threads, window);
        }
        let _held = mode
            .hold_open
            .then(|| hold_open(&self.database).expect("the baseline database opens"));
        self.run_threads(mode, workload, threads, window)
    }

    fn run_threads(
        &self,
        mode: InProcess,
        workload: &Workload,
        threads: usize,
        window: Window,
    ) -> Measurement {
        let run = next_run();
        let from = Instant::now() + window.warmup;
        let end = from + window.measure;
        let tallies: Vec<Tally> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|thread| {
                    scope.spawn(move || {
                        let mut tally = Tally::default();
                        let mut db = (!mode.connection_per_request).then(|| self.open(mode));
                        let mut seq = 0;
                        while Instant::now() < end {
                            let call = workload(Turn {
                                run,
                                client: thread,
                                seq,
                            });
                            seq += 1;
                            let started = Instant::now();
                            let fresh;
                            let connection = match &mut db {
                                Some(db) => &*db,
                                None => {
                                    fresh = self.open(mode);
                                    &fresh
                                }
                            };
                            let response = self.serve_with(connection, &call);
                            let after = cd_core::AfterResponse::of(&response);
                            let status = response.status().as_u16();
                            let ok = call.expect.contains(&status);
                            let body = response.into_body().into();
                            tally.record((from, end), started, Ok(((status, ok), body)));
                            // As the Spin shell does once the response is sent.
                            if mode.connection_per_request {
                                after.run(connection);
                            }
                        }
                        tally
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a baseline thread does not panic"))
                .collect()
        });
        let mut total = Measurement::default();
        for tally in tallies {
            total.merge(tally);
        }
        total.finish(window)
    }

    /// `PRAGMA name` as the baseline's connections see it.
    pub fn pragma(&self, name: &str) -> String {
        let db = self.open(InProcess::PERSISTENT);
        db.connection()
            .query_row(&format!("PRAGMA {name}"), [], |row| {
                row.get::<_, rusqlite::types::Value>(0)
            })
            .map(|value| match value {
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })
            .unwrap_or_else(|e| format!("error: {e}"))
    }
}

/// Copies a database file (and nothing else: the cache is checkpointed and closed).
pub fn copy_database(from: &Path, to: &Path) -> anyhow::Result<()> {
    crate::seed::remove_database_files(to);
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    // Written back now, not during the measured runs: a gigabyte of dirty pages flushing in
    // the background slowed every fsync of the write scenarios by 2–3×.
    std::fs::File::open(to)
        .and_then(|copy| copy.sync_all())
        .with_context(|| format!("cannot sync {}", to.display()))?;
    Ok(())
}
