//! SQLite: `?n` placeholders, one statement per batch (no socket to fit),
//! nobody to announce deletions, ended sessions or bans to, and the upgrades
//! of older users tables.

use sqlx::{Sqlite, SqlitePool};

use super::{Bind, Dialect, Spelling, SqlUserStore, Statement, TableName, sqlite_upgrade};
use crate::{eviction::Announcement, store::StoreError};

/// Users in SQLite: the embedded default.
///
/// Deletions are not announced to other processes: there is nothing to
/// listen to (see [`eviction`](crate::eviction)).
///
/// The cascades of organizations and memberships need SQLite's foreign
/// keys on, as sqlx turns them on for every connection by default
/// (`SqliteConnectOptions::foreign_keys`): a pool whose connections turn
/// them off leaves a deleted organization's memberships behind.
///
/// Local ids are never reused: the bundled `users` table is
/// `id INTEGER PRIMARY KEY AUTOINCREMENT`. Version 0.1.0 made it without
/// `AUTOINCREMENT`, so the newest user's id, once deleted, went to the next
/// new user. [`migrate`](SqlUserStore::migrate) rebuilds such a table once
/// (SQLite cannot alter it in place), keeping every row with its id, the
/// references to it and the app's indexes and triggers on it, and starts
/// its sequence at the highest id plus the number of tombstones, above every
/// id a deletion by this crate freed. Rows the app deleted itself, leaving
/// no tombstone, cannot be accounted for: their ids, if above the highest
/// remaining one, may be handed out again. A `users` table with other
/// columns than the bundled ones is left alone.
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
pub type SqliteUserStore = SqlUserStore<Sqlite>;

impl Dialect for Sqlite {
    /// In-process: no socket, so a batch is one statement (of up to
    /// `MAX_BATCH_ROWS` rows).
    const STATEMENT_BYTES: usize = usize::MAX;

    const MIGRATIONS: &'static str = concat!(
        include_str!("../../../migrations/sqlite/0001_ensure_user.sql"),
        include_str!("../../../migrations/sqlite/0002_backfill_state.sql"),
        include_str!("../../../migrations/sqlite/0003_organizations.sql"),
        include_str!("../../../migrations/sqlite/0004_sessions_and_bans.sql")
    );

    const USER_MIGRATIONS: &'static str = concat!(
        include_str!("../../../migrations/sqlite/0001_ensure_user.sql"),
        include_str!("../../../migrations/sqlite/0002_backfill_state.sql"),
        include_str!("../../../migrations/sqlite/0004_sessions_and_bans.sql")
    );

    const NOW: &'static str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

    const SPELLING: Spelling = Spelling {
        lock: "",
        serial_key: "INTEGER PRIMARY KEY AUTOINCREMENT",
        integer: "INTEGER",
        // sqlx binds a UUID as its 16 bytes.
        uuid: "BLOB",
        timestamp: "TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
    };

    fn columns_of(table: &TableName) -> Statement<'_> {
        in_schema(
            table,
            "SELECT name FROM pragma_table_info(?1)",
            "SELECT name FROM pragma_table_info(?1, ?2)",
        )
    }

    fn unique_keys_of(table: &TableName) -> Statement<'_> {
        in_schema(
            table,
            "SELECT list.name, COALESCE(info.name, '') \
             FROM pragma_index_list(?1) AS list JOIN pragma_index_info(list.name) AS info \
             WHERE list.\"unique\" = 1 AND list.partial = 0",
            "SELECT list.name, COALESCE(info.name, '') \
             FROM pragma_index_list(?1, ?2) AS list \
             JOIN pragma_index_info(list.name, ?2) AS info \
             WHERE list.\"unique\" = 1 AND list.partial = 0",
        )
    }

    fn placeholder(n: usize) -> String {
        format!("?{n}")
    }

    fn announce(_: Announcement<'_>) -> Option<Statement<'static>> {
        None
    }

    fn serialize_ban_writes(_: &str) -> Option<Statement<'_>> {
        None
    }

    fn announce_ban(_: &str, _: bool, _: i64) -> Option<Statement<'static>> {
        None
    }

    fn announce_session_end(_: &str, _: i64) -> Option<Statement<'static>> {
        None
    }

    async fn upgrade(pool: &SqlitePool) -> Result<(), StoreError> {
        sqlite_upgrade::upgrade_users_table(pool).await?;
        sqlite_upgrade::add_banned_column(pool).await
    }
}

/// A catalog query about `table`: `unqualified` binds its name (`?1`),
/// `qualified` its name and the attached database it is in (`?2`).
fn in_schema<'a>(
    table: &'a TableName,
    unqualified: &'static str,
    qualified: &'static str,
) -> Statement<'a> {
    let name = Bind::Text(&table.table);
    match &table.schema {
        None => Statement::new(unqualified).bind(name),
        Some(schema) => Statement::new(qualified)
            .bind(name)
            .bind(Bind::Text(schema)),
    }
}
