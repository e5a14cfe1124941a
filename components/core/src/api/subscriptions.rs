//! Deploy triggers: the registry component's subscription routes.
//!
//! - `POST   /api/v1/registries/{registry_id}/subscriptions` `{url, events, channel?}` (write):
//!   201 with the `whsec_…` secret that signs its deliveries, shown once.
//! - `GET    …/subscriptions[/{subscription_id}]`, `PATCH` (`url`, `events`, `channel`,
//!   `active`), `DELETE` (write).
//! - `GET    …/subscriptions/{subscription_id}/deliveries`: every delivery with its attempts.
//! - `POST   …/deliveries/{delivery_id}/redeliver`: due now; this request's after-response
//!   step sends it.

use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::domain::Channel;
use crate::domain::ids::SubscriptionId;
use crate::domain::receiver::{SigningKey, Source};
use crate::domain::subscription::{Events, OutboundRule, Subscription, SubscriptionUrl};
use crate::error::Error;
use crate::store::subscriptions::{self as store, Delivery};

use super::{BASE_PATH, Context, PageBody, created, json_response, no_content};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSubscriptionBody {
    url: String,
    events: Vec<String>,
    #[serde(default)]
    channel: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateSubscriptionBody {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    events: Option<Vec<String>>,
    /// `null` clears the filter.
    #[serde(default, deserialize_with = "super::present")]
    channel: Option<Option<String>>,
    #[serde(default)]
    active: Option<bool>,
}

#[derive(Serialize)]
struct SubscriptionBody {
    subscription_id: String,
    registry_id: String,
    url: String,
    events: Vec<&'static str>,
    channel: Option<String>,
    active: bool,
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl SubscriptionBody {
    fn new(subscription: Subscription, secret: Option<String>) -> SubscriptionBody {
        SubscriptionBody {
            subscription_id: subscription.subscription_id.to_text(),
            registry_id: subscription.registry_id.to_text(),
            url: subscription.url.as_str().to_owned(),
            events: subscription
                .events
                .as_slice()
                .iter()
                .map(|e| e.as_str())
                .collect(),
            channel: subscription.channel.map(|c| c.as_str().to_owned()),
            active: subscription.active,
            created_at: subscription.created_at.to_rfc3339(),
            updated_at: subscription.updated_at.to_rfc3339(),
            secret,
        }
    }
}

#[derive(Serialize)]
struct AttemptBody {
    attempt: i64,
    started_at: String,
    duration_ms: f64,
    response_status: Option<i64>,
    error: Option<String>,
}

#[derive(Serialize)]
struct DeliveryBody {
    delivery_id: String,
    r#type: &'static str,
    occurred_at: String,
    /// What the event is about: the image's id (`image.*`), or the deployment's
    /// `lead_time_id` (`deployment.recorded`).
    subject_id: String,
    /// `pending` (a next attempt is due at `next_attempt_at`), `delivered` or `failed`.
    status: String,
    attempts: Vec<AttemptBody>,
    next_attempt_at: Option<String>,
}

impl From<Delivery> for DeliveryBody {
    fn from(delivery: Delivery) -> Self {
        DeliveryBody {
            delivery_id: delivery.delivery_id.to_text(),
            r#type: delivery.event_type.as_str(),
            occurred_at: delivery.occurred_at.to_rfc3339(),
            subject_id: delivery.subject_id.hyphenated().to_string(),
            status: delivery.status,
            attempts: delivery
                .tries
                .into_iter()
                .map(|a| AttemptBody {
                    attempt: a.attempt,
                    started_at: a.started_at.to_rfc3339(),
                    duration_ms: a.duration_micros as f64 / 1000.0,
                    response_status: a.response_status,
                    error: a.error,
                })
                .collect(),
            next_attempt_at: delivery.next_attempt_at.map(|t| t.to_rfc3339()),
        }
    }
}

/// The deployment's outbound rule (`webhook_allowed_hosts`); one Spin could not parse is the
/// operator's mistake, and no URL can be checked against it.
fn outbound_rule(ctx: &Context<'_>) -> Result<OutboundRule, Error> {
    let text = ctx
        .env
        .config
        .webhook_allowed_hosts
        .as_deref()
        .unwrap_or(OutboundRule::DEFAULT);
    OutboundRule::parse(text).map_err(|reason| Error::NotConfigured {
        detail: format!("webhook_allowed_hosts is not an allowed_outbound_hosts entry: {reason}"),
    })
}

fn parse_channel(channel: Option<&str>) -> Result<Option<Channel>, Error> {
    channel.map(Channel::parse).transpose()
}

fn location(subscription: &Subscription) -> String {
    format!(
        "{BASE_PATH}/registries/{}/subscriptions/{}",
        subscription.registry_id, subscription.subscription_id
    )
}

fn not_found(subscription_id: SubscriptionId) -> Error {
    Error::not_found(format!("subscription {subscription_id} does not exist"))
}

pub(super) fn create(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let env = ctx.env;
    let registry_id = ctx.registry_id()?;
    let body: NewSubscriptionBody = ctx.request.json()?;
    let rule = outbound_rule(ctx)?;
    let url = SubscriptionUrl::parse("url", &body.url, &rule)?;
    let events = Events::parse("events", &body.events)?;
    let channel = parse_channel(body.channel.as_deref())?;
    let key = SigningKey::from_variable(env.config.webhook_signing_key.as_deref())?;
    let registry = ctx.writable_registry(registry_id)?;
    let now = env.clock.now();
    let subscription = Subscription {
        subscription_id: SubscriptionId::new(env.ids.new_id()),
        registry_id,
        org_id: registry.registry().org_id.clone(),
        url,
        events,
        channel,
        active: true,
        created_at: now,
        updated_at: now,
    };
    store::insert(env.db, &registry, &subscription)?;
    let secret = key
        .subscription_secret(subscription.subscription_id)
        .shown(Source::Generic);
    created(
        location(&subscription),
        &SubscriptionBody::new(subscription, Some(secret)),
    )
}

/// The subscription of the path, in a registry of the caller's org.
fn subscription(ctx: &Context<'_>) -> Result<(crate::auth::WritableRegistry, Subscription), Error> {
    let registry = ctx.writable_registry(ctx.registry_id()?)?;
    let subscription_id = ctx.subscription_id()?;
    let subscription = store::find(ctx.env.db, registry.readable(), subscription_id)?
        .ok_or_else(|| not_found(subscription_id))?;
    Ok((registry, subscription))
}

pub(super) fn list(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let registry = ctx.writable_registry(ctx.registry_id()?)?;
    let (limit, cursor) = ctx.request.page_request()?;
    let after = cursor
        .map(|c| SubscriptionId::parse("cursor", c).map_err(|_| Error::bad_cursor()))
        .transpose()?;
    let page = store::list(ctx.env.db, registry.readable(), after, limit)?;
    json_response(
        StatusCode::OK,
        &PageBody::from_page(page, |s| SubscriptionBody::new(s, None)),
    )
}

pub(super) fn get(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let (_, subscription) = subscription(ctx)?;
    json_response(StatusCode::OK, &SubscriptionBody::new(subscription, None))
}

pub(super) fn update(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let body: UpdateSubscriptionBody = ctx.request.json()?;
    let rule = outbound_rule(ctx)?;
    let url = body
        .url
        .as_deref()
        .map(|u| SubscriptionUrl::parse("url", u, &rule))
        .transpose()?;
    let events = body
        .events
        .as_deref()
        .map(|e| Events::parse("events", e))
        .transpose()?;
    let channel = body
        .channel
        .map(|c| parse_channel(c.as_deref()))
        .transpose()?;
    // Read and written in one write transaction: two PATCHes of different fields both land.
    let subscription = crate::db::transaction(ctx.env.db, || {
        let (registry, mut subscription) = subscription(ctx)?;
        if let Some(url) = url {
            subscription.url = url;
        }
        if let Some(events) = events {
            subscription.events = events;
        }
        if let Some(channel) = channel {
            subscription.channel = channel;
        }
        if let Some(active) = body.active {
            subscription.active = active;
        }
        subscription.updated_at = ctx.env.clock.now();
        store::update(ctx.env.db, &registry, &subscription)?;
        Ok(subscription)
    })?;
    json_response(StatusCode::OK, &SubscriptionBody::new(subscription, None))
}

pub(super) fn delete(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let registry = ctx.writable_registry(ctx.registry_id()?)?;
    let subscription_id = ctx.subscription_id()?;
    if store::delete(ctx.env.db, &registry, subscription_id)? {
        Ok(no_content())
    } else {
        Err(not_found(subscription_id))
    }
}

pub(super) fn deliveries(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let (_, subscription) = subscription(ctx)?;
    let (limit, cursor) = ctx.request.page_request()?;
    let after = cursor
        .map(|c| c.parse::<i64>().map_err(|_| Error::bad_cursor()))
        .transpose()?;
    let page = store::deliveries(ctx.env.db, &subscription, after, limit)?;
    json_response(
        StatusCode::OK,
        &PageBody::from_page(page, DeliveryBody::from),
    )
}

pub(super) fn redeliver(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let (_, subscription) = subscription(ctx)?;
    let delivery_id = ctx.delivery_id()?;
    let delivery =
        store::redeliver(ctx.env.db, &subscription, delivery_id, ctx.env.clock.now())?
            .ok_or_else(|| Error::not_found(format!("delivery {delivery_id} does not exist")))?;
    json_response(StatusCode::ACCEPTED, &DeliveryBody::from(delivery))
}
