-- ensure-user: organizations, memberships, and the tombstones of deleted ones.
-- Idempotent: safe to run on every start, and to copy into your own migrations.
-- Memberships reference the bundled users table; an app with its own users
-- table creates these tables itself first, `user_id` referencing its table.
-- The cascades need foreign keys on (`PRAGMA foreign_keys = ON`), which sqlx
-- sets on every SQLite connection unless told otherwise.

-- AUTOINCREMENT: an id is never handed out again, even after its row is deleted.
CREATE TABLE IF NOT EXISTS organizations (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    clerk_id         TEXT NOT NULL UNIQUE,
    name             TEXT,
    slug             TEXT,
    image_url        TEXT,
    -- The Clerk organization object's updated_at (Unix ms) of the last state applied.
    clerk_updated_at INTEGER,
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- One row per member of an organization; deleting either side deletes it.
CREATE TABLE IF NOT EXISTS organization_memberships (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id  INTEGER NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id          INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Normalised: exactly one `org:` prefix.
    role             TEXT NOT NULL,
    -- Unix ms of the state the role came from: a webhook's updated_at or a token's iat.
    role_version     INTEGER NOT NULL,
    -- The membership object's updated_at (Unix ms) of the last webhook or backfill applied.
    clerk_updated_at INTEGER,
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (organization_id, user_id)
);

-- A user's deletion finds their memberships through this index; the unique
-- constraint above serves lookups by organization.
CREATE INDEX IF NOT EXISTS organization_memberships_user_id
    ON organization_memberships (user_id);

-- A Clerk organization id in here is never created again, by any path.
CREATE TABLE IF NOT EXISTS clerk_organization_tombstones (
    clerk_id   TEXT PRIMARY KEY,
    -- Unix ms of the deletion.
    deleted_at INTEGER NOT NULL
);

-- A membership deleted at deleted_at (Unix ms, the latest deletion): nothing
-- as old as that re-creates it; a newer state (the user invited back) may.
CREATE TABLE IF NOT EXISTS clerk_membership_tombstones (
    organization_clerk_id TEXT NOT NULL,
    user_clerk_id         TEXT NOT NULL,
    deleted_at            INTEGER NOT NULL,
    PRIMARY KEY (organization_clerk_id, user_clerk_id)
);
