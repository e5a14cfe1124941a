//! The push payloads registries send, each read in its vendor's own shape into the pushes it
//! reports. Shapes are from the vendors' documentation and real deliveries
//! (`tests/e2e/fixtures/hooks/SOURCES.md` lists them with dates): only the fields we use are
//! read, and anything else in a payload is left alone, as vendors add fields.

use http::HeaderMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use crate::domain::Timestamp;
use crate::domain::receiver::{Digest, Source};
use crate::error::Error;

/// One tag (or untagged manifest) a registry stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Push {
    /// The repository path as the registry names it (`acme/service-api`).
    pub(crate) repository: String,
    /// Registry host and repository (`ghcr.io/acme/service-api`): a recorded image's name.
    pub(crate) image_name: String,
    /// `None` for an untagged manifest (a platform of a multi-arch image, a push by digest).
    pub(crate) tag: Option<String>,
    pub(crate) digest: Option<Digest>,
    /// `None` where the source sends no time (GitHub, Quay): the receipt time stands in.
    pub(crate) pushed_at: Option<Timestamp>,
}

/// What a delivery asks of us.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Delivery {
    /// A handshake to answer with this body, recording nothing (Event Grid's subscription
    /// validation, GitHub's ping).
    Handshake(Json),
    /// An event of the source that is not a push (a deletion, a scan, a non-container
    /// package): acknowledged so the sender does not retry, recorded nowhere.
    NotAPush(String),
    /// Pushes; `event_id` is the sender's id of the delivery where it sends one.
    Pushes {
        event_id: Option<String>,
        pushes: Vec<Push>,
    },
}

/// Reads a delivery of `source`. A body that is not this source's shape is 422 naming what
/// was expected; one that is not JSON is 400.
pub(crate) fn parse(source: Source, headers: &HeaderMap, body: &[u8]) -> Result<Delivery, Error> {
    let json: Json = serde_json::from_slice(body)
        .map_err(|e| Error::malformed(format!("the body is not valid JSON: {e}")))?;
    match source {
        Source::Harbor => harbor(json),
        Source::Ghcr => ghcr(headers, json),
        Source::Acr => acr(headers, json),
        Source::Dockerhub => dockerhub(json),
        Source::Quay => quay(json),
        Source::Generic => generic(headers, json),
    }
}

/// Reads `json` as `T`, or a 422 saying whose payload was expected.
fn shaped<T: DeserializeOwned>(json: Json, expected: &str) -> Result<T, Error> {
    serde_json::from_value(json)
        .map_err(|e| Error::invalid("body", format!("is not {expected}: {e}")))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A tag as sent: empty, or a digest where a push was by digest, is no tag.
fn tag_of(tag: Option<String>) -> Option<String> {
    tag.filter(|t| !t.is_empty() && !t.contains(':'))
}

/// A digest as sent; an empty or malformed one is a 422 (it would attach to nothing).
fn digest_of(field: &str, digest: Option<&str>) -> Result<Option<Digest>, Error> {
    digest
        .filter(|d| !d.is_empty())
        .map(|d| Digest::parse(field, d))
        .transpose()
}

fn unix_seconds(field: &str, seconds: i64) -> Result<Timestamp, Error> {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(Timestamp::from_utc)
        .ok_or_else(|| Error::invalid(field, "is not a time"))
}

/// `host/repo` from a reference `host/repo:tag` or `host/repo@digest`.
fn name_of_reference(reference: &str) -> &str {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    match without_digest.rsplit_once(':') {
        // A colon after the last slash is a tag's; before it, a host's port.
        Some((name, tag)) if !tag.contains('/') => name,
        _ => without_digest,
    }
}

// Harbor: `PUSH_ARTIFACT` in its default JSON, or `harbor.artifact.pushed` as a CloudEvent
// (Harbor 2.8+). The default format has no event id; a CloudEvent's `id` is kept across
// Harbor's own retries.

#[derive(Deserialize)]
struct HarborData {
    resources: Vec<HarborResource>,
    repository: HarborRepository,
}

#[derive(Deserialize)]
struct HarborResource {
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    resource_url: Option<String>,
}

#[derive(Deserialize)]
struct HarborRepository {
    repo_full_name: String,
}

#[derive(Deserialize)]
struct HarborDefault {
    r#type: String,
    occur_at: i64,
    event_data: Json,
}

#[derive(Deserialize)]
struct HarborCloudEvent {
    id: String,
    r#type: String,
    #[serde(default)]
    time: Option<String>,
    data: Json,
}

fn harbor(json: Json) -> Result<Delivery, Error> {
    const EXPECTED: &str = "a Harbor webhook event (default JSON or CloudEvents)";
    if json.get("specversion").is_some() {
        let event: HarborCloudEvent = shaped(json, EXPECTED)?;
        if event.r#type != "harbor.artifact.pushed" {
            return Ok(Delivery::NotAPush(event.r#type));
        }
        let pushed_at = event
            .time
            .as_deref()
            .map(|t| Timestamp::parse("time", t))
            .transpose()?;
        let data: HarborData = shaped(event.data, EXPECTED)?;
        return Ok(Delivery::Pushes {
            event_id: Some(event.id),
            pushes: harbor_pushes(data, pushed_at)?,
        });
    }
    let event: HarborDefault = shaped(json, EXPECTED)?;
    if event.r#type != "PUSH_ARTIFACT" {
        return Ok(Delivery::NotAPush(event.r#type));
    }
    let pushed_at = unix_seconds("occur_at", event.occur_at)?;
    let data: HarborData = shaped(event.event_data, EXPECTED)?;
    Ok(Delivery::Pushes {
        event_id: None,
        pushes: harbor_pushes(data, Some(pushed_at))?,
    })
}

fn harbor_pushes(data: HarborData, pushed_at: Option<Timestamp>) -> Result<Vec<Push>, Error> {
    let repository = data.repository.repo_full_name;
    data.resources
        .into_iter()
        .map(|resource| {
            let image_name = resource
                .resource_url
                .as_deref()
                .map(name_of_reference)
                .map_or_else(|| repository.clone(), str::to_owned);
            Ok(Push {
                repository: repository.clone(),
                image_name,
                tag: tag_of(resource.tag),
                digest: digest_of("digest", resource.digest.as_deref())?,
                pushed_at,
            })
        })
        .collect()
}

// GitHub Packages: `registry_package` and `package` events (`published`, `updated`) of
// container packages; `ping` when the hook is made. Neither carries a usable push time
// (`created_at` is `0001-01-01` for containers). The delivery id is `X-GitHub-Delivery`.

#[derive(Deserialize)]
struct GithubEvent {
    action: String,
    #[serde(alias = "registry_package")]
    package: GithubPackage,
}

#[derive(Deserialize)]
struct GithubPackage {
    name: String,
    namespace: Option<String>,
    package_type: String,
    #[serde(default)]
    owner: Option<GithubOwner>,
    package_version: GithubPackageVersion,
}

#[derive(Deserialize)]
struct GithubOwner {
    login: String,
}

#[derive(Deserialize)]
struct GithubPackageVersion {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    package_url: Option<String>,
    #[serde(default)]
    container_metadata: Option<GithubContainerMetadata>,
}

#[derive(Deserialize)]
struct GithubContainerMetadata {
    #[serde(default)]
    tag: Option<GithubTag>,
}

#[derive(Deserialize)]
struct GithubTag {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    digest: Option<String>,
}

fn ghcr(headers: &HeaderMap, json: Json) -> Result<Delivery, Error> {
    const EXPECTED: &str = "a GitHub registry_package or package event";
    match header(headers, "x-github-event") {
        Some("ping") => return Ok(Delivery::Handshake(serde_json::json!({"pong": true}))),
        Some("registry_package" | "package") | None => {}
        Some(other) => return Ok(Delivery::NotAPush(other.to_owned())),
    }
    let event: GithubEvent = shaped(json, EXPECTED)?;
    if !matches!(event.action.as_str(), "published" | "updated") {
        return Ok(Delivery::NotAPush(format!("package {}", event.action)));
    }
    let package = event.package;
    if !package.package_type.eq_ignore_ascii_case("container") {
        return Ok(Delivery::NotAPush(format!(
            "a {} package",
            package.package_type
        )));
    }
    let owner = package
        .namespace
        .or(package.owner.map(|o| o.login))
        .ok_or_else(|| Error::invalid("body", format!("is not {EXPECTED}: no owner")))?;
    let repository = format!("{owner}/{}", package.name).to_ascii_lowercase();
    let version = package.package_version;
    let tag = version.container_metadata.and_then(|m| m.tag);
    let (tag_name, tag_digest) = tag.map_or((None, None), |t| (t.name, t.digest));
    let digest = tag_digest
        .filter(|d| !d.is_empty())
        .or(version.version.filter(|v| v.starts_with("sha")));
    let image_name = version
        .package_url
        .as_deref()
        .map(name_of_reference)
        .map_or_else(|| format!("ghcr.io/{repository}"), str::to_owned);
    Ok(Delivery::Pushes {
        event_id: header(headers, "x-github-delivery").map(str::to_owned),
        pushes: vec![Push {
            repository,
            image_name,
            tag: tag_of(tag_name),
            digest: digest_of("package_version.version", digest.as_deref())?,
            pushed_at: None,
        }],
    })
}

// Azure Container Registry: its own webhook (`action: push`), or Event Grid (an array of
// events; `Microsoft.ContainerRegistry.ImagePushed`, and the subscription-validation
// handshake, also announced by `aeg-event-type: SubscriptionValidation`).

#[derive(Deserialize)]
struct AcrEvent {
    id: String,
    timestamp: String,
    action: String,
    target: AcrTarget,
    #[serde(default)]
    request: Option<AcrRequest>,
}

#[derive(Deserialize)]
struct AcrTarget {
    repository: String,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    digest: Option<String>,
}

#[derive(Deserialize)]
struct AcrRequest {
    #[serde(default)]
    host: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventGridEvent {
    id: String,
    event_type: String,
    data: Json,
}

fn acr(headers: &HeaderMap, json: Json) -> Result<Delivery, Error> {
    const EXPECTED: &str = "an Azure Container Registry webhook or Event Grid event";
    if !json.is_array() {
        let event: AcrEvent = shaped(json, EXPECTED)?;
        return acr_push(event).map(|push| match push {
            Some((id, push)) => Delivery::Pushes {
                event_id: Some(id),
                pushes: vec![push],
            },
            None => Delivery::NotAPush("acr event".to_owned()),
        });
    }
    let events: Vec<EventGridEvent> = shaped(json, EXPECTED)?;
    if let Some(validation) = events
        .iter()
        .find(|e| e.event_type == "Microsoft.EventGrid.SubscriptionValidationEvent")
    {
        let code = validation
            .data
            .get("validationCode")
            .and_then(Json::as_str)
            .ok_or_else(|| Error::invalid("data.validationCode", "is missing"))?;
        return Ok(Delivery::Handshake(
            serde_json::json!({ "validationResponse": code }),
        ));
    }
    if header(headers, "aeg-event-type") == Some("SubscriptionValidation") {
        return Err(Error::invalid(
            "body",
            "a SubscriptionValidation delivery must hold a SubscriptionValidationEvent",
        ));
    }
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let mut pushes = Vec::new();
    for event in events {
        if event.event_type != "Microsoft.ContainerRegistry.ImagePushed" {
            continue;
        }
        let data: AcrEvent = shaped(event.data, EXPECTED)?;
        pushes.extend(acr_push(data)?.map(|(_, push)| push));
    }
    if pushes.is_empty() {
        return Ok(Delivery::NotAPush("event grid events".to_owned()));
    }
    Ok(Delivery::Pushes {
        event_id: Some(ids.join(",")),
        pushes,
    })
}

fn acr_push(event: AcrEvent) -> Result<Option<(String, Push)>, Error> {
    if event.action != "push" {
        return Ok(None);
    }
    let repository = event.target.repository;
    let image_name = match event.request.and_then(|r| r.host) {
        Some(host) => format!("{host}/{repository}"),
        None => repository.clone(),
    };
    let push = Push {
        image_name,
        tag: tag_of(event.target.tag),
        digest: digest_of("target.digest", event.target.digest.as_deref())?,
        pushed_at: Some(Timestamp::parse("timestamp", &event.timestamp)?),
        repository,
    };
    Ok(Some((event.id, push)))
}

// Docker Hub: one tag per delivery, no digest, no event id.

#[derive(Deserialize)]
struct DockerhubEvent {
    push_data: DockerhubPushData,
    repository: DockerhubRepository,
}

#[derive(Deserialize)]
struct DockerhubPushData {
    pushed_at: i64,
    tag: String,
}

#[derive(Deserialize)]
struct DockerhubRepository {
    repo_name: String,
}

fn dockerhub(json: Json) -> Result<Delivery, Error> {
    let event: DockerhubEvent = shaped(json, "a Docker Hub push webhook")?;
    let repository = event.repository.repo_name;
    Ok(Delivery::Pushes {
        event_id: None,
        pushes: vec![Push {
            image_name: format!("docker.io/{repository}"),
            repository,
            tag: tag_of(Some(event.push_data.tag)),
            digest: None,
            pushed_at: Some(unix_seconds(
                "push_data.pushed_at",
                event.push_data.pushed_at,
            )?),
        }],
    })
}

// Quay: `repo_push` with every tag it updated; no digest, no time, no event id.

#[derive(Deserialize)]
struct QuayEvent {
    repository: String,
    docker_url: String,
    updated_tags: Vec<String>,
}

fn quay(json: Json) -> Result<Delivery, Error> {
    let event: QuayEvent = shaped(json, "a Quay repo_push notification")?;
    let pushes = event
        .updated_tags
        .into_iter()
        .map(|tag| Push {
            repository: event.repository.clone(),
            image_name: event.docker_url.clone(),
            tag: tag_of(Some(tag)),
            digest: None,
            pushed_at: None,
        })
        .collect();
    Ok(Delivery::Pushes {
        event_id: None,
        pushes,
    })
}

// Generic: `{repository, tag?, digest?, pushed_at?}`, signed per Standard Webhooks (its
// `webhook-id` is the delivery id).

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenericEvent {
    repository: String,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    pushed_at: Option<String>,
}

fn generic(headers: &HeaderMap, json: Json) -> Result<Delivery, Error> {
    let event: GenericEvent = shaped(json, "a push: {repository, tag, digest, pushed_at}")?;
    if event.tag.is_none() && event.digest.is_none() {
        return Err(Error::invalid(
            "tag",
            "a push names a tag, a digest or both",
        ));
    }
    // `ghcr.io/acme/service-api`: the path is what follows a first component that is a host.
    let repository = match event.repository.split_once('/') {
        Some((host, path)) if host.contains(['.', ':']) || host == "localhost" => path.to_owned(),
        _ => event.repository.clone(),
    };
    Ok(Delivery::Pushes {
        // Signed with the body, so a sender cannot replay a body under a new id unnoticed.
        event_id: header(headers, "webhook-id").map(str::to_owned),
        pushes: vec![Push {
            repository,
            image_name: event.repository,
            tag: event
                .tag
                .map(|t| crate::domain::image::TagName::parse("tag", &t).map(|t| t.into_string()))
                .transpose()?,
            digest: digest_of("digest", event.digest.as_deref())?,
            pushed_at: event
                .pushed_at
                .as_deref()
                .map(|t| Timestamp::parse("pushed_at", t))
                .transpose()?,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_lose_their_tag_or_digest_but_not_a_port() {
        assert_eq!(name_of_reference("ghcr.io/a/b:build-1"), "ghcr.io/a/b");
        assert_eq!(name_of_reference("ghcr.io/a/b:"), "ghcr.io/a/b");
        assert_eq!(
            name_of_reference(&format!("h:5000/a/b@sha256:{}", "0".repeat(64))),
            "h:5000/a/b"
        );
        assert_eq!(name_of_reference("h:5000/a/b"), "h:5000/a/b");
    }

    #[test]
    fn a_tag_that_is_a_digest_or_empty_is_no_tag() {
        assert_eq!(tag_of(Some(String::new())), None);
        assert_eq!(tag_of(Some(format!("sha256:{}", "0".repeat(64)))), None);
        assert_eq!(tag_of(Some("v1".to_owned())), Some("v1".to_owned()));
    }
}
