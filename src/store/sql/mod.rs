//! The PostgreSQL and SQLite stores: one algorithm, written once over
//! [`Driver`], with one small file per backend for what differs (the
//! placeholders, the migrations, how a deletion is announced).
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
//! processes ([`Dialect::announce`]): PostgreSQL publishes it with
//! `pg_notify`, which is delivered on commit and never for a rollback.
//! Profile updates are not announced: caches hold a user's local id and
//! whether they are deleted, and an update changes neither — except a
//! change of the ban, which the upsert announces from a transaction that
//! reads the stored flag under a per-user lock. An ended session is
//! recorded and announced in one transaction.
//!
//! A batch ([`BackfillStore`]) reads what is stored for all its ids in one
//! query, then writes every row that needs it in one multi-row
//! `INSERT … ON CONFLICT DO UPDATE` (strictly newer versions only), then
//! re-checks the tombstones of the rows it wrote, as a single upsert does.
//! A backend bounds how many bytes of values one statement carries
//! ([`Dialect::STATEMENT_BYTES`]).

mod checked;
mod driver;
mod organization_batch;
mod organization_batch_queries;
mod organization_columns;
mod organization_queries;
mod organizations;
mod own_tables;
#[cfg(feature = "postgres")]
mod postgres;
mod queries;
mod schema;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
mod sqlite_upgrade;

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    sync::Arc,
};

pub(crate) use driver::Bind;
use driver::Driver;
pub(crate) use driver::Statement;
use organization_batch_queries::OrganizationBatchQueries;
use organization_columns::Tables;
use organization_queries::OrganizationQueries;
use own_tables::Spelling;
#[cfg(feature = "postgres")]
pub use postgres::PgUserStore;
use queries::Queries;
use schema::{Needs, TableName};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteUserStore;
use sqlx::Pool;

use super::{
    BackfillStore, BatchOutcome, Checkpoint, MembershipTable, OrganizationTable, Profile,
    ProfileUpdate, Resolution, StoreError, SyncOutcome, UserStore, UserSync, UserTable, Walk,
    batch::{Stored, plan},
};
use crate::{clock, eviction::Announcement, local_id::LocalId};

/// What differs between the databases the bundled store runs on: sealed,
/// implemented for `sqlx::Postgres` and `sqlx::Sqlite` only.
pub trait Dialect: Driver {
    /// Bytes of values one batch statement binds at most.
    #[doc(hidden)]
    const STATEMENT_BYTES: usize;

    /// The bundled migrations, idempotent.
    #[doc(hidden)]
    const MIGRATIONS: &'static str;

    /// The bundled migrations but the organizations' (`0003`), idempotent.
    #[doc(hidden)]
    const USER_MIGRATIONS: &'static str;

    /// The current time as the bundled `updated_at` columns hold it.
    #[doc(hidden)]
    const NOW: &'static str;

    /// How the crate's own tables are spelled, for a mapped store's migration.
    #[doc(hidden)]
    const SPELLING: Spelling;

    /// The names of the table's columns: no row when there is no such table.
    #[doc(hidden)]
    fn columns_of(table: &TableName) -> Statement<'_>;

    /// The table's unique constraints and unique indexes, neither partial
    /// nor on expressions: one row (its name, a column) per column of each.
    #[doc(hidden)]
    fn unique_keys_of(table: &TableName) -> Statement<'_>;

    /// The placeholder of the `n`-th value (from 1).
    #[doc(hidden)]
    fn placeholder(n: usize) -> String;

    /// A statement telling other processes what changed (a deletion, a
    /// membership's new role), run in the transaction that records it.
    #[doc(hidden)]
    fn announce(announcement: Announcement<'_>) -> Option<Statement<'static>>;

    /// Run first in a transaction that writes a user's ban and announces
    /// its change, so that such transactions for one user take turns and
    /// each reads the flag the previous one wrote; `None` on a backend that
    /// announces nothing (then the flag is written without reading it).
    #[doc(hidden)]
    fn serialize_ban_writes(clerk_id: &str) -> Option<Statement<'_>>;

    /// A statement telling other processes that `user` is (or is no
    /// longer) banned as of `version`, run in the transaction that writes it.
    #[doc(hidden)]
    fn announce_ban(user: &str, banned: bool, version: i64) -> Option<Statement<'static>>;

    /// A statement telling other processes that `session` ended, its tokens
    /// refused until `until_ms`, run in the transaction that records it.
    #[doc(hidden)]
    fn announce_session_end(session: &str, until_ms: i64) -> Option<Statement<'static>>;

    /// Brings tables made by an older version up to date, after the
    /// migrations ran.
    #[doc(hidden)]
    fn upgrade(pool: &Pool<Self>) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Users in a SQL database, through sqlx: `PgUserStore` or
/// `SqliteUserStore`, the same algorithm on either.
///
/// Cloning is cheap: clones share the pool.
pub struct SqlUserStore<DB: Dialect> {
    pool: Pool<DB>,
    tables: Arc<Tables>,
    queries: Arc<Queries>,
    organizations: Arc<OrganizationQueries>,
    organization_batches: Arc<OrganizationBatchQueries>,
    needs: Arc<Needs>,
    /// The migration of a mapped table's store; `None` for the bundled table.
    own_tables: Option<Arc<str>>,
}

impl<DB: Dialect> Clone for SqlUserStore<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            tables: Arc::clone(&self.tables),
            queries: Arc::clone(&self.queries),
            organizations: Arc::clone(&self.organizations),
            organization_batches: Arc::clone(&self.organization_batches),
            needs: Arc::clone(&self.needs),
            own_tables: self.own_tables.clone(),
        }
    }
}

impl<DB: Dialect> std::fmt::Debug for SqlUserStore<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlUserStore").finish_non_exhaustive()
    }
}

impl<DB: Dialect> SqlUserStore<DB> {
    /// A store over `pool`, using the bundled table layout ([`UserTable::default`]).
    pub fn new(pool: Pool<DB>) -> Self {
        Self::with_table(pool, &UserTable::default())
    }

    /// A store over `pool` for the app's own table layout.
    ///
    /// Organizations and memberships are kept in the crate's tables, whose
    /// memberships reference `table` (see the [module docs](crate::store)),
    /// or in the app's own
    /// ([`with_organization_tables`](Self::with_organization_tables)).
    /// [`migrate`](Self::migrate) creates the crate's tables only, and
    /// [`check_schema`](UserStore::check_schema) says what `table` lacks.
    pub fn with_table(pool: Pool<DB>, table: &UserTable) -> Self {
        Self::with_tables(
            pool,
            Tables {
                users: table.clone(),
                ..Tables::default()
            },
        )
    }

    /// The store on the app's own organizations and memberships tables,
    /// instead of the bundled `organizations` and
    /// `organization_memberships`; the users table stays as mapped.
    ///
    /// The statements read and write the mapped tables and columns, with
    /// the same guarantees (one row per organization and membership under
    /// any concurrency, the newest state wins, deletions leave tombstones
    /// in the crate's `clerk_organization_tombstones` and
    /// `clerk_membership_tombstones`). [`migrate`](Self::migrate) then
    /// never creates the two tables, and
    /// [`check_organization_schema`](crate::store::OrganizationStore::check_organization_schema)
    /// says what they lack.
    ///
    /// ```no_run
    /// use ensure_user::store::{IdKind, MembershipTable, OrganizationTable, PgUserStore, UserTable};
    ///
    /// # async fn run(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
    /// let accounts = UserTable::existing("accounts", "id", IdKind::Uuid, "clerk_user_id")?;
    /// let teams = OrganizationTable::existing("teams", "id", IdKind::Uuid, "clerk_org_id")?
    ///     .with_columns(Some("display_name"), None, None)?;
    /// let members = MembershipTable::existing(
    ///     "team_members", "id", IdKind::BigInt,
    ///     "team_id", "account_id", "role", "role_version",
    /// )?;
    /// let store = PgUserStore::with_table(pool, &accounts)
    ///     .with_organization_tables(&teams, &members);
    /// store.migrate().await?; // the crate's own tables only
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_organization_tables(
        self,
        organizations: &OrganizationTable,
        memberships: &MembershipTable,
    ) -> Self {
        Self::with_tables(
            self.pool,
            Tables {
                users: self.tables.users.clone(),
                organizations: organizations.clone(),
                memberships: memberships.clone(),
            },
        )
    }

    fn with_tables(pool: Pool<DB>, tables: Tables) -> Self {
        let mapped = tables.users != UserTable::default() || tables.organizations_mapped();
        let own_tables = mapped.then(|| own_tables::script(&tables, &DB::SPELLING).into());
        Self {
            needs: Arc::new(Needs::new(&tables)),
            own_tables,
            pool,
            queries: Arc::new(Queries::new(&tables.users, DB::placeholder)),
            organizations: Arc::new(OrganizationQueries::new(&tables, DB::placeholder, DB::NOW)),
            organization_batches: Arc::new(OrganizationBatchQueries::new(
                &tables,
                DB::placeholder,
                DB::NOW,
            )),
            tables: Arc::new(tables),
        }
    }

    /// The connection pool.
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// Whether the table records bans.
    pub(crate) fn records_bans(&self) -> bool {
        self.queries.banned_mapped
    }

    /// Creates the tables the store needs if they do not exist. Idempotent,
    /// and safe to run from several processes at once.
    ///
    /// On the bundled table ([`new`](Self::new)): `users`,
    /// `clerk_user_tombstones`, `ensure_user_backfill_state`,
    /// `organizations`, `organization_memberships`,
    /// `clerk_organization_tombstones`, `clerk_membership_tombstones` and
    /// `ensure_user_ended_sessions`, and `users.banned` if it is missing. On
    /// SQLite, also rebuilds a `users` table made by version 0.1.0, once
    /// (see `SqliteUserStore`).
    ///
    /// On the app's own table ([`with_table`](Self::with_table)): the same
    /// tables but `users`, which it never creates or changes — the
    /// tombstones under the mapped name, and `organization_memberships.user_id`
    /// of the mapped key's type, referencing the app's table (which must
    /// exist first). Columns the mapping names but the table lacks are
    /// reported by [`check_schema`](UserStore::check_schema).
    ///
    /// On the app's own organizations and memberships tables
    /// ([`with_organization_tables`](Self::with_organization_tables)):
    /// never `organizations` or `organization_memberships` either, only the
    /// crate's own tables beside them (their tombstones among them).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let users_mapped = self.tables.users != UserTable::default();
        match &self.own_tables {
            Some(script) if users_mapped => Ok(DB::run_script(&self.pool, script).await?),
            Some(script) => {
                // The bundled users table, the app's organizations tables.
                DB::run_script(&self.pool, DB::USER_MIGRATIONS).await?;
                DB::upgrade(&self.pool).await?;
                Ok(DB::run_script(&self.pool, script).await?)
            }
            None => {
                DB::run_script(&self.pool, DB::MIGRATIONS).await?;
                DB::upgrade(&self.pool).await
            }
        }
    }

    /// The user's local id, whether they are tombstoned, and whether their
    /// row records a ban.
    async fn lookup(&self, clerk_id: &str) -> Result<(Option<LocalId>, bool, bool), sqlx::Error> {
        let rows = DB::rows(&self.pool, self.queries.lookup(clerk_id)).await?;
        let row = one(&rows)?;
        Ok((
            DB::id(row, 0, self.queries.id_kind)?,
            DB::flag(row, 1)?,
            DB::flag(row, 2)?,
        ))
    }

    /// Runs an insert or upsert; the id of the row written, if any, and
    /// whether it records a ban.
    async fn write(
        &self,
        statement: Statement<'_>,
    ) -> Result<Option<(LocalId, bool)>, sqlx::Error> {
        let rows = DB::rows(&self.pool, statement).await?;
        self.written(&rows)
    }

    /// The id and ban of the row an insert or upsert returned, if any.
    fn written(&self, rows: &[DB::Row]) -> Result<Option<(LocalId, bool)>, sqlx::Error> {
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        match DB::id(row, 0, self.queries.id_kind)? {
            Some(id) => Ok(Some((id, DB::flag(row, 1)?))),
            None => Ok(None),
        }
    }

    /// The profile upsert; where the backend announces bans, in one
    /// transaction with the announcement. With a `banned` column the stored
    /// flag is read first and only a change of it is announced; without
    /// one nothing records the previous state, so every state written is
    /// announced (an unban included).
    async fn upsert(
        &self,
        clerk_id: &str,
        profile: &Profile,
        updated_at_ms: i64,
    ) -> Result<Option<(LocalId, bool)>, sqlx::Error> {
        let upsert = self.queries.upsert(clerk_id, profile, updated_at_ms);
        let Some(announce) = DB::announce_ban(clerk_id, profile.banned, updated_at_ms) else {
            return self.write(upsert).await;
        };
        let mut transaction = DB::begin(&self.pool).await?;
        let was_banned =
            match DB::serialize_ban_writes(clerk_id).filter(|_| self.queries.banned_mapped) {
                Some(serialize) => {
                    DB::execute_in(&mut transaction, serialize).await?;
                    let stored =
                        DB::rows_in(&mut transaction, self.queries.banned_of(clerk_id)).await?;
                    // No row yet: not banned, as a new row would be.
                    Some(match stored.first() {
                        Some(row) => DB::flag(row, 0)?,
                        None => false,
                    })
                }
                None => None,
            };
        let rows = DB::rows_in(&mut transaction, upsert).await?;
        let written = self.written(&rows)?;
        // A row that changed its flag wrote the profile's.
        let changed = match (written, was_banned) {
            (None, _) => false,
            (Some((_, banned)), Some(was_banned)) => banned != was_banned,
            (Some(_), None) => true,
        };
        if changed {
            DB::execute_in(&mut transaction, announce).await?;
        }
        transaction.commit().await?;
        Ok(written)
    }

    async fn is_tombstoned(&self, clerk_id: &str) -> Result<bool, sqlx::Error> {
        let rows = DB::rows(&self.pool, self.queries.tombstoned(clerk_id)).await?;
        DB::flag(one(&rows)?, 0)
    }

    /// Deletes the user's row (after their memberships, in the app's own
    /// memberships table); returns whether there was one.
    async fn remove(&self, clerk_id: &str) -> Result<bool, sqlx::Error> {
        let remove = self.queries.remove(clerk_id);
        let Some(memberships) = self.organizations.user_memberships_remove(clerk_id) else {
            return Ok(DB::execute(&self.pool, remove).await? > 0);
        };
        let changed = DB::execute_together(&self.pool, vec![memberships, remove]).await?;
        Ok(changed.last().is_some_and(|&rows| rows > 0))
    }

    /// Records the tombstone unless one exists, and announces the deletion
    /// in the same transaction; returns whether the tombstone is new.
    async fn tombstone(&self, clerk_id: &str, deleted_at_ms: i64) -> Result<bool, sqlx::Error> {
        let mut statements = vec![self.queries.tombstone(clerk_id, deleted_at_ms)];
        statements.extend(DB::announce(Announcement::User(clerk_id)));
        let changed = DB::execute_together(&self.pool, statements).await?;
        Ok(changed.first().is_some_and(|&rows| rows > 0))
    }

    /// What is stored for `ids`, in one query.
    async fn read_batch(&self, ids: &[&str]) -> Result<HashMap<String, Stored>, sqlx::Error> {
        let rows = DB::rows(&self.pool, self.queries.read_batch(ids)).await?;
        let mut stored: HashMap<String, Stored> = HashMap::with_capacity(ids.len());
        for row in &rows {
            let entry = stored.entry(DB::text(row, 0)?).or_default();
            if DB::flag(row, 2)? {
                entry.tombstoned = true;
            } else {
                entry.exists = true;
                entry.version = DB::maybe_int(row, 1)?;
                entry.banned = DB::flag(row, 3)?;
            }
        }
        Ok(stored)
    }

    /// The Clerk ids of the rows a statement returned.
    async fn clerk_ids(&self, statement: Statement<'_>) -> Result<HashSet<String>, sqlx::Error> {
        let rows = DB::rows(&self.pool, statement).await?;
        rows.iter().map(|row| DB::text(row, 0)).collect()
    }

    /// One chunk of [`BackfillStore::apply_batch`].
    async fn apply_chunk(&self, users: &[ProfileUpdate]) -> Result<Vec<BatchOutcome>, StoreError> {
        let ids: Vec<&str> = users.iter().map(|user| user.clerk_id.as_str()).collect();
        let stored = self.read_batch(&ids).await?;
        let (mut outcomes, rows) = plan(users, &stored, self.queries.versioned);
        if rows.is_empty() {
            return Ok(outcomes);
        }
        let written = self
            .clerk_ids(self.queries.write_batch(users, &rows))
            .await?;
        // As for a single upsert: a deletion may have committed its
        // tombstone while we wrote; those rows must not survive.
        let written_ids: Vec<&str> = written.iter().map(String::as_str).collect();
        let tombstoned = if written_ids.is_empty() {
            HashSet::new()
        } else {
            self.clerk_ids(self.queries.tombstoned_among(&written_ids))
                .await?
        };
        for clerk_id in &tombstoned {
            self.remove(clerk_id).await?;
        }
        let mut announcements = Vec::new();
        for index in rows {
            let clerk_id = &users[index].clerk_id;
            if tombstoned.contains(clerk_id) {
                outcomes[index] = BatchOutcome::Tombstoned;
            } else if written.contains(clerk_id) {
                let user = &users[index];
                let was_banned = stored.get(clerk_id).is_some_and(|s| s.banned);
                // Without a `banned` column only bans are announced: a
                // backfill's every unbanned user would be a notification.
                let changed = if self.queries.banned_mapped {
                    user.profile.banned != was_banned
                } else {
                    user.profile.banned
                };
                if changed {
                    announcements.extend(DB::announce_ban(
                        clerk_id,
                        user.profile.banned,
                        user.updated_at_ms,
                    ));
                }
            } else {
                // Not written: either a tombstone kept the insert out, or a
                // newer profile was stored in between.
                let existed = stored.get(clerk_id).is_some_and(|s| s.exists);
                outcomes[index] = if existed {
                    BatchOutcome::Unchanged
                } else {
                    BatchOutcome::Tombstoned
                };
            }
        }
        // After the write committed: a ban the batch changed is heard by
        // the other instances as a webhook's is (the stored flag was read
        // before the write, so a change racing the batch may go unheard).
        if !announcements.is_empty() {
            DB::execute_together(&self.pool, announcements).await?;
        }
        Ok(outcomes)
    }
}

impl<DB: Dialect> SqlUserStore<DB> {
    /// The checkpoint saved under the walk's name.
    async fn load_named_checkpoint(&self, walk: Walk) -> Result<Option<Checkpoint>, StoreError> {
        let statement = self.queries.load_checkpoint(walk.name());
        let rows = DB::rows(&self.pool, statement).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let passed = u64::try_from(DB::int(row, 1)?).unwrap_or(0);
        Ok(Some(Checkpoint::new(DB::text(row, 0)?, passed)))
    }

    async fn save_named_checkpoint(
        &self,
        walk: Walk,
        checkpoint: &Checkpoint,
    ) -> Result<(), StoreError> {
        let now_ms = clock::now_ms();
        let passed = i64::try_from(checkpoint.position).unwrap_or(i64::MAX);
        let statement =
            self.queries
                .save_checkpoint(walk.name(), &checkpoint.last_clerk_id, passed, now_ms);
        DB::execute(&self.pool, statement).await?;
        Ok(())
    }

    async fn clear_named_checkpoint(&self, walk: Walk) -> Result<(), StoreError> {
        DB::execute(&self.pool, self.queries.clear_checkpoint(walk.name())).await?;
        Ok(())
    }
}

/// The one row a statement returns.
fn one<R>(rows: &[R]) -> Result<&R, sqlx::Error> {
    rows.first().ok_or(sqlx::Error::RowNotFound)
}

impl<DB: Dialect> UserStore for SqlUserStore<DB> {
    async fn find_or_create(
        &self,
        clerk_id: &str,
        profile: &Profile,
    ) -> Result<Resolution, StoreError> {
        match self.lookup(clerk_id).await? {
            (_, true, _) => return Ok(Resolution::Deleted),
            (Some(id), false, true) => return Ok(Resolution::Banned(id)),
            (Some(id), false, false) => return Ok(Resolution::Existing(id)),
            (None, false, _) => {}
        }
        let Some((id, banned)) = self.write(self.queries.insert(clerk_id, profile)).await? else {
            return Ok(Resolution::Deleted);
        };
        // A deletion that committed its tombstone while we inserted may have
        // deleted rows before ours existed: undo ours.
        if self.is_tombstoned(clerk_id).await? {
            self.remove(clerk_id).await?;
            return Ok(Resolution::Deleted);
        }
        // A webhook may have written the row, banned, since the lookup.
        Ok(if banned {
            Resolution::Banned(id)
        } else {
            Resolution::Created(id)
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        DB::rows(&self.pool, Statement::new("SELECT 1")).await?;
        Ok(())
    }

    /// Checks the users table as mapped (its key, Clerk id, profile,
    /// version and ban columns, and the unique constraint on the Clerk id),
    /// `clerk_user_tombstones` and `ensure_user_ended_sessions`.
    async fn check_schema(&self) -> Result<(), StoreError> {
        self.needs.check_users(&self.pool).await
    }
}

impl<DB: Dialect> UserSync for SqlUserStore<DB> {
    async fn upsert_profile(
        &self,
        clerk_id: &str,
        profile: &Profile,
        updated_at_ms: i64,
    ) -> Result<SyncOutcome, StoreError> {
        let existing = match self.lookup(clerk_id).await? {
            (_, true, _) => return Ok(SyncOutcome::Tombstoned),
            (existing, false, _) => existing,
        };
        let written = self
            .upsert(clerk_id, profile, updated_at_ms)
            .await?
            .map(|(id, _)| id);
        // As in `find_or_create`: a deletion may have committed its
        // tombstone while we wrote; if so, the row must not survive.
        if self.is_tombstoned(clerk_id).await? {
            if written.is_some() {
                self.remove(clerk_id).await?;
            }
            return Ok(SyncOutcome::Tombstoned);
        }
        // Told apart by the read before the write: a row the layer inserted
        // in between is reported as created here.
        Ok(match (written, existing) {
            (None, _) => SyncOutcome::Stale,
            (Some(id), None) => SyncOutcome::Created(id),
            (Some(id), Some(_)) => SyncOutcome::Updated(id),
        })
    }

    async fn delete_user(
        &self,
        clerk_id: &str,
        deleted_at_ms: i64,
    ) -> Result<SyncOutcome, StoreError> {
        // Two transactions, in this order: once the tombstone is committed
        // (and announced) no insert can keep a row, so the delete is final.
        let new_tombstone = self.tombstone(clerk_id, deleted_at_ms).await?;
        let removed = self.remove(clerk_id).await?;
        Ok(match (removed, new_tombstone) {
            (true, _) => SyncOutcome::Deleted,
            (false, true) => SyncOutcome::NotFound,
            (false, false) => SyncOutcome::Tombstoned,
        })
    }

    async fn end_session(
        &self,
        session: &str,
        clerk_id: &str,
        until_ms: i64,
    ) -> Result<SyncOutcome, StoreError> {
        let mut statements = vec![
            self.queries.prune_ended_sessions(clock::now_ms()),
            self.queries.end_session(session, clerk_id, until_ms),
        ];
        statements.extend(DB::announce_session_end(session, until_ms));
        DB::execute_together(&self.pool, statements).await?;
        Ok(SyncOutcome::Ended)
    }
}

impl<DB: Dialect> BackfillStore for SqlUserStore<DB> {
    async fn apply_batch(&self, users: &[ProfileUpdate]) -> Result<Vec<BatchOutcome>, StoreError> {
        let rows = self.queries.statement_rows(users, DB::STATEMENT_BYTES);
        let mut outcomes = Vec::with_capacity(users.len());
        for chunk in users.chunks(rows) {
            outcomes.extend(self.apply_chunk(chunk).await?);
        }
        Ok(outcomes)
    }

    async fn preview_batch(
        &self,
        users: &[ProfileUpdate],
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        let rows = self.queries.statement_rows(users, DB::STATEMENT_BYTES);
        let mut outcomes = Vec::with_capacity(users.len());
        for chunk in users.chunks(rows) {
            let ids: Vec<&str> = chunk.iter().map(|user| user.clerk_id.as_str()).collect();
            let stored = self.read_batch(&ids).await?;
            outcomes.extend(plan(chunk, &stored, self.queries.versioned).0);
        }
        Ok(outcomes)
    }

    async fn load_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.load_named_checkpoint(Walk::Users).await
    }

    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        self.save_named_checkpoint(Walk::Users, checkpoint).await
    }

    async fn clear_checkpoint(&self) -> Result<(), StoreError> {
        self.clear_named_checkpoint(Walk::Users).await
    }
}
