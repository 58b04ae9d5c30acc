//! Batched syncs and the backfill end to end, on real PostgreSQL and SQLite.

mod common;

use common::*;
use ensure_user::{
    store::{
        BackfillStore, BatchOutcome, Checkpoint, IdKind, PgUserStore, Profile, ProfileUpdate,
        SqliteUserStore, StoreError, UserSync, UserTable,
    },
    testing::random_id,
};

#[derive(Clone, Copy, Debug)]
enum Backend {
    Postgres,
    Sqlite,
}

/// Runs each listed `async fn(Backend)` as one test per backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Backend::Postgres).await
            })*
        }
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Backend::Sqlite).await
            })*
        }
    };
}

on_both_backends!(
    batches_follow_versions_and_tombstones,
    batch_respects_a_tombstone_committed_during_the_write,
    batches_on_a_mapped_uuid_table,
    preview_writes_nothing,
    checkpoints_round_trip,
);

/// One of the bundled stores, behind one type.
#[derive(Clone)]
enum Store {
    Pg(PgUserStore),
    Lite(SqliteUserStore),
}

/// A user row: clerk id, email, first and last name, image URL, version.
type Row = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

const ROWS: &str = "SELECT clerk_id, email, first_name, last_name, image_url, clerk_updated_at \
                    FROM users ORDER BY clerk_id";

impl Store {
    async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Postgres => Self::Pg(postgres_store().await),
            Backend::Sqlite => Self::Lite(sqlite_store().await),
        }
    }

    async fn rows(&self) -> Vec<Row> {
        match self {
            Self::Pg(store) => sqlx::query_as(ROWS).fetch_all(store.pool()).await,
            Self::Lite(store) => sqlx::query_as(ROWS).fetch_all(store.pool()).await,
        }
        .unwrap()
    }

    async fn execute(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Self::Pg(store) => drop(sqlx::raw_sql(sql).execute(store.pool()).await.unwrap()),
            Self::Lite(store) => drop(sqlx::raw_sql(sql).execute(store.pool()).await.unwrap()),
        }
    }

    async fn tombstone(&self, clerk_id: &str) {
        assert!(!clerk_id.contains('\''));
        self.execute(&format!(
            "INSERT INTO clerk_user_tombstones (clerk_id, deleted_at) VALUES ('{clerk_id}', 1)"
        ))
        .await;
    }

    /// Makes every insert of a `user_race…` row also record its tombstone,
    /// as a deletion committing between the insert's guard and its write would.
    async fn tombstone_on_insert(&self) {
        self.execute(match self {
            Self::Pg(_) => {
                "CREATE FUNCTION tombstone_race() RETURNS trigger AS $$
                    BEGIN
                        INSERT INTO clerk_user_tombstones VALUES (NEW.clerk_id, 0)
                            ON CONFLICT DO NOTHING;
                        RETURN NULL;
                    END $$ LANGUAGE plpgsql;
                 CREATE TRIGGER users_race AFTER INSERT ON users FOR EACH ROW
                    WHEN (NEW.clerk_id LIKE 'user_race%') EXECUTE FUNCTION tombstone_race();"
            }
            Self::Lite(_) => {
                "CREATE TRIGGER users_race AFTER INSERT ON users
                    WHEN NEW.clerk_id LIKE 'user_race%'
                 BEGIN INSERT OR IGNORE INTO clerk_user_tombstones VALUES (NEW.clerk_id, 0); END;"
            }
        })
        .await;
    }
}

impl BackfillStore for Store {
    async fn apply_batch(&self, users: &[ProfileUpdate]) -> Result<Vec<BatchOutcome>, StoreError> {
        match self {
            Self::Pg(store) => store.apply_batch(users).await,
            Self::Lite(store) => store.apply_batch(users).await,
        }
    }

    async fn preview_batch(
        &self,
        users: &[ProfileUpdate],
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        match self {
            Self::Pg(store) => store.preview_batch(users).await,
            Self::Lite(store) => store.preview_batch(users).await,
        }
    }

    async fn load_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        match self {
            Self::Pg(store) => store.load_checkpoint().await,
            Self::Lite(store) => store.load_checkpoint().await,
        }
    }

    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        match self {
            Self::Pg(store) => store.save_checkpoint(checkpoint).await,
            Self::Lite(store) => store.save_checkpoint(checkpoint).await,
        }
    }

    async fn clear_checkpoint(&self) -> Result<(), StoreError> {
        match self {
            Self::Pg(store) => store.clear_checkpoint().await,
            Self::Lite(store) => store.clear_checkpoint().await,
        }
    }
}

fn update(clerk_id: &str, version: i64) -> ProfileUpdate {
    ProfileUpdate::new(
        clerk_id,
        Profile::new()
            .with_email(format!("v{version}@example.com"))
            .with_names(Some(format!("First{version}")), None),
        version,
    )
}

fn row(clerk_id: &str, version: i64) -> Row {
    (
        clerk_id.to_owned(),
        Some(format!("v{version}@example.com")),
        Some(format!("First{version}")),
        None,
        None,
        Some(version),
    )
}

async fn batches_follow_versions_and_tombstones(backend: Backend) {
    use BatchOutcome::*;
    let store = Store::new(backend).await;
    let [a, b, c, gone] = ["user_a", "user_b", "user_c", "user_gone"];
    store.tombstone(gone).await;
    let outcomes = store
        .apply_batch(&[update(a, 10), update(b, 10), update(gone, 10)])
        .await
        .unwrap();
    assert_eq!(outcomes, [Created, Created, Tombstoned]);
    assert_eq!(store.rows().await, [row(a, 10), row(b, 10)]);

    // The same data again writes nothing; newer wins, older and equal do not.
    let again = [update(a, 10), update(b, 10)];
    assert_eq!(store.apply_batch(&again).await.unwrap(), [Unchanged; 2]);
    let mixed = [update(a, 11), update(b, 9), update(c, 1), update(c, 2)];
    assert_eq!(
        store.apply_batch(&mixed).await.unwrap(),
        [Updated, Unchanged, Unchanged, Created]
    );
    assert_eq!(
        store.rows().await,
        [row(a, 11), row(b, 10), row(c, 2)],
        "the newest of duplicate ids is the one kept"
    );

    // A row the layer created (no version yet) takes any profile.
    store
        .execute("INSERT INTO users (clerk_id) VALUES ('user_layer')")
        .await;
    assert_eq!(
        store.apply_batch(&[update("user_layer", 1)]).await.unwrap(),
        [Updated]
    );

    // The single-row path agrees with the batch.
    let sync = match &store {
        Store::Pg(s) => s.upsert_profile(a, &update(a, 12).profile, 12).await,
        Store::Lite(s) => s.upsert_profile(a, &update(a, 12).profile, 12).await,
    };
    assert_eq!(sync.unwrap().code(), "updated");
    assert_eq!(
        store.apply_batch(&[update(a, 12)]).await.unwrap(),
        [Unchanged]
    );
    assert_eq!(store.apply_batch(&[]).await.unwrap(), []);
}

async fn batch_respects_a_tombstone_committed_during_the_write(backend: Backend) {
    let store = Store::new(backend).await;
    store.tombstone_on_insert().await;
    let outcomes = store
        .apply_batch(&[update("user_race1", 1), update("user_fine", 1)])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [BatchOutcome::Tombstoned, BatchOutcome::Created],
        "the raced row is removed again"
    );
    assert_eq!(store.rows().await, [row("user_fine", 1)]);
}

async fn batches_on_a_mapped_uuid_table(backend: Backend) {
    let table = UserTable::new("accounts")
        .unwrap()
        .with_id_column("account_id", IdKind::Uuid)
        .unwrap()
        .with_clerk_id_column("clerk_user_id")
        .unwrap()
        .with_profile_columns(Some("mail"), None, None, None)
        .unwrap()
        .with_clerk_updated_at_column(None)
        .unwrap();
    let id_type = match backend {
        Backend::Postgres => "UUID",
        Backend::Sqlite => "BLOB",
    };
    let bundled = Store::new(backend).await;
    bundled
        .execute(&format!(
            "CREATE TABLE accounts (account_id {id_type} PRIMARY KEY, \
             clerk_user_id TEXT NOT NULL UNIQUE, mail TEXT)"
        ))
        .await;
    let store = match bundled {
        Store::Pg(s) => Store::Pg(PgUserStore::with_table(s.pool().clone(), &table)),
        Store::Lite(s) => Store::Lite(SqliteUserStore::with_table(s.pool().clone(), &table)),
    };
    let users = [update("user_a", 1), update("user_b", 1)];
    use BatchOutcome::*;
    assert_eq!(store.apply_batch(&users).await.unwrap(), [Created, Created]);
    // Without a version column, an existing row is always overwritten.
    assert_eq!(store.apply_batch(&users).await.unwrap(), [Updated, Updated]);
    assert_eq!(
        store.preview_batch(&users).await.unwrap(),
        [Updated, Updated]
    );
}

async fn preview_writes_nothing(backend: Backend) {
    use BatchOutcome::*;
    let store = Store::new(backend).await;
    store.apply_batch(&[update("user_a", 5)]).await.unwrap();
    store.tombstone("user_gone").await;
    let batch = [
        update("user_a", 5),
        update("user_a", 6),
        update("user_new", 1),
        update("user_gone", 1),
    ];
    assert_eq!(
        store.preview_batch(&batch).await.unwrap(),
        [Unchanged, Updated, Created, Tombstoned]
    );
    assert_eq!(store.rows().await, [row("user_a", 5)]);
}

async fn checkpoints_round_trip(backend: Backend) {
    let store = Store::new(backend).await;
    assert_eq!(store.load_checkpoint().await.unwrap(), None);
    let first = Checkpoint::new(random_id("user"), 500);
    store.save_checkpoint(&first).await.unwrap();
    assert_eq!(store.load_checkpoint().await.unwrap(), Some(first));
    let second = Checkpoint::new("user_b", 1000);
    store.save_checkpoint(&second).await.unwrap();
    assert_eq!(store.load_checkpoint().await.unwrap(), Some(second));
    store.clear_checkpoint().await.unwrap();
    assert_eq!(store.load_checkpoint().await.unwrap(), None);
    store.clear_checkpoint().await.unwrap();
}
