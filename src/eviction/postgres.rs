//! The PostgreSQL listener: `LISTEN` on the deletions channel, evict each
//! announced user, and make the connection again, with backoff, when it is
//! lost or stops answering. In silence it probes its channel with a
//! notification of its own, sent as the store's writes are, and reports
//! itself deaf when that does not come back.

use std::{fmt, time::Duration};

use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgQueryResult},
};
use tokio::{
    task::JoinHandle,
    time::{Instant, timeout_at},
};

use super::{
    EvictionListener, Evictor, Listening, Timing,
    channel::{self, NOTIFY, SELECT_CHANNEL},
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
        listening: Listening,
        bans_in_rows: bool,
    ) -> Result<EvictionListener, StoreError> {
        let database = Database {
            options: listening
                .connection
                .unwrap_or_else(|| PgConnectOptions::clone(&self.connect_options())),
            probes: self.clone(),
            acquire_timeout: self.options().get_acquire_timeout(),
            bans_in_rows,
        };
        let listener = database.listen(&evictor).await?;
        tracing::info!(target: "ensure_user", "eviction listener started");
        telemetry::eviction_listener_deaf(evictor.listener_deaf());
        let task = tokio::spawn(run(database, evictor, listener, listening.timing));
        Ok(EvictionListener { task: Some(task) })
    }
}

/// Where the listener connects, and where it sends its probes.
struct Database {
    /// The listener's connection: the given pool's, or one of its own.
    options: PgConnectOptions,
    /// The pool the probes go through: the store's, whose writes the
    /// listener must hear.
    probes: PgPool,
    /// Bounds each attempt to connect.
    acquire_timeout: Duration,
    /// Whether the store's rows record bans (then those held in memory are
    /// dropped when listening again).
    bans_in_rows: bool,
}

impl Database {
    /// A connection listening on the deletions channel, caught up.
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
            .connect_lazy_with(self.options.clone());
        let mut listener = PgListener::connect_with(&pool).await?;
        // Report a lost connection at once: `run` makes a new one.
        listener.eager_reconnect(false);
        let channel: String = sqlx::query_scalar(SELECT_CHANNEL)
            .fetch_one(&mut listener)
            .await?;
        listener.listen(&channel).await?;
        self.catch_up(&mut listener, evictor).await?;
        Ok(listener)
    }

    /// Makes up for what may have been announced unheard: every cached
    /// answer is forgotten (and the bans the rows hold), and the sessions
    /// ended so far are read from the database. Run after `LISTEN`, so
    /// that nothing committed after the read goes unheard, unless deaf.
    async fn catch_up(
        &self,
        listener: &mut PgListener,
        evictor: &Evictor,
    ) -> Result<(), sqlx::Error> {
        evictor.listening_again(self.bans_in_rows).await;
        let restored = restore::from_postgres(listener, evictor).await?;
        tracing::debug!(target: "ensure_user", restored, "ended sessions loaded");
        Ok(())
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
                        retry_in_ms = millis(wait),
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
async fn run(database: Database, evictor: Evictor, mut listener: PgListener, timing: Timing) {
    // A listener that stops is no longer deaf: nothing is listening.
    let _stopped = Stopped(evictor.clone());
    loop {
        let lost = receive(&database, &mut listener, &evictor, timing).await;
        drop(listener);
        telemetry::eviction_connection_lost();
        tracing::warn!(target: "ensure_user", reason = %lost, "eviction listener lost its connection");
        listener = database.listen_again(&evictor).await;
        tracing::info!(target: "ensure_user", "eviction listener listening again; user cache cleared");
    }
}

/// Clears the listener's deafness when its task ends.
struct Stopped(Evictor);

impl Drop for Stopped {
    fn drop(&mut self) {
        if self.0.listener_deaf() {
            self.0.set_listener_deaf(false);
            telemetry::eviction_listener_deaf(false);
        }
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

impl From<sqlx::Error> for Lost {
    fn from(error: sqlx::Error) -> Self {
        Self::Failed(error)
    }
}

/// Evicts each announced user, and checks that it hears: at once, after
/// each `heartbeat` without an announcement, and, while deaf, every
/// `heartbeat`. Returns when the connection is lost.
async fn receive(
    database: &Database,
    listener: &mut PgListener,
    evictor: &Evictor,
    timing: Timing,
) -> Lost {
    let mut check_at = Instant::now();
    loop {
        // `try_recv` is cancel-safe: a notification half read stays buffered.
        match timeout_at(check_at, listener.try_recv()).await {
            Ok(Ok(Some(notification))) => {
                if hear(evictor, notification.payload()).await && !evictor.listener_deaf() {
                    check_at = Instant::now() + timing.heartbeat;
                }
            }
            Ok(Ok(None)) => return Lost::Closed,
            Ok(Err(error)) => return Lost::Failed(error),
            Err(_due) => {
                let checked = match check(database, listener, evictor, timing.probe_timeout).await {
                    Ok(probe) => conclude(probe, database, listener, evictor, timing).await,
                    Err(lost) => Err(lost),
                };
                if let Err(lost) = checked {
                    return lost;
                }
                check_at = Instant::now() + timing.heartbeat;
            }
        }
    }
}

/// Acts on a notification; whether it was an announcement (another
/// instance's probe is none, and is ignored).
async fn hear(evictor: &Evictor, payload: &str) -> bool {
    if channel::is_probe(payload) {
        return false;
    }
    telemetry::eviction_notification();
    // Anything this version did not send evicts nothing.
    if let Some(announcement) = channel::parse(payload) {
        evictor.hear(announcement).await;
    }
    true
}

/// What a check found.
enum Probe {
    /// The listener's own notification came back.
    Heard,
    /// It was sent, and did not come back in time.
    NotHeard,
    /// It could not be sent: nothing is known of hearing.
    Unsent(String),
}

/// Checks, within `probe_timeout`, that the connection answers and that a
/// notification sent through the store's pool, as its writes are, comes
/// back on it. An unanswered connection is lost.
async fn check(
    database: &Database,
    listener: &mut PgListener,
    evictor: &Evictor,
    probe_timeout: Duration,
) -> Result<Probe, Lost> {
    let deadline = Instant::now() + probe_timeout;
    let probe = channel::probe();
    // Sent while the connection answers its query (a notification arriving
    // meanwhile is kept for `try_recv`).
    let mut sending = Sending(tokio::spawn({
        let (pool, probe) = (database.probes.clone(), probe.clone());
        async move { sqlx::query(NOTIFY).bind(probe).execute(&pool).await }
    }));
    match timeout_at(deadline, sqlx::query("SELECT 1").execute(&mut *listener)).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => return Err(Lost::Failed(error)),
        Err(_) => return Err(Lost::Unresponsive),
    }
    match timeout_at(deadline, &mut sending.0).await {
        Ok(Ok(Ok(_))) => {}
        Ok(Ok(Err(error))) => return Ok(Probe::Unsent(error.to_string())),
        Ok(Err(error)) => return Ok(Probe::Unsent(error.to_string())),
        Err(_) => return Ok(Probe::Unsent("timed out".to_owned())),
    }
    loop {
        match timeout_at(deadline, listener.try_recv()).await {
            Ok(Ok(Some(notification))) if notification.payload() == probe => {
                return Ok(Probe::Heard);
            }
            Ok(Ok(Some(notification))) => {
                hear(evictor, notification.payload()).await;
            }
            Ok(Ok(None)) => return Err(Lost::Closed),
            Ok(Err(error)) => return Err(Lost::Failed(error)),
            Err(_) => return Ok(Probe::NotHeard),
        }
    }
}

/// A probe being sent, given up when the check ends.
struct Sending(JoinHandle<Result<PgQueryResult, sqlx::Error>>);

impl Drop for Sending {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Records what a check found. A listener that becomes deaf says so once,
/// and, until it hears again, catches up at every check: answers cached
/// are then relied on for one heartbeat (and a check) at most. One that
/// hears again says so once, and catches up on what it missed.
async fn conclude(
    probe: Probe,
    database: &Database,
    listener: &mut PgListener,
    evictor: &Evictor,
    timing: Timing,
) -> Result<(), Lost> {
    let was_deaf = evictor.listener_deaf();
    match probe {
        Probe::Heard if was_deaf => {
            database.catch_up(listener, evictor).await?;
            evictor.set_listener_deaf(false);
            telemetry::eviction_listener_deaf(false);
            tracing::info!(
                target: "ensure_user",
                "eviction listener hears its channel again; cached answers forgotten, \
                 ended sessions read again"
            );
        }
        Probe::Heard => {}
        Probe::NotHeard => {
            if !was_deaf {
                evictor.set_listener_deaf(true);
                telemetry::eviction_listener_deaf(true);
                tracing::error!(
                    target: "ensure_user",
                    probe_timeout_ms = millis(timing.probe_timeout),
                    recheck_every_ms = millis(timing.heartbeat),
                    "eviction listener is deaf: a notification it sent on its channel did not \
                     come back, so deletions, bans and ended sessions applied by other \
                     instances are not heard. The likely cause is a transaction-mode pooler \
                     (PgBouncer in transaction mode, or the pooled connection string of a \
                     managed PostgreSQL service) between the listener and PostgreSQL, where \
                     LISTEN is accepted and then hears nothing. Fix: give the listener a \
                     direct or session-mode connection (EnsureUserLayer::listen_for_evictions_on, \
                     Setup::with_eviction_listener_on) on the same database and search_path \
                     as the store. Until it hears, cached answers are checked against the \
                     database again at every heartbeat, and readiness reports \
                     eviction_listener_deaf"
                );
            }
            database.catch_up(listener, evictor).await?;
        }
        Probe::Unsent(error) => {
            tracing::warn!(
                target: "ensure_user",
                %error,
                "eviction listener could not send its probe through the store's pool"
            );
            if was_deaf {
                database.catch_up(listener, evictor).await?;
            }
        }
    }
    Ok(())
}

/// A duration in whole milliseconds, for logs.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
