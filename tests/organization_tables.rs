//! An app's own organizations and memberships tables, mapped: `teams` and
//! `team_members` beside `accounts`, created by the app's SQL, with the
//! bundled tables' guarantees (one row under concurrency, the newest state
//! wins, deletions stay, the backfill's batches) and the same check at the
//! start, on real PostgreSQL and SQLite.
//!
//! The app's foreign keys do not cascade, as many apps' do not: the store
//! removes a deleted organization's or user's memberships itself.

mod common;

use common::{
    Backend, Store, on_both_stores,
    organizations::{membership, organization},
};
use ensure_user::{
    LocalId,
    store::{
        BatchOutcome, IdKind, MembershipClaim, MembershipResolution, MembershipTable,
        OrganizationBackfillStore, OrganizationResolution, OrganizationStore, OrganizationSync,
        OrganizationTable, PgUserStore, Profile, SqliteUserStore, StoreError, SyncOutcome,
        UserStore, UserSync, UserTable,
    },
    testing::random_id,
};

on_both_stores!(
    worker_threads = 4;
    migrate_leaves_the_mapped_tables_to_the_app,
    concurrent_calls_make_one_row_each,
    concurrent_calls_make_one_row_with_uuid_membership_keys,
    concurrent_calls_make_one_row_with_integer_team_keys,
    the_newest_webhook_wins,
    deletions_stay_and_take_the_memberships,
    backfill_batches_write_the_mapped_tables,
    a_missing_table_stops_the_check,
    a_missing_column_stops_the_check,
    a_membership_without_a_unique_pair_stops_the_check,
);

/// The keys of `teams` and `team_members`.
#[derive(Clone, Copy)]
struct Keys {
    team: IdKind,
    member: IdKind,
}

/// UUID teams, integer memberships.
const KEYS: Keys = Keys {
    team: IdKind::Uuid,
    member: IdKind::BigInt,
};

/// The app's tables, on a fresh schema or file: `accounts` (UUID key),
/// `teams` (`clerk_org_id`, `display_name`, `clerk_version`) and
/// `team_members`, referencing both without cascades, unique on
/// (`team_id`, `account_id`) when `unique_pair`; keyed by `keys`.
async fn app_database(backend: Backend, keys: Keys, unique_pair: bool) -> Store {
    let (store, uuid, serial) = match backend {
        Backend::Postgres => (
            Store::Postgres(PgUserStore::new(common::postgres_pool().await)),
            "UUID",
            "BIGINT GENERATED ALWAYS AS IDENTITY",
        ),
        Backend::Sqlite => (
            Store::Sqlite(SqliteUserStore::new(common::sqlite_pool().await)),
            "BLOB",
            "INTEGER",
        ),
    };
    let key = |kind: IdKind| match kind {
        IdKind::BigInt => serial,
        _ => uuid,
    };
    let (team_id, member_id) = (key(keys.team), key(keys.member));
    // What references a team's key has its type.
    let team_ref = match (keys.team, backend) {
        (IdKind::BigInt, Backend::Postgres) => "BIGINT",
        (IdKind::BigInt, Backend::Sqlite) => "INTEGER",
        _ => uuid,
    };
    let unique = if unique_pair {
        ",\n UNIQUE (team_id, account_id)"
    } else {
        ""
    };
    store
        .execute(&format!(
            "CREATE TABLE accounts (
                 id            {uuid} NOT NULL PRIMARY KEY,
                 clerk_user_id TEXT NOT NULL UNIQUE,
                 email         TEXT
             );
             CREATE TABLE teams (
                 id            {team_id} NOT NULL PRIMARY KEY,
                 clerk_org_id  TEXT NOT NULL UNIQUE,
                 display_name  TEXT,
                 clerk_version BIGINT,
                 plan          TEXT NOT NULL DEFAULT 'free'
             );
             CREATE TABLE team_members (
                 id           {member_id} NOT NULL PRIMARY KEY,
                 team_id      {team_ref} NOT NULL REFERENCES teams (id),
                 account_id   {uuid} NOT NULL REFERENCES accounts (id),
                 role         TEXT NOT NULL,
                 role_version BIGINT NOT NULL{unique}
             );"
        ))
        .await;
    store
}

fn accounts() -> UserTable {
    UserTable::existing("accounts", "id", IdKind::Uuid, "clerk_user_id")
        .unwrap()
        .with_profile_columns(Some("email"), None, None, None)
        .unwrap()
}

fn teams() -> OrganizationTable {
    teams_keyed(IdKind::Uuid)
}

fn teams_keyed(key: IdKind) -> OrganizationTable {
    OrganizationTable::existing("teams", "id", key, "clerk_org_id")
        .unwrap()
        .with_columns(Some("display_name"), None, None)
        .unwrap()
        .with_clerk_updated_at_column(Some("clerk_version"))
        .unwrap()
}

fn team_members(key: IdKind) -> MembershipTable {
    MembershipTable::existing(
        "team_members",
        "id",
        key,
        "team_id",
        "account_id",
        "role",
        "role_version",
    )
    .unwrap()
}

/// A store of the app's three tables on the database's pool.
fn mapped(database: &Store, organizations: &OrganizationTable, members: &MembershipTable) -> Store {
    match database {
        Store::Postgres(store) => Store::Postgres(
            PgUserStore::with_table(store.pool().clone(), &accounts())
                .with_organization_tables(organizations, members),
        ),
        Store::Sqlite(store) => Store::Sqlite(
            SqliteUserStore::with_table(store.pool().clone(), &accounts())
                .with_organization_tables(organizations, members),
        ),
    }
}

/// The app's database, migrated, and a store on it.
async fn app(backend: Backend, keys: Keys) -> Store {
    let database = app_database(backend, keys, true).await;
    let store = mapped(
        &database,
        &teams_keyed(keys.team),
        &team_members(keys.member),
    );
    store.migrate().await;
    check(&store).await.unwrap();
    store
}

/// Both start-up checks of the store inside.
async fn check(store: &Store) -> Result<(), StoreError> {
    match store {
        Store::Postgres(store) => {
            store.check_schema().await?;
            store.check_organization_schema().await
        }
        Store::Sqlite(store) => {
            store.check_schema().await?;
            store.check_organization_schema().await
        }
    }
}

/// The error the organizations' check fails with, as its text.
async fn check_error(store: &Store) -> String {
    let error = check(store).await.unwrap_err();
    assert!(error.is_schema_mismatch(), "{error}");
    error.to_string()
}

/// The team rows: Clerk id, display name, version.
async fn team_rows(store: &Store) -> Vec<(String, Option<String>, Option<i64>)> {
    let sql = "SELECT clerk_org_id, display_name, clerk_version FROM teams ORDER BY clerk_org_id";
    match store {
        Store::Postgres(s) => sqlx::query_as(sql).fetch_all(s.pool()).await,
        Store::Sqlite(s) => sqlx::query_as(sql).fetch_all(s.pool()).await,
    }
    .unwrap()
}

/// The membership rows: team's and account's Clerk ids, role, role version.
async fn member_rows(store: &Store) -> Vec<(String, String, String, i64)> {
    let sql = "SELECT t.clerk_org_id, a.clerk_user_id, m.role, m.role_version \
               FROM team_members m JOIN teams t ON t.id = m.team_id \
               JOIN accounts a ON a.id = m.account_id ORDER BY 1, 2";
    match store {
        Store::Postgres(s) => sqlx::query_as(sql).fetch_all(s.pool()).await,
        Store::Sqlite(s) => sqlx::query_as(sql).fetch_all(s.pool()).await,
    }
    .unwrap()
}

async fn user(store: &Store, clerk_id: &str) -> LocalId {
    let resolution = store.find_or_create(clerk_id, &Profile::new()).await;
    resolution.unwrap().id().unwrap()
}

async fn team(store: &Store, clerk_id: &str) -> LocalId {
    match store.find_or_create_organization(clerk_id, None).await {
        Ok(OrganizationResolution::Existing(id) | OrganizationResolution::Created(id)) => id,
        other => panic!("{clerk_id}: {other:?}"),
    }
}

fn tables_named(backend: Backend, name: &str) -> String {
    match backend {
        Backend::Postgres => format!(
            "SELECT count(*) FROM pg_tables WHERE tablename = '{name}' \
             AND schemaname = current_schema()"
        ),
        Backend::Sqlite => format!("SELECT count(*) FROM sqlite_master WHERE name = '{name}'"),
    }
}

/// `migrate()` creates the crate's own tables and none of the mapped ones.
async fn migrate_leaves_the_mapped_tables_to_the_app(backend: Backend) {
    let store = app(backend, KEYS).await;
    store.migrate().await;
    for table in ["users", "organizations", "organization_memberships"] {
        assert_eq!(
            store.number(&tables_named(backend, table)).await,
            0,
            "{table}"
        );
    }
    for table in [
        "clerk_user_tombstones",
        "clerk_organization_tombstones",
        "clerk_membership_tombstones",
    ] {
        assert_eq!(
            store.number(&tables_named(backend, table)).await,
            1,
            "{table}"
        );
    }

    // The bundled users table with the app's organizations tables: the
    // users' migrations, never the bundled organizations'.
    let database = app_database(backend, KEYS, true).await;
    let bundled_users = match &database {
        Store::Postgres(s) => Store::Postgres(
            PgUserStore::new(s.pool().clone())
                .with_organization_tables(&teams(), &team_members(IdKind::BigInt)),
        ),
        Store::Sqlite(s) => Store::Sqlite(
            SqliteUserStore::new(s.pool().clone())
                .with_organization_tables(&teams(), &team_members(IdKind::BigInt)),
        ),
    };
    bundled_users.migrate().await;
    assert_eq!(
        bundled_users.number(&tables_named(backend, "users")).await,
        1
    );
    for table in ["organizations", "organization_memberships"] {
        let count = bundled_users.number(&tables_named(backend, table)).await;
        assert_eq!(count, 0, "{table}");
    }
    assert_eq!(
        bundled_users
            .number(&tables_named(backend, "clerk_membership_tombstones"))
            .await,
        1
    );
}

async fn one_row_each(backend: Backend, keys: Keys) {
    let store = app(backend, keys).await;
    let (o, u) = (random_id("org"), random_id("user"));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (store, o) = (store.clone(), o.clone());
        tasks.push(tokio::spawn(async move { team(&store, &o).await }));
    }
    let mut teams = Vec::new();
    for task in tasks {
        teams.push(task.await.unwrap());
    }
    teams.dedup();
    assert_eq!(teams.len(), 1, "every call has the same team: {teams:?}");
    match keys.team {
        IdKind::BigInt => assert!(matches!(teams[0], LocalId::Int(_))),
        _ => assert!(matches!(teams[0], LocalId::Uuid(_))),
    }
    assert_eq!(store.count("teams").await, 1);

    let account = user(&store, &u).await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (store, o, u, team) = (store.clone(), o.clone(), u.clone(), teams[0]);
        tasks.push(tokio::spawn(async move {
            let claim = MembershipClaim::new((team, &o), (account, &u), "org:admin", 1_000);
            store.ensure_membership(&claim).await.unwrap()
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            MembershipResolution::Member { id, role, .. } => {
                assert_eq!(role, "org:admin");
                ids.push(id);
            }
            other => panic!("{other:?}"),
        }
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every call has the same membership: {ids:?}");
    assert_eq!(
        member_rows(&store).await,
        [(o, u, "org:admin".to_owned(), 1_000)]
    );
}

async fn concurrent_calls_make_one_row_each(backend: Backend) {
    one_row_each(backend, KEYS).await;
}

async fn concurrent_calls_make_one_row_with_uuid_membership_keys(backend: Backend) {
    let member = IdKind::Uuid;
    one_row_each(backend, Keys { member, ..KEYS }).await;
}

async fn concurrent_calls_make_one_row_with_integer_team_keys(backend: Backend) {
    let team = IdKind::BigInt;
    one_row_each(backend, Keys { team, ..KEYS }).await;
}

/// Newer webhook states win over older ones, for the team's columns and
/// the membership's role; an older token does not undo a newer role.
async fn the_newest_webhook_wins(backend: Backend) {
    let store = app(backend, KEYS).await;
    let (o, u) = (random_id("org"), random_id("user"));
    assert!(matches!(
        store
            .upsert_organization(&organization(&o, "New", 2_000))
            .await,
        Ok(SyncOutcome::Created(LocalId::Uuid(_)))
    ));
    assert_eq!(
        store
            .upsert_organization(&organization(&o, "Old", 1_000))
            .await
            .unwrap(),
        SyncOutcome::Stale
    );
    assert_eq!(
        team_rows(&store).await,
        [(o.clone(), Some("New".to_owned()), Some(2_000))]
    );

    let admin = membership(&o, &u, "org:admin", 3_000);
    assert!(matches!(
        store.upsert_membership(&admin).await,
        Ok(SyncOutcome::Created(LocalId::Int(_)))
    ));
    let older = membership(&o, &u, "org:member", 2_500);
    assert_eq!(
        store.upsert_membership(&older).await.unwrap(),
        SyncOutcome::Stale
    );
    let (team, account) = (team(&store, &o).await, user(&store, &u).await);
    let claim = MembershipClaim::new((team, &o), (account, &u), "org:member", 2_900);
    assert!(matches!(
        store.ensure_membership(&claim).await.unwrap(),
        MembershipResolution::Member { ref role, .. } if role == "org:admin"
    ));
    assert_eq!(
        member_rows(&store).await,
        [(o.clone(), u.clone(), "org:admin".to_owned(), 3_000)]
    );
    let newer = membership(&o, &u, "org:member", 4_000);
    assert!(matches!(
        store.upsert_membership(&newer).await.unwrap(),
        SyncOutcome::Updated(_)
    ));
    assert_eq!(
        member_rows(&store).await,
        [(o, u, "org:member".to_owned(), 4_000)]
    );
}

/// A membership's, a team's and an account's deletions remove their rows
/// (the memberships with them, though the foreign keys do not cascade),
/// and nothing as old brings them back.
async fn deletions_stay_and_take_the_memberships(backend: Backend) {
    let store = app(backend, KEYS).await;
    let (o, u, v) = (random_id("org"), random_id("user"), random_id("user"));
    for user in [&u, &v] {
        let state = membership(&o, user, "org:member", 2_000);
        store.upsert_membership(&state).await.unwrap();
    }
    assert_eq!(store.count("team_members").await, 2);

    assert_eq!(
        store.delete_membership(&o, &u, 3_000).await.unwrap(),
        SyncOutcome::Deleted
    );
    let late = membership(&o, &u, "org:admin", 2_500);
    assert_eq!(
        store.upsert_membership(&late).await.unwrap(),
        SyncOutcome::Tombstoned
    );
    let (team_id, account) = (team(&store, &o).await, user(&store, &u).await);
    let claim = MembershipClaim::new((team_id, &o), (account, &u), "org:admin", 2_900);
    assert!(matches!(
        store.ensure_membership(&claim).await.unwrap(),
        MembershipResolution::Deleted { .. }
    ));
    assert_eq!(store.count("team_members").await, 1);

    assert_eq!(
        store.delete_user(&v, 3_000).await.unwrap(),
        SyncOutcome::Deleted
    );
    assert_eq!(store.count("team_members").await, 0);

    let back = membership(&o, &u, "org:admin", 4_000);
    assert!(matches!(
        store.upsert_membership(&back).await.unwrap(),
        SyncOutcome::Created(_)
    ));
    assert_eq!(
        store.delete_organization(&o, 5_000).await.unwrap(),
        SyncOutcome::Deleted
    );
    assert_eq!(
        (
            store.count("teams").await,
            store.count("team_members").await
        ),
        (0, 0)
    );
    assert_eq!(
        store.find_or_create_organization(&o, None).await.unwrap(),
        OrganizationResolution::Deleted
    );
    assert_eq!(
        store
            .upsert_organization(&organization(&o, "Again", 9_000))
            .await
            .unwrap(),
        SyncOutcome::Tombstoned
    );
    assert_eq!(store.count("teams").await, 0);
}

/// The backfill writes teams and memberships in batches, strictly newer
/// states only, and skips a deleted team.
async fn backfill_batches_write_the_mapped_tables(backend: Backend) {
    let member = IdKind::Uuid;
    let store = app(backend, Keys { member, ..KEYS }).await;
    let (a, b, gone) = (random_id("org"), random_id("org"), random_id("org"));
    let (u, v) = (random_id("user"), random_id("user"));
    store.delete_organization(&gone, 1).await.unwrap();
    let batch = [
        organization(&a, "A", 2_000),
        organization(&b, "B", 2_000),
        organization(&gone, "Gone", 2_000),
    ];
    assert_eq!(
        store.apply_organizations(&batch).await.unwrap(),
        [
            BatchOutcome::Created,
            BatchOutcome::Created,
            BatchOutcome::Tombstoned
        ]
    );
    let older = [organization(&a, "Old A", 1_000)];
    assert_eq!(
        store.apply_organizations(&older).await.unwrap(),
        [BatchOutcome::Unchanged]
    );
    let newer = [organization(&b, "New B", 3_000)];
    assert_eq!(
        store.apply_organizations(&newer).await.unwrap(),
        [BatchOutcome::Updated]
    );
    assert_eq!(
        team_rows(&store).await.len(),
        2,
        "{:?}",
        team_rows(&store).await
    );
    assert!(
        team_rows(&store)
            .await
            .contains(&(b.clone(), Some("New B".to_owned()), Some(3_000)))
    );

    let memberships = [
        membership(&a, &u, "org:admin", 2_000),
        membership(&b, &u, "org:member", 2_000),
        membership(&a, &v, "org:member", 2_000),
    ];
    assert_eq!(
        store.apply_memberships(&memberships).await.unwrap(),
        [BatchOutcome::Created; 3]
    );
    let again = [
        membership(&a, &u, "org:member", 1_000),
        membership(&b, &u, "org:admin", 3_000),
    ];
    assert_eq!(
        store.apply_memberships(&again).await.unwrap(),
        [BatchOutcome::Unchanged, BatchOutcome::Updated]
    );
    let mut expected = vec![
        (a.clone(), u.clone(), "org:admin".to_owned(), 2_000),
        (a.clone(), v.clone(), "org:member".to_owned(), 2_000),
        (b.clone(), u.clone(), "org:admin".to_owned(), 3_000),
    ];
    expected.sort();
    assert_eq!(member_rows(&store).await, expected);
}

/// The memberships table never created: the check names it and the fix.
async fn a_missing_table_stops_the_check(backend: Backend) {
    let database = app_database(backend, KEYS, true).await;
    let members = MembershipTable::existing(
        "memberships",
        "id",
        IdKind::BigInt,
        "team_id",
        "account_id",
        "role",
        "role_version",
    )
    .unwrap();
    let store = mapped(&database, &teams(), &members);
    store.migrate().await;
    assert_eq!(
        check_error(&store).await,
        "table memberships does not exist: create it, or map the memberships table the app \
         has (`MembershipTable::existing(…)`)"
    );
    let store = mapped(
        &database,
        &OrganizationTable::existing("organisations", "id", IdKind::Uuid, "clerk_org_id").unwrap(),
        &team_members(IdKind::BigInt),
    );
    assert_eq!(
        check_error(&store).await,
        "table organisations does not exist: create it, or map the organizations table the \
         app has (`OrganizationTable::existing(…)`)"
    );
}

/// Columns the mapping names that the tables lack: the check names the
/// table, the column and the fix.
async fn a_missing_column_stops_the_check(backend: Backend) {
    let database = app_database(backend, KEYS, true).await;
    let slugged = teams().with_columns(Some("display_name"), Some("slug"), None);
    let store = mapped(&database, &slugged.unwrap(), &team_members(IdKind::BigInt));
    store.migrate().await;
    assert_eq!(
        check_error(&store).await,
        "table teams has no column slug: add it (`ALTER TABLE teams ADD COLUMN slug TEXT`) \
         or map the table without it (`None` for it in `.with_columns(…)`)"
    );

    let members = MembershipTable::existing(
        "team_members",
        "id",
        IdKind::BigInt,
        "team_id",
        "account_id",
        "role",
        "role_updated_at",
    )
    .unwrap();
    let store = mapped(&database, &teams(), &members);
    assert_eq!(
        check_error(&store).await,
        "table team_members has no column role_updated_at: add it (`ALTER TABLE team_members \
         ADD COLUMN role_updated_at BIGINT NOT NULL DEFAULT 0`) or map the column the table \
         has for it (the `role_version` of `MembershipTable::existing`)"
    );

    let members = team_members(IdKind::BigInt)
        .with_updated_at_column(Some("updated_at"))
        .unwrap();
    let store = mapped(&database, &teams(), &members);
    let error = check_error(&store).await;
    assert!(
        error.starts_with("table team_members has no column updated_at: add it")
            && error.contains("`.with_updated_at_column(None)`"),
        "{error}"
    );
}

/// Without a unique constraint on (team, account) no `ON CONFLICT` can
/// target the pair; a unique index added serves.
async fn a_membership_without_a_unique_pair_stops_the_check(backend: Backend) {
    let database = app_database(backend, KEYS, false).await;
    let store = mapped(&database, &teams(), &team_members(IdKind::BigInt));
    store.migrate().await;
    assert_eq!(
        check_error(&store).await,
        "columns (team_id, account_id) of table team_members have no UNIQUE constraint or \
         unique index, which the store's `ON CONFLICT (team_id, account_id)` needs: add one \
         (`CREATE UNIQUE INDEX team_members_team_id_account_id_key ON team_members \
         (team_id, account_id)`)"
    );
    database
        .execute(
            "CREATE UNIQUE INDEX team_members_team_id_account_id_key \
             ON team_members (team_id, account_id)",
        )
        .await;
    check(&store).await.unwrap();
}
