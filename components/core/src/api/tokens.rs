//! API tokens: `POST /api/v1/tokens`, `GET /api/v1/tokens`, `GET|DELETE /api/v1/tokens/{token_id}`.
//!
//! The bootstrap admin manages tokens of any org (naming it); an org's admin tokens manage
//! that org's tokens. The plaintext token is in the creation response only; we keep its digest.

use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::domain::ids::TokenId;
use crate::domain::token::ApiToken;
use crate::domain::token::{format_token, token_digest};
use crate::domain::{OrgId, Role, check_text};
use crate::error::Error;
use crate::store::tokens as store;

use super::{BASE_PATH, Context, PageBody, created, json_response, no_content};

/// The longest token name we keep.
const MAX_NAME_CHARS: usize = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTokenBody {
    #[serde(default)]
    org_id: Option<String>,
    role: String,
    name: String,
}

#[derive(Serialize)]
struct TokenBody {
    token_id: String,
    org_id: String,
    role: &'static str,
    name: String,
    created_at: String,
    /// Only in the creation response.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl From<ApiToken> for TokenBody {
    fn from(token: ApiToken) -> Self {
        TokenBody {
            token_id: token.token_id.to_text(),
            org_id: token.org_id.to_string(),
            role: token.role.as_str(),
            name: token.name,
            created_at: token.created_at.to_rfc3339(),
            token: None,
        }
    }
}

pub(super) fn create(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let env = ctx.env;
    let body: CreateTokenBody = ctx.request.json()?;
    let named = body
        .org_id
        .as_deref()
        .map(|o| OrgId::parse("org_id", o))
        .transpose()?;
    let org_id = ctx.act_for(named)?;
    let role = Role::parse("role", &body.role)?;
    check_text("name", &body.name, MAX_NAME_CHARS)?;
    let token = ApiToken {
        token_id: TokenId::new(env.ids.new_id()),
        org_id,
        role,
        name: body.name,
        created_at: env.clock.now(),
    };
    let secret = format_token(env.ids.secret());
    store::insert(env.db, &token, &token_digest(&secret))?;
    let location = format!("{BASE_PATH}/tokens/{}", token.token_id);
    created(
        location,
        &TokenBody {
            token: Some(secret),
            ..TokenBody::from(token)
        },
    )
}

pub(super) fn list(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let org_id = ctx.acting_org()?;
    let (limit, cursor) = ctx.request.page_request()?;
    let after = cursor.map(|c| TokenId::parse("cursor", c)).transpose()?;
    let page = store::list(ctx.env.db, &org_id, after, limit)?;
    json_response(StatusCode::OK, &PageBody::from_page(page, TokenBody::from))
}

/// One live token of the org (no secret): what a token id in a log or an audit refers to.
pub(super) fn get(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let org_id = ctx.acting_org()?;
    let token_id = ctx.token_id()?;
    let token = store::find(ctx.env.db, token_id, &org_id)?.ok_or_else(|| not_found(token_id))?;
    json_response(StatusCode::OK, &TokenBody::from(token))
}

fn not_found(token_id: TokenId) -> Error {
    Error::not_found(format!("token {token_id} does not exist"))
}

pub(super) fn revoke(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let org_id = ctx.acting_org()?;
    let token_id = ctx.token_id()?;
    if store::revoke(ctx.env.db, token_id, &org_id, ctx.env.clock.now())? {
        Ok(no_content())
    } else {
        Err(not_found(token_id))
    }
}
