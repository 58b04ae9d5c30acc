//! [`EnsureUserLayer`]: the configuration and caches its services share, and
//! what an app can ask of them (readiness, eviction).

use std::{sync::Arc, time::Duration};

use tower_layer::Layer;

use crate::{
    Config, EnsureUser, Mode, Rejection,
    cache::UserCache,
    config::ProfileClaims,
    eviction::Ledger,
    store::{DynUserStore, StoreError, UserStore},
    token::{keys::KeyStore, verify::Verifier},
};

/// A tower layer that authenticates each request with its Clerk session token
/// and makes sure the app's own user row exists before the handler runs.
///
/// Cloning is cheap, and clones share their caches and keys. See the
/// [crate docs](crate) for an example.
#[derive(Clone)]
pub struct EnsureUserLayer {
    shared: Arc<Shared>,
    mode: Mode,
    first_sight: Option<Arc<dyn FirstSight>>,
}

/// Work done once, right after the layer created a user's row from a
/// token without profile claims.
pub(crate) trait FirstSight: Send + Sync + 'static {
    fn created<'a>(&'a self, clerk_id: &'a str) -> BoxFuture<'a, ()>;
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// What every clone of a layer and its services share.
pub(crate) struct Shared {
    pub(crate) verifier: Verifier,
    pub(crate) users: UserCache,
    pub(crate) store: Box<dyn DynUserStore>,
    pub(crate) cookie_suffix: Option<String>,
    pub(crate) max_cookies: usize,
    pub(crate) profile_claims: ProfileClaims,
    pub(crate) store_timeout: Duration,
    /// What was forgotten, for answers in flight to be checked against.
    pub(crate) ledger: Ledger,
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    eviction_heartbeat: Duration,
}

impl EnsureUserLayer {
    /// A layer verifying tokens as `config` says and keeping users in `store`.
    /// It does no I/O until the first request (see [`prefetch_keys`](Self::prefetch_keys)).
    pub fn new(config: Config, store: impl UserStore) -> Self {
        let keys = Arc::new(KeyStore::new(&config));
        Self {
            shared: Arc::new(Shared {
                verifier: Verifier::new(&config, keys),
                users: UserCache::new(config.user_cache_capacity, config.user_cache_ttl),
                store: Box::new(store),
                cookie_suffix: config.cookie_suffix,
                max_cookies: config.max_cookies,
                profile_claims: config.profile_claims,
                store_timeout: config.store_timeout,
                ledger: Ledger::default(),
                #[cfg(any(feature = "postgres", feature = "sqlite"))]
                eviction_heartbeat: config.eviction_heartbeat,
            }),
            mode: Mode::Required,
            first_sight: None,
        }
    }

    /// The same layer (sharing caches and keys) in another [`Mode`].
    pub fn with_mode(&self, mode: Mode) -> Self {
        Self {
            mode,
            ..self.clone()
        }
    }

    /// The same layer (sharing caches and keys) that, on creating a user's
    /// row from a token without profile claims, fills the profile in from
    /// the Backend API. See [`ProfileFetch`](crate::ProfileFetch) for what
    /// it costs and how it fails.
    #[cfg(feature = "clerk-api")]
    pub fn with_profile_fetch(&self, fetch: crate::ProfileFetch) -> Self {
        Self {
            first_sight: Some(Arc::new(fetch)),
            ..self.clone()
        }
    }

    /// Shorthand for `with_mode(Mode::Optional)`: requests without a token
    /// pass with no [`LocalUser`](crate::LocalUser); a bad token is still refused.
    pub fn optional(&self) -> Self {
        self.with_mode(Mode::Optional)
    }

    /// Fetches the signing keys now rather than on the first request.
    /// Returns how many keys are held; an error when the endpoint fails.
    /// Within the key refetch cooldown after a fetch, that fetch's outcome
    /// is returned instead of fetching again.
    pub async fn prefetch_keys(&self) -> Result<usize, Rejection> {
        self.shared
            .verifier
            .keys()
            .prefetch()
            .await
            .map_err(|_| Rejection::KeysUnavailable)
    }

    /// Forgets a user (and every cached token of theirs), so that the next
    /// request reads the store again. Call it when the row changed behind
    /// the layer's back; the webhook receiver does it on deletion, and the
    /// [eviction listener](crate::eviction) on other instances' deletions.
    ///
    /// A lookup of the user already in flight, however slow, cannot bring
    /// them back: its answer is checked against what was forgotten since it
    /// began, and loaded again if need be.
    pub async fn forget_user(&self, clerk_id: &str) {
        self.shared.forget(clerk_id).await;
    }

    /// Forgets every cached user, as [`forget_user`](Self::forget_user)
    /// forgets one.
    pub fn forget_all_users(&self) {
        self.shared.forget_all();
    }

    /// Starts hearing about deletions applied by other processes, and
    /// evicting those users from this layer's caches: on PostgreSQL, a
    /// background task with one connection made like `pool`'s (see
    /// [`eviction`](crate::eviction)); on SQLite, nothing to start.
    ///
    /// Call it once per process, with the pool of the store the layer uses
    /// (or one with the same `search_path`), and keep the returned listener
    /// for as long as the layer serves. It fails only when the first
    /// `LISTEN` does; later connection losses are retried in the background.
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    pub async fn listen_for_evictions<P: crate::eviction::EvictionSource>(
        &self,
        pool: &P,
    ) -> Result<crate::eviction::EvictionListener, StoreError> {
        pool.start(self.clone(), self.shared.eviction_heartbeat)
            .await
    }

    /// Whether this layer can serve requests: keys held (one fetch is tried
    /// when none are) and the store reachable. Expose it on a readiness route:
    ///
    /// ```no_run
    /// # fn routes(layer: ensure_user::EnsureUserLayer) -> axum::Router {
    /// use axum::{Json, http::StatusCode, routing::get};
    ///
    /// axum::Router::new().route("/readyz", get(move || {
    ///     let layer = layer.clone();
    ///     async move {
    ///         let readiness = layer.readiness().await;
    ///         let status = if readiness.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    ///         (status, Json(readiness))
    ///     }
    /// }))
    /// # }
    /// ```
    pub async fn readiness(&self) -> Readiness {
        let keys = self.shared.verifier.keys().health().await;
        let ping = self.shared.store.ping_dyn();
        let store_reachable = match tokio::time::timeout(self.shared.store_timeout, ping).await {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                tracing::warn!(target: "ensure_user", %error, "readiness: store unreachable");
                false
            }
            Err(_) => {
                tracing::warn!(target: "ensure_user", "readiness: store ping timed out");
                false
            }
        };
        Readiness {
            keys_held: keys.held,
            keys_age_seconds: keys.age.map(|age| age.as_secs()),
            key_endpoint_failing: keys.last_fetch_failed,
            store_reachable,
        }
    }
}

impl std::fmt::Debug for EnsureUserLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnsureUserLayer")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for EnsureUserLayer {
    type Service = EnsureUser<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EnsureUser::new(
            inner,
            Arc::clone(&self.shared),
            self.mode,
            self.first_sight.clone(),
        )
    }
}

/// What [`EnsureUserLayer::readiness`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Readiness {
    /// Signing keys held (1 for a static PEM key).
    pub keys_held: usize,
    /// Seconds since the key set was last fetched; `None` if never (or static).
    pub keys_age_seconds: Option<u64>,
    /// Whether the last key fetch failed (held keys still serve).
    pub key_endpoint_failing: bool,
    /// Whether the store answered a ping within the store timeout.
    pub store_reachable: bool,
}

impl Readiness {
    /// Ready when keys are held and the store is reachable.
    pub fn is_ready(&self) -> bool {
        self.keys_held > 0 && self.store_reachable
    }
}

impl Shared {
    /// Forgets a user: recorded first, so that an answer in flight is judged
    /// stale, then evicted from both caches.
    async fn forget(&self, clerk_id: &str) {
        self.ledger.forget_user(clerk_id);
        self.users.invalidate(clerk_id).await;
        self.verifier.forget_user(clerk_id);
    }

    fn forget_all(&self) {
        self.ledger.forget_all();
        self.users.clear();
    }
}
