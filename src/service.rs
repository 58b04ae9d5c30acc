//! [`EnsureUser`], the service of [`EnsureUserLayer`](crate::EnsureUserLayer):
//! it asks the [engine](crate::engine) what to do with each request and
//! either calls the inner service or answers the refusal itself.
//!
//! A request the engine decides from memory (the repeat path) is handed on
//! synchronously in `call`: no boxed future, no await. Anything else takes
//! the asynchronous path, boxed.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{
        Arc, LazyLock,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Extensions, HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower_service::Service;
use tracing::{Instrument, Span};

use crate::{
    engine::{Decision, Engine, Pending},
    policy::Policy,
    principal::{Principal, Subject},
    rejection::Rejection,
    telemetry,
};

/// Marks a request that passed an optional layer without a token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Anonymous;

/// The service made by [`EnsureUserLayer`](crate::EnsureUserLayer).
#[derive(Clone)]
pub struct EnsureUser<S> {
    inner: S,
    engine: Arc<Engine>,
    policy: Policy,
}

impl<S> EnsureUser<S> {
    pub(crate) fn new(inner: S, engine: Arc<Engine>, policy: Policy) -> Self {
        Self {
            inner,
            engine,
            policy,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> std::fmt::Debug for EnsureUser<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnsureUser")
            .field("mode", &self.policy.mode)
            .finish_non_exhaustive()
    }
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
        match self.engine.decide(request.headers(), self.policy.mode) {
            Decision::Authenticated(principal) => hand_on(request.extensions_mut(), principal),
            Decision::Anonymous => hand_on(request.extensions_mut(), Anonymous),
            Decision::Refused(rejection) => {
                if rejection == Rejection::MissingToken {
                    hint_at_a_webhook_route_behind_the_layer(request.headers());
                }
                return ResponseFuture::refused(refuse(&request_span(), rejection));
            }
            Decision::Lookup(pending) => {
                return ResponseFuture {
                    kind: Kind::Lookup {
                        future: self.lookup(request, pending),
                    },
                };
            }
        }
        // One call site, the future built in place: the repeat path.
        ResponseFuture::inner(self.inner.call(request))
    }
}

impl<S> EnsureUser<S> {
    /// The asynchronous path, boxed: rare, and large.
    fn lookup<ReqBody, ResBody>(
        &mut self,
        mut request: Request<ReqBody>,
        pending: Pending,
    ) -> BoxFuture<Result<Response<ResponseBody<ResBody>>, S::Error>>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send,
        ReqBody: Send + 'static,
    {
        // The clone that was not polled ready stays behind (tower's guidance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let engine = Arc::clone(&self.engine);
        let first_sight = self.policy.first_sight.clone();
        Box::pin(async move {
            let span = request_span();
            let authenticated = engine
                .authenticate(pending, first_sight.as_deref())
                .instrument(span.clone())
                .await;
            match authenticated {
                Ok(principal) => {
                    record_principal(&span, &principal);
                    hand_on(request.extensions_mut(), principal);
                }
                Err(rejection) => return Ok(ResponseBody::refusal(refuse(&span, rejection))),
            }
            inner.call(request).await.map(ResponseBody::inner)
        })
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Puts what the layer decided into the request's extensions, for handlers
/// to extract.
///
/// A request that carries no extensions yet gets a table with room for
/// four: axum's `Router` adds three of its own after the layer (the
/// original URI, the matched path, the path parameters), and a fourth
/// entry would outgrow the default table of three, moving it to a new
/// allocation on every request.
fn hand_on<T: Clone + Send + Sync + 'static>(extensions: &mut Extensions, value: T) {
    if extensions.is_empty() {
        *extensions = ROOMY.clone();
    }
    extensions.insert(value);
}

/// Empty extensions whose table has room for four entries: entries inserted
/// and removed again leave the table grown, and a clone keeps its size.
static ROOMY: LazyLock<Extensions> = LazyLock::new(|| {
    #[derive(Clone, Copy)]
    struct Room<const N: usize>;
    let mut extensions = Extensions::new();
    extensions.insert(Room::<0>);
    extensions.insert(Room::<1>);
    extensions.insert(Room::<2>);
    extensions.insert(Room::<3>);
    extensions.remove::<Room<0>>();
    extensions.remove::<Room<1>>();
    extensions.remove::<Room<2>>();
    extensions.remove::<Room<3>>();
    extensions
});

/// The span of a request that took the asynchronous path or was refused:
/// the repeat path, which neither waits nor logs, makes none.
fn request_span() -> Span {
    tracing::debug_span!(
        target: "ensure_user",
        "ensure_user",
        clerk_id = tracing::field::Empty,
        outcome = tracing::field::Empty,
    )
}

fn record_principal(span: &Span, principal: &Principal) {
    // Nothing listens on most requests: skip the recording then.
    if span.is_disabled() {
        return;
    }
    let clerk_id = match principal.subject() {
        Subject::User(id) | Subject::Organization(id) | Subject::Machine(id) => id,
        Subject::Oidc { subject, .. } => subject,
    };
    span.record("clerk_id", clerk_id);
    span.record("outcome", "authenticated");
}

fn refuse(span: &Span, rejection: Rejection) -> Response<Full<Bytes>> {
    span.record("outcome", rejection.code());
    span.in_scope(|| {
        telemetry::rejection(rejection.code());
        if rejection.is_outage() {
            tracing::warn!(target: "ensure_user", code = rejection.code(), "request refused: outage");
        } else {
            tracing::info!(target: "ensure_user", code = rejection.code(), "request refused");
        }
    });
    rejection.to_response()
}

/// The headers svix puts on every delivery, under its own names and the
/// Standard Webhooks ones.
const SVIX_HEADERS: [&str; 6] = [
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// Whether this process has logged [`hint_at_a_webhook_route_behind_the_layer`]'s hint.
static WEBHOOK_HINT_LOGGED: AtomicBool = AtomicBool::new(false);

/// Whether `headers` carry any of svix's.
fn carries_svix_headers(headers: &HeaderMap) -> bool {
    SVIX_HEADERS.iter().any(|name| headers.contains_key(*name))
}

/// A request refused for carrying no token that carries svix's headers is
/// a webhook delivery sent to a receiver mounted behind the layer: svix
/// sends no session token, so every delivery is refused. Says so, with the
/// fix, once per process. Called on that refusal only, never on the repeat
/// path.
fn hint_at_a_webhook_route_behind_the_layer(headers: &HeaderMap) {
    if carries_svix_headers(headers) && !WEBHOOK_HINT_LOGGED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            target: "ensure_user",
            "a webhook delivery (svix headers, no session token) was refused \
             `401 missing_token`: the webhook receiver is mounted behind the layer, and \
             svix sends no session token. Mount the webhook route outside the layer, \
             after `.layer(...)`: `.layer(running.layer()).merge(running.webhook_router(\"/webhooks/clerk\"))`, \
             or `.merge(receiver.into_router(\"/webhooks/clerk\"))` for a receiver built by hand. \
             (Logged once per process.)"
        );
    }
}

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

impl<F, B, E> ResponseFuture<F, B, E> {
    /// The inner service's future, its response passed on.
    pub(crate) fn inner(future: F) -> Self {
        Self {
            kind: Kind::Inner { future },
        }
    }

    /// The refusal's response, at once.
    pub(crate) fn refused(response: Response<Full<Bytes>>) -> Self {
        Self {
            kind: Kind::Refused {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProjection::Inner { future } => future.poll(cx).map_ok(ResponseBody::inner),
            KindProjection::Refused { response } => Poll::Ready(Ok(ResponseBody::refusal(
                response
                    .take()
                    .expect("ResponseFuture polled after completion"),
            ))),
            KindProjection::Lookup { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, B, E> std::fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

pin_project! {
    /// The body of a response through [`EnsureUser`]: the inner service's
    /// body, or the layer's own small JSON body when it refused the request.
    pub struct ResponseBody<B> {
        #[pin]
        kind: BodyKind<B>,
    }
}

pin_project! {
    #[project = BodyProjection]
    enum BodyKind<B> {
        Inner { #[pin] body: B },
        // Boxed: refusals are rare, and every response carries this enum.
        Refusal { body: Box<Full<Bytes>> },
    }
}

impl<B> ResponseBody<B> {
    fn inner(response: Response<B>) -> Response<Self> {
        response.map(|body| Self {
            kind: BodyKind::Inner { body },
        })
    }

    fn refusal(response: Response<Full<Bytes>>) -> Response<Self> {
        response.map(|body| Self {
            kind: BodyKind::Refusal {
                body: Box::new(body),
            },
        })
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            BodyProjection::Inner { body } => body.poll_frame(cx),
            BodyProjection::Refusal { body } => Pin::new(&mut **body).poll_frame(cx).map(|frame| {
                frame.map(|result| result.map_err(|never: Infallible| match never {}))
            }),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Inner { body } => body.is_end_stream(),
            BodyKind::Refusal { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Inner { body } => body.size_hint(),
            BodyKind::Refusal { body } => body.size_hint(),
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            BodyKind::Inner { .. } => "inner",
            BodyKind::Refusal { .. } => "refusal",
        };
        f.debug_tuple("ResponseBody").field(&kind).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svix_headers_are_recognised_under_either_name() {
        for name in SVIX_HEADERS {
            let mut headers = HeaderMap::new();
            headers.insert(name, "msg_1".parse().unwrap());
            assert!(carries_svix_headers(&headers), "{name}");
        }
        let mut ordinary = HeaderMap::new();
        ordinary.insert("content-type", "application/json".parse().unwrap());
        ordinary.insert("x-request-id", "1".parse().unwrap());
        assert!(!carries_svix_headers(&ordinary));
    }
}
