//! [`Guard`]: a route that requires a role, a permission, a feature or a
//! plan, declared in one line, decided from the session token as Clerk's
//! `has()` decides it; or a scope of the credential (an API key's or an
//! OAuth token's).

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::{HeaderValue, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    authorization::Requirement,
    principal::Principal,
    rejection::Rejection,
    rejection::{INSUFFICIENT_SCOPE_REFUSAL, MISSING_LAYER},
    service::{Anonymous, ResponseBody, ResponseFuture},
    telemetry,
};

/// A layer that lets through only requests whose session meets a
/// [`Requirement`]; any other is refused `403 insufficient_scope` with
/// `WWW-Authenticate: Bearer error="insufficient_scope"`. It runs behind
/// [`EnsureUserLayer`](crate::EnsureUserLayer), which authenticated the
/// request; without it the route answers `500 missing_layer`.
///
/// The decision is Clerk's `has()`, from the token alone and fail-closed
/// (see [`authorization`](crate::authorization)): no active organization,
/// an unknown claim shape or a mismatch refuses.
///
/// ```
/// use axum::{Router, routing::get};
/// use ensure_user::{Guard, Requirement};
///
/// let org_routes: Router = Router::new()
///     .route("/org/admin", get(|| async { "admins only" }).route_layer(Guard::role("org:admin")))
///     .route(
///         "/org/billing",
///         get(|| async { "billing" }).route_layer(Guard::permission("org:billing:manage")),
///     )
///     .route(
///         "/reports",
///         get(|| async { "reports" })
///             .route_layer(Guard::new(Requirement::feature("reports").and_plan("pro"))),
///     );
/// ```
#[derive(Debug, Clone)]
pub struct Guard {
    check: Arc<Check>,
}

/// What a guard requires.
#[derive(Debug)]
enum Check {
    /// A session meeting the requirement, as Clerk's `has()` decides.
    Requirement(Requirement),
    /// A credential granting the scope.
    Scope {
        scope: Box<str>,
        /// `WWW-Authenticate` of a refusal, naming the scope (RFC 6750 §3).
        challenge: HeaderValue,
    },
}

impl Check {
    fn holds(&self, principal: &Principal) -> bool {
        match self {
            Self::Requirement(requirement) => principal.has(requirement),
            Self::Scope { scope, .. } => principal.has_scope(scope),
        }
    }
}

impl Guard {
    /// A guard requiring `requirement`.
    pub fn new(requirement: Requirement) -> Self {
        Self {
            check: Arc::new(Check::Requirement(requirement)),
        }
    }

    /// A guard requiring the credential to grant `scope` (an API key's or
    /// an OAuth token's `scopes`; a session grants none). A refusal names
    /// it: `WWW-Authenticate: Bearer error="insufficient_scope",
    /// scope="<scope>"` (the `scope` part is left out for a scope RFC 6750
    /// cannot quote: spaces, quotes, backslashes, non-ASCII).
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// use ensure_user::Guard;
    ///
    /// let app: Router = Router::new().route(
    ///     "/reports",
    ///     get(|| async { "reports" }).route_layer(Guard::scope("reports:read")),
    /// );
    /// ```
    pub fn scope(scope: impl AsRef<str>) -> Self {
        let scope = scope.as_ref();
        let quotable = !scope.is_empty()
            && scope
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        let challenge = if quotable {
            format!(r#"Bearer error="insufficient_scope", scope="{scope}""#)
        } else {
            r#"Bearer error="insufficient_scope""#.to_owned()
        };
        Self {
            check: Arc::new(Check::Scope {
                scope: scope.into(),
                challenge: HeaderValue::try_from(challenge).unwrap_or(HeaderValue::from_static(
                    r#"Bearer error="insufficient_scope""#,
                )),
            }),
        }
    }

    /// A guard requiring the role `role` (`org:admin`) in the active organization.
    pub fn role(role: impl AsRef<str>) -> Self {
        Self::new(Requirement::role(role))
    }

    /// A guard requiring the permission `permission` (`org:billing:manage`)
    /// in the active organization.
    pub fn permission(permission: impl AsRef<str>) -> Self {
        Self::new(Requirement::permission(permission))
    }

    /// A guard requiring the feature `feature` of the session's plan.
    pub fn feature(feature: impl AsRef<str>) -> Self {
        Self::new(Requirement::feature(feature))
    }

    /// A guard requiring the plan `plan`.
    pub fn plan(plan: impl AsRef<str>) -> Self {
        Self::new(Requirement::plan(plan))
    }
}

impl<S> Layer<S> for Guard {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Guarded<S> {
        Guarded {
            inner,
            check: Arc::clone(&self.check),
        }
    }
}

/// The service of a [`Guard`].
#[derive(Debug, Clone)]
pub struct Guarded<S> {
    inner: S,
    check: Arc<Check>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Guarded<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let extensions = request.extensions();
        let refusal = match extensions.get::<Principal>() {
            Some(principal) if self.check.holds(principal) => {
                return ResponseFuture::inner(self.inner.call(request));
            }
            Some(_) => INSUFFICIENT_SCOPE_REFUSAL,
            None if extensions.get::<Anonymous>().is_some() => {
                return ResponseFuture::refused(Rejection::MissingToken.to_response());
            }
            None => {
                tracing::error!(target: "ensure_user", "Guard on a route without EnsureUserLayer");
                MISSING_LAYER
            }
        };
        telemetry::rejection(refusal.code());
        let mut response = refusal.response();
        if let (Check::Scope { challenge, .. }, true) =
            (&*self.check, refusal == INSUFFICIENT_SCOPE_REFUSAL)
        {
            response
                .headers_mut()
                .insert(http::header::WWW_AUTHENTICATE, challenge.clone());
        }
        ResponseFuture::refused(response)
    }
}
