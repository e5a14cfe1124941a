-- 0007: every table in the compact encoding.
--
-- Until now every row and every index entry carried ids as 36-character UUID text, instants
-- as 27-character text and the org id as text: 646 bytes a lead-time record with its indexes,
-- 986 an image, at a million records (docs/performance.md). From this schema on:
--  * ids are their 16 bytes (BLOB): UUIDv7 bytes sort by time exactly as the text did;
--  * instants are INTEGER microseconds since the Unix epoch, UTC: ordered as time, and a
--    duration is a subtraction;
--  * an org is interned once in `orgs`, and rows and indexes carry its small `org_key`; a
--    registry's rows carry its `registry_key` (the registry's rowid), not its 16-byte id;
--  * a lead-time record no longer copies what its image holds (git hash, commit time, image
--    reference): the reads that show them join the image by its key;
--  * the wire format is unchanged: cd-core renders ids and instants exactly as before.
--
-- The tables of the old encoding are renamed `<table>_text` and new ones created under the
-- old names. The small tables (tokens, registries, channel versions, environments, app
-- environments, the rollup) are copied here: thousands of rows, milliseconds. The two large
-- ones, images and lead-time records, are copied by cd-core a batch at a time after responses
-- (store/reencode.rs), each batch its own short write transaction, as `backfills` rows say;
-- rows keep their rowid, so a pending rollup back-fill's cursor stays valid. Until the copy
-- is done, a lookup by key copies the rows it needs first and a read of whole tables finishes
-- the copy (or answers 503 and Retry-After), so pipelines keep writing during the upgrade.
-- Each batch of records also deletes the old records it copied; after the records, the old
-- images are deleted a batch at a time; then the emptied `_text` tables are dropped, children
-- before parents (foreign keys are on: a parent dropped first would be emptied row by row).
-- Dropping a full table visits every page of it with the write lock held.
--
-- Conversions, in every statement below and in store/reencode.rs:
--  * UUID text to bytes: unhex(replace(id, '-', ''));
--  * instant text (2026-03-01T04:30:00.000000Z, always 27 characters) to microseconds:
--    unixepoch(substr(t, 1, 19)) * 1000000 + CAST(substr(t, 21, 6) AS INTEGER);
--  * a REAL lead time in minutes to whole microseconds, as cd-core derived the rollup from it:
--    CAST(round(duration_mins * 60000000.0) AS INTEGER).

-- The orgs, each once: every other table refers to one by org_key.
CREATE TABLE orgs (
    org_key INTEGER PRIMARY KEY,
    org_id  TEXT NOT NULL UNIQUE
);

INSERT INTO orgs (org_id)
SELECT org_id FROM api_tokens
UNION SELECT org_id FROM image_registries
UNION SELECT org_id FROM environments
ORDER BY 1;

DROP TRIGGER images_advance_channel;

ALTER TABLE api_tokens RENAME TO api_tokens_text;

ALTER TABLE image_registries RENAME TO image_registries_text;

ALTER TABLE image_versions RENAME TO image_versions_text;

ALTER TABLE images RENAME TO images_text;

ALTER TABLE environments RENAME TO environments_text;

ALTER TABLE app_environments RENAME TO app_environments_text;

ALTER TABLE image_lead_times RENAME TO image_lead_times_text;

ALTER TABLE lead_time_days RENAME TO lead_time_days_text;

-- The small tables' old indexes go now; their tables stay until the large ones are copied
-- (they are the parents of the old images and records).
DROP INDEX image_registries_unique_live;

DROP INDEX image_registries_by_org;

DROP INDEX environments_by_name;

DROP INDEX app_environments_by_key;

-- API tokens: only the SHA-256 digest of a token is stored. Lookup is by digest (unique
-- index); listing is per org, newest first.
CREATE TABLE api_tokens (
    token_id     BLOB NOT NULL PRIMARY KEY,
    org_key      INTEGER NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    name         TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);

-- The org's live tokens, newest first (tokens.rs list); revoked ones are never listed.
CREATE INDEX api_tokens_live_of_org ON api_tokens (org_key, token_id) WHERE revoked_at IS NULL;

INSERT INTO api_tokens (token_id, org_key, role, name, token_sha256, created_at, revoked_at)
SELECT unhex(replace(token_id, '-', '')),
       (SELECT org_key FROM orgs WHERE orgs.org_id = t.org_id),
       role, name, token_sha256,
       unixepoch(substr(created_at, 1, 19)) * 1000000 + CAST(substr(created_at, 21, 6) AS INTEGER),
       unixepoch(substr(revoked_at, 1, 19)) * 1000000 + CAST(substr(revoked_at, 21, 6) AS INTEGER)
FROM api_tokens_text t ORDER BY t.rowid;

DROP TABLE api_tokens_text;

-- Image registries. Deleting one is a soft delete (deleted_at): images and lead-time records
-- refer to it, and DORA history must survive the registry.
CREATE TABLE image_registries (
    registry_key          INTEGER PRIMARY KEY,
    registry_id           BLOB NOT NULL UNIQUE,
    org_key               INTEGER NOT NULL,
    image_repository_name TEXT NOT NULL,
    public                INTEGER NOT NULL CHECK (public IN (0, 1)),
    container_registry_id TEXT NOT NULL,
    token_vault_id        TEXT,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    deleted_at            INTEGER
);

-- One live registry per repository and container registry within an org; a deleted one
-- frees its name.
CREATE UNIQUE INDEX image_registries_live_repository
    ON image_registries (org_key, container_registry_id, image_repository_name)
    WHERE deleted_at IS NULL;

-- The org's registry list, newest first, paged by id.
CREATE INDEX image_registries_live_of_org
    ON image_registries (org_key, registry_id)
    WHERE deleted_at IS NULL;

INSERT INTO image_registries (registry_key, registry_id, org_key, image_repository_name, public,
    container_registry_id, token_vault_id, created_at, updated_at, deleted_at)
SELECT t.rowid, unhex(replace(registry_id, '-', '')),
       (SELECT org_key FROM orgs WHERE orgs.org_id = t.org_id),
       image_repository_name, public, container_registry_id, token_vault_id,
       unixepoch(substr(created_at, 1, 19)) * 1000000 + CAST(substr(created_at, 21, 6) AS INTEGER),
       unixepoch(substr(updated_at, 1, 19)) * 1000000 + CAST(substr(updated_at, 21, 6) AS INTEGER),
       unixepoch(substr(deleted_at, 1, 19)) * 1000000 + CAST(substr(deleted_at, 21, 6) AS INTEGER)
FROM image_registries_text t ORDER BY t.rowid;

-- The current version of each channel of a registry: (registry, channel) is the key.
-- WITHOUT ROWID: the table is only ever read by its key.
CREATE TABLE image_versions (
    registry_key INTEGER NOT NULL REFERENCES image_registries (registry_key),
    channel     TEXT NOT NULL,
    org_key     INTEGER NOT NULL,
    major       INTEGER NOT NULL CHECK (major >= 0),
    minor       INTEGER NOT NULL CHECK (minor >= 0),
    patch       INTEGER NOT NULL CHECK (patch >= 0),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (registry_key, channel)
) WITHOUT ROWID;

INSERT INTO image_versions (registry_key, channel, org_key, major, minor, patch, created_at, updated_at)
SELECT (SELECT registry_key FROM image_registries AS r
        WHERE r.registry_id = unhex(replace(t.registry_id, '-', ''))), channel,
       (SELECT org_key FROM orgs WHERE orgs.org_id = t.org_id),
       major, minor, patch,
       unixepoch(substr(created_at, 1, 19)) * 1000000 + CAST(substr(created_at, 21, 6) AS INTEGER),
       unixepoch(substr(updated_at, 1, 19)) * 1000000 + CAST(substr(updated_at, 21, 6) AS INTEGER)
FROM image_versions_text t;

DROP TABLE image_versions_text;

-- Images, one row per build recorded from a CD request. The build metadata is written once;
-- status, tags, cluster_image_tags, image_ports, gitops_hash and updated_at may change. tags,
-- image_ports and cluster_image_tags are JSON text (arrays), validated by cd-core on the way
-- in and queried with json_each for tag filters. request_sha256 is the digest's 32 bytes.
CREATE TABLE images (
    image_id                  BLOB NOT NULL PRIMARY KEY,
    org_key                   INTEGER NOT NULL,
    registry_key              INTEGER NOT NULL REFERENCES image_registries (registry_key),
    channel                   TEXT NOT NULL,
    version                   TEXT NOT NULL,
    update_type               TEXT NOT NULL CHECK (update_type IN ('major', 'minor', 'patch', 'none')),
    tag_name                  TEXT NOT NULL,
    image_name                TEXT NOT NULL,
    image_name_with_tag       TEXT NOT NULL,
    status                    TEXT NOT NULL,
    tags                      TEXT NOT NULL CHECK (json_valid(tags)),
    git_hash                  TEXT NOT NULL,
    git_hash_commit_timestamp INTEGER,
    gitops_hash               TEXT,
    api_definition_path       TEXT,
    committer                 TEXT,
    commit_msg                TEXT,
    run_id                    TEXT NOT NULL,
    image_ports               TEXT NOT NULL CHECK (json_valid(image_ports)),
    cluster_image_tags        TEXT NOT NULL CHECK (json_valid(cluster_image_tags)),
    api_version_id            TEXT,
    request_sha256            BLOB NOT NULL,
    built_at                  INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL
);

-- Idempotency: one image per pipeline run per registry (images.rs find_by_run, and the
-- INSERT's conflict).
CREATE UNIQUE INDEX images_run_of_registry ON images (registry_key, run_id);

-- A registry's images, newest first (image ids are UUIDv7): the unfiltered list and the
-- status and tag filters.
CREATE INDEX images_of_registry ON images (registry_key, image_id);

-- The list of one channel, newest first.
CREATE INDEX images_of_registry_channel ON images (registry_key, channel, image_id);

-- ListImagesByApiVersionId: only images that have one.
CREATE INDEX images_of_api_version ON images (registry_key, api_version_id, image_id)
    WHERE api_version_id IS NOT NULL;

-- GetDistinctOrgsOfInactiveImages: only the images whose status is not 'active' (a few in a
-- hundred), by org.
CREATE INDEX images_inactive_of_org ON images (org_key) WHERE status <> 'active';

-- Recording an image moves its channel's version, inside the INSERT itself (as migration
-- 0005 explains; the same rules, on the new columns). Not for the images the copy below
-- brings over (their channels' versions are already counted): those keep their rowids, all at
-- or below the copy's last_rowid, and every image recorded after this migration gets a
-- higher one. Once the copy is done the condition is one lookup that finds no row.
CREATE TRIGGER images_advance_channel AFTER INSERT ON images
WHEN NEW.rowid > (SELECT coalesce(max(last_rowid), 0) FROM backfills WHERE derived = 'images')
BEGIN
    SELECT RAISE(ABORT, 'cd-images: the channel version part is at its maximum')
    FROM image_versions
    WHERE registry_key = NEW.registry_key AND channel = NEW.channel
      AND (CASE NEW.update_type WHEN 'major' THEN major WHEN 'minor' THEN minor
                                WHEN 'patch' THEN patch ELSE 0 END) >= 9223372036854775807;
    INSERT INTO image_versions (registry_key, channel, org_key, major, minor, patch, created_at, updated_at)
    VALUES (NEW.registry_key, NEW.channel, NEW.org_key, NEW.update_type = 'major',
            NEW.update_type = 'minor', NEW.update_type = 'patch', NEW.built_at, NEW.built_at)
    ON CONFLICT (registry_key, channel) DO UPDATE SET
        major = CASE NEW.update_type WHEN 'major' THEN major + 1 ELSE major END,
        minor = CASE NEW.update_type WHEN 'major' THEN 0 WHEN 'minor' THEN minor + 1 ELSE minor END,
        patch = CASE NEW.update_type WHEN 'patch' THEN patch + 1 WHEN 'none' THEN patch ELSE 0 END,
        updated_at = CASE NEW.update_type WHEN 'none' THEN updated_at ELSE NEW.built_at END;
    SELECT RAISE(ABORT, 'cd-images: an image version disagrees with its channel')
    FROM image_versions
    WHERE registry_key = NEW.registry_key AND channel = NEW.channel
      AND NEW.version IS NOT NEW.channel || '-' || major || '.' || minor || '.' || patch;
END;

-- The deployment context: an org's environments by name (with their prod flag), and
-- (project, app, environment) triples.
CREATE TABLE environments (
    environment_id BLOB NOT NULL PRIMARY KEY,
    org_key        INTEGER NOT NULL,
    name           TEXT NOT NULL,
    prod           INTEGER NOT NULL CHECK (prod IN (0, 1)),
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

CREATE UNIQUE INDEX environments_of_org_by_name ON environments (org_key, name);

INSERT INTO environments (environment_id, org_key, name, prod, created_at, updated_at)
SELECT unhex(replace(environment_id, '-', '')),
       (SELECT org_key FROM orgs WHERE orgs.org_id = t.org_id),
       name, prod,
       unixepoch(substr(created_at, 1, 19)) * 1000000 + CAST(substr(created_at, 21, 6) AS INTEGER),
       unixepoch(substr(updated_at, 1, 19)) * 1000000 + CAST(substr(updated_at, 21, 6) AS INTEGER)
FROM environments_text t ORDER BY t.rowid;

CREATE TABLE app_environments (
    app_environment_id BLOB NOT NULL PRIMARY KEY,
    org_key            INTEGER NOT NULL,
    project_id         TEXT,
    app_id             TEXT NOT NULL,
    environment_id     BLOB NOT NULL REFERENCES environments (environment_id),
    created_at         INTEGER NOT NULL
);

-- One app environment per (project, app, environment); a missing project is its own key
-- (IFNULL: NULLs are distinct in UNIQUE indexes).
CREATE UNIQUE INDEX app_environments_key
    ON app_environments (org_key, IFNULL(project_id, ''), app_id, environment_id);

INSERT INTO app_environments (app_environment_id, org_key, project_id, app_id, environment_id, created_at)
SELECT unhex(replace(app_environment_id, '-', '')),
       (SELECT org_key FROM orgs WHERE orgs.org_id = t.org_id),
       project_id, app_id, unhex(replace(environment_id, '-', '')),
       unixepoch(substr(created_at, 1, 19)) * 1000000 + CAST(substr(created_at, 21, 6) AS INTEGER)
FROM app_environments_text t ORDER BY t.rowid;

-- One row per image reaching an app environment. It copies what the DORA queries filter and
-- aggregate on (project, app, environment, prod, time, lead time) so a range query reads one
-- index of one table; what only the record's own page shows (its image's git hash, commit
-- time and reference) is read from the image. duration_micros: created_at minus the image's
-- commit time (NULL without one). All immutable.
CREATE TABLE image_lead_times (
    lead_time_id       BLOB NOT NULL PRIMARY KEY,
    org_key            INTEGER NOT NULL,
    image_id           BLOB NOT NULL REFERENCES images (image_id),
    app_environment_id BLOB NOT NULL REFERENCES app_environments (app_environment_id),
    deployment_id      TEXT,
    project_id         TEXT,
    app_id             TEXT NOT NULL,
    environment        TEXT NOT NULL,
    prod               INTEGER NOT NULL CHECK (prod IN (0, 1)),
    created_at         INTEGER NOT NULL,
    duration_micros    INTEGER,
    recorded_at        INTEGER NOT NULL
);

-- Idempotency: a client's deployment id once per org; an image once per app environment (a
-- redeploy of the same image is not a new change).
CREATE UNIQUE INDEX image_lead_times_deployment_of_org
    ON image_lead_times (org_key, deployment_id)
    WHERE deployment_id IS NOT NULL;

CREATE UNIQUE INDEX image_lead_times_image_app_environment
    ON image_lead_times (image_id, app_environment_id);

-- Every DORA read of records: one org, one time range, covering the lead time and the
-- filters the rollup also answers (environment, prod), and project_id so that "counts for
-- lead time" (a project and a lead time) is checked in the index. One index where schema 6
-- had two (by time, and a partial covering one for lead times).
CREATE INDEX image_lead_times_of_org_by_time
    ON image_lead_times (org_key, created_at, duration_micros, project_id, environment, prod);

-- The daily rollup (migrations 0004, 0006; store/daily_rollup.rs), per org key.
CREATE TABLE lead_time_days (
    org_key     INTEGER NOT NULL,
    day         TEXT NOT NULL,
    environment TEXT NOT NULL,
    prod        INTEGER NOT NULL,
    chunk       INTEGER NOT NULL,
    deployments INTEGER NOT NULL,
    clock_skew  INTEGER NOT NULL,
    lead_times  BLOB NOT NULL
);

CREATE UNIQUE INDEX lead_time_days_key
    ON lead_time_days (org_key, day, environment, prod, chunk);

INSERT INTO lead_time_days (org_key, day, environment, prod, chunk, deployments, clock_skew, lead_times)
SELECT (SELECT org_key FROM orgs WHERE orgs.org_id = t.org_id),
       day, environment, prod, chunk, deployments, clock_skew, lead_times
FROM lead_time_days_text t ORDER BY t.rowid;

DROP TABLE lead_time_days_text;

-- The large tables' copies, done by cd-core (store/reencode.rs) in this order: images (the
-- records' parents), then the records, then 'text_tables': the old images deleted in batches
-- (next_rowid 0), then the drops (1).
INSERT INTO backfills (derived, next_rowid, last_rowid)
SELECT 'images', (SELECT min(rowid) FROM images_text), (SELECT max(rowid) FROM images_text)
WHERE EXISTS (SELECT 1 FROM images_text);

INSERT INTO backfills (derived, next_rowid, last_rowid)
SELECT 'image_lead_times', (SELECT min(rowid) FROM image_lead_times_text),
       (SELECT max(rowid) FROM image_lead_times_text)
WHERE EXISTS (SELECT 1 FROM image_lead_times_text);

INSERT INTO backfills (derived, next_rowid, last_rowid) VALUES ('text_tables', 0, 0);
