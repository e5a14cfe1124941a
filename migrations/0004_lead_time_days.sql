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

-- The rollup of the records already recorded. `day` is the first ten characters of the stored
-- UTC instant (YYYY-MM-DD); a lead time in microseconds is what duration_mins was computed
-- from (its minutes times 60,000,000, exact to the microsecond), and printf + unhex turn the
-- sorted values into the blob.
INSERT INTO lead_time_days (org_id, day, environment, prod, deployments, clock_skew, lead_times)
SELECT org_id, substr(created_at, 1, 10), environment, prod, count(*),
       count(*) FILTER (WHERE project_id IS NOT NULL AND duration_mins < 0),
       coalesce(unhex(group_concat(printf('%016x', CAST(round(duration_mins * 60000000.0) AS INTEGER)), ''
                                   ORDER BY duration_mins)
                      FILTER (WHERE project_id IS NOT NULL AND duration_mins >= 0)), x'')
FROM image_lead_times
GROUP BY org_id, substr(created_at, 1, 10), environment, prod;
