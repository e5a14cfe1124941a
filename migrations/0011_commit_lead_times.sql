-- 0011: lead time per commit, and its stages (issue 14).
--
-- A CD request may list the commits its build carries (`git log <previous>..HEAD`). They are
-- kept with the image, as one JSON array of [sha, committed_at µs, author] in `commits`: the
-- image is recorded by one autocommit statement (store/images.rs), and a second table would
-- need a transaction around it. NULL when the request listed none: the head commit
-- (git_hash, git_hash_commit_timestamp, committer) is then the one commit.
ALTER TABLE images ADD COLUMN commits TEXT CHECK (commits IS NULL OR json_valid(commits));

-- One row per commit and app environment: the first succeeded deployment that carried the
-- commit there (store/commit_lead_times.rs). The key is what makes "a commit counts once per
-- app environment": a later deployment carrying it again inserts nothing. The deployment's
-- filter columns are copied, as records copy them, so a range read is one index. The stages
-- split the lead time: commit → build of the image that listed it (`built_at`), build →
-- deploy start, deploy start → finish (NULL without a `started_at`). All immutable.
CREATE TABLE commit_lead_times (
    app_environment_id     BLOB NOT NULL REFERENCES app_environments (app_environment_id),
    sha                    TEXT NOT NULL,
    org_key                INTEGER NOT NULL,
    lead_time_id           BLOB NOT NULL REFERENCES image_lead_times (lead_time_id),
    image_id               BLOB NOT NULL REFERENCES images (image_id),
    project_id             TEXT,
    app_id                 TEXT NOT NULL,
    environment            TEXT NOT NULL,
    prod                   INTEGER NOT NULL CHECK (prod IN (0, 1)),
    author                 TEXT,
    committed_at           INTEGER NOT NULL,
    created_at             INTEGER NOT NULL,
    duration_micros        INTEGER NOT NULL,
    commit_to_build_micros INTEGER NOT NULL,
    build_to_start_micros  INTEGER,
    start_to_finish_micros INTEGER
);

CREATE UNIQUE INDEX commit_lead_times_key ON commit_lead_times (app_environment_id, sha);

-- Every DORA read of commit lead times: one org, one range, covering the lead time, the
-- stages and the filters the rollup also answers.
CREATE INDEX commit_lead_times_of_org_by_time
    ON commit_lead_times (org_key, created_at, duration_micros, project_id, environment, prod,
                          commit_to_build_micros, build_to_start_micros, start_to_finish_micros);

-- "The newest image of this channel that already ran here": a deployment carries the
-- commits of the images of its channel built after it (store/commit_lead_times.rs).
CREATE INDEX image_lead_times_images_of_app_environment
    ON image_lead_times (app_environment_id, image_id)
    WHERE rolled_out = 1;

-- The daily rollup of commit lead times, as lead_time_days is of deployments (migrations
-- 0004, 0006): per (org, UTC day, environment, prod) chunks of the commits counted that day
-- with a skewed clock, and the sorted lead times and stage durations (8-byte big-endian µs)
-- of the others. A stage's negative durations (a back-filled deployment, a skewed clock) are
-- left out of that stage only.
CREATE TABLE commit_lead_time_days (
    org_key         INTEGER NOT NULL,
    day             TEXT NOT NULL,
    environment     TEXT NOT NULL,
    prod            INTEGER NOT NULL,
    chunk           INTEGER NOT NULL,
    clock_skew      INTEGER NOT NULL,
    lead_times      BLOB NOT NULL,
    commit_to_build BLOB NOT NULL,
    build_to_start  BLOB NOT NULL,
    start_to_finish BLOB NOT NULL
);

CREATE UNIQUE INDEX commit_lead_time_days_key
    ON commit_lead_time_days (org_key, day, environment, prod, chunk);

-- The records already recorded count their head commit, a batch at a time, after any
-- re-encoding and the deployments' rollup (store/commit_lead_times.rs, backfill_batch_in):
-- from rowid 0, since rows of a re-encoding still under way keep their old rowids. Until the
-- row is gone, a query for commit lead times answers per deployment and says so.
INSERT INTO backfills (derived, next_rowid, last_rowid)
SELECT 'commit_lead_times', 0, (SELECT max(rowid) FROM image_lead_times)
WHERE EXISTS (SELECT 1 FROM image_lead_times);
