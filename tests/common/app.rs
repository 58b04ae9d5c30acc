//! The app behind the layer that the tests send requests to, and the keys
//! its tokens are signed with.

use axum::{Json, Router, body::Body, routing::get};
use ensure_user::{
    EnsureUserLayer, LocalUser,
    testing::{SigningKey, session_claims},
};
use http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{ISSUER, JwksServer, bearer, read};

/// `/me` needs a user and answers their local id, Clerk id and session id;
/// `/maybe` takes a user if there is one and answers their Clerk id.
pub fn app(layer: EnsureUserLayer) -> Router {
    Router::new()
        .route(
            "/me",
            get(|user: LocalUser| async move {
                Json(json!({ "id": user.id(), "clerk_id": user.clerk_id(), "sid": user.session_id() }))
            }),
        )
        .route(
            "/maybe",
            get(|user: Option<LocalUser>| async move {
                Json(json!({ "clerk_id": user.as_ref().map(LocalUser::clerk_id) }))
            }),
        )
        .layer(layer)
}

/// The status and the JSON body of `request`.
pub async fn call(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    read(app.clone().oneshot(request).await.unwrap()).await
}

/// The status of `GET /me` with `token`, the error code (empty when
/// served) and the `Retry-After` header.
pub async fn status_and_code(app: &Router, token: &str) -> (StatusCode, String, Option<String>) {
    let response = app.clone().oneshot(bearer(token)).await.unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = read(response).await;
    (
        status,
        body["error"].as_str().unwrap_or("").to_owned(),
        retry_after,
    )
}

/// A signing key and a JWKS endpoint serving it.
pub struct Fixture {
    pub key: SigningKey,
    pub jwks: JwksServer,
}

impl Fixture {
    pub async fn new() -> Self {
        let key = SigningKey::generate("ins_test");
        let jwks = JwksServer::start(&[&key]).await;
        Self { key, jwks }
    }

    pub fn token(&self, claims: &Value) -> String {
        self.key.sign(claims)
    }

    /// A session's claims for `user`, valid for a minute.
    pub fn claims(&self, user: &str) -> Value {
        session_claims(ISSUER, user, 60)
    }
}
