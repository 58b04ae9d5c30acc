-- ensure-user: whether Clerk bans a user, and the sessions that ended.
-- Idempotent: safe to run on every start, and to copy into your own migrations.

-- Written by webhooks and backfills with the rest of the profile (the
-- newest `clerk_updated_at` wins); a banned row is refused (401 user_banned).
ALTER TABLE users ADD COLUMN IF NOT EXISTS banned BOOLEAN NOT NULL DEFAULT FALSE;

-- Sessions ended (signed out, removed, revoked): their tokens are refused
-- until `until_ms`, when none of them can be valid any more. Instances load
-- the rows still in force whenever they start listening.
CREATE TABLE IF NOT EXISTS ensure_user_ended_sessions (
    session_id TEXT PRIMARY KEY,
    clerk_id   TEXT NOT NULL,
    -- Unix ms.
    until_ms   BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS ensure_user_ended_sessions_until
    ON ensure_user_ended_sessions (until_ms);
