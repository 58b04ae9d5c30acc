//! An app's own users table, mapped: the stores check the mapping when the
//! app starts, and a table or column that disappears later is a `500
//! store_misconfigured` and failed readiness, never a `503` to retry.
//!
//! The app's database looks like a real one: `accounts`, keyed by a UUID,
//! with the Clerk id in `clerk_user_id` and an `email`, and `invoices`
//! referencing it.

mod common;

use common::{svix, webhook_app::updated, *};
use ensure_user::{
    Running, Setup,
    eviction::EvictionSource,
    store::{
        IdKind, OrganizationStore, OrganizationSync, PgUserStore, SqliteUserStore, StoreError,
        UserStore, UserSync, UserTable,
    },
    testing::{SigningKey, random_id},
};
use http::StatusCode;
use tower::ServiceExt;

on_both_stores!(
    a_mapped_column_the_table_lacks_stops_the_start,
    a_wrong_column_name_stops_the_start,
    a_clerk_id_without_a_unique_constraint_stops_the_start,
    a_missing_tombstone_table_stops_the_start,
    missing_organization_tables_stop_a_start_with_organizations,
    a_mapping_that_fits_starts_and_serves,
    a_column_dropped_after_the_start_is_a_500_and_not_ready,
);

/// The app's tables, on a fresh schema or file, and nothing of the
/// crate's; the store returned is for raw SQL only. `clerk_user_id` is
/// unique unless `unique_clerk_id` says otherwise.
async fn app_database(backend: Backend, unique_clerk_id: bool) -> Store {
    let store = match backend {
        Backend::Postgres => Store::Postgres(PgUserStore::new(postgres_pool().await)),
        Backend::Sqlite => Store::Sqlite(SqliteUserStore::new(sqlite_pool().await)),
    };
    let uuid = match backend {
        Backend::Postgres => "UUID",
        Backend::Sqlite => "BLOB",
    };
    let unique = if unique_clerk_id { "UNIQUE" } else { "" };
    store
        .execute(&format!(
            "CREATE TABLE accounts (
                 id            {uuid} PRIMARY KEY,
                 clerk_user_id TEXT NOT NULL {unique},
                 email         TEXT
             );
             CREATE TABLE invoices (
                 id           BIGINT PRIMARY KEY,
                 account_id   {uuid} NOT NULL REFERENCES accounts (id),
                 amount_cents BIGINT NOT NULL
             );"
        ))
        .await;
    store
}

/// What the app has: the key, the Clerk id and `email`.
fn accounts() -> UserTable {
    UserTable::existing("accounts", "id", IdKind::Uuid, "clerk_user_id")
        .unwrap()
        .with_profile_columns(Some("email"), None, None, None)
        .unwrap()
}

/// A store of `table` on the database's pool.
fn mapped(database: &Store, table: &UserTable) -> Store {
    match database {
        Store::Postgres(store) => {
            Store::Postgres(PgUserStore::with_table(store.pool().clone(), table))
        }
        Store::Sqlite(store) => {
            Store::Sqlite(SqliteUserStore::with_table(store.pool().clone(), table))
        }
    }
}

/// `Setup::start` on the bundled store inside, with webhooks, and with
/// organizations when asked.
async fn start(
    jwks: &JwksServer,
    store: &Store,
    organizations: bool,
) -> Result<Running, StoreError> {
    async fn on<S>(jwks: &JwksServer, store: S, organizations: bool) -> Result<Running, StoreError>
    where
        S: UserStore + UserSync + OrganizationStore + OrganizationSync + EvictionSource + Clone,
    {
        let setup = Setup::new(jwks.config(), store).with_webhooks(svix::verifier());
        let setup = if organizations {
            setup.with_organizations()
        } else {
            setup
        };
        setup.start().await
    }
    match store.clone() {
        Store::Postgres(store) => on(jwks, store, organizations).await,
        Store::Sqlite(store) => on(jwks, store, organizations).await,
    }
}

/// The error `Setup::start` fails with, as its text.
async fn start_error(store: &Store, organizations: bool) -> String {
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    match start(&jwks, store, organizations).await {
        Ok(_) => panic!("the setup started on a schema its store cannot use"),
        Err(error) => {
            assert!(error.is_schema_mismatch(), "{error}");
            error.to_string()
        }
    }
}

/// A ban column mapped on a table without one: the start fails, naming
/// the table, the column and both fixes; so does a version column.
async fn a_mapped_column_the_table_lacks_stops_the_start(backend: Backend) {
    let database = app_database(backend, true).await;
    let table = accounts().with_banned_column(Some("banned")).unwrap();
    let store = mapped(&database, &table);
    store.migrate().await;
    assert_eq!(
        start_error(&store, false).await,
        "table accounts has no column banned: add it (`ALTER TABLE accounts ADD COLUMN banned \
         BOOLEAN NOT NULL DEFAULT FALSE`) or map the table without it \
         (`.with_banned_column(None)`)"
    );

    let table = accounts()
        .with_clerk_updated_at_column(Some("clerk_updated_at"))
        .unwrap();
    let store = mapped(&database, &table);
    let error = start_error(&store, false).await;
    assert!(
        error.starts_with("table accounts has no column clerk_updated_at: add it")
            && error.contains("`.with_clerk_updated_at_column(None)`"),
        "{error}"
    );
}

/// The Clerk id mapped under a name the table does not have.
async fn a_wrong_column_name_stops_the_start(backend: Backend) {
    let database = app_database(backend, true).await;
    let table = UserTable::existing("accounts", "id", IdKind::Uuid, "clerk_id").unwrap();
    let store = mapped(&database, &table);
    store.migrate().await;
    let error = start_error(&store, false).await;
    assert!(
        error.starts_with("table accounts has no column clerk_id: ")
            && error.contains(".with_clerk_id_column("),
        "{error}"
    );
}

/// A Clerk id column without a unique constraint: no `ON CONFLICT` can
/// target it.
async fn a_clerk_id_without_a_unique_constraint_stops_the_start(backend: Backend) {
    let database = app_database(backend, false).await;
    let store = mapped(&database, &accounts());
    store.migrate().await;
    assert_eq!(
        start_error(&store, false).await,
        "column clerk_user_id of table accounts has no UNIQUE constraint or unique index, \
         which the store's `ON CONFLICT (clerk_user_id)` needs: add one (`CREATE UNIQUE \
         INDEX accounts_clerk_user_id_key ON accounts (clerk_user_id)`)"
    );
    // A unique index serves as well as a constraint.
    database
        .execute("CREATE UNIQUE INDEX accounts_clerk_user_id_key ON accounts (clerk_user_id)")
        .await;
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    start(&jwks, &store, false).await.unwrap().shutdown().await;
}

/// The crate's own tables never created: the start says to migrate.
async fn a_missing_tombstone_table_stops_the_start(backend: Backend) {
    let database = app_database(backend, true).await;
    let store = mapped(&database, &accounts());
    assert_eq!(
        start_error(&store, false).await,
        "table clerk_user_tombstones does not exist: run `store.migrate()`, which creates it"
    );
}

/// With organizations on, their tables are checked too.
async fn missing_organization_tables_stop_a_start_with_organizations(backend: Backend) {
    let database = app_database(backend, true).await;
    let store = mapped(&database, &accounts());
    store.migrate().await;
    database
        .execute("DROP TABLE organization_memberships")
        .await;
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    start(&jwks, &store, false).await.unwrap().shutdown().await;
    assert_eq!(
        start_error(&store, true).await,
        "table organization_memberships does not exist: run `store.migrate()`, which creates it"
    );
}

/// The mapping the app has, migrated: no `users` table; the app starts,
/// creates the row on first sight (an invoice can point at it), applies
/// a webhook, and is ready.
async fn a_mapping_that_fits_starts_and_serves(backend: Backend) {
    let database = app_database(backend, true).await;
    let store = mapped(&database, &accounts());
    store.migrate().await;
    store.migrate().await;
    let users_tables = match backend {
        Backend::Postgres => {
            "SELECT count(*) FROM pg_tables WHERE tablename = 'users' AND schemaname = current_schema()"
        }
        Backend::Sqlite => "SELECT count(*) FROM sqlite_master WHERE name = 'users'",
    };
    assert_eq!(database.number(users_tables).await, 0);

    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let running = start(&jwks, &store, true).await.unwrap();
    let app = common::app::app(running.layer()).merge(running.webhook_router(svix::PATH));
    let user = random_id("user");
    let token = key.session_token(ISSUER, &user, 60);
    let (status, body) = common::app::call(&app, bearer(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    database
        .execute(&format!(
            "INSERT INTO invoices (id, account_id, amount_cents) \
             SELECT 1, id, 4200 FROM accounts WHERE clerk_user_id = '{user}'"
        ))
        .await;
    assert_eq!(database.number("SELECT count(*) FROM invoices").await, 1);

    let delivery = svix::delivery(&updated(&user, 2_000, "Ada"));
    let (status, body) = common::app::call(&app, delivery).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("updated"))
    );
    assert!(running.layer().readiness().await.is_ready());
    running.shutdown().await;
}

/// A column the mapping names, dropped while the app runs: a new user's
/// first request and a webhook are refused `500 store_misconfigured`,
/// without `Retry-After`, and readiness fails; restored, all is well again.
async fn a_column_dropped_after_the_start_is_a_500_and_not_ready(backend: Backend) {
    let database = app_database(backend, true).await;
    let store = mapped(&database, &accounts());
    store.migrate().await;
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let running = start(&jwks, &store, false).await.unwrap();
    let app = common::app::app(running.layer()).merge(running.webhook_router(svix::PATH));
    database
        .execute("ALTER TABLE accounts DROP COLUMN email")
        .await;

    let user = random_id("user");
    let token = key.session_token(ISSUER, &user, 60);
    assert_eq!(
        common::app::status_and_code(&app, &token).await,
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_misconfigured".to_owned(),
            None
        )
    );
    let delivery = svix::delivery(&updated(&random_id("user"), 2_000, "Ada"));
    let response = app.clone().oneshot(delivery).await.unwrap();
    assert!(response.headers().get("retry-after").is_none());
    let (status, body) = read(response).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("store_misconfigured")
        )
    );
    let readiness = running.layer().readiness().await;
    assert!(readiness.store_reachable && readiness.store_misconfigured);
    assert!(!readiness.is_ready());

    database
        .execute("ALTER TABLE accounts ADD COLUMN email TEXT")
        .await;
    assert!(running.layer().readiness().await.is_ready());
    assert_eq!(
        common::app::status_and_code(&app, &token).await.0,
        StatusCode::OK
    );
    running.shutdown().await;
}
