-- 0001: API tokens, image registries and their channel versions.
--
-- Conventions for every migration (see migrations/README.md):
--  * one statement per `;` at the end of a line: Spin runs only the first statement of an
--    execute, so the runner splits files there and runs the pieces one by one;
--  * ids are UUIDv7 text (time-ordered, so "newest first" is "largest id first");
--  * instants are UTC text in one fixed-width form (2026-03-01T04:30:00.000000Z), so text
--    order is time order and ranges use indexes;
--  * every row carries org_id, and every index a request uses starts with it.

-- API tokens: only the SHA-256 digest of a token is stored. Lookup is by digest (unique
-- index); listing is per org, newest first.
CREATE TABLE api_tokens (
    token_id     TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    name         TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT
);

CREATE INDEX api_tokens_by_org ON api_tokens (org_id, token_id);

-- Image registries. Deleting one is a soft delete (deleted_at), because images and lead-time
-- records refer to it and DORA history must survive the registry.
CREATE TABLE image_registries (
    registry_id           TEXT PRIMARY KEY,
    org_id                TEXT NOT NULL,
    image_repository_name TEXT NOT NULL,
    public                INTEGER NOT NULL CHECK (public IN (0, 1)),
    container_registry_id TEXT NOT NULL,
    token_vault_id        TEXT,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL,
    deleted_at            TEXT
);

-- One live registry per repository and container registry within an org; a deleted one
-- frees its name.
CREATE UNIQUE INDEX image_registries_unique_live
    ON image_registries (org_id, container_registry_id, image_repository_name)
    WHERE deleted_at IS NULL;

-- The org's registry list, newest first, paged by id.
CREATE INDEX image_registries_by_org
    ON image_registries (org_id, registry_id)
    WHERE deleted_at IS NULL;

-- The current version of each channel of a registry: (registry, channel) is the key.
-- WITHOUT ROWID: the table is only ever read by its key.
CREATE TABLE image_versions (
    registry_id TEXT NOT NULL REFERENCES image_registries (registry_id),
    channel     TEXT NOT NULL,
    org_id      TEXT NOT NULL,
    major       INTEGER NOT NULL CHECK (major >= 0),
    minor       INTEGER NOT NULL CHECK (minor >= 0),
    patch       INTEGER NOT NULL CHECK (patch >= 0),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (registry_id, channel)
) WITHOUT ROWID;
