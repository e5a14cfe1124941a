//! The dashboard's answers that need no browser: redirects, the stylesheet's caching, the
//! sign-in form's checks and its cookie, and the status of every refusal. Served by
//! [`crate::handle_dashboard_request`] on an in-memory SQLite through cd-core's own handlers,
//! as the component serves them (tests/e2e/tests/browser drives the built component).

use cd_core::testing::RusqliteDb;
use cd_core::{Config, Env, SystemClock, SystemIds};
use http::{Method, Request, Response, StatusCode, header};

use crate::handle_dashboard_request;
use crate::layout::{CONTENT_SECURITY_POLICY, stylesheet_path};

const ADMIN: &str = "admin-token-for-tests";

struct Dashboard {
    db: RusqliteDb,
}

impl Dashboard {
    fn new() -> Dashboard {
        Dashboard {
            db: RusqliteDb::open_in_memory(),
        }
    }

    fn env(&self) -> Env<'_> {
        Env {
            db: &self.db,
            clock: &SystemClock,
            ids: &SystemIds,
            config: Config::from_variables(Some(ADMIN.to_owned()), None),
        }
    }

    fn send(&self, request: Request<Vec<u8>>) -> Response<Vec<u8>> {
        handle_dashboard_request(&request, &self.env())
    }

    fn get(&self, path: &str, cookie: Option<&str>) -> Response<Vec<u8>> {
        let mut request = Request::builder().uri(path);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.send(request.body(Vec::new()).unwrap())
    }

    fn post_form(&self, path: &str, cookie: &str, form: &str, https: bool) -> Response<Vec<u8>> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::COOKIE, cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if https {
            request = request.header("x-forwarded-proto", "https");
        }
        self.send(request.body(form.as_bytes().to_vec()).unwrap())
    }

    /// A read token of org `acme`, minted through the API.
    fn read_token(&self) -> String {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/tokens")
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(br#"{"org_id":"acme","role":"read","name":"dashboard"}"#.to_vec())
            .unwrap();
        let response = cd_core::handle_api_request(&request, &self.env());
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        body["token"].as_str().unwrap().to_owned()
    }
}

fn header_values(response: &Response<Vec<u8>>, name: header::HeaderName) -> Vec<&str> {
    response
        .headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

fn body(response: &Response<Vec<u8>>) -> String {
    String::from_utf8(response.body().clone()).unwrap()
}

/// The `cd_csrf` cookie a first page set, as `name=value`.
fn csrf_cookie(response: &Response<Vec<u8>>) -> String {
    let set = header_values(response, header::SET_COOKIE);
    let cookie = set.iter().find(|c| c.starts_with("cd_csrf=")).unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

#[test]
fn the_root_redirects_to_the_dashboard() {
    let dashboard = Dashboard::new();
    for path in ["/", "/ui"] {
        let response = dashboard.get(path, None);
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(response.headers()[header::LOCATION], "/ui/");
    }
}

#[test]
fn the_stylesheet_is_cached_at_its_hash_only() {
    let dashboard = Dashboard::new();
    let response = dashboard.get(stylesheet_path(), None);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let stale = dashboard.get("/ui/static/style.0000000000000000.css", None);
    assert_eq!(stale.status(), StatusCode::NOT_FOUND);
}

#[test]
fn signed_out_the_overview_is_the_sign_in_form_under_a_strict_policy() {
    let dashboard = Dashboard::new();
    let response = dashboard.get("/ui/", None);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_SECURITY_POLICY],
        CONTENT_SECURITY_POLICY
    );
    assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let page = body(&response);
    assert!(
        page.contains(r#"<form class="stack" id="sign-in" method="post" action="/ui/sign-in">"#)
    );
    assert!(!page.contains("<script"), "no script at all");
    let cookie = header_values(&response, header::SET_COOKIE).join("\n");
    assert!(
        cookie.starts_with("cd_csrf=") && cookie.contains("Path=/ui; HttpOnly; SameSite=Strict"),
        "{cookie}"
    );
}

#[test]
fn signing_in_checks_the_csrf_token_and_the_api_token() {
    let dashboard = Dashboard::new();
    let csrf = csrf_cookie(&dashboard.get("/ui/", None));
    let value = csrf.trim_start_matches("cd_csrf=");
    let token = dashboard.read_token();

    // One character changed (a random token may start with any, `0` too).
    let other = if value.starts_with('0') { '1' } else { '0' };
    let forged = dashboard.post_form(
        "/ui/sign-in",
        &csrf,
        &format!("csrf={other}{}&token={token}", &value[1..]),
        false,
    );
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let missing = dashboard.post_form("/ui/sign-in", &csrf, &format!("token={token}"), false);
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);

    let unknown = dashboard.post_form(
        "/ui/sign-in",
        &csrf,
        &format!("csrf={value}&token=cdi_{}", "0".repeat(64)),
        false,
    );
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert!(body(&unknown).contains("sign-in-error"));

    let signed_in = dashboard.post_form(
        "/ui/sign-in",
        &csrf,
        &format!("csrf={value}&token={token}"),
        false,
    );
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookie = header_values(&signed_in, header::SET_COOKIE).join("\n");
    assert_eq!(
        cookie,
        format!("cd_token={token}; Path=/ui; HttpOnly; SameSite=Strict")
    );
    // Behind an ingress that ended TLS, the cookie is Secure.
    let over_https = dashboard.post_form(
        "/ui/sign-in",
        &csrf,
        &format!("csrf={value}&token={token}"),
        true,
    );
    assert!(header_values(&over_https, header::SET_COOKIE)[0].ends_with("; Secure"));

    // Signed in: the overview, with no token anywhere in it.
    let cookies = format!("{csrf}; cd_token={token}");
    let overview = dashboard.get("/ui/?days=90", Some(&cookies));
    assert_eq!(overview.status(), StatusCode::OK);
    let page = body(&overview);
    assert!(page.contains(r#"id="tile-lead_time""#) && !page.contains(&token));

    let signed_out = dashboard.post_form("/ui/sign-out", &cookies, &format!("csrf={value}"), false);
    assert_eq!(signed_out.status(), StatusCode::SEE_OTHER);
    assert!(
        header_values(&signed_out, header::SET_COOKIE)[0]
            .starts_with("cd_token=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0")
    );
}

#[test]
fn every_refusal_has_its_status() {
    let dashboard = Dashboard::new();
    let token = dashboard.read_token();
    let cookie = format!("cd_token={token}");
    for (path, status) in [
        ("/ui/?days=7", StatusCode::BAD_REQUEST),
        (
            "/ui/?start=2026-02-30&end=2026-03-01",
            StatusCode::BAD_REQUEST,
        ),
        ("/ui/registries/not-a-registry", StatusCode::BAD_REQUEST),
        (
            "/ui/registries/0198a0b1-0000-7000-8000-000000000000",
            StatusCode::NOT_FOUND,
        ),
        ("/ui/nowhere", StatusCode::NOT_FOUND),
    ] {
        let response = dashboard.get(path, Some(&cookie));
        assert_eq!(response.status(), status, "{path}: {}", body(&response));
        assert!(
            body(&response).contains(r#"role="alert""#),
            "{path} says why"
        );
    }
    let post = dashboard.post_form("/ui/registries", &cookie, "", false);
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.headers()[header::ALLOW], "GET, HEAD");
    // Signed out, a private page asks to sign in.
    let signed_out = dashboard.get("/ui/deployments", None);
    assert_eq!(signed_out.status(), StatusCode::UNAUTHORIZED);
    assert!(body(&signed_out).contains(r#"id="sign-in""#));
}

#[test]
fn the_bootstrap_admin_names_the_org_on_the_page_url() {
    let dashboard = Dashboard::new();
    dashboard.read_token();
    let cookie = format!("cd_token={ADMIN}");
    for path in [
        "/ui/?org_id=acme",
        "/ui/registries?org_id=acme",
        "/ui/deployments?org_id=acme&app_id=web",
    ] {
        let response = dashboard.get(path, Some(&cookie));
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{path}: {}",
            body(&response)
        );
    }
    // Without one, the API's refusal (it acts for no org) is the page's, with its reason.
    let response = dashboard.get("/ui/registries", Some(&cookie));
    assert_eq!(
        response.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        body(&response)
    );
    assert!(body(&response).contains("org_id"), "{}", body(&response));
}
