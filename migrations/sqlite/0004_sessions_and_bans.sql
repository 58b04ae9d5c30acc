-- ensure-user: the sessions that ended, and (see below) whether Clerk bans a user.
-- Idempotent: safe to run on every start, and to copy into your own migrations.

-- `users.banned BOOLEAN NOT NULL DEFAULT FALSE` is added by `migrate()`
-- itself when the column is missing: SQLite has no `ADD COLUMN IF NOT
-- EXISTS`. By hand, run once:
--   ALTER TABLE users ADD COLUMN banned BOOLEAN NOT NULL DEFAULT FALSE;

-- Sessions ended (signed out, removed, revoked): their tokens are refused
-- until `until_ms`, when none of them can be valid any more. A process loads
-- the rows still in force when it starts.
CREATE TABLE IF NOT EXISTS ensure_user_ended_sessions (
    session_id TEXT PRIMARY KEY,
    clerk_id   TEXT NOT NULL,
    -- Unix ms.
    until_ms   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ensure_user_ended_sessions_until
    ON ensure_user_ended_sessions (until_ms);
