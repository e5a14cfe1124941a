//! Failures in production: what an incident tool (or a deploy tool) reports went wrong after a
//! change, attributed to the deployment that caused it, and when it was resolved. Change
//! failure rate counts the deployments they are attributed to; recovery time is their
//! duration.

use super::deployment::{EnvironmentName, MAX_ID_CHARS};
use super::ids::LeadTimeId;
use super::{OrgId, Timestamp, check_text};
use crate::error::Error;

/// A failure's id: the incident tool's (PagerDuty `Q1R2…`, an Opsgenie UUID, an incident.io
/// ULID), 1–255 of ASCII letters, digits and `-_.:~`, so it is a path segment as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FailureId(String);

impl FailureId {
    pub(crate) fn parse(field: &str, value: &str) -> Result<FailureId, Error> {
        check_text(field, value, MAX_ID_CHARS)?;
        if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:~".contains(c))
        {
            return Err(Error::invalid(
                field,
                "must be ASCII letters, digits, '-', '_', '.', ':' or '~'",
            ));
        }
        Ok(FailureId(value.to_owned()))
    }

    /// A reported failure's own id: [`FailureId::parse`], and not in the `deployment:` space
    /// of implicit failures.
    pub(crate) fn parse_reported(field: &str, value: &str) -> Result<FailureId, Error> {
        let id = FailureId::parse(field, value)?;
        if id.0.starts_with(IMPLICIT_PREFIX) {
            return Err(Error::invalid(
                field,
                format!("ids beginning {IMPLICIT_PREFIX:?} are the implicit failures' own"),
            ));
        }
        Ok(id)
    }

    /// The id of the failure a failed deployment opens when no reported failure names it.
    pub(crate) fn implicit(lead_time_id: LeadTimeId) -> FailureId {
        FailureId(format!("{IMPLICIT_PREFIX}{lead_time_id}"))
    }

    /// A stored id, as it was checked when written.
    pub(crate) fn stored(value: String) -> FailureId {
        FailureId(value)
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// What an implicit failure's id begins with (then its deployment's `lead_time_id`).
const IMPLICIT_PREFIX: &str = "deployment:";

/// The longest failure title we keep (characters).
const MAX_TITLE_CHARS: usize = 1000;
/// The longest severity (`SEV1`, `P2`, `critical`).
const MAX_SEVERITY_CHARS: usize = 63;

/// Where a reported failure happened: the deployment that caused it (the deploy tool's
/// `deployment_id`), or the app environment, whose latest succeeded deployment before the
/// failure started is then the one it is attributed to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FailureSite {
    Deployment(String),
    AppEnvironment {
        project_id: Option<String>,
        app_id: String,
        environment: EnvironmentName,
    },
}

/// A failure as reported (`POST /failures`), parsed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FailureReport {
    pub(crate) failure_id: FailureId,
    pub(crate) site: FailureSite,
    pub(crate) started_at: Timestamp,
    pub(crate) resolved_at: Option<Timestamp>,
    pub(crate) title: Option<String>,
    pub(crate) severity: Option<String>,
}

/// A failure report's fields as the request gives them.
pub(crate) struct FailureFields<'a> {
    pub(crate) failure_id: &'a str,
    pub(crate) deployment_id: Option<&'a str>,
    pub(crate) project_id: Option<&'a str>,
    pub(crate) app_id: Option<&'a str>,
    pub(crate) environment: Option<&'a str>,
    pub(crate) started_at: &'a str,
    pub(crate) resolved_at: Option<&'a str>,
    pub(crate) title: Option<&'a str>,
    pub(crate) severity: Option<&'a str>,
}

impl FailureReport {
    pub(crate) fn parse(fields: FailureFields<'_>, now: Timestamp) -> Result<FailureReport, Error> {
        let failure_id = FailureId::parse_reported("failure_id", fields.failure_id)?;
        let site = match (fields.deployment_id, fields.app_id, fields.environment) {
            (Some(deployment_id), None, None) if fields.project_id.is_none() => {
                check_text("deployment_id", deployment_id, MAX_ID_CHARS)?;
                FailureSite::Deployment(deployment_id.to_owned())
            }
            (None, Some(app_id), Some(environment)) => {
                if let Some(project_id) = fields.project_id {
                    check_text("project_id", project_id, MAX_ID_CHARS)?;
                }
                check_text("app_id", app_id, MAX_ID_CHARS)?;
                FailureSite::AppEnvironment {
                    project_id: fields.project_id.map(str::to_owned),
                    app_id: app_id.to_owned(),
                    environment: EnvironmentName::parse("environment", environment)?,
                }
            }
            (Some(_), _, _) => {
                return Err(Error::invalid(
                    "deployment_id",
                    "name the deployment, or the project_id, app_id and environment, not both",
                ));
            }
            (None, None, _) => {
                return Err(Error::invalid(
                    "app_id",
                    "a failure names its deployment_id, or its app_id and environment",
                ));
            }
            (None, Some(_), None) => {
                return Err(Error::invalid(
                    "environment",
                    "a failure named by app_id also names its environment",
                ));
            }
        };
        let (started_at, resolved_at) = checked_times(fields.started_at, fields.resolved_at, now)?;
        if let Some(title) = fields.title {
            check_text("title", title, MAX_TITLE_CHARS)?;
        }
        if let Some(severity) = fields.severity {
            check_text("severity", severity, MAX_SEVERITY_CHARS)?;
        }
        Ok(FailureReport {
            failure_id,
            site,
            started_at,
            resolved_at,
            title: fields.title.map(str::to_owned),
            severity: fields.severity.map(str::to_owned),
        })
    }
}

/// A failure's start and resolution: not in the future (beyond the clock-skew allowance),
/// and the resolution not before the start.
fn checked_times(
    started_at: &str,
    resolved_at: Option<&str>,
    now: Timestamp,
) -> Result<(Timestamp, Option<Timestamp>), Error> {
    let started_at = not_in_future("started_at", started_at, now)?;
    let resolved_at = resolved_at
        .map(|resolved_at| not_in_future("resolved_at", resolved_at, now))
        .transpose()?;
    check_resolution(started_at, resolved_at)?;
    Ok((started_at, resolved_at))
}

/// A resolution is not before its failure started.
pub(crate) fn check_resolution(
    started_at: Timestamp,
    resolved_at: Option<Timestamp>,
) -> Result<(), Error> {
    if resolved_at.is_some_and(|resolved_at| resolved_at < started_at) {
        return Err(Error::invalid(
            "resolved_at",
            "must not be earlier than started_at",
        ));
    }
    Ok(())
}

/// An instant a client reports, not later than `now` plus the clock-skew allowance.
pub(crate) fn not_in_future(field: &str, value: &str, now: Timestamp) -> Result<Timestamp, Error> {
    let instant = Timestamp::parse(field, value)?;
    if (instant.instant() - now.instant()).num_seconds() > super::image::COMMIT_CLOCK_SKEW_SECONDS {
        return Err(Error::invalid(field, "must not be in the future"));
    }
    Ok(instant)
}

/// A failure as stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    /// Its place in the org's list (the list's cursor).
    pub(crate) key: i64,
    pub(crate) failure_id: FailureId,
    pub(crate) org_id: OrgId,
    /// Opened by a failed deployment no reported failure names.
    pub(crate) implicit: bool,
    /// The deployment it is attributed to; `None` if its app environment had no succeeded
    /// deployment before it started.
    pub(crate) lead_time_id: Option<LeadTimeId>,
    pub(crate) deployment_id: Option<String>,
    pub(crate) project_id: Option<String>,
    pub(crate) app_id: String,
    pub(crate) environment: String,
    pub(crate) prod: bool,
    pub(crate) started_at: Timestamp,
    pub(crate) resolved_at: Option<Timestamp>,
    pub(crate) title: Option<String>,
    pub(crate) severity: Option<String>,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
}

impl Failure {
    /// Whether a retried report is this failure: the same id with the same site and start
    /// (a resolution or title it adds is a PATCH's business, not a conflict).
    pub(crate) fn is_reported_as(&self, report: &FailureReport) -> bool {
        let same_site = match &report.site {
            FailureSite::Deployment(deployment_id) => {
                self.deployment_id.as_deref() == Some(deployment_id)
            }
            FailureSite::AppEnvironment {
                project_id,
                app_id,
                environment,
            } => {
                &self.project_id == project_id
                    && &self.app_id == app_id
                    && self.environment == environment.as_str()
            }
        };
        same_site && self.started_at == report.started_at
    }

    /// Minutes from start to resolution; `None` while open.
    pub(crate) fn recovery_mins(&self) -> Option<f64> {
        self.resolved_at
            .map(|resolved_at| super::dora::duration_mins(self.started_at, resolved_at))
    }
}
