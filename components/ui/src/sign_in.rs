//! The sign-in form, and signing in and out.
//!
//! Signing in checks the token against the API (`GET /api/v1/registries`): an unknown or
//! revoked token is refused on the form, not discovered later on every page.

use cd_core::Env;
use http::{Response, StatusCode};
use maud::html;

use crate::api::{Api, param};
use crate::layout::{self, Section};
use crate::session::{Session, is_cookie_value};

/// The sign-in page; `problem` is why the last attempt (or the page asked for) failed.
pub(crate) fn form(
    session: &Session,
    status: StatusCode,
    problem: Option<&str>,
) -> Response<Vec<u8>> {
    let body = html! {
        @if let Some(problem) = problem {
            p #sign-in-error .error role="alert" { (crate::text::inert(problem)) }
        }
        p { "Sign in with an API token of your organization (a read token is enough). It is kept in a cookie for this dashboard only, never in a URL." }
        form #sign-in .stack method="post" action="/ui/sign-in" {
            input type="hidden" name="csrf" value=(session.csrf);
            label {
                "API token"
                input type="password" name="token" autocomplete="off" required;
            }
            button type="submit" { "Sign in" }
        }
        p.note {
            "Without signing in, a public registry's page is open to anyone: "
            code { "/ui/registries/{registry_id}" } "."
        }
    };
    layout::html_response(
        status,
        session,
        layout::page("Sign in", Section::SignIn, session, body),
        &[],
    )
}

/// The form's fields.
fn fields(request: &http::Request<Vec<u8>>) -> Vec<(String, String)> {
    form_urlencoded::parse(request.body())
        .into_owned()
        .collect()
}

fn forbidden(session: &Session) -> Response<Vec<u8>> {
    let body = html! {
        p.error role="alert" { "This form has expired or was not sent from this dashboard. Please try again." }
        p { a href="/ui/" { "Back to the dashboard" } }
    };
    layout::html_response(
        StatusCode::FORBIDDEN,
        session,
        layout::page("Forbidden", Section::SignIn, session, body),
        &[],
    )
}

/// `POST /ui/sign-in`: `token` and `csrf`, form-encoded.
pub(crate) fn sign_in(
    request: &http::Request<Vec<u8>>,
    session: &Session,
    env: &Env<'_>,
) -> Response<Vec<u8>> {
    let fields = fields(request);
    if !session.csrf_matches(param(&fields, "csrf")) {
        return forbidden(session);
    }
    let token = param(&fields, "token").unwrap_or("").trim();
    if !is_cookie_value(token) {
        return form(
            session,
            StatusCode::UNAUTHORIZED,
            Some("That is not an API token."),
        );
    }
    match Api::new(env, Some(token)).get("/registries?limit=1") {
        Err(failure) if failure.needs_sign_in() => form(
            session,
            StatusCode::UNAUTHORIZED,
            Some("That token is unknown or revoked."),
        ),
        // Any other answer means the token is one of ours (a bootstrap admin's acts for no
        // org until a page names one).
        _ => layout::see_other("/ui/", &[session.sign_in(token)]),
    }
}

/// `POST /ui/sign-out`: `csrf`, form-encoded.
pub(crate) fn sign_out(request: &http::Request<Vec<u8>>, session: &Session) -> Response<Vec<u8>> {
    if !session.csrf_matches(param(&fields(request), "csrf")) {
        return forbidden(session);
    }
    layout::see_other("/ui/", &[session.sign_out()])
}
