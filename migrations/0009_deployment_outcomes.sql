-- 0009: deployments carry their outcome, and failures are recorded (issue 14).
--
-- A deployment (`image_lead_times` row) now says whether it failed (a failed rollout, or a
-- bad change found after it: change failure rate), whether it was planned or rework
-- (deployment rework rate; a rollback is rework), when the deploy started, and which
-- failure it was made to fix. Existing rows are succeeded, planned deployments: ADD COLUMN
-- with a constant default rewrites nothing.
ALTER TABLE image_lead_times ADD COLUMN status TEXT NOT NULL DEFAULT 'succeeded'
    CHECK (status IN ('succeeded', 'failed'));

ALTER TABLE image_lead_times ADD COLUMN kind TEXT NOT NULL DEFAULT 'planned'
    CHECK (kind IN ('planned', 'rework'));

ALTER TABLE image_lead_times ADD COLUMN started_at INTEGER;

ALTER TABLE image_lead_times ADD COLUMN fixes_failure_id TEXT;

-- A rollback's record names the deployment it replaced (and marked failed).
ALTER TABLE image_lead_times ADD COLUMN rollback_of BLOB;

-- Whether the deployment was reported succeeded when recorded: its image then ran in the app
-- environment, whatever its status says later (a PATCH, a rollback or a reported failure
-- marks it failed). What runs where, rollbacks and the resolution of implicit failures read
-- this, never `status`.
ALTER TABLE image_lead_times ADD COLUMN rolled_out INTEGER NOT NULL DEFAULT 1
    CHECK (rolled_out IN (0, 1));

-- An image may now reach an app environment more than once (a rollback redeploys one it ran
-- before), so the unique (image, app environment) index becomes a plain one: "has this image
-- been here before" (store/deployments.rs, rollback detection and "a commit counts once").
DROP INDEX image_lead_times_image_app_environment;

CREATE INDEX image_lead_times_image_app_environment
    ON image_lead_times (image_id, app_environment_id);

-- "What runs in this app environment now": its latest deployment up to an instant (rollback
-- detection; an implicit failure's resolution by the next succeeded deployment).
CREATE INDEX image_lead_times_of_app_environment
    ON image_lead_times (app_environment_id, created_at);

-- Failed and rework deployments, for the DORA reads of partial days and project or app
-- filters (the rollup answers whole days): partial, so the succeeded planned majority costs
-- nothing, and covering every filter.
CREATE INDEX image_lead_times_outcomes_of_org_by_time
    ON image_lead_times (org_key, created_at, status, kind, project_id, app_id, environment, prod)
    WHERE status = 'failed' OR kind = 'rework';

-- The daily rollup counts them beside the deployments (store/daily_rollup.rs). Every
-- existing record is succeeded and planned, so 0 is exact for every existing chunk.
ALTER TABLE lead_time_days ADD COLUMN failed INTEGER NOT NULL DEFAULT 0;

ALTER TABLE lead_time_days ADD COLUMN rework INTEGER NOT NULL DEFAULT 0;

-- Failures in production (change failures and their recovery). `failure_id` is the
-- client's id (an incident tool's), or `deployment:<lead_time_id>` for the implicit failure a
-- failed deployment opens when no failure names it. `lead_time_id` is the deployment the
-- failure is attributed to (NULL when the app environment had none before it started);
-- the app environment's key columns are copied, as records copy them, for the filters.
-- `resolved_at` NULL while open; an implicit failure is resolved by the next succeeded
-- deployment of its app environment.
CREATE TABLE failures (
    failure_key        INTEGER PRIMARY KEY,
    failure_id         TEXT NOT NULL,
    org_key            INTEGER NOT NULL,
    implicit           INTEGER NOT NULL CHECK (implicit IN (0, 1)),
    lead_time_id       BLOB REFERENCES image_lead_times (lead_time_id),
    app_environment_id BLOB NOT NULL REFERENCES app_environments (app_environment_id),
    project_id         TEXT,
    app_id             TEXT NOT NULL,
    environment        TEXT NOT NULL,
    prod               INTEGER NOT NULL CHECK (prod IN (0, 1)),
    started_at         INTEGER NOT NULL,
    resolved_at        INTEGER,
    title              TEXT,
    severity           TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

-- Idempotency and lookup: a failure id once per org.
CREATE UNIQUE INDEX failures_of_org ON failures (org_key, failure_id);

-- The org's failures list, newest first (paged by key).
CREATE INDEX failures_of_org_by_key ON failures (org_key, failure_key);

-- A deployment's failures (attribution replaces its implicit one).
CREATE INDEX failures_of_deployment ON failures (lead_time_id) WHERE lead_time_id IS NOT NULL;

-- Recovery time: the failures resolved in a range (and the open ones: NULL sorts first),
-- covering the filters and the duration.
CREATE INDEX failures_of_org_by_resolution
    ON failures (org_key, resolved_at, started_at, project_id, app_id, environment, prod,
                 lead_time_id);

-- The implicit failures a succeeded deployment of the app environment resolves: the open ones
-- (NULL sorts first) and, for a back-filled deployment, those resolved after it.
CREATE INDEX failures_implicit_of_app_environment
    ON failures (app_environment_id, resolved_at, started_at)
    WHERE implicit = 1;
