//! Images: the images component's routes.
//!
//! - `POST  /api/v1/registries/{registry_id}/images`: CreateImageEntry, the pipeline trigger.
//!   One transaction: resolve the channel (get-or-create), bump it by `update_type`, record the
//!   image with the version it was given. Idempotent on `run_id` per registry: a retry with the
//!   same request answers 200 with the first image; another request with that `run_id` is 409.
//! - `GET   /api/v1/registries/{registry_id}/images[?channel&status&tag&api_version_id]`:
//!   ListByImageCollectionId / ListImagesByApiVersionId, newest first, paginated.
//! - `GET   /api/v1/registries/{registry_id}/images/{image_id}`; `PATCH` the operational fields.
//! - `GET   /api/v1/images/inactive-orgs`: GetDistinctOrgsOfInactiveImages (bootstrap admin).

use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::auth::{ReadableRegistry, WritableRegistry};
use crate::db::transaction;
use crate::domain::image::{
    ApiDefinitionPath, ApiVersionId, CdRequest, Commit, CommitMessage, Committer, GitHash,
    GitopsHash, Image, ImageChanges, ImageId, ImageName, ImageReference, ImageStatus, ImageTags,
    NewImage, RunId, TagName, VersionChange,
};
use crate::domain::receiver::Digest;
use crate::domain::{Channel, OrgId, Recorded, Timestamp};
use crate::env::Env;
use crate::error::Error;
use crate::store::channels;
use crate::store::images::{self as store, ImageFilter, InsertOutcome};
use crate::store::json_columns::{
    ClusterImageTagJson, PortJson, parse_cluster_image_tags, parse_ports,
};
use crate::store::reencode;

use super::{BASE_PATH, Context, PageBody, decode_json, json_response, respond};

/// The CD request as a pipeline posts it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CdRequestBody {
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    update_type: Option<String>,
    tag_name: String,
    image_name: String,
    image_name_with_tag: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    git_hash: String,
    #[serde(default)]
    git_hash_commit_timestamp: Option<String>,
    #[serde(default)]
    gitops_hash: Option<String>,
    #[serde(default)]
    api_definition_path: Option<String>,
    #[serde(default)]
    committer: Option<String>,
    #[serde(default)]
    commit_msg: Option<String>,
    run_id: String,
    #[serde(default)]
    image_ports: Vec<PortJson>,
    #[serde(default)]
    cluster_image_tags: Vec<ClusterImageTagJson>,
    #[serde(default)]
    api_version_id: Option<String>,
    /// `git log <previous>..HEAD`: the commits the build carries.
    #[serde(default)]
    commits: Vec<CommitJson>,
}

/// A commit as the CD request lists it and an image shows it.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct CommitJson {
    sha: String,
    timestamp: String,
    /// Left out when the pipeline gave none (as in the lead-time values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    author: Option<String>,
}

impl From<&Commit> for CommitJson {
    fn from(commit: &Commit) -> CommitJson {
        CommitJson {
            sha: commit.sha.as_str().to_owned(),
            timestamp: commit.committed_at.to_rfc3339(),
            author: commit.author.as_ref().map(|a| a.as_str().to_owned()),
        }
    }
}

fn parse_commits(listed: Vec<CommitJson>) -> Result<Vec<Commit>, Error> {
    listed
        .into_iter()
        .enumerate()
        .map(|(index, commit)| {
            let field = |name: &str| format!("commits[{index}].{name}");
            Ok(Commit {
                sha: GitHash::parse(&field("sha"), &commit.sha)?,
                committed_at: Timestamp::parse(&field("timestamp"), &commit.timestamp)?,
                author: commit
                    .author
                    .map(|a| Committer::parse(&field("author"), &a))
                    .transpose()?,
            })
        })
        .collect()
}

/// Parses an optional field with `parse`.
fn optional<T>(
    field: &str,
    value: Option<&str>,
    parse: fn(&str, &str) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    value.map(|v| parse(field, v)).transpose()
}

impl TryFrom<CdRequestBody> for CdRequest {
    type Error = Error;

    fn try_from(body: CdRequestBody) -> Result<CdRequest, Error> {
        let channel = body
            .channel
            .as_deref()
            .map(Channel::parse)
            .transpose()?
            .unwrap_or_else(Channel::default_channel);
        let version_change = body
            .update_type
            .as_deref()
            .map(|u| VersionChange::parse("update_type", u))
            .transpose()?
            .unwrap_or(VersionChange::Bump(crate::domain::UpdateType::Patch));
        let tag_name = TagName::parse("tag_name", &body.tag_name)?;
        let image_name = ImageName::parse("image_name", &body.image_name)?;
        let image_name_with_tag =
            ImageReference::parse("image_name_with_tag", &body.image_name_with_tag)?;
        let status = body
            .status
            .as_deref()
            .map(|s| ImageStatus::parse("status", s))
            .transpose()?;
        let tags = ImageTags::parse("tags", body.tags)?;
        let git_hash = GitHash::parse("git_hash", &body.git_hash)?;
        let git_hash_commit_timestamp = body
            .git_hash_commit_timestamp
            .as_deref()
            .map(|t| Timestamp::parse("git_hash_commit_timestamp", t))
            .transpose()?;
        let gitops_hash = optional(
            "gitops_hash",
            body.gitops_hash.as_deref(),
            GitopsHash::parse,
        )?;
        let api_definition_path = optional(
            "api_definition_path",
            body.api_definition_path.as_deref(),
            ApiDefinitionPath::parse,
        )?;
        let committer = optional("committer", body.committer.as_deref(), Committer::parse)?;
        let commit_msg = optional(
            "commit_msg",
            body.commit_msg.as_deref(),
            CommitMessage::parse,
        )?;
        let run_id = RunId::parse("run_id", &body.run_id)?;
        let api_version_id = optional(
            "api_version_id",
            body.api_version_id.as_deref(),
            ApiVersionId::parse,
        )?;
        let commits = parse_commits(body.commits)?;
        Commit::check_list(&commits, Some((&git_hash, git_hash_commit_timestamp)))?;
        Ok(CdRequest {
            channel,
            version_change,
            tag_name,
            image_name,
            image_name_with_tag,
            status: status.unwrap_or(ImageStatus::Active),
            tags,
            git_hash: Some(git_hash),
            git_hash_commit_timestamp,
            gitops_hash,
            api_definition_path,
            committer,
            commit_msg,
            run_id,
            image_ports: parse_ports("image_ports", body.image_ports)?,
            cluster_image_tags: parse_cluster_image_tags(
                "cluster_image_tags",
                body.cluster_image_tags,
            )?,
            api_version_id,
            commits,
        })
    }
}

/// The JSON form of an image.
#[derive(Serialize)]
pub(crate) struct ImageBody {
    image_id: String,
    registry_id: String,
    org_id: String,
    channel: String,
    version: String,
    update_type: &'static str,
    tag_name: String,
    image_name: String,
    image_name_with_tag: String,
    status: &'static str,
    tags: Vec<String>,
    git_hash: Option<String>,
    git_hash_commit_timestamp: Option<String>,
    gitops_hash: Option<String>,
    api_definition_path: Option<String>,
    committer: Option<String>,
    commit_msg: Option<String>,
    run_id: String,
    image_ports: Vec<PortJson>,
    cluster_image_tags: Vec<ClusterImageTagJson>,
    api_version_id: Option<String>,
    built_at: String,
    updated_at: String,
    /// The manifest its registry stored under the tag, from the receiver's last push.
    digest: Option<String>,
    pushed_at: Option<String>,
    /// The commits the CD request listed (`[]` when it listed none: the head commit is the
    /// one); one image's answer only, not a list's.
    #[serde(skip_serializing_if = "Option::is_none")]
    commits: Option<Vec<CommitJson>>,
}

impl ImageBody {
    /// An image as a list (or a webhook event) shows it: without its commits (up to 5,000).
    pub(crate) fn in_list(image: Image) -> ImageBody {
        ImageBody::of(image, false)
    }

    fn of(image: Image, with_commits: bool) -> ImageBody {
        let r = image.request;
        let commits = with_commits.then(|| r.commits.iter().map(CommitJson::from).collect());
        ImageBody {
            commits,
            image_id: image.image_id.to_text(),
            registry_id: image.registry_id.to_text(),
            org_id: image.org_id.to_string(),
            channel: r.channel.to_string(),
            version: image.version,
            update_type: r.version_change.as_str(),
            tag_name: r.tag_name.into_string(),
            image_name: r.image_name.into_string(),
            image_name_with_tag: r.image_name_with_tag.into_string(),
            status: r.status.as_str(),
            tags: r.tags.into_vec(),
            git_hash: r.git_hash.map(GitHash::into_string),
            git_hash_commit_timestamp: r.git_hash_commit_timestamp.map(|t| t.to_rfc3339()),
            gitops_hash: r.gitops_hash.map(GitopsHash::into_string),
            api_definition_path: r.api_definition_path.map(ApiDefinitionPath::into_string),
            committer: r.committer.map(Committer::into_string),
            commit_msg: r.commit_msg.map(CommitMessage::into_string),
            run_id: r.run_id.into_string(),
            image_ports: r.image_ports.iter().map(PortJson::from).collect(),
            cluster_image_tags: r
                .cluster_image_tags
                .iter()
                .map(ClusterImageTagJson::from)
                .collect(),
            api_version_id: r.api_version_id.map(ApiVersionId::into_string),
            built_at: image.built_at.to_rfc3339(),
            updated_at: image.updated_at.to_rfc3339(),
            digest: image
                .push
                .as_ref()
                .and_then(|p| p.digest.as_ref())
                .map(|d| d.as_str().to_owned()),
            pushed_at: image.push.as_ref().map(|p| p.pushed_at.to_rfc3339()),
        }
    }
}

impl From<Image> for ImageBody {
    fn from(image: Image) -> Self {
        ImageBody::of(image, true)
    }
}

fn image_location(image: &Image) -> String {
    format!(
        "{BASE_PATH}/registries/{}/images/{}",
        image.registry_id, image.image_id
    )
}

pub(super) fn create(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let env = ctx.env;
    let registry_id = ctx.registry_id()?;
    let body: CdRequestBody = ctx.request.json()?;
    let cd_request = CdRequest::try_from(body)?;
    let now = env.clock.now();
    cd_request.check_commit_time(now)?;
    let digest = store::request_digest(&cd_request);
    // The reads happen before the write, so a retried pipeline run (the common retry) never
    // queues behind other writers; the write is one statement (store::images::record).
    let registry = ctx.writable_registry(registry_id)?;
    ctx.copy_first(|db| reencode::copy_image_of_run(db, registry_id, cd_request.run_id.as_str()))?;
    if let Some(existing) = replay(
        env,
        registry.readable(),
        cd_request.run_id.as_str(),
        &digest,
    )? {
        return json_response(StatusCode::OK, &ImageBody::from(existing));
    }
    // The registry's push webhook may have recorded this build first (a receiver's unknown
    // tag): the pipeline's call completes that image instead of recording a second one.
    if let Some(pushed) = store::pushed_first(env.db, registry.readable(), &cd_request)?
        && store::adopt(env.db, &registry, pushed, &cd_request, &digest, now)?
    {
        let image = store::find(env.db, registry.readable(), pushed)?
            .ok_or_else(|| Error::storage("an adopted image vanished"))?;
        return respond(Recorded::New(image), image_location, ImageBody::from);
    }
    let run_id = cd_request.run_id.clone();
    let (channel, version_change) = (cd_request.channel.clone(), cd_request.version_change);
    let image = NewImage {
        image_id: ImageId::new(env.ids.new_id()),
        request: cd_request,
        built_at: now,
        request_digest: digest.clone(),
    };
    let recorded = match store::record(env.db, &registry, image)? {
        InsertOutcome::Recorded(image) => Recorded::New(*image),
        // The same run recorded by a concurrent request since the read above: the insert
        // failed on the run's unique index, and the channel did not move.
        InsertOutcome::RunRecorded => {
            match replay(env, registry.readable(), run_id.as_str(), &digest)? {
                Some(existing) => Recorded::Existing(existing),
                None => return Err(Error::storage("a recorded run vanished")),
            }
        }
        InsertOutcome::VersionAtMaximum => {
            return Err(channels::at_maximum(
                env.db,
                &registry,
                &channel,
                version_change,
            ));
        }
    };
    respond(recorded, image_location, ImageBody::from)
}

/// The image already recorded for this run, if the request is the same one (a retry); a
/// different request reusing the run id is a 409.
fn replay(
    env: &Env<'_>,
    registry: &ReadableRegistry,
    run_id: &str,
    digest: &str,
) -> Result<Option<Image>, Error> {
    let Some((existing, existing_digest)) = store::find_by_run(env.db, registry, run_id)? else {
        return Ok(None);
    };
    if existing_digest == digest {
        let image = store::find(env.db, registry, existing)?
            .ok_or_else(|| Error::storage("a recorded run vanished"))?;
        return Ok(Some(image));
    }
    Err(Error::Conflict {
        detail: format!(
            "run_id {run_id:?} is already recorded for this registry with a different request (image {})",
            existing
        ),
        field: Some("run_id".to_owned()),
    })
}

fn not_found(image_id: ImageId) -> Error {
    Error::not_found(format!("image {image_id} does not exist"))
}

pub(super) fn get(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let registry_id = ctx.registry_id()?;
    let image_id = ctx.image_id()?;
    let registry = ctx.readable_registry(registry_id)?;
    ctx.copy_first(|db| reencode::copy_image(db, image_id))?;
    let image = store::find(ctx.env.db, &registry, image_id)?.ok_or_else(|| not_found(image_id))?;
    json_response(StatusCode::OK, &ImageBody::from(image))
}

pub(super) fn list(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let request = ctx.request;
    let registry = ctx.readable_registry(ctx.registry_id()?)?;
    let (limit, cursor) = request.page_request()?;
    let after = cursor.map(|c| ImageId::parse("cursor", c)).transpose()?;
    let filter = ImageFilter {
        channel: request.query("channel")?.map(Channel::parse).transpose()?,
        status: request
            .query("status")?
            .map(|s| ImageStatus::parse("status", s))
            .transpose()?,
        tag: request.query("tag")?.map(str::to_owned),
        digest: request
            .query("digest")?
            .map(|d| Digest::parse("digest", d))
            .transpose()?,
        api_version_id: request.query("api_version_id")?.map(str::to_owned),
    };
    ctx.whole_tables()?;
    let page = store::list(ctx.env.db, &registry, &filter, after, limit)?;
    json_response(
        StatusCode::OK,
        &PageBody::from_page(page, ImageBody::in_list),
    )
}

/// The fields a PATCH may change.
const MUTABLE_FIELDS: [&str; 5] = [
    "status",
    "tags",
    "cluster_image_tags",
    "image_ports",
    "gitops_hash",
];

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct UpdateImageBody {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    cluster_image_tags: Option<Vec<ClusterImageTagJson>>,
    #[serde(default)]
    image_ports: Option<Vec<PortJson>>,
    #[serde(default, deserialize_with = "super::present")]
    gitops_hash: Option<Option<String>>,
}

/// Changes the operational fields. Build metadata may be sent back unchanged (so a client can
/// PATCH a whole image it read), but a different value is 422: it is the record of a build.
pub(super) fn update(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let env = ctx.env;
    let registry_id = ctx.registry_id()?;
    let image_id = ctx.image_id()?;
    let fields: Map<String, Json> = ctx.request.json()?;
    ctx.copy_first(|db| reencode::copy_image(db, image_id))?;
    let updated = transaction(env.db, || {
        let registry: WritableRegistry = ctx.writable_registry(registry_id)?;
        let image = store::find(env.db, registry.readable(), image_id)?
            .ok_or_else(|| not_found(image_id))?;
        let current = serde_json::to_value(ImageBody::from(image.clone()))
            .map_err(|e| Error::storage(format!("image encoding failed: {e}")))?;
        let mut mutable = Map::new();
        for (field, value) in fields {
            if MUTABLE_FIELDS.contains(&field.as_str()) {
                mutable.insert(field, value);
            } else if current.get(&field).is_some_and(|stored| *stored == value) {
                // Unchanged build metadata: accepted and ignored.
            } else if current.get(&field).is_some() {
                return Err(Error::invalid(field, "is build metadata and cannot change"));
            } else {
                return Err(Error::invalid(
                    field.clone(),
                    format!("unknown field `{field}`"),
                ));
            }
        }
        let encoded = serde_json::to_vec(&mutable).map_err(|e| Error::storage(e.to_string()))?;
        let body: UpdateImageBody = decode_json(&encoded)?;
        let changes = image_changes(body)?;
        let updated = image.with_changes(changes, env.clock.now());
        store::update(env.db, &registry, &updated)?;
        Ok(updated)
    })?;
    json_response(StatusCode::OK, &ImageBody::from(updated))
}

fn image_changes(body: UpdateImageBody) -> Result<ImageChanges, Error> {
    let tags = body
        .tags
        .map(|tags| ImageTags::parse("tags", tags))
        .transpose()?;
    let gitops_hash = body
        .gitops_hash
        .map(|v| {
            v.as_deref()
                .map(|h| GitopsHash::parse("gitops_hash", h))
                .transpose()
        })
        .transpose()?;
    Ok(ImageChanges {
        status: body
            .status
            .as_deref()
            .map(|s| ImageStatus::parse("status", s))
            .transpose()?,
        tags,
        cluster_image_tags: body
            .cluster_image_tags
            .map(|t| parse_cluster_image_tags("cluster_image_tags", t))
            .transpose()?,
        image_ports: body
            .image_ports
            .map(|p| parse_ports("image_ports", p))
            .transpose()?,
        gitops_hash,
    })
}

/// A cross-org answer, so only the bootstrap admin may ask.
pub(super) fn inactive_orgs(ctx: &Context<'_>) -> Result<Response<Vec<u8>>, Error> {
    let (request, env) = (ctx.request, ctx.env);
    let (limit, cursor) = request.page_request()?;
    let after = cursor
        .map(|c| OrgId::parse("cursor", c).map_err(|_| Error::bad_cursor()))
        .transpose()?;
    ctx.whole_tables()?;
    let page = store::orgs_with_inactive_images(env.db, after.as_ref(), limit)?;
    json_response(
        StatusCode::OK,
        &PageBody::from_page(page, |org| org.to_string()),
    )
}
