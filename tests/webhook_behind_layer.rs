//! A webhook receiver mounted behind the layer: svix sends no session
//! token, so each delivery is refused `401 missing_token`. The layer says
//! why, and how to mount it, once per process. This binary holds one test,
//! since the hint is once per process.

mod common;

use axum::{Router, body::Body, routing::get};
use common::{svix, *};
use ensure_user::{
    EnsureUserLayer, LocalUser,
    testing::{SigningKey, random_id},
    webhook::WebhookReceiver,
};
use http::{Request, StatusCode};
use tower::ServiceExt;

/// The words of the hint the tests look for.
const HINT: &str = "Mount the webhook route outside the layer";

#[tokio::test(flavor = "current_thread")]
async fn a_receiver_behind_the_layer_is_pointed_out_once() {
    let logs = Logs::capture_globally(tracing::Level::WARN);
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let store = sqlite_store().await;
    let layer = EnsureUserLayer::new(jwks.config(), store.clone());
    let receiver = WebhookReceiver::new(svix::verifier(), store, layer.evictor());
    // The mistake: the receiver merged before `.layer(...)`, so behind it.
    let app: Router = Router::new()
        .route(
            "/me",
            get(|user: LocalUser| async move { user.clerk_id().to_owned() }),
        )
        .merge(receiver.into_router(svix::PATH))
        .layer(layer);
    let refused = |request: Request<Body>| {
        let app = app.clone();
        async move {
            let (status, body) = read(app.oneshot(request).await.unwrap()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
            assert_eq!(body["error"], "missing_token");
        }
    };

    // Ordinary requests without a token, to the same routes: no hint.
    refused(Request::get("/me").body(Body::empty()).unwrap()).await;
    let event = user_deleted_event(&random_id("user")).to_string();
    refused(Request::post(svix::PATH).body(Body::from(event)).unwrap()).await;
    assert!(!logs.text().contains(HINT), "{}", logs.text());

    // Two deliveries: both refused, one hint.
    for _ in 0..2 {
        refused(svix::delivery(&user_deleted_event(&random_id("user")))).await;
    }
    let text = logs.text();
    assert_eq!(text.matches(HINT).count(), 1, "{text}");
    assert!(text.contains(" WARN "), "{text}");
    assert!(text.contains(".merge(running.webhook_router("), "{text}");
}
