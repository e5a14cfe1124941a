-- 0005: recording an image moves its channel's version, inside the INSERT itself.
--
-- CreateImageEntry used to be BEGIN IMMEDIATE, an upsert of image_versions, the image INSERT
-- and COMMIT: four statements crossing the component boundary while the database's one write
-- lock was held (and under load, the lock holder waited for a CPU between them). With this
-- trigger the pipeline trigger is one autocommit INSERT: SQLite takes the write lock, inserts
-- the image, moves the channel and commits without returning to the component, so the lock
-- is held only for SQLite's own work and the commit's fsync. The statement is atomic: a
-- failure anywhere (a reused run_id, a full disk) leaves neither the image nor the bump.
--
-- The rules are those of SemVersion::bump (domain/version.rs), also spelled in SQL by
-- store::versions::advance for the bump route: `major` resets minor and patch, `minor`
-- resets patch, `none` keeps the version; a channel recorded for the first time starts at
-- 0.0.0 and is moved from there. A part already at its maximum (2^63 - 1) aborts the INSERT
-- with the message cd-core maps to 409. The INSERT computes the image's `version` from the
-- channel as it was (store::images::record, so that RETURNING can give it back); the trigger
-- aborts the INSERT if that is not "{channel}-{major}.{minor}.{patch}" of the channel's new
-- version, so the two spellings of the rules can never drift apart silently.
CREATE TRIGGER images_advance_channel AFTER INSERT ON images
BEGIN
    SELECT RAISE(ABORT, 'cd-images: the channel version part is at its maximum')
    FROM image_versions
    WHERE registry_id = NEW.registry_id AND channel = NEW.channel
      AND (CASE NEW.update_type WHEN 'major' THEN major WHEN 'minor' THEN minor
                                WHEN 'patch' THEN patch ELSE 0 END) >= 9223372036854775807;
    INSERT INTO image_versions (registry_id, channel, org_id, major, minor, patch, created_at, updated_at)
    VALUES (NEW.registry_id, NEW.channel, NEW.org_id, NEW.update_type = 'major',
            NEW.update_type = 'minor', NEW.update_type = 'patch', NEW.built_at, NEW.built_at)
    ON CONFLICT (registry_id, channel) DO UPDATE SET
        major = CASE NEW.update_type WHEN 'major' THEN major + 1 ELSE major END,
        minor = CASE NEW.update_type WHEN 'major' THEN 0 WHEN 'minor' THEN minor + 1 ELSE minor END,
        patch = CASE NEW.update_type WHEN 'patch' THEN patch + 1 WHEN 'none' THEN patch ELSE 0 END,
        updated_at = CASE NEW.update_type WHEN 'none' THEN updated_at ELSE NEW.built_at END;
    SELECT RAISE(ABORT, 'cd-images: an image version disagrees with its channel')
    FROM image_versions
    WHERE registry_id = NEW.registry_id AND channel = NEW.channel
      AND NEW.version IS NOT NEW.channel || '-' || major || '.' || minor || '.' || patch;
END;
