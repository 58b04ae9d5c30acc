//! [`EnsureUser`], the service of [`EnsureUserLayer`](crate::EnsureUserLayer):
//! token in, [`LocalUser`] out.
//!
//! A request whose token was verified before, and whose entry remembers the
//! local id under the current user generation, is served synchronously in
//! `call`: one token-cache lookup, no boxed future, no await. Anything else
//! (a new token, a forgotten user) takes the asynchronous path.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{Either, Full};
use pin_project_lite::pin_project;
use tower_service::Service;
use tracing::{Instrument, Span};

use crate::{
    LocalUser, Mode, Rejection,
    cache::CachedUser,
    config::ProfileClaims,
    layer::{FirstSight, Shared},
    store::{Profile, Resolution, StoreError},
    telemetry,
    token::{SessionClaims, extract::find_token, verify::VerifiedToken},
};

/// The response body of [`EnsureUser`]: the inner service's body, or the
/// layer's own small JSON body when it refuses a request.
pub type ResponseBody<B> = Either<B, Full<Bytes>>;

/// Lookups of one user a request makes at most while the user keeps being
/// forgotten under it.
const MAX_LOOKUPS: usize = 3;

/// Marks a request that passed an optional layer without a token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Anonymous;

/// The service made by [`EnsureUserLayer`](crate::EnsureUserLayer).
#[derive(Clone)]
pub struct EnsureUser<S> {
    inner: S,
    shared: Arc<Shared>,
    mode: Mode,
    first_sight: Option<Arc<dyn FirstSight>>,
}

impl<S> EnsureUser<S> {
    pub(crate) fn new(
        inner: S,
        shared: Arc<Shared>,
        mode: Mode,
        first_sight: Option<Arc<dyn FirstSight>>,
    ) -> Self {
        Self {
            inner,
            shared,
            mode,
            first_sight,
        }
    }
}

impl<S> std::fmt::Debug for EnsureUser<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnsureUser")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// What the synchronous look at a request decided.
enum Decision {
    /// Authenticated from the caches alone.
    User(LocalUser),
    /// No token, and the layer is optional.
    Anonymous,
    Refused(Rejection),
    /// Needs the asynchronous path: the token's verification (`None`) or,
    /// for a verified token, the user cache or the store.
    Lookup(Option<Arc<VerifiedToken>>),
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for EnsureUser<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let span = tracing::debug_span!(
            target: "ensure_user",
            "ensure_user",
            clerk_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let decision = self.shared.decide_from_caches(request.headers(), self.mode);
        let kind = match decision {
            Decision::User(user) => {
                record_user(&span, &user);
                request.extensions_mut().insert(user);
                Kind::Inner {
                    future: self.inner.call(request),
                }
            }
            Decision::Anonymous => {
                span.record("outcome", "anonymous");
                request.extensions_mut().insert(Anonymous);
                Kind::Inner {
                    future: self.inner.call(request),
                }
            }
            Decision::Refused(rejection) => Kind::Refused {
                response: Some(refuse(&span, rejection)),
            },
            Decision::Lookup(verified) => Kind::Lookup {
                future: self.lookup(request, verified, span),
            },
        };
        ResponseFuture { kind }
    }
}

impl<S> EnsureUser<S> {
    /// The asynchronous path, boxed: rare, and large.
    fn lookup<ReqBody, ResBody>(
        &mut self,
        mut request: Request<ReqBody>,
        verified: Option<Arc<VerifiedToken>>,
        span: Span,
    ) -> BoxFuture<Result<Response<ResponseBody<ResBody>>, S::Error>>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send,
        ReqBody: Send + 'static,
    {
        // The clone that was not polled ready stays behind (tower's guidance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        let mode = self.mode;
        let first_sight = self.first_sight.clone();
        Box::pin(async move {
            let authenticated = shared
                .authenticate(request.headers(), mode, verified, first_sight.as_deref())
                .instrument(span.clone())
                .await;
            match authenticated {
                Ok(Some(user)) => {
                    record_user(&span, &user);
                    request.extensions_mut().insert(user);
                }
                Ok(None) => {
                    span.record("outcome", "anonymous");
                    request.extensions_mut().insert(Anonymous);
                }
                Err(rejection) => return Ok(refuse(&span, rejection).map(Either::Right)),
            }
            inner
                .call(request)
                .await
                .map(|response| response.map(Either::Left))
        })
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pin_project! {
    /// The response future of [`EnsureUser`].
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProjection]
    enum Kind<F, B, E> {
        Inner { #[pin] future: F },
        Refused { response: Option<Response<Full<Bytes>>> },
        Lookup { future: BoxFuture<Result<Response<ResponseBody<B>>, E>> },
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProjection::Inner { future } => future
                .poll(cx)
                .map(|result| result.map(|response| response.map(Either::Left))),
            KindProjection::Refused { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion")
                .map(Either::Right))),
            KindProjection::Lookup { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, B, E> std::fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

fn record_user(span: &Span, user: &LocalUser) {
    // Nothing listens on most requests: skip the recording then.
    if span.is_disabled() {
        return;
    }
    span.record("clerk_id", user.clerk_id());
    span.record("outcome", "authenticated");
}

fn refuse(span: &Span, rejection: Rejection) -> Response<Full<Bytes>> {
    span.record("outcome", rejection.code());
    span.in_scope(|| log_rejection(rejection));
    rejection.to_response()
}

impl Shared {
    /// Decides from the caches alone when it can, without awaiting anything.
    fn decide_from_caches(&self, headers: &HeaderMap, mode: Mode) -> Decision {
        let token = match find_token(headers, self.cookie_suffix.as_deref(), self.max_cookies) {
            Ok(Some(token)) => token,
            Ok(None) if mode == Mode::Optional => return Decision::Anonymous,
            Ok(None) => return Decision::Refused(Rejection::MissingToken),
            Err(rejection) => return Decision::Refused(rejection),
        };
        let generation = self.ledger.generation();
        let cached = self.verifier.cached(token);
        telemetry::token_cache(cached.is_some());
        match cached {
            Some(Ok(verified)) => match verified.user(generation) {
                Some(id) => {
                    telemetry::user_cache(true);
                    Decision::User(LocalUser::new(id, verified))
                }
                None => Decision::Lookup(Some(verified)),
            },
            Some(Err(rejection)) => Decision::Refused(rejection),
            None => Decision::Lookup(None),
        }
    }

    /// The asynchronous path; `verified` is the token's cache entry when
    /// `decide_from_caches` found one, so the cache is not searched twice.
    async fn authenticate(
        &self,
        headers: &HeaderMap,
        mode: Mode,
        verified: Option<Arc<VerifiedToken>>,
        first_sight: Option<&dyn FirstSight>,
    ) -> Result<Option<LocalUser>, Rejection> {
        let token = match find_token(headers, self.cookie_suffix.as_deref(), self.max_cookies)? {
            Some(token) => token,
            None if mode == Mode::Optional => return Ok(None),
            None => return Err(Rejection::MissingToken),
        };
        let verified = match verified {
            Some(verified) => verified,
            None => self.verifier.verify_new(token).await?,
        };
        let sub = &verified.claims.sub;
        // An answer loaded while the user was being forgotten is loaded
        // again; only a user forgotten over and over runs out of attempts.
        for _ in 0..MAX_LOOKUPS {
            let stamp = self.ledger.stamp();
            let load = self.load_user(&verified.claims, first_sight);
            let answer = match self.users.get_or_load(sub, stamp, load).await {
                Ok(answer) => answer,
                Err(error) => {
                    tracing::error!(target: "ensure_user", clerk_id = %sub, %error, "user store failed");
                    return Err(Rejection::StoreUnavailable);
                }
            };
            let id = match answer.user {
                CachedUser::Active(id) => id,
                // A tombstone is forever: no need to ask whether it is stale.
                CachedUser::Deleted => return Err(Rejection::UserDeleted),
            };
            let Some(generation) = self.ledger.confirm(sub, answer.stamp) else {
                self.users.invalidate(sub).await;
                continue;
            };
            verified.remember_user(generation, id);
            return Ok(Some(LocalUser::new(id, verified)));
        }
        tracing::warn!(target: "ensure_user", clerk_id = %sub, "user forgotten during every lookup");
        Err(Rejection::StoreUnavailable)
    }

    /// The store call behind a user-cache miss: find or create the row,
    /// bounded by the store timeout, then the first-sight work for a row
    /// just created without a profile.
    async fn load_user(
        &self,
        claims: &SessionClaims,
        first_sight: Option<&dyn FirstSight>,
    ) -> Result<Resolution, StoreError> {
        let profile = profile_from_claims(claims, &self.profile_claims);
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
            if let Some(first_sight) = first_sight.filter(|_| profile.is_empty()) {
                first_sight.created(&claims.sub).await;
            }
        }
        result
    }
}

fn profile_from_claims(claims: &SessionClaims, names: &ProfileClaims) -> Profile {
    let text = |name: &str| claims.get(name).and_then(|value| value.as_str());
    Profile::from_reported(
        text(&names.email),
        text(&names.first_name),
        text(&names.last_name),
        text(&names.image_url),
    )
}

fn log_rejection(rejection: Rejection) {
    telemetry::rejection(rejection.code());
    if rejection.is_outage() {
        tracing::warn!(target: "ensure_user", code = rejection.code(), "request refused: outage");
    } else {
        tracing::info!(target: "ensure_user", code = rejection.code(), "request refused");
    }
}
