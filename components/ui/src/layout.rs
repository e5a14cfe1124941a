//! The page around every page: head, navigation, the sign-out form, and the response
//! headers that make it safe to show pipeline text (the CSP allows no script and no inline
//! style at all).

use std::sync::OnceLock;

use http::{Response, StatusCode, header};
use maud::{DOCTYPE, Markup, html};
use sha2::{Digest, Sha256};

use crate::session::Session;

/// The one stylesheet.
pub(crate) const STYLESHEET: &str = include_str!("style.css");
/// The icon browsers ask for (served, so no page logs a failed request for it).
pub(crate) const FAVICON: &str = include_str!("favicon.svg");

/// Nothing but our own stylesheet and icon: no script, no inline style, no frames, and forms
/// post only here.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; \
     img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The stylesheet's path, with the first 16 hex digits of its SHA-256: it is cached for a
/// year, and a new stylesheet is a new URL.
pub(crate) fn stylesheet_path() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let digest = hex::encode(Sha256::digest(STYLESHEET.as_bytes()));
        format!("/ui/static/style.{}.css", &digest[..16])
    })
}

/// Which part of the navigation a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Overview,
    Registries,
    Deployments,
    SignIn,
}

/// A whole page: `title` is its `<h1>` too.
pub(crate) fn page(title: &str, section: Section, session: &Session, body: Markup) -> Markup {
    let nav = [
        (Section::Overview, "/ui/", "Overview"),
        (Section::Registries, "/ui/registries", "Registries"),
        (Section::Deployments, "/ui/deployments", "Deployments"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · cd-images" }
                link rel="stylesheet" href=(stylesheet_path());
                link rel="icon" href="/ui/static/favicon.svg" type="image/svg+xml";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui/" { "cd-images" }
                    nav aria-label="Main" {
                        ul {
                            @for (which, href, name) in nav {
                                li {
                                    @if which == section {
                                        a href=(href) aria-current="page" { (name) }
                                    } @else {
                                        a href=(href) { (name) }
                                    }
                                }
                            }
                        }
                    }
                    @if session.token.is_some() {
                        form #sign-out method="post" action="/ui/sign-out" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button type="submit" { "Sign out" }
                        }
                    } @else if section != Section::SignIn {
                        a.sign-in href="/ui/" { "Sign in" }
                    }
                }
                // Focusable by the skip link (not by Tab), so screen readers announce the jump.
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
                footer {
                    p { "cd-images · figures from the API's own handlers (" a href="/api/v1/health/lead-time" { "API" } ")" }
                }
            }
        }
    }
}

/// An HTML response with the dashboard's headers and the session's cookies.
pub(crate) fn html_response(
    status: StatusCode,
    session: &Session,
    markup: Markup,
    extra_cookies: &[String],
) -> Response<Vec<u8>> {
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        // Pages show an org's data: never kept by a cache.
        .header(header::CACHE_CONTROL, "no-store");
    for cookie in session.cookies().iter().chain(extra_cookies) {
        response = response.header(header::SET_COOKIE, cookie);
    }
    secure(response)
        .body(markup.into_string().into_bytes())
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

/// The headers of every response: the CSP, no sniffing, no referrer, no framing.
pub(crate) fn secure(builder: http::response::Builder) -> http::response::Builder {
    builder
        .header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(header::X_FRAME_OPTIONS, "DENY")
}

/// A redirect (303: the next request is a GET) with cookies.
pub(crate) fn see_other(location: &str, cookies: &[String]) -> Response<Vec<u8>> {
    let mut response = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, location)
        .header(header::CACHE_CONTROL, "no-store");
    for cookie in cookies {
        response = response.header(header::SET_COOKIE, cookie);
    }
    secure(response)
        .body(Vec::new())
        .unwrap_or_else(|_| Response::new(Vec::new()))
}
