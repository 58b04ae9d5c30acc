//! What a backend does, inside a deletion's tombstone transaction, to tell
//! other processes: PostgreSQL publishes the Clerk id with `pg_notify`;
//! SQLite has no one to tell.

use std::future::Future;

/// The channel deletions are published on: `ensure_user_evict_` followed by
/// the MD5 of the connection's current schema (50 bytes in all, within
/// PostgreSQL's 63-byte limit for any schema name, and distinct per schema).
/// An SQL expression, so that publisher and listener name it the same way.
#[cfg(feature = "postgres")]
macro_rules! channel {
    () => {
        "'ensure_user_evict_' || md5(coalesce(current_schema(), ''))"
    };
}

/// Selects the channel name, for the listener.
#[cfg(feature = "postgres")]
pub(crate) const SELECT_CHANNEL: &str = concat!("SELECT ", channel!());

/// Announces a deletion, in the transaction that records its tombstone, so
/// that the announcement is sent when (and only if) the tombstone commits.
pub(super) trait AnnounceDeletion: sqlx::Database {
    fn announce(
        connection: &mut Self::Connection,
        clerk_id: &str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
}

#[cfg(feature = "postgres")]
impl AnnounceDeletion for sqlx::Postgres {
    async fn announce(
        connection: &mut sqlx::PgConnection,
        clerk_id: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(concat!("SELECT pg_notify(", channel!(), ", $1)"))
            .bind(clerk_id)
            .execute(connection)
            .await?;
        Ok(())
    }
}

/// Nothing to do: no other process listens to an SQLite database.
#[cfg(feature = "sqlite")]
impl AnnounceDeletion for sqlx::Sqlite {
    async fn announce(_: &mut sqlx::SqliteConnection, _: &str) -> Result<(), sqlx::Error> {
        Ok(())
    }
}
