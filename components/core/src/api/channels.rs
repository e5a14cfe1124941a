//! Channels and their versions: `/api/v1/registries/{registry_id}/channels[/{channel}[/bump|/version]]`.
//!
//! - `GET  …/channels` and `GET …/channels/{channel}`: read (public registries: no token).
//! - `PUT  …/channels/{channel}`: GetVersionForChannel — get-or-create (201 created, 200 existed),
//!   starting at 0.0.0, `initial_version` or the version in `original_image_tag`.
//! - `POST …/channels/{channel}/bump`: UpdateVersion — `{"update_type": "major"|"minor"|"patch"}`.
//! - `PUT  …/channels/{channel}/version`: UpdateSemVersion — `{"version": "1.2.3"|"v1.2.3"|"{channel}-1.2.3"}`.

use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::db::transaction;
use crate::domain::{Channel, ImageVersion, RegistryId, SemVersion, UpdateType};
use crate::error::Error;
use crate::store::channels as store;

use super::{BASE_PATH, Context, PageBody, created, json_response};

/// The JSON form of a channel's version.
#[derive(Serialize)]
pub(crate) struct VersionBody {
    registry_id: String,
    channel: String,
    major: u64,
    minor: u64,
    patch: u64,
    /// `"{channel}-{major}.{minor}.{patch}"`
    version: String,
    created_at: String,
    updated_at: String,
}

impl From<ImageVersion> for VersionBody {
    fn from(version: ImageVersion) -> Self {
        VersionBody {
            registry_id: version.registry_id.to_text(),
            channel: version.channel.to_string(),
            major: version.version.major(),
            minor: version.version.minor(),
            patch: version.version.patch(),
            version: version.version_string(),
            created_at: version.created_at.to_rfc3339(),
            updated_at: version.updated_at.to_rfc3339(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GetOrCreateBody {
    #[serde(default)]
    initial_version: Option<String>,
    #[serde(default)]
    original_image_tag: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BumpBody {
    update_type: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetVersionBody {
    version: String,
}

fn location(registry_id: RegistryId, channel: &Channel) -> String {
    format!("{BASE_PATH}/registries/{registry_id}/channels/{channel}")
}

pub(super) fn list(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let registry = ctx.readable_registry(ctx.registry_id()?)?;
    let (limit, cursor) = ctx.request.page_request()?;
    let after = cursor
        .map(|c| Channel::parse(c).map_err(|_| Error::bad_cursor()))
        .transpose()?;
    let page = store::list(ctx.env.db, &registry, after.as_ref(), limit)?;
    json_response(
        StatusCode::OK,
        &PageBody::from_page(page, VersionBody::from),
    )
}

pub(super) fn get(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let registry_id = ctx.registry_id()?;
    let channel = &ctx.channel()?;
    let registry = ctx.readable_registry(registry_id)?;
    let version = store::find(ctx.env.db, &registry, channel)?.ok_or_else(|| {
        Error::not_found(format!(
            "channel {channel} does not exist in registry {registry_id}"
        ))
    })?;
    json_response(StatusCode::OK, &VersionBody::from(version))
}

pub(super) fn get_or_create(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let env = ctx.env;
    let registry_id = ctx.registry_id()?;
    let channel = &ctx.channel()?;
    let body: GetOrCreateBody = ctx.request.optional_json()?;
    let initial = match (&body.initial_version, &body.original_image_tag) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "initial_version",
                "give initial_version or original_image_tag, not both",
            ));
        }
        (Some(version), None) => {
            SemVersion::parse_for_channel("initial_version", channel, version)?
        }
        (None, Some(tag)) => SemVersion::parse_for_channel("original_image_tag", channel, tag)?,
        (None, None) => SemVersion::default(),
    };
    let (version, was_created) = transaction(env.db, || {
        let registry = ctx.writable_registry(registry_id)?;
        store::get_or_create(env.db, &registry, channel, initial, env.clock.now())
    })?;
    if was_created {
        created(location(registry_id, channel), &VersionBody::from(version))
    } else {
        json_response(StatusCode::OK, &VersionBody::from(version))
    }
}

pub(super) fn bump(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let env = ctx.env;
    let registry_id = ctx.registry_id()?;
    let channel = &ctx.channel()?;
    let body: BumpBody = ctx.request.json()?;
    let update_type = UpdateType::parse("update_type", &body.update_type)?;
    let registry = ctx.writable_registry(registry_id)?;
    let bumped = transaction(env.db, || {
        store::bump(env.db, &registry, channel, update_type, env.clock.now())
    })?;
    json_response(StatusCode::OK, &VersionBody::from(bumped))
}

/// UpdateSemVersion. A version lower than the current one is refused (409): images are tagged
/// with these strings, and going back would hand out a tag that was already used.
pub(super) fn set_version(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let env = ctx.env;
    let registry_id = ctx.registry_id()?;
    let channel = &ctx.channel()?;
    let body: SetVersionBody = ctx.request.json()?;
    let requested = SemVersion::parse_for_channel("version", channel, &body.version)?;
    let stored = transaction(env.db, || {
        let registry = ctx.writable_registry(registry_id)?;
        let now = env.clock.now();
        let (current, _) = store::get_or_create(env.db, &registry, channel, requested, now)?;
        if requested < current.version {
            return Err(Error::Conflict {
                detail: format!(
                    "{} is lower than the channel's current version {}; versions never move backwards",
                    requested.for_channel(channel),
                    current.version_string()
                ),
                field: Some("version".to_owned()),
            });
        }
        if requested == current.version {
            return Ok(current);
        }
        store::set(env.db, &registry, &current, requested, now)
    })?;
    json_response(StatusCode::OK, &VersionBody::from(stored))
}
