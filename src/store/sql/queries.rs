//! The statements of one table mapping: the SQL of every step of the
//! algorithm, rendered once per store with the database's placeholders, and
//! the values each binds.

use std::sync::Arc;

use uuid::Uuid;

use super::driver::{Bind, Statement};
use crate::store::{IdKind, Profile, ProfileUpdate, UserTable};

/// The table a walk's checkpoint is kept in (bundled migration `0002`).
const CHECKPOINTS: &str = "ensure_user_backfill_state";

/// The table of ended sessions (bundled migration `0004`).
pub(crate) const ENDED_SESSIONS: &str = "ensure_user_ended_sessions";

/// Rows per batch statement at most: keeps every statement far below the
/// bind-parameter limits of PostgreSQL (65,535) and SQLite (32,766).
const MAX_BATCH_ROWS: usize = 1000;

/// The statements of one table mapping, rendered once per store.
pub(super) struct Queries {
    pub(super) id_kind: IdKind,
    profile_mapped: [bool; 4],
    pub(super) versioned: bool,
    /// Whether the table records bans.
    pub(super) banned_mapped: bool,
    lookup: Arc<str>,
    insert: Arc<str>,
    upsert: Arc<str>,
    tombstoned: Arc<str>,
    tombstone: Arc<str>,
    remove: Arc<str>,
    banned_of: Arc<str>,
    sessions: SessionQueries,
    batch: BatchQueries,
}

/// The statements of the ended sessions' table.
struct SessionQueries {
    end: Arc<str>,
    prune: Arc<str>,
}

/// The batch statements, whose parameter lists grow with the batch.
pub(super) struct BatchQueries {
    param: fn(usize) -> String,
    /// Bound values per written row.
    columns: usize,
    /// `INSERT … VALUES` up to the rows, then the rest after them.
    upsert: (String, String),
    /// What is stored for a list of ids: rows, then tombstones.
    read: (String, String),
    /// Which of a list of ids are tombstoned.
    tombstoned: String,
    load_checkpoint: Arc<str>,
    save_checkpoint: Arc<str>,
    clear_checkpoint: Arc<str>,
}

impl BatchQueries {
    fn list(&self, first: usize, count: usize) -> String {
        placeholders(self.param, first, count)
    }

    fn upsert(&self, rows: usize) -> String {
        let values: Vec<String> = (0..rows)
            .map(|row| self.list(row * self.columns + 1, self.columns))
            .collect();
        format!("{}{}{}", self.upsert.0, values.join(", "), self.upsert.1)
    }

    fn read(&self, ids: usize) -> String {
        let (rows, tombstones) = &self.read;
        let list = self.list(1, ids);
        format!("{rows}{list}{tombstones}{list}")
    }

    fn tombstoned(&self, ids: usize) -> String {
        format!("{}{}", self.tombstoned, self.list(1, ids))
    }
}

impl Queries {
    pub(super) fn new(table: &UserTable, param: fn(usize) -> String) -> Self {
        let UserTable {
            table: users,
            id,
            clerk_id,
            tombstones,
            ..
        } = table;
        let mut columns = Vec::new();
        if table.id_kind == IdKind::Uuid {
            columns.push(id.clone());
        }
        columns.push(clerk_id.clone());
        let profile = table.profile_columns();
        columns.extend(profile.iter().flatten().map(|c| (*c).to_owned()));
        let clerk_param = param(if table.id_kind == IdKind::Uuid { 2 } else { 1 });
        let banned = table.banned.as_deref();
        // The row's ban, as the insert and the upsert return it.
        let returned_ban = banned.unwrap_or("FALSE");
        let not_tombstoned =
            format!("NOT EXISTS (SELECT 1 FROM {tombstones} WHERE clerk_id = {clerk_param})");
        let values = |count: usize| (1..=count).map(param).collect::<Vec<_>>().join(", ");
        let insert = format!(
            "INSERT INTO {users} ({columns}) SELECT {values} WHERE {not_tombstoned} \
             ON CONFLICT ({clerk_id}) DO UPDATE SET {clerk_id} = excluded.{clerk_id} \
             RETURNING {id}, {returned_ban}",
            columns = columns.join(", "),
            values = values(columns.len()),
        );

        // The upsert writes the whole profile and, when mapped, its version
        // and the ban.
        let version = table.clerk_updated_at.as_deref();
        let mut synced: Vec<&str> = profile.iter().flatten().copied().collect();
        synced.extend(version);
        synced.extend(banned);
        columns.extend(version.map(str::to_owned));
        columns.extend(banned.map(str::to_owned));
        let assignments = if synced.is_empty() {
            format!("{clerk_id} = excluded.{clerk_id}")
        } else {
            let assign = |c: &&str| format!("{c} = excluded.{c}");
            synced.iter().map(assign).collect::<Vec<_>>().join(", ")
        };
        let newer = version.map_or_else(String::new, |v| {
            format!(" WHERE stored_row.{v} IS NULL OR stored_row.{v} <= excluded.{v}")
        });
        let upsert = format!(
            "INSERT INTO {users} AS stored_row ({columns}) SELECT {values} WHERE {not_tombstoned} \
             ON CONFLICT ({clerk_id}) DO UPDATE SET {assignments}{newer} \
             RETURNING {id}, {returned_ban}",
            columns = columns.join(", "),
            values = values(columns.len()),
        );

        // The batch upsert: the same columns, many rows, strictly newer only.
        let clerk_column = if table.id_kind == IdKind::Uuid { 2 } else { 1 };
        let strictly_newer = version.map_or_else(String::new, |v| {
            format!(" WHERE stored_row.{v} IS NULL OR stored_row.{v} < excluded.{v}")
        });
        let batch_upsert = (
            format!(
                "INSERT INTO {users} AS stored_row ({columns}) SELECT * FROM (VALUES ",
                columns = columns.join(", ")
            ),
            format!(
                ") AS incoming WHERE NOT EXISTS \
                 (SELECT 1 FROM {tombstones} WHERE clerk_id = incoming.column{clerk_column}) \
                 ON CONFLICT ({clerk_id}) DO UPDATE SET {assignments}{strictly_newer} \
                 RETURNING {clerk_id}"
            ),
        );
        let stored_version = version.unwrap_or("CAST(NULL AS BIGINT)");
        let batch_read = (
            format!(
                "SELECT {clerk_id}, {stored_version}, FALSE, {returned_ban} FROM {users} \
                 WHERE {clerk_id} IN "
            ),
            format!(
                " UNION ALL SELECT clerk_id, NULL, TRUE, FALSE FROM {tombstones} WHERE clerk_id IN "
            ),
        );
        let checkpoints = CHECKPOINTS;
        let ended = ENDED_SESSIONS;
        let lookup_ban = banned.map_or_else(
            || "FALSE".to_owned(),
            |b| {
                format!(
                    "COALESCE((SELECT {b} FROM {users} WHERE {clerk_id} = {p1}), FALSE)",
                    p1 = param(1)
                )
            },
        );

        let p1 = param(1);
        let (p2, p3, p4) = (param(2), param(3), param(4));
        Self {
            id_kind: table.id_kind,
            profile_mapped: profile.map(|c| c.is_some()),
            versioned: version.is_some(),
            banned_mapped: banned.is_some(),
            lookup: format!(
                "SELECT (SELECT {id} FROM {users} WHERE {clerk_id} = {p1}) AS id, \
                 EXISTS (SELECT 1 FROM {tombstones} WHERE clerk_id = {p1}) AS deleted, \
                 {lookup_ban} AS banned"
            )
            .into(),
            insert: insert.into(),
            upsert: upsert.into(),
            tombstoned: format!("SELECT EXISTS (SELECT 1 FROM {tombstones} WHERE clerk_id = {p1})")
                .into(),
            tombstone: format!(
                "INSERT INTO {tombstones} (clerk_id, deleted_at) VALUES ({p1}, {p2}) \
                 ON CONFLICT (clerk_id) DO NOTHING"
            )
            .into(),
            remove: format!("DELETE FROM {users} WHERE {clerk_id} = {p1}").into(),
            banned_of: format!("SELECT {returned_ban} FROM {users} WHERE {clerk_id} = {p1}").into(),
            sessions: SessionQueries {
                end: format!(
                    "INSERT INTO {ended} (session_id, clerk_id, until_ms) VALUES ({p1}, {p2}, {p3}) \
                     ON CONFLICT (session_id) DO UPDATE SET until_ms = excluded.until_ms, \
                     clerk_id = excluded.clerk_id WHERE {ended}.until_ms < excluded.until_ms"
                )
                .into(),
                prune: format!("DELETE FROM {ended} WHERE until_ms <= {p1}").into(),
            },
            batch: BatchQueries {
                param,
                columns: columns.len(),
                upsert: batch_upsert,
                read: batch_read,
                tombstoned: format!("SELECT clerk_id FROM {tombstones} WHERE clerk_id IN "),
                load_checkpoint: format!(
                    "SELECT last_clerk_id, users_passed FROM {checkpoints} WHERE name = {p1}"
                )
                .into(),
                save_checkpoint: format!(
                    "INSERT INTO {checkpoints} (name, last_clerk_id, users_passed, saved_at) \
                     VALUES ({p1}, {p2}, {p3}, {p4}) ON CONFLICT (name) DO UPDATE SET \
                     last_clerk_id = excluded.last_clerk_id, \
                     users_passed = excluded.users_passed, saved_at = excluded.saved_at"
                )
                .into(),
                clear_checkpoint: format!("DELETE FROM {checkpoints} WHERE name = {p1}").into(),
            },
        }
    }

    /// The user's local id, and whether they are tombstoned.
    pub(super) fn lookup<'a>(&self, clerk_id: &'a str) -> Statement<'a> {
        Statement::new(Arc::clone(&self.lookup)).bind(Bind::Text(clerk_id))
    }

    /// Creates the user's row, unless tombstoned; returns the id (of the
    /// existing row, if a racing insert won).
    pub(super) fn insert<'a>(&self, clerk_id: &'a str, profile: &'a Profile) -> Statement<'a> {
        self.row_values(Arc::clone(&self.insert), clerk_id, profile, None)
    }

    /// Writes the whole profile, unless tombstoned or a newer one is
    /// stored; returns the id of the row written.
    pub(super) fn upsert<'a>(
        &self,
        clerk_id: &'a str,
        profile: &'a Profile,
        version: i64,
    ) -> Statement<'a> {
        self.row_values(Arc::clone(&self.upsert), clerk_id, profile, Some(version))
    }

    /// The ban the user's row records, if there is a row.
    pub(super) fn banned_of<'a>(&self, clerk_id: &'a str) -> Statement<'a> {
        Statement::new(Arc::clone(&self.banned_of)).bind(Bind::Text(clerk_id))
    }

    /// Records that `session` ended, keeping the later of two ends.
    pub(super) fn end_session<'a>(
        &self,
        session: &'a str,
        clerk_id: &'a str,
        until_ms: i64,
    ) -> Statement<'a> {
        Statement::new(Arc::clone(&self.sessions.end))
            .bind(Bind::Text(session))
            .bind(Bind::Text(clerk_id))
            .bind(Bind::Int(until_ms))
    }

    /// Deletes the ended sessions no token of which can be valid at `now_ms`.
    pub(super) fn prune_ended_sessions(&self, now_ms: i64) -> Statement<'static> {
        Statement::new(Arc::clone(&self.sessions.prune)).bind(Bind::Int(now_ms))
    }

    /// Whether the user is tombstoned.
    pub(super) fn tombstoned<'a>(&self, clerk_id: &'a str) -> Statement<'a> {
        Statement::new(Arc::clone(&self.tombstoned)).bind(Bind::Text(clerk_id))
    }

    /// Records the tombstone unless one exists.
    pub(super) fn tombstone<'a>(&self, clerk_id: &'a str, deleted_at_ms: i64) -> Statement<'a> {
        Statement::new(Arc::clone(&self.tombstone))
            .bind(Bind::Text(clerk_id))
            .bind(Bind::Int(deleted_at_ms))
    }

    /// Deletes the user's row.
    pub(super) fn remove<'a>(&self, clerk_id: &'a str) -> Statement<'a> {
        Statement::new(Arc::clone(&self.remove)).bind(Bind::Text(clerk_id))
    }

    /// What is stored for `ids`: `(clerk id, version, tombstoned, banned)` rows.
    ///
    /// Planned anew each time (not a cached prepared statement): a plan
    /// cached while a fresh table was small would keep scanning the whole
    /// table as a backfill fills it.
    pub(super) fn read_batch<'a>(&self, ids: &[&'a str]) -> Statement<'a> {
        Statement::new(self.batch.read(ids.len()))
            // The list is named twice in the SQL, by the same placeholders.
            .bind_all(ids.iter().map(|id| Bind::Text(id)))
            .planned_each_time()
    }

    /// Upserts `users[i]` for each `i` in `rows`, in one statement, strictly
    /// newer versions only; returns the Clerk ids of the rows written.
    pub(super) fn write_batch<'a>(
        &self,
        users: &'a [ProfileUpdate],
        rows: &[usize],
    ) -> Statement<'a> {
        let mut statement = Statement::new(self.batch.upsert(rows.len()));
        for user in rows.iter().map(|&index| &users[index]) {
            statement = statement.bind_all(self.values(
                &user.clerk_id,
                &user.profile,
                Some(user.updated_at_ms),
            ));
        }
        statement
    }

    /// Which of `ids` are tombstoned (planned anew, as `read_batch`).
    pub(super) fn tombstoned_among<'a>(&self, ids: &[&'a str]) -> Statement<'a> {
        Statement::new(self.batch.tombstoned(ids.len()))
            .bind_all(ids.iter().map(|id| Bind::Text(id)))
            .planned_each_time()
    }

    /// The checkpoint of the walk called `name`: `(last clerk id, users passed)`.
    pub(super) fn load_checkpoint<'a>(&self, name: &'a str) -> Statement<'a> {
        Statement::new(Arc::clone(&self.batch.load_checkpoint)).bind(Bind::Text(name))
    }

    /// Saves the checkpoint of the walk called `name`.
    pub(super) fn save_checkpoint<'a>(
        &self,
        name: &'a str,
        last_clerk_id: &'a str,
        passed: i64,
        saved_at_ms: i64,
    ) -> Statement<'a> {
        Statement::new(Arc::clone(&self.batch.save_checkpoint))
            .bind(Bind::Text(name))
            .bind(Bind::Text(last_clerk_id))
            .bind(Bind::Int(passed))
            .bind(Bind::Int(saved_at_ms))
    }

    /// Forgets the checkpoint of the walk called `name`.
    pub(super) fn clear_checkpoint<'a>(&self, name: &'a str) -> Statement<'a> {
        Statement::new(Arc::clone(&self.batch.clear_checkpoint)).bind(Bind::Text(name))
    }

    /// A row's values for the insert or the upsert, in column order.
    fn row_values<'a>(
        &self,
        sql: Arc<str>,
        clerk_id: &'a str,
        profile: &'a Profile,
        version: Option<i64>,
    ) -> Statement<'a> {
        Statement::new(sql).bind_all(self.values(clerk_id, profile, version))
    }

    /// A new id (for UUID tables), the Clerk id, the mapped profile columns
    /// and, for an upsert (`version` given), the version and the ban, each
    /// when the table keeps it.
    fn values<'a>(
        &self,
        clerk_id: &'a str,
        profile: &'a Profile,
        version: Option<i64>,
    ) -> impl Iterator<Item = Bind<'a>> {
        let id = (self.id_kind == IdKind::Uuid).then(|| Bind::Uuid(Uuid::new_v4()));
        let banned = version
            .filter(|_| self.banned_mapped)
            .map(|_| Bind::Bool(profile.banned));
        let version = version.filter(|_| self.versioned).map(Bind::Int);
        id.into_iter()
            .chain([Bind::Text(clerk_id)])
            .chain(self.profile_values(profile).map(Bind::MaybeText))
            .chain(version)
            .chain(banned)
    }

    /// Rows per batch statement for `users` ([`rows_per_statement`]).
    pub(super) fn statement_rows(&self, users: &[ProfileUpdate], max_bytes: usize) -> usize {
        let widest = users
            .iter()
            .map(|user| self.bound_bytes(user))
            .max()
            .unwrap_or(1);
        rows_per_statement(widest, max_bytes)
    }

    /// The size of one row's bound values on the wire, 4 length bytes each.
    fn bound_bytes(&self, user: &ProfileUpdate) -> usize {
        let id = if self.id_kind == IdKind::Uuid {
            4 + 16
        } else {
            0
        };
        let version = if self.versioned { 4 + 8 } else { 0 };
        let banned = if self.banned_mapped { 4 + 1 } else { 0 };
        let profile: usize = self
            .profile_values(&user.profile)
            .map(|value| 4 + value.map_or(0, str::len))
            .sum();
        id + 4 + user.clerk_id.len() + profile + version + banned
    }

    fn profile_values<'p>(
        &self,
        profile: &'p Profile,
    ) -> impl Iterator<Item = Option<&'p str>> + use<'p> {
        let mapped = self.profile_mapped;
        profile
            .storable_fields()
            .into_iter()
            .zip(mapped)
            .filter_map(|(value, mapped)| mapped.then_some(value))
    }
}

/// `(p1, p2, …)` for `count` parameters numbered from `first`.
pub(super) fn placeholders(param: fn(usize) -> String, first: usize, count: usize) -> String {
    let params: Vec<String> = (first..first + count).map(param).collect();
    format!("({})", params.join(", "))
}

/// Rows per batch statement when the widest row binds `widest` bytes: as
/// many as keep one statement's values within `max_bytes` (at most
/// [`MAX_BATCH_ROWS`]), rounded down to a power of two so that few distinct
/// statements get prepared.
pub(super) fn rows_per_statement(widest: usize, max_bytes: usize) -> usize {
    let rows = (max_bytes / widest.max(1)).clamp(1, MAX_BATCH_ROWS);
    1 << rows.ilog2()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_cut_by_the_size_of_their_values() {
        let queries = Queries::new(&UserTable::default(), |n| format!("${n}"));
        let user = |image: usize| {
            ProfileUpdate::new(
                "user_1",
                Profile::new().with_image_url("x".repeat(image)),
                1,
            )
        };
        // 4 + 6 (id) + 4 × 4 + image (profile) + 4 + 8 (version) + 4 + 1
        // (ban) = 43 + image.
        assert_eq!(queries.bound_bytes(&user(57)), 100);
        let rows = |image, max_bytes| queries.statement_rows(&[user(1), user(image)], max_bytes);
        assert_eq!(rows(57, 12 * 1024), 64, "122 rows fit, rounded down to 64");
        assert_eq!(rows(57, usize::MAX), 512, "capped, then rounded down");
        assert_eq!(
            rows(100_000, 12 * 1024),
            1,
            "one row even when it is over the limit"
        );
        assert_eq!(queries.statement_rows(&[], 12 * 1024), 512);
    }
}
