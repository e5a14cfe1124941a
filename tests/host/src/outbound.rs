//! Outbound HTTP (`wasi:http/outgoing-handler`) behind Spin 4.0.2's `allowed_outbound_hosts`
//! (SPIN_CONTRACT.md A1, "### allowed_outbound_hosts"; Spin's
//! `outbound-networking-config/src/allowed_hosts.rs` and `factor-outbound-http/src/wasi.rs`).
//!
//! - [`AllowedHost`] is one manifest entry, parsed with Spin's rules and error texts;
//!   [`OutboundUrl`] is a request URL as the check sees it; [`AllowList`] is a component's
//!   resolved list.
//! - [`OutboundRules`] is a component's list as loaded: literal entries parsed, `{{ var }}`
//!   entries kept as templates. [`OutboundRules::validate_defaults`] is Spin's load-time check;
//!   [`OutboundRules::resolve`] its per-instance resolution.
//! - [`convert_allowed_http_hosts`] turns the deprecated `allowed_http_hosts` into entries.
//! - [`OutboundHttp`] is the per-instance `WasiHttpHooks` whose `send_request` checks each
//!   request, prints Spin's warning on a denial, turns self-requests into requests to the
//!   host's own listen address, and sends the rest with wasmtime's default sender.

use crate::server::GuestOutput;
use crate::variables::{PreparedVariables, Resolver, Template};
use anyhow::{Context as _, bail, ensure};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::Arc;
use url::Host;
use wasmtime_wasi_http::p2::bindings::http::types::{DnsErrorPayload, ErrorCode};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The domain suffix of Spin's service chaining (`<component-id>.spin.internal`).
pub const SERVICE_CHAINING_SUFFIX: &str = ".spin.internal";

/// One `allowed_outbound_hosts` entry: `<scheme>://<host>[:<port>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: SchemeRule,
    host: HostRule,
    port: PortRule,
}

/// The scheme part of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemeRule {
    /// `*://`
    Any,
    /// One scheme, compared exactly (`http` does not allow `https`).
    Exact(String),
}

/// The host part of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRule {
    /// `*`
    Any,
    /// `self` or `self.alt`: requests to the app itself only.
    ToSelf,
    /// `*.example.com`, kept as the suffix `.example.com` (as written: not lowercased).
    AnySubdomain(String),
    /// A domain (lowercased), an IPv4 address or an `[IPv6]` address.
    Literal(Host),
    /// `a.b.c.d/nn` or `v6/nn`, host bits cleared; it matches IP literals only.
    Cidr(ipnet::IpNet),
}

/// The port part of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortRule {
    /// `:*`
    Any,
    /// `:N`, or the scheme's well-known port when none is written.
    Port(u16),
    /// `:A..B`, a Rust range: `B` is excluded.
    Range(Range<u16>),
}

impl AllowedHost {
    /// Parses one entry as Spin's `AllowedHostConfig::parse` does, with its error texts.
    ///
    /// The rest after `://` is split at its LAST `:` (so `http://[::1]` is an error while
    /// `http://[::1]:8001` is fine), and the port is parsed before the scheme and the host, so
    /// that is the error reported first.
    pub fn parse(entry: &str) -> anyhow::Result<AllowedHost> {
        let url = entry.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            match url {
                "*" | ":" | "" | "?" => bail!(
                    "{url:?} is not an allowed outbound host format.\nHosts must be in the form <scheme>://<host>[:<port>], with '*' wildcards allowed for each.\nIf you intended to allow all outbound networking, you can use '*://*:*' - this will obviate all network sandboxing.\nLearn more: https://spinframework.dev/v3/http-outbound#granting-http-permissions-to-components"
                ),
                _ => bail!(
                    "{url:?} does not contain a scheme (e.g., 'http://' or '*://')\nLearn more: https://spinframework.dev/v3/http-outbound#granting-http-permissions-to-components"
                ),
            }
        };
        let (host, rest) = rest.rsplit_once(':').unwrap_or((rest, ""));
        let port = match rest.split_once('/') {
            Some((port, path)) => {
                if !path.is_empty() {
                    bail!("{url:?} has a path but is not allowed to");
                }
                port
            }
            None => rest,
        };
        let port = PortRule::parse(port, scheme)
            .with_context(|| format!("Invalid allowed host port {port:?}"))?;
        let scheme = SchemeRule::parse(scheme)
            .with_context(|| format!("Invalid allowed host scheme {scheme:?}"))?;
        let host =
            HostRule::parse(host).with_context(|| format!("Invalid allowed host {host:?}"))?;
        Ok(AllowedHost { scheme, host, port })
    }

    /// The scheme rule.
    pub fn scheme(&self) -> &SchemeRule {
        &self.scheme
    }

    /// The host rule.
    pub fn host(&self) -> &HostRule {
        &self.host
    }

    /// The port rule.
    pub fn port(&self) -> &PortRule {
        &self.port
    }

    /// Whether this entry allows a request to `url` (never a self-request: see
    /// [`AllowedHost::allows_self`]).
    pub fn allows(&self, url: &OutboundUrl) -> bool {
        self.scheme.allows(&url.scheme)
            && self.host.allows(&url.host)
            && self.port.allows(url.port, &url.scheme)
    }

    /// Whether this entry allows a self-request with one of `schemes`: the host must be `*`,
    /// `self` or `self.alt`, and the port does not matter.
    pub fn allows_self(&self, schemes: &[&str]) -> bool {
        schemes.iter().any(|scheme| self.scheme.allows(scheme))
            && matches!(self.host, HostRule::Any | HostRule::ToSelf)
    }
}

impl SchemeRule {
    fn parse(scheme: &str) -> anyhow::Result<SchemeRule> {
        if scheme == "*" {
            return Ok(SchemeRule::Any);
        }
        if scheme.starts_with('{') {
            bail!("scheme lists are not supported");
        }
        if scheme.chars().any(|c| !c.is_alphabetic()) {
            bail!("only alphabetic characters are allowed");
        }
        Ok(SchemeRule::Exact(scheme.to_string()))
    }

    fn allows(&self, scheme: &str) -> bool {
        match self {
            SchemeRule::Any => true,
            SchemeRule::Exact(allowed) => allowed == scheme,
        }
    }
}

impl HostRule {
    fn parse(host: &str) -> anyhow::Result<HostRule> {
        let host = host.trim();
        if host == "*" {
            return Ok(HostRule::Any);
        }
        if host == "self" || host == "self.alt" {
            return Ok(HostRule::ToSelf);
        }
        if host.starts_with('{') {
            ensure!(host.ends_with('}'));
            bail!("host lists are not yet supported");
        }
        // Spin's `IpNetwork::from_str_truncate`: a prefix length is required and host bits
        // are dropped (`127.0.0.1/24` is `127.0.0.0/24`).
        if let Ok(net) = host.parse::<ipnet::IpNet>() {
            return Ok(HostRule::Cidr(net.trunc()));
        }
        let host = host.trim_end_matches('/');
        if host.contains('/') {
            bail!("must not include a path");
        }
        if let Some(domain) = host.strip_prefix("*.") {
            if domain.contains('*') {
                bail!("wildcards are allowed only as prefixes");
            }
            return Ok(HostRule::AnySubdomain(format!(".{domain}")));
        }
        if host.contains('*') {
            bail!("wildcards are allowed only as subdomains");
        }
        Ok(HostRule::Literal(Host::parse(host)?))
    }

    /// Textual comparison after `url::Host` normalisation: no DNS, so `localhost` is not
    /// `127.0.0.1` and a CIDR never matches a domain.
    fn allows(&self, host: &str) -> bool {
        let Ok(host) = Host::parse(host) else {
            return false;
        };
        match (self, host) {
            (HostRule::Any, _) => true,
            (HostRule::AnySubdomain(suffix), Host::Domain(domain)) => domain.ends_with(suffix),
            (HostRule::Literal(literal), host) => host == *literal,
            (HostRule::Cidr(net), Host::Ipv4(ip)) => net.contains(&IpAddr::V4(ip)),
            (HostRule::Cidr(net), Host::Ipv6(ip)) => net.contains(&IpAddr::V6(ip)),
            (HostRule::AnySubdomain(_) | HostRule::Cidr(_), _) => false,
            // Self-requests are checked by `allows_self`, never by URL.
            (HostRule::ToSelf, _) => false,
        }
    }
}

impl PortRule {
    fn parse(port: &str, scheme: &str) -> anyhow::Result<PortRule> {
        if port.is_empty() {
            return well_known_port(scheme).map(PortRule::Port).with_context(|| {
                format!(
                    "no port was provided and the scheme {scheme:?} does not have a known default port number"
                )
            });
        }
        if port == "*" {
            return Ok(PortRule::Any);
        }
        if port.starts_with('{') {
            bail!("port lists are not yet supported");
        }
        if let Some((start, end)) = port.split_once("..") {
            let number = |text: &str| {
                text.parse::<u16>()
                    .with_context(|| format!("port range {port:?} contains non-number"))
            };
            return Ok(PortRule::Range(number(start)?..number(end)?));
        }
        Ok(PortRule::Port(port.parse().with_context(|| {
            format!("port {port:?} is not a number")
        })?))
    }

    /// `port` is the URL's explicit port; without one the scheme's well-known port counts,
    /// and a scheme without one matches only `:*`.
    fn allows(&self, port: Option<u16>, scheme: &str) -> bool {
        if *self == PortRule::Any {
            return true;
        }
        let Some(port) = port.or_else(|| well_known_port(scheme)) else {
            return false;
        };
        match self {
            PortRule::Any => true,
            PortRule::Port(allowed) => *allowed == port,
            PortRule::Range(range) => range.contains(&port),
        }
    }
}

/// The well-known port of the schemes Spin knows (`allowed_hosts.rs` `well_known_port`).
pub fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// A request URL as the allow-list sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundUrl {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl OutboundUrl {
    /// Parses `url` with the `url` crate; if it has no host, `{scheme}://` is put in front and
    /// it is parsed again (Spin's `OutboundUrl::parse`). A port equal to the scheme's default
    /// is dropped by the parser and then counts as the well-known port.
    pub fn parse(url: &str, scheme: &str) -> anyhow::Result<OutboundUrl> {
        let parsed = match url::Url::parse(url) {
            Ok(parsed) if parsed.has_host() => parsed,
            first => match url::Url::parse(&format!("{scheme}://{url}")) {
                Ok(parsed) => parsed,
                // Prefer the first attempt's error, as Spin does.
                Err(second) => return Err(first.err().unwrap_or(second).into()),
            },
        };
        let host = parsed
            .host_str()
            .with_context(|| format!("{url:?} does not have a host component"))?
            .to_string();
        Ok(OutboundUrl {
            scheme: parsed.scheme().to_string(),
            host,
            port: parsed.port(),
        })
    }

    /// The scheme.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// `host[:port]`, the port only when the URL names a non-default one (what Spin's warning
    /// prints).
    pub fn authority(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }
}

/// A component's resolved allow-list (Spin's `AllowedHostsConfig::SpecificHosts`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<AllowedHost>);

impl AllowList {
    /// The entries, service-chaining wildcards expanded.
    pub fn entries(&self) -> &[AllowedHost] {
        &self.0
    }

    /// Whether any entry allows `url`.
    pub fn allows(&self, url: &OutboundUrl) -> bool {
        self.0.iter().any(|entry| entry.allows(url))
    }

    /// Whether any entry allows a self-request (Spin checks `http` and `https`).
    pub fn allows_self(&self) -> bool {
        self.0
            .iter()
            .any(|entry| entry.allows_self(&["http", "https"]))
    }
}

/// A component's `allowed_outbound_hosts` as loaded (Spin's `parse_partial`).
#[derive(Debug, Clone)]
pub struct OutboundRules {
    entries: Vec<Entry>,
    /// The app's (retained) component ids, for `http://*.spin.internal`.
    component_ids: Vec<String>,
}

#[derive(Debug, Clone)]
enum Entry {
    Exact(AllowedHost),
    /// An entry with `{{ .. }}`: resolved and parsed per instance.
    Template(Template),
}

impl OutboundRules {
    /// Parses the literal entries now and keeps the templated ones. The sole entry
    /// `insecure:allow-all` is refused, as is any malformed literal entry or template.
    pub fn parse(
        entries: &[impl AsRef<str>],
        component_ids: &[String],
    ) -> anyhow::Result<OutboundRules> {
        if let [only] = entries
            && only.as_ref() == "insecure:allow-all"
        {
            bail!(
                "'insecure:allow-all' is not allowed - use '*://*:*' instead if you really want to allow all outbound traffic'"
            );
        }
        let entries = entries
            .iter()
            .map(|entry| {
                let entry = entry.as_ref();
                let template = Template::parse_unchecked(entry)?;
                Ok(if template.is_literal() {
                    Entry::Exact(AllowedHost::parse(entry)?)
                } else {
                    Entry::Template(template)
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(OutboundRules {
            entries,
            component_ids: component_ids.to_vec(),
        })
    }

    /// Spin's load-time check (`AllowedHostsConfig::validate`): a templated entry whose
    /// variables all have defaults must parse with them; one naming a variable without a
    /// default (or an unknown one) is left for run time. `default` gives a variable's
    /// manifest default.
    pub fn validate_defaults(
        &self,
        default: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<()> {
        for entry in &self.entries {
            let Entry::Template(template) = entry else {
                continue;
            };
            let Ok(resolved) = template.render(|name| default(name).ok_or(())) else {
                continue;
            };
            AllowedHost::parse(&resolved).with_context(|| {
                format!(
                    "using default variable value(s) with template {:?} results in invalid config {resolved:?}",
                    template.to_string()
                )
            })?;
        }
        Ok(())
    }

    /// Resolves the templated entries against `variables` and parses them; any failure fails
    /// the whole list. `http://*.spin.internal` becomes one entry per component id.
    pub fn resolve(&self, variables: &PreparedVariables) -> anyhow::Result<AllowList> {
        let mut list = Vec::new();
        for entry in &self.entries {
            let host = match entry {
                Entry::Exact(host) => host.clone(),
                Entry::Template(template) => {
                    AllowedHost::parse(&variables.resolve_template(template)?)?
                }
            };
            match &host.host {
                HostRule::AnySubdomain(suffix) if suffix == SERVICE_CHAINING_SUFFIX => {
                    list.extend(self.component_ids.iter().map(|id| AllowedHost {
                        host: HostRule::Literal(Host::Domain(format!(
                            "{id}{SERVICE_CHAINING_SUFFIX}"
                        ))),
                        ..host.clone()
                    }))
                }
                _ => list.push(host),
            }
        }
        Ok(AllowList(list))
    }
}

/// Spin's conversion of the deprecated `allowed_http_hosts` (manifest `compat.rs`): `h[:p]`
/// becomes `http://h[:p]` and `https://h[:p]`, `self` becomes `http://self`, and
/// `insecure:allow-all` anywhere becomes `http://*:*`, `https://*:*`, `http://self`.
pub fn convert_allowed_http_hosts(list: &[impl AsRef<str>]) -> anyhow::Result<Vec<String>> {
    if list
        .iter()
        .any(|entry| entry.as_ref() == "insecure:allow-all")
    {
        return Ok(vec![
            "http://*:*".into(),
            "https://*:*".into(),
            "http://self".into(),
        ]);
    }
    let mut hosts = Vec::new();
    let mut errors = Vec::new();
    for entry in list {
        match parse_allowed_http_host(entry.as_ref()) {
            Ok((domain, _)) if domain == "self" => hosts.push("http://self".to_string()),
            Ok((domain, port)) => {
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                hosts.push(format!("http://{domain}{port}"));
                hosts.push(format!("https://{domain}{port}"));
            }
            Err(error) => errors.push(error),
        }
    }
    if !errors.is_empty() {
        bail!(
            "One or more allowed_http_hosts entries was invalid:\n{}",
            errors.join("\n")
        );
    }
    Ok(hosts)
}

/// One `allowed_http_hosts` entry as `(host, explicit non-default port)`.
fn parse_allowed_http_host(text: &str) -> Result<(String, Option<u16>), String> {
    // `Url::parse("localhost:3001")` takes `localhost` for a scheme, so an entry without `//`
    // is parsed as `http://<entry>` (Spin does the same).
    let url = if text.contains("//") {
        let url = url::Url::parse(text)
            .map_err(|e| format!("{text} isn't a valid HTTP host URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{text} isn't a valid host or host:port string"));
        }
        url
    } else {
        url::Url::parse(&format!("http://{text}"))
            .map_err(|_| format!("{text} isn't a valid host or host:port string"))?
    };
    let host = url
        .host_str()
        .ok_or_else(|| format!("{text} doesn't contain a host name"))?;
    if url.path().len() > 1 {
        return Err(format!(
            "{text} contains a path, should be host and optional port only"
        ));
    }
    Ok((host.to_string(), url.port()))
}

/// Spin's two-line warning for a denied request (`runtime-factors/src/lib.rs`).
pub fn disallowed_warning(scheme: &str, authority: &str) -> String {
    let pattern = format!("{scheme}://{authority}");
    let first = if scheme.starts_with("http") && authority == "self" {
        "A component tried to make an HTTP request to its own app but it does not have permission."
            .to_string()
    } else {
        format!(
            "A component tried to make an outbound network connection to disallowed destination '{pattern}'."
        )
    };
    format!(
        "Warning: {first}\nTo allow this request, add 'allowed_outbound_hosts = [\"{pattern}\"]' to the manifest component section.\n"
    )
}

/// The outbound side of one instance: its `WasiHttpHooks`.
pub struct OutboundHttp {
    rules: Arc<OutboundRules>,
    resolver: Arc<Resolver>,
    /// The host's own listen address (`None` in memory: self-requests then fail as in Spin
    /// without an origin).
    origin: Option<SocketAddr>,
    output: GuestOutput,
    /// The allow-list, resolved on the first request of the instance and kept for its life;
    /// `Some(None)` when it failed to resolve (every request is then denied).
    allow_list: Option<Option<Arc<AllowList>>>,
}

/// What the `send_request` hook returns (the trait's signature, spelled once).
type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl OutboundHttp {
    pub(crate) fn new(
        rules: Arc<OutboundRules>,
        resolver: Arc<Resolver>,
        origin: Option<SocketAddr>,
        output: GuestOutput,
    ) -> OutboundHttp {
        OutboundHttp {
            rules,
            resolver,
            origin,
            output,
            allow_list: None,
        }
    }

    /// The instance's allow-list, resolving it the first time (Spin's lazy shared future,
    /// factor-outbound-networking `prepare`).
    fn allow_list(&mut self) -> Option<Arc<AllowList>> {
        if let Some(list) = &self.allow_list {
            return list.clone();
        }
        let resolved = match self.resolver.prepare() {
            Err(error) => {
                self.output.log(&format!(
                    "Error resolving variables when checking request against allowed outbound hosts: {error}"
                ));
                None
            }
            Ok(variables) => match self.rules.resolve(&variables) {
                Ok(list) => Some(Arc::new(list)),
                Err(error) => {
                    self.output
                        .log(&format!("Error parsing allowed outbound hosts: {error:#}"));
                    None
                }
            },
        };
        self.allow_list = Some(resolved.clone());
        resolved
    }

    /// Spin's `check_url(url, "https")`.
    fn check_url(&mut self, url: &str) -> bool {
        let parsed = match OutboundUrl::parse(url, "https") {
            Ok(parsed) => parsed,
            Err(error) => {
                self.output.log(&format!(
                    "A component tried to make a request to a url that could not be parsed: {url} ({error})"
                ));
                return false;
            }
        };
        let Some(list) = self.allow_list() else {
            return false;
        };
        let allowed = list.allows(&parsed);
        if !allowed {
            self.output
                .warn(&disallowed_warning(parsed.scheme(), &parsed.authority()));
        }
        allowed
    }

    /// Spin's `check_relative_url(["http", "https"])`.
    fn check_self(&mut self) -> bool {
        let Some(list) = self.allow_list() else {
            return false;
        };
        let allowed = list.allows_self();
        if !allowed {
            self.output.warn(&disallowed_warning("http", "self"));
        }
        allowed
    }

    /// Spin's `prepare_request`: the policy check, then the URI and `Host` the request is
    /// sent with. An `Err` is what the guest's future resolves to.
    fn prepare(&mut self, request: &mut http::Request<WasiBody>) -> Result<(), Error> {
        // wasmtime fills in a scheme and an authority for relative URLs (the SDK's
        // `https://:443/path`): undo that, so they are self-requests.
        let uri = request.uri_mut();
        if uri.authority().is_some_and(|a| a.host().is_empty()) {
            let mut parts = http::uri::Parts::default();
            parts.path_and_query = uri.path_and_query().cloned();
            *uri = http::Uri::from_parts(parts).map_err(|_| Error::HttpRequestUriInvalid)?;
        }
        let is_self = match request.uri().authority() {
            // Some SDKs require an authority: `http://self.alt/path` is a self-request too.
            Some(authority) => authority.host() == "self.alt",
            None => true,
        };
        let allowed = if is_self {
            self.check_self()
        } else {
            let url = request.uri().to_string();
            self.check_url(&url)
        };
        if !allowed {
            return Err(Error::HttpRequestDenied);
        }

        if is_self {
            let Some(origin) = self.origin else {
                self.output
                    .log("Couldn't handle outbound HTTP request to relative URI; no origin set");
                return Err(Error::HttpRequestUriInvalid);
            };
            let path = request
                .uri()
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
                .to_string();
            *request.uri_mut() = http::Uri::builder()
                .scheme("http")
                .authority(origin.to_string())
                .path_and_query(path)
                .build()
                .map_err(|_| Error::HttpRequestUriInvalid)?;
        } else if let Some(host) = request.uri().host()
            && host.ends_with(SERVICE_CHAINING_SUFFIX)
        {
            // Spin serves `<id>.spin.internal` in-process; cd-host does not (OUTBOUND.md).
            // Fail plainly rather than leak the name to DNS.
            let message = format!(
                "service chaining ({host}) is not implemented by cd-host (tests/host/OUTBOUND.md)"
            );
            self.output.log(&message);
            return Err(Error::InternalError(Some(message)));
        }

        // The origin sees `Host` = the URI authority without a default port, as from Spin's
        // hyper-util client: wasmtime put the authority in verbatim, and the default sender
        // (a bare hyper connection) adds none of its own.
        let host = host_header(request.uri()).ok_or(Error::HttpRequestUriInvalid)?;
        request.headers_mut().insert(http::header::HOST, host);
        Ok(())
    }
}

/// `host` or `host:port`, the port only when it is not the scheme's default.
fn host_header(uri: &http::Uri) -> Option<http::HeaderValue> {
    let host = uri.host()?;
    let default = match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    let value = match uri.port_u16() {
        Some(port) if port != default => format!("{host}:{port}"),
        _ => host.to_string(),
    };
    http::HeaderValue::try_from(value).ok()
}

/// Sends with wasmtime's default sender (HTTP/1, rustls with the webpki roots, the guest's
/// request options or 600 s timeouts, no redirects), with Spin's DNS error code.
async fn send(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
> {
    use http_body_util::BodyExt;
    let (response, io) = wasmtime_wasi_http::default_send_request(request, options)
        .await
        .map_err(spin_error)?;
    Ok((response.map(BodyExt::boxed_unsync), Box::new(io)))
}

/// Spin's code for a failed name lookup is `DnsError("address not available", 0)`;
/// wasmtime's differs only by the missing info code, so it is set here.
fn spin_error(error: Error) -> Error {
    match error {
        Error::Connect(error)
            if error.kind() == std::io::ErrorKind::AddrNotAvailable
                || error
                    .to_string()
                    .starts_with("failed to lookup address information") =>
        {
            Error::DnsError {
                rcode: Some("address not available".to_string()),
                info_code: Some(0),
            }
        }
        other => other,
    }
}

impl WasiHttpHooks for OutboundHttp {
    /// Always a pending future, as Spin's: a denial reaches the guest through
    /// `future-incoming-response.get`, never from `handle`.
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let prepared = self.prepare(&mut request);
        Box::new(async move {
            prepared?;
            send(request, options).await
        })
    }

    /// Spin reports an invalid TLS server name with info code 0.
    fn p2_error_from_dns(&mut self, _error: &rustls_pki_types::InvalidDnsNameError) -> ErrorCode {
        ErrorCode::DnsError(DnsErrorPayload {
            rcode: Some("invalid dns name".to_string()),
            info_code: Some(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(entry: &str) -> AllowedHost {
        AllowedHost::parse(entry).unwrap_or_else(|e| panic!("{entry}: {e:#}"))
    }

    fn error(entry: &str) -> String {
        match AllowedHost::parse(entry) {
            Ok(host) => panic!("{entry} parsed: {host:?}"),
            Err(error) => format!("{error:#}"),
        }
    }

    fn rule(scheme: SchemeRule, host: HostRule, port: PortRule) -> AllowedHost {
        AllowedHost { scheme, host, port }
    }

    fn exact(scheme: &str) -> SchemeRule {
        SchemeRule::Exact(scheme.into())
    }

    fn literal(host: &str) -> HostRule {
        HostRule::Literal(Host::parse(host).unwrap())
    }

    fn cidr(net: &str) -> HostRule {
        HostRule::Cidr(net.parse().unwrap())
    }

    fn allows(entries: &[&str], url: &str) -> bool {
        let list = AllowList(entries.iter().map(|e| parse(e)).collect());
        let url = OutboundUrl::parse(url, "https").unwrap();
        list.allows(&url)
    }

    #[test]
    fn an_empty_port_is_the_schemes_well_known_port() {
        for (entry, port) in [
            ("http://a.dev", 80),
            ("http://a.dev/", 80),
            ("https://a.dev", 443),
            ("postgres://a.dev", 5432),
            ("mysql://a.dev", 3306),
            ("redis://a.dev", 6379),
            ("mqtt://a.dev", 1883),
        ] {
            assert_eq!(parse(entry).port, PortRule::Port(port), "{entry}");
        }
        for (entry, scheme) in [("*://a.dev", "*"), ("tcp://a.dev", "tcp")] {
            assert_eq!(
                error(entry),
                format!(
                    "Invalid allowed host port \"\": no port was provided and the scheme \
                     \"{scheme}\" does not have a known default port number"
                )
            );
        }
    }

    #[test]
    fn ports_are_star_a_number_or_a_range_without_its_end() {
        assert_eq!(parse("http://a.dev:*").port, PortRule::Any);
        assert_eq!(parse("http://a.dev:4444").port, PortRule::Port(4444));
        assert_eq!(parse("http://a.dev:4444/").port, PortRule::Port(4444));
        assert_eq!(
            parse("http://a.dev:4444..5555").port,
            PortRule::Range(4444..5555)
        );
        assert!(allows(&["http://a.dev:4444..5555"], "http://a.dev:4444"));
        assert!(allows(&["http://a.dev:4444..5555"], "http://a.dev:5554"));
        assert!(!allows(&["http://a.dev:4444..5555"], "http://a.dev:5555"));
        assert_eq!(
            error("http://a.dev:{80,443}"),
            "Invalid allowed host port \"{80,443}\": port lists are not yet supported"
        );
        assert_eq!(
            error("http://a.dev:x"),
            "Invalid allowed host port \"x\": port \"x\" is not a number: \
             invalid digit found in string"
        );
        assert!(error("http://a.dev:1..x").starts_with(
            "Invalid allowed host port \"1..x\": port range \"1..x\" contains non-number"
        ));
        assert!(error("http://a.dev:70000").contains("port \"70000\" is not a number"));
    }

    #[test]
    fn schemes_are_star_or_one_alphabetic_word() {
        assert_eq!(parse("*://a.dev:1").scheme, SchemeRule::Any);
        assert_eq!(parse("https://a.dev").scheme, exact("https"));
        assert_eq!(
            error("{http,https}://a.dev:1"),
            "Invalid allowed host scheme \"{http,https}\": scheme lists are not supported"
        );
        assert_eq!(
            error("h2c1://a.dev:1"),
            "Invalid allowed host scheme \"h2c1\": only alphabetic characters are allowed"
        );
    }

    #[test]
    fn hosts_are_star_self_subdomains_cidrs_or_literals() {
        assert_eq!(
            parse("*://*:*"),
            rule(SchemeRule::Any, HostRule::Any, PortRule::Any)
        );
        assert_eq!(
            parse("http://self"),
            rule(exact("http"), HostRule::ToSelf, PortRule::Port(80))
        );
        assert_eq!(parse("http://self.alt").host, HostRule::ToSelf);
        assert_eq!(
            parse("http://*.example.com").host,
            HostRule::AnySubdomain(".example.com".into())
        );
        assert_eq!(
            parse("*://127.0.0.0/24:80"),
            rule(SchemeRule::Any, cidr("127.0.0.0/24"), PortRule::Port(80))
        );
        // Host bits are dropped, as `from_str_truncate` does.
        assert_eq!(parse("*://127.0.0.1/24:80").host, cidr("127.0.0.0/24"));
        assert_eq!(parse("*://ff00::/8:80").host, cidr("ff00::/8"));
        assert_eq!(parse("http://10.0.0.0/8").host, cidr("10.0.0.0/8"));
        assert_eq!(
            parse("http://Spin.Fermyon.DEV").host,
            literal("spin.fermyon.dev")
        );
        assert_eq!(
            parse("http://192.168.1.1:3002").host,
            literal("192.168.1.1")
        );
        assert_eq!(parse("http://[::1]:8001").host, literal("[::1]"));
        assert_eq!(parse(" http://a.dev ").host, literal("a.dev"));
    }

    #[test]
    fn malformed_hosts_get_spins_errors() {
        assert_eq!(
            error("http://*.a.*.dev"),
            "Invalid allowed host \"*.a.*.dev\": wildcards are allowed only as prefixes"
        );
        assert_eq!(
            error("http://a*.dev"),
            "Invalid allowed host \"a*.dev\": wildcards are allowed only as subdomains"
        );
        assert_eq!(
            error("http://{a.dev,b.dev}"),
            "Invalid allowed host \"{a.dev,b.dev}\": host lists are not yet supported"
        );
        assert_eq!(
            error("http://a.dev/x"),
            "Invalid allowed host \"a.dev/x\": must not include a path"
        );
        assert_eq!(
            error("http://a.dev:80/x"),
            "\"http://a.dev:80/x\" has a path but is not allowed to"
        );
        assert_eq!(error("http://:80"), "Invalid allowed host \"\": empty host");
        // No port, so the CIDR's `/` is taken for a path, and `*://` has no default port.
        assert!(error("*://127.0.0.0/24").starts_with("Invalid allowed host port"));
    }

    #[test]
    fn an_ipv6_host_needs_a_port() {
        // The split at the last `:` lands inside the brackets.
        assert_eq!(
            error("http://[::1]"),
            "Invalid allowed host port \"1]\": port \"1]\" is not a number: \
             invalid digit found in string"
        );
        assert!(allows(&["http://[::1]:8001"], "http://[::1]:8001/x"));
        assert!(!allows(&["http://[::1]:8001"], "http://[::2]:8001/x"));
    }

    #[test]
    fn entries_without_a_scheme_are_refused() {
        for bare in ["*", ":", "", "?"] {
            let message = error(bare);
            assert!(
                message.starts_with(&format!(
                    "{bare:?} is not an allowed outbound host format.\n"
                )) && message.contains("you can use '*://*:*'"),
                "{message}"
            );
        }
        assert_eq!(
            error("spin.fermyon.dev:80"),
            "\"spin.fermyon.dev:80\" does not contain a scheme (e.g., 'http://' or '*://')\n\
             Learn more: https://spinframework.dev/v3/http-outbound#granting-http-permissions-to-components"
        );
    }

    #[test]
    fn the_sole_entry_insecure_allow_all_is_refused() {
        let error = OutboundRules::parse(&["insecure:allow-all"], &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "'insecure:allow-all' is not allowed - use '*://*:*' instead if you really want to allow all outbound traffic'"
        );
        // Among others it is merely an entry without a scheme.
        let error = OutboundRules::parse(&["http://a.dev", "insecure:allow-all"], &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("does not contain a scheme"), "{error}");
    }

    #[test]
    fn matching_needs_scheme_host_and_port() {
        let entries = ["*://spin.fermyon.dev:443", "http://example.com:8383"];
        assert!(allows(&entries, "http://example.com:8383/foo/bar"));
        assert!(allows(&entries, "https://spin.fermyon.dev"));
        assert!(allows(&entries, "https://spin.fermyon.dev:443/"));
        assert!(!allows(&entries, "http://example.com/"));
        assert!(!allows(&entries, "https://example.com:8383/"));
        assert!(!allows(&entries, "http://google.com/"));
        // Without a scheme the check's default (`https`) is put in front.
        assert!(allows(&entries, "spin.fermyon.dev:443"));
        // Schemes are exact; a URL port equal to the default counts as that default.
        assert!(!allows(&["http://a.dev"], "https://a.dev"));
        assert!(allows(&["http://a.dev"], "http://a.dev:80/"));
        assert!(!allows(&["http://a.dev"], "http://a.dev:8080/"));
        assert!(allows(&["http://a.dev:*"], "http://a.dev:8080/"));
        assert!(allows(&["*://*:*"], "http://anything:1/"));
        // Domains are lowercased on both sides.
        assert!(allows(&["http://A.dev"], "http://a.DEV/"));
    }

    #[test]
    fn subdomain_wildcards_need_a_subdomain() {
        let entries = ["http://*.example.com", "http://*.example2.com:8383"];
        assert!(allows(&entries, "http://a.example.com/foo"));
        assert!(allows(&entries, "http://a.b.example.com/foo"));
        assert!(allows(&entries, "http://a.b.example2.com:8383/foo"));
        assert!(!allows(&entries, "http://a.b.example2.com/foo"));
        assert!(!allows(&entries, "http://example.com/foo"));
        assert!(!allows(&entries, "http://myexample.com/foo"));
        // The suffix is not normalised: an upper-case entry never matches.
        assert!(!allows(&["http://*.Example.com"], "http://a.example.com/"));
    }

    #[test]
    fn hosts_compare_as_text_without_dns() {
        assert!(!allows(&["http://localhost"], "http://127.0.0.1/"));
        assert!(!allows(&["http://127.0.0.1"], "http://localhost/"));
        assert!(allows(&["http://localhost:3001"], "http://localhost:3001/"));
        // A CIDR matches IP literals only, never a domain.
        let net = ["*://127.0.0.0/8:*"];
        assert!(allows(&net, "http://127.1.2.3:9/"));
        assert!(!allows(&net, "http://128.0.0.1:9/"));
        assert!(!allows(&net, "http://localhost:9/"));
        assert!(!allows(&net, "http://[::1]:9/"));
        assert!(allows(&["*://127.0.0.1/24:63551"], "tcp://127.0.0.1:63551"));
        assert!(allows(&["*://::/0:*"], "http://[::1]:9/"));
        // Literal IPv4 and domains never match each other.
        assert!(!allows(&["http://*.0.0.1"], "http://127.0.0.1/"));
    }

    #[test]
    fn self_requests_ignore_the_port() {
        let list = |entries: &[&str]| AllowList(entries.iter().map(|e| parse(e)).collect());
        assert!(list(&["http://self"]).allows_self());
        assert!(list(&["https://self.alt:9"]).allows_self());
        assert!(list(&["*://*:*"]).allows_self());
        assert!(list(&["http://*:1234"]).allows_self());
        assert!(!list(&["tcp://self:1"]).allows_self());
        assert!(!list(&["http://localhost"]).allows_self());
        assert!(!list(&[]).allows_self());
        // And a `self` entry allows no URL, not even `http://self`.
        assert!(!allows(&["http://self"], "http://self/"));
    }

    #[test]
    fn urls_are_parsed_like_spin() {
        let url =
            OutboundUrl::parse("https://user:pw@example.com/file@0.1.0.json", "https").unwrap();
        assert_eq!(url.authority(), "example.com");
        let url = OutboundUrl::parse("https://example.com:443/", "https").unwrap();
        assert_eq!(url.authority(), "example.com");
        let url = OutboundUrl::parse("https://example.com:8443/", "https").unwrap();
        assert_eq!(url.authority(), "example.com:8443");
        let url = OutboundUrl::parse("http://[::1]:8001/", "https").unwrap();
        assert_eq!(url.authority(), "[::1]:8001");
    }

    fn prepared(pairs: &[(&str, Option<&str>)], runtime: &[(&str, &str)]) -> PreparedVariables {
        let mut text =
            String::from("spin_manifest_version = 2\n[application]\nname = \"t\"\n[variables]\n");
        for (name, default) in pairs {
            match default {
                Some(value) => text.push_str(&format!("{name} = {{ default = {value:?} }}\n")),
                None => text.push_str(&format!("{name} = {{ required = true }}\n")),
            }
        }
        let manifest = crate::manifest::Manifest::parse(&text, Default::default()).unwrap();
        let runtime = runtime
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Resolver::new(&manifest, runtime, Default::default())
            .unwrap()
            .prepare()
            .unwrap()
    }

    #[test]
    fn templated_entries_resolve_at_run_time() {
        let rules = OutboundRules::parse(&["https://{{ host }}:{{port}}", "http://fixed.dev"], &[])
            .unwrap();
        let list = rules
            .resolve(&prepared(
                &[("host", Some("a.dev")), ("port", None)],
                &[("port", "8443")],
            ))
            .unwrap();
        assert_eq!(
            list.entries(),
            &[
                rule(exact("https"), literal("a.dev"), PortRule::Port(8443)),
                rule(exact("http"), literal("fixed.dev"), PortRule::Port(80)),
            ]
        );
    }

    #[test]
    fn one_failing_entry_fails_the_whole_list() {
        let rules = OutboundRules::parse(&["http://fixed.dev", "https://{{ host }}"], &[]).unwrap();
        let error = rules
            .resolve(&prepared(&[("host", None)], &[("host", "a.dev/path")]))
            .unwrap_err();
        assert_eq!(
            format!("{error:#}"),
            "Invalid allowed host \"a.dev/path\": must not include a path"
        );
        // A name that is no app variable fails at run time only.
        let rules = OutboundRules::parse(&["https://{{ Nope }}"], &[]).unwrap();
        let error = rules.resolve(&prepared(&[], &[])).unwrap_err();
        assert_eq!(error.to_string(), "invalid variable name: Nope");
        // One variable cannot expand to two hosts.
        let rules = OutboundRules::parse(&["{{ hosts }}"], &[]).unwrap();
        let error = rules
            .resolve(&prepared(
                &[("hosts", Some("https://a.com,https://b.com"))],
                &[],
            ))
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("has a path but is not allowed to"),
            "{error:#}"
        );
    }

    #[test]
    fn templates_are_validated_at_load_with_defaults_only() {
        let defaults = |name: &str| match name {
            "good" => Some("a.dev".to_string()),
            "bad" => Some("a.dev/x".to_string()),
            _ => None,
        };
        let check = |entry: &str| {
            OutboundRules::parse(&[entry], &[])
                .unwrap()
                .validate_defaults(defaults)
        };
        check("https://{{ good }}").unwrap();
        // A variable without a default (or an unknown one) skips the check.
        check("https://{{ required }}/x/{{ bad }}").unwrap();
        let error = check("https://{{bad}}").unwrap_err();
        assert_eq!(
            format!("{error:#}"),
            "using default variable value(s) with template \"https://{{ bad }}\" results in \
             invalid config \"https://a.dev/x\": Invalid allowed host \"a.dev/x\": must not \
             include a path"
        );
        // An unterminated template is an error at once.
        let error = OutboundRules::parse(&["https://{{ x"], &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid variable template: unmatched '{{' in template"
        );
    }

    #[test]
    fn wildcard_service_chaining_expands_to_every_component() {
        let ids = vec!["first".to_string(), "second".to_string()];
        let rules =
            OutboundRules::parse(&["http://*.spin.internal", "https://a.dev"], &ids).unwrap();
        let list = rules.resolve(&PreparedVariables::default()).unwrap();
        let hosts: Vec<_> = list.entries().iter().map(|e| e.host().clone()).collect();
        assert_eq!(
            hosts,
            vec![
                literal("first.spin.internal"),
                literal("second.spin.internal"),
                literal("a.dev")
            ]
        );
    }

    #[test]
    fn allowed_http_hosts_convert_as_spin_does() {
        assert_eq!(
            convert_allowed_http_hosts(&["a.dev", "b.dev:8080", "https://c.dev", "self"]).unwrap(),
            vec![
                "http://a.dev",
                "https://a.dev",
                "http://b.dev:8080",
                "https://b.dev:8080",
                "http://c.dev",
                "https://c.dev",
                "http://self"
            ]
        );
        assert_eq!(
            convert_allowed_http_hosts(&["a.dev", "insecure:allow-all"]).unwrap(),
            vec!["http://*:*", "https://*:*", "http://self"]
        );
        assert_eq!(
            convert_allowed_http_hosts(&["http://a.dev:80", "[::1]"]).unwrap(),
            vec![
                "http://a.dev",
                "https://a.dev",
                "http://[::1]",
                "https://[::1]"
            ]
        );
        let error = convert_allowed_http_hosts(&["ftp://a.dev", "a.dev/x"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "One or more allowed_http_hosts entries was invalid:\n\
             ftp://a.dev isn't a valid host or host:port string\n\
             a.dev/x contains a path, should be host and optional port only"
        );
        assert!(
            convert_allowed_http_hosts(&[] as &[&str])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn warnings_are_spins_two_lines() {
        assert_eq!(
            disallowed_warning("https", "a.dev:8443"),
            "Warning: A component tried to make an outbound network connection to disallowed \
             destination 'https://a.dev:8443'.\nTo allow this request, add \
             'allowed_outbound_hosts = [\"https://a.dev:8443\"]' to the manifest component \
             section.\n"
        );
        assert_eq!(
            disallowed_warning("http", "self"),
            "Warning: A component tried to make an HTTP request to its own app but it does not \
             have permission.\nTo allow this request, add 'allowed_outbound_hosts = \
             [\"http://self\"]' to the manifest component section.\n"
        );
    }

    #[test]
    fn the_host_header_drops_a_default_port() {
        let header = |uri: &str| host_header(&uri.parse().unwrap()).unwrap();
        assert_eq!(header("http://a.dev:80/x"), "a.dev");
        assert_eq!(header("https://a.dev:443/x"), "a.dev");
        assert_eq!(header("https://a.dev:80/x"), "a.dev:80");
        assert_eq!(header("http://127.0.0.1:3000/x"), "127.0.0.1:3000");
        assert_eq!(header("http://[::1]:3000/x"), "[::1]:3000");
    }

    #[test]
    fn the_sdks_placeholder_authority_is_a_valid_uri() {
        // wasmtime builds `https://:443/path` for an SDK request without a host; `prepare`
        // relies on it parsing with an empty host.
        let uri: http::Uri = "https://:443/p?q".parse().unwrap();
        assert_eq!(uri.authority().map(|a| a.host()), Some(""));
    }
}
