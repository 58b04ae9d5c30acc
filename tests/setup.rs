//! `Setup`: the layer, the webhook receiver and the eviction listener wired
//! from one configuration, on both stores.

mod common;

use std::time::{Duration, Instant};

use axum::Router;
use common::{
    instances::{Deployment, Served},
    svix, *,
};
use ensure_user::{
    Running, Setup,
    eviction::EvictionSource,
    store::{UserStore, UserSync},
    testing::{SigningKey, random_id},
};
use http::StatusCode;
use tower::ServiceExt;

on_both_stores!(setup_serves_and_applies_webhooks);

/// `/me` behind the setup's layer, and its webhook route.
fn app(running: &Running) -> Router {
    common::app::app(running.layer()).merge(running.webhook_router(svix::PATH))
}

async fn start<S>(jwks: &JwksServer, store: S) -> Running
where
    S: UserStore + UserSync + EvictionSource + Clone,
{
    Setup::new(jwks.config(), store)
        .with_webhooks(svix::verifier())
        .start()
        .await
        .unwrap()
}

/// A user served, deleted through the setup's webhook route, refused.
async fn setup_serves_and_applies_webhooks(backend: Backend) {
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    // The bundled stores themselves: only they are eviction sources.
    let running = match Store::new(backend).await {
        Store::Postgres(store) => start(&jwks, store).await,
        Store::Sqlite(store) => start(&jwks, store).await,
    };
    let app = app(&running);
    let user = random_id("user");
    let token = key.session_token(ISSUER, &user, 60);
    let (status, _) = read(app.clone().oneshot(bearer(&token)).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);

    let delivery = svix::delivery(&user_deleted_event(&user));
    let (status, body) = read(app.clone().oneshot(delivery).await.unwrap()).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("deleted"))
    );
    let (status, body) = read(app.oneshot(bearer(&token)).await.unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("user_deleted"))
    );
    running.shutdown().await;
}

/// On PostgreSQL the setup starts the listener: a deletion applied by one
/// instance reaches another's cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_setup_listens_for_other_instances() {
    let d = Deployment::postgres().await;
    let start = || d.instance().through_setup().start();
    let (mut a, mut b) = (start().await, start().await);
    let Served { user, token, .. } = d.served_by(&[&a, &b]).await;
    assert_eq!(a.delete(&user).await, StatusCode::OK);
    let started = Instant::now();
    loop {
        if b.me(&token).await.0 == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "still served");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.stop_listening().await;
    b.stop_listening().await;
}

/// Without a verifier there is no webhook route, and the router is empty.
#[tokio::test]
async fn setup_without_webhooks_mounts_nothing() {
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let running = Setup::new(jwks.config(), sqlite_store().await)
        .start()
        .await
        .unwrap();
    assert!(running.webhooks().is_none());
    let delivery = svix::delivery(&user_deleted_event(&random_id("user")));
    let response = app(&running).oneshot(delivery).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
