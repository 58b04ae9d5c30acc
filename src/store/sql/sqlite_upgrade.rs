//! Upgrades a SQLite `users` table made by ensure-user 0.1.0, whose
//! `id INTEGER PRIMARY KEY` lacked `AUTOINCREMENT`: SQLite then gives a new
//! row `max(id) + 1`, so deleting the newest user handed their id to the
//! next one.
//!
//! SQLite cannot add `AUTOINCREMENT` to a table, so the table is rebuilt by
//! SQLite's procedure for other schema changes
//! (<https://www.sqlite.org/lang_altertable.html#otheralter>), on one
//! connection: foreign keys off outside any transaction; in one
//! `BEGIN IMMEDIATE` transaction, a new table, every row copied with its id,
//! the old table dropped, the new one renamed `users`, the app's indexes and
//! triggers on `users` made again, and the foreign keys checked; then the
//! connection's settings restored. References to `users` elsewhere (foreign
//! keys, views, triggers on other tables) name the table, not its storage,
//! so they hold again once the rename is done.
//!
//! The old table kept no record of the highest id it gave out, so the
//! sequence starts above `max(id)` plus the number of tombstones: every
//! deletion made by this crate leaves one, so none of those ids comes back.
//! A row the app deleted itself without a tombstone cannot be accounted for.
//!
//! It also adds the `banned` column of migration `0004` to the bundled
//! table when it is missing (SQLite has no `ADD COLUMN IF NOT EXISTS`). The
//! rebuild keeps that column, whichever of the two ran first.

use std::collections::HashSet;

use sqlx::{AssertSqlSafe, Connection, SqliteConnection, SqlitePool};

use crate::store::StoreError;

/// The columns of the bundled table: name, declared type, position in the
/// primary key. Only a table with exactly these (and perhaps [`BANNED`]
/// after them) is rebuilt.
const BUNDLED_COLUMNS: [(&str, &str, i64); 9] = [
    ("id", "INTEGER", 1),
    ("clerk_id", "TEXT", 0),
    ("email", "TEXT", 0),
    ("first_name", "TEXT", 0),
    ("last_name", "TEXT", 0),
    ("image_url", "TEXT", 0),
    ("clerk_updated_at", "INTEGER", 0),
    ("created_at", "TEXT", 0),
    ("updated_at", "TEXT", 0),
];

/// The bundled `users` table of `migrations/sqlite/0001_ensure_user.sql`
/// under the name it has until the old table is gone.
const CREATE_REBUILT_TABLE: &str = "CREATE TABLE ensure_user_users_rebuilt (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    clerk_id         TEXT NOT NULL UNIQUE,
    email            TEXT,
    first_name       TEXT,
    last_name        TEXT,
    image_url        TEXT,
    clerk_updated_at INTEGER,
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    banned           BOOLEAN NOT NULL DEFAULT FALSE
)";

/// The column migration `0004` adds, and its declared type.
const BANNED: (&str, &str) = ("banned", "BOOLEAN");

/// Adds it to the bundled table.
const ADD_BANNED: &str = "ALTER TABLE users ADD COLUMN banned BOOLEAN NOT NULL DEFAULT FALSE";

/// The columns every row is copied with, id included.
const COPIED_COLUMNS: &str = "id, clerk_id, email, first_name, last_name, image_url, \
     clerk_updated_at, created_at, updated_at";

/// Starts the sequence above every id still in use and every id a
/// tombstoned deletion may have freed.
const SEED_SEQUENCE: &str = "DELETE FROM sqlite_sequence WHERE name = 'users';
    INSERT INTO sqlite_sequence (name, seq)
    SELECT 'users', coalesce(max(id), 0) + (SELECT count(*) FROM clerk_user_tombstones)
    FROM users;";

/// A broken foreign-key reference: the child table, its row, the parent
/// table and the constraint, as `PRAGMA foreign_key_check` reports it.
type Violation = (String, Option<i64>, String, i64);

/// The rebuilt table would leave foreign-key references dangling that held
/// before; it was rolled back.
#[derive(Debug, thiserror::Error)]
#[error(
    "rebuilding the users table with AUTOINCREMENT would break {0} foreign key reference(s); \
     the table was left as it was"
)]
struct ForeignKeysWouldBreak(usize);

/// Rebuilds the bundled `users` table with `AUTOINCREMENT` when it was made
/// without; does nothing otherwise (an upgraded or new table, no table, or
/// a table with other columns than the bundled ones). Safe to run from
/// several processes at once: one rebuilds, the others find it done.
pub(super) async fn upgrade_users_table(pool: &SqlitePool) -> Result<(), StoreError> {
    let mut connection = pool.acquire().await?;
    if needs_upgrade(&mut connection).await?.is_none() {
        return Ok(());
    }
    let settings = ConnectionSettings::read(&mut connection).await?;
    sqlx::raw_sql("PRAGMA foreign_keys = OFF")
        .execute(&mut *connection)
        .await?;
    let rebuilt = rebuild(&mut connection).await;
    let restored = settings.restore(&mut connection).await;
    if rebuilt.is_err() || restored.is_err() {
        // Perhaps still in the transaction or with foreign keys off: the
        // pool opens a fresh connection instead.
        connection.close_on_drop();
    }
    let rebuilt = rebuilt?;
    restored?;
    if let Some(rows) = rebuilt {
        tracing::info!(
            database = %pool.connect_options().get_filename().display(),
            rows,
            "rebuilt the users table with AUTOINCREMENT: local ids are no longer reused",
        );
    }
    Ok(())
}

/// Whether `users` is the bundled table without `AUTOINCREMENT`: if so,
/// `Some` of whether it has the `banned` column.
async fn needs_upgrade(connection: &mut SqliteConnection) -> Result<Option<bool>, sqlx::Error> {
    let definition: Option<String> = sqlx::query_scalar(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'users' COLLATE NOCASE",
    )
    .fetch_optional(&mut *connection)
    .await?;
    let Some(definition) = definition else {
        return Ok(None);
    };
    if definition.to_ascii_uppercase().contains("AUTOINCREMENT") {
        return Ok(None);
    }
    let columns = users_columns(connection).await?;
    Ok(bundled_layout(&columns))
}

/// The columns of `users`: name, declared type, position in the primary key.
async fn users_columns(
    connection: &mut SqliteConnection,
) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT name, type, pk FROM pragma_table_info('users') ORDER BY cid")
        .fetch_all(connection)
        .await
}

/// `Some(false)` for the bundled columns, `Some(true)` for the bundled
/// columns and `banned` after them, `None` for any other table.
fn bundled_layout(columns: &[(String, String, i64)]) -> Option<bool> {
    let (bundled, rest) = columns.split_at_checked(BUNDLED_COLUMNS.len())?;
    let banned = match rest {
        [] => false,
        [(name, declared, 0)]
            if name.eq_ignore_ascii_case(BANNED.0) && declared.eq_ignore_ascii_case(BANNED.1) =>
        {
            true
        }
        _ => return None,
    };
    has_bundled_columns(bundled).then_some(banned)
}

fn has_bundled_columns(columns: &[(String, String, i64)]) -> bool {
    columns.len() == BUNDLED_COLUMNS.len()
        && columns.iter().zip(BUNDLED_COLUMNS).all(
            |((name, declared, key), (bundled_name, bundled_type, bundled_key))| {
                name.eq_ignore_ascii_case(bundled_name)
                    && declared.eq_ignore_ascii_case(bundled_type)
                    && *key == bundled_key
            },
        )
}

/// Rebuilds the table in one `BEGIN IMMEDIATE` transaction, which also
/// keeps other processes' upgrades waiting; returns the rows copied, or
/// `None` when another process upgraded the table first.
async fn rebuild(connection: &mut SqliteConnection) -> Result<Option<u64>, StoreError> {
    let mut transaction = connection.begin_with("BEGIN IMMEDIATE").await?;
    let Some(has_banned) = needs_upgrade(&mut transaction).await? else {
        transaction.rollback().await?;
        return Ok(None);
    };
    let violations_before = foreign_key_violations(&mut transaction).await?;
    let rows = replace_users_table(&mut transaction, has_banned).await?;
    sqlx::raw_sql(SEED_SEQUENCE)
        .execute(&mut *transaction)
        .await?;
    let broken = foreign_key_violations(&mut transaction)
        .await?
        .difference(&violations_before)
        .count();
    if broken > 0 {
        return Err(StoreError::Other(Box::new(ForeignKeysWouldBreak(broken))));
    }
    transaction.commit().await?;
    Ok(Some(rows))
}

/// Puts a table with `AUTOINCREMENT` holding every row in the place of
/// `users`, with the indexes and triggers the old one had; returns the
/// rows copied. Each row keeps its ban when the old table had the column.
async fn replace_users_table(
    connection: &mut SqliteConnection,
    has_banned: bool,
) -> Result<u64, sqlx::Error> {
    let indexes_and_triggers = indexes_and_triggers(&mut *connection).await?;
    sqlx::raw_sql(CREATE_REBUILT_TABLE)
        .execute(&mut *connection)
        .await?;
    let columns = if has_banned {
        format!("{COPIED_COLUMNS}, {}", BANNED.0)
    } else {
        COPIED_COLUMNS.to_owned()
    };
    let copy =
        format!("INSERT INTO ensure_user_users_rebuilt ({columns}) SELECT {columns} FROM users");
    let rows = sqlx::raw_sql(AssertSqlSafe(copy))
        .execute(&mut *connection)
        .await?
        .rows_affected();
    sqlx::raw_sql("DROP TABLE users")
        .execute(&mut *connection)
        .await?;
    rename_rebuilt_table(&mut *connection).await?;
    for definition in indexes_and_triggers {
        sqlx::raw_sql(AssertSqlSafe(definition))
            .execute(&mut *connection)
            .await?;
    }
    Ok(rows)
}

/// The `CREATE` statements of the indexes and triggers on `users` (those of
/// its constraints excepted, which the new table makes itself).
async fn indexes_and_triggers(
    connection: &mut SqliteConnection,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'users' COLLATE NOCASE \
         AND type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY rowid",
    )
    .fetch_all(connection)
    .await
}

/// Renames the rebuilt table `users` as SQLite did before 3.25
/// (`legacy_alter_table`): views and triggers that name `users` are neither
/// checked nor rewritten, since `users` is missing until the rename is done
/// and their text is right once it is. The connection's setting is restored
/// with the others afterwards.
async fn rename_rebuilt_table(connection: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(
        "PRAGMA legacy_alter_table = ON;
         ALTER TABLE ensure_user_users_rebuilt RENAME TO users;",
    )
    .execute(connection)
    .await?;
    Ok(())
}

/// Adds the `banned` column to the `users` table when it lacks it, as the
/// PostgreSQL migration does; does nothing without a `users` table. Safe to run from several processes at once: the column is
/// looked for again inside a `BEGIN IMMEDIATE` transaction, which one
/// process holds at a time.
pub(super) async fn add_banned_column(pool: &SqlitePool) -> Result<(), StoreError> {
    let mut connection = pool.acquire().await?;
    if !lacks_banned(&mut connection).await? {
        return Ok(());
    }
    let mut transaction = connection.begin_with("BEGIN IMMEDIATE").await?;
    if lacks_banned(&mut transaction).await? {
        sqlx::raw_sql(ADD_BANNED).execute(&mut *transaction).await?;
    }
    transaction.commit().await?;
    Ok(())
}

/// Whether there is a `users` table without a `banned` column.
async fn lacks_banned(connection: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    let columns = users_columns(connection).await?;
    Ok(!columns.is_empty()
        && !columns
            .iter()
            .any(|(name, ..)| name.eq_ignore_ascii_case(BANNED.0)))
}

/// Every foreign-key reference of the database that does not hold.
async fn foreign_key_violations(
    connection: &mut SqliteConnection,
) -> Result<HashSet<Violation>, sqlx::Error> {
    let violations: Vec<Violation> = sqlx::query_as("PRAGMA foreign_key_check")
        .fetch_all(connection)
        .await?;
    Ok(violations.into_iter().collect())
}

/// The connection settings the rebuild changes, as they were before it.
struct ConnectionSettings {
    foreign_keys: bool,
    legacy_alter_table: bool,
}

impl ConnectionSettings {
    async fn read(connection: &mut SqliteConnection) -> Result<Self, sqlx::Error> {
        let foreign_keys = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut *connection)
            .await?;
        let legacy_alter_table = sqlx::query_scalar("PRAGMA legacy_alter_table")
            .fetch_one(&mut *connection)
            .await?;
        Ok(Self {
            foreign_keys,
            legacy_alter_table,
        })
    }

    /// Sets them back; outside any transaction, where `foreign_keys` takes effect.
    async fn restore(&self, connection: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        let switch = |on: bool| if on { "ON" } else { "OFF" };
        let statements = format!(
            "PRAGMA foreign_keys = {}; PRAGMA legacy_alter_table = {};",
            switch(self.foreign_keys),
            switch(self.legacy_alter_table),
        );
        sqlx::raw_sql(AssertSqlSafe(statements))
            .execute(connection)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(spec: &[(&str, &str, i64)]) -> Vec<(String, String, i64)> {
        spec.iter()
            .map(|(name, declared, key)| ((*name).to_owned(), (*declared).to_owned(), *key))
            .collect()
    }

    #[test]
    fn the_banned_column_may_follow_the_bundled_ones() {
        let mut with_banned = columns(&BUNDLED_COLUMNS);
        assert_eq!(bundled_layout(&with_banned), Some(false));
        with_banned.push(("banned".into(), "BOOLEAN".into(), 0));
        assert_eq!(bundled_layout(&with_banned), Some(true));
        with_banned.push(("plan".into(), "TEXT".into(), 0));
        assert_eq!(
            bundled_layout(&with_banned),
            None,
            "another column after it"
        );
        let mut other = columns(&BUNDLED_COLUMNS);
        other.push(("banned".into(), "TEXT".into(), 0));
        assert_eq!(bundled_layout(&other), None, "another type");
        assert_eq!(bundled_layout(&columns(&BUNDLED_COLUMNS[..8])), None);
    }

    #[test]
    fn only_the_bundled_columns_are_upgraded() {
        assert!(has_bundled_columns(&columns(&BUNDLED_COLUMNS)));
        let mut lower = BUNDLED_COLUMNS;
        lower[0] = ("ID", "integer", 1);
        assert!(
            has_bundled_columns(&columns(&lower)),
            "names and types ignore case"
        );

        let mut extra = columns(&BUNDLED_COLUMNS);
        extra.push(("plan".into(), "TEXT".into(), 0));
        assert!(!has_bundled_columns(&extra), "an extra column");
        assert!(
            !has_bundled_columns(&columns(&BUNDLED_COLUMNS[..8])),
            "a missing column"
        );
        let mut text_id = BUNDLED_COLUMNS;
        text_id[0] = ("id", "TEXT", 1);
        assert!(!has_bundled_columns(&columns(&text_id)), "another id type");
        let mut other_key = BUNDLED_COLUMNS;
        other_key[0].2 = 0;
        other_key[1].2 = 1;
        assert!(
            !has_bundled_columns(&columns(&other_key)),
            "another primary key"
        );
    }
}
