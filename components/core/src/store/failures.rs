//! `failures`: failures in production, reported or implicit, and their attribution to the
//! deployment that caused it.
//!
//! A deployment is a change failure exactly when its status is `failed`
//! (`image_lead_times.status`, counted by the rollup): attributing a reported failure to a
//! deployment marks it failed, and a deployment marked failed that no reported failure names
//! gets an implicit one, resolved by the next succeeded deployment of its app environment.
//! Writes run inside the caller's transaction.

use crate::db::{Db, DbError, Row};
use crate::domain::deployment::{DeploymentStatus, LeadTimeRecord};
use crate::domain::failure::{Failure, FailureId, FailureReport, FailureSite};
use crate::domain::ids::AppEnvironmentId;
use crate::domain::{OrgId, Recorded, Timestamp};
use crate::error::Error;

use super::deployments;
use super::{Keyset, ORG_KEY, Order, Page};

const COLUMNS: &str = "f.failure_key, f.failure_id, \
     (SELECT org_id FROM orgs WHERE orgs.org_key = f.org_key), f.implicit, f.lead_time_id, \
     l.deployment_id, f.project_id, f.app_id, f.environment, f.prod, f.started_at, \
     f.resolved_at, f.title, f.severity, f.created_at, f.updated_at";

/// A failure and the deployment it is attributed to (for its `deployment_id`).
const FROM: &str =
    "failures AS f LEFT JOIN image_lead_times AS l ON l.lead_time_id = f.lead_time_id";

fn from_row(row: Row<'_>) -> Result<Failure, Error> {
    let stored = |e: Error| Error::storage(format!("unreadable failure row: {e}"));
    Ok(Failure {
        key: row.integer(0)?,
        failure_id: FailureId::stored(row.text(1)?),
        org_id: OrgId::parse("org_id", &row.text(2)?).map_err(stored)?,
        implicit: row.flag(3)?,
        lead_time_id: row.optional_id(4)?,
        deployment_id: row.optional_text(5)?,
        project_id: row.optional_text(6)?,
        app_id: row.text(7)?,
        environment: row.text(8)?,
        prod: row.flag(9)?,
        started_at: row.timestamp(10)?,
        resolved_at: row.optional_timestamp(11)?,
        title: row.optional_text(12)?,
        severity: row.optional_text(13)?,
        created_at: row.timestamp(14)?,
        updated_at: row.timestamp(15)?,
    })
}

/// One failure of the org.
pub(crate) fn find(
    db: &dyn Db,
    org_id: &OrgId,
    failure_id: &FailureId,
) -> Result<Option<Failure>, Error> {
    let rows = db.execute(
        &format!("SELECT {COLUMNS} FROM {FROM} WHERE f.org_key = {ORG_KEY} AND f.failure_id = ?"),
        &[org_id.as_str().into(), failure_id.as_str().into()],
    )?;
    rows.first().map(from_row).transpose()
}

/// The org's failures, newest first.
pub(crate) fn list(
    db: &dyn Db,
    org_id: &OrgId,
    after: Option<i64>,
    limit: usize,
) -> Result<Page<Failure>, Error> {
    Keyset {
        columns: COLUMNS,
        table: FROM,
        filter: &format!("f.org_key = {ORG_KEY}"),
        key: "f.failure_key",
        order: Order::NewestFirst,
    }
    .page(
        db,
        vec![org_id.as_str().into()],
        after.map(Into::into),
        limit,
        from_row,
        |f| f.key.to_string(),
    )
}

/// Records a reported failure, or finds the one a retry of it made (the same `failure_id`,
/// site and start; the same id otherwise is a 409). The failure is attributed to the
/// deployment it names, or to the latest succeeded deployment of its app environment before
/// it started; that deployment is marked failed and loses its implicit failure.
pub(crate) fn report(
    db: &dyn Db,
    org_id: &OrgId,
    report: &FailureReport,
    now: Timestamp,
) -> Result<Recorded<Failure>, Error> {
    if let Some(existing) = find(db, org_id, &report.failure_id)? {
        return if existing.is_reported_as(report) && !existing.implicit {
            Ok(Recorded::Existing(existing))
        } else {
            Err(Error::Conflict {
                detail: format!(
                    "failure_id {:?} is already recorded for another deployment, app \
                     environment or start",
                    report.failure_id.as_str()
                ),
                field: Some("failure_id".to_owned()),
            })
        };
    }
    let (site, attributed) = match &report.site {
        FailureSite::Deployment(deployment_id) => {
            let record = deployments::find_by_deployment_id(db, org_id, deployment_id)?
                .ok_or_else(|| {
                    Error::not_found(format!("deployment {deployment_id:?} does not exist"))
                })?;
            (Site::of(&record), Some(record))
        }
        FailureSite::AppEnvironment {
            project_id,
            app_id,
            environment,
        } => {
            let (app_environment_id, prod) = deployments::find_app_environment(
                db,
                org_id,
                project_id.as_deref(),
                app_id,
                environment,
            )?
            .ok_or_else(|| {
                Error::not_found("no deployment to this project, app and environment exists")
            })?;
            let attributed = deployments::running_at(db, app_environment_id, report.started_at)?;
            // The failure is where its deployment was (its prod flag as recorded then).
            let site = match &attributed {
                Some(record) => Site::of(record),
                None => Site {
                    app_environment_id,
                    project_id: project_id.clone(),
                    app_id: app_id.clone(),
                    environment: environment.as_str().to_owned(),
                    prod,
                },
            };
            (site, attributed)
        }
    };
    insert(
        db,
        org_id,
        &report.failure_id,
        false,
        attributed.as_ref(),
        &site,
        (report.started_at, report.resolved_at),
        (report.title.as_deref(), report.severity.as_deref()),
        now,
    )?;
    if let Some(attributed) = &attributed {
        close_implicit(db, attributed)?;
        deployments::set_outcome(db, attributed, Some(DeploymentStatus::Failed), None, now)?;
    }
    find(db, org_id, &report.failure_id)?
        .map(Recorded::New)
        .ok_or_else(|| Error::storage("a failure just recorded is not there"))
}

/// Where a failure happened, as its row copies it.
struct Site {
    app_environment_id: AppEnvironmentId,
    project_id: Option<String>,
    app_id: String,
    environment: String,
    prod: bool,
}

impl Site {
    fn of(record: &LeadTimeRecord) -> Site {
        Site {
            app_environment_id: record.app_environment_id,
            project_id: record.project_id.clone(),
            app_id: record.app_id.clone(),
            environment: record.environment.clone(),
            prod: record.prod,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn insert(
    db: &dyn Db,
    org_id: &OrgId,
    failure_id: &FailureId,
    implicit: bool,
    attributed: Option<&LeadTimeRecord>,
    site: &Site,
    (started_at, resolved_at): (Timestamp, Option<Timestamp>),
    (title, severity): (Option<&str>, Option<&str>),
    now: Timestamp,
) -> Result<(), Error> {
    let result = db.execute(
        &format!(
            "INSERT INTO failures (failure_id, org_key, implicit, lead_time_id, \
               app_environment_id, project_id, app_id, environment, prod, started_at, \
               resolved_at, title, severity, created_at, updated_at) \
             VALUES (?, {ORG_KEY}, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ),
        &[
            failure_id.as_str().into(),
            org_id.as_str().into(),
            implicit.into(),
            attributed.map(|r| r.lead_time_id).into(),
            site.app_environment_id.into(),
            site.project_id.as_deref().into(),
            site.app_id.as_str().into(),
            site.environment.as_str().into(),
            site.prod.into(),
            started_at.into(),
            resolved_at.into(),
            title.into(),
            severity.into(),
            now.into(),
            now.into(),
        ],
    );
    match result {
        Ok(_) => Ok(()),
        Err(DbError::Unique(message)) => Err(Error::Conflict {
            detail: format!("failure already recorded ({message})"),
            field: Some("failure_id".to_owned()),
        }),
        Err(other) => Err(other.into()),
    }
}

/// Opens the implicit failure of a deployment marked failed, unless a failure already names
/// it. It starts when the deployment finished and is resolved by the next succeeded
/// deployment of the app environment, if one is recorded already (a back-filled report).
pub(crate) fn open_implicit(
    db: &dyn Db,
    record: &LeadTimeRecord,
    now: Timestamp,
) -> Result<(), Error> {
    let named = db.execute(
        "SELECT 1 FROM failures WHERE lead_time_id = ? LIMIT 1",
        &[record.lead_time_id.into()],
    )?;
    if !named.rows.is_empty() {
        return Ok(());
    }
    let resolved_at =
        deployments::next_succeeded_after(db, record.app_environment_id, record.created_at)?;
    insert(
        db,
        &record.org_id,
        &FailureId::implicit(record.lead_time_id),
        true,
        Some(record),
        &Site::of(record),
        (record.created_at, resolved_at),
        (None, None),
        now,
    )
}

/// Whether a reported (not implicit) failure is attributed to the deployment.
pub(crate) fn reported_against(db: &dyn Db, record: &LeadTimeRecord) -> Result<bool, Error> {
    let rows = db.execute(
        "SELECT 1 FROM failures WHERE lead_time_id = ? AND implicit = 0 LIMIT 1",
        &[record.lead_time_id.into()],
    )?;
    Ok(!rows.rows.is_empty())
}

/// Removes a deployment's implicit failure (it was marked succeeded again, or a reported
/// failure now names it).
pub(crate) fn close_implicit(db: &dyn Db, record: &LeadTimeRecord) -> Result<(), Error> {
    db.execute(
        "DELETE FROM failures WHERE lead_time_id = ? AND implicit = 1",
        &[record.lead_time_id.into()],
    )?;
    Ok(())
}

/// What a succeeded deployment resolves: the implicit failures of its app environment that
/// started before it and were open or resolved later (a back-filled deployment resolves them
/// earlier), and the failure it says it fixes if open, at its finish.
pub(crate) fn resolve_by(
    db: &dyn Db,
    record: &LeadTimeRecord,
    now: Timestamp,
) -> Result<(), Error> {
    // Two statements, each one range of `failures_implicit_of_app_environment`.
    for unresolved_or_later in ["resolved_at IS NULL", "resolved_at > ?1"] {
        db.execute(
            &format!(
                "UPDATE failures SET resolved_at = ?1, updated_at = ?2 \
                 WHERE app_environment_id = ?3 AND implicit = 1 AND {unresolved_or_later} \
                   AND started_at < ?1"
            ),
            &[
                record.created_at.into(),
                now.into(),
                record.app_environment_id.into(),
            ],
        )?;
    }
    if let Some(failure_id) = &record.fixes_failure_id {
        db.execute(
            "UPDATE failures SET resolved_at = ?1, updated_at = ?2 \
             WHERE org_key = (SELECT org_key FROM orgs WHERE org_id = ?3) AND failure_id = ?4 \
               AND resolved_at IS NULL AND started_at <= ?1",
            &[
                record.created_at.into(),
                now.into(),
                record.org_id.as_str().into(),
                failure_id.as_str().into(),
            ],
        )?;
    }
    Ok(())
}

/// Changes a failure's resolution, title or severity (`PATCH /failures/{id}`); `None` keeps
/// a field, `Some(None)` clears it. The failure as stored now.
pub(crate) fn update(
    db: &dyn Db,
    failure: Failure,
    resolved_at: Option<Option<Timestamp>>,
    title: Option<Option<&str>>,
    severity: Option<Option<&str>>,
    now: Timestamp,
) -> Result<Failure, Error> {
    let updated = Failure {
        resolved_at: resolved_at.unwrap_or(failure.resolved_at),
        title: title.map_or(failure.title, |t| t.map(str::to_owned)),
        severity: severity.map_or(failure.severity, |s| s.map(str::to_owned)),
        updated_at: now,
        ..failure
    };
    crate::domain::failure::check_resolution(updated.started_at, updated.resolved_at)?;
    db.execute(
        "UPDATE failures SET resolved_at = ?, title = ?, severity = ?, updated_at = ? \
         WHERE failure_key = ?",
        &[
            updated.resolved_at.into(),
            updated.title.as_deref().into(),
            updated.severity.as_deref().into(),
            now.into(),
            updated.key.into(),
        ],
    )?;
    Ok(updated)
}

/// `WHERE` for the change failures (attributed to a deployment) of one org resolved in a
/// range, with the DORA filters.
fn resolved_condition(
    org_id: &OrgId,
    range: &crate::domain::dora::TimeRange,
    filter: &super::deployments::DoraFilter,
) -> (String, Vec<crate::db::Value>) {
    let mut sql = format!(
        "f.org_key = {ORG_KEY} AND f.resolved_at BETWEEN ? AND ? AND f.lead_time_id IS NOT NULL"
    );
    let mut params: Vec<crate::db::Value> =
        vec![org_id.as_str().into(), range.start.into(), range.end.into()];
    filter_condition(filter, &mut sql, &mut params);
    (sql, params)
}

fn filter_condition(
    filter: &super::deployments::DoraFilter,
    sql: &mut String,
    params: &mut Vec<crate::db::Value>,
) {
    for (column, value) in [
        ("project_id", &filter.project_id),
        ("app_id", &filter.app_id),
        ("environment", &filter.environment),
    ] {
        if let Some(value) = value {
            sql.push_str(&format!(" AND f.{column} = ?"));
            params.push(value.as_str().into());
        }
    }
    if let Some(prod) = filter.prod {
        sql.push_str(" AND f.prod = ?");
        params.push(prod.into());
    }
}

fn recovery_times_sql(condition: &str) -> String {
    format!(
        "SELECT group_concat(f.resolved_at || ' ' || (f.resolved_at - f.started_at), ',') \
         FROM failures AS f WHERE {condition}"
    )
}

/// `(resolved_at in Unix seconds, recovery time in µs)` of every change failure resolved in
/// the range: failures are few beside deployments, so they are read from their index
/// (covering every filter), not rolled up.
pub(crate) fn recovery_times(
    db: &dyn Db,
    org_id: &OrgId,
    range: &crate::domain::dora::TimeRange,
    filter: &super::deployments::DoraFilter,
) -> Result<Vec<(i64, u64)>, Error> {
    let (condition, params) = resolved_condition(org_id, range, filter);
    let sql = recovery_times_sql(&condition);
    super::packed_numbers(db, &sql, &params, "recovery time", |[resolved, micros]| {
        Some((super::seconds_of(resolved?), u64::try_from(micros?).ok()?))
    })
}

/// How many change failures started by `end` are still open.
pub(crate) fn open_count(
    db: &dyn Db,
    org_id: &OrgId,
    end: Timestamp,
    filter: &super::deployments::DoraFilter,
) -> Result<u64, Error> {
    let mut sql = format!(
        "SELECT count(*) FROM failures AS f WHERE f.org_key = {ORG_KEY} \
         AND f.resolved_at IS NULL AND f.started_at <= ? AND f.lead_time_id IS NOT NULL"
    );
    let mut params: Vec<crate::db::Value> = vec![org_id.as_str().into(), end.into()];
    filter_condition(filter, &mut sql, &mut params);
    let rows = db.execute(&sql, &params)?;
    let count = rows.first().map(|row| row.integer(0)).transpose()?;
    u64::try_from(count.unwrap_or(0)).map_err(|_| Error::storage("a negative count"))
}
