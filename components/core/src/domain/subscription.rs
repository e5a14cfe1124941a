//! Deploy triggers: a registry's subscriptions, the events they hear, where they are sent,
//! and when a failed delivery is tried again.

use crate::Error;

use super::ids::SubscriptionId;
use super::{Channel, OrgId, RegistryId, Timestamp};

/// What happened, as a delivery's `type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    /// A pipeline (or a push of an unknown tag) recorded an image with its version.
    ImageCreated,
    /// A registry reported a push of an image's tag (its digest and time).
    ImagePushed,
    /// An image reached an app environment.
    DeploymentRecorded,
}

impl EventType {
    pub(crate) const ALL: [EventType; 3] = [
        EventType::ImageCreated,
        EventType::ImagePushed,
        EventType::DeploymentRecorded,
    ];

    pub(crate) fn parse(field: &str, value: &str) -> Result<EventType, Error> {
        EventType::ALL
            .into_iter()
            .find(|e| e.as_str() == value)
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    "must be image.created, image.pushed or deployment.recorded",
                )
            })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventType::ImageCreated => "image.created",
            EventType::ImagePushed => "image.pushed",
            EventType::DeploymentRecorded => "deployment.recorded",
        }
    }
}

/// A subscription's events: at least one, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Events(Vec<EventType>);

impl Events {
    pub(crate) fn parse(field: &str, values: &[String]) -> Result<Events, Error> {
        let mut events = Vec::new();
        for (index, value) in values.iter().enumerate() {
            let event = EventType::parse(&format!("{field}[{index}]"), value)?;
            if events.contains(&event) {
                return Err(Error::invalid(field, format!("lists {value} twice")));
            }
            events.push(event);
        }
        if events.is_empty() {
            return Err(Error::invalid(field, "must name at least one event"));
        }
        Ok(Events(events))
    }

    pub(crate) fn as_slice(&self) -> &[EventType] {
        &self.0
    }
}

/// Where deliveries go: `https`, or `http` to a loopback host (development), inside the
/// deployment's outbound rule. Spin refuses a request outside `allowed_outbound_hosts` only
/// when it is sent; checking the same rule here makes a URL that could never be delivered a
/// 422 when the subscription is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubscriptionUrl(String);

impl SubscriptionUrl {
    pub(crate) const MAX_LEN: usize = 2048;

    pub(crate) fn parse(field: &str, value: &str, rule: &OutboundRule) -> Result<Self, Error> {
        if value.len() > Self::MAX_LEN {
            return Err(Error::invalid(field, "must be at most 2048 characters"));
        }
        super::check_printable(field, value)?;
        let uri: http::Uri = value
            .parse()
            .map_err(|_| Error::invalid(field, "must be an absolute http(s) URL"))?;
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return Err(Error::invalid(field, "must be an absolute http(s) URL"));
        };
        let loopback = is_loopback(host);
        match scheme {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(Error::invalid(
                    field,
                    "must be https (http only to a loopback host, for development)",
                ));
            }
            _ => return Err(Error::invalid(field, "must be an absolute http(s) URL")),
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(Error::invalid(field, "must not carry credentials"));
        }
        if matches!(rule.host, HostPattern::Any) && is_internal(host) {
            // Deliveries are made by the server, from inside its network: a wildcard rule
            // must not let any org's writer point them at (and probe) internal services.
            return Err(Error::invalid(
                field,
                format!(
                    "{host} is an internal address: name it in webhook_allowed_hosts to send there"
                ),
            ));
        }
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        if !rule.allows(scheme, host, port) {
            return Err(Error::invalid(
                field,
                format!(
                    "{scheme}://{host}:{port} is outside the deployment's outbound rule ({}): \
                     Spin would refuse to send there (set webhook_allowed_hosts)",
                    rule.as_str()
                ),
            ));
        }
        Ok(SubscriptionUrl(value.to_owned()))
    }

    pub(crate) fn from_stored(value: String) -> SubscriptionUrl {
        SubscriptionUrl(value)
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// A host only the server's own network reaches: a private, loopback, link-local, shared
/// (CGNAT) or unspecified address, a single-label name, or a cluster-internal domain.
fn is_internal(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return match ip {
            std::net::IpAddr::V4(v4) => {
                v4.is_private()
                    || v4.is_loopback()
                    || v4.is_link_local()
                    || v4.is_unspecified()
                    || v4.is_broadcast()
                    // 100.64.0.0/10, shared address space (carrier-grade NAT).
                    || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
            }
            std::net::IpAddr::V6(v6) => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    // fc00::/7 unique local, fe80::/10 link-local.
                    || (v6.segments()[0] & 0xfe00) == 0xfc00
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
                    || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(&v4.to_string()))
            }
        };
    }
    let name = bare.trim_end_matches('.').to_ascii_lowercase();
    !name.contains('.')
        || [
            ".svc",
            ".internal",
            ".local",
            ".localhost",
            ".cluster.local",
            ".localdomain",
        ]
        .iter()
        .any(|suffix| name.ends_with(suffix))
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The one `allowed_outbound_hosts` entry deliveries go through (`{{ webhook_allowed_hosts }}`
/// in `spin.toml`), read with Spin's rules for the forms a webhook rule takes:
/// `scheme://host[:port]` where the scheme is a word or `*`, the host `*`, `*.suffix` or a
/// literal, and the port empty (the scheme's own), `*`, `N` or `A..B` (B excluded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutboundRule {
    text: String,
    scheme: Option<String>,
    host: HostPattern,
    ports: PortPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.example.com`: the suffix `.example.com`.
    Suffix(String),
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    Range(u16, u16),
}

impl OutboundRule {
    /// Spin's default when the variable is unset: any https host on its port.
    pub(crate) const DEFAULT: &'static str = "https://*:443";

    pub(crate) fn parse(value: &str) -> Result<OutboundRule, String> {
        let text = value.trim();
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("{text:?} has no scheme (e.g. https://*.example.com)"))?;
        let scheme = match scheme {
            "*" => None,
            word if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphabetic()) => {
                Some(word.to_owned())
            }
            _ => return Err(format!("{text:?}: the scheme must be a word or *")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        };
        let host = match host {
            "*" => HostPattern::Any,
            _ if host.is_empty() || host.contains(['/', '{', '}']) => {
                return Err(format!("{text:?}: not a host"));
            }
            _ if host.starts_with("*.") && !host[2..].contains('*') => {
                HostPattern::Suffix(host[1..].to_ascii_lowercase())
            }
            _ if host.contains('*') => {
                return Err(format!("{text:?}: * may only start a host (*.example.com)"));
            }
            _ => HostPattern::Exact(host.to_ascii_lowercase()),
        };
        let ports = match port {
            None | Some("") => {
                let known = match scheme.as_deref() {
                    Some("http") => 80,
                    Some("https") => 443,
                    _ => {
                        return Err(format!(
                            "{text:?}: no port was provided and the scheme has no default port"
                        ));
                    }
                };
                PortPattern::Range(known, known + 1)
            }
            Some("*") => PortPattern::Any,
            Some(range) if range.contains("..") => {
                let (from, to) = range.split_once("..").unwrap_or_default();
                match (from.parse::<u16>(), to.parse::<u16>()) {
                    (Ok(from), Ok(to)) if from < to => PortPattern::Range(from, to),
                    _ => return Err(format!("{text:?}: not a port range")),
                }
            }
            Some(port) => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| format!("{text:?}: not a port"))?;
                PortPattern::Range(port, port.saturating_add(1))
            }
        };
        Ok(OutboundRule {
            text: text.to_owned(),
            scheme,
            host,
            ports,
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether Spin would let a request to `scheme://host:port` through this rule.
    pub(crate) fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.scheme.as_deref().is_none_or(|s| s == scheme)
            && match &self.host {
                HostPattern::Any => true,
                HostPattern::Suffix(suffix) => host.ends_with(suffix.as_str()),
                HostPattern::Exact(exact) => *exact == host,
            }
            && match self.ports {
                PortPattern::Any => true,
                PortPattern::Range(from, to) => (from..to).contains(&port),
            }
    }
}

/// A registry's subscription.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Subscription {
    pub(crate) subscription_id: SubscriptionId,
    pub(crate) registry_id: RegistryId,
    pub(crate) org_id: OrgId,
    pub(crate) url: SubscriptionUrl,
    pub(crate) events: Events,
    /// Image events of this channel only.
    pub(crate) channel: Option<Channel>,
    pub(crate) active: bool,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
}

/// How many times a delivery is sent at most.
pub(crate) const MAX_ATTEMPTS: i64 = 8;

/// The wait after failed attempt `n` (1-based) before the next: about a day from the first to
/// the eighth (1 min, 5 min, 15 min, 1 h, 2 h, 6 h, 14 h).
pub(crate) fn retry_delay(attempt: i64) -> Option<std::time::Duration> {
    const MINUTES: [u64; 7] = [1, 5, 15, 60, 120, 360, 840];
    usize::try_from(attempt - 1)
        .ok()
        .and_then(|index| MINUTES.get(index))
        .map(|minutes| std::time::Duration::from_secs(minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> OutboundRule {
        OutboundRule::parse(text).unwrap()
    }

    #[test]
    fn outbound_rules_match_as_spin_matches_them() {
        let https = rule("https://*:443");
        assert!(https.allows("https", "flux.example.com", 443));
        assert!(!https.allows("https", "flux.example.com", 8443));
        assert!(!https.allows("http", "flux.example.com", 443));
        let suffix = rule("https://*.example.com");
        assert!(suffix.allows("https", "a.b.example.com", 443));
        assert!(!suffix.allows("https", "example.com", 443));
        assert!(!suffix.allows("https", "badexample.com", 443));
        let local = rule("http://127.0.0.1:8000..9000");
        assert!(local.allows("http", "127.0.0.1", 8000));
        assert!(local.allows("http", "127.0.0.1", 8999));
        assert!(!local.allows("http", "127.0.0.1", 9000));
        assert!(
            !local.allows("http", "localhost", 8080),
            "no DNS, text only"
        );
        assert!(rule("*://*:*").allows("http", "anything", 1));
        for bad in [
            "*",
            "example.com",
            "https://a*b.com",
            "*://host",
            "https://h:x",
            "https://h:9..1",
        ] {
            assert!(OutboundRule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subscription_urls_are_https_or_loopback_http_inside_the_rule() {
        let any = rule("*://*:*");
        assert!(SubscriptionUrl::parse("url", "https://flux.example.com/hook/abc", &any).is_ok());
        // Loopback http, for development, when the rule names the host.
        for (ok, rule_text) in [
            ("http://127.0.0.1:9292/hook", "http://127.0.0.1:*"),
            ("http://localhost:8080/", "http://localhost:8080"),
            ("https://flux.flux-system.svc/hook", "https://*.svc"),
        ] {
            assert!(
                SubscriptionUrl::parse("url", ok, &rule(rule_text)).is_ok(),
                "{ok}"
            );
        }
        // A wildcard rule does not reach into the server's own network.
        for internal in [
            "http://127.0.0.1:9292/hook",
            "https://10.0.0.5/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://kubernetes/",
            "https://kubernetes.default.svc/",
            "https://metadata.google.internal/",
            "https://0.0.0.0/",
        ] {
            assert!(
                SubscriptionUrl::parse("url", internal, &any).is_err(),
                "{internal}"
            );
        }
        for bad in [
            "http://flux.example.com/hook",
            "ftp://flux.example.com/",
            "/relative",
            "https://user:pw@flux.example.com/",
            "https://flux.example.com/\u{202e}",
        ] {
            assert!(SubscriptionUrl::parse("url", bad, &any).is_err(), "{bad}");
        }
        let only = rule("https://*.example.com");
        assert!(SubscriptionUrl::parse("url", "https://flux.example.com/x", &only).is_ok());
        let outside = SubscriptionUrl::parse("url", "https://flux.example.org/x", &only);
        assert!(matches!(outside, Err(Error::Invalid { .. })));
    }

    #[test]
    fn retries_spread_over_about_a_day_and_stop_at_eight_attempts() {
        let total: u64 = (1..MAX_ATTEMPTS)
            .map(|n| retry_delay(n).unwrap().as_secs())
            .sum();
        assert!((20 * 3600..28 * 3600).contains(&total), "{total}");
        assert_eq!(retry_delay(MAX_ATTEMPTS), None);
    }
}
