//! On both stores: the [`Backend`] a scenario runs on, [`Store`] (one of the
//! bundled stores, with its pool, and the raw SQL the tests look and poke
//! with), and [`on_both_stores!`], which runs an `async fn(Backend)` once
//! on PostgreSQL and once on SQLite. It is the one way a test runs a
//! scenario on both stores; a scenario that needs the bundled store's own
//! type (an eviction source, say) matches on the [`Store`] it made.

use ensure_user::{
    clerk::{ClerkMembership, ClerkOrganization},
    store::{
        BackfillStore, BatchOutcome, Checkpoint, IdKind, MembershipClaim, MembershipResolution,
        OrganizationBackfillStore, OrganizationResolution, OrganizationStore, OrganizationSync,
        PgUserStore, Profile, ProfileUpdate, Resolution, SqliteUserStore, StoreError, SyncOutcome,
        UserStore, UserSync, UserTable, Walk,
    },
};
use sqlx::{PgPool, postgres::PgPoolOptions, sqlite::SqlitePoolOptions};

use super::{postgres_store, sqlite_store};

/// Runs each listed `async fn(Backend)` as two tests, `<name>::postgres`
/// and `<name>::sqlite`, each on a multi-threaded runtime of two workers,
/// or of as many as a leading `worker_threads = N;` asks for:
///
/// ```ignore
/// on_both_stores!(a_scenario, another_scenario);
/// on_both_stores!(worker_threads = 4; a_concurrent_scenario);
/// ```
#[allow(unused_macros)]
macro_rules! on_both_stores {
    (worker_threads = $workers:tt; $($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = $workers)]
            async fn postgres() {
                super::$scenario($crate::common::Backend::Postgres).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = $workers)]
            async fn sqlite() {
                super::$scenario($crate::common::Backend::Sqlite).await;
            }
        }
    )*};
    ($($scenario:ident),* $(,)?) => {
        $crate::common::on_both_stores!(worker_threads = 2; $($scenario),*);
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_stores;

/// The database a scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A user row of the bundled table: clerk id, email, first and last name,
/// image URL, version.
pub type Row = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// A user's profile as stored: email, first and last name, image URL, version.
pub type ProfileRow = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// One of the bundled stores, behind one type: it is a [`UserStore`],
/// [`UserSync`], [`BackfillStore`], [`OrganizationStore`],
/// [`OrganizationSync`] and [`OrganizationBackfillStore`] as the store
/// inside is, each method handed to it. The raw SQL helpers read and write
/// the bundled tables through the store's pool.
#[derive(Clone, Debug)]
pub enum Store {
    Postgres(PgUserStore),
    Sqlite(SqliteUserStore),
}

/// `$body` with `$store` bound to the store inside `$self`, whichever it is.
macro_rules! either {
    ($self:expr, $store:ident => $body:expr) => {
        match $self {
            Store::Postgres($store) => $body,
            Store::Sqlite($store) => $body,
        }
    };
}

const ROWS: &str = "SELECT clerk_id, email, first_name, last_name, image_url, clerk_updated_at \
                    FROM users ORDER BY clerk_id";

const DUMP_USERS: &str = "SELECT CAST(id AS TEXT) || '|' || clerk_id || '|' || COALESCE(email, '-') \
    || '|' || COALESCE(first_name, '-') || '|' || COALESCE(last_name, '-') \
    || '|' || COALESCE(image_url, '-') || '|' || COALESCE(CAST(clerk_updated_at AS TEXT), '-') \
    || '|' || CAST(created_at AS TEXT) || '|' || CAST(updated_at AS TEXT) \
    FROM users ORDER BY clerk_id";

const DUMP_TOMBSTONES: &str = "SELECT clerk_id || '|' || CAST(deleted_at AS TEXT) \
    FROM clerk_user_tombstones ORDER BY clerk_id";

/// Every insert of a `user_race…` row also records its tombstone.
const RACE_POSTGRES: &str = "
    CREATE FUNCTION tombstone_race() RETURNS trigger AS $$
        BEGIN
            INSERT INTO clerk_user_tombstones VALUES (NEW.clerk_id, 0) ON CONFLICT DO NOTHING;
            RETURN NULL;
        END $$ LANGUAGE plpgsql;
    CREATE TRIGGER users_race AFTER INSERT ON users FOR EACH ROW
        WHEN (NEW.clerk_id LIKE 'user_race%') EXECUTE FUNCTION tombstone_race();";

const RACE_SQLITE: &str = "
    CREATE TRIGGER users_race AFTER INSERT ON users WHEN NEW.clerk_id LIKE 'user_race%'
    BEGIN INSERT OR IGNORE INTO clerk_user_tombstones VALUES (NEW.clerk_id, 0); END;";

impl Store {
    /// A store with the bundled tables, on a fresh schema or file.
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Postgres => Self::Postgres(postgres_store().await),
            Backend::Sqlite => Self::Sqlite(sqlite_store().await),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Postgres(_) => Backend::Postgres,
            Self::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// A store for the bundled tables on a new pool of `max_connections` to
    /// the same database, as another process would have.
    pub async fn reopen(&self, max_connections: u32) -> Self {
        match self {
            Self::Postgres(store) => Self::Postgres(PgUserStore::new(
                PgPoolOptions::new()
                    .max_connections(max_connections)
                    .connect_with(store.pool().connect_options().as_ref().clone())
                    .await
                    .unwrap(),
            )),
            Self::Sqlite(store) => Self::Sqlite(SqliteUserStore::new(
                SqlitePoolOptions::new()
                    .max_connections(max_connections)
                    .connect_with(store.pool().connect_options().as_ref().clone())
                    .await
                    .unwrap(),
            )),
        }
    }

    /// A second, small pool on the same database, for looking while the
    /// store's own pool is busy or closed.
    pub async fn observer(&self) -> Self {
        self.reopen(match self.backend() {
            Backend::Postgres => 2,
            Backend::Sqlite => 1,
        })
        .await
    }

    /// A store on an app's own table, created here beside the bundled
    /// ones: `accounts`, UUID keys in `account_id`, the Clerk id in
    /// `clerk_user_id`, one profile column (`mail`), and no version or ban
    /// column.
    pub async fn with_accounts_table(&self) -> Self {
        let id_type = match self.backend() {
            Backend::Postgres => "UUID",
            Backend::Sqlite => "BLOB",
        };
        self.execute(&format!(
            "CREATE TABLE accounts (account_id {id_type} PRIMARY KEY, \
             clerk_user_id TEXT NOT NULL UNIQUE, mail TEXT)"
        ))
        .await;
        let table = UserTable::new("accounts")
            .unwrap()
            .with_id_column("account_id", IdKind::Uuid)
            .unwrap()
            .with_clerk_id_column("clerk_user_id")
            .unwrap()
            .with_profile_columns(Some("mail"), None, None, None)
            .unwrap()
            .with_clerk_updated_at_column(None)
            .unwrap()
            .with_banned_column(None)
            .unwrap();
        match self {
            Self::Postgres(store) => {
                Self::Postgres(PgUserStore::with_table(store.pool().clone(), &table))
            }
            Self::Sqlite(store) => {
                Self::Sqlite(SqliteUserStore::with_table(store.pool().clone(), &table))
            }
        }
    }

    /// Runs the bundled migrations again.
    pub async fn migrate(&self) {
        either!(self, store => store.migrate().await.unwrap());
    }

    /// The PostgreSQL pool inside; panics on SQLite.
    pub fn postgres_pool(&self) -> &PgPool {
        match self {
            Self::Postgres(store) => store.pool(),
            Self::Sqlite(_) => panic!("a PostgreSQL store was needed"),
        }
    }

    /// Closes the pool: every later call fails.
    pub async fn close(&self) {
        either!(self, store => store.pool().close().await);
    }

    /// Runs `sql`, one statement or several.
    pub async fn execute(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        either!(self, store => drop(sqlx::raw_sql(sql).execute(store.pool()).await.unwrap()));
    }

    /// The one number `sql` selects.
    pub async fn number(&self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        either!(self, store => sqlx::query_scalar(sql).fetch_one(store.pool()).await.unwrap())
    }

    /// Every user row, by clerk id.
    pub async fn rows(&self) -> Vec<Row> {
        either!(self, store => sqlx::query_as(ROWS).fetch_all(store.pool()).await.unwrap())
    }

    /// How many rows `clerk_id` has.
    pub async fn rows_of(&self, clerk_id: &str) -> usize {
        let rows = self.rows().await;
        rows.iter().filter(|row| row.0 == clerk_id).count()
    }

    /// The profile stored for `clerk_id`: email, first and last name, image
    /// URL, version.
    pub async fn profile(&self, clerk_id: &str) -> Option<ProfileRow> {
        let rows = self.rows().await;
        rows.into_iter()
            .find(|row| row.0 == clerk_id)
            .map(|(_, email, first, last, image, version)| (email, first, last, image, version))
    }

    /// Every row of the users and tombstones tables, every column, as text.
    pub async fn dump(&self) -> Vec<String> {
        let mut rows = Vec::new();
        for (name, sql) in [("users", DUMP_USERS), ("tombstones", DUMP_TOMBSTONES)] {
            let table: Vec<String> =
                either!(self, store => sqlx::query_scalar(sql).fetch_all(store.pool()).await)
                    .unwrap();
            rows.extend(table.into_iter().map(|row| format!("{name}: {row}")));
        }
        rows
    }

    /// Records a tombstone for `clerk_id`, as a deletion would, without
    /// touching its row.
    pub async fn tombstone(&self, clerk_id: &str) {
        assert!(!clerk_id.contains('\''));
        self.execute(&format!(
            "INSERT INTO clerk_user_tombstones (clerk_id, deleted_at) VALUES ('{clerk_id}', 1)"
        ))
        .await;
    }

    pub async fn tombstoned(&self, clerk_id: &str) -> bool {
        self.dump()
            .await
            .iter()
            .any(|row| row.starts_with(&format!("tombstones: {clerk_id}|")))
    }

    /// Makes every insert of a `user_race…` row also record its tombstone,
    /// as a deletion committing between the insert's guard and its write would.
    pub async fn tombstone_on_insert(&self) {
        self.execute(match self.backend() {
            Backend::Postgres => RACE_POSTGRES,
            Backend::Sqlite => RACE_SQLITE,
        })
        .await;
    }
}

impl UserStore for Store {
    async fn find_or_create(
        &self,
        clerk_id: &str,
        profile: &Profile,
    ) -> Result<Resolution, StoreError> {
        either!(self, store => store.find_or_create(clerk_id, profile).await)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        either!(self, store => store.ping().await)
    }
}

impl UserSync for Store {
    async fn upsert_profile(
        &self,
        clerk_id: &str,
        profile: &Profile,
        updated_at_ms: i64,
    ) -> Result<SyncOutcome, StoreError> {
        either!(self, store => store.upsert_profile(clerk_id, profile, updated_at_ms).await)
    }

    async fn delete_user(
        &self,
        clerk_id: &str,
        deleted_at_ms: i64,
    ) -> Result<SyncOutcome, StoreError> {
        either!(self, store => store.delete_user(clerk_id, deleted_at_ms).await)
    }

    async fn end_session(
        &self,
        session: &str,
        clerk_id: &str,
        until_ms: i64,
    ) -> Result<SyncOutcome, StoreError> {
        either!(self, store => store.end_session(session, clerk_id, until_ms).await)
    }
}

impl OrganizationStore for Store {
    async fn find_or_create_organization(
        &self,
        clerk_id: &str,
        slug: Option<&str>,
    ) -> Result<OrganizationResolution, StoreError> {
        either!(self, store => store.find_or_create_organization(clerk_id, slug).await)
    }

    async fn ensure_membership(
        &self,
        claim: &MembershipClaim<'_>,
    ) -> Result<MembershipResolution, StoreError> {
        either!(self, store => store.ensure_membership(claim).await)
    }
}

impl OrganizationSync for Store {
    async fn upsert_organization(
        &self,
        organization: &ClerkOrganization,
    ) -> Result<SyncOutcome, StoreError> {
        either!(self, store => store.upsert_organization(organization).await)
    }

    async fn delete_organization(
        &self,
        clerk_id: &str,
        deleted_at_ms: i64,
    ) -> Result<SyncOutcome, StoreError> {
        either!(self, store => store.delete_organization(clerk_id, deleted_at_ms).await)
    }

    async fn upsert_membership(
        &self,
        membership: &ClerkMembership,
    ) -> Result<SyncOutcome, StoreError> {
        either!(self, store => store.upsert_membership(membership).await)
    }

    async fn delete_membership(
        &self,
        organization_clerk_id: &str,
        user_clerk_id: &str,
        deleted_at_ms: i64,
    ) -> Result<SyncOutcome, StoreError> {
        either!(self, store => {
            store
                .delete_membership(organization_clerk_id, user_clerk_id, deleted_at_ms)
                .await
        })
    }
}

impl BackfillStore for Store {
    async fn apply_batch(&self, users: &[ProfileUpdate]) -> Result<Vec<BatchOutcome>, StoreError> {
        either!(self, store => store.apply_batch(users).await)
    }

    async fn preview_batch(
        &self,
        users: &[ProfileUpdate],
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        either!(self, store => store.preview_batch(users).await)
    }

    async fn load_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        either!(self, store => store.load_checkpoint().await)
    }

    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        either!(self, store => store.save_checkpoint(checkpoint).await)
    }

    async fn clear_checkpoint(&self) -> Result<(), StoreError> {
        either!(self, store => store.clear_checkpoint().await)
    }
}

impl OrganizationBackfillStore for Store {
    async fn apply_organizations(
        &self,
        organizations: &[ClerkOrganization],
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        either!(self, store => store.apply_organizations(organizations).await)
    }

    async fn preview_organizations(
        &self,
        organizations: &[ClerkOrganization],
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        either!(self, store => store.preview_organizations(organizations).await)
    }

    async fn apply_memberships(
        &self,
        memberships: &[ClerkMembership],
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        either!(self, store => store.apply_memberships(memberships).await)
    }

    async fn preview_memberships(
        &self,
        memberships: &[ClerkMembership],
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        either!(self, store => store.preview_memberships(memberships).await)
    }

    async fn load_walk_checkpoint(&self, walk: Walk) -> Result<Option<Checkpoint>, StoreError> {
        either!(self, store => store.load_walk_checkpoint(walk).await)
    }

    async fn save_walk_checkpoint(
        &self,
        walk: Walk,
        checkpoint: &Checkpoint,
    ) -> Result<(), StoreError> {
        either!(self, store => store.save_walk_checkpoint(walk, checkpoint).await)
    }

    async fn clear_walk_checkpoint(&self, walk: Walk) -> Result<(), StoreError> {
        either!(self, store => store.clear_walk_checkpoint(walk).await)
    }
}
