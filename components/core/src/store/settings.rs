//! `org_settings`: an org's lead-time exclusions and default benchmark (one row, or none for
//! the defaults).

use crate::db::Db;
use crate::domain::dora::Benchmark;
use crate::domain::settings::{AuthorPattern, Settings};
use crate::domain::{OrgId, Timestamp};
use crate::error::Error;

use super::ORG_KEY;

/// The org's settings, and when they were last set (`None`: never, the defaults).
pub(crate) fn find(db: &dyn Db, org_id: &OrgId) -> Result<(Settings, Option<Timestamp>), Error> {
    let rows = db.execute(
        &format!(
            "SELECT excluded_authors, benchmark, updated_at FROM org_settings \
             WHERE org_key = {ORG_KEY}"
        ),
        &[org_id.as_str().into()],
    )?;
    let Some(row) = rows.first() else {
        return Ok((Settings::default(), None));
    };
    let stored = |what: &str| Error::storage(format!("unreadable org_settings.{what}"));
    let patterns: Vec<String> =
        serde_json::from_str(&row.text(0)?).map_err(|_| stored("excluded_authors"))?;
    let excluded_authors = patterns
        .iter()
        .map(|p| AuthorPattern::parse("excluded_authors", p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| stored("excluded_authors"))?;
    let benchmark = Benchmark::parse(&row.text(1)?).map_err(|_| stored("benchmark"))?;
    Ok((
        Settings {
            excluded_authors,
            benchmark,
        },
        Some(row.timestamp(2)?),
    ))
}

/// Replaces the org's settings.
pub(crate) fn put(
    db: &dyn Db,
    org_id: &OrgId,
    settings: &Settings,
    now: Timestamp,
) -> Result<(), Error> {
    super::intern_org(db, org_id)?;
    let patterns: Vec<&str> = settings
        .excluded_authors
        .iter()
        .map(AuthorPattern::as_str)
        .collect();
    let patterns = serde_json::to_string(&patterns)
        .map_err(|e| Error::storage(format!("encoding excluded_authors: {e}")))?;
    db.execute(
        &format!(
            "INSERT INTO org_settings (org_key, excluded_authors, benchmark, updated_at) \
             VALUES ({ORG_KEY}, ?, ?, ?) \
             ON CONFLICT (org_key) DO UPDATE SET excluded_authors = excluded.excluded_authors, \
               benchmark = excluded.benchmark, updated_at = excluded.updated_at"
        ),
        &[
            org_id.as_str().into(),
            patterns.into(),
            settings.benchmark.as_str().into(),
            now.into(),
        ],
    )?;
    Ok(())
}
