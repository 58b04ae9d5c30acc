//! What a process takes from the database when it starts listening: the
//! sessions any instance ended whose tokens could still be accepted, so
//! that an instance started (or listening again) after a revocation refuses
//! them too. Read from the bundled `ensure_user_ended_sessions` table
//! (migration `0004`) when it exists; without it there is nothing to take.

use super::Evictor;
use crate::clock;

/// Whether the table exists, on PostgreSQL (in the current `search_path`).
#[cfg(feature = "postgres")]
const POSTGRES_HAS_TABLE: &str = "SELECT to_regclass('ensure_user_ended_sessions') IS NOT NULL";

/// The ended sessions still in force, on PostgreSQL.
#[cfg(feature = "postgres")]
const POSTGRES_IN_FORCE: &str =
    "SELECT session_id, until_ms FROM ensure_user_ended_sessions WHERE until_ms > $1";

/// Whether the table exists, on SQLite.
#[cfg(feature = "sqlite")]
const SQLITE_HAS_TABLE: &str = "SELECT EXISTS (SELECT 1 FROM sqlite_master \
    WHERE type = 'table' AND name = 'ensure_user_ended_sessions')";

/// The ended sessions still in force, on SQLite.
#[cfg(feature = "sqlite")]
const SQLITE_IN_FORCE: &str =
    "SELECT session_id, until_ms FROM ensure_user_ended_sessions WHERE until_ms > ?1";

/// Refuses the ended sessions recorded in PostgreSQL, read on `connection`
/// (the listener's, once it listens: an end committed after the read is
/// heard); returns how many.
#[cfg(feature = "postgres")]
pub(super) async fn from_postgres(
    connection: &mut sqlx::postgres::PgListener,
    evictor: &Evictor,
) -> Result<usize, sqlx::Error> {
    let exists: bool = sqlx::query_scalar(POSTGRES_HAS_TABLE)
        .fetch_one(&mut *connection)
        .await?;
    if !exists {
        return Ok(0);
    }
    let sessions: Vec<(String, i64)> = sqlx::query_as(POSTGRES_IN_FORCE)
        .bind(clock::now_ms())
        .fetch_all(&mut *connection)
        .await?;
    Ok(restore(evictor, sessions).await)
}

/// Refuses the ended sessions recorded in SQLite; returns how many.
#[cfg(feature = "sqlite")]
pub(super) async fn from_sqlite(
    pool: &sqlx::SqlitePool,
    evictor: &Evictor,
) -> Result<usize, sqlx::Error> {
    let exists: bool = sqlx::query_scalar(SQLITE_HAS_TABLE).fetch_one(pool).await?;
    if !exists {
        return Ok(0);
    }
    let sessions: Vec<(String, i64)> = sqlx::query_as(SQLITE_IN_FORCE)
        .bind(clock::now_ms())
        .fetch_all(pool)
        .await?;
    Ok(restore(evictor, sessions).await)
}

async fn restore(evictor: &Evictor, sessions: Vec<(String, i64)>) -> usize {
    for (session, until_ms) in &sessions {
        evictor.refuse_session_until(session, *until_ms).await;
    }
    sessions.len()
}
