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

use std::sync::Arc;

use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

use super::{
    IdKind, Profile, Resolution, StoreError, SyncOutcome, UserStore, UserSync, UserTable,
    announce::AnnounceDeletion,
};
use crate::user::LocalId;

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

        let p1 = param(1);
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
                 ON CONFLICT (clerk_id) DO NOTHING",
                p2 = param(2)
            )
            .into(),
            remove: format!("DELETE FROM {users} WHERE {clerk_id} = {p1}").into(),
        }
    }

    fn profile_values<'p>(&self, profile: &'p Profile) -> impl Iterator<Item = Option<&'p str>> {
        let values = [
            profile.email.as_deref(),
            profile.first_name.as_deref(),
            profile.last_name.as_deref(),
            profile.image_url.as_deref(),
        ];
        values
            .into_iter()
            .zip(self.profile_mapped)
            .filter_map(|(value, mapped)| mapped.then_some(value))
    }
}

macro_rules! sql_store {
    (
        $(#[$doc:meta])*
        $store:ident, $db:ty, $param:literal, $migration:expr
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

            /// Creates the bundled `users` and `clerk_user_tombstones` tables if
            /// they do not exist. Idempotent, and safe to run from several
            /// processes at once.
            pub async fn migrate(&self) -> Result<(), StoreError> {
                sqlx::raw_sql($migration).execute(&self.pool).await?;
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
    PgUserStore, sqlx::Postgres, "$",
    concat!(
        // Serialises concurrent migrations until the creating transaction commits.
        "SELECT pg_advisory_xact_lock(7408537265401231);\n",
        include_str!("../../migrations/postgres/0001_ensure_user.sql")
    )
}

#[cfg(feature = "sqlite")]
sql_store! {
    /// Users in SQLite: the embedded default.
    ///
    /// Deletions are not announced to other processes: there is nothing to
    /// listen to (see [`eviction`](crate::eviction)).
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
    SqliteUserStore, sqlx::Sqlite, "?",
    include_str!("../../migrations/sqlite/0001_ensure_user.sql")
}
