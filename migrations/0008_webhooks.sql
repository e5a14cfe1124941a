-- Webhooks (issue 13). Inbound: receivers per registry, the deliveries they applied (exactly
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

-- Deploy triggers: a registry's subscriptions, and the outbox of deliveries to them.
-- `events` is a JSON array of event types; `channel` limits image events to one channel. The
-- secret that signs deliveries is derived like a receiver's and is not here either.
CREATE TABLE subscriptions (
    subscription_id BLOB NOT NULL PRIMARY KEY,
    registry_key    INTEGER NOT NULL REFERENCES image_registries (registry_key),
    url             TEXT NOT NULL,
    events          TEXT NOT NULL CHECK (json_valid(events)),
    channel         TEXT,
    active          INTEGER NOT NULL CHECK (active IN (0, 1)),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- A registry's subscriptions: the list, and the triggers below finding who hears an event.
CREATE INDEX subscriptions_of_registry ON subscriptions (registry_key, subscription_id);

-- The outbox. A row is written by the triggers below in the statement that records what
-- happened (an image, a push, a deployment): an event exists exactly when its cause does.
-- It is sent after a response (any component's), retried on a schedule, and claimed under a
-- lease (`leased_until`) so two instances never send the same attempt at once.
-- `payload` is rendered at the first attempt and kept, so every attempt sends the same body.
CREATE TABLE deliveries (
    delivery_key    INTEGER PRIMARY KEY,
    delivery_id     BLOB NOT NULL UNIQUE DEFAULT (randomblob(16)),
    subscription_id BLOB NOT NULL REFERENCES subscriptions (subscription_id) ON DELETE CASCADE,
    event_type      TEXT NOT NULL
        CHECK (event_type IN ('image.created', 'image.pushed', 'deployment.recorded')),
    -- The image (image events) or the lead-time record (deployment.recorded).
    subject_id      BLOB NOT NULL,
    occurred_at     INTEGER NOT NULL,
    payload         TEXT,
    status          TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- NULL once delivered or given up.
    next_attempt_at INTEGER,
    leased_until    INTEGER
);

-- What is due: every request's after-response step probes it (a partial index: only pending
-- deliveries are in it).
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE next_attempt_at IS NOT NULL;

-- A subscription's deliveries, newest first (GET .../deliveries).
CREATE INDEX deliveries_of_subscription ON deliveries (subscription_id, delivery_key);

-- Every attempt of a delivery: when, how long, what the receiver answered or why it failed.
CREATE TABLE delivery_attempts (
    delivery_key    INTEGER NOT NULL REFERENCES deliveries (delivery_key) ON DELETE CASCADE,
    attempt         INTEGER NOT NULL,
    started_at      INTEGER NOT NULL,
    duration_micros INTEGER NOT NULL,
    response_status INTEGER,
    error           TEXT,
    PRIMARY KEY (delivery_key, attempt)
) WITHOUT ROWID;

-- image.created: a subscription hears of images recorded after it was made (so rows copied
-- by a re-encoding, which are old, raise nothing; as images_advance_channel, the copy's
-- rowids are also excluded).
CREATE TRIGGER images_created_event AFTER INSERT ON images
WHEN NEW.rowid > (SELECT coalesce(max(last_rowid), 0) FROM backfills WHERE derived = 'images')
BEGIN
    INSERT INTO deliveries (subscription_id, event_type, subject_id, occurred_at, next_attempt_at)
    SELECT s.subscription_id, 'image.created', NEW.image_id, NEW.updated_at, NEW.updated_at
    FROM subscriptions AS s
    WHERE s.registry_key = NEW.registry_key AND s.active = 1
      AND s.created_at <= NEW.updated_at
      AND (s.channel IS NULL OR s.channel = NEW.channel)
      AND EXISTS (SELECT 1 FROM json_each(s.events) WHERE json_each.value = 'image.created');
END;

-- image.pushed: a receiver attached a push (a new push time) to an image.
CREATE TRIGGER images_pushed_event AFTER UPDATE OF pushed_at ON images
WHEN NEW.pushed_at IS NOT NULL AND NEW.pushed_at IS NOT OLD.pushed_at
BEGIN
    INSERT INTO deliveries (subscription_id, event_type, subject_id, occurred_at, next_attempt_at)
    SELECT s.subscription_id, 'image.pushed', NEW.image_id, NEW.updated_at, NEW.updated_at
    FROM subscriptions AS s
    WHERE s.registry_key = NEW.registry_key AND s.active = 1
      AND (s.channel IS NULL OR s.channel = NEW.channel)
      AND EXISTS (SELECT 1 FROM json_each(s.events) WHERE json_each.value = 'image.pushed');
END;

-- deployment.recorded: an image of the registry reached an app environment.
CREATE TRIGGER image_lead_times_recorded_event AFTER INSERT ON image_lead_times
WHEN NEW.rowid > (SELECT coalesce(max(last_rowid), 0) FROM backfills
                  WHERE derived = 'image_lead_times')
BEGIN
    INSERT INTO deliveries (subscription_id, event_type, subject_id, occurred_at, next_attempt_at)
    SELECT s.subscription_id, 'deployment.recorded', NEW.lead_time_id, NEW.recorded_at,
           NEW.recorded_at
    FROM subscriptions AS s
    WHERE s.registry_key = (SELECT registry_key FROM images WHERE image_id = NEW.image_id)
      AND s.active = 1 AND s.created_at <= NEW.recorded_at
      AND (SELECT deleted_at FROM image_registries AS r WHERE r.registry_key = s.registry_key)
          IS NULL
      AND EXISTS (SELECT 1 FROM json_each(s.events)
                  WHERE json_each.value = 'deployment.recorded');
END;
