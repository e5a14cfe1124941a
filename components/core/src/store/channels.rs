//! `image_versions`: the current version of each channel of a registry.
//!
//! Every function that changes a version expects to run inside a transaction opened by the
//! caller (`db::transaction`), so read-modify-write is atomic under `BEGIN IMMEDIATE`.

use crate::auth::{ReadableRegistry, WritableRegistry};
use crate::db::{Db, Row};
use crate::domain::image::VersionChange;
use crate::domain::{Channel, ImageVersion, RegistryId, SemVersion, Timestamp, UpdateType};
use crate::error::Error;

use super::{Keyset, ORG_KEY, Order, Page, REGISTRY_KEY};

const COLUMNS: &str = "(SELECT registry_id FROM image_registries AS r \
                        WHERE r.registry_key = image_versions.registry_key), \
     channel, major, minor, patch, created_at, updated_at";

fn from_row(row: Row<'_>) -> Result<ImageVersion, Error> {
    let stored = |e: Error| Error::storage(format!("unreadable image version row: {e}"));
    let part = |index: usize| -> Result<u64, Error> {
        u64::try_from(row.integer(index)?).map_err(|_| Error::storage("negative version part"))
    };
    Ok(ImageVersion {
        registry_id: row.id(0)?,
        channel: Channel::parse(&row.text(1)?).map_err(stored)?,
        version: SemVersion::new(part(2)?, part(3)?, part(4)?).map_err(stored)?,
        created_at: row.timestamp(5)?,
        updated_at: row.timestamp(6)?,
    })
}

pub(crate) fn find(
    db: &dyn Db,
    registry: &ReadableRegistry,
    channel: &Channel,
) -> Result<Option<ImageVersion>, Error> {
    find_unchecked(db, registry.id(), channel)
}

/// For callers that already hold the registry's proof in another form (the write paths).
fn find_unchecked(
    db: &dyn Db,
    registry_id: RegistryId,
    channel: &Channel,
) -> Result<Option<ImageVersion>, Error> {
    let rows = db.execute(
        &format!(
            "SELECT {COLUMNS} FROM image_versions \
             WHERE registry_key = {REGISTRY_KEY} AND channel = ?"
        ),
        &[registry_id.into(), channel.as_str().into()],
    )?;
    rows.first().map(from_row).transpose()
}

/// The registry's channels in name order (channels are names, not events).
pub(crate) fn list(
    db: &dyn Db,
    registry: &ReadableRegistry,
    after: Option<&Channel>,
    limit: usize,
) -> Result<Page<ImageVersion>, Error> {
    Keyset {
        columns: COLUMNS,
        table: "image_versions",
        filter: &format!("registry_key = {REGISTRY_KEY}"),
        key: "channel",
        order: Order::ByName,
    }
    .page(
        db,
        vec![registry.id().into()],
        after.map(|channel| channel.as_str().into()),
        limit,
        from_row,
        |v| v.channel.to_string(),
    )
}

/// GetVersionForChannel: the channel's version, created at `initial` if it does not exist yet.
/// Returns the version and whether it was created. Call inside a transaction.
pub(crate) fn get_or_create(
    db: &dyn Db,
    registry: &WritableRegistry,
    channel: &Channel,
    initial: SemVersion,
    now: Timestamp,
) -> Result<(ImageVersion, bool), Error> {
    let registry_id = registry.id();
    let org_id = &registry.registry().org_id;
    // ON CONFLICT DO NOTHING + RETURNING tells in one statement whether this call created it.
    let created = db.execute(
        &format!(
            "INSERT INTO image_versions \
               (registry_key, channel, org_key, major, minor, patch, created_at, updated_at) \
             VALUES ({REGISTRY_KEY}, ?, {ORG_KEY}, ?, ?, ?, ?, ?) \
             ON CONFLICT (registry_key, channel) DO NOTHING RETURNING {COLUMNS}"
        ),
        &[
            registry_id.into(),
            channel.as_str().into(),
            org_id.as_str().into(),
            (initial.major() as i64).into(),
            (initial.minor() as i64).into(),
            (initial.patch() as i64).into(),
            now.into(),
            now.into(),
        ],
    )?;
    if let Some(row) = created.first() {
        return Ok((from_row(row)?, true));
    }
    let existing = find_unchecked(db, registry_id, channel)?
        .ok_or_else(|| Error::storage("a channel version vanished inside a transaction"))?;
    Ok((existing, false))
}

/// Stores a new version for an existing channel of `registry`. Call inside a transaction.
pub(crate) fn set(
    db: &dyn Db,
    registry: &WritableRegistry,
    current: &ImageVersion,
    version: SemVersion,
    now: Timestamp,
) -> Result<ImageVersion, Error> {
    db.execute(
        &format!(
            "UPDATE image_versions SET major = ?, minor = ?, patch = ?, updated_at = ? \
             WHERE registry_key = {REGISTRY_KEY} AND channel = ?"
        ),
        &[
            (version.major() as i64).into(),
            (version.minor() as i64).into(),
            (version.patch() as i64).into(),
            now.into(),
            registry.id().into(),
            current.channel.as_str().into(),
        ],
    )?;
    Ok(ImageVersion {
        version,
        updated_at: now,
        ..current.clone()
    })
}

/// UpdateVersion: moves the channel's version by `update_type` — creating the channel at 0.0.0
/// first if needed — and returns the stored result. Call inside a transaction (read, bump,
/// write under `BEGIN IMMEDIATE`).
///
/// The rule is [`SemVersion::bump`] itself; the pipeline's hot path (`POST …/images`) spells
/// it in SQL instead (migration 0005's trigger), and a property test holds the two equal.
pub(crate) fn bump(
    db: &dyn Db,
    registry: &WritableRegistry,
    channel: &Channel,
    update_type: UpdateType,
    now: Timestamp,
) -> Result<ImageVersion, Error> {
    let (current, _) = get_or_create(db, registry, channel, SemVersion::default(), now)?;
    let next = current.version.bump(update_type)?;
    set(db, registry, &current, next, now)
}

/// Why a channel did not move when the image INSERT found the part to bump at its maximum: `bump` says so
/// in the domain's words (409 naming the part). If the channel has moved since the write was
/// refused (a concurrent `PUT …/version` outside our transaction), it is contention: 503,
/// retry.
pub(crate) fn at_maximum(
    db: &dyn Db,
    registry: &WritableRegistry,
    channel: &Channel,
    change: VersionChange,
) -> Error {
    let current = match find_unchecked(db, registry.id(), channel) {
        Ok(Some(current)) => current,
        Ok(None) => return Error::storage(format!("channel {channel} vanished")),
        Err(error) => return error,
    };
    let bumped = match change {
        VersionChange::Bump(update_type) => current.version.bump(update_type),
        VersionChange::Keep => Ok(current.version),
    };
    match bumped {
        Err(at_maximum) => at_maximum,
        Ok(_) => Error::Busy,
    }
}
