//! `subscriptions`, and the outbox: `deliveries` (written by migration 0008's triggers) and
//! `delivery_attempts`.

use crate::auth::{ReadableRegistry, WritableRegistry};
use crate::db::{Db, Row, Value};
use crate::domain::ids::{DeliveryId, SubscriptionId};
use crate::domain::subscription::{EventType, Events, Subscription, SubscriptionUrl};
use crate::domain::{Channel, OrgId, Timestamp};
use crate::error::Error;

use super::{Keyset, Order, Page, REGISTRY_KEY};

const COLUMNS: &str = "subscription_id, \
     (SELECT registry_id FROM image_registries AS r WHERE r.registry_key = subscriptions.registry_key), \
     (SELECT org_id FROM orgs JOIN image_registries AS r USING (org_key) \
      WHERE r.registry_key = subscriptions.registry_key), \
     url, events, channel, active, created_at, updated_at";

fn from_row(row: Row<'_>) -> Result<Subscription, Error> {
    let stored = |e: Error| Error::storage(format!("unreadable subscription row: {e}"));
    let events: Vec<String> = serde_json::from_str(&row.text(4)?)
        .map_err(|e| Error::storage(format!("unreadable subscription events: {e}")))?;
    Ok(Subscription {
        subscription_id: row.id(0)?,
        registry_id: row.id(1)?,
        org_id: OrgId::parse("org_id", &row.text(2)?).map_err(stored)?,
        url: SubscriptionUrl::from_stored(row.text(3)?),
        events: Events::parse("events", &events).map_err(stored)?,
        channel: row
            .optional_text(5)?
            .map(|c| Channel::parse(&c))
            .transpose()
            .map_err(stored)?,
        active: row.flag(6)?,
        created_at: row.timestamp(7)?,
        updated_at: row.timestamp(8)?,
    })
}

fn events_json(events: &Events) -> String {
    let names: Vec<&str> = events.as_slice().iter().map(|e| e.as_str()).collect();
    serde_json::to_string(&names).unwrap_or_else(|_| "[]".to_owned())
}

pub(crate) fn insert(
    db: &dyn Db,
    registry: &WritableRegistry,
    subscription: &Subscription,
) -> Result<(), Error> {
    db.execute(
        &format!(
            "INSERT INTO subscriptions (subscription_id, registry_key, url, events, channel, \
             active, created_at, updated_at) VALUES (?, {REGISTRY_KEY}, ?, ?, ?, ?, ?, ?)"
        ),
        &[
            subscription.subscription_id.into(),
            registry.id().into(),
            subscription.url.as_str().into(),
            events_json(&subscription.events).into(),
            subscription.channel.as_ref().map(Channel::as_str).into(),
            subscription.active.into(),
            subscription.created_at.into(),
            subscription.updated_at.into(),
        ],
    )?;
    Ok(())
}

/// Stores every changeable field of `subscription`.
pub(crate) fn update(
    db: &dyn Db,
    registry: &WritableRegistry,
    subscription: &Subscription,
) -> Result<(), Error> {
    db.execute(
        &format!(
            "UPDATE subscriptions SET url = ?, events = ?, channel = ?, active = ?, updated_at = ? \
             WHERE subscription_id = ? AND registry_key = {REGISTRY_KEY}"
        ),
        &[
            subscription.url.as_str().into(),
            events_json(&subscription.events).into(),
            subscription.channel.as_ref().map(Channel::as_str).into(),
            subscription.active.into(),
            subscription.updated_at.into(),
            subscription.subscription_id.into(),
            registry.id().into(),
        ],
    )?;
    Ok(())
}

pub(crate) fn list(
    db: &dyn Db,
    registry: &ReadableRegistry,
    after: Option<SubscriptionId>,
    limit: usize,
) -> Result<Page<Subscription>, Error> {
    Keyset {
        columns: COLUMNS,
        table: "subscriptions",
        filter: &format!("registry_key = {REGISTRY_KEY}"),
        key: "subscription_id",
        order: Order::NewestFirst,
    }
    .page(
        db,
        vec![registry.id().into()],
        after.map(Into::into),
        limit,
        from_row,
        |s| s.subscription_id.to_text(),
    )
}

pub(crate) fn find(
    db: &dyn Db,
    registry: &ReadableRegistry,
    subscription_id: SubscriptionId,
) -> Result<Option<Subscription>, Error> {
    let rows = db.execute(
        &format!(
            "SELECT {COLUMNS} FROM subscriptions \
             WHERE subscription_id = ? AND registry_key = {REGISTRY_KEY}"
        ),
        &[subscription_id.into(), registry.id().into()],
    )?;
    rows.first().map(from_row).transpose()
}

/// Removes a subscription with its deliveries and their attempts; whether there was one.
pub(crate) fn delete(
    db: &dyn Db,
    registry: &WritableRegistry,
    subscription_id: SubscriptionId,
) -> Result<bool, Error> {
    let rows = db.execute(
        &format!(
            "DELETE FROM subscriptions WHERE subscription_id = ? AND registry_key = {REGISTRY_KEY} \
             RETURNING subscription_id"
        ),
        &[subscription_id.into(), registry.id().into()],
    )?;
    Ok(!rows.rows.is_empty())
}

/// A delivery as the API shows it, with its attempts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Delivery {
    pub(crate) key: i64,
    pub(crate) delivery_id: DeliveryId,
    pub(crate) event_type: EventType,
    pub(crate) occurred_at: Timestamp,
    /// What the event is about: the image (`image.*`) or the deployment (its lead-time id).
    pub(crate) subject_id: uuid::Uuid,
    pub(crate) status: String,
    pub(crate) attempts: i64,
    pub(crate) next_attempt_at: Option<Timestamp>,
    pub(crate) tries: Vec<Attempt>,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Attempt {
    pub(crate) attempt: i64,
    pub(crate) started_at: Timestamp,
    pub(crate) duration_micros: i64,
    pub(crate) response_status: Option<i64>,
    pub(crate) error: Option<String>,
}

/// The event type a delivery row holds at `index`.
fn stored_event_type(row: &Row<'_>, index: usize) -> Result<EventType, Error> {
    EventType::parse("event_type", &row.text(index)?)
        .map_err(|e| Error::storage(format!("unreadable delivery: {e}")))
}

const DELIVERY_COLUMNS: &str = "delivery_key, delivery_id, event_type, occurred_at, status, attempts, next_attempt_at, subject_id";

fn delivery_from_row(row: Row<'_>) -> Result<Delivery, Error> {
    Ok(Delivery {
        key: row.integer(0)?,
        delivery_id: row.id(1)?,
        event_type: stored_event_type(&row, 2)?,
        occurred_at: row.timestamp(3)?,
        status: row.text(4)?,
        attempts: row.integer(5)?,
        next_attempt_at: row.optional_timestamp(6)?,
        subject_id: row.id(7)?,
        tries: Vec::new(),
    })
}

/// A subscription's deliveries, newest first, each with its attempts.
pub(crate) fn deliveries(
    db: &dyn Db,
    subscription: &Subscription,
    after: Option<i64>,
    limit: usize,
) -> Result<Page<Delivery>, Error> {
    let mut page = Keyset {
        columns: DELIVERY_COLUMNS,
        table: "deliveries",
        filter: "subscription_id = ?",
        key: "delivery_key",
        order: Order::NewestFirst,
    }
    .page(
        db,
        vec![subscription.subscription_id.into()],
        after.map(Value::Integer),
        limit,
        delivery_from_row,
        |d| d.key.to_string(),
    )?;
    if let (Some(first), Some(last)) = (page.items.first(), page.items.last()) {
        let rows = db.execute(
            "SELECT delivery_key, attempt, started_at, duration_micros, response_status, error \
             FROM delivery_attempts WHERE delivery_key IN (SELECT delivery_key FROM deliveries \
               WHERE subscription_id = ? AND delivery_key BETWEEN ? AND ?) \
             ORDER BY delivery_key, attempt",
            &[
                subscription.subscription_id.into(),
                last.key.into(),
                first.key.into(),
            ],
        )?;
        for row in rows.iter() {
            let key = row.integer(0)?;
            if let Some(delivery) = page.items.iter_mut().find(|d| d.key == key) {
                delivery.tries.push(Attempt {
                    attempt: row.integer(1)?,
                    started_at: row.timestamp(2)?,
                    duration_micros: row.integer(3)?,
                    response_status: row.optional_integer(4)?,
                    error: row.optional_text(5)?,
                });
            }
        }
    }
    Ok(page)
}

/// Makes a delivery of the subscription due now (a redelivery), whatever its state; its
/// attempts go on counting. A delivery in flight keeps its lease: it is sent again once that
/// attempt is over, never twice at once. `None` if the subscription has no such delivery.
pub(crate) fn redeliver(
    db: &dyn Db,
    subscription: &Subscription,
    delivery_id: DeliveryId,
    now: Timestamp,
) -> Result<Option<Delivery>, Error> {
    let rows = db.execute(
        &format!(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = ? \
             WHERE delivery_id = ? AND subscription_id = ? RETURNING {DELIVERY_COLUMNS}"
        ),
        &[
            now.into(),
            delivery_id.into(),
            subscription.subscription_id.into(),
        ],
    )?;
    rows.first().map(delivery_from_row).transpose()
}

/// A delivery claimed for one attempt: what to send and where.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub(crate) key: i64,
    pub(crate) delivery_id: DeliveryId,
    pub(crate) subscription_id: SubscriptionId,
    pub(crate) url: String,
    pub(crate) event_type: EventType,
    pub(crate) subject_id: Vec<u8>,
    pub(crate) occurred_at: Timestamp,
    pub(crate) payload: Option<String>,
    /// This attempt's number (1 for the first).
    pub(crate) attempt: i64,
    /// The org of the subscription's registry, whose rows the payload shows.
    pub(crate) org_id: OrgId,
}

/// The keys of deliveries due at `now` and not leased, oldest first, of active subscriptions
/// of live registries (a paused one keeps its deliveries pending until it is active again; a
/// deleted registry's are never sent): a read, so a request
/// with nothing to send takes no lock.
pub(crate) fn due(db: &dyn Db, now: Timestamp, limit: usize) -> Result<Vec<i64>, Error> {
    let rows = db.execute(
        "SELECT delivery_key FROM deliveries WHERE next_attempt_at <= ? \
         AND (leased_until IS NULL OR leased_until < ?) \
         AND EXISTS (SELECT 1 FROM subscriptions AS s JOIN image_registries AS r \
                       ON r.registry_key = s.registry_key \
                     WHERE s.subscription_id = deliveries.subscription_id AND s.active = 1 \
                       AND r.deleted_at IS NULL) \
         ORDER BY next_attempt_at LIMIT ?",
        &[now.into(), now.into(), (limit as i64).into()],
    )?;
    rows.iter().map(|row| row.integer(0)).collect()
}

/// Claims due deliveries among `keys` for one attempt each until `lease_until`: one
/// statement, so of two instances claiming at once each delivery goes to exactly one. The
/// attempt counts from here: a crash before its outcome is recorded leaves the lease to
/// expire and the delivery to be sent again (at least once).
pub(crate) fn claim(
    db: &dyn Db,
    keys: &[i64],
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<Vec<Claimed>, Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = vec!["?"; keys.len()].join(", ");
    let mut params: Vec<Value> = vec![lease_until.into(), now.into(), now.into()];
    params.extend(keys.iter().map(|&key| Value::from(key)));
    let rows = db.execute(
        &format!(
            "UPDATE deliveries SET leased_until = ?, attempts = attempts + 1 \
             WHERE next_attempt_at <= ? AND (leased_until IS NULL OR leased_until < ?) \
               AND delivery_key IN ({placeholders}) \
             RETURNING delivery_key, delivery_id, subscription_id, \
               (SELECT url FROM subscriptions AS s WHERE s.subscription_id = deliveries.subscription_id), \
               event_type, subject_id, occurred_at, payload, attempts, \
               (SELECT org_id FROM orgs JOIN image_registries AS r USING (org_key) \
                JOIN subscriptions AS s ON s.registry_key = r.registry_key \
                WHERE s.subscription_id = deliveries.subscription_id)"
        ),
        &params,
    )?;
    rows.iter()
        .map(|row| {
            Ok(Claimed {
                key: row.integer(0)?,
                delivery_id: row.id(1)?,
                subscription_id: row.id(2)?,
                url: row.text(3)?,
                event_type: stored_event_type(&row, 4)?,
                subject_id: row.blob(5)?.to_vec(),
                occurred_at: row.timestamp(6)?,
                payload: row.optional_text(7)?,
                attempt: row.integer(8)?,
                org_id: OrgId::parse("org_id", &row.text(9)?)
                    .map_err(|e| Error::storage(format!("unreadable delivery: {e}")))?,
            })
        })
        .collect()
}

/// How an attempt ended, and what follows it.
pub(crate) struct Outcome {
    pub(crate) started_at: Timestamp,
    pub(crate) duration_micros: i64,
    pub(crate) response_status: Option<u16>,
    pub(crate) error: Option<String>,
    /// `delivered`, `pending` (tried again at `next_attempt_at`) or `failed` (given up).
    pub(crate) status: &'static str,
    pub(crate) next_attempt_at: Option<Timestamp>,
}

/// Records the attempts of one after-response step, each delivery's state after it and the
/// body its first attempt sent, releasing the leases: one write transaction for all.
pub(crate) fn record_attempts(
    db: &dyn Db,
    attempts: &[(Claimed, String, Outcome)],
) -> Result<(), Error> {
    crate::db::transaction(db, || {
        for (claimed, payload, outcome) in attempts {
            db.execute(
                "INSERT INTO delivery_attempts (delivery_key, attempt, started_at, duration_micros, \
                 response_status, error) VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (delivery_key, attempt) DO NOTHING",
                &[
                    claimed.key.into(),
                    claimed.attempt.into(),
                    outcome.started_at.into(),
                    outcome.duration_micros.into(),
                    outcome.response_status.map(i64::from).into(),
                    outcome.error.as_deref().into(),
                ],
            )?;
            // Only while this attempt is the delivery's latest: a redelivery claimed since
            // (its lease outlived) records its own outcome.
            db.execute(
                "UPDATE deliveries SET status = ?, next_attempt_at = ?, leased_until = NULL, \
                 payload = coalesce(payload, ?) WHERE delivery_key = ? AND attempts = ?",
                &[
                    outcome.status.into(),
                    outcome.next_attempt_at.into(),
                    payload.as_str().into(),
                    claimed.key.into(),
                    claimed.attempt.into(),
                ],
            )?;
        }
        Ok(())
    })
}
