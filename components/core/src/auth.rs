//! Who is calling, and which org's rows they may touch.
//!
//! `Authorization: Bearer <token>` is either the bootstrap admin token (the `admin_token`
//! variable: it manages tokens and may act for any org it names) or an org token, stored
//! hashed, scoped to one org and a role. No header means anonymous, which may only read public
//! registries. Rows of another org are reported as missing (404), never as forbidden.

use http::HeaderMap;

use crate::domain::token::token_digest;
use crate::domain::{OrgId, Role};
use crate::env::Env;
use crate::error::Error;
use crate::store::registries::Visibility;
use crate::store::tokens::{self, ApiToken};

#[derive(Debug, Clone)]
pub enum Caller {
    /// No `Authorization` header.
    Anonymous,
    /// The bootstrap admin token from the `admin_token` variable.
    BootstrapAdmin,
    /// An org token.
    Org(ApiToken),
}

/// Identifies the caller. A malformed header or an unknown or revoked token is a 401; only the
/// absence of the header is anonymous.
pub fn authenticate(headers: &HeaderMap, env: &Env<'_>) -> Result<Caller, Error> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(Caller::Anonymous);
    };
    let unauthorized = |detail: &str| Error::Unauthorized {
        detail: detail.to_owned(),
    };
    if values.next().is_some() {
        return Err(unauthorized("send one Authorization header"));
    }
    let value = value
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not ASCII"))?;
    let token = match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            token.trim()
        }
        _ => return Err(unauthorized("use Authorization: Bearer <token>")),
    };
    let digest = token_digest(token);
    // Digests, not tokens, are compared: the comparison's timing reveals nothing about the
    // admin token itself.
    if let Some(admin_token) = &env.config.admin_token
        && token_digest(admin_token) == digest
    {
        return Ok(Caller::BootstrapAdmin);
    }
    match tokens::find_live_by_digest(env.db, &digest)? {
        Some(token) => Ok(Caller::Org(token)),
        None => Err(unauthorized("the token is unknown or revoked")),
    }
}

fn authentication_required() -> Error {
    Error::Unauthorized {
        detail: "this request needs a token: Authorization: Bearer <token>".to_owned(),
    }
}

impl Caller {
    /// The org this request acts for, if the caller's role is at least `needed`.
    ///
    /// An org token acts for its own org (naming another is a 403). The bootstrap admin acts
    /// for the org named by `org_id` (query or body) and must name one.
    pub fn act_for(&self, named_org: Option<OrgId>, needed: Role) -> Result<OrgId, Error> {
        match self {
            Caller::Anonymous => Err(authentication_required()),
            Caller::BootstrapAdmin => named_org.ok_or_else(|| {
                Error::invalid(
                    "org_id",
                    "the admin token acts for any org, so it must name one with org_id",
                )
            }),
            Caller::Org(token) => {
                if named_org.is_some_and(|named| named != token.org_id) {
                    return Err(Error::Forbidden {
                        detail: format!("this token is scoped to org {}", token.org_id),
                    });
                }
                if token.role < needed {
                    return Err(Error::Forbidden {
                        detail: format!(
                            "this needs a {} token; this one is {}",
                            needed.as_str(),
                            token.role.as_str()
                        ),
                    });
                }
                Ok(token.org_id.clone())
            }
        }
    }

    /// Which registries the caller may read: anonymous callers see public ones only.
    pub fn visibility<'a>(&self, acting_org: Option<&'a OrgId>) -> Visibility<'a> {
        match acting_org {
            Some(org_id) => Visibility::Org(org_id),
            None => Visibility::PublicOnly,
        }
    }

    pub fn is_anonymous(&self) -> bool {
        matches!(self, Caller::Anonymous)
    }

    pub fn is_bootstrap_admin(&self) -> bool {
        matches!(self, Caller::BootstrapAdmin)
    }
}
