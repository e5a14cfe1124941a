-- 0006: a day of the lead-time rollup is held in chunks, and back-fills are batched.
--
-- A day used to be one row whose blob held every lead time of the day: each deployment read
-- the blob, spliced its lead time in and wrote it back, so a hot org's ten-thousandth
-- deployment of a day moved 80 KB where the first moved 8 bytes. Now a write splices into the
-- day's last chunk while it holds fewer than 256 lead times (2 KB) and starts a new chunk
-- after (store/daily_rollup.rs). A day's figures are the sums over its chunks. The rows
-- already stored become chunk 0 of their day: ADD COLUMN with a constant default rewrites
-- nothing, and the key's index is rebuilt over the rollup only (tens of thousands of rows
-- at millions of records).
ALTER TABLE lead_time_days ADD COLUMN chunk INTEGER NOT NULL DEFAULT 0;

DROP INDEX lead_time_days_by_day;

-- The key, and the index of every rollup read: one org, a range of days (and a write's
-- "last chunk of the day", its last entry).
CREATE UNIQUE INDEX lead_time_days_by_chunk
    ON lead_time_days (org_id, day, environment, prod, chunk);

-- Databases migrated to schema 4 before back-fills were batched have no such table (see
-- 0004): derived data still to be built from existing rows, one row per derived table.
CREATE TABLE IF NOT EXISTS backfills (
    derived    TEXT PRIMARY KEY,
    next_rowid INTEGER NOT NULL,
    last_rowid INTEGER NOT NULL
);
