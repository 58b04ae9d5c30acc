//! Deliveries signed as svix signs them, for the webhook tests: the
//! crate's own `testing` helpers, posted to [`PATH`] with axum's body.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use ensure_user::{
    testing::{random_id, webhook_delivery, webhook_delivery_at},
    webhook::WebhookVerifier,
};
use http::Request;

/// The signing secret of the test endpoints.
pub const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// A well-formed secret that no test endpoint knows.
pub const UNKNOWN_SECRET: &str = "whsec_dW5rbm93bi1zZWNyZXQtb2YtMjQtYnl0ZXM=";

/// Where the test apps mount the receiver.
pub const PATH: &str = "/webhooks/clerk";

/// A verifier for [`SECRET`].
pub fn verifier() -> WebhookVerifier {
    WebhookVerifier::new(SECRET.parse().unwrap())
}

/// Now, in seconds since the epoch, as svix stamps a delivery.
pub fn now() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(now.as_secs()).unwrap()
}

/// `body` posted to [`PATH`] as JSON, with these svix headers, whether
/// they are right or not.
pub fn request(id: &str, timestamp: &str, signature: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(PATH)
        .header("content-type", "application/json")
        .header("svix-id", id)
        .header("svix-timestamp", timestamp)
        .header("svix-signature", signature)
        .body(body.into())
        .unwrap()
}

/// `body` exactly as svix sends it: signed with `secret` at `timestamp`,
/// under a fresh message id.
pub fn signed_with(secret: &str, timestamp: i64, body: &[u8]) -> Request<Body> {
    let body = String::from_utf8(body.to_vec()).expect("a UTF-8 body");
    webhook_delivery_at(PATH, secret, &random_id("msg"), timestamp, body).map(Body::from)
}

/// `body` signed now with [`SECRET`], under a fresh message id.
pub fn signed(body: &[u8]) -> Request<Body> {
    signed_with(SECRET, now(), body)
}

/// `event` delivered to [`PATH`], signed now with [`SECRET`].
pub fn delivery(event: &serde_json::Value) -> Request<Body> {
    webhook_delivery(PATH, SECRET, event).map(Body::from)
}
