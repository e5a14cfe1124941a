//! cd-ui: the dashboard's pages, server-rendered HTML with SVG charts, for the dashboard
//! component (`components/dashboard`, at `/ui/`).
//!
//! A page reads the API through its own handlers in-process ([`api`]) with the signed-in
//! caller's token ([`session`]), so its figures are the API's answers, and renders them with
//! maud (compile-time templates that escape every value) and plotters (charts as SVG). The
//! pages run no script; forms and links do everything, so they work with JavaScript off.
//!
//! Routes (all under `/ui`, `/` redirects to `/ui/`):
//! - `GET /ui/` — the overview: the five DORA metrics and their weekly charts (or the sign-in
//!   form);
//! - `POST /ui/sign-in`, `POST /ui/sign-out`;
//! - `GET /ui/registries`, `/ui/registries/{registry_id}`,
//!   `/ui/registries/{registry_id}/images/{image_id}` — registries, images, provenance;
//! - `GET /ui/deployments` — a timeline per app environment;
//! - `GET /ui/static/style.{hash}.css`, `/ui/static/favicon.svg`.

mod api;
mod charts;
mod deployments;
mod format;
mod layout;
mod overview;
mod registries;
mod session;
mod sign_in;
#[cfg(test)]
mod tests;
mod text;

use cd_core::Env;
use http::{Method, Response, StatusCode, header};
use maud::html;

use api::{Api, ApiFailure};
use layout::Section;
use session::Session;

/// The dashboard component's entry point.
pub fn handle_dashboard_request(
    request: &http::Request<Vec<u8>>,
    env: &Env<'_>,
) -> Response<Vec<u8>> {
    let path = request.uri().path();
    let method = request.method();
    if path == "/" || path == "/ui" {
        return layout::see_other("/ui/", &[]);
    }
    if let Some(file) = path.strip_prefix("/ui/static/") {
        return static_file(method, file);
    }
    let session = Session::of(request, env);
    let query: Vec<(String, String)> =
        form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let segments: Vec<&str> = path
        .trim_start_matches("/ui/")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let api = Api::new(env, session.token.as_deref()).acting_for(api::param(&query, "org_id"));
    let page = match (method, segments.as_slice()) {
        (&Method::POST, ["sign-in"]) => return sign_in::sign_in(request, &session, env),
        (&Method::POST, ["sign-out"]) => return sign_in::sign_out(request, &session),
        (&Method::GET | &Method::HEAD, []) => {
            if session.token.is_none() {
                return sign_in::form(&session, StatusCode::OK, None);
            }
            overview::page(&api, &query, env.clock.now().instant())
        }
        (&Method::GET | &Method::HEAD, ["registries"]) => registries::list(&api),
        (&Method::GET | &Method::HEAD, ["registries", registry_id]) => {
            registries::registry(&api, registry_id)
        }
        (&Method::GET | &Method::HEAD, ["registries", registry_id, "images", image_id]) => {
            registries::image(&api, registry_id, image_id)
        }
        (&Method::GET | &Method::HEAD, ["deployments"]) => deployments::page(&api, &query),
        // A bookmarked or typed sign-in URL: the form is on the overview's URL.
        (&Method::GET | &Method::HEAD, ["sign-in"]) => return layout::see_other("/ui/", &[]),
        (_, ["sign-in" | "sign-out"]) => return not_allowed(&session, "POST"),
        (_, [] | ["registries", ..] | ["deployments"]) => {
            return not_allowed(&session, "GET, HEAD");
        }
        _ => Err(ApiFailure {
            status: 404,
            detail: format!("There is no page at {path}."),
        }),
    };
    match page {
        Ok(rendered) => layout::html_response(
            StatusCode::OK,
            &session,
            layout::page(&rendered.title, rendered.section, &session, rendered.body),
            &[],
        ),
        // Signed out (or the token was revoked): the private page asks to sign in.
        Err(failure) if failure.needs_sign_in() => {
            sign_in::form(&session, StatusCode::UNAUTHORIZED, Some(&failure.detail))
        }
        Err(failure) => error_page(&session, &failure),
    }
}

/// A rendered page's title, navigation section and content.
pub(crate) struct Rendered {
    pub(crate) title: String,
    pub(crate) section: Section,
    pub(crate) body: maud::Markup,
}

/// What the API refused, as a page with its status.
fn error_page(session: &Session, failure: &ApiFailure) -> Response<Vec<u8>> {
    let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let title = status.canonical_reason().unwrap_or("Error");
    let body = html! {
        p.error role="alert" { (text::inert(&failure.detail)) }
        p { a href="/ui/" { "Back to the overview" } }
    };
    layout::html_response(
        status,
        session,
        layout::page(title, Section::Overview, session, body),
        &[],
    )
}

fn not_allowed(session: &Session, allow: &str) -> Response<Vec<u8>> {
    let mut response = error_page(
        session,
        &ApiFailure {
            status: 405,
            detail: format!("This page answers {allow} only."),
        },
    );
    if let Ok(value) = http::HeaderValue::from_str(allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// The stylesheet (at its hashed path only) and the icon, cached for a year.
fn static_file(method: &Method, file: &str) -> Response<Vec<u8>> {
    let found = match file {
        "favicon.svg" => Some(("image/svg+xml", layout::FAVICON)),
        _ if layout::stylesheet_path().strip_prefix("/ui/static/") == Some(file) => {
            Some(("text/css; charset=utf-8", layout::STYLESHEET))
        }
        _ => None,
    };
    let builder = layout::secure(Response::builder());
    let response = match (found, method) {
        (Some((content_type, body)), &Method::GET | &Method::HEAD) => builder
            .header(header::CONTENT_TYPE, content_type)
            .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
            .body(body.as_bytes().to_vec()),
        (Some(_), _) => builder
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header(header::ALLOW, "GET, HEAD")
            .body(Vec::new()),
        (None, _) => builder
            .status(StatusCode::NOT_FOUND)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(b"not found".to_vec()),
    };
    response.unwrap_or_else(|_| Response::new(Vec::new()))
}
