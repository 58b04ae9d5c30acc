//! [`EnsureUserLayer`]: the configuration a route is served with, and what
//! an app can ask of the layer (readiness, its evictor, the listener); and
//! the tower plumbing it makes: its service [`EnsureUser`], with its
//! response future and body.

use std::sync::Arc;

use tower_layer::Layer;

pub use crate::service::{EnsureUser, ResponseBody, ResponseFuture};

use crate::{
    config::Config,
    engine::Engine,
    eviction::Evictor,
    policy::{Mode, Policy},
    readiness::Readiness,
    rejection::Rejection,
    store::{OrganizationStore, UserStore},
};

/// A tower layer that authenticates each request with its Clerk session token
/// and makes sure the app's own user row exists before the handler runs.
///
/// Cloning is cheap, and clones share their caches and keys: a clone set to
/// another [`Mode`] serves other routes from the same memory. See the
/// [crate docs](crate) for an example.
#[derive(Clone)]
pub struct EnsureUserLayer {
    engine: Arc<Engine>,
    policy: Policy,
}

impl EnsureUserLayer {
    /// A layer verifying tokens as `config` says and keeping users in `store`.
    /// It does no I/O until the first request (see [`prefetch_keys`](Self::prefetch_keys)).
    ///
    /// # Panics
    ///
    /// When the HTTP client for the key endpoint cannot be built, which
    /// happens only when its TLS backend cannot start.
    pub fn new(config: Config, store: impl UserStore) -> Self {
        Self {
            engine: Arc::new(Engine::new(config, store)),
            policy: Policy::default(),
        }
    }

    /// What to do with a request without a token. Default [`Mode::Required`].
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.policy.mode = mode;
        self
    }

    /// Shorthand for `with_mode(Mode::Optional)`: requests without a token
    /// pass with no [`LocalUser`](crate::LocalUser); a bad token is still refused.
    pub fn optional(self) -> Self {
        self.with_mode(Mode::Optional)
    }

    /// On creating a user's row from a token without profile claims, fill
    /// the profile in from the Backend API. See
    /// [`ProfileFetch`](crate::ProfileFetch) for what it costs and how it
    /// fails. Default: no fetch.
    #[cfg(feature = "clerk-api")]
    #[cfg_attr(docsrs, doc(cfg(feature = "clerk-api")))]
    pub fn with_profile_fetch(mut self, fetch: crate::profile_fetch::ProfileFetch) -> Self {
        self.policy.first_sight = Some(Arc::new(fetch));
        self
    }

    /// Also resolve the active organization of each token that names one:
    /// its row and the user's membership row, kept in `store` (normally the
    /// layer's own store), created on first sight like the user's. Handlers
    /// then extract a [`LocalOrganization`](crate::LocalOrganization). See
    /// [`OrganizationStore`] for the rules. Default: organizations are not
    /// resolved.
    ///
    /// A clone taken earlier keeps resolving no organizations; this layer
    /// gets caches of its own, which every evictor of either reaches, and
    /// shares the clone's refusals (ended sessions, bans, deletions).
    pub fn with_organizations(mut self, store: impl OrganizationStore) -> Self {
        Engine::enable_organizations(&mut self.engine, Arc::new(store));
        self
    }

    /// Fetches the signing keys now rather than on the first request.
    /// Returns how many keys are held; an error when the endpoint fails.
    /// Within the key refetch cooldown after a fetch, that fetch's outcome
    /// is returned instead of fetching again.
    pub async fn prefetch_keys(&self) -> Result<usize, Rejection> {
        self.engine.prefetch_keys().await
    }

    /// The handle that forgets users in this layer's caches (and every
    /// clone's): what the webhook receiver and the eviction listener hold,
    /// and what an app calls when a row changed behind the layer's back.
    pub fn evictor(&self) -> Evictor {
        Evictor::new(Arc::clone(self.engine.caches()))
    }

    /// Shorthand for `self.evictor().forget_user(clerk_id)`: see
    /// [`Evictor::forget_user`].
    pub async fn forget_user(&self, clerk_id: &str) {
        self.evictor().forget_user(clerk_id).await;
    }

    /// Shorthand for `self.evictor().forget_all()`: see [`Evictor::forget_all`].
    pub fn forget_all_users(&self) {
        self.evictor().forget_all();
    }

    /// Starts hearing about deletions applied by other processes, and
    /// evicting those users from this layer's caches: on PostgreSQL, a
    /// background task with one connection made like `pool`'s (see
    /// [`eviction`](crate::eviction)); on SQLite, nothing to start. Either
    /// way, the sessions ended so far are read from the database, and
    /// refused.
    ///
    /// Call it once per process, with the pool of the store the layer uses
    /// (or one with the same `search_path`), and keep the returned listener
    /// for as long as the layer serves. It fails only when the first
    /// `LISTEN` (or that first read) does; later connection losses are
    /// retried in the background.
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
    pub async fn listen_for_evictions<P: crate::eviction::EvictionSource>(
        &self,
        pool: &P,
    ) -> Result<crate::eviction::EvictionListener, crate::store::StoreError> {
        let listening = crate::eviction::Listening {
            timing: self.engine.eviction_timing,
            #[cfg(feature = "postgres")]
            connection: None,
        };
        pool.start(self.evictor(), listening).await
    }

    /// As [`listen_for_evictions`](Self::listen_for_evictions), with the
    /// listener's connection made with `connection` rather than like
    /// `store`'s pool: a direct (or session-mode) connection to PostgreSQL
    /// for the listener, while the store's pool goes through a
    /// transaction-mode pooler, where `LISTEN` hears nothing. `store` (a
    /// `PgUserStore` or its pool) is still what the listener checks itself
    /// through: it sends a notification of its own there, as the store's
    /// writes are sent, and expects to hear it. `connection` must reach the
    /// same database and resolve the same schema (`search_path`) as the
    /// store's pool. On SQLite, `connection` is not used.
    ///
    /// ```no_run
    /// # async fn run(layer: ensure_user::EnsureUserLayer) -> Result<(), Box<dyn std::error::Error>> {
    /// use ensure_user::store::PgUserStore;
    ///
    /// // Through the pooler, for requests and webhooks.
    /// let store = PgUserStore::new(sqlx::PgPool::connect(&std::env::var("DATABASE_URL")?).await?);
    /// // Straight to PostgreSQL, for the listener alone.
    /// let direct = std::env::var("DIRECT_DATABASE_URL")?.parse()?;
    /// let listener = layer.listen_for_evictions_on(&store, direct).await?;
    /// # drop(listener); Ok(()) }
    /// ```
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub async fn listen_for_evictions_on<P: crate::eviction::EvictionSource>(
        &self,
        store: &P,
        connection: sqlx::postgres::PgConnectOptions,
    ) -> Result<crate::eviction::EvictionListener, crate::store::StoreError> {
        let listening = crate::eviction::Listening {
            timing: self.engine.eviction_timing,
            connection: Some(connection),
        };
        store.start(self.evictor(), listening).await
    }

    /// Whether this layer can serve requests: keys held (one fetch is tried
    /// when none are), the store reachable and its schema what the store
    /// needs ([`Readiness::store_misconfigured`]), and the eviction listener, if
    /// one runs, hearing its own notifications (see
    /// [`Readiness::eviction_listener_deaf`]). Expose it on a readiness route:
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
        Readiness::of(&self.engine).await
    }

    /// Checks the schema of the layer's stores (the users', and the
    /// organizations' when it resolves them), as readiness does.
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    pub(crate) async fn check_schema(&self) -> Result<(), crate::store::StoreError> {
        crate::readiness::check_schema(&self.engine).await
    }
}

impl std::fmt::Debug for EnsureUserLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnsureUserLayer")
            .field("mode", &self.policy.mode)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for EnsureUserLayer {
    type Service = EnsureUser<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EnsureUser::new(inner, Arc::clone(&self.engine), self.policy.clone())
    }
}
