//! The `spin-*` request headers Spin adds for the guest (Spin's trigger-http `headers.rs`).
//!
//! Client headers are kept as sent (including client-sent `spin-*` ones) and Spin's are
//! appended after them, so the guest sees both values, the client's first. wasi-http then drops
//! the forbidden headers (`host`, `connection`, …) when it builds the incoming request.

use crate::routing::RouteMatch;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::net::SocketAddr;

/// The `spin-*` headers for one routed request, in Spin's order.
///
/// `host` is the request's Host header (`localhost` if it has none), `path_and_query` the
/// original request target.
pub fn spin_headers(
    matched: &RouteMatch<'_>,
    host: &str,
    path_and_query: &str,
    client_addr: SocketAddr,
) -> Vec<(String, String)> {
    let route = matched.route;
    let mut headers = vec![
        ("spin-path-info".to_string(), matched.path_info.clone()),
        (
            "spin-full-url".to_string(),
            format!("http://{host}{path_and_query}"),
        ),
        ("spin-matched-route".to_string(), route.based.clone()),
        ("spin-base-path".to_string(), "/".to_string()),
        ("spin-raw-component-route".to_string(), route.raw.clone()),
        (
            "spin-component-route".to_string(),
            route.component_route().to_string(),
        ),
        ("spin-client-addr".to_string(), client_addr.to_string()),
    ];
    for (name, value) in &matched.params {
        headers.push((
            format!("spin-path-match-{}", name.replace('_', "-")),
            value.clone(),
        ));
    }
    headers
}

/// Appends `extra` to `headers` (never replacing a client-sent value).
pub fn append(headers: &mut HeaderMap, extra: Vec<(String, String)>) -> anyhow::Result<()> {
    for (name, value) in extra {
        headers.append(
            HeaderName::from_bytes(name.as_bytes())?,
            HeaderValue::from_str(&value)?,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::Router;

    #[test]
    fn headers_match_spins_own_example() {
        let router = Router::new([("/api/registries/:id/images/...", "images")]);
        let matched = router.route("/api/registries/42/images/a/b").unwrap();
        let headers = spin_headers(
            &matched,
            "127.0.0.1:3000",
            "/api/registries/42/images/a/b?x=1",
            "127.0.0.1:54321".parse().unwrap(),
        );
        let expected = [
            ("spin-path-info", "/a/b"),
            (
                "spin-full-url",
                "http://127.0.0.1:3000/api/registries/42/images/a/b?x=1",
            ),
            ("spin-matched-route", "/api/registries/:id/images/..."),
            ("spin-base-path", "/"),
            ("spin-raw-component-route", "/api/registries/:id/images/..."),
            ("spin-component-route", "/api/registries/:id/images"),
            ("spin-client-addr", "127.0.0.1:54321"),
            ("spin-path-match-id", "42"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(headers, expected);
    }

    #[test]
    fn param_names_use_dashes_and_ipv6_peers_are_bracketed() {
        let router = Router::new([("/r/:registry_id", "c")]);
        let matched = router.route("/r/9").unwrap();
        let headers = spin_headers(&matched, "h", "/r/9", "[::1]:5".parse().unwrap());
        assert!(headers.contains(&("spin-path-match-registry-id".into(), "9".into())));
        assert!(headers.contains(&("spin-client-addr".into(), "[::1]:5".into())));
    }

    #[test]
    fn append_keeps_client_values_first() {
        let mut headers = HeaderMap::new();
        headers.insert("spin-path-info", HeaderValue::from_static("client"));
        append(
            &mut headers,
            vec![("spin-path-info".into(), "/host".into())],
        )
        .unwrap();
        let values: Vec<&str> = headers
            .get_all("spin-path-info")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(values, vec!["client", "/host"]);
    }
}
