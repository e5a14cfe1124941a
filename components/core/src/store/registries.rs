//! `image_registries`: create, read, list, update, soft-delete.

use crate::db::{Db, DbError, Row, Value};
use crate::domain::{
    ContainerRegistryId, ImageRegistry, ImageRepositoryName, OrgId, RegistryId, Timestamp,
    TokenVaultId,
};
use crate::error::Error;

use super::{Keyset, ORG_KEY, Order, Page};

const COLUMNS: &str = "registry_id, \
     (SELECT org_id FROM orgs WHERE orgs.org_key = image_registries.org_key), \
     image_repository_name, public, container_registry_id, token_vault_id, created_at, updated_at";

/// The columns an INSERT names, in [`params`] order.
const INSERTED: &str = "registry_id, org_key, image_repository_name, public, container_registry_id, \
     token_vault_id, created_at, updated_at";

/// Who is reading, which decides which registries are visible.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Visibility<'a> {
    /// Only public registries.
    PublicOnly,
    /// The org's own registries and public ones.
    Org(&'a OrgId),
}

fn from_row(row: Row<'_>) -> Result<ImageRegistry, Error> {
    let stored = |e: Error| Error::storage(format!("unreadable image registry row: {e}"));
    Ok(ImageRegistry {
        registry_id: row.id(0)?,
        org_id: OrgId::parse("org_id", &row.text(1)?).map_err(stored)?,
        image_repository_name: ImageRepositoryName::parse(&row.text(2)?).map_err(stored)?,
        public: row.flag(3)?,
        container_registry_id: ContainerRegistryId::parse(&row.text(4)?).map_err(stored)?,
        token_vault_id: row
            .optional_text(5)?
            .map(|v| TokenVaultId::parse(&v))
            .transpose()
            .map_err(stored)?,
        created_at: row.timestamp(6)?,
        updated_at: row.timestamp(7)?,
    })
}

/// The uniqueness rule as the client should hear it.
fn duplicate(registry: &ImageRegistry) -> Error {
    Error::Conflict {
        detail: format!(
            "a registry for repository {:?} in container registry {:?} already exists in this org",
            registry.image_repository_name.as_str(),
            registry.container_registry_id.as_str()
        ),
        field: Some("image_repository_name".to_owned()),
    }
}

pub(crate) fn insert(db: &dyn Db, registry: &ImageRegistry) -> Result<(), Error> {
    super::intern_org(db, &registry.org_id)?;
    let sql = format!(
        "INSERT INTO image_registries ({INSERTED}) VALUES (?, {ORG_KEY}, ?, ?, ?, ?, ?, ?)"
    );
    match db.execute(&sql, &params(registry)) {
        Ok(_) => Ok(()),
        Err(DbError::Unique(_)) => Err(duplicate(registry)),
        Err(other) => Err(other.into()),
    }
}

fn params(registry: &ImageRegistry) -> Vec<Value> {
    vec![
        registry.registry_id.into(),
        registry.org_id.as_str().into(),
        registry.image_repository_name.as_str().into(),
        registry.public.into(),
        registry.container_registry_id.as_str().into(),
        registry.token_vault_id.as_ref().map(|v| v.as_str()).into(),
        registry.created_at.into(),
        registry.updated_at.into(),
    ]
}

/// A live registry `visibility` may read, or `None`.
pub(crate) fn find_visible(
    db: &dyn Db,
    registry_id: RegistryId,
    visibility: Visibility<'_>,
) -> Result<Option<ImageRegistry>, Error> {
    let rows = match visibility {
        Visibility::PublicOnly => db.execute(
            &format!(
                "SELECT {COLUMNS} FROM image_registries \
                 WHERE registry_id = ? AND deleted_at IS NULL AND public = 1"
            ),
            &[registry_id.into()],
        )?,
        Visibility::Org(org_id) => db.execute(
            &format!(
                "SELECT {COLUMNS} FROM image_registries \
                 WHERE registry_id = ? AND deleted_at IS NULL AND (org_key = {ORG_KEY} OR public = 1)"
            ),
            &[registry_id.into(), org_id.as_str().into()],
        )?,
    };
    rows.first().map(from_row).transpose()
}

/// A live registry owned by `org_id`, or `None`: what writes may touch.
pub(crate) fn find_owned(
    db: &dyn Db,
    registry_id: RegistryId,
    org_id: &OrgId,
) -> Result<Option<ImageRegistry>, Error> {
    let rows = db.execute(
        &format!(
            "SELECT {COLUMNS} FROM image_registries \
             WHERE registry_id = ? AND org_key = {ORG_KEY} AND deleted_at IS NULL"
        ),
        &[registry_id.into(), org_id.as_str().into()],
    )?;
    rows.first().map(from_row).transpose()
}

/// The org's live registries, newest first.
pub(crate) fn list(
    db: &dyn Db,
    org_id: &OrgId,
    after: Option<RegistryId>,
    limit: usize,
) -> Result<Page<ImageRegistry>, Error> {
    Keyset {
        columns: COLUMNS,
        table: "image_registries",
        filter: &format!("org_key = {ORG_KEY} AND deleted_at IS NULL"),
        key: "registry_id",
        order: Order::NewestFirst,
    }
    .page(
        db,
        vec![org_id.as_str().into()],
        after.map(Into::into),
        limit,
        from_row,
        |r| r.registry_id.to_text(),
    )
}

/// Stores every changeable field of `registry` (matched by id and org).
pub(crate) fn update(db: &dyn Db, registry: &ImageRegistry) -> Result<(), Error> {
    let result = db.execute(
        &format!(
            "UPDATE image_registries SET image_repository_name = ?, public = ?, \
             container_registry_id = ?, token_vault_id = ?, updated_at = ? \
             WHERE registry_id = ? AND org_key = {ORG_KEY} AND deleted_at IS NULL"
        ),
        &[
            registry.image_repository_name.as_str().into(),
            registry.public.into(),
            registry.container_registry_id.as_str().into(),
            registry.token_vault_id.as_ref().map(|v| v.as_str()).into(),
            registry.updated_at.into(),
            registry.registry_id.into(),
            registry.org_id.as_str().into(),
        ],
    );
    match result {
        Ok(_) => Ok(()),
        Err(DbError::Unique(_)) => Err(duplicate(registry)),
        Err(other) => Err(other.into()),
    }
}

/// Marks the registry deleted; `false` if there was no such live registry in the org.
pub(crate) fn soft_delete(
    db: &dyn Db,
    registry_id: RegistryId,
    org_id: &OrgId,
    now: Timestamp,
) -> Result<bool, Error> {
    let rows = db.execute(
        &format!(
            "UPDATE image_registries SET deleted_at = ?, updated_at = ? \
             WHERE registry_id = ? AND org_key = {ORG_KEY} AND deleted_at IS NULL \
             RETURNING registry_id"
        ),
        &[
            now.into(),
            now.into(),
            registry_id.into(),
            org_id.as_str().into(),
        ],
    )?;
    Ok(!rows.rows.is_empty())
}
