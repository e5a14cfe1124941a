//! Push receivers: the registry component's routes that make, list and remove them.
//!
//! - `POST   /api/v1/registries/{registry_id}/receivers` `{source, channel?, update_type?,
//!   on_unknown_tag?}` (write role): 201 with the delivery `url` and the `secret`, shown once.
//! - `GET    /api/v1/registries/{registry_id}/receivers[/{receiver_id}]`: without secrets.
//! - `DELETE /api/v1/registries/{registry_id}/receivers/{receiver_id}` (write role).
//!
//! The deliveries themselves arrive at `POST /api/v1/hooks/{receiver_id}` (`api::hooks`).

use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::domain::ids::ReceiverId;
use crate::domain::image::VersionChange;
use crate::domain::receiver::{Receiver, SigningKey, Source, UnknownTag};
use crate::domain::{Channel, RegistryId};
use crate::error::Error;
use crate::store::receivers as store;

use super::{BASE_PATH, Context, PageBody, created, json_response, no_content};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewReceiverBody {
    source: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    update_type: Option<String>,
    #[serde(default)]
    on_unknown_tag: Option<String>,
}

/// A receiver as the API shows it; `secret` only in the answer that made it.
#[derive(Serialize)]
struct ReceiverBody {
    receiver_id: String,
    registry_id: String,
    source: &'static str,
    channel: Option<String>,
    update_type: Option<&'static str>,
    on_unknown_tag: &'static str,
    created_at: String,
    /// Where the registry sends its pushes. For Docker Hub and Quay, which can send nothing
    /// but a URL, it ends in the secret when shown at creation, and in `{secret}` after.
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl ReceiverBody {
    fn new(receiver: Receiver, origin: &str, secret: Option<String>) -> ReceiverBody {
        let mut url = format!("{origin}{BASE_PATH}/hooks/{}", receiver.receiver_id);
        if receiver.source.secret_in_path() {
            url.push('/');
            url.push_str(secret.as_deref().unwrap_or("{secret}"));
        }
        ReceiverBody {
            receiver_id: receiver.receiver_id.to_text(),
            registry_id: receiver.registry_id.to_text(),
            source: receiver.source.as_str(),
            channel: receiver.channel.map(|c| c.as_str().to_owned()),
            update_type: receiver.update_type.map(|u| u.as_str()),
            on_unknown_tag: receiver.on_unknown_tag.as_str(),
            created_at: receiver.created_at.to_rfc3339(),
            url,
            secret,
        }
    }
}

fn location(registry_id: RegistryId, receiver_id: ReceiverId) -> String {
    format!("{BASE_PATH}/registries/{registry_id}/receivers/{receiver_id}")
}

fn not_found(receiver_id: ReceiverId) -> Error {
    Error::not_found(format!("receiver {receiver_id} does not exist"))
}

pub(super) fn create(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let env = ctx.env;
    let registry_id = ctx.registry_id()?;
    let body: NewReceiverBody = ctx.request.json()?;
    let source = Source::parse("source", &body.source)?;
    let channel = body.channel.as_deref().map(Channel::parse).transpose()?;
    let update_type = body
        .update_type
        .as_deref()
        .map(|u| VersionChange::parse("update_type", u))
        .transpose()?;
    let on_unknown_tag = body
        .on_unknown_tag
        .as_deref()
        .map(|u| UnknownTag::parse("on_unknown_tag", u))
        .transpose()?
        .unwrap_or_default();
    let key = SigningKey::from_variable(env.config.webhook_signing_key.as_deref())?;
    let registry = ctx.writable_registry(registry_id)?;
    let receiver = Receiver {
        receiver_id: ReceiverId::new(env.ids.new_id()),
        registry_id,
        org_id: registry.registry().org_id.clone(),
        source,
        channel,
        update_type,
        on_unknown_tag,
        created_at: env.clock.now(),
    };
    store::insert(env.db, &registry, &receiver)?;
    let secret = key.receiver_secret(receiver.receiver_id).shown(source);
    let receiver_id = receiver.receiver_id;
    created(
        location(registry_id, receiver_id),
        &ReceiverBody::new(receiver, &ctx.origin(), Some(secret)),
    )
}

pub(super) fn list(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let registry = ctx.writable_registry(ctx.registry_id()?)?;
    let (limit, cursor) = ctx.request.page_request()?;
    let after = cursor
        .map(|c| ReceiverId::parse("cursor", c).map_err(|_| Error::bad_cursor()))
        .transpose()?;
    let page = store::list(ctx.env.db, registry.readable(), after, limit)?;
    let origin = ctx.origin();
    json_response(
        StatusCode::OK,
        &PageBody::from_page(page, |r| ReceiverBody::new(r, &origin, None)),
    )
}

pub(super) fn get(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let registry = ctx.writable_registry(ctx.registry_id()?)?;
    let receiver_id = ctx.receiver_id()?;
    let receiver = store::find(ctx.env.db, registry.readable(), receiver_id)?
        .ok_or_else(|| not_found(receiver_id))?;
    json_response(
        StatusCode::OK,
        &ReceiverBody::new(receiver, &ctx.origin(), None),
    )
}

pub(super) fn delete(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let registry = ctx.writable_registry(ctx.registry_id()?)?;
    let receiver_id = ctx.receiver_id()?;
    if store::delete(ctx.env.db, &registry, receiver_id)? {
        Ok(no_content())
    } else {
        Err(not_found(receiver_id))
    }
}
