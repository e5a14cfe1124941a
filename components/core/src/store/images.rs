//! `images`: insert (once per run), read, list with filters, update the operational fields.

use sha2::{Digest as _, Sha256};

use crate::auth::{ReadableRegistry, WritableRegistry};
use crate::db::{Db, DbError, Row, Value};
use crate::domain::image::{
    ApiDefinitionPath, ApiVersionId, CdRequest, Commit, CommitMessage, Committer, GitHash,
    GitopsHash, Image, ImageId, ImageName, ImageReference, ImageStatus, ImageTags, NewImage,
    PushedAs, RunId, TagName, VersionChange,
};
use crate::domain::receiver::Digest;
use crate::domain::{Channel, OrgId, Timestamp};
use crate::error::Error;

use super::json_columns::{
    decode_cluster_image_tags, decode_ports, decode_tags, encode_cluster_image_tags, encode_ports,
    encode_tags,
};
use super::{ORG_KEY, Page, REGISTRY_KEY};

const COLUMNS: &str = "image_id, (SELECT org_id FROM orgs WHERE orgs.org_key = images.org_key), \
     (SELECT registry_id FROM image_registries AS r WHERE r.registry_key = images.registry_key), channel, version, update_type, tag_name, image_name, \
     image_name_with_tag, status, tags, git_hash, git_hash_commit_timestamp, gitops_hash, api_definition_path, \
     committer, commit_msg, run_id, image_ports, cluster_image_tags, api_version_id, built_at, updated_at, \
     digest, pushed_at, commits";

/// The columns of [`COLUMNS`] as an INSERT names them (the org by its key), and the digest.
/// [`COLUMNS`] for packing into JSON, which holds no blobs: ids as hex (`db::Row::id`), read
/// from the page of rows (`page`).
const PACKED_COLUMNS: &str = "hex(image_id), (SELECT org_id FROM orgs WHERE orgs.org_key = page.org_key), \
     hex((SELECT registry_id FROM image_registries AS r WHERE r.registry_key = page.registry_key)), \
     channel, version, update_type, tag_name, image_name, \
     image_name_with_tag, status, tags, git_hash, git_hash_commit_timestamp, gitops_hash, api_definition_path, \
     committer, commit_msg, run_id, image_ports, cluster_image_tags, api_version_id, built_at, updated_at, \
     digest, pushed_at, NULL";

const INSERTED: &str = "image_id, org_key, registry_key, channel, version, update_type, tag_name, image_name, \
     image_name_with_tag, status, tags, git_hash, git_hash_commit_timestamp, gitops_hash, api_definition_path, \
     committer, commit_msg, run_id, image_ports, cluster_image_tags, api_version_id, commits, built_at, \
     updated_at, request_sha256";

fn from_row(row: Row<'_>) -> Result<Image, Error> {
    let stored = |e: Error| Error::storage(format!("unreadable image row: {e}"));
    let request = CdRequest {
        channel: Channel::parse(&row.text(3)?).map_err(stored)?,
        version_change: VersionChange::parse("update_type", &row.text(5)?).map_err(stored)?,
        tag_name: TagName::from_stored(row.text(6)?),
        image_name: ImageName::from_stored(row.text(7)?),
        image_name_with_tag: ImageReference::from_stored(row.text(8)?),
        status: ImageStatus::parse("status", &row.text(9)?).map_err(stored)?,
        tags: ImageTags::from_stored(decode_tags(&row.text(10)?)?),
        // Stored as '' when absent: the column is NOT NULL since schema 2, and SQLite cannot
        // drop that without copying the table.
        git_hash: Some(row.text(11)?)
            .filter(|hash| !hash.is_empty())
            .map(GitHash::from_stored),
        git_hash_commit_timestamp: row.optional_timestamp(12)?,
        gitops_hash: row.optional_text(13)?.map(GitopsHash::from_stored),
        api_definition_path: row.optional_text(14)?.map(ApiDefinitionPath::from_stored),
        committer: row.optional_text(15)?.map(Committer::from_stored),
        commit_msg: row.optional_text(16)?.map(CommitMessage::from_stored),
        run_id: RunId::from_stored(row.text(17)?),
        image_ports: decode_ports(&row.text(18)?)?,
        cluster_image_tags: decode_cluster_image_tags(&row.text(19)?)?,
        api_version_id: row.optional_text(20)?.map(ApiVersionId::from_stored),
        commits: match row.optional_text(25)? {
            Some(json) => decode_commits(&json)?,
            None => Vec::new(),
        },
    };
    Ok(Image {
        image_id: row.id(0)?,
        org_id: OrgId::parse("org_id", &row.text(1)?).map_err(stored)?,
        registry_id: row.id(2)?,
        version: row.text(4)?,
        request,
        built_at: row.timestamp(21)?,
        updated_at: row.timestamp(22)?,
        push: row
            .optional_timestamp(24)?
            .map(|pushed_at| {
                Ok::<_, Error>(PushedAs {
                    digest: row.optional_text(23)?.map(Digest::from_stored),
                    pushed_at,
                })
            })
            .transpose()?,
    })
}

/// A commit as the `commits` column holds it: `[sha, committed_at µs, author]`.
type StoredCommit = (String, i64, Option<String>);

/// The `commits` column of a request: `NULL` when it listed none.
fn encode_commits(commits: &[Commit]) -> Option<String> {
    if commits.is_empty() {
        return None;
    }
    let stored: Vec<StoredCommit> = commits
        .iter()
        .map(|c| {
            (
                c.sha.as_str().to_owned(),
                c.committed_at.micros(),
                c.author.as_ref().map(|a| a.as_str().to_owned()),
            )
        })
        .collect();
    Some(serde_json::to_string(&stored).expect("commits encode as JSON"))
}

fn decode_commits(json: &str) -> Result<Vec<Commit>, Error> {
    let unreadable = |e: &dyn std::fmt::Display| Error::storage(format!("unreadable commits: {e}"));
    let stored: Vec<StoredCommit> = serde_json::from_str(json).map_err(|e| unreadable(&e))?;
    stored
        .into_iter()
        .map(|(sha, micros, author)| {
            Ok(Commit {
                sha: GitHash::from_stored(sha),
                committed_at: Timestamp::from_micros(micros).map_err(|e| unreadable(&e))?,
                author: author.map(Committer::from_stored),
            })
        })
        .collect()
}

/// A digest of everything a pipeline sent (after defaults and normalisation): a retry of the
/// same run carries the same digest; a different build reusing the run id does not.
pub(crate) fn request_digest(request: &CdRequest) -> String {
    // Instants as the wire renders them: the digest of a run recorded by an earlier schema
    // (text instants) must still match its retry.
    let mut fields: Vec<Value> = request_values(request, |t| t.to_rfc3339().into());
    // A request without commits hashes as before migration 0011, so a run recorded then
    // still matches its retry.
    if fields.last() == Some(&Value::Null) {
        fields.pop();
    }
    let mut hasher = Sha256::new();
    for value in fields {
        // Length-prefixed, typed fields: no two different requests encode the same bytes.
        let encoded = match value {
            Value::Null => "n".to_owned(),
            Value::Text(text) => format!("t{}:{text}", text.len()),
            other => format!("{other:?}"),
        };
        hasher.update(encoded.as_bytes());
        hasher.update([0]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The request's fields in column order, from `channel` to `commits` (less `version`), with
/// the commit time as `instant` makes it.
fn request_values(request: &CdRequest, instant: fn(Timestamp) -> Value) -> Vec<Value> {
    vec![
        request.channel.as_str().into(),
        request.version_change.as_str().into(),
        request.tag_name.as_str().into(),
        request.image_name.as_str().into(),
        request.image_name_with_tag.as_str().into(),
        request.status.as_str().into(),
        encode_tags(request.tags.as_slice()).into(),
        stored_git_hash(request).into(),
        request
            .git_hash_commit_timestamp
            .map_or(Value::Null, instant),
        request.gitops_hash.as_ref().map(GitopsHash::as_str).into(),
        request
            .api_definition_path
            .as_ref()
            .map(ApiDefinitionPath::as_str)
            .into(),
        request.committer.as_ref().map(Committer::as_str).into(),
        request
            .commit_msg
            .as_ref()
            .map(CommitMessage::as_str)
            .into(),
        request.run_id.as_str().into(),
        encode_ports(&request.image_ports).into(),
        encode_cluster_image_tags(&request.cluster_image_tags).into(),
        request
            .api_version_id
            .as_ref()
            .map(ApiVersionId::as_str)
            .into(),
        encode_commits(&request.commits).into(),
    ]
}

/// The stored form of a request's commit: `''` for none (the column is NOT NULL since 0002;
/// [`from_row`] reads it back as `None`).
fn stored_git_hash(request: &CdRequest) -> &str {
    request.git_hash.as_ref().map_or("", GitHash::as_str)
}

/// What recording an image can meet besides success.
#[derive(Debug)]
pub(crate) enum InsertOutcome {
    /// Recorded; the channel moved and the image holds the version it was given.
    Recorded(Box<Image>),
    /// The run id is already recorded for the registry (nothing was written).
    RunRecorded,
    /// The channel's part to bump is at its maximum (nothing was written).
    VersionAtMaximum,
}

/// The message of migration 0005's trigger when a bump would overflow.
const AT_MAXIMUM: &str = "cd-images: the channel version part is at its maximum";

/// Records a new image, moving its channel by its update type, in one autocommit statement:
/// the INSERT computes the image's version from the channel as it was, and migration 0005's
/// trigger moves the channel (and checks the two agree). The write lock is held only inside
/// SQLite.
pub(crate) fn record(
    db: &dyn Db,
    registry: &WritableRegistry,
    image: NewImage,
) -> Result<InsertOutcome, Error> {
    let rows = match insert(db, registry, &image) {
        Ok(rows) => rows,
        Err(DbError::Unique(_)) => return Ok(InsertOutcome::RunRecorded),
        Err(DbError::Other(message)) if message.contains(AT_MAXIMUM) => {
            return Ok(InsertOutcome::VersionAtMaximum);
        }
        Err(other) => return Err(other.into()),
    };
    let version = rows
        .first()
        .map(|row| row.text(0))
        .transpose()?
        .ok_or_else(|| Error::storage("the image INSERT returned no version"))?;
    Ok(InsertOutcome::Recorded(Box::new(
        image.recorded(registry.registry(), version),
    )))
}

/// The version a new image of channel `?4` gets from update type `?5` (SemVersion::bump's
/// rules; a channel not recorded yet is at 0.0.0), in the INSERT below.
const NEXT_VERSION: &str = "(SELECT ?4 || '-' || CASE ?5 \
       WHEN 'major' THEN (major + 1) || '.0.0' \
       WHEN 'minor' THEN major || '.' || (minor + 1) || '.0' \
       WHEN 'patch' THEN major || '.' || minor || '.' || (patch + 1) \
       ELSE major || '.' || minor || '.' || patch END \
     FROM (SELECT coalesce(max(major), 0) AS major, coalesce(max(minor), 0) AS minor, \
                  coalesce(max(patch), 0) AS patch \
           FROM image_versions \
           WHERE registry_key = (SELECT registry_key FROM image_registries WHERE registry_id = ?3) \
             AND channel = ?4))";

/// The INSERT of a new image (its trigger moves the channel). Its values are bound in column
/// order, but for `version` (the fifth column), which [`NEXT_VERSION`] computes.
fn insert(
    db: &dyn Db,
    registry: &WritableRegistry,
    image: &NewImage,
) -> Result<crate::db::Rows, DbError> {
    let mut params: Vec<Value> = vec![
        image.image_id.into(),
        registry.registry().org_id.as_str().into(),
        registry.id().into(),
    ];
    params.extend(request_values(&image.request, Into::into));
    params.extend([
        image.built_at.into(),
        image.built_at.into(),
        image.request_digest.as_str().into(),
    ]);
    let mut placeholders: Vec<String> = (1..=params.len()).map(|n| format!("?{n}")).collect();
    // The org and the registry by their keys (the registry's org is interned), the digest as
    // its 32 bytes.
    placeholders[1] = "(SELECT org_key FROM orgs WHERE org_id = ?2)".to_owned();
    placeholders[2] =
        "(SELECT registry_key FROM image_registries WHERE registry_id = ?3)".to_owned();
    if let Some(digest) = placeholders.last_mut() {
        *digest = format!("unhex({digest})");
    }
    let (before, after) = placeholders.split_at(4);
    let sql = format!(
        "INSERT INTO images ({INSERTED}) VALUES ({}, {NEXT_VERSION}, {}) RETURNING version",
        before.join(", "),
        after.join(", ")
    );
    db.execute(&sql, &params)
}

/// The image recorded for `run_id` in the registry, with its request digest: only those two
/// columns (every pipeline call asks, and almost always finds nothing).
pub(crate) fn find_by_run(
    db: &dyn Db,
    registry: &ReadableRegistry,
    run_id: &str,
) -> Result<Option<(ImageId, String)>, Error> {
    let rows = db.execute(
        &format!(
            "SELECT image_id, lower(hex(request_sha256)) FROM images \
             WHERE registry_key = {REGISTRY_KEY} AND run_id = ?"
        ),
        &[registry.id().into(), run_id.into()],
    )?;
    rows.first()
        .map(|row| Ok((row.id(0)?, row.text(1)?)))
        .transpose()
}

/// One image of a registry.
pub(crate) fn find(
    db: &dyn Db,
    registry: &ReadableRegistry,
    image_id: ImageId,
) -> Result<Option<Image>, Error> {
    let rows = db.execute(
        &format!(
            "SELECT {COLUMNS} FROM images WHERE registry_key = {REGISTRY_KEY} AND image_id = ?"
        ),
        &[registry.id().into(), image_id.into()],
    )?;
    rows.first().map(from_row).transpose()
}

/// Filters of a registry's image list; `None` means any.
#[derive(Debug, Clone, Default)]
pub(crate) struct ImageFilter {
    pub(crate) channel: Option<Channel>,
    pub(crate) status: Option<ImageStatus>,
    /// Images carrying this tag (searched in the `tags` JSON array).
    pub(crate) tag: Option<String>,
    /// The image its registry stored as this manifest.
    pub(crate) digest: Option<Digest>,
    pub(crate) api_version_id: Option<String>,
}

/// A registry's images, newest first, filtered.
pub(crate) fn list(
    db: &dyn Db,
    registry: &ReadableRegistry,
    filter: &ImageFilter,
    after: Option<ImageId>,
    limit: usize,
) -> Result<Page<Image>, Error> {
    let mut sql = format!("SELECT * FROM images WHERE registry_key = {REGISTRY_KEY}");
    let mut params: Vec<Value> = vec![registry.id().into()];
    if let Some(channel) = &filter.channel {
        sql.push_str(" AND channel = ?");
        params.push(channel.as_str().into());
    }
    if let Some(status) = filter.status {
        sql.push_str(" AND status = ?");
        params.push(status.as_str().into());
    }
    if let Some(digest) = &filter.digest {
        sql.push_str(" AND digest = ?");
        params.push(digest.as_str().into());
    }
    if let Some(api_version_id) = &filter.api_version_id {
        sql.push_str(" AND api_version_id = ?");
        params.push(api_version_id.as_str().into());
    }
    if let Some(tag) = &filter.tag {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM json_each(images.tags) WHERE json_each.value = ?)",
        );
        params.push(tag.as_str().into());
    }
    if let Some(cursor) = after {
        sql.push_str(" AND image_id < ?");
        params.push(cursor.into());
    }
    sql.push_str(" ORDER BY image_id DESC LIMIT ?");
    params.push((limit as i64 + 1).into());
    // One packed text instead of 23 values per row (`super::unpack_rows`). The page is put
    // in order here, not by `json_group_array(… ORDER BY …)`: libSQL's client parses every
    // statement before sending it and refuses an ORDER BY inside an aggregate (SQLite 3.44
    // syntax), and an aggregate's input order is otherwise not SQLite's promise.
    let packed = db.execute(
        &format!("SELECT json_group_array(json_array({PACKED_COLUMNS})) FROM ({sql}) AS page"),
        &params,
    )?;
    let rows = super::packed_rows(&packed)?;
    let mut items = rows
        .iter()
        .map(|values| from_row(Row::new(values)))
        .collect::<Result<Vec<_>, _>>()?;
    items.sort_unstable_by_key(|image| std::cmp::Reverse(image.image_id));
    Ok(Page::from_rows(items, limit, |image| {
        image.image_id.to_text()
    }))
}

/// Stores the operational fields of `image` (the build metadata is never rewritten).
pub(crate) fn update(db: &dyn Db, registry: &WritableRegistry, image: &Image) -> Result<(), Error> {
    let r = &image.request;
    db.execute(
        &format!(
            "UPDATE images SET status = ?, tags = ?, cluster_image_tags = ?, image_ports = ?, \
             gitops_hash = ?, updated_at = ? WHERE image_id = ? AND registry_key = {REGISTRY_KEY}"
        ),
        &[
            r.status.as_str().into(),
            encode_tags(r.tags.as_slice()).into(),
            encode_cluster_image_tags(&r.cluster_image_tags).into(),
            encode_ports(&r.image_ports).into(),
            r.gitops_hash.as_ref().map(GitopsHash::as_str).into(),
            image.updated_at.into(),
            image.image_id.into(),
            registry.id().into(),
        ],
    )?;
    Ok(())
}

/// GetDistinctOrgsOfInactiveImages: orgs with at least one image whose status is not `active`,
/// in id order.
pub(crate) fn orgs_with_inactive_images(
    db: &dyn Db,
    after: Option<&OrgId>,
    limit: usize,
) -> Result<Page<OrgId>, Error> {
    // The orgs in id order, each probed in the partial index of inactive images: `orgs` is
    // small, and `status <> 'active'` is the index's own condition.
    let mut params: Vec<Value> = vec![ImageStatus::Active.as_str().into()];
    let mut sql = String::from(
        "SELECT org_id FROM orgs WHERE EXISTS \
         (SELECT 1 FROM images WHERE images.org_key = orgs.org_key AND status <> ?)",
    );
    if let Some(cursor) = after {
        sql.push_str(" AND org_id > ?");
        params.push(cursor.as_str().into());
    }
    sql.push_str(" ORDER BY org_id LIMIT ?");
    params.push((limit as i64 + 1).into());
    let rows = db.execute(&sql, &params)?;
    let orgs = rows
        .iter()
        .map(|row| OrgId::parse("org_id", &row.text(0)?).map_err(|e| Error::storage(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_rows(orgs, limit, |org| org.to_string()))
}

/// One image of the org, whichever registry holds it.
pub(crate) fn find_in_org(
    db: &dyn Db,
    image_id: ImageId,
    org_id: &OrgId,
) -> Result<Option<Image>, Error> {
    let rows = db.execute(
        &format!("SELECT {COLUMNS} FROM images WHERE image_id = ? AND org_key = {ORG_KEY}"),
        &[image_id.into(), org_id.as_str().into()],
    )?;
    rows.first().map(from_row).transpose()
}

/// The newest image of the registry matching `condition` (SQL over `images`, its `?` bound to
/// `params` after the registry), with the digest a push attached to it.
fn newest(
    db: &dyn Db,
    registry: &ReadableRegistry,
    condition: &str,
    params: &[Value],
) -> Result<Option<(ImageId, Option<Digest>)>, Error> {
    let mut bound = vec![registry.id().into()];
    bound.extend_from_slice(params);
    let rows = db.execute(
        &format!(
            "SELECT image_id, digest FROM images WHERE registry_key = {REGISTRY_KEY} \
             AND {condition} ORDER BY image_id DESC LIMIT 1"
        ),
        &bound,
    )?;
    rows.first()
        .map(|row| Ok((row.id(0)?, row.optional_text(1)?.map(Digest::from_stored))))
        .transpose()
}

/// The newest image of the registry recorded with tag `tag` (its `tag_name`, else its
/// `image_name_with_tag` is `reference`): the build a push of that tag stored; with the digest
/// a push already attached to it.
pub(crate) fn newest_with_tag(
    db: &dyn Db,
    registry: &ReadableRegistry,
    tag: &str,
    reference: &str,
) -> Result<Option<(ImageId, Option<Digest>)>, Error> {
    if let Some(image) = newest(db, registry, "tag_name = ?", &[tag.into()])? {
        return Ok(Some(image));
    }
    // A pipeline whose tag_name is not the pushed tag (it pushes more than one): the full
    // reference. Unindexed, but only within the registry and only after the index missed.
    newest(db, registry, "image_name_with_tag = ?", &[reference.into()])
}

/// The newest image of the registry its registry stored as `digest`.
pub(crate) fn newest_with_digest(
    db: &dyn Db,
    registry: &ReadableRegistry,
    digest: &Digest,
) -> Result<Option<ImageId>, Error> {
    Ok(newest(db, registry, "digest = ?", &[digest.as_str().into()])?.map(|(id, _)| id))
}

/// Attaches what a push says to an image: the digest stored (or none, for a registry that
/// sends none: an older digest would no longer be the tag's) and when. Nothing else changes.
pub(crate) fn attach_push(
    db: &dyn Db,
    registry: &WritableRegistry,
    image_id: ImageId,
    pushed: &PushedAs,
    now: Timestamp,
) -> Result<(), Error> {
    db.execute(
        &format!(
            "UPDATE images SET digest = ?, pushed_at = ?, updated_at = ? \
             WHERE image_id = ? AND registry_key = {REGISTRY_KEY}"
        ),
        &[
            pushed.digest.as_ref().map(Digest::as_str).into(),
            pushed.pushed_at.into(),
            now.into(),
            image_id.into(),
            registry.id().into(),
        ],
    )?;
    Ok(())
}

/// The image a push recorded for `request`'s tag on its channel before any pipeline did (the
/// registry's webhook beat the pipeline's own call, which CI makes after `docker push`).
pub(crate) fn pushed_first(
    db: &dyn Db,
    registry: &ReadableRegistry,
    request: &CdRequest,
) -> Result<Option<ImageId>, Error> {
    let pushed = newest(
        db,
        registry,
        "tag_name = ? AND channel = ? AND git_hash = '' AND run_id LIKE 'push-%'",
        &[
            request.tag_name.as_str().into(),
            request.channel.as_str().into(),
        ],
    )?;
    Ok(pushed.map(|(id, _)| id))
}

/// Gives the image a push recorded the pipeline's build: its metadata and run (so a retry of
/// the run finds it) and `request_digest`; its version, channel, update type, digest and push
/// time stay. `false` if it is no longer a push's (another request adopted it meanwhile).
pub(crate) fn adopt(
    db: &dyn Db,
    registry: &WritableRegistry,
    image_id: ImageId,
    request: &CdRequest,
    request_digest: &str,
    now: Timestamp,
) -> Result<bool, Error> {
    let r = request;
    let result = db.execute(
        &format!(
            "UPDATE images SET image_name = ?, image_name_with_tag = ?, status = ?, tags = ?, \
             git_hash = ?, git_hash_commit_timestamp = ?, gitops_hash = ?, api_definition_path = ?, \
             committer = ?, commit_msg = ?, run_id = ?, image_ports = ?, cluster_image_tags = ?, \
             api_version_id = ?, commits = ?, request_sha256 = unhex(?), built_at = ?, \
             updated_at = ? \
             WHERE image_id = ? AND registry_key = {REGISTRY_KEY} AND git_hash = '' \
               AND run_id LIKE 'push-%' RETURNING image_id"
        ),
        &[
            r.image_name.as_str().into(),
            r.image_name_with_tag.as_str().into(),
            r.status.as_str().into(),
            encode_tags(r.tags.as_slice()).into(),
            stored_git_hash(r).into(),
            r.git_hash_commit_timestamp.into(),
            r.gitops_hash.as_ref().map(GitopsHash::as_str).into(),
            r.api_definition_path
                .as_ref()
                .map(ApiDefinitionPath::as_str)
                .into(),
            r.committer.as_ref().map(Committer::as_str).into(),
            r.commit_msg.as_ref().map(CommitMessage::as_str).into(),
            r.run_id.as_str().into(),
            encode_ports(&r.image_ports).into(),
            encode_cluster_image_tags(&r.cluster_image_tags).into(),
            r.api_version_id.as_ref().map(ApiVersionId::as_str).into(),
            encode_commits(&r.commits).into(),
            request_digest.into(),
            now.into(),
            now.into(),
            image_id.into(),
            registry.id().into(),
        ],
    );
    match result {
        Ok(rows) => Ok(!rows.rows.is_empty()),
        // The run is recorded already (a concurrent retry): the caller's replay answers.
        Err(DbError::Unique(_)) => Ok(false),
        Err(other) => Err(other.into()),
    }
}
