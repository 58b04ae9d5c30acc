//! The PostgreSQL listener: `LISTEN` on the deletions channel, evict each
//! announced user, and make the connection again, with backoff, when it is
//! lost or stops answering.

use std::{fmt, sync::Arc, time::Duration};

use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgListener, PgPoolOptions},
};

use super::{
    EvictionListener, Evictor,
    channel::{self, SELECT_CHANNEL},
    restore, sealed,
};
use crate::{store::StoreError, telemetry};

/// The wait after a failed attempt to listen again; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(10);

impl sealed::Start for PgPool {
    async fn start_with(
        &self,
        evictor: Evictor,
        heartbeat: Duration,
        bans_in_rows: bool,
    ) -> Result<EvictionListener, StoreError> {
        let database = Database {
            options: self.connect_options(),
            acquire_timeout: self.options().get_acquire_timeout(),
            bans_in_rows,
        };
        let listener = database.listen(&evictor).await?;
        tracing::info!(target: "ensure_user", "eviction listener started");
        let task = tokio::spawn(run(database, evictor, listener, heartbeat));
        Ok(EvictionListener { task: Some(task) })
    }
}

/// Where the listener connects: the given pool's database and acquire timeout.
struct Database {
    options: Arc<PgConnectOptions>,
    acquire_timeout: Duration,
    /// Whether the store's rows record bans (then those held in memory are
    /// dropped when listening again).
    bans_in_rows: bool,
}

impl Database {
    /// A connection listening on the deletions channel. Deletions announced
    /// before it listened were not heard, so every cached user is forgotten,
    /// and the sessions ended so far are read from the database.
    ///
    /// Each connection comes from a one-connection pool of its own: one
    /// given up as unresponsive may take long to close (dropping a listener
    /// sends `UNLISTEN` and waits for the answer), and must not hold up the next.
    async fn listen(&self, evictor: &Evictor) -> Result<PgListener, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(self.acquire_timeout)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(PgConnectOptions::clone(&self.options));
        let mut listener = PgListener::connect_with(&pool).await?;
        // Report a lost connection at once: `run` makes a new one.
        listener.eager_reconnect(false);
        let channel: String = sqlx::query_scalar(SELECT_CHANNEL)
            .fetch_one(&mut listener)
            .await?;
        listener.listen(&channel).await?;
        evictor.listening_again(self.bans_in_rows).await;
        let restored = restore::from_postgres(&mut listener, evictor).await?;
        tracing::debug!(target: "ensure_user", restored, "ended sessions loaded");
        Ok(listener)
    }

    /// Listens again: at once, then after a wait doubling from
    /// [`FIRST_RETRY`] to [`MAX_RETRY`], until it succeeds.
    async fn listen_again(&self, evictor: &Evictor) -> PgListener {
        let mut wait = FIRST_RETRY;
        loop {
            match self.listen(evictor).await {
                Ok(listener) => return listener,
                Err(error) => {
                    tracing::warn!(
                        target: "ensure_user",
                        %error,
                        retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "eviction listener could not listen again"
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_RETRY);
                }
            }
        }
    }
}

/// Evicts announced users, and listens again whenever the connection is
/// lost, until the task is aborted.
async fn run(database: Database, evictor: Evictor, mut listener: PgListener, heartbeat: Duration) {
    loop {
        let lost = receive(&mut listener, &evictor, heartbeat).await;
        drop(listener);
        telemetry::eviction_connection_lost();
        tracing::warn!(target: "ensure_user", reason = %lost, "eviction listener lost its connection");
        listener = database.listen_again(&evictor).await;
        tracing::info!(target: "ensure_user", "eviction listener listening again; user cache cleared");
    }
}

/// Why a connection was given up.
enum Lost {
    Closed,
    Failed(sqlx::Error),
    Unresponsive,
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("connection closed"),
            Self::Failed(error) => write!(f, "{error}"),
            Self::Unresponsive => f.write_str("no answer to the heartbeat query"),
        }
    }
}

/// Evicts each announced user; after `heartbeat` of silence, checks that
/// the connection still answers. Returns when it is lost.
async fn receive(listener: &mut PgListener, evictor: &Evictor, heartbeat: Duration) -> Lost {
    loop {
        // `try_recv` is cancel-safe: a notification half read stays buffered.
        match tokio::time::timeout(heartbeat, listener.try_recv()).await {
            Ok(Ok(Some(notification))) => {
                telemetry::eviction_notification();
                // Anything this version did not send evicts nothing.
                if let Some(announcement) = channel::parse(notification.payload()) {
                    evictor.hear(announcement).await;
                }
            }
            Ok(Ok(None)) => return Lost::Closed,
            Ok(Err(error)) => return Lost::Failed(error),
            Err(_silence) => {
                let ping = sqlx::query("SELECT 1").execute(&mut *listener);
                match tokio::time::timeout(heartbeat, ping).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => return Lost::Failed(error),
                    Err(_) => return Lost::Unresponsive,
                }
            }
        }
    }
}
