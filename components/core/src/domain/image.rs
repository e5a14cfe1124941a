//! Images: one build recorded from a CD request, with the version its channel gave it.
//!
//! The build metadata (commit, run, version, build time) is immutable once recorded; only the
//! operational fields (status, tags, cluster tags, ports, gitops hash) change afterwards.

use crate::Error;

pub(crate) use super::ids::ImageId;
use super::{Channel, OrgId, RegistryId, Timestamp, UpdateType, check_text};

/// Upper bounds on list fields, so one request cannot store megabytes of tags.
pub(crate) const MAX_TAGS: usize = 1000;
pub(crate) const MAX_PORTS: usize = 100;
pub(crate) const MAX_CLUSTER_IMAGE_TAGS: usize = 1000;
/// Commit messages are kept whole up to this many characters.
pub(crate) const MAX_COMMIT_MSG_CHARS: usize = 65_536;

/// How a CD request moves its channel: a bump, or `none` to build at the current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VersionChange {
    Bump(UpdateType),
    Keep,
}

impl VersionChange {
    pub(crate) fn parse(field: &str, value: &str) -> Result<VersionChange, Error> {
        match value {
            "none" => Ok(VersionChange::Keep),
            other => UpdateType::parse(field, other)
                .map(VersionChange::Bump)
                .map_err(|_| Error::invalid(field, "must be one of major, minor, patch, none")),
        }
    }

    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            VersionChange::Bump(update_type) => update_type.as_str(),
            VersionChange::Keep => "none",
        }
    }
}

/// An image's lifecycle status. Every status but `active` counts as inactive (see
/// `GetDistinctOrgsOfInactiveImages`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImageStatus {
    /// Built and in use (the default).
    Active,
    /// Taken out of use.
    Inactive,
    /// Still runnable but to be replaced.
    Deprecated,
    /// The build or its push failed.
    Failed,
}

impl ImageStatus {
    pub(crate) const ALL: [ImageStatus; 4] = [
        ImageStatus::Active,
        ImageStatus::Inactive,
        ImageStatus::Deprecated,
        ImageStatus::Failed,
    ];

    pub(crate) fn parse(field: &str, value: &str) -> Result<ImageStatus, Error> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == value)
            .ok_or_else(|| {
                Error::invalid(field, "must be one of active, inactive, deprecated, failed")
            })
    }

    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            ImageStatus::Active => "active",
            ImageStatus::Inactive => "inactive",
            ImageStatus::Deprecated => "deprecated",
            ImageStatus::Failed => "failed",
        }
    }
}

/// A text field of a build, made only by parsing (`check` refuses what it may not hold).
///
/// `from_stored` takes a value read back from the database unparsed: it was parsed when it
/// was written, and a rule tightened since must not make old records unreadable.
macro_rules! text_field {
    ($(#[$doc:meta])* $name:ident, |$field:ident, $value:ident| $check:expr) => {
        text_field!($(#[$doc])* $name, |$field, $value| $check, stored as str::to_owned);
    };
    // `stored` is the form kept of a valid value (`str::to_owned`, or a normalisation).
    ($(#[$doc:meta])* $name:ident, |$field:ident, $value:ident| $check:expr, stored as $stored:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub(crate) struct $name(String);

        impl $name {
            pub(crate) fn parse($field: &str, $value: &str) -> Result<$name, Error> {
                $check?;
                Ok($name($stored($value)))
            }

            pub(crate) fn from_stored(value: String) -> $name {
                $name(value)
            }

            pub(crate) fn as_str(&self) -> &str {
                &self.0
            }

            pub(crate) fn into_string(self) -> String {
                self.0
            }
        }
    };
}

/// Length limits of the CD request's free-text fields (characters).
const MAX_IMAGE_NAME: usize = 255;
const MAX_IMAGE_NAME_WITH_TAG: usize = 512;
const MAX_SHORT_TEXT: usize = 255;
const MAX_PATH: usize = 1024;

text_field!(
    /// The image's tag in its registry, an OCI tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`
    /// (distribution spec).
    TagName,
    |field, value| {
        let valid = !value.is_empty()
            && value.len() <= 128
            && value.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if valid {
            Ok(())
        } else {
            Err(Error::invalid(
                field,
                "must be an OCI tag: up to 128 of A-Z a-z 0-9 _ . - (not starting with . or -)",
            ))
        }
    }
);
text_field!(
    /// The image's repository name (`team/service-api`).
    ImageName,
    |field, value| check_text(field, value, MAX_IMAGE_NAME)
);
text_field!(
    /// The full image reference with its tag (`ghcr.io/team/service-api:default-1.4.1`).
    ImageReference,
    |field, value| check_text(field, value, MAX_IMAGE_NAME_WITH_TAG)
);
text_field!(
    /// The commit of the GitOps repository the build was deployed with.
    GitopsHash,
    |field, value| check_text(field, value, MAX_SHORT_TEXT)
);
text_field!(
    /// Where the build's API definition lives in its repository.
    ApiDefinitionPath,
    |field, value| check_text(field, value, MAX_PATH)
);
text_field!(
    /// Who made the commit.
    Committer,
    |field, value| check_text(field, value, MAX_SHORT_TEXT)
);
text_field!(
    /// A commit message: kept verbatim (newlines, tabs, any script), but no NUL and bounded.
    CommitMessage,
    |field, value| {
        if value.contains('\0') {
            Err(Error::invalid(field, "must not contain NUL characters"))
        } else if value.chars().count() > MAX_COMMIT_MSG_CHARS {
            Err(Error::invalid(
                field,
                format!("must be at most {MAX_COMMIT_MSG_CHARS} characters"),
            ))
        } else {
            Ok(())
        }
    }
);
text_field!(
    /// The pipeline run that built the image: the idempotency key of a retried CD request.
    RunId,
    |field, value| check_text(field, value, MAX_SHORT_TEXT)
);
text_field!(
    /// The API version the image implements.
    ApiVersionId,
    |field, value| check_text(field, value, MAX_SHORT_TEXT)
);

text_field!(
    /// A git commit hash: 7 to 64 hex digits (abbreviated, SHA-1 or SHA-256), stored lowercase.
    GitHash,
    |field, value| {
        if (7..=64).contains(&value.len()) && value.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(())
        } else {
            Err(Error::invalid(
                field,
                "must be a git commit hash: 7 to 64 hexadecimal digits",
            ))
        }
    },
    stored as str::to_ascii_lowercase
);

/// An image's tags: each an OCI-tag-like label (≤ 128), no duplicates, at most [`MAX_TAGS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ImageTags(Vec<String>);

impl ImageTags {
    pub(crate) fn parse(field: &str, tags: Vec<String>) -> Result<ImageTags, Error> {
        if tags.len() > MAX_TAGS {
            return Err(Error::invalid(
                field,
                format!("must have at most {MAX_TAGS} entries"),
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(tags.len());
        for (index, tag) in tags.iter().enumerate() {
            check_text(&format!("{field}[{index}]"), tag, 128)?;
            if !seen.insert(tag.as_str()) {
                return Err(Error::invalid(
                    format!("{field}[{index}]"),
                    format!("duplicate tag {tag:?}"),
                ));
            }
        }
        Ok(ImageTags(tags))
    }

    /// As [`TagName::from_stored`].
    pub(crate) fn from_stored(tags: Vec<String>) -> ImageTags {
        ImageTags(tags)
    }

    pub(crate) fn as_slice(&self) -> &[String] {
        &self.0
    }

    pub(crate) fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// A port the image exposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImagePort {
    pub(crate) port: u16,
    /// `tcp`, `udp` or `sctp` (any case, kept as given); absent means unspecified.
    pub(crate) protocol: Option<String>,
    pub(crate) name: Option<String>,
}

impl ImagePort {
    pub(crate) fn parse(
        field: &str,
        port: i64,
        protocol: Option<String>,
        name: Option<String>,
    ) -> Result<ImagePort, Error> {
        let port = u16::try_from(port).ok().filter(|p| *p > 0).ok_or_else(|| {
            Error::invalid(
                format!("{field}.port"),
                "must be a port number from 1 to 65535",
            )
        })?;
        if let Some(protocol) = &protocol
            && !["tcp", "udp", "sctp"].contains(&protocol.to_ascii_lowercase().as_str())
        {
            return Err(Error::invalid(
                format!("{field}.protocol"),
                "must be tcp, udp or sctp",
            ));
        }
        if let Some(name) = &name {
            check_text(&format!("{field}.name"), name, 63)?;
        }
        Ok(ImagePort {
            port,
            protocol,
            name,
        })
    }
}

/// The tag an image runs under in one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterImageTag {
    pub(crate) cluster_id: String,
    pub(crate) tag: String,
}

impl ClusterImageTag {
    pub(crate) fn parse(
        field: &str,
        cluster_id: String,
        tag: String,
    ) -> Result<ClusterImageTag, Error> {
        check_text(&format!("{field}.cluster_id"), &cluster_id, 255)?;
        TagName::parse(&format!("{field}.tag"), &tag)?;
        Ok(ClusterImageTag { cluster_id, tag })
    }
}

/// The most commits one CD request may list (a pipeline's `git log <previous>..HEAD`).
pub(crate) const MAX_COMMITS: usize = 5_000;

/// One commit a build carries, as the pipeline listed it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Commit {
    pub(crate) sha: GitHash,
    pub(crate) committed_at: Timestamp,
    pub(crate) author: Option<Committer>,
}

impl Commit {
    /// Checks a listed commit list: at most [`MAX_COMMITS`], each sha once and in full (as
    /// the head commit then is: a commit is counted by its sha, and an abbreviated one would
    /// be another commit), and the head commit, if listed, at the time the request gives it.
    pub(crate) fn check_list(
        commits: &[Commit],
        head: Option<(&GitHash, Option<Timestamp>)>,
    ) -> Result<(), Error> {
        if commits.len() > MAX_COMMITS {
            return Err(Error::invalid(
                "commits",
                format!("must have at most {MAX_COMMITS} entries"),
            ));
        }
        let full = |sha: &GitHash| matches!(sha.as_str().len(), 40 | 64);
        if let Some((sha, _)) = head
            && !commits.is_empty()
            && !full(sha)
        {
            return Err(Error::invalid(
                "git_hash",
                "must be a full commit hash (40 or 64 hexadecimal digits) when commits are listed",
            ));
        }
        if let Some(index) = commits.iter().position(|c| !full(&c.sha)) {
            return Err(Error::invalid(
                format!("commits[{index}].sha"),
                "must be a full commit hash (40 or 64 hexadecimal digits)",
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(commits.len());
        for (index, commit) in commits.iter().enumerate() {
            if !seen.insert(commit.sha.as_str()) {
                return Err(Error::invalid(
                    format!("commits[{index}].sha"),
                    format!("duplicate commit {}", commit.sha.as_str()),
                ));
            }
            if let Some((sha, Some(at))) = head
                && sha == &commit.sha
                && at != commit.committed_at
            {
                return Err(Error::invalid(
                    format!("commits[{index}].timestamp"),
                    "differs from git_hash_commit_timestamp for the same commit",
                ));
            }
        }
        Ok(())
    }
}

/// A validated CD request: what a pipeline posts after a build.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CdRequest {
    pub(crate) channel: Channel,
    pub(crate) version_change: VersionChange,
    pub(crate) tag_name: TagName,
    pub(crate) image_name: ImageName,
    pub(crate) image_name_with_tag: ImageReference,
    pub(crate) status: ImageStatus,
    pub(crate) tags: ImageTags,
    /// The commit built; `None` for an image a registry push recorded (no pipeline told us).
    pub(crate) git_hash: Option<GitHash>,
    pub(crate) git_hash_commit_timestamp: Option<Timestamp>,
    pub(crate) gitops_hash: Option<GitopsHash>,
    pub(crate) api_definition_path: Option<ApiDefinitionPath>,
    pub(crate) committer: Option<Committer>,
    pub(crate) commit_msg: Option<CommitMessage>,
    pub(crate) run_id: RunId,
    pub(crate) image_ports: Vec<ImagePort>,
    pub(crate) cluster_image_tags: Vec<ClusterImageTag>,
    pub(crate) api_version_id: Option<ApiVersionId>,
    /// The commits the build carries, as listed; empty when the request listed none (the
    /// head commit is then the one commit).
    pub(crate) commits: Vec<Commit>,
}

/// How far in the future a commit timestamp may be: clocks of CI runners and developer
/// machines drift, but a commit hours ahead would make lead times negative.
pub(crate) const COMMIT_CLOCK_SKEW_SECONDS: i64 = 300;

impl CdRequest {
    /// Refuses a commit timestamp more than [`COMMIT_CLOCK_SKEW_SECONDS`] after `now`.
    /// Refuses a listed commit's timestamp likewise.
    pub(crate) fn check_commit_time(&self, now: Timestamp) -> Result<(), Error> {
        let listed = self
            .commits
            .iter()
            .enumerate()
            .map(|(index, c)| (format!("commits[{index}].timestamp"), c.committed_at));
        let head = self
            .git_hash_commit_timestamp
            .map(|at| ("git_hash_commit_timestamp".to_owned(), at));
        for (field, committed) in head.into_iter().chain(listed) {
            let ahead = committed.instant() - now.instant();
            if ahead.num_seconds() > COMMIT_CLOCK_SKEW_SECONDS {
                return Err(Error::invalid(
                    field,
                    format!(
                        "is {} s in the future (more than the {COMMIT_CLOCK_SKEW_SECONDS} s clock-skew allowance)",
                        ahead.num_seconds()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// An image as stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Image {
    pub(crate) image_id: ImageId,
    pub(crate) org_id: OrgId,
    pub(crate) registry_id: RegistryId,
    /// The version string the channel gave this build: `{channel}-{major}.{minor}.{patch}`.
    pub(crate) version: String,
    pub(crate) request: CdRequest,
    pub(crate) built_at: Timestamp,
    pub(crate) updated_at: Timestamp,
    /// What the registry stored for this build, as its push receiver last told us.
    pub(crate) push: Option<PushedAs>,
}

/// The manifest a registry stored under an image's tag, and when.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PushedAs {
    /// `None` for a registry that sends no digest (Docker Hub, Quay).
    pub(crate) digest: Option<super::receiver::Digest>,
    pub(crate) pushed_at: Timestamp,
}

/// A build about to be recorded: everything an [`Image`] holds but what recording gives it
/// (its registry's org and id, and the version its channel hands out).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewImage {
    pub(crate) image_id: ImageId,
    pub(crate) request: CdRequest,
    pub(crate) built_at: Timestamp,
    /// `store::request_digest` of `request`, computed once: the retry check reads it first.
    pub(crate) request_digest: String,
}

impl NewImage {
    /// The image as recorded in `registry` with the `version` its channel gave it.
    pub(crate) fn recorded(self, registry: &super::ImageRegistry, version: String) -> Image {
        Image {
            image_id: self.image_id,
            org_id: registry.org_id.clone(),
            registry_id: registry.registry_id,
            version,
            request: self.request,
            built_at: self.built_at,
            updated_at: self.built_at,
            push: None,
        }
    }
}

/// The operational fields that may change after the build; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ImageChanges {
    pub(crate) status: Option<ImageStatus>,
    pub(crate) tags: Option<ImageTags>,
    pub(crate) cluster_image_tags: Option<Vec<ClusterImageTag>>,
    pub(crate) image_ports: Option<Vec<ImagePort>>,
    /// `Some(None)` clears it.
    pub(crate) gitops_hash: Option<Option<GitopsHash>>,
}

impl Image {
    pub(crate) fn with_changes(mut self, changes: ImageChanges, now: Timestamp) -> Image {
        if let Some(status) = changes.status {
            self.request.status = status;
        }
        if let Some(tags) = changes.tags {
            self.request.tags = tags;
        }
        if let Some(cluster_image_tags) = changes.cluster_image_tags {
            self.request.cluster_image_tags = cluster_image_tags;
        }
        if let Some(image_ports) = changes.image_ports {
            self.request.image_ports = image_ports;
        }
        if let Some(gitops_hash) = changes.gitops_hash {
            self.request.gitops_hash = gitops_hash;
        }
        self.updated_at = now;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_keeps_the_version_and_the_others_bump() {
        assert_eq!(
            VersionChange::parse("update_type", "none").unwrap(),
            VersionChange::Keep
        );
        assert_eq!(
            VersionChange::parse("update_type", "minor").unwrap(),
            VersionChange::Bump(UpdateType::Minor)
        );
        assert!(VersionChange::parse("update_type", "build").is_err());
    }

    #[test]
    fn every_status_but_active_is_inactive_and_unknown_ones_are_refused() {
        for status in ImageStatus::ALL {
            assert_eq!(
                ImageStatus::parse("status", status.as_str()).unwrap(),
                status
            );
        }
        assert!(ImageStatus::parse("status", "Active").is_err());
    }

    #[test]
    fn git_hashes_are_hex_and_stored_lowercase() {
        assert_eq!(
            GitHash::parse("git_hash", "ABCDEF1").unwrap().as_str(),
            "abcdef1"
        );
        for bad in ["abc", "xyz1234", &"a".repeat(65), "", "abcdef1 "] {
            assert!(GitHash::parse("git_hash", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_are_unique_bounded_and_printable() {
        let many: Vec<String> = (0..MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert!(ImageTags::parse("tags", many).is_ok());
        let too_many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert!(ImageTags::parse("tags", too_many).is_err());
        let duplicate =
            ImageTags::parse("tags", vec!["a".into(), "b".into(), "a".into()]).unwrap_err();
        assert_eq!(duplicate.problem().field.as_deref(), Some("tags[2]"));
        assert!(ImageTags::parse("tags", vec!["".into()]).is_err());
    }

    #[test]
    fn ports_are_1_to_65535_with_known_protocols() {
        assert!(
            ImagePort::parse(
                "image_ports[0]",
                8080,
                Some("TCP".into()),
                Some("http".into())
            )
            .is_ok()
        );
        for port in [0, -1, 65536] {
            assert!(
                ImagePort::parse("image_ports[0]", port, None, None).is_err(),
                "{port}"
            );
        }
        assert!(ImagePort::parse("image_ports[0]", 80, Some("http".into()), None).is_err());
    }

    #[test]
    fn oci_tags_follow_the_distribution_grammar() {
        for ok in ["latest", "v1.2.3", "default-1.2.3", "_x", &"a".repeat(128)] {
            assert!(TagName::parse("tag", ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a:b", "a/b", &"a".repeat(129)] {
            assert!(TagName::parse("tag", bad).is_err(), "{bad}");
        }
    }
}
