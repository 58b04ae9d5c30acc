//! The database named by `DATABASE_URL`, as one of the bundled stores.

use std::{str::FromStr, time::Duration};

use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqlitePoolOptions},
};

use ensure_user::store::{PgUserStore, SqliteUserStore, StoreError};

/// The bundled store for a database URL.
pub(super) enum Database {
    Postgres(PgUserStore),
    Sqlite(SqliteUserStore),
}

/// Why the database named could not be used.
#[derive(Debug, thiserror::Error)]
pub(super) enum DatabaseError {
    #[error("DATABASE_URL must start with postgres://, postgresql:// or sqlite:")]
    UnknownScheme,
    #[error("cannot open the database: {0}")]
    Connect(#[source] sqlx::Error),
}

impl Database {
    /// Connects to `url`; a SQLite file is created when missing.
    ///
    /// PostgreSQL sessions commit without waiting for the WAL to reach the
    /// disk (`synchronous_commit = off`): a crash can then lose the last
    /// writes, but never corrupts anything, and since the checkpoint is
    /// written after the rows it covers, it is lost with them; the next run
    /// redoes them. SQLite keeps its defaults: relaxing them can corrupt a
    /// database in rollback-journal mode.
    pub(super) async fn connect(url: &str) -> Result<Self, DatabaseError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)
                .map_err(DatabaseError::Connect)?
                .options([("synchronous_commit", "off")]);
            let pool = PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(DatabaseError::Connect)?;
            Ok(Self::Postgres(PgUserStore::new(pool)))
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(DatabaseError::Connect)?
                .create_if_missing(true)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(2)
                .connect_with(options)
                .await
                .map_err(DatabaseError::Connect)?;
            Ok(Self::Sqlite(SqliteUserStore::new(pool)))
        } else {
            Err(DatabaseError::UnknownScheme)
        }
    }

    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Self::Postgres(store) => store.migrate().await,
            Self::Sqlite(store) => store.migrate().await,
        }
    }

    pub(super) fn kind(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "PostgreSQL",
            Self::Sqlite(_) => "SQLite",
        }
    }
}
