//! Signing in: an API token kept in a cookie, and the forms' CSRF token.
//!
//! The token is the caller's API token, set by the sign-in form in `cd_token`: `HttpOnly` (no
//! script could read it, and the pages run none), `SameSite=Strict` (another site's form or
//! link does not carry it), `Path=/ui` (the API never sees it as a cookie: the API takes
//! bearer tokens only), `Secure` when served over https. It never appears in a URL or a page.
//!
//! Forms that change the session (sign in, sign out) carry a CSRF token: a random value in
//! the `cd_csrf` cookie that the form repeats in a hidden field (double submit). A cross-site
//! form cannot read the cookie to repeat it, and `SameSite=Strict` keeps it from being sent.

use cd_core::Env;
use sha2::{Digest, Sha256};

pub(crate) const TOKEN_COOKIE: &str = "cd_token";
pub(crate) const CSRF_COOKIE: &str = "cd_csrf";
/// The cookies' scope: the dashboard's pages only.
const PATH: &str = "/ui";

/// What the request's cookies say.
pub(crate) struct Session {
    pub(crate) token: Option<String>,
    pub(crate) csrf: String,
    /// The CSRF token was made for this response: its cookie must be set.
    fresh_csrf: bool,
    secure: bool,
}

impl Session {
    pub(crate) fn of(request: &http::Request<Vec<u8>>, env: &Env<'_>) -> Session {
        let mut token = None;
        let mut csrf = None;
        for header in request.headers().get_all(http::header::COOKIE) {
            let Ok(header) = header.to_str() else {
                continue;
            };
            for pair in header.split(';') {
                let Some((name, value)) = pair.trim().split_once('=') else {
                    continue;
                };
                match name {
                    TOKEN_COOKIE if is_cookie_value(value) => token = Some(value.to_owned()),
                    CSRF_COOKIE
                        if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) =>
                    {
                        csrf = Some(value.to_owned())
                    }
                    _ => {}
                }
            }
        }
        let fresh_csrf = csrf.is_none();
        Session {
            token,
            csrf: csrf.unwrap_or_else(|| hex::encode(env.ids.secret())),
            fresh_csrf,
            secure: is_https(request),
        }
    }

    /// Whether a form's `csrf` field is this session's token (compared by digest: the time
    /// taken tells nothing about how much of it matched).
    pub(crate) fn csrf_matches(&self, submitted: Option<&str>) -> bool {
        submitted.is_some_and(|submitted| {
            Sha256::digest(submitted.as_bytes()) == Sha256::digest(self.csrf.as_bytes())
        })
    }

    /// The `Set-Cookie` values every response of this session carries: the CSRF cookie
    /// when it is new.
    pub(crate) fn cookies(&self) -> Vec<String> {
        if self.fresh_csrf {
            vec![self.cookie(CSRF_COOKIE, &self.csrf, None)]
        } else {
            Vec::new()
        }
    }

    /// The cookie that signs `token` in.
    pub(crate) fn sign_in(&self, token: &str) -> String {
        self.cookie(TOKEN_COOKIE, token, None)
    }

    /// The cookie that signs out (expired at once).
    pub(crate) fn sign_out(&self) -> String {
        self.cookie(TOKEN_COOKIE, "", Some(0))
    }

    fn cookie(&self, name: &str, value: &str, max_age: Option<u32>) -> String {
        let mut cookie = format!("{name}={value}; Path={PATH}; HttpOnly; SameSite=Strict");
        if let Some(seconds) = max_age {
            cookie.push_str(&format!("; Max-Age={seconds}"));
        }
        if self.secure {
            cookie.push_str("; Secure");
        }
        cookie
    }
}

/// A value a cookie can hold as it is (RFC 6265 `cookie-octet`s), of a sane length. An API
/// token is one; anything else is not a token and is not set.
pub(crate) fn is_cookie_value(value: &str) -> bool {
    (1..=512).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\'))
}

/// Served over https: Spin's `spin-full-url` (what the client asked for), the URI itself, or
/// an ingress that ended TLS saying so (`X-Forwarded-Proto`; a client forging it only makes
/// its own cookie stricter).
fn is_https(request: &http::Request<Vec<u8>>) -> bool {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    header("spin-full-url").is_some_and(|url| url.starts_with("https:"))
        || request.uri().scheme_str() == Some("https")
        || header("x-forwarded-proto").is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shaped_values_only() {
        assert!(is_cookie_value("cdi_0123abcdEF-_"));
        assert!(!is_cookie_value(""));
        assert!(!is_cookie_value("a b"));
        assert!(!is_cookie_value("a;b"));
        assert!(!is_cookie_value("é"));
    }
}
