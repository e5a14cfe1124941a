//! `api_tokens`: digests of org tokens, their org and role.

use uuid::Uuid;

use crate::db::{Db, Row};
use crate::domain::{OrgId, Role, Timestamp};
use crate::error::Error;

use super::Page;

/// A stored token, without its secret (which is never stored).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiToken {
    pub token_id: Uuid,
    pub org_id: OrgId,
    pub role: Role,
    pub name: String,
    pub created_at: Timestamp,
}

const COLUMNS: &str = "token_id, org_id, role, name, created_at";

fn from_row(row: Row<'_>) -> Result<ApiToken, Error> {
    let stored = |e: Error| Error::storage(format!("unreadable api token row: {e}"));
    Ok(ApiToken {
        token_id: crate::domain::ids::parse_uuid("token_id", &row.text(0)?).map_err(stored)?,
        org_id: OrgId::parse("org_id", &row.text(1)?).map_err(stored)?,
        role: Role::parse("role", &row.text(2)?).map_err(stored)?,
        name: row.text(3)?,
        created_at: Timestamp::from_stored(&row.text(4)?)?,
    })
}

pub fn insert(db: &dyn Db, token: &ApiToken, digest: &str) -> Result<(), Error> {
    db.execute(
        "INSERT INTO api_tokens (token_id, org_id, role, name, token_sha256, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        &[
            token.token_id.hyphenated().to_string().into(),
            token.org_id.as_str().into(),
            token.role.as_str().into(),
            token.name.as_str().into(),
            digest.into(),
            token.created_at.to_stored().into(),
        ],
    )?;
    Ok(())
}

/// The live (not revoked) token with this digest.
pub fn find_live_by_digest(db: &dyn Db, digest: &str) -> Result<Option<ApiToken>, Error> {
    let rows = db.execute(
        &format!("SELECT {COLUMNS} FROM api_tokens WHERE token_sha256 = ? AND revoked_at IS NULL"),
        &[digest.into()],
    )?;
    rows.first().map(from_row).transpose()
}

/// The org's live tokens, newest first.
pub fn list(
    db: &dyn Db,
    org_id: &OrgId,
    after: Option<Uuid>,
    limit: usize,
) -> Result<Page<ApiToken>, Error> {
    let fetch = (limit as i64 + 1).into();
    let rows = match after {
        None => db.execute(
            &format!(
                "SELECT {COLUMNS} FROM api_tokens WHERE org_id = ? AND revoked_at IS NULL \
                 ORDER BY token_id DESC LIMIT ?"
            ),
            &[org_id.as_str().into(), fetch],
        )?,
        Some(cursor) => db.execute(
            &format!(
                "SELECT {COLUMNS} FROM api_tokens WHERE org_id = ? AND revoked_at IS NULL \
                 AND token_id < ? ORDER BY token_id DESC LIMIT ?"
            ),
            &[
                org_id.as_str().into(),
                cursor.hyphenated().to_string().into(),
                fetch,
            ],
        )?,
    };
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_rows(items, limit, |t| {
        t.token_id.hyphenated().to_string()
    }))
}

/// Revokes a live token of the org; `false` if there was none.
pub fn revoke(db: &dyn Db, token_id: Uuid, org_id: &OrgId, now: Timestamp) -> Result<bool, Error> {
    let rows = db.execute(
        "UPDATE api_tokens SET revoked_at = ? WHERE token_id = ? AND org_id = ? AND revoked_at IS NULL \
         RETURNING token_id",
        &[now.to_stored().into(), token_id.hyphenated().to_string().into(), org_id.as_str().into()],
    )?;
    Ok(!rows.rows.is_empty())
}
