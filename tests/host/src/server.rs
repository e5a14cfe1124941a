//! Hosting: the wasmtime engine, one pre-instantiated component per manifest component, a fresh
//! store and instance per request, and HTTP on a loopback port.
//!
//! A request goes: health check → route → `spin-*` headers → new `Store` → instantiate from the
//! component's `ProxyPre` → `wasi:http/incoming-handler.handle`. The response streams while the
//! guest runs; the store (and with it every SQLite connection, rolling back open transactions)
//! is dropped when the handler returns. Guest stdout/stderr go to a shared [`GuestOutput`].
//! Outgoing requests go through the instance's [`OutboundHttp`] hooks (`allowed_outbound_hosts`);
//! self-requests go to the address [`serve_listener`] serves.

use crate::headers;
use crate::manifest::Manifest;
use crate::outbound::{OutboundHttp, OutboundRules};
use crate::routing::Router;
use crate::runtime_config::{RuntimeConfig, SqliteDatabase};
use crate::sqlite::{self, SqliteConfig, SqliteState};
use crate::variables::Resolver;
use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// How to load an application.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Path to `spin.toml`.
    pub manifest: PathBuf,
    /// The file behind the `default` SQLite label; `<manifest dir>/.spin/sqlite_db.db` if `None`.
    /// A runtime config's `[sqlite_database.default]` or `state_dir` may say otherwise (not
    /// both: that is refused).
    pub database: Option<PathBuf>,
    /// `spin up --runtime-config-file`, loaded.
    pub runtime_config: Option<RuntimeConfig>,
    /// Runtime variable values, like `spin up --variable k=v` (they win over everything).
    pub variables: HashMap<String, String>,
    /// The environment `SPIN_VARIABLE_*` are read from (the binary passes the process env).
    pub env: HashMap<String, String>,
    /// What a client may hold of this host at once, and for how long.
    pub limits: Limits,
    /// The component ids to serve, like `spin up -c` (repeatable); empty serves them all.
    /// The others' routes answer 404 and their SQLite labels are not checked
    /// (SPIN_CONTRACT.md A3); an id the manifest lacks fails [`Host::load`].
    pub components: Vec<String>,
}

/// What one client can hold of the host, so that no client can take it down for the others.
/// Spin has none of these (README, *Running in production*): it leaves them to the proxy in
/// front of it.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Component instances running at once (each request holds one until its handler
    /// returns); one more is answered 503 with `Retry-After`.
    pub max_instances: usize,
    /// How long a client may take to send a request's head.
    pub header_timeout: Duration,
    /// How long a request body may go without a byte; then the body fails (the component
    /// answers 400) and its instance is freed.
    pub body_idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_instances: 200,
            header_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(10),
        }
    }
}

impl HostOptions {
    /// Options with no variables, an empty environment and the default database.
    pub fn new(manifest: impl Into<PathBuf>) -> Self {
        HostOptions {
            manifest: manifest.into(),
            database: None,
            runtime_config: None,
            variables: HashMap::new(),
            env: HashMap::new(),
            limits: Limits::default(),
            components: Vec::new(),
        }
    }
}

/// A loaded application, ready to serve requests (cheap to clone; `Send + Sync`).
#[derive(Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

struct Inner {
    router: Router,
    components: HashMap<String, LoadedComponent>,
    resolver: Arc<Resolver>,
    output: GuestOutput,
    limits: Limits,
    instances: Arc<tokio::sync::Semaphore>,
    databases: Arc<BTreeMap<String, SqliteDatabase>>,
    /// Where self-requests go: the address of the first listener [`serve_listener`] serves
    /// (Spin's origin is its `--listen` address). Unset in memory.
    self_origin: OnceLock<SocketAddr>,
}

struct LoadedComponent {
    pre: ProxyPre<State>,
    sqlite: Arc<SqliteConfig>,
    environment: Vec<(String, String)>,
    outbound: Arc<OutboundRules>,
}

/// What one store holds: WASI, wasi-http and Spin's interfaces for one instance.
pub struct State {
    pub(crate) component_id: String,
    pub(crate) table: ResourceTable,
    pub(crate) sqlite: SqliteState,
    pub(crate) variables: Arc<Resolver>,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    /// The `wasi:http` hooks: outgoing requests pass `allowed_outbound_hosts` here.
    outbound: OutboundHttp,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// One engine per process: compiled code and the instance pool are shared by every `Host`.
pub(crate) fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        // `CD_HOST_PROFILE=perfmap` names the guests' compiled functions for `perf report`
        // (/tmp/perf-PID.map): how the README's profiles were taken.
        if std::env::var("CD_HOST_PROFILE").is_ok_and(|p| p == "perfmap") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        // Compiled components are cached on disk across runs (wasmtime's own cache, default
        // directory); if the cache cannot be set up we just compile every time.
        if let Ok(cache) = wasmtime::Cache::new(wasmtime::CacheConfig::new()) {
            config.cache(Some(cache));
        }
        // Spin uses the pooling allocator: instantiation per request is then a few µs of
        // bookkeeping. It reserves address space up front, so fall back if that is refused.
        let mut pooling = config.clone();
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(256)
            .total_core_instances(1024)
            .total_memories(256)
            .total_tables(1024)
            .total_stacks(256)
            // Returning a slot to the pool resets its table and memory. With madvise (the
            // default) that is a syscall plus a TLB shoot-down on every core per request —
            // 15% of the host's CPU in a profile of the health route; memset of the few
            // pages a request touched is cheaper.
            .table_keep_resident(1 << 20)
            .linear_memory_keep_resident(4 << 20);
        pooling.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        Engine::new(&pooling)
            .or_else(|_| Engine::new(&config))
            .expect("a wasmtime engine with the default configuration")
    })
}

impl Host {
    /// Loads `spin.toml`, keeps the components `options.components` selects, compiles (or
    /// loads from cache) each of them, and checks what Spin checks at start-up: sources exist,
    /// variables resolve, SQLite labels are defined.
    pub fn load(options: HostOptions) -> anyhow::Result<Host> {
        let mut manifest = Manifest::load(&options.manifest)?;
        // Spin's loader warns for every component of the manifest, before `-c` drops any.
        for component in manifest.components.values() {
            if !component.converted_http_hosts.is_empty() {
                eprintln!(
                    "Warning: Use of the deprecated field `allowed_http_hosts` - to fix, replace \
                     `allowed_http_hosts` with `allowed_outbound_hosts = {:?}`",
                    component.converted_http_hosts
                );
            }
        }
        // Everything below sees the retained components only, as Spin computes databases and
        // component variables after dropping the others.
        manifest.retain_components(&options.components)?;
        let resolver = Arc::new(Resolver::new(
            &manifest,
            options.variables.clone(),
            options.env.clone(),
        )?);
        let databases = Arc::new(sqlite_databases(&options, &manifest)?);
        sqlite::check_labels(
            manifest
                .components
                .iter()
                .map(|(id, c)| (id.as_str(), c.sqlite_databases.as_slice())),
            &databases,
        )?;

        let engine = engine();
        let mut linker = Linker::<State>::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        crate::bindings::SpinImports::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)?;

        let cargo_target_dir = options
            .env
            .get("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from));
        // `http://*.spin.internal` expands over the retained components only.
        let component_ids: Vec<String> = manifest.components.keys().cloned().collect();
        let mut components = HashMap::new();
        for (id, decl) in &manifest.components {
            let path = manifest.component_source(id, cargo_target_dir.as_deref())?;
            let component = Component::from_file(engine, &path)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot compile component {id:?} ({})", path.display()))?;
            let pre = ProxyPre::new(linker.instantiate_pre(&component)?)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("component {id:?} is not a wasi:http handler"))?;
            components.insert(
                id.clone(),
                LoadedComponent {
                    pre,
                    sqlite: Arc::new(SqliteConfig {
                        allowed: decl.sqlite_databases.clone(),
                        databases: databases.clone(),
                    }),
                    environment: decl
                        .environment
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    // Checked by `Manifest::parse`; this only keeps the templates for later.
                    outbound: Arc::new(
                        OutboundRules::parse(&decl.allowed_outbound_hosts, &component_ids)
                            .with_context(|| format!("Failed to load component `{id}`"))?,
                    ),
                },
            );
        }

        let router =
            Router::new(manifest.triggers.iter().filter_map(|trigger| {
                Some((trigger.route.as_deref()?, trigger.component.as_str()))
            }));
        Ok(Host {
            inner: Arc::new(Inner {
                router,
                components,
                resolver,
                output: GuestOutput::default(),
                instances: Arc::new(tokio::sync::Semaphore::new(options.limits.max_instances)),
                limits: options.limits.clone(),
                databases,
                self_origin: OnceLock::new(),
            }),
        })
    }

    /// Where the `default` database's data lives, if a served component may open it (Spin
    /// reports it at start-up only then).
    pub fn default_database(&self) -> Option<&SqliteDatabase> {
        let used = self.inner.components.values().any(|component| {
            component
                .sqlite
                .allowed
                .iter()
                .any(|label| label == sqlite::DEFAULT_LABEL)
        });
        used.then(|| self.inner.databases.get(sqlite::DEFAULT_LABEL))
            .flatten()
    }

    /// Serves one in-memory request as if it came from `client_addr`.
    ///
    /// The response body is collected; an error while it streams (a trap after the response
    /// started) gives a 500 here, where a real connection would be cut short.
    pub async fn handle(
        &self,
        req: http::Request<Bytes>,
        client_addr: SocketAddr,
    ) -> http::Response<Bytes> {
        let response = self.serve(req.map(Full::new), client_addr).await;
        let (parts, body) = response.into_parts();
        match body.collect().await {
            Ok(body) => http::Response::from_parts(parts, body.to_bytes()),
            Err(error) => {
                self.inner
                    .output
                    .log(&format!("response body failed: {error}"));
                empty(http::StatusCode::INTERNAL_SERVER_ERROR).map(|_| Bytes::new())
            }
        }
    }

    /// Everything guests wrote to stdout/stderr so far (and host-side errors about them).
    pub fn guest_output(&self) -> String {
        self.inner.output.contents()
    }

    /// Also copy guest output to the host's stderr as it is written (the binary does this).
    pub fn forward_guest_output(&self, forward: bool) {
        self.inner.output.forward.store(forward, Ordering::Relaxed);
    }

    /// The routes in precedence order, as `(route as written, component)`.
    pub fn routes(&self) -> Vec<(String, String)> {
        self.inner
            .router
            .routes()
            .iter()
            .map(|r| (r.raw.clone(), r.component.clone()))
            .collect()
    }

    /// Self-requests (`allowed_outbound_hosts = ["http://self"]`) come back to `addr` over
    /// TCP; the first address given stays.
    fn set_self_origin(&self, addr: SocketAddr) {
        let _ = self.inner.self_origin.set(addr);
    }

    /// Serves one request, streaming the response body (what the HTTP server uses).
    pub async fn serve<B>(
        &self,
        req: hyper::Request<B>,
        client_addr: SocketAddr,
    ) -> hyper::Response<HyperOutgoingBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let path = req.uri().path();
        if path == "/.well-known/spin/health" {
            return text(http::StatusCode::OK, "OK");
        }
        if path.starts_with("/.well-known/spin/") {
            return empty(http::StatusCode::NOT_FOUND);
        }
        let Some(matched) = self.inner.router.route(path) else {
            return empty(http::StatusCode::NOT_FOUND);
        };
        let component_id = matched.route.component.clone();
        match self.prepare(req, &matched, client_addr) {
            Ok(req) => match self.run(&component_id, req).await {
                Ok(response) => response,
                Err(error) if error.is::<InstancesExhausted>() => {
                    self.inner
                        .output
                        .log(&format!("component {component_id:?}: {error}"));
                    problem(
                        http::StatusCode::SERVICE_UNAVAILABLE,
                        "busy",
                        "every component instance is in use; retry",
                    )
                }
                Err(error) => {
                    self.inner
                        .output
                        .log(&format!("component {component_id:?} failed: {error:#}"));
                    empty(http::StatusCode::INTERNAL_SERVER_ERROR)
                }
            },
            // Everything `prepare` refuses is the client's: a 400 naming what, never internal
            // error text.
            Err(Malformed(detail)) => {
                self.inner
                    .output
                    .log(&format!("bad request for {component_id:?}: {detail}"));
                problem(http::StatusCode::BAD_REQUEST, "malformed", &detail)
            }
        }
    }

    /// Adds the `spin-*` headers and gives the request the absolute URI wasi-http expects, or
    /// says what about the request makes that impossible.
    fn prepare<B>(
        &self,
        req: hyper::Request<B>,
        matched: &crate::routing::RouteMatch<'_>,
        client_addr: SocketAddr,
    ) -> Result<hyper::Request<B>, Malformed> {
        let (mut parts, body) = req.into_parts();
        // Spin answers a header value that is not UTF-8 with a 500 (it turns every value into a
        // string first); it is the client's mistake, so here it is a 400 (a departure, README).
        if let Some((name, _)) = parts.headers.iter().find(|(_, v)| v.to_str().is_err()) {
            return Err(Malformed(format!("header {name} is not UTF-8 text")));
        }
        // Spin requires a Host; an in-memory request without one is treated as `localhost`.
        let host = match parts.headers.get(http::header::HOST) {
            Some(host) => host.to_str().unwrap_or_default().to_string(),
            None => parts
                .uri
                .authority()
                .map(|a| a.to_string())
                .unwrap_or_else(|| "localhost".to_string()),
        };
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str().to_string())
            .unwrap_or_else(|| parts.uri.path().to_string());
        let extra = headers::spin_headers(matched, &host, &path_and_query, client_addr);
        headers::append(&mut parts.headers, extra)
            .map_err(|_| Malformed("the request's Host or path cannot be passed on".to_owned()))?;
        parts.uri = http::Uri::builder()
            .scheme("http")
            .authority(host.as_str())
            .path_and_query(path_and_query.as_str())
            .build()
            .map_err(|_| Malformed(format!("Host {host:?} is not a valid authority")))?;
        Ok(hyper::Request::from_parts(parts, body))
    }

    /// Instantiates the component in a new store and runs its handler.
    async fn run<B>(
        &self,
        component_id: &str,
        req: hyper::Request<B>,
    ) -> anyhow::Result<hyper::Response<HyperOutgoingBody>>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let component = &self.inner.components[component_id];
        // A slot of the instance limit, held until the handler returns (the task below).
        let permit = self
            .inner
            .instances
            .clone()
            .try_acquire_owned()
            .map_err(|_| InstancesExhausted)?;
        let output = self.inner.output.clone();
        let wasi = WasiCtx::builder()
            .stdout(output.clone())
            .stderr(output.clone())
            .envs(&component.environment)
            .build();
        let mut store = Store::new(
            component.pre.engine(),
            State {
                component_id: component_id.to_string(),
                table: ResourceTable::new(),
                sqlite: SqliteState::new(component.sqlite.clone()),
                variables: self.inner.resolver.clone(),
                wasi,
                http: WasiHttpCtx::new(),
                outbound: OutboundHttp::new(
                    component.outbound.clone(),
                    self.inner.resolver.clone(),
                    self.inner.self_origin.get().copied(),
                    output.clone(),
                ),
            },
        );
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let idle = self.inner.limits.body_idle_timeout;
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req.map(|body| IdleTimeout::new(body, idle)))?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        let pre = component.pre.clone();
        let id = component_id.to_string();

        // The handler runs on a blocking-pool thread of its own, so the body can stream after
        // `set` and its SQLite statements can run in place (no hand-off per statement); the
        // store (and the response sender with it) is dropped when the handler returns.
        let runtime = tokio::runtime::Handle::current();
        let (pool_full, pool_full_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            crate::sqlite::REQUEST_THREAD.set(true);
            let result = runtime.block_on(async {
                // Other hosts of this process share the engine's instance pool.
                let proxy = match pre.instantiate_async(&mut store).await {
                    Ok(proxy) => proxy,
                    Err(error) => {
                        if error.is::<wasmtime::PoolConcurrencyLimitError>() {
                            let _ = pool_full.send(());
                        }
                        return Err(error);
                    }
                };
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            });
            crate::sqlite::REQUEST_THREAD.set(false);
            if let Err(error) = result {
                output.log(&format!("component {id:?} trapped: {error:#}"));
            }
        });

        match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => anyhow::bail!("the guest responded with an error: {code:?}"),
            Err(_) if pool_full_rx.await.is_ok() => Err(InstancesExhausted.into()),
            Err(_) => anyhow::bail!("the guest did not set a response"),
        }
    }
}

/// Every configured SQLite label and where its data lives, with Spin's precedence for
/// `default`: the runtime config's `[sqlite_database.default]`, else its `state_dir`
/// (`<dir>/sqlite_db.db`, or in memory when `""`), else `<manifest dir>/.spin/sqlite_db.db`.
/// `--database` is the host's shorthand for the last.
fn sqlite_databases(
    options: &HostOptions,
    manifest: &Manifest,
) -> anyhow::Result<BTreeMap<String, SqliteDatabase>> {
    let config = options.runtime_config.clone().unwrap_or_default();
    let mut databases = config.sqlite_databases;
    if options.database.is_some()
        && (databases.contains_key(sqlite::DEFAULT_LABEL) || config.state_dir.is_some())
    {
        anyhow::bail!(
            "--database and a runtime config that places the default database are both given"
        );
    }
    if !databases.contains_key(sqlite::DEFAULT_LABEL) {
        let default = match (&options.database, config.state_dir) {
            (Some(path), _) => SqliteDatabase::File(std::path::absolute(path)?),
            (None, Some(Some(dir))) => SqliteDatabase::File(dir.join("sqlite_db.db")),
            (None, Some(None)) => SqliteDatabase::Memory,
            (None, None) => SqliteDatabase::File(manifest.dir.join(".spin").join("sqlite_db.db")),
        };
        databases.insert(sqlite::DEFAULT_LABEL.to_string(), default);
    }
    Ok(databases)
}

/// Every instance slot is taken: the request is refused, not queued.
#[derive(Debug)]
struct InstancesExhausted;

impl std::fmt::Display for InstancesExhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the component instance limit is reached")
    }
}

impl std::error::Error for InstancesExhausted {}

/// A request the host cannot pass to a component, and why (a 400's detail).
struct Malformed(String);

/// A problem+json answer of the host itself (RFC 9457, as cd-core's), with `Retry-After` on a
/// 503.
fn problem(
    status: http::StatusCode,
    slug: &str,
    detail: &str,
) -> hyper::Response<HyperOutgoingBody> {
    let mut response = full(status, Bytes::from(problem_body(status, slug, detail)));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/problem+json"),
    );
    if status == http::StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
    }
    response
}

fn problem_body(status: http::StatusCode, slug: &str, detail: &str) -> String {
    serde_json::json!({
        "type": format!("urn:cd-images:problem:{slug}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    })
    .to_string()
}

/// A request body that fails when no byte arrives for `idle`: a client that withholds its body
/// would otherwise hold a component instance for as long as it keeps the connection.
struct IdleTimeout<B> {
    inner: Pin<Box<B>>,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<B> IdleTimeout<B> {
    fn new(inner: B, idle: Duration) -> Self {
        IdleTimeout {
            inner: Box::pin(inner),
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl<B> Body for IdleTimeout<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        match self.inner.as_mut().poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + self.idle;
                self.deadline.as_mut().reset(next);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    Poll::Ready(Some(Err(wasmtime_wasi_http::Error::ConnectionReadTimeout)))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

fn empty(status: http::StatusCode) -> hyper::Response<HyperOutgoingBody> {
    text(status, "")
}

fn text(status: http::StatusCode, body: &'static str) -> hyper::Response<HyperOutgoingBody> {
    full(status, Bytes::from_static(body.as_bytes()))
}

fn full(status: http::StatusCode, body: Bytes) -> hyper::Response<HyperOutgoingBody> {
    let body = Full::new(body)
        .map_err(|never: Infallible| match never {})
        .boxed_unsync();
    let mut response = hyper::Response::new(body);
    *response.status_mut() = status;
    response
}

/// Serves HTTP/1.1 on `listener` until the future is dropped.
///
/// It survives what clients do: an `accept` that fails (out of file descriptors, say) is
/// logged and retried after a pause instead of ending the loop; connections past
/// `max_connections` get a 503 and are closed; a request head must arrive within
/// `header_timeout`.
pub async fn serve_listener(host: Host, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    host.set_self_origin(listener.local_addr()?);
    let limits = host.inner.limits.clone();
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut backoff = Duration::from_millis(5);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => {
                backoff = Duration::from_millis(5);
                accepted
            }
            Err(error) => {
                // EMFILE/ENFILE/ENOMEM/ECONNABORTED: the listener is fine and the condition
                // passes as connections close; only a slower retry helps.
                host.inner
                    .output
                    .log(&format!("accept failed ({error}); retrying in {backoff:?}"));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        // A response's head and body are separate writes; with Nagle's algorithm on, the body
        // would wait for the client's delayed ACK of the head (40 ms on Linux).
        let _ = stream.set_nodelay(true);
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let host = host.clone();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let host = host.clone();
                async move { Ok::<_, Infallible>(host.serve(req, peer).await) }
            });
            // A client going away mid-request is not our error; nothing to report.
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(wasmtime_wasi_http::io::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Answers a connection over the limit with a 503 and closes it, without reading its request.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body = problem_body(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "too many open connections; retry",
    );
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        stream.write_all(response.as_bytes()),
    )
    .await;
    let _ = stream.shutdown().await;
}

/// A host serving real HTTP on `127.0.0.1:0` from its own tokio runtime thread; it stops when
/// dropped.
pub struct RunningHost {
    host: Host,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningHost {
    /// Loads the application and starts serving it on a free loopback port.
    pub fn start(options: HostOptions) -> anyhow::Result<RunningHost> {
        Self::start_on(options, "127.0.0.1:0".parse()?)
    }

    /// Like [`RunningHost::start`], on a given address.
    pub fn start_on(options: HostOptions, listen: SocketAddr) -> anyhow::Result<RunningHost> {
        let host = Host::load(options)?;
        let listener = std::net::TcpListener::bind(listen)
            .with_context(|| format!("cannot listen on {listen}"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        // Before `start` returns, so a first request can already reach the app itself.
        host.set_self_origin(addr);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("cd-host")
            .build()?;
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let serving = host.clone();
        let thread = std::thread::Builder::new()
            .name("cd-host-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(error) => return eprintln!("cd-host: {error}"),
                    };
                    tokio::select! {
                        result = serve_listener(serving, listener) => {
                            if let Err(error) = result {
                                eprintln!("cd-host: server stopped: {error}");
                            }
                        }
                        _ = stop => {}
                    }
                });
                // Do not wait for requests still running: the host is going away.
                runtime.shutdown_background();
            })?;
        Ok(RunningHost {
            host,
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The host behind the server (for [`Host::guest_output`] or in-memory requests).
    pub fn host(&self) -> &Host {
        &self.host
    }
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Guest stdout and stderr, kept in memory (bounded) and optionally copied to our stderr.
#[derive(Clone, Default)]
pub struct GuestOutput {
    buffer: Arc<Mutex<Vec<u8>>>,
    forward: Arc<AtomicBool>,
}

/// Keep at most this much guest output in memory (the newest half survives a trim).
const MAX_OUTPUT: usize = 4 * 1024 * 1024;

impl GuestOutput {
    fn write(&self, bytes: &[u8]) {
        if self.forward.load(Ordering::Relaxed) {
            use std::io::Write as _;
            let _ = std::io::stderr().write_all(bytes);
        }
        self.record(bytes);
    }

    /// Keeps `bytes` in memory only.
    fn record(&self, bytes: &[u8]) {
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        buffer.extend_from_slice(bytes);
        if buffer.len() > MAX_OUTPUT {
            let cut = buffer.len() - MAX_OUTPUT / 2;
            buffer.drain(..cut);
        }
    }

    /// Records a host-side message about a guest (a trap, a failed response).
    pub(crate) fn log(&self, message: &str) {
        self.write(format!("[cd-host] {message}\n").as_bytes());
    }

    /// A warning Spin prints to stderr (a denied outbound request): printed to stderr
    /// whether or not guest output is forwarded, and kept with the guest output so tests
    /// can read it.
    pub(crate) fn warn(&self, message: &str) {
        eprint!("{message}");
        self.record(message.as_bytes());
    }

    fn contents(&self) -> String {
        let buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&buffer).into_owned()
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// `Host` is shared across threads by servers and tests.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Host>();
};
