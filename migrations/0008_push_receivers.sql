-- Registry pushes (issue 13): receivers per registry, the deliveries they applied (exactly
-- once), and what a push tells us about an image: the digest its registry stored and when.

-- The manifest the registry stored under the image's tag (`sha256:…`), from its receiver's
-- last push; NULL until a push arrives, and for registries that send no digest (Docker Hub,
-- Quay) only `pushed_at` is set. An image a push recorded has no commit: its `git_hash` is ''
-- (the column is NOT NULL since 0002).
ALTER TABLE images ADD COLUMN digest TEXT;
ALTER TABLE images ADD COLUMN pushed_at INTEGER;

-- `?digest=` (a deploy tool that knows only the digest) and deployments recorded by digest:
-- partial, so builds never pushed cost nothing.
CREATE INDEX images_of_registry_digest ON images (registry_key, digest, image_id)
    WHERE digest IS NOT NULL;

-- A push names its tag: the newest image of the registry recorded with that tag_name.
CREATE INDEX images_of_registry_tag ON images (registry_key, tag_name, image_id);

-- A registry's push receivers. Their secrets are not here: each is an HMAC of the receiver
-- id under the `webhook_signing_key` variable, so this table authenticates no one.
CREATE TABLE receivers (
    receiver_id    BLOB NOT NULL PRIMARY KEY,
    registry_key   INTEGER NOT NULL REFERENCES image_registries (registry_key),
    source         TEXT NOT NULL
        CHECK (source IN ('harbor', 'ghcr', 'acr', 'dockerhub', 'quay', 'generic')),
    -- The channel and update type of images recorded for tags no pipeline recorded.
    channel        TEXT,
    update_type    TEXT CHECK (update_type IN ('major', 'minor', 'patch', 'none')),
    on_unknown_tag TEXT NOT NULL CHECK (on_unknown_tag IN ('record', 'ignore')),
    created_at     INTEGER NOT NULL
);

-- A registry's receivers, newest first (GET .../receivers).
CREATE INDEX receivers_of_registry ON receivers (registry_key, receiver_id);

-- Each delivery a receiver applied, by the sender's delivery or event id (else the body's
-- SHA-256): a registry's retry finds its row and is answered with the first outcome, and
-- the row is written in the transaction that applies the push, so a delivery is applied
-- once however often and however concurrently it arrives.
CREATE TABLE receiver_deliveries (
    receiver_id  BLOB NOT NULL REFERENCES receivers (receiver_id) ON DELETE CASCADE,
    delivery_key TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    outcome      TEXT NOT NULL CHECK (json_valid(outcome)),
    PRIMARY KEY (receiver_id, delivery_key)
) WITHOUT ROWID;
