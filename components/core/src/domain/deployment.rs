//! Deployments: an image reaching an app environment, as a deploy tool reports it, and the
//! lead-time record it becomes, with its outcome (succeeded or failed; planned or rework).

use super::failure::FailureId;
use super::ids::{AppEnvironmentId, LeadTimeId};
use super::image::{COMMIT_CLOCK_SKEW_SECONDS, ImageId};
use super::{OrgId, RegistryId, Timestamp, check_text};
use crate::error::Error;

/// An environment name: 1–63 of ASCII letters, digits, `-`, `_`, `.` (`production`, `eu-1.staging`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvironmentName(String);

impl EnvironmentName {
    pub(crate) fn parse(field: &str, value: &str) -> Result<EnvironmentName, Error> {
        check_text(field, value, 63)?;
        if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(Error::invalid(
                field,
                "must be ASCII letters, digits, '-', '_' or '.'",
            ));
        }
        Ok(EnvironmentName(value.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// The longest project, app and deployment id we keep (characters).
pub(crate) const MAX_ID_CHARS: usize = 255;

/// Whether a deployment went well. `Failed`: its rollout failed, or it caused a failure in
/// production that needed remediation (it counts towards the change failure rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum DeploymentStatus {
    #[default]
    Succeeded,
    Failed,
}

impl DeploymentStatus {
    pub(crate) fn parse(field: &str, value: &str) -> Result<DeploymentStatus, Error> {
        match value {
            "succeeded" => Ok(DeploymentStatus::Succeeded),
            "failed" => Ok(DeploymentStatus::Failed),
            _ => Err(Error::invalid(field, "must be succeeded or failed")),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Succeeded => "succeeded",
            DeploymentStatus::Failed => "failed",
        }
    }
}

/// Why a deployment was made. `Rework`: unplanned, because of an incident in production (a
/// hotfix or a rollback; it counts towards the deployment rework rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum DeploymentKind {
    #[default]
    Planned,
    Rework,
}

impl DeploymentKind {
    pub(crate) fn parse(field: &str, value: &str) -> Result<DeploymentKind, Error> {
        match value {
            "planned" => Ok(DeploymentKind::Planned),
            "rework" => Ok(DeploymentKind::Rework),
            _ => Err(Error::invalid(field, "must be planned or rework")),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DeploymentKind::Planned => "planned",
            DeploymentKind::Rework => "rework",
        }
    }
}

/// A deployment as reported (`POST /deployments`), parsed: every field valid.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Deployment {
    pub(crate) image_id: ImageId,
    pub(crate) project_id: Option<String>,
    pub(crate) app_id: String,
    pub(crate) environment: EnvironmentName,
    pub(crate) prod: bool,
    /// The deploy tool's own id: the idempotency key of a retried report.
    pub(crate) deployment_id: Option<String>,
    /// When the image reached the app environment (the deploy's finish).
    pub(crate) deployed_at: Timestamp,
    /// When the deploy started; not after `deployed_at`.
    pub(crate) started_at: Option<Timestamp>,
    pub(crate) status: DeploymentStatus,
    /// `None`: not said, so a rollback is detected and recorded as rework.
    pub(crate) kind: Option<DeploymentKind>,
    /// The failure this deployment was made to fix (resolved by it when it succeeds).
    pub(crate) fixes_failure_id: Option<FailureId>,
}

/// A deployment's fields as the request gives them.
pub(crate) struct DeploymentFields<'a> {
    pub(crate) image_id: &'a str,
    pub(crate) project_id: Option<&'a str>,
    pub(crate) app_id: &'a str,
    pub(crate) environment: &'a str,
    pub(crate) prod: bool,
    pub(crate) deployment_id: Option<&'a str>,
    pub(crate) deployed_at: Option<&'a str>,
    pub(crate) started_at: Option<&'a str>,
    pub(crate) status: Option<&'a str>,
    pub(crate) kind: Option<&'a str>,
    pub(crate) fixes_failure_id: Option<&'a str>,
}

impl Deployment {
    /// Parses a report received at `now`: `deployed_at` defaults to `now` and may be in the
    /// past (back-filling) but not beyond the clock-skew allowance in the future.
    pub(crate) fn parse(fields: DeploymentFields<'_>, now: Timestamp) -> Result<Deployment, Error> {
        let image_id = ImageId::parse("image_id", fields.image_id)
            .map_err(|_| Error::invalid("image_id", "must be a UUID of an image"))?;
        if let Some(project_id) = fields.project_id {
            check_text("project_id", project_id, MAX_ID_CHARS)?;
        }
        check_text("app_id", fields.app_id, MAX_ID_CHARS)?;
        let environment = EnvironmentName::parse("environment", fields.environment)?;
        if let Some(deployment_id) = fields.deployment_id {
            check_text("deployment_id", deployment_id, MAX_ID_CHARS)?;
        }
        let deployed_at = match fields.deployed_at {
            None => now,
            Some(deployed_at) => {
                let deployed_at = Timestamp::parse("deployed_at", deployed_at)?;
                if (deployed_at.instant() - now.instant()).num_seconds() > COMMIT_CLOCK_SKEW_SECONDS
                {
                    return Err(Error::invalid(
                        "deployed_at",
                        "must not be in the future (back-filling only)",
                    ));
                }
                deployed_at
            }
        };
        let started_at = fields
            .started_at
            .map(|started_at| Timestamp::parse("started_at", started_at))
            .transpose()?;
        if started_at.is_some_and(|started_at| started_at > deployed_at) {
            return Err(Error::invalid(
                "started_at",
                "must not be later than deployed_at (the deploy's finish)",
            ));
        }
        let status = fields
            .status
            .map(|status| DeploymentStatus::parse("status", status))
            .transpose()?
            .unwrap_or_default();
        let kind = fields
            .kind
            .map(|kind| DeploymentKind::parse("kind", kind))
            .transpose()?;
        let fixes_failure_id = fields
            .fixes_failure_id
            .map(|id| FailureId::parse("fixes_failure_id", id))
            .transpose()?;
        Ok(Deployment {
            image_id,
            project_id: fields.project_id.map(str::to_owned),
            app_id: fields.app_id.to_owned(),
            environment,
            prod: fields.prod,
            deployment_id: fields.deployment_id.map(str::to_owned),
            deployed_at,
            started_at,
            status,
            kind,
            fixes_failure_id,
        })
    }

    /// Whether `record` is this deployment: the same image in the same app environment.
    pub(crate) fn is_recorded_as(&self, record: &LeadTimeRecord) -> bool {
        record.image_id == self.image_id
            && record.project_id == self.project_id
            && record.app_id == self.app_id
            && record.environment == self.environment.as_str()
    }
}

/// One image reaching one app environment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LeadTimeRecord {
    pub(crate) lead_time_id: LeadTimeId,
    pub(crate) org_id: OrgId,
    pub(crate) image_id: ImageId,
    /// The image's registry (the image's, not stored with the record).
    pub(crate) registry_id: RegistryId,
    pub(crate) app_environment_id: AppEnvironmentId,
    pub(crate) deployment_id: Option<String>,
    pub(crate) project_id: Option<String>,
    pub(crate) app_id: String,
    pub(crate) environment: String,
    pub(crate) prod: bool,
    /// `None` for an image a registry push recorded (no commit known).
    pub(crate) git_hash: Option<String>,
    pub(crate) git_hash_commit_timestamp: Option<Timestamp>,
    pub(crate) image_name_with_tag: String,
    /// When the image reached the app environment.
    pub(crate) created_at: Timestamp,
    /// `created_at - git_hash_commit_timestamp` in minutes; `None` without a commit time.
    pub(crate) duration_mins: Option<f64>,
    pub(crate) recorded_at: Timestamp,
    pub(crate) status: DeploymentStatus,
    pub(crate) kind: DeploymentKind,
    pub(crate) started_at: Option<Timestamp>,
    pub(crate) fixes_failure_id: Option<FailureId>,
    /// For a rollback: the deployment it replaced (and marked failed).
    pub(crate) rollback_of: Option<LeadTimeId>,
}

impl LeadTimeRecord {
    /// The lead time in whole microseconds: what the record stores (`duration_micros`) and
    /// adds to the daily rollup, so the two always agree. Derived from `duration_mins` as
    /// schema 6's REAL minutes were converted (`CAST(round(duration_mins * 60000000.0) AS
    /// INTEGER)`, migration 0007), so a record keeps its lead time through the upgrade; past
    /// 2^53 µs (~285 years: only nonsense commit times) that is within a few µs of exact.
    /// `None` without a commit time.
    pub(crate) fn duration_micros(&self) -> Option<i64> {
        self.duration_mins.map(super::sorted_runs::mins_to_micros)
    }
}
