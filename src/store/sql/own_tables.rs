//! The migration of a store on the app's own tables: the crate's own
//! tables only — the tombstones, the ended sessions, the backfill's
//! checkpoints, and, unless the app maps its own, the organizations'
//! tables, memberships referencing the users table — and never a `users`
//! table, nor a mapped organizations or memberships table.

use super::organization_columns::Tables;
use crate::store::IdKind;

/// How a database spells the columns of the crate's tables.
#[doc(hidden)]
pub struct Spelling {
    /// Run first: serialises concurrent migrations, or nothing.
    pub(super) lock: &'static str,
    /// A generated key that is never handed out twice.
    pub(super) serial_key: &'static str,
    /// A 64-bit integer.
    pub(super) integer: &'static str,
    /// A UUID as the store binds it.
    pub(super) uuid: &'static str,
    /// A timestamp defaulting to now.
    pub(super) timestamp: &'static str,
}

/// The script, idempotent: every statement `IF NOT EXISTS`, so tables the
/// app made itself are left as they are.
pub(super) fn script(tables: &Tables, spelling: &Spelling) -> String {
    let Spelling {
        lock,
        serial_key,
        integer,
        uuid,
        timestamp,
    } = spelling;
    let mapping = &tables.users;
    let (users, id, tombstones) = (&mapping.table, &mapping.id, &mapping.tombstones);
    let user_id = match mapping.id_kind {
        IdKind::BigInt => integer,
        IdKind::Uuid => uuid,
    };
    // The app's own organizations tables are never created here.
    let organizations = if tables.organizations_mapped() {
        String::new()
    } else {
        format!(
            "CREATE TABLE IF NOT EXISTS organizations (
    id               {serial_key},
    clerk_id         TEXT NOT NULL UNIQUE,
    name             TEXT,
    slug             TEXT,
    image_url        TEXT,
    clerk_updated_at {integer},
    created_at       {timestamp},
    updated_at       {timestamp}
);
CREATE TABLE IF NOT EXISTS organization_memberships (
    id               {serial_key},
    organization_id  {integer} NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id          {user_id} NOT NULL REFERENCES {users} ({id}) ON DELETE CASCADE,
    role             TEXT NOT NULL,
    role_version     {integer} NOT NULL,
    clerk_updated_at {integer},
    created_at       {timestamp},
    updated_at       {timestamp},
    UNIQUE (organization_id, user_id)
);
CREATE INDEX IF NOT EXISTS organization_memberships_user_id
    ON organization_memberships (user_id);
"
        )
    };
    format!(
        "{lock}
CREATE TABLE IF NOT EXISTS {tombstones} (
    clerk_id   TEXT PRIMARY KEY,
    deleted_at {integer} NOT NULL
);
CREATE TABLE IF NOT EXISTS ensure_user_backfill_state (
    name          TEXT PRIMARY KEY,
    last_clerk_id TEXT NOT NULL,
    users_passed  {integer} NOT NULL,
    saved_at      {integer} NOT NULL
);
CREATE TABLE IF NOT EXISTS ensure_user_ended_sessions (
    session_id TEXT PRIMARY KEY,
    clerk_id   TEXT NOT NULL,
    until_ms   {integer} NOT NULL
);
CREATE INDEX IF NOT EXISTS ensure_user_ended_sessions_until
    ON ensure_user_ended_sessions (until_ms);
{organizations}CREATE TABLE IF NOT EXISTS clerk_organization_tombstones (
    clerk_id   TEXT PRIMARY KEY,
    deleted_at {integer} NOT NULL
);
CREATE TABLE IF NOT EXISTS clerk_membership_tombstones (
    organization_clerk_id TEXT NOT NULL,
    user_clerk_id         TEXT NOT NULL,
    deleted_at            {integer} NOT NULL,
    PRIMARY KEY (organization_clerk_id, user_clerk_id)
);
"
    )
}
