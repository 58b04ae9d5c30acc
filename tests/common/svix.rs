//! Deliveries signed as svix signs them, for the webhook tests.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use ensure_user::{
    testing::random_id,
    webhook::{WebhookSecret, WebhookVerifier, sign},
};
use http::Request;

/// The signing secret of the test endpoints.
pub const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// Where the test apps mount the receiver.
pub const PATH: &str = "/webhooks/clerk";

/// A verifier for [`SECRET`].
pub fn verifier() -> WebhookVerifier {
    WebhookVerifier::new(SECRET.parse().unwrap())
}

/// `event` delivered to [`PATH`], signed now with [`SECRET`].
pub fn delivery(event: &serde_json::Value) -> Request<Body> {
    let body = event.to_string().into_bytes();
    let id = random_id("msg");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let timestamp = i64::try_from(now.as_secs()).unwrap();
    let secret: WebhookSecret = SECRET.parse().unwrap();
    let signature = sign(&secret, &id, timestamp, &body);
    Request::post(PATH)
        .header("content-type", "application/json")
        .header("svix-id", id)
        .header("svix-timestamp", timestamp.to_string())
        .header("svix-signature", signature)
        .body(Body::from(body))
        .unwrap()
}
