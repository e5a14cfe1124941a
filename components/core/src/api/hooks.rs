//! Registry pushes: `POST /api/v1/hooks/{receiver_id}` (and `…/{secret}` for Docker Hub and
//! Quay), the images component's route a container registry calls when it stores an image.
//!
//! No token: the sender proves itself the way its source can (a configured `Authorization`,
//! GitHub's body HMAC, a Standard Webhooks signature, a secret URL segment), checked in
//! constant time against the receiver's derived secret. Then each pushed tag attaches its
//! digest and push time to the image a pipeline recorded with that tag, or becomes a new
//! image entry. A delivery is applied once: its id (the sender's, else the body's SHA-256) is
//! recorded in the same transaction, and every repeat is answered 200 with the first outcome,
//! so the registry stops retrying.

use http::{Response, StatusCode};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::auth;
use crate::db::transaction;
use crate::domain::image::{
    CdRequest, ImageName, ImageReference, ImageStatus, ImageTags, NewImage, PushedAs, RunId,
    TagName, VersionChange,
};
use crate::domain::receiver::{DerivedSecret, Receiver, SigningKey, Source, UnknownTag};
use crate::domain::{Channel, ImageId, Timestamp, UpdateType};
use crate::env::Env;
use crate::error::Error;
use crate::store::images::{self as images, InsertOutcome};
use crate::store::receivers;

use super::push_payloads::{self, Delivery, Push};
use super::{Context, json_response};

/// What one push did, as the delivery's answer (and its repeats') shows it.
#[derive(Serialize)]
struct PushOutcome {
    tag: Option<String>,
    digest: Option<String>,
    /// `attached` (to a pipeline's image), `recorded` (a new image), or `ignored`.
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

fn unknown_receiver(ctx: &Context<'_>) -> Error {
    Error::not_found(format!(
        "receiver {} does not exist",
        ctx.optional_param("receiver_id").unwrap_or("")
    ))
}

pub(super) fn deliver(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let env = ctx.env;
    let receiver_id = ctx.receiver_id()?;
    let key = SigningKey::from_variable(env.config.webhook_signing_key.as_deref())?;
    let receiver =
        receivers::find_for_delivery(env.db, receiver_id)?.ok_or_else(|| unknown_receiver(ctx))?;
    let path_secret = ctx.optional_param("secret");
    if path_secret.is_some() != receiver.source.secret_in_path() {
        // The other URL form than the source's: no such URL was handed out.
        return Err(unknown_receiver(ctx));
    }
    let secret = key.receiver_secret(receiver_id);
    let body = ctx.request.body;
    if let Err(unauthorized) = authenticate(ctx, &receiver, &secret, path_secret) {
        // Event Grid validates a subscription before it sends the configured header: the
        // handshake records nothing, so it is answered without one.
        if receiver.source == Source::Acr
            && let Ok(Delivery::Handshake(answer)) =
                push_payloads::parse(receiver.source, ctx.request.headers, body)
        {
            return json_response(StatusCode::OK, &answer);
        }
        return Err(unauthorized);
    }
    let (event_id, pushes) = match push_payloads::parse(receiver.source, ctx.request.headers, body)?
    {
        Delivery::Handshake(answer) => return json_response(StatusCode::OK, &answer),
        Delivery::NotAPush(what) => {
            return json_response(
                StatusCode::OK,
                &serde_json::json!({
                    "receiver_id": receiver_id.to_text(),
                    "duplicate": false,
                    "ignored": format!("not a push: {what}"),
                    "pushes": [],
                }),
            );
        }
        Delivery::Pushes { event_id, pushes } => (event_id, pushes),
    };
    let delivery_key = match event_id {
        Some(id) => format!("id:{id}"),
        None => format!("sha256:{}", hex::encode(Sha256::digest(body))),
    };
    // A retry, the common repeat, is answered from one indexed read without a write lock.
    if let Some(outcome) = receivers::applied_delivery(env.db, receiver_id, &delivery_key)? {
        return answer(&receiver, &delivery_key, true, &outcome);
    }
    ctx.whole_tables()?;
    let now = env.clock.now();
    let (duplicate, outcome) = transaction(env.db, || {
        // A concurrent copy of this delivery may have committed while we waited for the lock.
        if let Some(outcome) = receivers::applied_delivery(env.db, receiver_id, &delivery_key)? {
            return Ok((true, outcome));
        }
        let registry =
            auth::receiver_registry(env.db, &receiver)?.ok_or_else(|| unknown_receiver(ctx))?;
        let mut outcomes = Vec::with_capacity(pushes.len());
        for push in &pushes {
            outcomes.push(apply(env, &receiver, &registry, &delivery_key, push, now)?);
        }
        let outcome = serde_json::to_string(&outcomes)
            .map_err(|e| Error::storage(format!("outcome encoding failed: {e}")))?;
        if !receivers::record_delivery(env.db, receiver_id, &delivery_key, now, &outcome)? {
            // Applied by another copy meanwhile (a backend that let two in): undo ours.
            return Err(Error::Busy);
        }
        Ok((false, outcome))
    })?;
    answer(&receiver, &delivery_key, duplicate, &outcome)
}

fn answer(
    receiver: &Receiver,
    delivery_key: &str,
    duplicate: bool,
    outcome: &str,
) -> Result<Response<Vec<u8>>, Error> {
    let pushes: serde_json::Value = serde_json::from_str(outcome)
        .map_err(|e| Error::storage(format!("unreadable delivery outcome: {e}")))?;
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "receiver_id": receiver.receiver_id.to_text(),
            "delivery": delivery_key,
            "duplicate": duplicate,
            "pushes": pushes,
        }),
    )
}

/// Checks the sender's credential the way the receiver's source sends it: a wrong or
/// missing one is 401.
fn authenticate(
    ctx: &Context<'_>,
    receiver: &Receiver,
    secret: &DerivedSecret,
    path_secret: Option<&str>,
) -> Result<(), Error> {
    let headers = ctx.request.headers;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let source = receiver.source;
    let (proved, how) = match source {
        Source::Harbor | Source::Acr => {
            let presented = header("authorization").unwrap_or("");
            let presented = presented.strip_prefix("Bearer ").unwrap_or(presented);
            (
                secret.matches(source, presented),
                "an Authorization header with the receiver's secret",
            )
        }
        Source::Ghcr => (
            header("x-hub-signature-256")
                .is_some_and(|s| secret.signs(source, ctx.request.body, s)),
            "an X-Hub-Signature-256 of the body under the receiver's secret",
        ),
        Source::Dockerhub | Source::Quay => (
            path_secret.is_some_and(|s| secret.matches(source, s)),
            "the receiver's secret as the URL's last segment",
        ),
        Source::Generic => (
            secret
                .standard_webhook()
                .verify(ctx.request.body, headers)
                .is_ok(),
            "a Standard Webhooks signature (webhook-id, webhook-timestamp within 5 minutes, \
             webhook-signature) under the receiver's secret",
        ),
    };
    if proved {
        Ok(())
    } else {
        Err(Error::Unauthorized {
            detail: format!("a {} push must carry {how}", source.as_str()),
        })
    }
}

/// Whether a push's repository is the registry's: the same path, or one ends the other (a
/// registry named `service-api` for `acme/service-api`).
fn same_repository(registry: &str, pushed: &str) -> bool {
    registry == pushed
        || pushed.ends_with(&format!("/{registry}"))
        || registry.ends_with(&format!("/{pushed}"))
}

fn apply(
    env: &Env<'_>,
    receiver: &Receiver,
    registry: &crate::auth::WritableRegistry,
    delivery_key: &str,
    push: &Push,
    now: Timestamp,
) -> Result<PushOutcome, Error> {
    let pushed = PushedAs {
        digest: push.digest.clone(),
        // A sender's clock ahead of ours (or a generic sender's future time) is not taken:
        // a push cannot have happened after we heard of it.
        pushed_at: push.pushed_at.map_or(now, |at| at.min(now)),
    };
    let outcome = |outcome, image_id: Option<ImageId>, reason: Option<String>| PushOutcome {
        tag: push.tag.clone(),
        digest: push.digest.as_ref().map(|d| d.as_str().to_owned()),
        outcome,
        image_id: image_id.map(ImageId::to_text),
        reason,
    };
    let repository = registry.registry().image_repository_name.as_str();
    if !same_repository(repository, &push.repository) {
        return Ok(outcome(
            "ignored",
            None,
            Some(format!(
                "repository {} is not this registry's ({repository})",
                push.repository
            )),
        ));
    }
    let Some(tag) = &push.tag else {
        // An untagged manifest: a platform of a multi-arch image, or a push by digest.
        return Ok(match &push.digest {
            Some(digest) => match images::newest_with_digest(env.db, registry.readable(), digest)? {
                Some(image_id) => {
                    images::attach_push(env.db, registry, image_id, &pushed, now)?;
                    outcome("attached", Some(image_id), None)
                }
                None => outcome(
                    "ignored",
                    None,
                    Some(
                        "an untagged manifest no image has (a platform of a multi-arch image): \
                         its tagged index is the image"
                            .to_owned(),
                    ),
                ),
            },
            None => outcome(
                "ignored",
                None,
                Some("neither a tag nor a digest".to_owned()),
            ),
        });
    };
    let reference = format!("{}:{tag}", push.image_name);
    if let Some((image_id, attached)) =
        images::newest_with_tag(env.db, registry.readable(), tag, &reference)?
    {
        // GitHub reports one push as a `package` and a `registry_package` event, with no push
        // time of its own: the second finds the digest already there and changes nothing (nor
        // raises a second image.pushed).
        let known = push.pushed_at.is_none() && push.digest.is_some() && attached == push.digest;
        if !known {
            images::attach_push(env.db, registry, image_id, &pushed, now)?;
        }
        return Ok(outcome("attached", Some(image_id), None));
    }
    if receiver.on_unknown_tag == UnknownTag::Ignore {
        return Ok(outcome(
            "ignored",
            None,
            Some("no pipeline recorded this tag and the receiver ignores such pushes".to_owned()),
        ));
    }
    let request = pushed_image(receiver, delivery_key, push, tag, &reference)?;
    let digest = images::request_digest(&request);
    let new = NewImage {
        image_id: ImageId::new(env.ids.new_id()),
        request,
        // Recorded now: events and their subscriptions are ordered by our clock.
        built_at: now,
        request_digest: digest,
    };
    match images::record(env.db, registry, new)? {
        InsertOutcome::Recorded(image) => {
            images::attach_push(env.db, registry, image.image_id, &pushed, now)?;
            Ok(outcome("recorded", Some(image.image_id), None))
        }
        // Only this delivery makes this run id, and it is applied once.
        InsertOutcome::RunRecorded => Err(Error::storage("a push's run id is already recorded")),
        InsertOutcome::VersionAtMaximum => Ok(outcome(
            "ignored",
            None,
            Some("the receiver's channel is at its maximum version".to_owned()),
        )),
    }
}

/// The image entry a push of a tag no pipeline recorded becomes: versioned on the receiver's
/// channel, no commit, its run id derived from the delivery.
fn pushed_image(
    receiver: &Receiver,
    delivery_key: &str,
    push: &Push,
    tag: &str,
    reference: &str,
) -> Result<CdRequest, Error> {
    let run = Sha256::new()
        .chain_update(receiver.receiver_id.to_text())
        .chain_update([0])
        .chain_update(delivery_key)
        .chain_update([0])
        .chain_update(tag)
        .finalize();
    Ok(CdRequest {
        channel: receiver
            .channel
            .clone()
            .unwrap_or_else(Channel::default_channel),
        version_change: receiver
            .update_type
            .unwrap_or(VersionChange::Bump(UpdateType::Patch)),
        tag_name: TagName::parse("tag", tag)?,
        image_name: ImageName::parse("repository", &push.image_name)?,
        image_name_with_tag: ImageReference::parse("repository", reference)?,
        status: ImageStatus::Active,
        tags: ImageTags::default(),
        git_hash: None,
        git_hash_commit_timestamp: None,
        gitops_hash: None,
        api_definition_path: None,
        committer: None,
        commit_msg: None,
        run_id: RunId::parse("run_id", &format!("push-{}", &hex::encode(run)[..32]))?,
        image_ports: Vec::new(),
        cluster_image_tags: Vec::new(),
        api_version_id: None,
        commits: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::same_repository;

    #[test]
    fn a_registry_takes_pushes_of_its_repository_with_or_without_a_namespace() {
        assert!(same_repository("acme/service-api", "acme/service-api"));
        assert!(same_repository("service-api", "acme/service-api"));
        assert!(same_repository("team/acme/service-api", "acme/service-api"));
        assert!(!same_repository("acme/service-api", "acme/other-api"));
        assert!(!same_repository("api", "acme/service-api"));
    }
}
