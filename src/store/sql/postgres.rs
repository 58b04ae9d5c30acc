//! PostgreSQL: `$n` placeholders, an advisory lock around the migrations,
//! and deletions, ended sessions and bans announced with `pg_notify`.

use sqlx::{PgPool, Postgres};

use super::{Bind, Dialect, SqlUserStore, Statement};
use crate::{
    eviction::{self, Announcement},
    store::StoreError,
};

/// Users in PostgreSQL.
///
/// [`delete_user`](crate::store::UserSync::delete_user) also publishes the
/// Clerk id with `pg_notify`, in the transaction that records the tombstone,
/// for other processes' layers to hear (see [`eviction`](crate::eviction));
/// so do [`end_session`](crate::store::UserSync::end_session) with the
/// session, and [`upsert_profile`](crate::store::UserSync::upsert_profile)
/// with a change of the user's ban. Deleting an organization or a
/// membership ([`OrganizationSync`](crate::store::OrganizationSync))
/// publishes `org:<organization id>` or
/// `membership:<organization id>:<user id>` alike, in the wording the
/// eviction listener reads.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use ensure_user::store::PgUserStore;
///
/// let pool = sqlx::postgres::PgPoolOptions::new()
///     .acquire_timeout(std::time::Duration::from_secs(2))
///     .connect("postgres://127.0.0.1/app").await?;
/// let store = PgUserStore::new(pool);
/// store.migrate().await?;
/// # Ok(()) }
/// ```
pub type PgUserStore = SqlUserStore<Postgres>;

impl Dialect for Postgres {
    /// A message larger than the socket's send buffer (16 KiB by default on
    /// Linux) leaves in several writes and, as sqlx 0.9.0 does not set
    /// `TCP_NODELAY`, the last write waits for the server's delayed
    /// acknowledgement, about 40 ms per statement. So a batch is cut into
    /// statements that each leave in one write.
    const STATEMENT_BYTES: usize = 12 * 1024;

    const MIGRATIONS: &'static str = concat!(
        // Serialises concurrent migrations until the creating transaction commits.
        "SELECT pg_advisory_xact_lock(7408537265401231);\n",
        include_str!("../../../migrations/postgres/0001_ensure_user.sql"),
        include_str!("../../../migrations/postgres/0002_backfill_state.sql"),
        include_str!("../../../migrations/postgres/0003_organizations.sql"),
        include_str!("../../../migrations/postgres/0004_sessions_and_bans.sql")
    );

    const NOW: &'static str = "now()";

    fn placeholder(n: usize) -> String {
        format!("${n}")
    }

    fn announce(announcement: Announcement<'_>) -> Option<Statement<'static>> {
        Some(eviction::announcement(announcement))
    }

    fn serialize_ban_writes(clerk_id: &str) -> Option<Statement<'_>> {
        // A transaction-scoped lock on (a key of this crate's, the user).
        Some(
            Statement::new("SELECT pg_advisory_xact_lock(740853726, hashtext($1))")
                .bind(Bind::Text(clerk_id)),
        )
    }

    fn announce_ban(user: &str, banned: bool, version: i64) -> Option<Statement<'static>> {
        Some(eviction::announcement(eviction::Announcement::Blocked {
            user,
            blocked: banned,
            version,
        }))
    }

    fn announce_session_end(session: &str, until_ms: i64) -> Option<Statement<'static>> {
        Some(eviction::announcement(
            eviction::Announcement::SessionEnded { session, until_ms },
        ))
    }

    async fn upgrade(_: &PgPool) -> Result<(), StoreError> {
        // Identity columns never hand an id out twice: nothing to upgrade.
        Ok(())
    }
}
