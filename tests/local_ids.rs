//! A local id is never handed out twice: not after its user is deleted, on
//! PostgreSQL and SQLite alike.

mod common;

use std::collections::BTreeSet;

use common::*;
use ensure_user::{
    LocalId,
    store::{Profile, Resolution, SqliteUserStore, SyncOutcome, UserStore, UserSync, UserTable},
    testing::random_id,
};
use sqlx::{SqlitePool, sqlite::SqlitePoolOptions};

on_both_stores!(never_reuses_a_deleted_users_id, a_local_id_binds_as_its_key);

/// Creates a user through the layer's path and returns their integer id.
async fn create(store: &impl UserStore) -> i64 {
    match store
        .find_or_create(&random_id("user"), &Profile::new())
        .await
        .unwrap()
    {
        Resolution::Created(LocalId::Int(id)) => id,
        other => panic!("expected a new integer id, got {other:?}"),
    }
}

/// Creates a user through the webhooks' path (`user.created`) and returns their id.
async fn create_by_sync(store: &impl UserSync) -> i64 {
    match store
        .upsert_profile(&random_id("user"), &Profile::new(), 1_000)
        .await
        .unwrap()
    {
        SyncOutcome::Created(LocalId::Int(id)) => id,
        other => panic!("expected a new integer id, got {other:?}"),
    }
}

/// Users 1, 2 and 3; the newest is deleted as `user.deleted` does; every
/// user created afterwards gets an id never used before.
async fn never_reuses_a_deleted_users_id(backend: Backend) {
    let store = Store::new(backend).await;
    let mut clerk_ids = Vec::new();
    let mut used = BTreeSet::new();
    for expected in 1..=3 {
        let clerk_id = random_id("user");
        let resolution = store.find_or_create(&clerk_id, &Profile::new()).await;
        assert_eq!(
            resolution.unwrap(),
            Resolution::Created(LocalId::Int(expected))
        );
        clerk_ids.push(clerk_id);
        used.insert(expected);
    }

    let deleted = store.delete_user(&clerk_ids[2], 1_000).await.unwrap();
    assert!(matches!(deleted, SyncOutcome::Deleted), "{deleted:?}");
    let next = create(&store).await;
    assert!(next > 3, "user 3's id was handed out again: {next}");
    used.insert(next);

    // Again after deleting a user in the middle and the newest one, for a
    // user created through the sync path.
    store.delete_user(&clerk_ids[1], 2_000).await.unwrap();
    let newest = random_id("user");
    let resolution = store.find_or_create(&newest, &Profile::new()).await;
    let Resolution::Created(LocalId::Int(newest_id)) = resolution.unwrap() else {
        panic!("expected a new user");
    };
    used.insert(newest_id);
    store.delete_user(&newest, 3_000).await.unwrap();
    let after = create_by_sync(&store).await;
    assert!(
        after > *used.last().unwrap(),
        "id {after} is not above every id used before ({used:?})"
    );
}

/// The Clerk id of the row whose `id_column` in `table` equals `id`, bound
/// as a `LocalId`, as an app's own query binds it.
async fn clerk_id_of(
    store: &Store,
    table: &str,
    id_column: &str,
    clerk_column: &str,
    id: LocalId,
) -> Option<String> {
    match store {
        Store::Postgres(store) => {
            let sql = format!("SELECT {clerk_column} FROM {table} WHERE {id_column} = $1");
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(store.pool())
                .await
                .unwrap()
        }
        Store::Sqlite(store) => {
            let sql = format!("SELECT {clerk_column} FROM {table} WHERE {id_column} = ?");
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(store.pool())
                .await
                .unwrap()
        }
    }
}

/// A `LocalId` the store handed out finds its row again when bound in the
/// app's own query: an integer id in the bundled table, a UUID id in an
/// app's table keyed by UUIDs (`UUID` on PostgreSQL, the store's 16 bytes
/// on SQLite).
async fn a_local_id_binds_as_its_key(backend: Backend) {
    let store = Store::new(backend).await;
    let clerk_id = random_id("user");
    let Resolution::Created(id) = store
        .find_or_create(&clerk_id, &Profile::new())
        .await
        .unwrap()
    else {
        panic!("expected a new user");
    };
    let int = id.get::<i64>().unwrap();
    assert_eq!(
        clerk_id_of(&store, "users", "id", "clerk_id", id).await,
        Some(clerk_id)
    );
    let other = LocalId::Int(int + 1_000);
    assert_eq!(
        clerk_id_of(&store, "users", "id", "clerk_id", other).await,
        None
    );

    let accounts = store.with_accounts_table().await;
    let clerk_id = random_id("user");
    let Resolution::Created(id) = accounts
        .find_or_create(&clerk_id, &Profile::new())
        .await
        .unwrap()
    else {
        panic!("expected a new account");
    };
    assert!(id.get::<uuid::Uuid>().is_ok(), "{id:?}");
    assert_eq!(
        clerk_id_of(&accounts, "accounts", "account_id", "clerk_user_id", id).await,
        Some(clerk_id)
    );
    let other = LocalId::Uuid(uuid::Uuid::new_v4());
    assert_eq!(
        clerk_id_of(&accounts, "accounts", "account_id", "clerk_user_id", other).await,
        None
    );
}

// SQLite databases made by 0.1.0, whose `users.id` lacked AUTOINCREMENT.

/// The bundled migration as 0.1.0 shipped it.
const MIGRATION_0_1_0: &str = include_str!("fixtures/sqlite_0.1.0_ensure_user.sql");

/// What an app builds on the bundled table: a table referencing it, an
/// index and a trigger on it, a view of it and a trigger elsewhere writing it.
const APP_SCHEMA: &str = "
    CREATE TABLE orders (
        id      INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        item    TEXT NOT NULL
    );
    CREATE INDEX users_by_email ON users(email);
    CREATE TABLE user_audit (user_id INTEGER NOT NULL, clerk_id TEXT NOT NULL);
    CREATE TRIGGER users_audit AFTER INSERT ON users
        BEGIN INSERT INTO user_audit VALUES (NEW.id, NEW.clerk_id); END;
    CREATE VIEW order_owners AS
        SELECT orders.item, users.clerk_id FROM orders JOIN users ON users.id = orders.user_id;
    CREATE TRIGGER orders_touch_user AFTER INSERT ON orders
        BEGIN UPDATE users SET updated_at = 'ordered' WHERE id = NEW.user_id; END;";

/// The app's objects in `APP_SCHEMA`, as `sqlite_master` holds them.
const APP_OBJECTS: &str = "SELECT type || ' ' || name || ' ON ' || tbl_name || ': ' || sql \
    FROM sqlite_master WHERE name IN \
    ('orders', 'users_by_email', 'user_audit', 'users_audit', 'order_owners', 'orders_touch_user') \
    ORDER BY name";

const USERS: &str = "SELECT CAST(id AS TEXT) || '|' || clerk_id || '|' || COALESCE(email, '-') \
    || '|' || COALESCE(first_name, '-') || '|' || COALESCE(last_name, '-') \
    || '|' || COALESCE(image_url, '-') || '|' || COALESCE(CAST(clerk_updated_at AS TEXT), '-') \
    || '|' || created_at || '|' || updated_at FROM users ORDER BY id";
const ORDERS: &str = "SELECT id || '|' || user_id || '|' || item FROM orders ORDER BY id";
const ORDER_OWNERS: &str = "SELECT item || '|' || clerk_id FROM order_owners ORDER BY item";
const AUDIT: &str = "SELECT user_id || '|' || clerk_id FROM user_audit ORDER BY user_id";
const FOREIGN_KEY_VIOLATIONS: &str =
    "SELECT \"table\" || '|' || rowid || '|' || parent FROM pragma_foreign_key_check";
/// The `users` table's definition and where it is stored: a rebuild changes both.
const USERS_TABLE: &str =
    "SELECT rootpage || ': ' || sql FROM sqlite_master WHERE type = 'table' AND name = 'users'";
const USERS_SEQUENCE: &str = "SELECT seq FROM sqlite_sequence WHERE name = 'users'";

async fn texts(pool: &SqlitePool, sql: &'static str) -> Vec<String> {
    sqlx::query_scalar(sql).fetch_all(pool).await.unwrap()
}

/// A SQLite file set up by 0.1.0's migration, with `APP_SCHEMA`.
async fn sqlite_0_1_0() -> SqlitePool {
    let pool = sqlite_pool().await;
    sqlx::raw_sql(MIGRATION_0_1_0).execute(&pool).await.unwrap();
    sqlx::raw_sql(APP_SCHEMA).execute(&pool).await.unwrap();
    pool
}

/// The 0.1.0 table in use: users 1 to 4, orders of 1 and 2, and user 4 (the
/// newest) deleted as `user.deleted` does, so the remaining highest id is 3.
/// Returns the Clerk ids by local id, from 1.
async fn fill_0_1_0(pool: &SqlitePool) -> Vec<String> {
    // 0.1.0 kept no ban.
    let table = UserTable::default().with_banned_column(None).unwrap();
    let store = SqliteUserStore::with_table(pool.clone(), &table);
    let mut clerk_ids = Vec::new();
    for (id, name) in (1..).zip(["ada", "grace", "alan", "edsger"]) {
        let clerk_id = random_id("user");
        let profile = Profile::new().with_email(format!("{name}@example.com"));
        let resolution = store.find_or_create(&clerk_id, &profile).await.unwrap();
        assert_eq!(resolution, Resolution::Created(LocalId::Int(id)));
        clerk_ids.push(clerk_id);
    }
    sqlx::raw_sql(
        "INSERT INTO orders (user_id, item) VALUES (1, 'loom'), (2, 'compiler'), (1, 'engine')",
    )
    .execute(pool)
    .await
    .unwrap();
    let deleted = store.delete_user(&clerk_ids[3], 1_000).await.unwrap();
    assert!(matches!(deleted, SyncOutcome::Deleted), "{deleted:?}");
    clerk_ids
}

/// Everything the upgrade must keep, as text.
async fn contents(pool: &SqlitePool) -> Vec<Vec<String>> {
    let mut contents = Vec::new();
    for sql in [USERS, ORDERS, ORDER_OWNERS, AUDIT, APP_OBJECTS] {
        contents.push(texts(pool, sql).await);
    }
    contents
}

/// The `users` table's columns and constraints, as SQLite describes them.
async fn users_shape(pool: &SqlitePool) -> Vec<String> {
    let columns = "SELECT name || ' ' || type || ' notnull=' || \"notnull\" || ' default=' || \
        COALESCE(dflt_value, '-') || ' pk=' || pk FROM pragma_table_xinfo('users') ORDER BY cid";
    let constraints = "SELECT list.origin || ' unique=' || list.\"unique\" || ' ' || info.name \
        FROM pragma_index_list('users') AS list, pragma_index_info(list.name) AS info \
        WHERE list.origin <> 'c' ORDER BY list.name, info.seqno";
    let mut shape = texts(pool, columns).await;
    shape.extend(texts(pool, constraints).await);
    shape
}

const SETTINGS: &str = "SELECT foreign_keys, legacy_alter_table \
    FROM pragma_foreign_keys, pragma_legacy_alter_table";

/// Every connection of `pool` enforces foreign keys and renames tables the
/// current way, as sqlx and SQLite set them up.
async fn assert_connection_settings(pool: &SqlitePool) {
    let mut connections = Vec::new();
    for _ in 0..pool.options().get_max_connections() {
        connections.push(pool.acquire().await.unwrap());
    }
    for connection in &mut connections {
        let settings: (bool, bool) = sqlx::query_as(SETTINGS)
            .fetch_one(&mut **connection)
            .await
            .unwrap();
        assert_eq!(settings, (true, false));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_0_1_0_upgrade_keeps_everything_and_stops_reuse() {
    let pool = sqlite_0_1_0().await;
    let clerk_ids = fill_0_1_0(&pool).await;
    let before = contents(&pool).await;
    assert_eq!(before[0].len(), 3, "{before:?}");
    let old_table = texts(&pool, USERS_TABLE).await;
    assert!(!old_table[0].contains("AUTOINCREMENT"), "{old_table:?}");

    let store = SqliteUserStore::new(pool.clone());
    store.migrate().await.unwrap();

    assert_eq!(contents(&pool).await, before);
    assert_eq!(
        texts(&pool, FOREIGN_KEY_VIOLATIONS).await,
        Vec::<String>::new()
    );
    let new_table = texts(&pool, USERS_TABLE).await;
    assert!(new_table[0].contains("AUTOINCREMENT"), "{new_table:?}");
    assert_eq!(
        users_shape(&pool).await,
        users_shape(sqlite_store().await.pool()).await
    );
    // Highest id 3, plus 1 tombstone: user 4's id stays retired.
    let sequence: i64 = sqlx::query_scalar(USERS_SEQUENCE)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(sequence, 4);
    assert_connection_settings(&pool).await;

    // Idempotent: the second run rebuilds nothing.
    store.migrate().await.unwrap();
    assert_eq!(texts(&pool, USERS_TABLE).await, new_table);
    assert_eq!(contents(&pool).await, before);

    // The newest user is deleted; the next one gets an id never used.
    store.delete_user(&clerk_ids[2], 2_000).await.unwrap();
    let next = random_id("user");
    let resolution = store.find_or_create(&next, &Profile::new()).await;
    assert_eq!(
        resolution.unwrap(),
        Resolution::Created(LocalId::Int(5)),
        "ids 1 to 4 were all used"
    );
    // The app's trigger, view, and foreign key still work on the new table.
    let audit = texts(&pool, AUDIT).await;
    assert_eq!(audit.last().unwrap(), &format!("5|{next}"));
    sqlx::query("INSERT INTO orders (user_id, item) VALUES (5, 'zeta')")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(texts(&pool, ORDER_OWNERS).await.len(), 4);
    let dangling = sqlx::query("INSERT INTO orders (user_id, item) VALUES (4, 'lost')")
        .execute(&pool)
        .await;
    assert!(dangling.is_err(), "a reference to a deleted id is refused");
}

/// Several processes starting at once on one 0.1.0 file: every `migrate()`
/// succeeds, and the table is rebuilt once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_0_1_0_upgrades_once_when_processes_race() {
    // Global: the migrations run on the runtime's worker threads. Other
    // tests' upgrades land here too, and are told apart by their file.
    let logs = Logs::capture_globally(tracing::Level::INFO);

    let pool = sqlite_0_1_0().await;
    fill_0_1_0(&pool).await;
    let before = contents(&pool).await;
    let options = pool.connect_options().as_ref().clone();
    let mut migrations = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let options = options.clone();
        migrations.spawn(async move {
            let pool = SqlitePoolOptions::new()
                .max_connections(2)
                .connect_with(options)
                .await
                .unwrap();
            SqliteUserStore::new(pool).migrate().await
        });
    }
    while let Some(migrated) = migrations.join_next().await {
        migrated.unwrap().unwrap();
    }

    assert_eq!(contents(&pool).await, before);
    assert_eq!(
        texts(&pool, FOREIGN_KEY_VIOLATIONS).await,
        Vec::<String>::new()
    );
    let sequence: i64 = sqlx::query_scalar(USERS_SEQUENCE)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(sequence, 4);
    let file = options.get_filename().display().to_string();
    let text = logs.text();
    let rebuilds: Vec<&str> = text
        .lines()
        .filter(|line| line.contains(&file) && line.contains("rebuilt the users table"))
        .collect();
    assert_eq!(rebuilds.len(), 1, "{text}");
    assert!(rebuilds[0].contains("rows=3"), "{}", rebuilds[0]);
}

/// A `users` table that is not the bundled layout is the app's own: not
/// rebuilt, its rows left as they are; it only gains the `banned` column,
/// as on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_users_table_with_other_columns_is_left_alone() {
    let pool = sqlite_0_1_0().await;
    fill_0_1_0(&pool).await;
    sqlx::raw_sql("ALTER TABLE users ADD COLUMN plan TEXT")
        .execute(&pool)
        .await
        .unwrap();
    let table = texts(&pool, USERS_TABLE).await;
    let before = contents(&pool).await;

    SqliteUserStore::new(pool.clone()).migrate().await.unwrap();

    let after = texts(&pool, USERS_TABLE).await;
    let (old_page, old_sql) = table[0].split_once(": ").unwrap();
    let (page, sql) = after[0].split_once(": ").unwrap();
    assert_eq!(page, old_page, "not rebuilt");
    assert!(!sql.contains("AUTOINCREMENT"), "{sql}");
    assert_eq!(
        sql.replace(", banned BOOLEAN NOT NULL DEFAULT FALSE", ""),
        old_sql,
        "only the ban column added"
    );
    assert_eq!(contents(&pool).await, before);
}

/// References that were already dangling before the upgrade (made while
/// foreign keys were off) do not stop it, and are kept as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_0_1_0_upgrade_keeps_references_that_were_already_dangling() {
    let pool = sqlite_0_1_0().await;
    fill_0_1_0(&pool).await;
    let mut connection = pool.acquire().await.unwrap();
    sqlx::raw_sql(
        "PRAGMA foreign_keys = OFF;
         INSERT INTO orders (id, user_id, item) VALUES (99, 4, 'orphan');
         PRAGMA foreign_keys = ON;",
    )
    .execute(&mut *connection)
    .await
    .unwrap();
    drop(connection);
    let dangling = texts(&pool, FOREIGN_KEY_VIOLATIONS).await;
    assert_eq!(dangling, ["orders|99|users"]);
    let before = contents(&pool).await;

    SqliteUserStore::new(pool.clone()).migrate().await.unwrap();

    assert!(texts(&pool, USERS_TABLE).await[0].contains("AUTOINCREMENT"));
    assert_eq!(contents(&pool).await, before);
    assert_eq!(texts(&pool, FOREIGN_KEY_VIOLATIONS).await, dangling);
}

/// A 0.1.0 table that gained the `banned` column before its rebuild (by
/// hand, say) keeps every row's ban through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_0_1_0_upgrade_keeps_the_ban_column() {
    let pool = sqlite_0_1_0().await;
    let clerk_ids = fill_0_1_0(&pool).await;
    sqlx::raw_sql("ALTER TABLE users ADD COLUMN banned BOOLEAN NOT NULL DEFAULT FALSE")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE users SET banned = TRUE WHERE clerk_id = ?1")
        .bind(&clerk_ids[1])
        .execute(&pool)
        .await
        .unwrap();

    let store = SqliteUserStore::new(pool.clone());
    store.migrate().await.unwrap();

    assert!(texts(&pool, USERS_TABLE).await[0].contains("AUTOINCREMENT"));
    let banned: Vec<String> = sqlx::query_scalar("SELECT clerk_id FROM users WHERE banned")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(banned, [clerk_ids[1].clone()]);
    let resolution = store.find_or_create(&clerk_ids[1], &Profile::new()).await;
    assert_eq!(resolution.unwrap(), Resolution::Banned(LocalId::Int(2)));
    let resolution = store.find_or_create(&clerk_ids[0], &Profile::new()).await;
    assert_eq!(resolution.unwrap(), Resolution::Existing(LocalId::Int(1)));
}
