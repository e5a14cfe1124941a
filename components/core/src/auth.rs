//! Who is calling, and which org's rows they may touch.
//!
//! `Authorization: Bearer <token>` is either the bootstrap admin token (the `admin_token`
//! variable: it manages tokens and may act for any org it names) or an org token, stored
//! hashed, scoped to one org and a role. No header means anonymous, which may only read public
//! registries. Rows of another org are reported as missing (404), never as forbidden.

use http::HeaderMap;

use crate::db::Db;
use crate::domain::token::ApiToken;
use crate::domain::token::token_digest;
use crate::domain::{ImageRegistry, OrgId, RegistryId, Role};
use crate::env::Env;
use crate::error::Error;
use crate::store::registries::{self, Visibility};
use crate::store::tokens;

#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// No `Authorization` header.
    Anonymous,
    /// The bootstrap admin token from the `admin_token` variable.
    BootstrapAdmin,
    /// An org token.
    Org(ApiToken),
}

/// Identifies the caller. A malformed header or an unknown or revoked token is a 401; only the
/// absence of the header is anonymous.
pub(crate) fn authenticate(headers: &HeaderMap, env: &Env<'_>) -> Result<Caller, Error> {
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
    pub(crate) fn act_for(&self, named_org: Option<OrgId>, needed: Role) -> Result<OrgId, Error> {
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

    /// Lets only the bootstrap admin through: for answers that span orgs.
    pub(crate) fn require_bootstrap_admin(&self) -> Result<(), Error> {
        match self {
            Caller::BootstrapAdmin => Ok(()),
            Caller::Anonymous => Err(Error::Unauthorized {
                detail: "this request needs the admin token".to_owned(),
            }),
            Caller::Org(_) => Err(Error::Forbidden {
                detail: "only the bootstrap admin token sees across orgs".to_owned(),
            }),
        }
    }

    pub(crate) fn is_anonymous(&self) -> bool {
        matches!(self, Caller::Anonymous)
    }
}

/// A registry the caller may read the rows of (channels, images): the proof the store's
/// registry-scoped reads ask for. Only [`readable_registry`] makes one, so a handler cannot
/// reach another org's rows by forgetting a check.
#[derive(Debug)]
pub(crate) struct ReadableRegistry(ImageRegistry);

/// A live registry of the org the caller acts for, with the role a write needs: the proof the
/// store's registry-scoped writes ask for. Only [`writable_registry`] makes one.
#[derive(Debug)]
pub(crate) struct WritableRegistry(ReadableRegistry);

impl ReadableRegistry {
    pub(crate) fn id(&self) -> RegistryId {
        self.0.registry_id
    }

    pub(crate) fn registry(&self) -> &ImageRegistry {
        &self.0
    }

    pub(crate) fn into_registry(self) -> ImageRegistry {
        self.0
    }
}

impl WritableRegistry {
    /// Whoever may write a registry's rows may read them.
    pub(crate) fn readable(&self) -> &ReadableRegistry {
        &self.0
    }

    pub(crate) fn id(&self) -> RegistryId {
        self.0.id()
    }

    pub(crate) fn registry(&self) -> &ImageRegistry {
        self.0.registry()
    }
}

pub(crate) fn registry_not_found(registry_id: RegistryId) -> Error {
    Error::not_found(format!("registry {registry_id} does not exist"))
}

/// Finds a registry the caller may read: public ones for anyone (even anonymous), the org's
/// own for its tokens. Anonymous callers get 401 for anything not public, so that "forgot the
/// token" is distinguishable from "no such registry" without revealing private ones.
pub(crate) fn readable_registry(
    db: &dyn Db,
    caller: &Caller,
    named_org: Option<OrgId>,
    registry_id: RegistryId,
) -> Result<ReadableRegistry, Error> {
    let org_id = match caller {
        Caller::Anonymous => None,
        _ => Some(caller.act_for(named_org, Role::Read)?),
    };
    let visibility = org_id
        .as_ref()
        .map_or(Visibility::PublicOnly, Visibility::Org);
    match registries::find_visible(db, registry_id, visibility)? {
        Some(registry) => Ok(ReadableRegistry(registry)),
        None if caller.is_anonymous() => Err(Error::Unauthorized {
            detail: "this registry is not public: send a token".to_owned(),
        }),
        None => Err(registry_not_found(registry_id)),
    }
}

/// Finds a live registry of the acting org for a write needing `role`.
pub(crate) fn writable_registry(
    db: &dyn Db,
    caller: &Caller,
    named_org: Option<OrgId>,
    role: Role,
    registry_id: RegistryId,
) -> Result<WritableRegistry, Error> {
    let org_id = caller.act_for(named_org, role)?;
    registries::find_owned(db, registry_id, &org_id)?
        .map(|registry| WritableRegistry(ReadableRegistry(registry)))
        .ok_or_else(|| registry_not_found(registry_id))
}

/// The registry a receiver takes pushes for, as the proof image writes ask for: a writer of
/// the registry made the receiver, and the sender has just proved itself with the receiver's
/// secret (`api::hooks`). `None` once the registry is deleted.
pub(crate) fn receiver_registry(
    db: &dyn Db,
    receiver: &crate::domain::receiver::Receiver,
) -> Result<Option<WritableRegistry>, Error> {
    Ok(
        registries::find_owned(db, receiver.registry_id, &receiver.org_id)?
            .map(|registry| WritableRegistry(ReadableRegistry(registry))),
    )
}
