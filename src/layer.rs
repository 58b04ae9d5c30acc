//! [`EnsureUserLayer`] and its service: token in, [`LocalUser`] out.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{Either, Full};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;

use crate::{
    Config, LocalUser, Mode, Rejection,
    cache::{CachedUser, UserCache},
    config::ProfileClaims,
    store::{DynUserStore, Profile, Resolution, StoreError, UserStore},
    telemetry,
    token::{SessionClaims, extract::find_token, keys::KeyStore, verify::Verifier},
};

/// The response body of [`EnsureUser`]: the inner service's body, or the
/// layer's own small JSON body when it refuses a request.
pub type ResponseBody<B> = Either<B, Full<Bytes>>;

/// Marks a request that passed an optional layer without a token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Anonymous;

/// A tower layer that authenticates each request with its Clerk session token
/// and makes sure the app's own user row exists before the handler runs.
///
/// Cloning is cheap, and clones share their caches and keys. See the
/// [crate docs](crate) for an example.
#[derive(Clone)]
pub struct EnsureUserLayer {
    shared: Arc<Shared>,
    mode: Mode,
}

struct Shared {
    verifier: Verifier,
    users: UserCache,
    store: Box<dyn DynUserStore>,
    cookie_suffix: Option<String>,
    max_cookies: usize,
    profile_claims: ProfileClaims,
    store_timeout: Duration,
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
                #[cfg(any(feature = "postgres", feature = "sqlite"))]
                eviction_heartbeat: config.eviction_heartbeat,
            }),
            mode: Mode::Required,
        }
    }

    /// The same layer (sharing caches and keys) in another [`Mode`].
    pub fn with_mode(&self, mode: Mode) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            mode,
        }
    }

    /// Shorthand for `with_mode(Mode::Optional)`: requests without a token
    /// pass with no [`LocalUser`]; a bad token is still refused.
    pub fn optional(&self) -> Self {
        self.with_mode(Mode::Optional)
    }

    /// Fetches the signing keys now rather than on the first request.
    /// Returns how many keys are held; an error when the endpoint fails.
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
    /// A lookup already in flight may still cache its (older) answer; so the
    /// user is forgotten once more when any such lookup must have ended (one
    /// store timeout later).
    pub async fn forget_user(&self, clerk_id: &str) {
        self.shared.forget(clerk_id).await;
        let clerk_id = clerk_id.to_owned();
        self.again_after_lookups(|shared| async move { shared.forget(&clerk_id).await });
    }

    /// Forgets every cached user, now and, as [`forget_user`](Self::forget_user)
    /// does, once more one store timeout later.
    pub fn forget_all_users(&self) {
        self.shared.users.clear();
        self.again_after_lookups(|shared| async move { shared.users.clear() });
    }

    /// Runs `forget` once every lookup in flight now must have ended (one
    /// store timeout from now), when there is a runtime to wait on.
    fn again_after_lookups<F, Fut>(&self, forget: F)
    where
        F: FnOnce(Arc<Shared>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let shared = Arc::clone(&self.shared);
            runtime.spawn(async move {
                tokio::time::sleep(shared.store_timeout).await;
                forget(shared).await;
            });
        }
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
        EnsureUser {
            inner,
            shared: Arc::clone(&self.shared),
            mode: self.mode,
        }
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

/// The service made by [`EnsureUserLayer`].
#[derive(Clone)]
pub struct EnsureUser<S> {
    inner: S,
    shared: Arc<Shared>,
    mode: Mode,
}

impl<S> std::fmt::Debug for EnsureUser<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnsureUser")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for EnsureUser<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The clone that was not polled ready stays behind (tower's guidance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        let mode = self.mode;
        Box::pin(async move {
            let span = tracing::debug_span!(
                target: "ensure_user",
                "ensure_user",
                clerk_id = tracing::field::Empty,
                outcome = tracing::field::Empty,
            );
            let authenticated = shared
                .authenticate(request.headers(), mode)
                .instrument(span.clone())
                .await;
            match authenticated {
                Ok(Some(user)) => {
                    span.record("clerk_id", user.clerk_id());
                    span.record("outcome", "authenticated");
                    request.extensions_mut().insert(user);
                }
                Ok(None) => {
                    span.record("outcome", "anonymous");
                    request.extensions_mut().insert(Anonymous);
                }
                Err(rejection) => {
                    span.record("outcome", rejection.code());
                    span.in_scope(|| log_rejection(rejection));
                    return Ok(rejection.to_response().map(Either::Right));
                }
            }
            inner
                .call(request)
                .await
                .map(|response| response.map(Either::Left))
        })
    }
}

impl Shared {
    async fn forget(&self, clerk_id: &str) {
        self.users.invalidate(clerk_id).await;
        self.verifier.forget_user(clerk_id);
    }

    async fn authenticate(
        &self,
        headers: &HeaderMap,
        mode: Mode,
    ) -> Result<Option<LocalUser>, Rejection> {
        let token = match find_token(headers, self.cookie_suffix.as_deref(), self.max_cookies)? {
            Some(token) => token,
            None if mode == Mode::Optional => return Ok(None),
            None => return Err(Rejection::MissingToken),
        };
        let claims = self.verifier.verify(token).await?;
        let load = async {
            let profile = profile_from_claims(&claims, &self.profile_claims);
            let call = self.store.find_or_create_dyn(&claims.sub, &profile);
            let started = Instant::now();
            let result = tokio::time::timeout(self.store_timeout, call)
                .await
                .map_err(|_| StoreError::TimedOut(self.store_timeout))
                .and_then(|result| result);
            let outcome = match &result {
                Ok(Resolution::Existing(_)) => "existing",
                Ok(Resolution::Created(_)) => "created",
                Ok(Resolution::Deleted) => "deleted",
                Err(_) => "error",
            };
            telemetry::store_call(outcome, started.elapsed());
            if let Ok(Resolution::Created(id)) = &result {
                tracing::info!(target: "ensure_user", clerk_id = %claims.sub, local_id = %id, "created local user");
            }
            result
        };
        match self.users.get_or_load(&claims.sub, load).await {
            Ok(CachedUser::Active(id)) => Ok(Some(LocalUser::new(id, claims))),
            Ok(CachedUser::Deleted) => Err(Rejection::UserDeleted),
            Err(error) => {
                tracing::error!(
                    target: "ensure_user",
                    clerk_id = %claims.sub,
                    %error,
                    "user store failed"
                );
                Err(Rejection::StoreUnavailable)
            }
        }
    }
}

fn profile_from_claims(claims: &SessionClaims, names: &ProfileClaims) -> Profile {
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(|value| value.as_str())
            // NUL cannot be stored in PostgreSQL text: such a value is left out.
            .filter(|value| !value.is_empty() && !value.contains('\0'))
            .map(str::to_owned)
    };
    Profile {
        email: text(&names.email),
        first_name: text(&names.first_name),
        last_name: text(&names.last_name),
        image_url: text(&names.image_url),
    }
}

fn log_rejection(rejection: Rejection) {
    telemetry::rejection(rejection.code());
    if rejection.is_outage() {
        tracing::warn!(target: "ensure_user", code = rejection.code(), "request refused: outage");
    } else {
        tracing::info!(target: "ensure_user", code = rejection.code(), "request refused");
    }
}
