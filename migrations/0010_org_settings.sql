-- 0010: per-org settings (issue 14): the commit authors left out of lead-time figures, and the
-- benchmark year a DORA query uses when it names none. One row per org that set them; an org
-- without one has no exclusions and the 2024 benchmark.
CREATE TABLE org_settings (
    org_key          INTEGER PRIMARY KEY,
    excluded_authors TEXT NOT NULL CHECK (json_valid(excluded_authors)),
    benchmark        TEXT NOT NULL CHECK (benchmark IN ('2023', '2024', '2025')),
    updated_at       INTEGER NOT NULL
);
