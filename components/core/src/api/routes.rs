//! The API, as data: for each component, every (method, path, access, handler).
//!
//! The router matches paths from these tables (with `matchit`, axum's router), derives the
//! `Allow` header of a 405 from the methods a path has, and answers 404 for a path no row
//! names. The end-to-end probes and the route-agreement test read the same tables, so a route
//! cannot exist in one place and be forgotten in another. The tables are left unformatted by
//! rustfmt so that each route stays one line.

use std::sync::OnceLock;

use http::{Method, Response};

use crate::domain::Role;
use crate::error::Error;

use super::{
    BASE_PATH, Context, channels, deployments, dora, failures, gitlab_dora, health, hooks, images,
    receivers, registries, settings, subscriptions, tokens,
};

/// What a handler does with a request it was routed.
pub(crate) type Handler = fn(&Context<'_>) -> Result<Response<Vec<u8>>, Error>;

/// The Spin components: each serves its own table and nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Registry,
    Images,
    LeadTime,
}

impl Component {
    pub const ALL: [Component; 3] = [Component::Registry, Component::Images, Component::LeadTime];

    /// The component's id in `spin.toml`.
    pub fn id(self) -> &'static str {
        match self {
            Component::Registry => "registry",
            Component::Images => "images",
            Component::LeadTime => "lead-time",
        }
    }

    /// The component's routes.
    pub fn routes(self) -> &'static [Route] {
        self.table().routes
    }

    /// The component's table. Each entry point names its own table's static directly, so a
    /// component's `.wasm` links only its own handlers.
    fn table(self) -> &'static Table {
        match self {
            Component::Registry => &REGISTRY_TABLE,
            Component::Images => &IMAGES_TABLE,
            Component::LeadTime => &LEAD_TIME_TABLE,
        }
    }
}

/// A component's routes and the router built from them on first use.
pub(crate) struct Table {
    routes: &'static [Route],
    router: OnceLock<Router>,
}

pub(crate) static REGISTRY_TABLE: Table = Table {
    routes: REGISTRY,
    router: OnceLock::new(),
};
pub(crate) static IMAGES_TABLE: Table = Table {
    routes: IMAGES,
    router: OnceLock::new(),
};
pub(crate) static LEAD_TIME_TABLE: Table = Table {
    routes: LEAD_TIME,
    router: OnceLock::new(),
};

/// Who may call a route, and what a handler's org checks ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, with or without a token (health).
    Anyone,
    /// A read token of the org, or no token at all for a public registry's rows.
    PublicOrRead,
    /// A token of the org with at least this role.
    Org(Role),
    /// Only the bootstrap admin (answers that span orgs).
    BootstrapAdmin,
    /// A container registry delivering a push: no token; the handler checks the receiver's
    /// secret the way the receiver's source sends it.
    Sender,
}

impl Access {
    /// The role a caller's token needs.
    pub(crate) fn role(self) -> Role {
        match self {
            Access::Anyone | Access::PublicOrRead | Access::Sender => Role::Read,
            Access::Org(role) => role,
            Access::BootstrapAdmin => Role::Admin,
        }
    }
}

/// One route: a method on a path pattern (relative to `/api/v1`, `{name}` for a segment).
pub struct Route {
    method: Method,
    path: &'static str,
    access: Access,
    handler: Handler,
}

impl Route {
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path pattern as `openapi.yaml` writes it, e.g. `/registries/{registry_id}`.
    pub fn path(&self) -> &'static str {
        self.path
    }

    pub fn access(&self) -> Access {
        self.access
    }
}

const fn route(method: Method, path: &'static str, access: Access, handler: Handler) -> Route {
    Route {
        method,
        path,
        access,
        handler,
    }
}

use Access::{Anyone, BootstrapAdmin, Org, PublicOrRead, Sender};
use Method as M;

/// Spin sends the registry component `/api/v1/registries/...`, `/api/v1/tokens/...` and its
/// health route (`spin.toml`). Methods of one path are listed in the `Allow` order.
#[rustfmt::skip]
static REGISTRY: &[Route] = &[
    route(M::GET, "/health/registry", Anyone, health::registry),
    route(M::GET, "/tokens", Org(Role::Admin), tokens::list),
    route(M::POST, "/tokens", Org(Role::Admin), tokens::create),
    route(M::GET, "/tokens/{token_id}", Org(Role::Admin), tokens::get),
    route(M::DELETE, "/tokens/{token_id}", Org(Role::Admin), tokens::revoke),
    route(M::GET, "/registries", Org(Role::Read), registries::list),
    route(M::POST, "/registries", Org(Role::Write), registries::create),
    route(M::GET, "/registries/{registry_id}", PublicOrRead, registries::get),
    route(M::PATCH, "/registries/{registry_id}", Org(Role::Write), registries::update),
    route(M::DELETE, "/registries/{registry_id}", Org(Role::Admin), registries::delete),
    route(M::GET, "/registries/{registry_id}/channels", PublicOrRead, channels::list),
    route(M::GET, "/registries/{registry_id}/channels/{channel}", PublicOrRead, channels::get),
    route(M::GET, "/registries/{registry_id}/receivers", Org(Role::Read), receivers::list),
    route(M::POST, "/registries/{registry_id}/receivers", Org(Role::Write), receivers::create),
    route(M::GET, "/registries/{registry_id}/receivers/{receiver_id}", Org(Role::Read), receivers::get),
    route(M::DELETE, "/registries/{registry_id}/receivers/{receiver_id}", Org(Role::Write), receivers::delete),
    route(M::GET, "/registries/{registry_id}/subscriptions", Org(Role::Read), subscriptions::list),
    route(M::POST, "/registries/{registry_id}/subscriptions", Org(Role::Write), subscriptions::create),
    route(M::GET, "/registries/{registry_id}/subscriptions/{subscription_id}", Org(Role::Read), subscriptions::get),
    route(M::PATCH, "/registries/{registry_id}/subscriptions/{subscription_id}", Org(Role::Write), subscriptions::update),
    route(M::DELETE, "/registries/{registry_id}/subscriptions/{subscription_id}", Org(Role::Write), subscriptions::delete),
    route(M::GET, "/registries/{registry_id}/subscriptions/{subscription_id}/deliveries", Org(Role::Read), subscriptions::deliveries),
    route(M::POST, "/registries/{registry_id}/subscriptions/{subscription_id}/deliveries/{delivery_id}/redeliver", Org(Role::Write), subscriptions::redeliver),
    route(M::PUT, "/registries/{registry_id}/channels/{channel}", Org(Role::Write), channels::get_or_create),
    route(M::POST, "/registries/{registry_id}/channels/{channel}/bump", Org(Role::Write), channels::bump),
    route(M::PUT, "/registries/{registry_id}/channels/{channel}/version", Org(Role::Write), channels::set_version),
];

/// Spin sends the images component `/api/v1/registries/:registry_id/images/...`,
/// `/api/v1/images/...`, `/api/v1/hooks/...` (registry pushes change images) and its health
/// route.
#[rustfmt::skip]
static IMAGES: &[Route] = &[
    route(M::GET, "/health/images", Anyone, health::images),
    route(M::GET, "/images/inactive-orgs", BootstrapAdmin, images::inactive_orgs),
    route(M::GET, "/registries/{registry_id}/images", PublicOrRead, images::list),
    route(M::POST, "/registries/{registry_id}/images", Org(Role::Write), images::create),
    route(M::GET, "/registries/{registry_id}/images/{image_id}", PublicOrRead, images::get),
    route(M::PATCH, "/registries/{registry_id}/images/{image_id}", Org(Role::Write), images::update),
    route(M::POST, "/hooks/{receiver_id}", Sender, hooks::deliver),
    route(M::POST, "/hooks/{receiver_id}/{secret}", Sender, hooks::deliver),
];

/// Spin sends the lead-time component `/api/v1/deployments/...`, `/api/v1/dora/...` and its
/// health route.
#[rustfmt::skip]
static LEAD_TIME: &[Route] = &[
    route(M::GET, "/health/lead-time", Anyone, health::lead_time),
    route(M::GET, "/deployments", Org(Role::Read), deployments::list),
    route(M::POST, "/deployments", Org(Role::Write), deployments::record),
    route(M::GET, "/deployments/{lead_time_id}", Org(Role::Read), deployments::get),
    route(M::PATCH, "/deployments/{lead_time_id}", Org(Role::Write), deployments::update),
    route(M::GET, "/settings", Org(Role::Admin), settings::get),
    route(M::PUT, "/settings", Org(Role::Admin), settings::put),
    route(M::GET, "/failures", Org(Role::Read), failures::list),
    route(M::POST, "/failures", Org(Role::Write), failures::report),
    route(M::GET, "/failures/{failure_id}", Org(Role::Read), failures::get),
    route(M::PATCH, "/failures/{failure_id}", Org(Role::Write), failures::update),
    route(M::GET, "/dora/lead-time", Org(Role::Read), dora::lead_time),
    route(M::GET, "/dora/deployment-frequency", Org(Role::Read), dora::deployment_frequency),
    route(M::GET, "/dora/change-failure-rate", Org(Role::Read), dora::change_failure_rate),
    route(M::GET, "/dora/recovery-time", Org(Role::Read), dora::recovery_time),
    route(M::GET, "/dora/rework-rate", Org(Role::Read), dora::rework_rate),
    route(M::GET, "/dora/summary", Org(Role::Read), dora::summary),
    route(M::GET, "/dora/metrics", Org(Role::Read), gitlab_dora::metrics),
];

/// A component's paths, each with the indexes of its routes in the table.
type Router = matchit::Router<Vec<usize>>;

/// Of `tables`, the one whose routes hold `path` (after `/api/v1`), as `spin.toml` would send
/// it (no path is in two tables, the route tests check it); the first when none does (its
/// 404 or 405 is the answer).
pub(crate) fn table_of(tables: &[&'static Table], path: &str) -> &'static Table {
    match tables {
        // A component's own table: the table's `find` is the one lookup of the path.
        [only] => only,
        _ => tables
            .iter()
            .find(|table| table.router().at(path).is_ok())
            .or(tables.first())
            .copied()
            .unwrap_or(&LEAD_TIME_TABLE),
    }
}

/// Every component's table: what `cd_core::handle_api_request` serves.
pub(crate) fn every_table() -> [&'static Table; 3] {
    Component::ALL.map(Component::table)
}

impl Table {
    fn router(&self) -> &Router {
        self.router.get_or_init(|| {
            let mut paths: Vec<(&str, Vec<usize>)> = Vec::new();
            for (index, route) in self.routes.iter().enumerate() {
                match paths.iter_mut().find(|(path, _)| *path == route.path) {
                    Some((_, indexes)) => indexes.push(index),
                    None => paths.push((route.path, vec![index])),
                }
            }
            let mut router = Router::new();
            for (path, indexes) in paths {
                // The tables are constants checked by the tests: a conflict is a bug in this file.
                router
                    .insert(path, indexes)
                    .unwrap_or_else(|e| panic!("route {path}: {e}"));
            }
            router
        })
    }

    /// Finds the route of `method` on `path` (the path after `/api/v1`, trailing slashes
    /// dropped, as Spin matches them): 404 if no row has the path, 405 with the allowed methods
    /// if no row of the path has the method.
    pub(crate) fn find<'a>(
        &'static self,
        method: &Method,
        path: &'a str,
    ) -> Result<Matched<'a>, Error> {
        let routes = self.routes;
        let found = self
            .router()
            .at(path)
            .map_err(|_| Error::not_found(format!("no route for {BASE_PATH}{path}")))?;
        let Some(&index) = found.value.iter().find(|&&i| routes[i].method == method) else {
            let allowed = found
                .value
                .iter()
                .map(|&i| routes[i].method.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::MethodNotAllowed { allowed });
        };
        let route = &routes[index];
        // Values percent-decoded, as RFC 3986 makes `%3A` and `:` the same segment (an
        // implicit failure's id holds a `:`, which clients encode); one that does not decode
        // to UTF-8 stays as sent and fails its parser.
        let params = found
            .params
            .iter()
            .map(|(name, raw)| {
                let value = percent_encoding::percent_decode_str(raw)
                    .decode_utf8()
                    .unwrap_or(std::borrow::Cow::Borrowed(raw));
                (name, value)
            })
            .collect();
        Ok(Matched {
            access: route.access,
            handler: route.handler,
            params,
        })
    }
}

/// A route matched to a request: its row and the path's parameters.
pub(crate) struct Matched<'a> {
    pub(crate) access: Access,
    pub(crate) handler: Handler,
    pub(crate) params: Vec<(&'static str, std::borrow::Cow<'a, str>)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(component: Component, method: Method, path: &str) -> Result<Vec<String>, Error> {
        component
            .table()
            .find(&method, path)
            .map(|m| m.params.iter().map(|(k, v)| format!("{k}={v}")).collect())
    }

    #[test]
    fn every_table_builds_and_every_route_matches_its_own_pattern() {
        for component in Component::ALL {
            for route in component.routes() {
                let path = route
                    .path
                    .replace("{registry_id}", "r")
                    .replace("{", "")
                    .replace("}", "");
                let matched = component.table().find(&route.method, &path);
                assert!(matched.is_ok(), "{} {}", route.method, route.path);
            }
        }
    }

    #[test]
    fn parameters_are_named_by_the_pattern() {
        let params = answer(
            Component::Registry,
            Method::POST,
            "/registries/abc/channels/beta/bump",
        )
        .unwrap();
        assert_eq!(params, ["registry_id=abc", "channel=beta"]);
    }

    #[test]
    fn a_known_path_with_another_method_is_405_listing_the_table_methods() {
        let error = answer(Component::Registry, Method::PUT, "/registries/abc").unwrap_err();
        assert!(
            matches!(&error, Error::MethodNotAllowed { allowed } if allowed == "GET, PATCH, DELETE"),
            "{error:?}"
        );
        let error = answer(Component::Images, Method::DELETE, "/registries/a/images").unwrap_err();
        assert!(
            matches!(&error, Error::MethodNotAllowed { allowed } if allowed == "GET, POST"),
            "{error:?}"
        );
    }

    #[test]
    fn a_path_of_another_component_is_404_here() {
        let error = answer(Component::Images, Method::GET, "/registries").unwrap_err();
        assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    }
}
