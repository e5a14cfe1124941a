-- 0002: images, one row per build recorded from a CD request.
--
-- The build metadata (git_hash .. run_id, version, built_at) is written once and never
-- updated; status, tags, cluster_image_tags, image_ports and gitops_hash may change.
-- tags, image_ports and cluster_image_tags are JSON text (arrays), validated by cd-core on the
-- way in and queried with SQLite's JSON functions (json_each) for tag filters.
CREATE TABLE images (
    image_id                  TEXT PRIMARY KEY,
    org_id                    TEXT NOT NULL,
    registry_id               TEXT NOT NULL REFERENCES image_registries (registry_id),
    channel                   TEXT NOT NULL,
    version                   TEXT NOT NULL,
    update_type               TEXT NOT NULL CHECK (update_type IN ('major', 'minor', 'patch', 'none')),
    tag_name                  TEXT NOT NULL,
    image_name                TEXT NOT NULL,
    image_name_with_tag       TEXT NOT NULL,
    status                    TEXT NOT NULL,
    tags                      TEXT NOT NULL CHECK (json_valid(tags)),
    git_hash                  TEXT NOT NULL,
    git_hash_commit_timestamp TEXT,
    gitops_hash               TEXT,
    api_definition_path       TEXT,
    committer                 TEXT,
    commit_msg                TEXT,
    run_id                    TEXT NOT NULL,
    image_ports               TEXT NOT NULL CHECK (json_valid(image_ports)),
    cluster_image_tags        TEXT NOT NULL CHECK (json_valid(cluster_image_tags)),
    api_version_id            TEXT,
    request_sha256            TEXT NOT NULL,
    built_at                  TEXT NOT NULL,
    updated_at                TEXT NOT NULL
);

-- Idempotency: one image per pipeline run per registry. A retried CD request finds its image
-- here (and request_sha256 tells a true retry from a different build reusing the run id).
CREATE UNIQUE INDEX images_by_run ON images (registry_id, run_id);

-- A registry's images, newest first (image ids are UUIDv7), optionally per channel.
CREATE INDEX images_by_registry ON images (registry_id, image_id);

CREATE INDEX images_by_registry_channel ON images (registry_id, channel, image_id);

-- ListImagesByApiVersionId.
CREATE INDEX images_by_api_version ON images (registry_id, api_version_id, image_id)
    WHERE api_version_id IS NOT NULL;

-- GetDistinctOrgsOfInactiveImages: statuses other than 'active', then org.
CREATE INDEX images_by_status_org ON images (status, org_id);
