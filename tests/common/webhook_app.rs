//! An app with the layer and the webhook receiver on one store, as an app
//! mounts them, and the user events Clerk delivers to it.

use axum::{Router, body::Body};
use ensure_user::{
    EnsureUserLayer,
    testing::SigningKey,
    webhook::{WebhookReceiver, WebhookVerifier},
};
use http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{Backend, JwksServer, ProfileRow, Store, app::app, bearer, read, svix};

/// A layer and a receiver sharing one store, mounted as an app would.
pub struct Harness {
    pub app: Router,
    pub receiver: WebhookReceiver,
    /// The store the app uses.
    pub store: Store,
    /// Another pool on the same database, for looking.
    pub db: Store,
    pub key: SigningKey,
    _jwks: JwksServer,
}

impl Harness {
    pub async fn new(backend: Backend) -> Self {
        Self::build(backend, svix::verifier(), |receiver| receiver).await
    }

    pub async fn build(
        backend: Backend,
        verifier: WebhookVerifier,
        configure: impl FnOnce(WebhookReceiver) -> WebhookReceiver,
    ) -> Self {
        let key = SigningKey::generate("ins_test");
        let jwks = JwksServer::start(&[&key]).await;
        let store = Store::new(backend).await;
        let db = store.observer().await;
        let layer = EnsureUserLayer::new(jwks.config(), store.clone());
        let receiver = configure(WebhookReceiver::new(
            verifier,
            store.clone(),
            layer.evictor(),
        ));
        let app = app(layer).merge(receiver.clone().into_router(svix::PATH));
        Self {
            app,
            receiver,
            store,
            db,
            key,
            _jwks: jwks,
        }
    }

    pub async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        read(self.app.clone().oneshot(request).await.unwrap()).await
    }

    /// Delivers `event` signed with [`svix::SECRET`] now, under a fresh message id.
    pub async fn deliver(&self, event: &Value) -> (StatusCode, Value) {
        self.send(svix::delivery(event)).await
    }

    /// Delivers `event` and returns the outcome code, asserting a `200`.
    pub async fn outcome(&self, event: &Value) -> String {
        let (status, body) = self.deliver(event).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["outcome"].as_str().unwrap().to_owned()
    }

    pub async fn me(&self, token: &str) -> (StatusCode, Value) {
        self.send(bearer(token)).await
    }
}

/// A `user.created`/`user.updated` event: primary email chosen by id, names, image.
pub fn user_event(kind: &str, user: &str, updated_at: i64, email: &str, first: &str) -> Value {
    json!({
        "type": kind,
        "object": "event",
        "instance_id": "ins_test",
        "timestamp": updated_at,
        "event_attributes": { "http_request": { "client_ip": "", "user_agent": "" } },
        "data": {
            "id": user,
            "object": "user",
            "first_name": first,
            "last_name": "Lovelace",
            "image_url": "https://img.example.com/ada.png",
            "username": null,
            "primary_email_address_id": "idn_primary",
            "email_addresses": [
                { "id": "idn_other", "object": "email_address", "email_address": "other@example.com",
                  "verification": null, "linked_to": [] },
                { "id": "idn_primary", "object": "email_address", "email_address": email,
                  "verification": { "status": "verified", "strategy": "email_code" }, "linked_to": [] }
            ],
            "public_metadata": {},
            "created_at": 1_654_012_591_514_i64,
            "updated_at": updated_at
        }
    })
}

pub fn created(user: &str, updated_at: i64) -> Value {
    user_event("user.created", user, updated_at, "ada@example.com", "Ada")
}

pub fn updated(user: &str, updated_at: i64, first: &str) -> Value {
    let email = format!("{}@example.com", first.to_lowercase());
    user_event("user.updated", user, updated_at, &email, first)
}

/// The profile [`updated`] stores: email, first name, the fixed last name
/// and image, version.
pub fn profile(email: &str, first: &str, updated_at: i64) -> Option<ProfileRow> {
    Some((
        Some(email.to_owned()),
        Some(first.to_owned()),
        Some("Lovelace".to_owned()),
        Some("https://img.example.com/ada.png".to_owned()),
        Some(updated_at),
    ))
}
