-- 0004: the daily rollup of lead-time records that the DORA queries read.
--
-- A 30-day lead-time query of a busy org read every one of its records in the range (23,000
-- at a million records), so its cost grew with the org's volume. This table holds one row per
-- (org, UTC day, environment, prod flag): the day's deployments, the records that count for
-- lead time but have a skewed clock (commit after deployment), and the lead times of the
-- other counted records, sorted, as one blob of 8-byte big-endian microseconds. A month is
-- then ~30 rows per environment, and cd-core selects the median and p90 from the sorted runs
-- (domain/lead_times.rs) instead of sorting every value. Records that count: a project and a
-- commit time, as in every DORA query. The row is written in the transaction that inserts the
-- record (store/lead_time_days.rs), so the two never disagree. (A build older than this
-- migration would insert records without it: builds from this one on refuse writes on a schema
-- newer than they know, and README's "Upgrading" says to stop older instances first.)
--
-- A rowid table with a unique key, not WITHOUT ROWID: the blobs are kilobytes, and a WITHOUT
-- ROWID table would carry them in its interior B-tree pages too.
CREATE TABLE lead_time_days (
    org_id      TEXT NOT NULL,
    day         TEXT NOT NULL,
    environment TEXT NOT NULL,
    prod        INTEGER NOT NULL,
    deployments INTEGER NOT NULL,
    clock_skew  INTEGER NOT NULL,
    lead_times  BLOB NOT NULL
);

-- The key, and the index of every rollup read: one org, a range of days.
CREATE UNIQUE INDEX lead_time_days_by_day ON lead_time_days (org_id, day, environment, prod);

-- The records already recorded are rolled up by cd-core, a batch at a time
-- (store/daily_rollup.rs, backfill_step), not here: one INSERT … SELECT over ten million
-- records held the write lock for minutes, and every pipeline waited. This row says what is
-- left: the records from next_rowid to last_rowid (those that existed now; every later one
-- rolls itself up as it is inserted). Until the row is gone the DORA queries read the
-- records, not the rollup. (Until schema 6 this statement was the INSERT … SELECT itself; a
-- database migrated by that build has its rollup whole and no row here. Edited in place, a
-- deliberate exception to append-only: both ways end in the same schema and the same rows.)
CREATE TABLE IF NOT EXISTS backfills (
    derived    TEXT PRIMARY KEY,
    next_rowid INTEGER NOT NULL,
    last_rowid INTEGER NOT NULL
);

-- Each bound is its own subquery: a lone min() or max() of the rowid is one B-tree descent,
-- where count(*) or both in one SELECT read every record (0.8 s at 10M, with the lock held).
INSERT INTO backfills (derived, next_rowid, last_rowid)
SELECT 'lead_time_days', (SELECT min(rowid) FROM image_lead_times),
       (SELECT max(rowid) FROM image_lead_times)
WHERE EXISTS (SELECT 1 FROM image_lead_times);
