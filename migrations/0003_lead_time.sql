-- 0003: deployments and DORA lead time for changes.
--
-- environments and app_environments are the deployment context (as in the seed): an org's
-- environments by name (with their prod flag), and (project, app, environment) triples.
-- image_lead_times has one row per image reaching an app environment: the seed's lead-time
-- record. It copies what the DORA queries filter and aggregate on (project, app, environment,
-- prod, commit time, duration) so a range query reads one index range of one table instead of
-- joining three per row; all copied values are immutable facts about the deployment.
CREATE TABLE environments (
    environment_id TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL,
    name           TEXT NOT NULL,
    prod           INTEGER NOT NULL CHECK (prod IN (0, 1)),
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

CREATE UNIQUE INDEX environments_by_name ON environments (org_id, name);

CREATE TABLE app_environments (
    app_environment_id TEXT PRIMARY KEY,
    org_id             TEXT NOT NULL,
    project_id         TEXT,
    app_id             TEXT NOT NULL,
    environment_id     TEXT NOT NULL REFERENCES environments (environment_id),
    created_at         TEXT NOT NULL
);

-- One app environment per (project, app, environment); a missing project is its own key
-- (IFNULL: NULLs are distinct in UNIQUE indexes).
CREATE UNIQUE INDEX app_environments_by_key
    ON app_environments (org_id, IFNULL(project_id, ''), app_id, environment_id);

CREATE TABLE image_lead_times (
    lead_time_id              TEXT PRIMARY KEY,
    org_id                    TEXT NOT NULL,
    image_id                  TEXT NOT NULL REFERENCES images (image_id),
    app_environment_id        TEXT NOT NULL REFERENCES app_environments (app_environment_id),
    deployment_id             TEXT,
    project_id                TEXT,
    app_id                    TEXT NOT NULL,
    environment               TEXT NOT NULL,
    prod                      INTEGER NOT NULL CHECK (prod IN (0, 1)),
    git_hash                  TEXT NOT NULL,
    git_hash_commit_timestamp TEXT,
    image_name_with_tag       TEXT NOT NULL,
    -- When the image reached the app environment (server time, or deployed_at when
    -- back-filling), and created_at minus the commit time in fractional minutes (NULL without
    -- a commit time). Both immutable.
    created_at                TEXT NOT NULL,
    duration_mins             REAL,
    recorded_at               TEXT NOT NULL
);

-- Idempotency: a client's deployment id once per org; an image once per app environment (a
-- redeploy of the same image is not a new change).
CREATE UNIQUE INDEX image_lead_times_by_deployment
    ON image_lead_times (org_id, deployment_id)
    WHERE deployment_id IS NOT NULL;

CREATE UNIQUE INDEX image_lead_times_by_image_app_environment
    ON image_lead_times (image_id, app_environment_id);

-- Deployment frequency and the values list: one org, one time range.
CREATE INDEX image_lead_times_by_org_time ON image_lead_times (org_id, created_at);

-- Lead-time summaries: only rows that count (a project and a commit time), covering the
-- range scan so the durations come straight from the index (project_id is there only so
-- SQLite can check the query's `project_id IS NOT NULL` without reading the table row).
CREATE INDEX image_lead_times_lead_time
    ON image_lead_times (org_id, created_at, duration_mins, project_id)
    WHERE project_id IS NOT NULL AND duration_mins IS NOT NULL;
