//! `environments`, `app_environments` and `image_lead_times`: deployment records and the
//! range queries of the DORA figures.
//!
//! Writes run inside the caller's `BEGIN IMMEDIATE` transaction, so the select-then-insert
//! upserts below cannot race.

use crate::db::{Db, DbError, Row, Value};
use crate::domain::deployment::{
    Deployment, DeploymentKind, DeploymentStatus, EnvironmentName, LeadTimeRecord,
};
use crate::domain::dora::duration_mins;
use crate::domain::dora::{LeadTimeUnit, TimeRange};
use crate::domain::failure::FailureId;
use crate::domain::ids::{AppEnvironmentId, EnvironmentId, LeadTimeId};
use crate::domain::image::{GitHash, ImageId};
use crate::domain::sorted_runs::MICROS_PER_MINUTE;
use crate::domain::{OrgId, Recorded, Timestamp};
use crate::env::Ids;
use crate::error::Error;

use super::{ORG_KEY, Page, seconds_of};

/// A record's columns, read from the record (`l`) and its image (`i`, [`FROM`]).
const COLUMNS: &str = "l.lead_time_id, (SELECT org_id FROM orgs WHERE orgs.org_key = l.org_key), \
     l.image_id, l.app_environment_id, l.deployment_id, l.project_id, l.app_id, l.environment, l.prod, \
     i.git_hash, i.git_hash_commit_timestamp, i.image_name_with_tag, l.created_at, l.duration_micros, \
     l.recorded_at, l.status, l.kind, l.started_at, l.fixes_failure_id, l.rollback_of, \
     (SELECT r.registry_id FROM image_registries AS r WHERE r.registry_key = i.registry_key)";

/// A record and its image: the image holds the git hash, commit time and reference that a
/// record shows (migration 0007 stopped copying them into every record).
const FROM: &str = "image_lead_times AS l JOIN images AS i ON i.image_id = l.image_id";

/// [`COLUMNS`] for packing into JSON, which holds no blobs (ids as hex, `db::Row::id`), read
/// from a `page` of records that carries their images' columns.
const PACKED_COLUMNS: &str = "hex(lead_time_id), (SELECT org_id FROM orgs WHERE orgs.org_key = page.org_key), \
     hex(image_id), hex(app_environment_id), deployment_id, project_id, app_id, environment, prod, \
     git_hash, git_hash_commit_timestamp, image_name_with_tag, created_at, duration_micros, recorded_at, \
     status, kind, started_at, fixes_failure_id, nullif(hex(rollback_of), ''), \
     (SELECT hex(r.registry_id) FROM image_registries AS r WHERE r.registry_key = page.registry_key)";

fn from_row(row: Row<'_>) -> Result<LeadTimeRecord, Error> {
    let stored = |e: Error| Error::storage(format!("unreadable lead-time row: {e}"));
    Ok(LeadTimeRecord {
        lead_time_id: row.id(0)?,
        org_id: OrgId::parse("org_id", &row.text(1)?).map_err(stored)?,
        image_id: row.id(2)?,
        registry_id: row.id(20)?,
        app_environment_id: row.id(3)?,
        deployment_id: row.optional_text(4)?,
        project_id: row.optional_text(5)?,
        app_id: row.text(6)?,
        environment: row.text(7)?,
        prod: row.flag(8)?,
        git_hash: row.optional_text(9)?.filter(|h| !h.is_empty()),
        git_hash_commit_timestamp: row.optional_timestamp(10)?,
        image_name_with_tag: row.text(11)?,
        created_at: row.timestamp(12)?,
        duration_mins: row
            .optional_integer(13)?
            .map(|micros| micros as f64 / MICROS_PER_MINUTE),
        recorded_at: row.timestamp(14)?,
        status: DeploymentStatus::parse("status", &row.text(15)?).map_err(stored)?,
        kind: DeploymentKind::parse("kind", &row.text(16)?).map_err(stored)?,
        started_at: row.optional_timestamp(17)?,
        fixes_failure_id: row.optional_text(18)?.map(FailureId::stored),
        rollback_of: row.optional_id(19)?,
    })
}

/// Records `deployment` for the org — upserting its environment and app environment, adding
/// it to the daily rollup — or finds the record a retry of it made: the same `deployment_id`,
/// or the same image in the same app environment. The same `deployment_id` for another image
/// or app environment is a 409. Call inside a transaction.
pub(crate) fn record(
    db: &dyn Db,
    org_id: &OrgId,
    deployment: &Deployment,
    ids: &dyn Ids,
    now: Timestamp,
) -> Result<Recorded<LeadTimeRecord>, Error> {
    let image_id = deployment.image_id;
    let image = super::images::find_in_org(db, image_id, org_id)?
        .ok_or_else(|| Error::not_found(format!("image {image_id} does not exist")))?;
    if let Some(deployment_id) = &deployment.deployment_id
        && let Some(existing) = find_by_deployment_id(db, org_id, deployment_id)?
    {
        return if deployment.is_recorded_as(&existing) {
            Ok(Recorded::Existing(existing))
        } else {
            Err(Error::Conflict {
                detail: format!(
                    "deployment_id {deployment_id:?} is already recorded for another image or app environment"
                ),
                field: Some("deployment_id".to_owned()),
            })
        };
    }
    super::intern_org(db, org_id)?;
    let environment_id = upsert_environment(
        db,
        org_id,
        &deployment.environment,
        deployment.prod,
        EnvironmentId::new(ids.new_id()),
        now,
    )?;
    let app_environment_id = upsert_app_environment(
        db,
        org_id,
        deployment.project_id.as_deref(),
        &deployment.app_id,
        environment_id,
        AppEnvironmentId::new(ids.new_id()),
        now,
    )?;
    let created_at = deployment.deployed_at;
    let running = running_at(db, app_environment_id, created_at)?;
    if let Some(running) = &running
        && running.image_id == image_id
    {
        // The image already running there: a retry, or a redeploy that changes nothing.
        return Ok(Recorded::Existing(running.clone()));
    }
    if let Some(same) = find_at(db, image_id, app_environment_id, created_at)? {
        // The same image reported at the same instant: a retry (of a failed rollout too, whose
        // image is never the one running).
        return Ok(Recorded::Existing(same));
    }
    if let Some(failure_id) = &deployment.fixes_failure_id
        && super::failures::find(db, org_id, failure_id)?.is_none()
    {
        return Err(Error::invalid(
            "fixes_failure_id",
            format!("failure {} does not exist", failure_id.as_str()),
        ));
    }
    let replaced = match (&running, deployment.kind) {
        (Some(running), None)
            if is_rollback(db, image_id, app_environment_id, running, created_at)? =>
        {
            Some(running.clone())
        }
        _ => None,
    };
    let kind = deployment.kind.unwrap_or(if replaced.is_some() {
        DeploymentKind::Rework
    } else {
        DeploymentKind::Planned
    });
    let succeeded = deployment.status == DeploymentStatus::Succeeded;
    // A commit's lead time ends at the first succeeded deployment that carries it there.
    let commit = image.request.git_hash_commit_timestamp;
    let counts = succeeded && !lead_time_counted(db, image_id, app_environment_id)?;
    let record = LeadTimeRecord {
        lead_time_id: LeadTimeId::new(ids.new_id()),
        org_id: org_id.clone(),
        image_id,
        registry_id: image.registry_id,
        app_environment_id,
        deployment_id: deployment.deployment_id.clone(),
        project_id: deployment.project_id.clone(),
        app_id: deployment.app_id.clone(),
        environment: deployment.environment.as_str().to_owned(),
        prod: deployment.prod,
        git_hash: image.request.git_hash.map(GitHash::into_string),
        git_hash_commit_timestamp: commit,
        image_name_with_tag: image.request.image_name_with_tag.into_string(),
        created_at,
        duration_mins: commit
            .filter(|_| counts)
            .map(|c| duration_mins(c, created_at)),
        recorded_at: now,
        status: deployment.status,
        kind,
        started_at: deployment.started_at,
        fixes_failure_id: deployment.fixes_failure_id.clone(),
        rollback_of: replaced
            .as_ref()
            .filter(|_| succeeded)
            .map(|r| r.lead_time_id),
    };
    insert(db, &record)?;
    super::daily_rollup::add(db, &record)?;
    if !succeeded {
        super::failures::open_implicit(db, &record, now)?;
    }
    if let Some(replaced) = replaced.filter(|_| succeeded) {
        set_outcome(db, &replaced, Some(DeploymentStatus::Failed), None, now)?;
    }
    if succeeded {
        super::failures::resolve_by(db, &record, now)?;
        super::commit_lead_times::record(db, &record)?;
    }
    Ok(Recorded::New(record))
}

/// The deployment running in the app environment at `instant`: its latest succeeded one
/// up to then.
pub(crate) fn running_at(
    db: &dyn Db,
    app_environment_id: AppEnvironmentId,
    instant: Timestamp,
) -> Result<Option<LeadTimeRecord>, Error> {
    let rows = db.execute(
        &format!(
            "SELECT {COLUMNS} FROM {FROM} \
             WHERE l.app_environment_id = ? AND l.created_at <= ? AND l.rolled_out = 1 \
             ORDER BY l.created_at DESC, l.rowid DESC LIMIT 1"
        ),
        &[app_environment_id.into(), instant.into()],
    )?;
    rows.first().map(from_row).transpose()
}

/// A deployment of the image to the app environment recorded at exactly `instant`.
fn find_at(
    db: &dyn Db,
    image_id: ImageId,
    app_environment_id: AppEnvironmentId,
    instant: Timestamp,
) -> Result<Option<LeadTimeRecord>, Error> {
    let rows = db.execute(
        &format!(
            "SELECT {COLUMNS} FROM {FROM} \
             WHERE l.app_environment_id = ? AND l.created_at = ? AND l.image_id = ? LIMIT 1"
        ),
        &[app_environment_id.into(), instant.into(), image_id.into()],
    )?;
    rows.first().map(from_row).transpose()
}

/// The first succeeded deployment of the app environment after `instant`: what resolves an
/// implicit failure that started then (a back-filled report may arrive after it).
pub(crate) fn next_succeeded_after(
    db: &dyn Db,
    app_environment_id: AppEnvironmentId,
    instant: Timestamp,
) -> Result<Option<Timestamp>, Error> {
    let rows = db.execute(
        "SELECT min(created_at) FROM image_lead_times \
         WHERE app_environment_id = ? AND created_at > ? AND rolled_out = 1",
        &[app_environment_id.into(), instant.into()],
    )?;
    match rows.first() {
        Some(row) => row.optional_timestamp(0),
        None => Ok(None),
    }
}

/// A rollback: deploying, in place of `running`, an image that ran in the app environment
/// before `deployed_at` (a back-filled report is judged by what ran then), or one older on the same channel of the same registry (images are ordered by
/// their time-ordered ids, as a channel's versions are).
fn is_rollback(
    db: &dyn Db,
    image_id: ImageId,
    app_environment_id: AppEnvironmentId,
    running: &LeadTimeRecord,
    deployed_at: Timestamp,
) -> Result<bool, Error> {
    let rows = db.execute(
        "SELECT EXISTS (SELECT 1 FROM image_lead_times \
                        WHERE image_id = ?1 AND app_environment_id = ?2 AND rolled_out = 1 \
                          AND created_at < ?4) \
             OR EXISTS (SELECT 1 FROM images AS older JOIN images AS newer \
                          ON newer.registry_key = older.registry_key \
                         AND newer.channel = older.channel \
                        WHERE older.image_id = ?1 AND newer.image_id = ?3 \
                          AND older.image_id < newer.image_id)",
        &[
            image_id.into(),
            app_environment_id.into(),
            running.image_id.into(),
            deployed_at.into(),
        ],
    )?;
    match rows.first() {
        Some(row) => row.flag(0),
        None => Ok(false),
    }
}

/// Whether the image's commit already had its lead time counted in the app environment (by
/// its first succeeded deployment there, even if that was later marked failed).
fn lead_time_counted(
    db: &dyn Db,
    image_id: ImageId,
    app_environment_id: AppEnvironmentId,
) -> Result<bool, Error> {
    let rows = db.execute(
        "SELECT EXISTS (SELECT 1 FROM image_lead_times \
                        WHERE image_id = ? AND app_environment_id = ? \
                          AND duration_micros IS NOT NULL)",
        &[image_id.into(), app_environment_id.into()],
    )?;
    match rows.first() {
        Some(row) => row.flag(0),
        None => Ok(false),
    }
}

/// Sets a recorded deployment's status and/or kind (`None` keeps it), in one write that keeps
/// the rollup's failed and rework counts in step, and the deployment's implicit failure: a
/// deployment marked failed opens one (unless a reported failure names it), one marked
/// succeeded loses it — and while a reported failure names it, it stays failed (409). Its lead
/// time stays as recorded: the change did reach the app environment. Call inside a
/// transaction.
pub(crate) fn set_outcome(
    db: &dyn Db,
    record: &LeadTimeRecord,
    status: Option<DeploymentStatus>,
    kind: Option<DeploymentKind>,
    now: Timestamp,
) -> Result<LeadTimeRecord, Error> {
    let updated = LeadTimeRecord {
        status: status.unwrap_or(record.status),
        kind: kind.unwrap_or(record.kind),
        ..record.clone()
    };
    let delta = |changed: bool, now_counted: bool| match (changed, now_counted) {
        (false, _) => 0,
        (true, true) => 1,
        (true, false) => -1,
    };
    let failed = delta(
        updated.status != record.status,
        updated.status == DeploymentStatus::Failed,
    );
    let rework = delta(
        updated.kind != record.kind,
        updated.kind == DeploymentKind::Rework,
    );
    if (failed, rework) == (0, 0) {
        return Ok(updated);
    }
    if failed < 0 && super::failures::reported_against(db, record)? {
        return Err(Error::Conflict {
            detail: format!(
                "a reported failure is attributed to deployment {}: it stays failed",
                record.lead_time_id
            ),
            field: Some("status".to_owned()),
        });
    }
    db.execute(
        "UPDATE image_lead_times SET status = ?, kind = ? WHERE lead_time_id = ?",
        &[
            updated.status.as_str().into(),
            updated.kind.as_str().into(),
            record.lead_time_id.into(),
        ],
    )?;
    super::daily_rollup::adjust(db, record, failed, rework)?;
    match failed {
        1 => super::failures::open_implicit(db, &updated, now)?,
        -1 => super::failures::close_implicit(db, &updated)?,
        _ => {}
    }
    Ok(updated)
}

/// The org's environment `name`, created or with its prod flag brought up to date; its id.
pub(crate) fn upsert_environment(
    db: &dyn Db,
    org_id: &OrgId,
    name: &EnvironmentName,
    prod: bool,
    new_id: EnvironmentId,
    now: Timestamp,
) -> Result<EnvironmentId, Error> {
    let rows = db.execute(
        &format!(
            "SELECT environment_id, prod FROM environments WHERE org_key = {ORG_KEY} AND name = ?"
        ),
        &[org_id.as_str().into(), name.as_str().into()],
    )?;
    if let Some(row) = rows.first() {
        let environment_id: EnvironmentId = row.id(0)?;
        if row.flag(1)? != prod {
            db.execute(
                "UPDATE environments SET prod = ?, updated_at = ? WHERE environment_id = ?",
                &[prod.into(), now.into(), environment_id.into()],
            )?;
        }
        return Ok(environment_id);
    }
    db.execute(
        &format!(
            "INSERT INTO environments (environment_id, org_key, name, prod, created_at, updated_at) \
             VALUES (?, {ORG_KEY}, ?, ?, ?, ?)"
        ),
        &[
            new_id.into(),
            org_id.as_str().into(),
            name.as_str().into(),
            prod.into(),
            now.into(),
            now.into(),
        ],
    )?;
    Ok(new_id)
}

/// The app environment (project, app, environment), created if new; its id.
pub(crate) fn upsert_app_environment(
    db: &dyn Db,
    org_id: &OrgId,
    project_id: Option<&str>,
    app_id: &str,
    environment_id: EnvironmentId,
    new_id: AppEnvironmentId,
    now: Timestamp,
) -> Result<AppEnvironmentId, Error> {
    let rows = db.execute(
        &format!(
            "SELECT app_environment_id FROM app_environments \
             WHERE org_key = {ORG_KEY} AND IFNULL(project_id, '') = IFNULL(?, '') AND app_id = ? \
               AND environment_id = ?"
        ),
        &[
            org_id.as_str().into(),
            project_id.into(),
            app_id.into(),
            environment_id.into(),
        ],
    )?;
    if let Some(row) = rows.first() {
        return row.id(0);
    }
    db.execute(
        &format!(
            "INSERT INTO app_environments \
               (app_environment_id, org_key, project_id, app_id, environment_id, created_at) \
             VALUES (?, {ORG_KEY}, ?, ?, ?, ?)"
        ),
        &[
            new_id.into(),
            org_id.as_str().into(),
            project_id.into(),
            app_id.into(),
            environment_id.into(),
            now.into(),
        ],
    )?;
    Ok(new_id)
}

/// The app environment (project, app, environment name) of the org, and its environment's
/// prod flag; `None` if nothing was ever deployed there.
pub(crate) fn find_app_environment(
    db: &dyn Db,
    org_id: &OrgId,
    project_id: Option<&str>,
    app_id: &str,
    environment: &EnvironmentName,
) -> Result<Option<(AppEnvironmentId, bool)>, Error> {
    let rows = db.execute(
        &format!(
            "SELECT a.app_environment_id, e.prod FROM app_environments AS a \
             JOIN environments AS e ON e.environment_id = a.environment_id \
             WHERE a.org_key = {ORG_KEY} AND IFNULL(a.project_id, '') = IFNULL(?, '') \
               AND a.app_id = ? AND e.name = ?"
        ),
        &[
            org_id.as_str().into(),
            project_id.into(),
            app_id.into(),
            environment.as_str().into(),
        ],
    )?;
    rows.first()
        .map(|row| Ok((row.id(0)?, row.flag(1)?)))
        .transpose()
}

/// One lead-time record of the org.
pub(crate) fn find(
    db: &dyn Db,
    org_id: &OrgId,
    lead_time_id: LeadTimeId,
) -> Result<Option<LeadTimeRecord>, Error> {
    let rows = db.execute(
        &format!("SELECT {COLUMNS} FROM {FROM} WHERE l.lead_time_id = ? AND l.org_key = {ORG_KEY}"),
        &[lead_time_id.into(), org_id.as_str().into()],
    )?;
    rows.first().map(from_row).transpose()
}

pub(crate) fn find_by_deployment_id(
    db: &dyn Db,
    org_id: &OrgId,
    deployment_id: &str,
) -> Result<Option<LeadTimeRecord>, Error> {
    let rows = db.execute(
        &format!(
            "SELECT {COLUMNS} FROM {FROM} WHERE l.org_key = {ORG_KEY} AND l.deployment_id = ?"
        ),
        &[org_id.as_str().into(), deployment_id.into()],
    )?;
    rows.first().map(from_row).transpose()
}

pub(crate) fn insert(db: &dyn Db, record: &LeadTimeRecord) -> Result<(), Error> {
    let result = db.execute(
        &format!(
            "INSERT INTO image_lead_times (lead_time_id, org_key, image_id, app_environment_id, \
               deployment_id, project_id, app_id, environment, prod, created_at, duration_micros, \
               recorded_at, status, kind, started_at, fixes_failure_id, rollback_of, \
               rolled_out) \
             VALUES (?, {ORG_KEY}, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ),
        &[
            record.lead_time_id.into(),
            record.org_id.as_str().into(),
            record.image_id.into(),
            record.app_environment_id.into(),
            record.deployment_id.as_deref().into(),
            record.project_id.as_deref().into(),
            record.app_id.as_str().into(),
            record.environment.as_str().into(),
            record.prod.into(),
            record.created_at.into(),
            record.duration_micros().into(),
            record.recorded_at.into(),
            record.status.as_str().into(),
            record.kind.as_str().into(),
            record.started_at.into(),
            record
                .fixes_failure_id
                .as_ref()
                .map(FailureId::as_str)
                .into(),
            record.rollback_of.into(),
            // Inserted with the status it was reported with.
            (record.status == DeploymentStatus::Succeeded).into(),
        ],
    );
    match result {
        Ok(_) => Ok(()),
        Err(DbError::Unique(message)) => Err(Error::Conflict {
            detail: format!("deployment already recorded ({message})"),
            field: None,
        }),
        Err(other) => Err(other.into()),
    }
}

/// The filters of the DORA queries; `None` means any.
#[derive(Debug, Clone, Default)]
pub(crate) struct DoraFilter {
    pub(crate) project_id: Option<String>,
    pub(crate) app_id: Option<String>,
    pub(crate) environment: Option<String>,
    pub(crate) prod: Option<bool>,
    /// Author patterns (as SQLite `GLOB`s) whose deployments are left out of lead time.
    pub(crate) excluded_authors: Vec<String>,
}

/// `WHERE` for one org, a range and the filters; `lead_time_only` keeps the rows that count for
/// lead time (with a project and a commit time), matching the partial index.
///
/// `l` is `image_lead_times`, or `commit_lead_times` for [`LeadTimeUnit::Commit`] (whose rows
/// all have a lead time, and an author of their own).
pub(super) fn where_clause(
    org_id: &OrgId,
    range: &TimeRange,
    filter: &DoraFilter,
    lead_time_only: bool,
    unit: LeadTimeUnit,
) -> (String, Vec<Value>) {
    let mut sql = format!("l.org_key = {ORG_KEY} AND l.created_at BETWEEN ? AND ?");
    let mut params: Vec<Value> = vec![org_id.as_str().into(), range.start.into(), range.end.into()];
    if lead_time_only {
        sql.push_str(" AND l.project_id IS NOT NULL");
        if unit == LeadTimeUnit::Deployment {
            sql.push_str(" AND l.duration_micros IS NOT NULL");
        }
    }
    for (column, value) in [
        ("project_id", &filter.project_id),
        ("app_id", &filter.app_id),
        ("environment", &filter.environment),
    ] {
        if let Some(value) = value {
            sql.push_str(&format!(" AND l.{column} = ?"));
            params.push(value.as_str().into());
        }
    }
    if let Some(prod) = filter.prod {
        sql.push_str(" AND l.prod = ?");
        params.push(prod.into());
    }
    if lead_time_only && !filter.excluded_authors.is_empty() {
        // The author's name, without its " <email>": a commit's own, or a deployment's head
        // commit's committer.
        let column = match unit {
            LeadTimeUnit::Commit => "l.author",
            LeadTimeUnit::Deployment => "x.committer",
        };
        let author = super::commit_lead_times::author_name_sql(column);
        let any = vec![format!("{author} GLOB ?"); filter.excluded_authors.len()].join(" OR ");
        sql.push_str(&match unit {
            // No author matches no pattern (`GLOB` of NULL is NULL).
            LeadTimeUnit::Commit => format!(" AND NOT coalesce({any}, 0)"),
            LeadTimeUnit::Deployment => format!(
                " AND NOT EXISTS (SELECT 1 FROM images AS x WHERE x.image_id = l.image_id AND ({any}))"
            ),
        });
        params.extend(filter.excluded_authors.iter().map(|g| g.as_str().into()));
    }
    (sql, params)
}

/// `(created_at in Unix seconds, lead time in µs)` of every deployment that counts for lead
/// time, in no particular order (the callers sort and bucket). Read from the covering index,
/// packed ([`super::packed_numbers`]).
pub(crate) fn lead_time_durations(
    db: &dyn Db,
    org_id: &OrgId,
    range: &TimeRange,
    filter: &DoraFilter,
    unit: LeadTimeUnit,
) -> Result<Vec<(i64, i64)>, Error> {
    let (condition, params) = where_clause(org_id, range, filter, true, unit);
    let sql = lead_time_durations_sql(&condition, unit);
    super::packed_numbers(db, &sql, &params, "lead time", |[created, micros]| {
        Some((seconds_of(created?), micros?))
    })
}

/// `created_at` (Unix seconds) of every deployment in the range, in no particular order,
/// packed as [`lead_time_durations`] reads.
pub(crate) fn deployment_times(
    db: &dyn Db,
    org_id: &OrgId,
    range: &TimeRange,
    filter: &DoraFilter,
) -> Result<Vec<i64>, Error> {
    let (condition, params) = where_clause(org_id, range, filter, false, LeadTimeUnit::Deployment);
    let sql = deployment_times_sql(&condition);
    super::packed_numbers(db, &sql, &params, "deployment time", |[created]| {
        created.map(seconds_of)
    })
}

/// `(created_at in Unix seconds, failed, rework)` of every failed or rework deployment in the
/// range, from their partial index (the succeeded planned majority is not read).
pub(crate) fn outcome_times(
    db: &dyn Db,
    org_id: &OrgId,
    range: &TimeRange,
    filter: &DoraFilter,
) -> Result<Vec<(i64, bool, bool)>, Error> {
    let (condition, params) = where_clause(org_id, range, filter, false, LeadTimeUnit::Deployment);
    let sql = outcome_times_sql(&condition);
    super::packed_numbers(db, &sql, &params, "outcome", |[created, failed, rework]| {
        Some((seconds_of(created?), failed? == 1, rework? == 1))
    })
}

fn outcome_times_sql(condition: &str) -> String {
    format!(
        "SELECT group_concat(l.created_at || ' ' || (l.status = 'failed') || ' ' || \
                             (l.kind = 'rework'), ',') \
         FROM image_lead_times AS l \
         WHERE {condition} AND (l.status = 'failed' OR l.kind = 'rework')"
    )
}

fn lead_time_durations_sql(condition: &str, unit: LeadTimeUnit) -> String {
    format!(
        "SELECT group_concat(l.created_at || ' ' || l.duration_micros, ',') \
         FROM {} AS l WHERE {condition}",
        unit.table()
    )
}

fn deployment_times_sql(condition: &str) -> String {
    format!("SELECT group_concat(l.created_at, ',') FROM image_lead_times AS l WHERE {condition}")
}

/// A page of the lead-time records that count, newest first. The cursor is
/// `{created_at}~{lead_time_id}` of the last record of the previous page.
pub(crate) fn lead_time_values(
    db: &dyn Db,
    org_id: &OrgId,
    range: &TimeRange,
    filter: &DoraFilter,
    after: Option<(Timestamp, LeadTimeId)>,
    limit: usize,
) -> Result<Page<LeadTimeRecord>, Error> {
    let (condition, params) = where_clause(org_id, range, filter, true, LeadTimeUnit::Deployment);
    newest_first(db, FROM, condition, params, after, limit)
}

/// Every deployment of the org in `range` that `filter` keeps (failed ones, and those without
/// a lead time, too), optionally of one image, newest first (`GET /api/v1/deployments`).
pub(crate) fn list(
    db: &dyn Db,
    org_id: &OrgId,
    range: &TimeRange,
    filter: &DoraFilter,
    image_id: Option<ImageId>,
    after: Option<(Timestamp, LeadTimeId)>,
    limit: usize,
) -> Result<Page<LeadTimeRecord>, Error> {
    let (mut condition, mut params) =
        where_clause(org_id, range, filter, false, LeadTimeUnit::Deployment);
    let from = match image_id {
        Some(image_id) => {
            condition.push_str(" AND l.image_id = ?");
            params.push(image_id.into());
            // An image's few deployments by its own index: the planner would otherwise walk
            // the org's deployments by time (every one of them, at a million records, for an
            // image that ran once: 150 ms against 0.1).
            "image_lead_times AS l INDEXED BY image_lead_times_image_app_environment \
             JOIN images AS i ON i.image_id = l.image_id"
        }
        None => FROM,
    };
    newest_first(db, from, condition, params, after, limit)
}

/// A page of the records `condition` keeps (`from`: [`FROM`], or it with an index named),
/// newest deployed first, after the cursor `{created_at}~{lead_time_id}`.
fn newest_first(
    db: &dyn Db,
    from: &str,
    mut condition: String,
    mut params: Vec<Value>,
    after: Option<(Timestamp, LeadTimeId)>,
    limit: usize,
) -> Result<Page<LeadTimeRecord>, Error> {
    if let Some((created_at, lead_time_id)) = after {
        condition.push_str(" AND (l.created_at < ? OR (l.created_at = ? AND l.lead_time_id < ?))");
        params.push(created_at.into());
        params.push(created_at.into());
        params.push(lead_time_id.into());
    }
    params.push((limit as i64 + 1).into());
    // One packed text instead of 15 values per row (`super::unpack_rows`): the page is the
    // records with their images' columns, put in order here (as `images::list` says why).
    let rows = db.execute(
        &format!(
            "SELECT json_group_array(json_array({PACKED_COLUMNS})) \
             FROM (SELECT l.*, i.git_hash, i.git_hash_commit_timestamp, i.image_name_with_tag, \
                          i.registry_key \
                   FROM {from} WHERE {condition} \
                   ORDER BY l.created_at DESC, l.lead_time_id DESC LIMIT ?) AS page"
        ),
        &params,
    )?;
    let rows = super::packed_rows(&rows)?;
    let mut items = rows
        .iter()
        .map(|values| from_row(Row::new(values)))
        .collect::<Result<Vec<_>, _>>()?;
    items.sort_unstable_by(|a, b| {
        (b.created_at, b.lead_time_id).cmp(&(a.created_at, a.lead_time_id))
    });
    Ok(Page::from_rows(items, limit, |r| {
        format!("{}~{}", r.created_at.to_rfc3339(), r.lead_time_id)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::RusqliteDb;

    fn plan(db: &RusqliteDb, sql: &str, params: &[Value]) -> String {
        let rows = db
            .execute(&format!("EXPLAIN QUERY PLAN {sql}"), params)
            .unwrap();
        rows.iter()
            .map(|row| row.text(3).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn query() -> (OrgId, TimeRange) {
        let range =
            TimeRange::parse(Some("2026-01-01T00:00:00Z"), Some("2026-01-31T00:00:00Z")).unwrap();
        (OrgId::parse("org_id", "acme").unwrap(), range)
    }

    const BY_TIME: &str = "USING COVERING INDEX image_lead_times_of_org_by_time \
                           (org_key=? AND created_at>? AND created_at<?)";

    #[test]
    fn every_dora_range_query_reads_only_the_covering_org_time_index() {
        let db = RusqliteDb::open_in_memory();
        crate::migrations::ensure_schema(&db).unwrap();
        let (org_id, range) = query();
        let filtered = DoraFilter {
            environment: Some("production".into()),
            prod: Some(true),
            ..DoraFilter::default()
        };
        for filter in [DoraFilter::default(), filtered] {
            for lead_time_only in [true, false] {
                let (condition, params) = where_clause(
                    &org_id,
                    &range,
                    &filter,
                    lead_time_only,
                    LeadTimeUnit::Deployment,
                );
                let sql = if lead_time_only {
                    lead_time_durations_sql(&condition, LeadTimeUnit::Deployment)
                } else {
                    deployment_times_sql(&condition)
                };
                let plan = plan(&db, &sql, &params);
                assert!(plan.contains(BY_TIME), "{plan}");
                let outcomes = self::plan(&db, &outcome_times_sql(&condition), &params);
                assert!(
                    outcomes.contains("image_lead_times_outcomes_of_org_by_time"),
                    "{outcomes}"
                );
                assert!(
                    !plan.contains("SCAN") && !plan.contains("TEMP B-TREE"),
                    "{plan}"
                );
            }
        }
    }
}
