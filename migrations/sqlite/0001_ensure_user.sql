-- ensure-user: the bundled users table and the tombstones of deleted Clerk users.
-- Idempotent: safe to run on every start, and to copy into your own migrations.

-- AUTOINCREMENT: an id is never handed out again, even after its row is
-- deleted (plain INTEGER PRIMARY KEY would give the next user max(id) + 1).
CREATE TABLE IF NOT EXISTS users (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    clerk_id         TEXT NOT NULL UNIQUE,
    email            TEXT,
    first_name       TEXT,
    last_name        TEXT,
    image_url        TEXT,
    -- The Clerk user object's updated_at (Unix ms) of the last profile applied.
    clerk_updated_at INTEGER,
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- A Clerk user id in here is never created again, by any path.
CREATE TABLE IF NOT EXISTS clerk_user_tombstones (
    clerk_id   TEXT PRIMARY KEY,
    -- Unix ms of the deletion.
    deleted_at INTEGER NOT NULL
);
