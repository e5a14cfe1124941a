//! `api_tokens`: digests of org tokens, their org and role.

use crate::db::{Db, Row};
use crate::domain::ids::TokenId;
use crate::domain::token::ApiToken;
use crate::domain::{OrgId, Role, Timestamp};
use crate::error::Error;

use super::{Keyset, ORG_KEY, Order, Page};

const COLUMNS: &str = "token_id, (SELECT org_id FROM orgs WHERE orgs.org_key = api_tokens.org_key), \
     role, name, created_at";

fn from_row(row: Row<'_>) -> Result<ApiToken, Error> {
    let stored = |e: Error| Error::storage(format!("unreadable api token row: {e}"));
    Ok(ApiToken {
        token_id: row.id(0)?,
        org_id: OrgId::parse("org_id", &row.text(1)?).map_err(stored)?,
        role: Role::parse("role", &row.text(2)?).map_err(stored)?,
        name: row.text(3)?,
        created_at: row.timestamp(4)?,
    })
}

pub(crate) fn insert(db: &dyn Db, token: &ApiToken, digest: &str) -> Result<(), Error> {
    super::intern_org(db, &token.org_id)?;
    db.execute(
        &format!(
            "INSERT INTO api_tokens (token_id, org_key, role, name, token_sha256, created_at) \
             VALUES (?, {ORG_KEY}, ?, ?, ?, ?)"
        ),
        &[
            token.token_id.into(),
            token.org_id.as_str().into(),
            token.role.as_str().into(),
            token.name.as_str().into(),
            digest.into(),
            token.created_at.into(),
        ],
    )?;
    Ok(())
}

/// The live (not revoked) token with this digest.
pub(crate) fn find_live_by_digest(db: &dyn Db, digest: &str) -> Result<Option<ApiToken>, Error> {
    let rows = db.execute(
        &format!("SELECT {COLUMNS} FROM api_tokens WHERE token_sha256 = ? AND revoked_at IS NULL"),
        &[digest.into()],
    )?;
    rows.first().map(from_row).transpose()
}

/// The org's live tokens, newest first.
pub(crate) fn list(
    db: &dyn Db,
    org_id: &OrgId,
    after: Option<TokenId>,
    limit: usize,
) -> Result<Page<ApiToken>, Error> {
    Keyset {
        columns: COLUMNS,
        table: "api_tokens",
        filter: &format!("org_key = {ORG_KEY} AND revoked_at IS NULL"),
        key: "token_id",
        order: Order::NewestFirst,
    }
    .page(
        db,
        vec![org_id.as_str().into()],
        after.map(Into::into),
        limit,
        from_row,
        |t| t.token_id.to_text(),
    )
}

/// One live token of the org.
pub(crate) fn find(
    db: &dyn Db,
    token_id: TokenId,
    org_id: &OrgId,
) -> Result<Option<ApiToken>, Error> {
    let rows = db.execute(
        &format!(
            "SELECT {COLUMNS} FROM api_tokens \
             WHERE token_id = ? AND org_key = {ORG_KEY} AND revoked_at IS NULL"
        ),
        &[token_id.into(), org_id.as_str().into()],
    )?;
    rows.first().map(from_row).transpose()
}

/// Revokes a live token of the org; `false` if there was none.
pub(crate) fn revoke(
    db: &dyn Db,
    token_id: TokenId,
    org_id: &OrgId,
    now: Timestamp,
) -> Result<bool, Error> {
    let rows = db.execute(
        &format!(
            "UPDATE api_tokens SET revoked_at = ? \
             WHERE token_id = ? AND org_key = {ORG_KEY} AND revoked_at IS NULL RETURNING token_id"
        ),
        &[now.into(), token_id.into(), org_id.as_str().into()],
    )?;
    Ok(!rows.rows.is_empty())
}
