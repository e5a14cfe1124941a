//! Image registries: `/api/v1/registries[/{registry_id}]`.

use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::auth::registry_not_found;
use crate::db::transaction;
use crate::domain::{
    ContainerRegistryId, ImageRegistry, ImageRepositoryName, OrgId, RegistryId, TokenVaultId,
    registry::RegistryChanges,
};
use crate::error::Error;
use crate::store::registries as store;

use super::{BASE_PATH, Context, PageBody, created, json_response, no_content};

/// The JSON form of a registry.
#[derive(Serialize)]
pub(crate) struct RegistryBody {
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
            created_at: registry.created_at.to_rfc3339(),
            updated_at: registry.updated_at.to_rfc3339(),
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
fn acting_org(ctx: &Context<'_>, body_org: Option<&str>) -> Result<OrgId, Error> {
    let named = match (ctx.request.named_org()?, body_org) {
        (Some(org), _) => Some(org),
        (None, Some(org)) => Some(OrgId::parse("org_id", org)?),
        (None, None) => None,
    };
    ctx.act_for(named)
}

pub(super) fn create(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let env = ctx.env;
    let body: CreateRegistryBody = ctx.request.json()?;
    let org_id = acting_org(ctx, body.org_id.as_deref())?;
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

pub(super) fn get(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let registry = ctx.readable_registry(ctx.registry_id()?)?;
    json_response(
        StatusCode::OK,
        &RegistryBody::from(registry.into_registry()),
    )
}

pub(super) fn list(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let org_id = ctx.acting_org()?;
    let (limit, cursor) = ctx.request.page_request()?;
    let after = cursor.map(|c| RegistryId::parse("cursor", c)).transpose()?;
    let page = store::list(ctx.env.db, &org_id, after, limit)?;
    json_response(
        StatusCode::OK,
        &PageBody::from_page(page, RegistryBody::from),
    )
}

pub(super) fn update(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let env = ctx.env;
    let registry_id = ctx.registry_id()?;
    let body: UpdateRegistryBody = ctx.request.json()?;
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
        let registry = ctx.writable_registry(registry_id)?;
        let updated = registry
            .registry()
            .clone()
            .with_changes(changes, env.clock.now());
        store::update(env.db, &updated)?;
        Ok(updated)
    })?;
    json_response(StatusCode::OK, &RegistryBody::from(updated))
}

/// Soft delete: the registry disappears from every read, but its channels, images and
/// lead-time records stay for DORA history. Needs an admin token.
pub(super) fn delete(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let registry_id = ctx.registry_id()?;
    let org_id = ctx.acting_org()?;
    if store::soft_delete(ctx.env.db, registry_id, &org_id, ctx.env.clock.now())? {
        Ok(no_content())
    } else {
        Err(registry_not_found(registry_id))
    }
}
