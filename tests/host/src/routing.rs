//! HTTP routing exactly as Spin 3.x/4.x does it (Spin's `routes` crate on top of routefinder
//! 0.5.4), as a pure function of the manifest's routes and a request path.
//!
//! - **Normalisation**: a leading `/` is added and ONE trailing `/` stripped (`/foo/` → `/foo`,
//!   `/` → `""`): the "based route". A `/...` (or `/*`) suffix is a trailing wildcard, a `:name`
//!   segment captures one path segment, anything else is exact.
//! - **Matching** uses the raw, percent-encoded path (no query); leading and trailing `/` of the
//!   path are trimmed, so `/foo/` and `/foo//` hit `/foo`. A `:name` may capture an empty segment
//!   (`/r//x`), and `%2F` stays encoded.
//! - **Precedence**: routes are compared segment by segment by *kind* only — exact > `:param` >
//!   wildcard — and the first differing kind decides; with no difference over the common length,
//!   fewer segments win; full ties keep manifest order. Hence `/a/b/...` beats `/a/:id/c`.
//! - **Duplicates** are keyed by the route string as written: the last trigger wins but keeps the
//!   first one's position (Spin inserts into an `IndexMap`).

use std::cmp::Ordering;

/// One routable entry of the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The route as written in the manifest.
    pub raw: String,
    /// The normalised route (`spin-matched-route`).
    pub based: String,
    /// The component this route runs.
    pub component: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Exact(String),
    Param(String),
    Wildcard,
}

impl Segment {
    /// Precedence of a segment kind: higher wins.
    fn rank(&self) -> u8 {
        match self {
            Segment::Exact(_) => 2,
            Segment::Param(_) => 1,
            Segment::Wildcard => 0,
        }
    }
}

/// The outcome of routing one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'r> {
    /// The winning route.
    pub route: &'r Route,
    /// `:name` captures, in route order.
    pub params: Vec<(String, String)>,
    /// `spin-path-info`: `""` without a wildcard remainder, `/` for `prefix/`, else `/rest`
    /// (keeping a trailing `/` of the path).
    pub path_info: String,
}

/// The routes of an application, sorted by precedence.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Builds a router from `(route as written, component)` pairs in manifest order; private
    /// routes must already be left out.
    pub fn new<'a>(triggers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Router {
        let mut routes: Vec<Route> = Vec::new();
        for (raw, component) in triggers {
            let route = Route::parse(raw, component);
            // Duplicate route text: the later trigger replaces the earlier one in place.
            match routes.iter_mut().find(|r| r.raw == raw) {
                Some(existing) => *existing = route,
                None => routes.push(route),
            }
        }
        // A stable sort keeps manifest order between routes of equal precedence.
        routes.sort_by(|a, b| precedence(&a.segments, &b.segments));
        Router { routes }
    }

    /// The routes in precedence order (the first matching one wins).
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Finds the route for a raw request path (no query string).
    pub fn route(&self, path: &str) -> Option<RouteMatch<'_>> {
        let trimmed = path.trim_matches('/');
        let segments: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        self.routes.iter().find_map(|route| {
            route
                .matches(&segments, path.ends_with('/'))
                .map(|(params, path_info)| RouteMatch {
                    route,
                    params,
                    path_info,
                })
        })
    }
}

/// Orders two routes: `Less` means `a` is tried first.
fn precedence(a: &[Segment], b: &[Segment]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        match y.rank().cmp(&x.rank()) {
            Ordering::Equal => continue,
            decided => return decided,
        }
    }
    a.len().cmp(&b.len())
}

impl Route {
    fn parse(raw: &str, component: &str) -> Route {
        let absolute = if raw.starts_with('/') {
            raw.to_string()
        } else {
            format!("/{raw}")
        };
        let based = absolute
            .strip_suffix('/')
            .map(str::to_string)
            .unwrap_or(absolute);
        let (prefix, wildcard) = match based
            .strip_suffix("/...")
            .or_else(|| based.strip_suffix("/*"))
        {
            Some(prefix) => (prefix, true),
            None => (based.as_str(), false),
        };
        let trimmed = prefix.trim_matches('/');
        let mut segments: Vec<Segment> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed
                .split('/')
                .map(|segment| match segment.strip_prefix(':') {
                    Some(name) => Segment::Param(name.to_string()),
                    None => Segment::Exact(segment.to_string()),
                })
                .collect()
        };
        if wildcard {
            segments.push(Segment::Wildcard);
        }
        Route {
            raw: raw.to_string(),
            based,
            component: component.to_string(),
            segments,
        }
    }

    /// Matches path segments; returns the captures and `spin-path-info`.
    fn matches(
        &self,
        path: &[&str],
        path_ends_with_slash: bool,
    ) -> Option<(Vec<(String, String)>, String)> {
        let mut params = Vec::new();
        for (index, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Wildcard => {
                    let rest = path[index.min(path.len())..].join("/");
                    let path_info = match (rest.is_empty(), path_ends_with_slash) {
                        (true, false) => String::new(),
                        (true, true) => "/".to_string(),
                        (false, false) => format!("/{rest}"),
                        (false, true) => format!("/{rest}/"),
                    };
                    return Some((params, path_info));
                }
                Segment::Exact(expected) => {
                    if path.get(index) != Some(&expected.as_str()) {
                        return None;
                    }
                }
                Segment::Param(name) => {
                    params.push((name.clone(), path.get(index)?.to_string()));
                }
            }
        }
        (path.len() == self.segments.len()).then_some((params, String::new()))
    }

    /// `spin-component-route`: the raw route minus a trailing `/...`.
    pub fn component_route(&self) -> &str {
        self.raw.strip_suffix("/...").unwrap_or(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[&str]) -> Router {
        Router::new(routes.iter().map(|r| (*r, *r)))
    }

    type Captures = Vec<(String, String)>;

    /// (matched raw route, path-info, captures) for `path`.
    fn hit(router: &Router, path: &str) -> Option<(String, String, Captures)> {
        router
            .route(path)
            .map(|m| (m.route.raw.clone(), m.path_info, m.params))
    }

    fn id(value: &str) -> Captures {
        vec![("id".to_string(), value.to_string())]
    }

    #[test]
    fn the_verified_registry_examples_route_as_spin_does() {
        let r = router(&[
            "/...",
            "/api/registries/...",
            "/api/registries/:id/images/...",
            "/api/registries/:id",
        ]);
        let cases: &[(&str, &str, &str, Captures)] = &[
            (
                "/api/registries/7/images/x/y",
                "/api/registries/:id/images/...",
                "/x/y",
                id("7"),
            ),
            (
                "/api/registries/7/images",
                "/api/registries/:id/images/...",
                "",
                id("7"),
            ),
            ("/api/registries/7", "/api/registries/:id", "", id("7")),
            ("/api/registries/7/x", "/api/registries/...", "/7/x", vec![]),
            ("/api/registries", "/api/registries/...", "", vec![]),
            ("/api/registriesX", "/...", "/api/registriesX", vec![]),
        ];
        for (path, route, path_info, params) in cases {
            assert_eq!(
                hit(&r, path),
                Some((route.to_string(), path_info.to_string(), params.clone())),
                "{path}"
            );
        }
    }

    #[test]
    fn without_the_param_route_the_wildcard_takes_the_id() {
        let r = router(&[
            "/...",
            "/api/registries/...",
            "/api/registries/:id/images/...",
        ]);
        assert_eq!(
            hit(&r, "/api/registries/7"),
            Some(("/api/registries/...".into(), "/7".into(), vec![]))
        );
    }

    #[test]
    fn an_exact_prefix_wildcard_beats_a_param_with_a_longer_match() {
        // The trap: the first differing segment kind decides (exact `b` > `:id`).
        let r = router(&["/a/:id/c", "/a/b/..."]);
        assert_eq!(hit(&r, "/a/b/c").unwrap().0, "/a/b/...");
        assert_eq!(hit(&r, "/a/x/c").unwrap().0, "/a/:id/c");
    }

    #[test]
    fn exact_beats_wildcard_and_the_longest_wildcard_prefix_wins() {
        let r = router(&["/...", "/foo/...", "/foo/bar/...", "/foo"]);
        assert_eq!(hit(&r, "/foo").unwrap().0, "/foo");
        assert_eq!(hit(&r, "/foo/x").unwrap().0, "/foo/...");
        assert_eq!(hit(&r, "/foo/bar").unwrap().0, "/foo/bar/...");
        assert_eq!(hit(&r, "/foo/bar/baz").unwrap().0, "/foo/bar/...");
        assert_eq!(hit(&r, "/").unwrap().0, "/...");
        assert_eq!(hit(&r, "/fooo").unwrap().0, "/...");
    }

    #[test]
    fn trailing_slashes_of_the_path_are_ignored_for_matching() {
        let r = router(&["/foo"]);
        for path in ["/foo", "/foo/", "/foo//"] {
            assert_eq!(hit(&r, path).unwrap().0, "/foo", "{path}");
        }
        assert_eq!(hit(&r, "/foo/x"), None);
    }

    #[test]
    fn route_normalisation_strips_one_trailing_slash_and_adds_a_leading_one() {
        let r = router(&["foo/", "/"]);
        assert_eq!(r.routes()[0].based, "");
        assert_eq!(r.routes()[1].based, "/foo");
        assert_eq!(hit(&r, "/foo").unwrap().0, "foo/");
        assert_eq!(hit(&r, "/").unwrap().0, "/");
        assert_eq!(hit(&r, "/bar"), None);
    }

    #[test]
    fn wildcard_path_info_keeps_the_trailing_slash() {
        let r = router(&["/x/..."]);
        assert_eq!(hit(&r, "/x").unwrap().1, "");
        assert_eq!(hit(&r, "/x/").unwrap().1, "/");
        assert_eq!(hit(&r, "/x/a/b").unwrap().1, "/a/b");
        assert_eq!(hit(&r, "/x/a/b/").unwrap().1, "/a/b/");
        assert_eq!(hit(&r, "/xy"), None);
    }

    #[test]
    fn a_param_may_be_empty_and_stays_percent_encoded() {
        let r = router(&["/r/:id/images/..."]);
        assert_eq!(hit(&r, "/r//images/x").unwrap().2, id(""));
        assert_eq!(hit(&r, "/r/a%2Fb/images").unwrap().2, id("a%2Fb"));
    }

    #[test]
    fn ties_keep_manifest_order() {
        let r = Router::new([("/a/:x", "first"), ("/a/:y", "second")]);
        assert_eq!(r.route("/a/1").unwrap().route.component, "first");
        let r = Router::new([("/foo", "first"), ("/foo/", "second")]);
        assert_eq!(r.route("/foo").unwrap().route.component, "first");
    }

    #[test]
    fn a_duplicate_route_is_won_by_the_last_trigger() {
        let r = Router::new([("/a/:x", "first"), ("/a/:y", "second"), ("/a/:x", "third")]);
        assert_eq!(r.routes().len(), 2);
        // The replacement keeps the position of the route it replaced.
        assert_eq!(r.route("/a/1").unwrap().route.component, "third");
    }

    #[test]
    fn fewer_segments_first_when_kinds_agree() {
        let r = router(&["/a/:x/...", "/a/:x"]);
        assert_eq!(hit(&r, "/a/1").unwrap().0, "/a/:x");
        assert_eq!(hit(&r, "/a/1/2").unwrap().0, "/a/:x/...");
    }

    #[test]
    fn component_route_drops_the_wildcard_suffix() {
        let r = router(&["/...", "/a/:id/..."]);
        let routes: Vec<&str> = r.routes().iter().map(Route::component_route).collect();
        assert_eq!(routes, vec!["/a/:id", ""]);
    }
}
