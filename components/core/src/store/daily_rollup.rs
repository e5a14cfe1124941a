//! `lead_time_days`: the daily rollup of `image_lead_times` that DORA queries read.
//!
//! One row per (org, UTC day, environment, prod): how many deployments the day had, how many
//! of those that count for lead time had a skewed clock, and the lead times of the rest,
//! sorted, as one blob of 8-byte big-endian microseconds. A month of a busy org is then 30
//! rows per environment instead of tens of thousands of records, and the sorted runs let the
//! median be *selected* (`domain::sorted_runs`) instead of sorted.
//!
//! The rollup is written in the same transaction as the record it counts (`add`), so it never
//! disagrees with `image_lead_times`; migration 0004 built it for the records before it.

use chrono::NaiveDate;

use crate::db::{Db, Value};
use crate::error::Error;

use crate::domain::deployment::LeadTimeRecord;

/// One day of one environment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LeadTimeDay {
    pub(crate) day: NaiveDate,
    /// Every record of the day (deployment frequency counts them all).
    pub(crate) deployments: u64,
    /// Records that count for lead time but whose commit is later than the deployment.
    pub(crate) clock_skew: u64,
    /// The lead times (µs) of the other records that count, ascending.
    pub(crate) lead_times: Vec<u64>,
}

/// The day as stored: `YYYY-MM-DD`, the first ten characters of a stored instant.
pub(crate) fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

const BYTES_PER_LEAD_TIME: usize = 8;

/// `ascending` with `micros` inserted in order (equal values keep their relative order; they
/// are equal).
fn insert_sorted(ascending: &[u8], micros: u64) -> Result<Vec<u8>, Error> {
    let count = checked_len(ascending)?;
    let at = |index: usize| {
        let start = index * BYTES_PER_LEAD_TIME;
        u64::from_be_bytes(
            ascending[start..start + BYTES_PER_LEAD_TIME]
                .try_into()
                .expect("8-byte chunk"),
        )
    };
    let (mut low, mut high) = (0, count);
    while low < high {
        let middle = (low + high) / 2;
        if at(middle) <= micros {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    let split = low * BYTES_PER_LEAD_TIME;
    let mut spliced = Vec::with_capacity(ascending.len() + BYTES_PER_LEAD_TIME);
    spliced.extend_from_slice(&ascending[..split]);
    spliced.extend_from_slice(&micros.to_be_bytes());
    spliced.extend_from_slice(&ascending[split..]);
    Ok(spliced)
}

fn checked_len(blob: &[u8]) -> Result<usize, Error> {
    if !blob.len().is_multiple_of(BYTES_PER_LEAD_TIME) {
        return Err(Error::storage(format!(
            "a lead_time_days blob of {} bytes is not a whole number of lead times",
            blob.len()
        )));
    }
    Ok(blob.len() / BYTES_PER_LEAD_TIME)
}

/// The lead times of a stored blob; refuses one that is not whole or not sorted.
fn decode(blob: &[u8]) -> Result<Vec<u64>, Error> {
    checked_len(blob)?;
    let values: Vec<u64> = blob
        .chunks_exact(BYTES_PER_LEAD_TIME)
        .map(|chunk| u64::from_be_bytes(chunk.try_into().expect("8-byte chunk")))
        .collect();
    if !values.is_sorted() {
        return Err(Error::storage("a lead_time_days blob is not sorted"));
    }
    Ok(values)
}

/// Counts `record` in its day. Call inside the transaction that inserts the record.
pub(crate) fn add(db: &dyn Db, record: &LeadTimeRecord) -> Result<(), Error> {
    let key: [Value; 4] = [
        record.org_id.as_str().into(),
        day_text(record.created_at.instant().date_naive()).into(),
        record.environment.as_str().into(),
        record.prod.into(),
    ];
    let counted = record.project_id.as_ref().and(record.duration_micros());
    let clock_skew = i64::from(counted.is_some_and(|micros| micros < 0));
    let spliced = match counted.and_then(|micros| u64::try_from(micros).ok()) {
        None => None,
        Some(micros) => {
            let rows = db.execute(
                "SELECT lead_times FROM lead_time_days \
                 WHERE org_id = ? AND day = ? AND environment = ? AND prod = ?",
                &key,
            )?;
            let stored = rows.first().map(|row| row.blob(0)).transpose()?;
            Some(insert_sorted(stored.unwrap_or_default(), micros)?)
        }
    };
    let [org_id, day, environment, prod] = key;
    db.execute(
        "INSERT INTO lead_time_days (org_id, day, environment, prod, deployments, clock_skew, lead_times) \
         VALUES (?1, ?2, ?3, ?4, 1, ?5, coalesce(?6, x'')) \
         ON CONFLICT (org_id, day, environment, prod) DO UPDATE SET \
           deployments = deployments + 1, \
           clock_skew = clock_skew + ?5, \
           lead_times = coalesce(?6, lead_times)",
        &[
            org_id,
            day,
            environment,
            prod,
            clock_skew.into(),
            spliced.map_or(Value::Null, Value::Blob),
        ],
    )?;
    Ok(())
}

/// The org's days from `first` to `last` (inclusive), optionally of one environment and/or
/// prod flag, in day order; without their lead times unless `with_lead_times`.
pub(crate) fn read(
    db: &dyn Db,
    org_id: &crate::domain::OrgId,
    (first, last): (NaiveDate, NaiveDate),
    environment: Option<&str>,
    prod: Option<bool>,
    with_lead_times: bool,
) -> Result<Vec<LeadTimeDay>, Error> {
    // Deployment frequency needs only the counts: the blobs stay in the database.
    let lead_times = if with_lead_times { "lead_times" } else { "x''" };
    let mut sql = format!(
        "SELECT day, deployments, clock_skew, {lead_times} FROM lead_time_days \
         WHERE org_id = ? AND day BETWEEN ? AND ?"
    );
    let mut params: Vec<Value> = vec![
        org_id.as_str().into(),
        day_text(first).into(),
        day_text(last).into(),
    ];
    if let Some(environment) = environment {
        sql.push_str(" AND environment = ?");
        params.push(environment.into());
    }
    if let Some(prod) = prod {
        sql.push_str(" AND prod = ?");
        params.push(prod.into());
    }
    sql.push_str(" ORDER BY day");
    let rows = db.execute(&sql, &params)?;
    rows.iter()
        .map(|row| {
            let day = NaiveDate::parse_from_str(&row.text(0)?, "%Y-%m-%d")
                .map_err(|e| Error::storage(format!("unreadable lead_time_days.day: {e}")))?;
            let count = |index: usize| {
                u64::try_from(row.integer(index)?)
                    .map_err(|_| Error::storage("a negative count in lead_time_days"))
            };
            let lead_times = decode(row.blob(3)?)?;
            Ok(LeadTimeDay {
                day,
                deployments: count(1)?,
                clock_skew: count(2)?,
                lead_times,
            })
        })
        .collect()
}

/// Rebuilds the whole rollup from the records, with migration 0004's own statement (the
/// benchmark's generator runs [`backfill_statement`] after its bulk load in the same way).
/// Call inside a transaction.
#[cfg(test)]
pub(crate) fn rebuild(db: &dyn Db) -> Result<(), Error> {
    db.execute("DELETE FROM lead_time_days", &[])?;
    db.execute(&backfill_statement()?, &[])?;
    Ok(())
}

/// Migration 0004's `INSERT … SELECT` that rolls up every record (into an empty table).
#[cfg(any(test, feature = "testing"))]
pub(crate) fn backfill_statement() -> Result<String, Error> {
    crate::migrations::MIGRATIONS
        .iter()
        .filter(|m| m.name == "0004_lead_time_days")
        .flat_map(|m| crate::migrations::statements(m.sql))
        .find(|statement| statement.starts_with("INSERT INTO lead_time_days"))
        .ok_or_else(|| Error::storage("migration 0004 has no back-fill statement"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(values: &[u64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_be_bytes()).collect()
    }

    #[test]
    fn inserting_keeps_the_blob_sorted() {
        let mut stored = Vec::new();
        for value in [50, 10, 30, 10, u64::MAX >> 1, 0] {
            stored = insert_sorted(&stored, value).unwrap();
        }
        assert_eq!(decode(&stored).unwrap(), [0, 10, 10, 30, 50, u64::MAX >> 1]);
    }

    #[test]
    fn a_torn_or_unsorted_blob_is_a_storage_error() {
        assert!(decode(&[0; 9]).is_err());
        assert!(decode(&blob(&[2, 1])).is_err());
        assert!(insert_sorted(&[0; 7], 1).is_err());
    }
}
