//! Outages of the database, with a real PostgreSQL behind a proxy on
//! loopback that is cut or stalled: cached users are still served, misses
//! are a bounded `503`, and the layer recovers without a restart.

mod common;

use std::time::{Duration, Instant};

use common::{app::*, proxy::*, *};
use ensure_user::{
    EnsureUserLayer,
    store::PgUserStore,
    testing::{SigningKey, random_id},
};
use http::StatusCode;

/// A PostgreSQL store whose every connection goes through `proxy`, in a fresh schema.
async fn store_through(proxy: &Proxy) -> (PgUserStore, sqlx::PgPool) {
    let direct = postgres_store().await;
    let options = direct
        .pool()
        .connect_options()
        .as_ref()
        .clone()
        .host("127.0.0.1")
        .port(proxy.addr.port());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(1))
        .connect_with(options)
        .await
        .unwrap();
    (PgUserStore::new(pool), direct.pool().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_serves_cached_users_and_503s_misses_then_recovers() {
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let proxy = postgres_proxy().await;
    let (store, direct) = store_through(&proxy).await;
    let store = CountingStore::new(store);
    let app = app(EnsureUserLayer::new(jwks.config(), store.clone()));

    let known = random_id("user");
    let known_token = key.session_token(ISSUER, &known, 60);
    assert_eq!(status_and_code(&app, &known_token).await.0, StatusCode::OK);

    proxy.set(Link::Down);
    // Cached users keep being served, with a token never seen before too.
    assert_eq!(status_and_code(&app, &known_token).await.0, StatusCode::OK);
    let fresh = key.session_token(ISSUER, &known, 61);
    assert_eq!(status_and_code(&app, &fresh).await.0, StatusCode::OK);

    // A miss: 503 with Retry-After, quickly, and nothing cached from it.
    let newcomer = random_id("user");
    let token = key.session_token(ISSUER, &newcomer, 60);
    for attempt in 0..2 {
        let started = Instant::now();
        let (status, code, retry_after) = status_and_code(&app, &token).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "attempt {attempt}");
        assert_eq!(code, "store_unavailable");
        assert_eq!(retry_after.as_deref(), Some("5"));
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(store.calls(), 3, "each miss tried the store again");

    proxy.set(Link::Up);
    let (status, _, _) = status_and_code(&app, &token).await;
    assert_eq!(status, StatusCode::OK, "recovers without a restart");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&direct)
        .await
        .unwrap();
    assert_eq!(rows, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_database_is_a_bounded_503() {
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let proxy = postgres_proxy().await;
    let (store, _) = store_through(&proxy).await;
    let config = jwks.config().with_store_timeout(Duration::from_millis(800));
    let app = app(EnsureUserLayer::new(config, store));
    proxy.set(Link::Stalled);
    // Connections the pool already holds are cut too: stall them all.
    let token = key.session_token(ISSUER, &random_id("user"), 60);
    let started = Instant::now();
    let (status, code, _) = status_and_code(&app, &token).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    proxy.set(Link::Up);
}
