-- ensure-user: where an interrupted `ensure-user backfill` resumes.
-- Idempotent: safe to run on every start, and to copy into your own migrations.

CREATE TABLE IF NOT EXISTS ensure_user_backfill_state (
    name          TEXT PRIMARY KEY,
    -- The last Clerk user whose batch was written.
    last_clerk_id TEXT NOT NULL,
    -- How many users the walk had passed by then (Clerk's created_at order).
    users_passed  INTEGER NOT NULL,
    -- Unix ms of the save.
    saved_at      INTEGER NOT NULL
);
