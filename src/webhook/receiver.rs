//! [`WebhookReceiver`]: the HTTP endpoint svix delivers Clerk's events to.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::SystemTime,
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use tower_service::Service;

use super::{
    AppliedEvent, BoxError, Event, EventError, SignatureError, WebhookHooks, WebhookVerifier,
    apply::{Targets, apply},
    hooks::DynWebhookHooks,
    signature::unverified_id,
};
use crate::{
    eviction::Evictor,
    rejection::{self, webhook},
    store::{DynOrganizationSync, DynUserSync, OrganizationSync, SyncOutcome, UserSync},
    telemetry,
};

/// The default cap on a delivery's body: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Receives Clerk's webhook deliveries: verifies, parses, applies them to
/// the store, evicts deleted users from the layer, runs the app's hooks,
/// and answers svix.
///
/// It is a tower [`Service`] for `http::Request<B>` with any body, so any
/// tower-based server can mount it; with axum, see `into_router`. Cloning is cheap. The
/// [module docs](super) list the responses.
///
/// ```
/// use bytes::Bytes;
/// use ensure_user::{Config, EnsureUserLayer, KeySource, store::SqliteUserStore};
/// use ensure_user::webhook::{WebhookReceiver, WebhookVerifier};
/// use http_body_util::Full;
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = sqlx::sqlite::SqlitePoolOptions::new()
///     .max_connections(1)
///     .connect("sqlite::memory:")
///     .await?;
/// let store = SqliteUserStore::new(pool);
/// store.migrate().await?;
/// let issuer = "https://clerk.example.com";
/// let keys = KeySource::jwks_url(format!("{issuer}/.well-known/jwks.json"));
/// let layer = EnsureUserLayer::new(Config::new(issuer, keys), store.clone());
/// let verifier = WebhookVerifier::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".parse()?);
/// let receiver = WebhookReceiver::new(verifier, store, layer.evictor());
///
/// // A delivery without svix's headers is refused before anything is written.
/// let request = http::Request::post("/webhooks/clerk")
///     .body(Full::new(Bytes::from_static(br#"{"type":"user.deleted"}"#)))?;
/// let response = receiver.oneshot(request).await?;
/// assert_eq!(response.status(), http::StatusCode::BAD_REQUEST);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct WebhookReceiver {
    verifier: Arc<WebhookVerifier>,
    store: Arc<dyn DynUserSync>,
    organizations: Option<Arc<dyn DynOrganizationSync>>,
    hooks: Arc<dyn DynWebhookHooks>,
    evictor: Evictor,
    body_limit: usize,
}

impl WebhookReceiver {
    /// A receiver checking deliveries with `verifier`, writing to `store`
    /// (normally the layer's own), and evicting deleted users with
    /// `evictor` (the layer's: [`EnsureUserLayer::evictor`](crate::EnsureUserLayer::evictor)).
    /// No hooks; bodies up to [`DEFAULT_BODY_LIMIT`].
    pub fn new(verifier: WebhookVerifier, store: impl UserSync, evictor: Evictor) -> Self {
        Self {
            verifier: Arc::new(verifier),
            store: Arc::new(store),
            organizations: None,
            hooks: Arc::new(()),
            evictor,
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }

    /// Also keep organizations and memberships in step: apply
    /// `organization.*` and `organizationMembership.*` events to `store`
    /// (normally the layer's own). Without it they are acknowledged and
    /// ignored.
    pub fn with_organizations(self, store: impl OrganizationSync) -> Self {
        self.with_shared_organizations(Arc::new(store))
    }

    pub(crate) fn with_shared_organizations(mut self, store: Arc<dyn DynOrganizationSync>) -> Self {
        self.organizations = Some(store);
        self
    }

    /// Runs `hooks` after each delivery is applied.
    pub fn with_hooks(self, hooks: impl WebhookHooks) -> Self {
        self.with_shared_hooks(Arc::new(hooks))
    }

    pub(crate) fn with_shared_hooks(mut self, hooks: Arc<dyn DynWebhookHooks>) -> Self {
        self.hooks = hooks;
        self
    }

    /// Refuses bodies over `bytes` with `413 body_too_large`.
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// An axum router answering `POST path` (other methods get `405`), to
    /// merge into the app's router.
    ///
    /// Merge it *after* the app's `.layer(EnsureUserLayer)`: svix sends no
    /// session token, so the webhook route must not sit behind the layer.
    /// Panics, as [`axum::Router::route`] does, on an invalid path.
    ///
    /// ```no_run
    /// use axum::{Json, Router, routing::get};
    /// use ensure_user::{Config, EnsureUserLayer, LocalUser, store::SqliteUserStore};
    /// use ensure_user::webhook::{WebhookReceiver, WebhookVerifier};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = SqliteUserStore::new(sqlx::SqlitePool::connect("sqlite://app.db?mode=rwc").await?);
    /// store.migrate().await?;
    /// let layer = EnsureUserLayer::new(Config::from_env()?, store.clone());
    /// let webhooks = WebhookReceiver::new(WebhookVerifier::from_env()?, store, layer.evictor());
    ///
    /// let app: Router = Router::new()
    ///     .route("/me", get(|user: LocalUser| async move { Json(user.id()) }))
    ///     .layer(layer)
    ///     .merge(webhooks.into_router("/webhooks/clerk"));
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "axum")]
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    pub fn into_router<S>(self, path: &str) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        axum::Router::new().route(path, axum::routing::post_service(self))
    }

    async fn receive<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        match self.process(&parts.method, &parts.headers, body).await {
            Ok(applied) => {
                log_applied(&applied);
                let code = applied.outcome.map_or("ignored", SyncOutcome::code);
                json_response(StatusCode::OK, serde_json::json!({ "outcome": code }))
            }
            Err(refusal) => {
                let declared = refusal.declared();
                if declared.status().is_client_error() {
                    log_rejection(unverified_id(&parts.headers), &refusal);
                }
                declared.response()
            }
        }
    }

    /// Verifies before parsing, parses before writing; logs its own failures
    /// (with what it knows of the event) at error level.
    async fn process<B>(
        &self,
        method: &Method,
        headers: &HeaderMap,
        body: B,
    ) -> Result<AppliedEvent, Refusal>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        if method != Method::POST {
            return Err(Refusal::MethodNotAllowed);
        }
        // The headers first: a request that can never pass costs no read.
        let signed = self
            .verifier
            .check_headers(headers, SystemTime::now())
            .map_err(Refusal::Signature)?;
        let body = read_body(headers, body, self.body_limit).await?;
        let delivery = signed.verify(&body).map_err(Refusal::Signature)?;
        let event = Event::parse(&body).map_err(Refusal::Event)?;
        let targets = Targets {
            users: &*self.store,
            organizations: self.organizations.as_deref(),
            evictor: &self.evictor,
        };
        let outcome = match apply(&targets, &delivery, &event).await {
            Ok(outcome) => outcome,
            Err(error) => {
                telemetry::webhook_delivery("failed");
                let refusal = if error.is_schema_mismatch() {
                    Refusal::StoreMisconfigured
                } else {
                    Refusal::StoreUnavailable
                };
                tracing::error!(
                    target: "ensure_user",
                    svix_id = %delivery.id,
                    event_type = %event.event_type,
                    clerk_id = event.change.clerk_id(),
                    organization_id = event.change.organization_id(),
                    outcome = "failed",
                    reason = refusal.code(),
                    %error,
                    "webhook delivery not applied"
                );
                return Err(refusal);
            }
        };
        let applied = AppliedEvent {
            delivery,
            event,
            outcome,
        };
        if let Err(error) = self.hooks.after_apply_dyn(&applied).await {
            tracing::error!(
                target: "ensure_user",
                svix_id = %applied.delivery.id,
                event_type = %applied.event.event_type,
                clerk_id = applied.event.change.clerk_id(),
                organization_id = applied.event.change.organization_id(),
                outcome = "failed",
                reason = "hook_failed",
                result = applied.outcome.map(SyncOutcome::code),
                %error,
                "webhook hook failed after the delivery was applied"
            );
            return Err(Refusal::HookFailed);
        }
        Ok(applied)
    }
}

impl std::fmt::Debug for WebhookReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookReceiver")
            .field("verifier", &self.verifier)
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

impl<B> Service<Request<B>> for WebhookReceiver
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let receiver = self.clone();
        Box::pin(async move { Ok(receiver.receive(request).await) })
    }
}

/// The body, whole, or `413` past `limit` (checked on the declared length
/// first, then while reading).
async fn read_body<B>(headers: &HeaderMap, body: B, limit: usize) -> Result<Bytes, Refusal>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(Refusal::BodyTooLarge);
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(Refusal::BodyTooLarge),
        Err(_) => Err(Refusal::UnreadableBody),
    }
}

/// Why a delivery got no `2xx`.
#[derive(Debug)]
enum Refusal {
    MethodNotAllowed,
    BodyTooLarge,
    UnreadableBody,
    Signature(SignatureError),
    Event(EventError),
    StoreUnavailable,
    /// The store's schema lacks what the event needs written.
    StoreMisconfigured,
    HookFailed,
}

impl Refusal {
    /// How svix sees this refusal.
    fn declared(&self) -> rejection::Refusal {
        match self {
            Self::MethodNotAllowed => webhook::METHOD_NOT_ALLOWED,
            Self::BodyTooLarge => webhook::BODY_TOO_LARGE,
            Self::UnreadableBody => webhook::UNREADABLE_BODY,
            Self::Signature(error) => error.refusal(),
            Self::Event(error) => error.refusal(),
            Self::StoreUnavailable => webhook::STORE_UNAVAILABLE,
            Self::StoreMisconfigured => webhook::STORE_MISCONFIGURED,
            Self::HookFailed => webhook::HOOK_FAILED,
        }
    }

    fn code(&self) -> &'static str {
        self.declared().code()
    }
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn log_applied(applied: &AppliedEvent) {
    let outcome = match applied.outcome {
        None => "ignored_unhandled",
        Some(SyncOutcome::Stale) => "ignored_stale",
        Some(SyncOutcome::Tombstoned) => "ignored_tombstoned",
        Some(_) => "applied",
    };
    telemetry::webhook_delivery(outcome);
    tracing::info!(
        target: "ensure_user",
        svix_id = %applied.delivery.id,
        event_type = %applied.event.event_type,
        clerk_id = applied.event.change.clerk_id(),
                organization_id = applied.event.change.organization_id(),
        outcome,
        result = applied.outcome.map(SyncOutcome::code),
        "webhook delivery processed"
    );
}

/// `svix_id` is unverified unless the signature passed: header text only
/// (visible ASCII, bounded), never the body.
fn log_rejection(svix_id: Option<&str>, refusal: &Refusal) {
    let detail = match refusal {
        Refusal::Event(error) => Some(error.to_string()),
        _ => None,
    };
    telemetry::webhook_delivery(refusal.code());
    tracing::warn!(
        target: "ensure_user",
        svix_id,
        outcome = "rejected",
        reason = refusal.code(),
        detail = detail.as_deref(),
        "webhook delivery rejected"
    );
}
