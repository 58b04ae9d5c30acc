//! Several instances of the app: a deletion applied by one reaches the
//! caches of all.
//!
//! Each process keeps its own caches of users and verified tokens. A Clerk
//! `user.deleted` webhook reaches one instance, which records the tombstone
//! and evicts the user from its own layer; any other instance that has the
//! user cached would go on serving them until the entry expires (the user
//! cache TTL, 10 minutes by default).
//!
//! With PostgreSQL, `PgUserStore` publishes each
//! deletion's Clerk id with `pg_notify`, in the transaction that records the
//! tombstone: the notification goes out when the tombstone commits, and
//! never for a deletion rolled back. Each process calls
//! `EnsureUserLayer::listen_for_evictions` (or starts a `Setup`, which calls
//! it) once; its listener hears every instance's deletions and forgets those
//! users, in the user cache and the verified-token cache, within
//! milliseconds.
//!
//! The tombstone stays the source of truth. A request that misses the cache
//! reads the tombstone and gets `401 user_deleted` whether or not any
//! notification arrived; the notification only shortens the time another
//! instance may still serve the user from its cache. Nothing depends on it
//! arriving.
//!
//! # Example
//!
//! ```no_run
//! use axum::{Json, Router, routing::get};
//! use ensure_user::{Config, EnsureUserLayer, LocalUser, store::PgUserStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = sqlx::PgPool::connect(&std::env::var("DATABASE_URL")?).await?;
//! let store = PgUserStore::new(pool);
//! store.migrate().await?;
//! let layer = EnsureUserLayer::new(Config::from_env()?, store.clone());
//! let listener = layer.listen_for_evictions(store.pool()).await?;
//!
//! let app: Router = Router::new()
//!     .route("/me", get(|user: LocalUser| async move { Json(user.id()) }))
//!     .layer(layer);
//! let server = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(server, app).await?;
//! listener.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # The PostgreSQL listener
//!
//! - It holds one connection of its own for as long as it runs, opened
//!   with the given pool's connect options and acquire timeout but outside
//!   the pool, whose size it leaves alone; or, with
//!   `EnsureUserLayer::listen_for_evictions_on` (or
//!   `Setup::with_eviction_listener_on`; both need the `postgres` feature),
//!   with connect options of its own: a direct connection for the listener
//!   while the store's pool goes through a pooler.
//! - `LISTEN` needs a connection that stays one PostgreSQL session: a
//!   direct connection or a session-mode pooler. Through a transaction-mode
//!   pooler (PgBouncer in transaction mode, the pooled connection strings
//!   of managed PostgreSQL services) it is accepted and then hears nothing.
//! - The channel is `ensure_user_evict_` followed by the MD5 of the
//!   connection's current schema (`public` unless `search_path` says
//!   otherwise): within PostgreSQL's 63-byte limit whatever the schema's
//!   name, and distinct per schema, so apps in separate schemas of one
//!   database do not hear each other. The store's
//!   pool and the listener's connection must resolve the same schema; they
//!   do when built from the same URL.
//! - A lost connection is made again at once, then with a backoff from
//!   250 ms doubling to 10 s; each attempt is bounded by the pool's acquire
//!   timeout. Notifications sent while it was lost are gone, so whenever the
//!   listener starts listening, the first time or again, it clears the whole
//!   user cache (and lookups in flight then load their answers again), and
//!   reads the sessions ended so far that are still in force from
//!   `ensure_user_ended_sessions` (when that table exists), after `LISTEN`:
//!   an instance started after a revocation refuses the session too.
//! - It checks that it hears when it starts listening and after
//!   [`Config::with_eviction_heartbeat`](crate::Config::with_eviction_heartbeat)
//!   (30 s) without an announcement: within
//!   [`Config::with_eviction_probe_timeout`](crate::Config::with_eviction_probe_timeout)
//!   (5 s), its connection must answer `SELECT 1`, and a probe it sends
//!   through the given pool (`pg_notify` on the channel as that pool's
//!   connections name it, as the store's writes are sent, with a payload
//!   of its own, `probe:<nonce>`, that every instance ignores) must come
//!   back. A connection that does not answer is replaced as if it had been
//!   lost; this also keeps an idle connection alive through NAT and
//!   load-balancer idle timeouts.
//! - A listener whose probe does not come back is deaf, and is reported so
//!   within the heartbeat and the probe timeout (35 s by default):
//!   [`Readiness::eviction_listener_deaf`](crate::Readiness::eviction_listener_deaf)
//!   (not ready), the gauge `ensure_user_eviction_listener_deaf` (feature
//!   `metrics`), and one `ERROR` log naming the likely cause and the fix.
//!   While deaf it checks again at every heartbeat, and each time catches
//!   up as when it starts listening (cached answers forgotten, ended
//!   sessions read again): what other instances announce reaches this one
//!   within a heartbeat and a probe timeout, through the store. When its
//!   probe comes back it catches up once more, logs once, and is ready.
//! - A notification for an id this process never saw evicts nothing and
//!   costs nothing more.
//! - It stops on `EvictionListener::shutdown` or when dropped; closing
//!   the pool does not stop it.
//!
//! An ended session (`session:<id>:<until>`) and a change of a user's ban
//! (`blocked:<user>:<0|1>:<version>`) are announced by `PgUserStore` too,
//! in the transaction that records them.
//!
//! Profile updates are not announced. The caches hold a user's local id
//! and whether they are deleted, and [`LocalUser`](crate::LocalUser) adds
//! only the token's claims; an update (a new email, say) changes none of
//! these, and profile columns are read from the database by the app itself.
//!
//! The cost to PostgreSQL: one idle connection per process, one `NOTIFY`
//! per applied deletion (delivered to every listening process), and, per
//! process and heartbeat interval of silence, one `SELECT 1` and one
//! probe `NOTIFY`.
//!
//! # SQLite
//!
//! `listen_for_evictions`
//! takes an `SqlitePool` too, so that code can switch backends, but starts
//! nothing: there is nothing to listen to, and the instance that applies a
//! deletion already evicts the user from its own layer. It reads the
//! sessions ended so far from the file, once. Processes sharing
//! one SQLite file do not hear each other's deletions, ended sessions or
//! bans; each sees a deletion or a ban (written in the row) when its cache
//! entry for the user expires (lower the TTL with
//! [`Config::with_user_cache`](crate::Config::with_user_cache)), and a
//! session another process ended only when it starts again, or, better,
//! moves to PostgreSQL.

mod caches;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod channel;
mod ended;
#[cfg(test)]
mod interleavings;
mod ledger;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod restore;

pub(crate) use caches::{Caches, membership_key};
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) use channel::Announcement;
#[cfg(feature = "postgres")]
pub(crate) use channel::announcement;
use ledger::Ledger;
pub(crate) use ledger::Subject;

use std::sync::Arc;

#[cfg(any(feature = "postgres", feature = "sqlite"))]
use tokio::task::JoinHandle;

use crate::{clock, principal::proof::Proof, store::Resolution, telemetry};

/// The handle that forgets users, organizations and memberships in one
/// layer's caches (shared by all its clones, and reaching those of any copy
/// configured after it was cloned): what the webhook receiver, the eviction
/// listener and the app hold, from
/// [`EnsureUserLayer::evictor`](crate::EnsureUserLayer::evictor). Cheap to
/// clone.
///
/// Forgetting is recorded in the layer's ledger first, then the answer is
/// evicted from its cache and the tokens it concerns from the token cache. A
/// lookup already in flight, however slow, cannot bring it back: its answer
/// is checked against the ledger before it is served or remembered, and
/// loaded again if its subject was forgotten since the lookup began.
#[derive(Clone)]
pub struct Evictor {
    caches: Arc<Caches>,
}

impl Evictor {
    pub(crate) fn new(caches: Arc<Caches>) -> Self {
        Self { caches }
    }

    /// Forgets a user, and every cached token of theirs, so that the next
    /// request reads the store again. The webhook receiver calls it on
    /// deletion, and the listener on other instances' deletions; call it
    /// when the row changed behind the layer's back.
    pub async fn forget_user(&self, clerk_id: &str) {
        #[cfg(test)]
        crate::interleave::point("evict: ledger.forget(user)").await;
        self.caches.ledger.forget(Subject::User(clerk_id));
        for caches in self.caches.family() {
            #[cfg(test)]
            crate::interleave::point("evict: users.invalidate").await;
            caches.users.invalidate(clerk_id);
            #[cfg(test)]
            crate::interleave::point("evict: forget the user's tokens").await;
            forget_tokens(&caches, |proof| proof.user() == Some(clerk_id));
        }
    }

    /// Forgets an organization, and every cached token naming it as the
    /// active one: the next such request reads the store again.
    pub async fn forget_organization(&self, clerk_id: &str) {
        self.caches.ledger.forget(Subject::Organization(clerk_id));
        for caches in self.caches.family() {
            caches.organizations.invalidate(clerk_id);
            forget_tokens(&caches, |proof| proof.organization() == Some(clerk_id));
        }
    }

    /// Forgets a user's membership of an organization, and the user's
    /// cached tokens naming that organization as the active one.
    pub async fn forget_membership(&self, organization: &str, user: &str) {
        self.caches
            .ledger
            .forget(Subject::Membership { organization, user });
        let key = membership_key(organization, user);
        for caches in self.caches.family() {
            caches.memberships.invalidate(&key);
            forget_tokens(&caches, |proof| {
                proof.user() == Some(user) && proof.organization() == Some(organization)
            });
        }
    }

    /// Ends a session: its tokens, cached or new, are refused until no
    /// token of it can still be accepted (the longest token lifetime and
    /// the clock skew, from now). Returns that instant, in Unix ms.
    pub async fn end_session(&self, session: &str) -> i64 {
        let until_ms = clock::now_ms() + self.caches.session_afterlife_ms;
        self.end_session_until(session, until_ms).await;
        until_ms
    }

    /// Revokes a machine credential (an API key's `ak_…`, a machine token's
    /// `mt_…`, an OAuth token's `oat_…`) in this process: its cached copies
    /// are forgotten, and it is refused (`401 credential_revoked`) for
    /// [`REVOKED_CREDENTIAL_MS`] from now, long past any remembered answer,
    /// after which Clerk's own answer decides again. Returns that instant,
    /// in Unix ms. To reach every instance, record it in the store as well
    /// (`UserSync::end_session` with this instant, as the README shows).
    pub async fn revoke_credential(&self, credential_id: &str) -> i64 {
        let until_ms = clock::now_ms() + REVOKED_CREDENTIAL_MS;
        self.refuse_session_until(credential_id, until_ms).await;
        until_ms
    }

    /// Records whether a user is blocked (banned), as of `version` (Clerk's
    /// `updated_at`, Unix ms): a blocked user's tokens, cached or new, are
    /// refused until a newer state unblocks them. An older state than one
    /// recorded changes nothing. A state recorded here is kept when the
    /// eviction listener reconnects, since no store holds it.
    pub async fn block_user(&self, user: &str, blocked: bool, version: i64) {
        self.record_block(user, blocked, version, false).await;
    }

    /// As [`block_user`](Self::block_user); `in_store` says that the store
    /// holds this state (it wrote it, or announced it as written), so a
    /// listener's reconnect may forget it and ask the store again.
    pub(crate) async fn record_block(
        &self,
        user: &str,
        blocked: bool,
        version: i64,
        in_store: bool,
    ) {
        #[cfg(test)]
        crate::interleave::point("evict: bans.record").await;
        let Some(was_blocked) =
            self.caches
                .bans
                .record(user, blocked, version, clock::now_ms(), in_store)
        else {
            return;
        };
        if blocked != was_blocked {
            telemetry::ban_change(blocked);
            self.forget_user(user).await;
        } else if !blocked {
            // A row read while the user was banned may be cached, or be
            // loading and cached after the check below: recorded in the
            // ledger first, such a row is loaded again before it is served.
            #[cfg(test)]
            crate::interleave::point("evict: ledger.forget(user), an unban").await;
            self.caches.ledger.forget(Subject::User(user));
            #[cfg(test)]
            crate::interleave::point("evict: users.holds(banned)").await;
            let held = |caches: &Arc<Caches>| caches.users.holds(user, Resolution::is_banned);
            if self.caches.family().iter().any(held) {
                self.forget_user(user).await;
            }
        }
    }

    /// Forgets every cached answer: each token's next request resolves its
    /// rows again. The listener calls it whenever it starts listening,
    /// since what was announced before was not heard.
    pub fn forget_all(&self) {
        self.caches.ledger.forget_all();
        for caches in self.caches.family() {
            caches.users.clear();
            caches.organizations.clear();
            caches.memberships.clear();
        }
    }

    /// What a listener does whenever it starts listening, the first time
    /// or again: what was announced meanwhile was not heard, so every
    /// cached answer is forgotten, and, where the store's rows record bans,
    /// the bans it holds too (a ban it never got is kept).
    #[cfg(any(feature = "postgres", test))]
    pub(crate) async fn listening_again(&self, bans_in_rows: bool) {
        #[cfg(test)]
        crate::interleave::point("reconnect: forget the stored bans").await;
        if bans_in_rows {
            self.caches.bans.forget_stored();
        }
        #[cfg(test)]
        crate::interleave::point("reconnect: forget everything").await;
        self.forget_all();
    }

    /// Whether the listener last found that it does not hear its channel.
    #[cfg(feature = "postgres")]
    pub(crate) fn listener_deaf(&self) -> bool {
        self.caches
            .listener_deaf
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Records whether the listener hears its channel, for readiness.
    #[cfg(feature = "postgres")]
    pub(crate) fn set_listener_deaf(&self, deaf: bool) {
        self.caches
            .listener_deaf
            .store(deaf, std::sync::atomic::Ordering::SeqCst);
    }

    /// Ends `session` until `until_ms` (an instant another instance chose).
    async fn end_session_until(&self, session: &str, until_ms: i64) {
        telemetry::session_ended();
        self.refuse_session_until(session, until_ms).await;
    }

    /// Refuses `session`'s tokens until `until_ms`: an end heard of, or
    /// one recorded before this process started listening.
    async fn refuse_session_until(&self, session: &str, until_ms: i64) {
        #[cfg(test)]
        crate::interleave::point("evict: ended.insert").await;
        self.caches.ended.insert(session, until_ms, clock::now_ms());
        #[cfg(test)]
        crate::interleave::point("evict: ledger.forget(session)").await;
        self.caches.ledger.forget(Subject::Session(session));
        for caches in self.caches.family() {
            #[cfg(test)]
            crate::interleave::point("evict: forget the session's tokens").await;
            forget_tokens(&caches, |proof| proof.credential_id() == session);
        }
    }

    /// Acts on what another instance announced.
    #[cfg(feature = "postgres")]
    pub(crate) async fn hear(&self, announcement: Announcement<'_>) {
        match announcement {
            Announcement::User(user) => self.forget_user(user).await,
            Announcement::Organization(organization) => {
                self.forget_organization(organization).await;
            }
            Announcement::Membership { organization, user } => {
                self.forget_membership(organization, user).await;
            }
            Announcement::SessionEnded { session, until_ms } => {
                self.end_session_until(session, until_ms).await;
            }
            Announcement::Blocked {
                user,
                blocked,
                version,
                // Announced by the transaction that wrote it.
            } => self.record_block(user, blocked, version, true).await,
        }
    }
}

/// How long a credential revoked through the evictor stays refused: an
/// hour, as an ended session's tokens at most live.
pub const REVOKED_CREDENTIAL_MS: i64 = 3_600_000;

/// Forgets the credentials in `caches` whose proofs are `doomed`.
fn forget_tokens(caches: &Caches, doomed: impl Fn(&Proof) -> bool) {
    if let Some(tokens) = &caches.tokens {
        tokens.forget_where(|verified| doomed(&verified.proof));
    }
}

impl std::fmt::Debug for Evictor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evictor").finish_non_exhaustive()
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
/// A database that can tell this process about deletions applied by other
/// processes: a `PgUserStore` or its `sqlx::PgPool` (listened to), a
/// `SqliteUserStore` or its `sqlx::SqlitePool` (nothing to listen to).
/// Sealed.
pub trait EvictionSource: sealed::Start {}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl<T: sealed::Start> EvictionSource for T {}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) use sealed::{Listening, Timing};

#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod sealed {
    use std::{future::Future, time::Duration};

    use super::{EvictionListener, Evictor};
    use crate::store::StoreError;

    /// When a listener checks that it hears, from the configuration.
    #[derive(Debug, Clone, Copy)]
    pub struct Timing {
        /// Silence before a check; while deaf, the time between checks.
        pub heartbeat: Duration,
        /// The time a check may take.
        pub probe_timeout: Duration,
    }

    /// How a listener is started.
    #[derive(Debug, Clone)]
    pub struct Listening {
        pub timing: Timing,
        /// The connection to listen on, when not one made like the pool's.
        #[cfg(feature = "postgres")]
        pub connection: Option<sqlx::postgres::PgConnectOptions>,
    }

    /// Starts a listener evicting with `evictor`, as `listening` says.
    pub trait Start: Send + Sync {
        fn start(
            &self,
            evictor: Evictor,
            listening: Listening,
        ) -> impl Future<Output = Result<EvictionListener, StoreError>> + Send {
            self.start_with(evictor, listening, false)
        }

        /// As `start`; `bans_in_rows` says that the store's rows record
        /// bans, so that a listener that may have missed an announcement
        /// drops the bans it holds in memory and reads the rows again.
        fn start_with(
            &self,
            evictor: Evictor,
            listening: Listening,
            bans_in_rows: bool,
        ) -> impl Future<Output = Result<EvictionListener, StoreError>> + Send;
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
/// The background task that evicts users deleted by other processes from
/// this process's caches. Made by `EnsureUserLayer::listen_for_evictions`
/// (and by `Setup::start`); it stops on [`shutdown`](Self::shutdown) or when dropped.
#[derive(Debug)]
#[must_use = "the listener stops when dropped"]
pub struct EvictionListener {
    /// `None` for a backend with nothing to listen to.
    task: Option<JoinHandle<()>>,
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl EvictionListener {
    /// Whether the task is running, connected or reconnecting: `true` on
    /// PostgreSQL until the listener is shut down; always `false` on SQLite.
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|task| !task.is_finished())
    }

    /// Stops the task and waits for it to end.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl Drop for EvictionListener {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A bundled store listens through its pool.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl<DB> sealed::Start for crate::store::SqlUserStore<DB>
where
    DB: crate::store::Dialect,
    sqlx::Pool<DB>: sealed::Start,
{
    async fn start_with(
        &self,
        evictor: Evictor,
        listening: Listening,
        _: bool,
    ) -> Result<EvictionListener, crate::store::StoreError> {
        self.pool()
            .start_with(evictor, listening, self.records_bans())
            .await
    }
}

/// Nothing to listen to: the instance applying a deletion evicts it
/// itself. The sessions ended so far are taken from the file, once.
#[cfg(feature = "sqlite")]
impl sealed::Start for sqlx::SqlitePool {
    async fn start_with(
        &self,
        evictor: Evictor,
        _: Listening,
        _: bool,
    ) -> Result<EvictionListener, crate::store::StoreError> {
        let restored = restore::from_sqlite(self, &evictor).await?;
        tracing::debug!(target: "ensure_user", restored, "ended sessions loaded");
        Ok(EvictionListener { task: None })
    }
}
