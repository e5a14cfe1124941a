//! `receivers` and `receiver_deliveries`: a registry's push receivers, and the deliveries each
//! applied (the exactly-once record).

use crate::auth::{ReadableRegistry, WritableRegistry};
use crate::db::{Db, DbError, Row};
use crate::domain::ids::ReceiverId;
use crate::domain::image::VersionChange;
use crate::domain::receiver::{Receiver, Source, UnknownTag};
use crate::domain::{Channel, OrgId, Timestamp};
use crate::error::Error;

use super::{Keyset, Order, Page, REGISTRY_KEY};

const COLUMNS: &str = "receiver_id, \
     (SELECT registry_id FROM image_registries AS r WHERE r.registry_key = receivers.registry_key), \
     (SELECT org_id FROM orgs JOIN image_registries AS r USING (org_key) \
      WHERE r.registry_key = receivers.registry_key), \
     source, channel, update_type, on_unknown_tag, created_at";

fn from_row(row: Row<'_>) -> Result<Receiver, Error> {
    let stored = |e: Error| Error::storage(format!("unreadable receiver row: {e}"));
    Ok(Receiver {
        receiver_id: row.id(0)?,
        registry_id: row.id(1)?,
        org_id: OrgId::parse("org_id", &row.text(2)?).map_err(stored)?,
        source: Source::parse("source", &row.text(3)?).map_err(stored)?,
        channel: row
            .optional_text(4)?
            .map(|c| Channel::parse(&c))
            .transpose()
            .map_err(stored)?,
        update_type: row
            .optional_text(5)?
            .map(|u| VersionChange::parse("update_type", &u))
            .transpose()
            .map_err(stored)?,
        on_unknown_tag: UnknownTag::parse("on_unknown_tag", &row.text(6)?).map_err(stored)?,
        created_at: row.timestamp(7)?,
    })
}

pub(crate) fn insert(
    db: &dyn Db,
    registry: &WritableRegistry,
    receiver: &Receiver,
) -> Result<(), Error> {
    db.execute(
        &format!(
            "INSERT INTO receivers \
             (receiver_id, registry_key, source, channel, update_type, on_unknown_tag, created_at) \
             VALUES (?, {REGISTRY_KEY}, ?, ?, ?, ?, ?)"
        ),
        &[
            receiver.receiver_id.into(),
            registry.id().into(),
            receiver.source.as_str().into(),
            receiver.channel.as_ref().map(Channel::as_str).into(),
            receiver.update_type.map(|u| u.as_str()).into(),
            receiver.on_unknown_tag.as_str().into(),
            receiver.created_at.into(),
        ],
    )?;
    Ok(())
}

/// The registry's receivers, newest first.
pub(crate) fn list(
    db: &dyn Db,
    registry: &ReadableRegistry,
    after: Option<ReceiverId>,
    limit: usize,
) -> Result<Page<Receiver>, Error> {
    Keyset {
        columns: COLUMNS,
        table: "receivers",
        filter: &format!("registry_key = {REGISTRY_KEY}"),
        key: "receiver_id",
        order: Order::NewestFirst,
    }
    .page(
        db,
        vec![registry.id().into()],
        after.map(Into::into),
        limit,
        from_row,
        |r| r.receiver_id.to_text(),
    )
}

/// One receiver of the registry.
pub(crate) fn find(
    db: &dyn Db,
    registry: &ReadableRegistry,
    receiver_id: ReceiverId,
) -> Result<Option<Receiver>, Error> {
    let rows = db.execute(
        &format!(
            "SELECT {COLUMNS} FROM receivers WHERE receiver_id = ? AND registry_key = {REGISTRY_KEY}"
        ),
        &[receiver_id.into(), registry.id().into()],
    )?;
    rows.first().map(from_row).transpose()
}

/// Removes a receiver and its delivery records; whether there was one.
pub(crate) fn delete(
    db: &dyn Db,
    registry: &WritableRegistry,
    receiver_id: ReceiverId,
) -> Result<bool, Error> {
    let rows = db.execute(
        &format!(
            "DELETE FROM receivers WHERE receiver_id = ? AND registry_key = {REGISTRY_KEY} \
             RETURNING receiver_id"
        ),
        &[receiver_id.into(), registry.id().into()],
    )?;
    Ok(!rows.rows.is_empty())
}

/// A receiver of a live registry, by its id alone: the delivery route has no token, and the
/// receiver's secret is what proves the sender.
pub(crate) fn find_for_delivery(
    db: &dyn Db,
    receiver_id: ReceiverId,
) -> Result<Option<Receiver>, Error> {
    let rows = db.execute(
        &format!(
            "SELECT {COLUMNS} FROM receivers WHERE receiver_id = ? AND registry_key IN \
             (SELECT registry_key FROM image_registries WHERE deleted_at IS NULL)"
        ),
        &[receiver_id.into()],
    )?;
    rows.first().map(from_row).transpose()
}

/// The outcome recorded for a delivery the receiver already applied.
pub(crate) fn applied_delivery(
    db: &dyn Db,
    receiver_id: ReceiverId,
    delivery_key: &str,
) -> Result<Option<String>, Error> {
    let rows = db.execute(
        "SELECT outcome FROM receiver_deliveries WHERE receiver_id = ? AND delivery_key = ?",
        &[receiver_id.into(), delivery_key.into()],
    )?;
    rows.first().map(|row| row.text(0)).transpose()
}

/// Records that the receiver applied a delivery, with the outcome a retry is answered with.
/// `false` if a concurrent copy of the delivery recorded it first (the caller's transaction
/// must then be rolled back and the first outcome answered).
pub(crate) fn record_delivery(
    db: &dyn Db,
    receiver_id: ReceiverId,
    delivery_key: &str,
    received_at: Timestamp,
    outcome: &str,
) -> Result<bool, Error> {
    match db.execute(
        "INSERT INTO receiver_deliveries (receiver_id, delivery_key, received_at, outcome) \
         VALUES (?, ?, ?, ?)",
        &[
            receiver_id.into(),
            delivery_key.into(),
            received_at.into(),
            outcome.into(),
        ],
    ) {
        Ok(_) => Ok(true),
        Err(DbError::Unique(_)) => Ok(false),
        // The receiver was deleted since it was read.
        Err(DbError::ForeignKey(_)) => Err(Error::not_found(format!(
            "receiver {receiver_id} does not exist"
        ))),
        Err(other) => Err(other.into()),
    }
}
