//! Sending the outbox: deliveries of `image.created`, `image.pushed` and
//! `deployment.recorded` to subscriptions, after a response is sent.
//!
//! Spin has no background work, so every request's after-response step ([`crate::AfterResponse`])
//! looks for due deliveries (one read on a partial index) and sends a few, each claimed under a
//! lease so that two instances never send the same attempt at once. The pipeline that caused
//! an event never waits for its delivery: it has its answer before any of this runs.
//!
//! A delivery is signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64>`, with the reference library) and also carries
//! `X-Signature: sha256=<hex>`, the HMAC of the body that Flux's `generic-hmac` Receiver checks,
//! both under the subscription's `whsec_…` secret. At least once: the same `webhook-id` on
//! every attempt, so receivers can de-duplicate.

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::db::Db;
use crate::domain::Timestamp;
use crate::domain::ids::{ImageId, LeadTimeId, StoredId};
use crate::domain::receiver::SigningKey;
use crate::domain::subscription::{EventType, MAX_ATTEMPTS, retry_delay};
use crate::env::{Clock, Config};
use crate::error::Error;
use crate::store::subscriptions::{self as store, Claimed, Outcome};

use super::deployments::DeploymentRecordBody;
use super::images::ImageBody;

/// How a component sends an HTTP request: the shell's outgoing HTTP (Spin's
/// `wasi:http/outgoing-handler`), each attempt bounded by [`ATTEMPT_TIMEOUT`].
pub trait Outbound {
    /// Sends `request`; the response's status, or why there is none (the host's error).
    fn send(&self, request: &http::Request<Vec<u8>>) -> Result<u16, String>;
}

/// Each attempt's bound: connect, first byte and every later byte.
pub const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How many deliveries one request sends after responding, at most.
const PER_REQUEST: usize = 3;

/// A claim outlives any attempt (three of them bounded at 5 s each, and the writes around
/// them); a claim left by an instance that died is taken again after it.
const LEASE: std::time::Duration = std::time::Duration::from_secs(60);

/// The JSON a subscriber receives.
#[derive(Serialize)]
struct EventBody<T> {
    r#type: &'static str,
    timestamp: String,
    data: T,
}

/// Sends up to a few due deliveries; what went wrong is logged (the response is already sent).
pub(crate) fn send_due(db: &dyn Db, clock: &dyn Clock, config: &Config, outbound: &dyn Outbound) {
    let now = clock.now();
    let due = match store::due(db, now, PER_REQUEST) {
        Ok(due) => due,
        // Busy, or a database without the outbox yet: the next request looks again.
        Err(_) => return,
    };
    if due.is_empty() {
        return;
    }
    // The claims and records are writes: they wait out other writers as requests do.
    let Ok(patient) = crate::db::PatientDb::open(db, clock) else {
        return;
    };
    let db: &dyn Db = &patient;
    let key = match SigningKey::from_variable(config.webhook_signing_key.as_deref()) {
        Ok(key) => key,
        Err(error) => {
            eprintln!("cd-core: deliveries are due but cannot be signed: {error}");
            return;
        }
    };
    let now = clock.now();
    let claimed = match store::claim(db, &due, now, now.plus(LEASE)) {
        Ok(claimed) => claimed,
        Err(error) => {
            eprintln!("cd-core: due deliveries not claimed: {error}");
            return;
        }
    };
    let mut attempts = Vec::with_capacity(claimed.len());
    for claimed in claimed {
        match attempt(db, clock, &key, outbound, &claimed) {
            Ok((payload, outcome)) => attempts.push((claimed, payload, outcome)),
            // Left leased: tried again when the lease ends.
            Err(error) => eprintln!(
                "cd-core: delivery {} not sent: {error}",
                claimed.delivery_id
            ),
        }
    }
    // A failure here leaves the leases to expire: the deliveries are sent again.
    if let Err(error) = store::record_attempts(db, &attempts) {
        eprintln!("cd-core: delivery attempts not recorded (they will be repeated): {error}");
    }
}

/// Sends one claimed delivery; the body sent and how the attempt ended.
fn attempt(
    db: &dyn Db,
    clock: &dyn Clock,
    key: &SigningKey,
    outbound: &dyn Outbound,
    claimed: &Claimed,
) -> Result<(String, Outcome), Error> {
    let payload = match &claimed.payload {
        Some(payload) => payload.clone(),
        None => render(db, claimed)?,
    };
    let secret = key.subscription_secret(claimed.subscription_id);
    let started = clock.now();
    let request = signed_request(claimed, &payload, &secret, started)?;
    let sent = outbound.send(&request);
    let duration_micros = clock.now().micros_since(started).max(0);
    let delivered = sent.as_ref().is_ok_and(|s| (200..300).contains(s));
    let next_attempt_at = match retry_delay(claimed.attempt) {
        Some(delay) if !delivered && claimed.attempt < MAX_ATTEMPTS => Some(started.plus(delay)),
        _ => None,
    };
    let status = match (delivered, next_attempt_at) {
        (true, _) => "delivered",
        (false, Some(_)) => "pending",
        (false, None) => "failed",
    };
    let (response_status, error) = match sent {
        Ok(status) => (Some(status), None),
        Err(error) => (None, Some(error)),
    };
    if !delivered {
        let answer = match (&response_status, &error) {
            (Some(code), _) => format!("answered {code}"),
            (None, Some(error)) => error.clone(),
            (None, None) => String::new(),
        };
        let next = next_attempt_at.map_or_else(
            || "given up".to_owned(),
            |t| format!("next attempt at {}", t.to_rfc3339()),
        );
        // The URL's path may be a secret (a Flux Receiver's is): the log names the origin.
        let origin = claimed
            .url
            .parse::<http::Uri>()
            .ok()
            .and_then(|uri| Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?)))
            .unwrap_or_default();
        eprintln!(
            "cd-core: delivery {} ({}) to {origin} (subscription {}) attempt {}/{MAX_ATTEMPTS}: \
             {answer}; {next}",
            claimed.delivery_id,
            claimed.event_type.as_str(),
            claimed.subscription_id,
            claimed.attempt,
        );
    }
    Ok((
        payload,
        Outcome {
            started_at: started,
            duration_micros,
            response_status,
            error,
            status,
            next_attempt_at,
        },
    ))
}

/// The event's body, from the rows as they are at its first attempt.
fn render(db: &dyn Db, claimed: &Claimed) -> Result<String, Error> {
    let timestamp = claimed.occurred_at.to_rfc3339();
    let event = claimed.event_type.as_str();
    let body = match claimed.event_type {
        EventType::ImageCreated | EventType::ImagePushed => {
            let image_id = ImageId::from_uuid(uuid_of(&claimed.subject_id)?);
            let image = crate::store::images::find_in_org(db, image_id, &claimed.org_id)?
                .ok_or_else(|| Error::storage(format!("the image of {event} is gone")))?;
            serde_json::to_string(&EventBody {
                r#type: event,
                timestamp,
                data: ImageBody::in_list(image),
            })
        }
        EventType::DeploymentRecorded => {
            let lead_time_id = LeadTimeId::from_uuid(uuid_of(&claimed.subject_id)?);
            let record = crate::store::deployments::find(db, &claimed.org_id, lead_time_id)?
                .ok_or_else(|| Error::storage(format!("the deployment of {event} is gone")))?;
            serde_json::to_string(&EventBody {
                r#type: event,
                timestamp,
                data: DeploymentRecordBody::from(record),
            })
        }
    };
    body.map_err(|e| Error::storage(format!("event encoding failed: {e}")))
}

fn uuid_of(bytes: &[u8]) -> Result<uuid::Uuid, Error> {
    uuid::Uuid::from_slice(bytes).map_err(|e| Error::storage(format!("unreadable subject: {e}")))
}

/// The POST of `payload` to the subscription, with both signatures.
fn signed_request(
    claimed: &Claimed,
    payload: &str,
    secret: &crate::domain::receiver::DerivedSecret,
    now: Timestamp,
) -> Result<http::Request<Vec<u8>>, Error> {
    let webhook_id = format!("msg_{}", claimed.delivery_id.to_text().replace('-', ""));
    let timestamp = now.unix_seconds();
    let signature = secret
        .standard_webhook()
        .sign(&webhook_id, timestamp, payload.as_bytes())
        .map_err(|e| Error::storage(format!("signing failed: {e}")))?;
    let shown = secret.shown(crate::domain::receiver::Source::Generic);
    let mut mac =
        Hmac::<Sha256>::new_from_slice(shown.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(payload.as_bytes());
    let x_signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    http::Request::builder()
        .method(http::Method::POST)
        .uri(&claimed.url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "cd-images-webhooks/1")
        .header("webhook-id", webhook_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .header("x-signature", x_signature)
        .body(payload.as_bytes().to_vec())
        .map_err(|e| Error::storage(format!("delivery request: {e}")))
}
