//! Image registries: `/api/v1/registries[/{registry_id}]`, and the registry component's
//! route table.

use http::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::db::transaction;
use crate::domain::{
    ContainerRegistryId, ImageRegistry, ImageRepositoryName, OrgId, RegistryId, Role, TokenVaultId,
    registry::RegistryChanges,
};
use crate::env::Env;
use crate::error::Error;
use crate::store::registries::{self as store, Visibility};

use super::{
    ApiRequest, BASE_PATH, PageBody, created, json_response, method_not_allowed, no_content,
    no_route,
};

/// The registry component's routes (Spin sends it `/api/v1/registries/...`,
/// `/api/v1/tokens/...` and `/api/v1/health/registry`).
pub fn routes(
    request: &ApiRequest<'_>,
    caller: &Caller,
    env: &Env<'_>,
) -> Result<Response<Vec<u8>>, Error> {
    let method = request.method;
    match request.segments.as_slice() {
        ["health", "registry"] => super::health::health(request, "registry"),
        ["tokens", rest @ ..] => super::tokens::routes(request, rest, caller, env),
        ["registries"] => match *method {
            Method::GET => list(request, caller, env),
            Method::POST => create(request, caller, env),
            _ => method_not_allowed("GET, POST"),
        },
        ["registries", registry_id] => {
            let registry_id = RegistryId::parse("registry_id", registry_id)?;
            match *method {
                Method::GET => get(request, registry_id, caller, env),
                Method::PATCH => update(request, registry_id, caller, env),
                Method::DELETE => delete(request, registry_id, caller, env),
                _ => method_not_allowed("GET, PATCH, DELETE"),
            }
        }
        ["registries", registry_id, "channels", rest @ ..] => {
            let registry_id = RegistryId::parse("registry_id", registry_id)?;
            super::versions::routes(request, registry_id, rest, caller, env)
        }
        _ => no_route(request),
    }
}

/// The JSON form of a registry.
#[derive(Serialize)]
pub struct RegistryBody {
    registry_id: String,
    org_id: String,
    image_repository_name: String,
    public: bool,
    container_registry_id: String,
    token_vault_id: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<ImageRegistry> for RegistryBody {
    fn from(registry: ImageRegistry) -> Self {
        RegistryBody {
            registry_id: registry.registry_id.to_text(),
            org_id: registry.org_id.to_string(),
            image_repository_name: registry.image_repository_name.as_str().to_owned(),
            public: registry.public,
            container_registry_id: registry.container_registry_id.as_str().to_owned(),
            token_vault_id: registry.token_vault_id.map(|v| v.as_str().to_owned()),
            created_at: registry.created_at.to_stored(),
            updated_at: registry.updated_at.to_stored(),
        }
    }
}

/// `POST /registries` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRegistryBody {
    image_repository_name: String,
    #[serde(default)]
    public: bool,
    container_registry_id: String,
    #[serde(default)]
    token_vault_id: Option<String>,
    /// Only for the bootstrap admin, which must name the org.
    #[serde(default)]
    org_id: Option<String>,
}

/// `PATCH /registries/{id}` body: absent fields stay; `token_vault_id: null` clears it.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct UpdateRegistryBody {
    #[serde(default)]
    image_repository_name: Option<String>,
    #[serde(default)]
    public: Option<bool>,
    #[serde(default)]
    container_registry_id: Option<String>,
    #[serde(default, deserialize_with = "super::present")]
    token_vault_id: Option<Option<String>>,
}

/// The org a request acts for: the query's `org_id`, else the body's (creation only).
fn acting_org(
    request: &ApiRequest<'_>,
    body_org: Option<&str>,
    caller: &Caller,
    role: Role,
) -> Result<OrgId, Error> {
    let named = match (request.named_org()?, body_org) {
        (Some(org), _) => Some(org),
        (None, Some(org)) => Some(OrgId::parse("org_id", org)?),
        (None, None) => None,
    };
    caller.act_for(named, role)
}

fn not_found(registry_id: RegistryId) -> Error {
    Error::not_found(format!("registry {registry_id} does not exist"))
}

fn create(
    request: &ApiRequest<'_>,
    caller: &Caller,
    env: &Env<'_>,
) -> Result<Response<Vec<u8>>, Error> {
    let body: CreateRegistryBody = request.json()?;
    let org_id = acting_org(request, body.org_id.as_deref(), caller, Role::Write)?;
    let now = env.clock.now();
    let registry = ImageRegistry {
        registry_id: RegistryId::new(env.ids.new_id()),
        org_id,
        image_repository_name: ImageRepositoryName::parse(&body.image_repository_name)?,
        public: body.public,
        container_registry_id: ContainerRegistryId::parse(&body.container_registry_id)?,
        token_vault_id: body
            .token_vault_id
            .as_deref()
            .map(TokenVaultId::parse)
            .transpose()?,
        created_at: now,
        updated_at: now,
    };
    store::insert(env.db, &registry)?;
    let location = format!("{BASE_PATH}/registries/{}", registry.registry_id);
    created(location, &RegistryBody::from(registry))
}

/// Finds a registry the caller may read: public ones for anyone (even anonymous), the org's
/// own for its tokens. Anonymous callers get 401 for anything not public, so that "forgot the
/// token" is distinguishable from "no such registry" without revealing private ones.
pub fn find_readable(
    request: &ApiRequest<'_>,
    registry_id: RegistryId,
    caller: &Caller,
    env: &Env<'_>,
) -> Result<ImageRegistry, Error> {
    let org_id = match caller {
        Caller::Anonymous => None,
        _ => Some(caller.act_for(request.named_org()?, Role::Read)?),
    };
    let visibility = org_id
        .as_ref()
        .map_or(Visibility::PublicOnly, Visibility::Org);
    match store::find_visible(env.db, registry_id, visibility)? {
        Some(registry) => Ok(registry),
        None if caller.is_anonymous() => Err(Error::Unauthorized {
            detail: "this registry is not public: send a token".to_owned(),
        }),
        None => Err(not_found(registry_id)),
    }
}

/// Finds a live registry of the acting org for a write needing `role`.
pub fn find_writable(
    request: &ApiRequest<'_>,
    registry_id: RegistryId,
    caller: &Caller,
    role: Role,
    env: &Env<'_>,
) -> Result<ImageRegistry, Error> {
    let org_id = caller.act_for(request.named_org()?, role)?;
    store::find_owned(env.db, registry_id, &org_id)?.ok_or_else(|| not_found(registry_id))
}

fn get(
    request: &ApiRequest<'_>,
    registry_id: RegistryId,
    caller: &Caller,
    env: &Env<'_>,
) -> Result<Response<Vec<u8>>, Error> {
    let registry = find_readable(request, registry_id, caller, env)?;
    json_response(StatusCode::OK, &RegistryBody::from(registry))
}

fn list(
    request: &ApiRequest<'_>,
    caller: &Caller,
    env: &Env<'_>,
) -> Result<Response<Vec<u8>>, Error> {
    let org_id = caller.act_for(request.named_org()?, Role::Read)?;
    let (limit, cursor) = request.page_request()?;
    let after = cursor.map(|c| RegistryId::parse("cursor", c)).transpose()?;
    let page = store::list(env.db, &org_id, after, limit)?;
    json_response(
        StatusCode::OK,
        &PageBody::from_page(page, RegistryBody::from),
    )
}

fn update(
    request: &ApiRequest<'_>,
    registry_id: RegistryId,
    caller: &Caller,
    env: &Env<'_>,
) -> Result<Response<Vec<u8>>, Error> {
    let body: UpdateRegistryBody = request.json()?;
    let changes = RegistryChanges {
        image_repository_name: body
            .image_repository_name
            .as_deref()
            .map(ImageRepositoryName::parse)
            .transpose()?,
        public: body.public,
        container_registry_id: body
            .container_registry_id
            .as_deref()
            .map(ContainerRegistryId::parse)
            .transpose()?,
        token_vault_id: body
            .token_vault_id
            .map(|v| v.as_deref().map(TokenVaultId::parse).transpose())
            .transpose()?,
    };
    let updated = transaction(env.db, || {
        let registry = find_writable(request, registry_id, caller, Role::Write, env)?;
        let updated = registry.with_changes(changes, env.clock.now());
        store::update(env.db, &updated)?;
        Ok(updated)
    })?;
    json_response(StatusCode::OK, &RegistryBody::from(updated))
}

/// Soft delete: the registry disappears from every read, but its channels (and the images and
/// lead-time records later issues attach to it) stay for DORA history. Needs an admin token.
fn delete(
    request: &ApiRequest<'_>,
    registry_id: RegistryId,
    caller: &Caller,
    env: &Env<'_>,
) -> Result<Response<Vec<u8>>, Error> {
    let org_id = caller.act_for(request.named_org()?, Role::Admin)?;
    if store::soft_delete(env.db, registry_id, &org_id, env.clock.now())? {
        Ok(no_content())
    } else {
        Err(not_found(registry_id))
    }
}
