//! The PostgreSQL and SQLite stores: one algorithm, written once, over sqlx.
//!
//! A miss reads first (an existing user costs no write), then inserts with
//! `ON CONFLICT (clerk_id)` so racing processes converge on one row. The
//! insert skips tombstoned ids, and a re-check after it closes the race with
//! a concurrent deletion (which commits its tombstone before deleting rows).
//!
//! The sync side ([`UserSync`]) follows the same rules: a profile upsert is
//! one `INSERT … ON CONFLICT DO UPDATE` guarded by the tombstone and by the
//! stored `clerk_updated_at` (last write wins), re-checked like the insert;
//! a deletion commits its tombstone, then deletes the row.
//!
//! The tombstone's transaction also announces the deletion to other
//! processes ([`AnnounceDeletion`]): PostgreSQL publishes it with
//! `pg_notify`, which is delivered on commit and never for a rollback.
//! Profile updates are not announced: caches hold a user's local id and
//! whether they are deleted, and an update changes neither.
//!
//! A batch ([`BackfillStore`]) reads what is stored for all its ids in one
//! query, then writes every row that needs it in one multi-row
//! `INSERT … ON CONFLICT DO UPDATE` (strictly newer versions only), then
//! re-checks the tombstones of the rows it wrote, as a single upsert does.
//! On PostgreSQL, a large batch is cut so that each statement's values fit
//! in one socket write (see [`PG_STATEMENT_BYTES`]).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

use super::{
    BackfillStore, BatchOutcome, Checkpoint, IdKind, Profile, ProfileUpdate, Resolution,
    StoreError, SyncOutcome, UserStore, UserSync, UserTable,
    announce::AnnounceDeletion,
    batch::{Stored, plan},
};
use crate::user::LocalId;

/// Rows per batch statement at most: keeps every statement far below the
/// bind-parameter limits of PostgreSQL (65,535) and SQLite (32,766).
const MAX_BATCH_ROWS: usize = 1000;

/// Bytes of values bound to one PostgreSQL batch statement at most.
///
/// A message larger than the socket's send buffer (16 KiB by default on
/// Linux) leaves in several writes and, as sqlx 0.9.0 does not set
/// `TCP_NODELAY`, the last write waits for the server's delayed
/// acknowledgement, about 40 ms per statement. So a batch is cut into
/// statements that each leave in one write.
#[cfg(feature = "postgres")]
const PG_STATEMENT_BYTES: usize = 12 * 1024;

/// The key of the checkpoint row in `ensure_user_backfill_state` (bundled
/// migration `0002`).
const CHECKPOINT_NAME: &str = "users";

/// The statements of one table mapping, rendered once per store.
struct Queries {
    id_kind: IdKind,
    profile_mapped: [bool; 4],
    versioned: bool,
    lookup: Arc<str>,
    insert: Arc<str>,
    upsert: Arc<str>,
    tombstoned: Arc<str>,
    tombstone: Arc<str>,
    remove: Arc<str>,
    batch: BatchQueries,
}

/// The batch statements, whose parameter lists grow with the batch.
struct BatchQueries {
    param: fn(usize) -> String,
    /// Bound values per written row.
    columns: usize,
    /// `INSERT … VALUES` up to the rows, then the rest after them.
    upsert: (String, String),
    /// What is stored for a list of ids: rows, then tombstones.
    read: (String, String),
    /// Which of a list of ids are tombstoned.
    tombstoned: String,
    load_checkpoint: String,
    save_checkpoint: String,
    clear_checkpoint: String,
}

impl BatchQueries {
    /// `(p1, p2, …)` for `count` parameters numbered from `first`.
    fn list(&self, first: usize, count: usize) -> String {
        let params: Vec<String> = (first..first + count).map(self.param).collect();
        format!("({})", params.join(", "))
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
    fn new(table: &UserTable, param: fn(usize) -> String) -> Self {
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
        let not_tombstoned =
            format!("NOT EXISTS (SELECT 1 FROM {tombstones} WHERE clerk_id = {clerk_param})");
        let values = |count: usize| (1..=count).map(param).collect::<Vec<_>>().join(", ");
        let insert = format!(
            "INSERT INTO {users} ({columns}) SELECT {values} WHERE {not_tombstoned} \
             ON CONFLICT ({clerk_id}) DO UPDATE SET {clerk_id} = excluded.{clerk_id} \
             RETURNING {id}",
            columns = columns.join(", "),
            values = values(columns.len()),
        );

        // The upsert writes the whole profile and, when mapped, its version.
        let version = table.clerk_updated_at.as_deref();
        let mut synced: Vec<&str> = profile.iter().flatten().copied().collect();
        synced.extend(version);
        columns.extend(version.map(str::to_owned));
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
             RETURNING {id}",
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
            format!("SELECT {clerk_id}, {stored_version}, FALSE FROM {users} WHERE {clerk_id} IN "),
            format!(" UNION ALL SELECT clerk_id, NULL, TRUE FROM {tombstones} WHERE clerk_id IN "),
        );
        let checkpoints = "ensure_user_backfill_state";

        let p1 = param(1);
        let (p2, p3, p4) = (param(2), param(3), param(4));
        Self {
            id_kind: table.id_kind,
            profile_mapped: profile.map(|c| c.is_some()),
            versioned: version.is_some(),
            lookup: format!(
                "SELECT (SELECT {id} FROM {users} WHERE {clerk_id} = {p1}) AS id, \
                 EXISTS (SELECT 1 FROM {tombstones} WHERE clerk_id = {p1}) AS deleted"
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
            batch: BatchQueries {
                param,
                columns: columns.len(),
                upsert: batch_upsert,
                read: batch_read,
                tombstoned: format!("SELECT clerk_id FROM {tombstones} WHERE clerk_id IN "),
                load_checkpoint: format!(
                    "SELECT last_clerk_id, users_passed FROM {checkpoints} WHERE name = {p1}"
                ),
                save_checkpoint: format!(
                    "INSERT INTO {checkpoints} (name, last_clerk_id, users_passed, saved_at) \
                     VALUES ({p1}, {p2}, {p3}, {p4}) ON CONFLICT (name) DO UPDATE SET \
                     last_clerk_id = excluded.last_clerk_id, \
                     users_passed = excluded.users_passed, saved_at = excluded.saved_at"
                ),
                clear_checkpoint: format!("DELETE FROM {checkpoints} WHERE name = {p1}"),
            },
        }
    }

    /// Rows per batch statement for `users`: as many as keep the values
    /// bound to one statement within `max_bytes` (at most
    /// [`MAX_BATCH_ROWS`]), rounded down to a power of two so that few
    /// distinct statements get prepared.
    fn statement_rows(&self, users: &[ProfileUpdate], max_bytes: usize) -> usize {
        let widest = users
            .iter()
            .map(|user| self.bound_bytes(user))
            .max()
            .unwrap_or(1);
        let rows = (max_bytes / widest.max(1)).clamp(1, MAX_BATCH_ROWS);
        1 << rows.ilog2()
    }

    /// The size of one row's bound values on the wire, 4 length bytes each.
    fn bound_bytes(&self, user: &ProfileUpdate) -> usize {
        let id = if self.id_kind == IdKind::Uuid {
            4 + 16
        } else {
            0
        };
        let version = if self.versioned { 4 + 8 } else { 0 };
        let profile: usize = self
            .profile_values(&user.profile)
            .map(|value| 4 + value.map_or(0, str::len))
            .sum();
        id + 4 + user.clerk_id.len() + profile + version
    }

    fn profile_values<'p>(&self, profile: &'p Profile) -> impl Iterator<Item = Option<&'p str>> {
        profile
            .storable_fields()
            .into_iter()
            .zip(self.profile_mapped)
            .filter_map(|(value, mapped)| mapped.then_some(value))
    }
}

macro_rules! sql_store {
    (
        $(#[$doc:meta])*
        $store:ident, $db:ty, $param:literal, $statement_bytes:expr, $migration:expr
        $(, upgrade: $upgrade:path)?
    ) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $store {
            pool: sqlx::Pool<$db>,
            queries: Arc<Queries>,
        }

        impl $store {
            /// A store over `pool`, using the bundled table layout ([`UserTable::default`]).
            pub fn new(pool: sqlx::Pool<$db>) -> Self {
                Self::with_table(pool, &UserTable::default())
            }

            /// A store over `pool` for the app's own table layout.
            pub fn with_table(pool: sqlx::Pool<$db>, table: &UserTable) -> Self {
                let queries = Queries::new(table, |n| format!(concat!($param, "{}"), n));
                Self { pool, queries: Arc::new(queries) }
            }

            /// The connection pool.
            pub fn pool(&self) -> &sqlx::Pool<$db> {
                &self.pool
            }

            /// Creates the bundled `users`, `clerk_user_tombstones` and
            /// `ensure_user_backfill_state` tables if they do not exist. On
            /// SQLite, also rebuilds a `users` table made by version 0.1.0,
            /// once (see `SqliteUserStore`). Idempotent, and safe to run
            /// from several processes at once.
            pub async fn migrate(&self) -> Result<(), StoreError> {
                sqlx::raw_sql($migration).execute(&self.pool).await?;
                $($upgrade(&self.pool).await?;)?
                Ok(())
            }

            async fn lookup(&self, clerk_id: &str) -> Result<(Option<LocalId>, bool), sqlx::Error> {
                let row = sqlx::query(AssertSqlSafe(self.queries.lookup.clone()))
                    .bind(clerk_id)
                    .fetch_one(&self.pool)
                    .await?;
                Ok((self.decode_id(&row)?, row.try_get::<bool, _>(1)?))
            }

            async fn insert(&self, clerk_id: &str, profile: &Profile) -> Result<Option<LocalId>, sqlx::Error> {
                self.write(&self.queries.insert, clerk_id, profile, None).await
            }

            /// Runs the insert or the upsert: binds the new row's values in
            /// column order and returns the id of the row written, if any.
            async fn write(
                &self,
                sql: &Arc<str>,
                clerk_id: &str,
                profile: &Profile,
                version: Option<i64>,
            ) -> Result<Option<LocalId>, sqlx::Error> {
                let mut query = sqlx::query(AssertSqlSafe(sql.clone()));
                if self.queries.id_kind == IdKind::Uuid {
                    query = query.bind(Uuid::new_v4());
                }
                query = query.bind(clerk_id);
                for value in self.queries.profile_values(profile) {
                    query = query.bind(value);
                }
                if let Some(version) = version.filter(|_| self.queries.versioned) {
                    query = query.bind(version);
                }
                match query.fetch_optional(&self.pool).await? {
                    Some(row) => self.decode_id(&row),
                    None => Ok(None),
                }
            }

            async fn is_tombstoned(&self, clerk_id: &str) -> Result<bool, sqlx::Error> {
                sqlx::query_scalar(AssertSqlSafe(self.queries.tombstoned.clone()))
                    .bind(clerk_id)
                    .fetch_one(&self.pool)
                    .await
            }

            /// Deletes the user's row; returns whether there was one.
            async fn remove(&self, clerk_id: &str) -> Result<bool, sqlx::Error> {
                let done = sqlx::query(AssertSqlSafe(self.queries.remove.clone()))
                    .bind(clerk_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            /// Records the tombstone unless one exists, and announces the
            /// deletion in the same transaction; returns whether the tombstone is new.
            async fn tombstone(&self, clerk_id: &str, deleted_at_ms: i64) -> Result<bool, sqlx::Error> {
                let mut transaction = self.pool.begin().await?;
                let done = sqlx::query(AssertSqlSafe(self.queries.tombstone.clone()))
                    .bind(clerk_id)
                    .bind(deleted_at_ms)
                    .execute(&mut *transaction)
                    .await?;
                <$db as AnnounceDeletion>::announce(&mut *transaction, clerk_id).await?;
                transaction.commit().await?;
                Ok(done.rows_affected() > 0)
            }

            /// What is stored for `ids`, in one query.
            ///
            /// Planned anew each time (not a cached prepared statement): a
            /// plan cached while a fresh table was small would keep scanning
            /// the whole table as a backfill fills it.
            async fn read_batch(&self, ids: &[&str]) -> Result<HashMap<String, Stored>, sqlx::Error> {
                let sql = self.queries.batch.read(ids.len());
                let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(false);
                for id in ids {
                    query = query.bind(*id);
                }
                let mut stored: HashMap<String, Stored> = HashMap::with_capacity(ids.len());
                for row in query.fetch_all(&self.pool).await? {
                    let entry = stored.entry(row.try_get(0)?).or_default();
                    if row.try_get::<bool, _>(2)? {
                        entry.tombstoned = true;
                    } else {
                        entry.exists = true;
                        entry.version = row.try_get(1)?;
                    }
                }
                Ok(stored)
            }

            /// Upserts `users[i]` for each `i` in `rows`, in one statement;
            /// returns the ids of the rows written.
            async fn write_batch(
                &self,
                users: &[ProfileUpdate],
                rows: &[usize],
            ) -> Result<HashSet<String>, sqlx::Error> {
                let sql = self.queries.batch.upsert(rows.len());
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for user in rows.iter().map(|&index| &users[index]) {
                    if self.queries.id_kind == IdKind::Uuid {
                        query = query.bind(Uuid::new_v4());
                    }
                    query = query.bind(user.clerk_id.as_str());
                    for value in self.queries.profile_values(&user.profile) {
                        query = query.bind(value);
                    }
                    if self.queries.versioned {
                        query = query.bind(user.updated_at_ms);
                    }
                }
                query
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|row| row.try_get(0))
                    .collect()
            }

            /// Which of `ids` are tombstoned (planned anew, as `read_batch`).
            async fn tombstoned_among(&self, ids: &[&str]) -> Result<HashSet<String>, sqlx::Error> {
                let sql = self.queries.batch.tombstoned(ids.len());
                let mut query = sqlx::query_scalar(AssertSqlSafe(sql)).persistent(false);
                for id in ids {
                    query = query.bind(*id);
                }
                Ok(query.fetch_all(&self.pool).await?.into_iter().collect())
            }

            /// One chunk of [`BackfillStore::apply_batch`].
            async fn apply_chunk(&self, users: &[ProfileUpdate]) -> Result<Vec<BatchOutcome>, StoreError> {
                let ids: Vec<&str> = users.iter().map(|user| user.clerk_id.as_str()).collect();
                let stored = self.read_batch(&ids).await?;
                let (mut outcomes, rows) = plan(users, &stored, self.queries.versioned);
                if rows.is_empty() {
                    return Ok(outcomes);
                }
                let written = self.write_batch(users, &rows).await?;
                // As for a single upsert: a deletion may have committed its
                // tombstone while we wrote; those rows must not survive.
                let written_ids: Vec<&str> = written.iter().map(String::as_str).collect();
                let tombstoned = if written_ids.is_empty() {
                    HashSet::new()
                } else {
                    self.tombstoned_among(&written_ids).await?
                };
                for clerk_id in &tombstoned {
                    self.remove(clerk_id).await?;
                }
                for index in rows {
                    let clerk_id = &users[index].clerk_id;
                    if tombstoned.contains(clerk_id) {
                        outcomes[index] = BatchOutcome::Tombstoned;
                    } else if !written.contains(clerk_id) {
                        // Not written: either a tombstone kept the insert
                        // out, or a newer profile was stored in between.
                        let existed = stored.get(clerk_id).is_some_and(|s| s.exists);
                        outcomes[index] = if existed {
                            BatchOutcome::Unchanged
                        } else {
                            BatchOutcome::Tombstoned
                        };
                    }
                }
                Ok(outcomes)
            }

            fn decode_id(&self, row: &<$db as sqlx::Database>::Row) -> Result<Option<LocalId>, sqlx::Error> {
                Ok(match self.queries.id_kind {
                    IdKind::BigInt => row.try_get::<Option<i64>, _>(0)?.map(LocalId::Int),
                    IdKind::Uuid => row.try_get::<Option<Uuid>, _>(0)?.map(LocalId::Uuid),
                })
            }
        }

        impl UserStore for $store {
            async fn find_or_create(&self, clerk_id: &str, profile: &Profile) -> Result<Resolution, StoreError> {
                match self.lookup(clerk_id).await? {
                    (_, true) => return Ok(Resolution::Deleted),
                    (Some(id), false) => return Ok(Resolution::Existing(id)),
                    (None, false) => {}
                }
                let Some(id) = self.insert(clerk_id, profile).await? else {
                    return Ok(Resolution::Deleted);
                };
                // A deletion that committed its tombstone while we inserted may
                // have deleted rows before ours existed: undo ours.
                if self.is_tombstoned(clerk_id).await? {
                    self.remove(clerk_id).await?;
                    return Ok(Resolution::Deleted);
                }
                Ok(Resolution::Created(id))
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
        }

        impl UserSync for $store {
            async fn upsert_profile(
                &self,
                clerk_id: &str,
                profile: &Profile,
                updated_at_ms: i64,
            ) -> Result<SyncOutcome, StoreError> {
                let existing = match self.lookup(clerk_id).await? {
                    (_, true) => return Ok(SyncOutcome::Tombstoned),
                    (existing, false) => existing,
                };
                let written = self
                    .write(&self.queries.upsert, clerk_id, profile, Some(updated_at_ms))
                    .await?;
                // As in `find_or_create`: a deletion may have committed its
                // tombstone while we wrote; if so, the row must not survive.
                if self.is_tombstoned(clerk_id).await? {
                    if written.is_some() {
                        self.remove(clerk_id).await?;
                    }
                    return Ok(SyncOutcome::Tombstoned);
                }
                // Told apart by the read before the write: a row the layer
                // inserted in between is reported as created here.
                Ok(match (written, existing) {
                    (None, _) => SyncOutcome::Stale,
                    (Some(id), None) => SyncOutcome::Created(id),
                    (Some(id), Some(_)) => SyncOutcome::Updated(id),
                })
            }

            async fn delete_user(&self, clerk_id: &str, deleted_at_ms: i64) -> Result<SyncOutcome, StoreError> {
                // Two transactions, in this order: once the tombstone is
                // committed (and announced) no insert can keep a row, so the
                // delete is final.
                let new_tombstone = self.tombstone(clerk_id, deleted_at_ms).await?;
                let removed = self.remove(clerk_id).await?;
                Ok(match (removed, new_tombstone) {
                    (true, _) => SyncOutcome::Deleted,
                    (false, true) => SyncOutcome::NotFound,
                    (false, false) => SyncOutcome::Tombstoned,
                })
            }
        }

        impl BackfillStore for $store {
            async fn apply_batch(&self, users: &[ProfileUpdate]) -> Result<Vec<BatchOutcome>, StoreError> {
                let rows = self.queries.statement_rows(users, $statement_bytes);
                let mut outcomes = Vec::with_capacity(users.len());
                for chunk in users.chunks(rows) {
                    outcomes.extend(self.apply_chunk(chunk).await?);
                }
                Ok(outcomes)
            }

            async fn preview_batch(&self, users: &[ProfileUpdate]) -> Result<Vec<BatchOutcome>, StoreError> {
                let rows = self.queries.statement_rows(users, $statement_bytes);
                let mut outcomes = Vec::with_capacity(users.len());
                for chunk in users.chunks(rows) {
                    let ids: Vec<&str> = chunk.iter().map(|user| user.clerk_id.as_str()).collect();
                    let stored = self.read_batch(&ids).await?;
                    outcomes.extend(plan(chunk, &stored, self.queries.versioned).0);
                }
                Ok(outcomes)
            }

            async fn load_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
                let row: Option<(String, i64)> =
                    sqlx::query_as(AssertSqlSafe(self.queries.batch.load_checkpoint.clone()))
                        .bind(CHECKPOINT_NAME)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.map(|(last_clerk_id, passed)| {
                    Checkpoint::new(last_clerk_id, u64::try_from(passed).unwrap_or(0))
                }))
            }

            async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
                let now_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX));
                sqlx::query(AssertSqlSafe(self.queries.batch.save_checkpoint.clone()))
                    .bind(CHECKPOINT_NAME)
                    .bind(checkpoint.last_clerk_id.as_str())
                    .bind(i64::try_from(checkpoint.position).unwrap_or(i64::MAX))
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn clear_checkpoint(&self) -> Result<(), StoreError> {
                sqlx::query(AssertSqlSafe(self.queries.batch.clear_checkpoint.clone()))
                    .bind(CHECKPOINT_NAME)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }

        impl std::fmt::Debug for $store {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($store)).finish_non_exhaustive()
            }
        }
    };
}

#[cfg(feature = "postgres")]
sql_store! {
    /// Users in PostgreSQL.
    ///
    /// [`delete_user`](UserSync::delete_user) also publishes the Clerk id
    /// with `pg_notify`, in the transaction that records the tombstone, for
    /// other processes' layers to hear (see [`eviction`](crate::eviction)).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use ensure_user::store::PgUserStore;
    ///
    /// let pool = sqlx::postgres::PgPoolOptions::new()
    ///     .acquire_timeout(std::time::Duration::from_secs(2))
    ///     .connect("postgres://127.0.0.1/app").await?;
    /// let store = PgUserStore::new(pool);
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    PgUserStore, sqlx::Postgres, "$", PG_STATEMENT_BYTES,
    concat!(
        // Serialises concurrent migrations until the creating transaction commits.
        "SELECT pg_advisory_xact_lock(7408537265401231);\n",
        include_str!("../../migrations/postgres/0001_ensure_user.sql"),
        include_str!("../../migrations/postgres/0002_backfill_state.sql")
    )
}

#[cfg(feature = "sqlite")]
sql_store! {
    /// Users in SQLite: the embedded default.
    ///
    /// Deletions are not announced to other processes: there is nothing to
    /// listen to (see [`eviction`](crate::eviction)).
    ///
    /// Local ids are never reused: the bundled `users` table is
    /// `id INTEGER PRIMARY KEY AUTOINCREMENT`. Version 0.1.0 made it without
    /// `AUTOINCREMENT`, so the newest user's id, once deleted, went to the
    /// next new user. [`migrate`](Self::migrate) rebuilds such a table once
    /// (SQLite cannot alter it in place), keeping every row with its id, the
    /// references to it and the app's indexes and triggers on it, and
    /// starts its sequence at the highest id plus the number of tombstones,
    /// above every id a deletion by this crate freed. Rows the app deleted
    /// itself, leaving no tombstone, cannot be accounted for: their ids, if
    /// above the highest remaining one, may be handed out again. A `users`
    /// table with other columns than the bundled ones is left alone.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use ensure_user::store::SqliteUserStore;
    ///
    /// let pool = sqlx::sqlite::SqlitePoolOptions::new()
    ///     .connect("sqlite://app.db?mode=rwc").await?;
    /// let store = SqliteUserStore::new(pool);
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    // In-process: no socket, so a batch is one statement (up to MAX_BATCH_ROWS).
    SqliteUserStore, sqlx::Sqlite, "?", usize::MAX,
    concat!(
        include_str!("../../migrations/sqlite/0001_ensure_user.sql"),
        include_str!("../../migrations/sqlite/0002_backfill_state.sql")
    ),
    upgrade: super::sqlite_upgrade::upgrade_users_table
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
        // 4 + 6 (id) + 4 × 4 + image (profile) + 4 + 8 (version) = 38 + image.
        assert_eq!(queries.bound_bytes(&user(62)), 100);
        let rows = |image, max_bytes| queries.statement_rows(&[user(1), user(image)], max_bytes);
        assert_eq!(rows(62, 12 * 1024), 64, "122 rows fit, rounded down to 64");
        assert_eq!(rows(62, usize::MAX), 512, "capped, then rounded down");
        assert_eq!(
            rows(100_000, 12 * 1024),
            1,
            "one row even when it is over the limit"
        );
        assert_eq!(queries.statement_rows(&[], 12 * 1024), 512);
    }
}
