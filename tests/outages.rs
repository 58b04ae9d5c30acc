//! Outages, each with real servers on loopback: the database behind a proxy
//! that is cut or stalled, and a key endpoint that fails, stalls or turns hostile.

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{Json, Router, routing::get};
use common::{proxy::*, *};
use ensure_user::{
    EnsureUserLayer, LocalUser,
    store::PgUserStore,
    testing::{SigningKey, random_id, session_claims},
};
use http::StatusCode;
use serde_json::json;
use tower::ServiceExt;

fn app(layer: EnsureUserLayer) -> Router {
    Router::new()
        .route(
            "/me",
            get(|user: LocalUser| async move { Json(json!({ "id": user.id() })) }),
        )
        .layer(layer)
}

async fn status_and_code(app: &Router, token: &str) -> (StatusCode, String, Option<String>) {
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

#[tokio::test]
async fn slow_key_endpoint_is_a_bounded_503() {
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    jwks.reply_with(JwksReply::Slow(
        Duration::from_secs(30),
        SigningKey::jwks(&[&key]).to_string(),
    ));
    let config = jwks
        .config()
        .with_key_fetch_timeout(Duration::from_millis(500));
    let app = app(EnsureUserLayer::new(config, sqlite_store().await));
    let started = Instant::now();
    let (status, code, _) =
        status_and_code(&app, &key.session_token(ISSUER, &random_id("user"), 60)).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "keys_unavailable")
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn hostile_key_endpoints_never_yield_keys() {
    let key = SigningKey::generate("ins_test");
    let good = JwksServer::start(&[&key]).await;
    let huge = format!(
        r#"{{"keys":[{}],"padding":"{}"}}"#,
        key.jwk(),
        "x".repeat(2 * 1024 * 1024)
    );
    let hostile = [
        ("oversized body", JwksReply::Body(huge)),
        ("not JSON", JwksReply::Body("<html>hello</html>".into())),
        ("wrong JSON", JwksReply::Body(r#"{"keys":"nope"}"#.into())),
        (
            "no usable keys",
            JwksReply::Body(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#.into()),
        ),
        ("redirect to good keys", JwksReply::Redirect(good.url())),
    ];
    for (name, reply) in hostile {
        let jwks = JwksServer::start(&[&key]).await;
        jwks.reply_with(reply);
        let app = app(EnsureUserLayer::new(jwks.config(), sqlite_store().await));
        let (status, code, _) =
            status_and_code(&app, &key.session_token(ISSUER, &random_id("user"), 60)).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "keys_unavailable"),
            "{name}"
        );
        assert_eq!(good.fetches(), 0, "{name}: a redirect must not be followed");
    }
}

#[tokio::test]
async fn one_bad_key_among_good_ones_does_not_spoil_the_set() {
    let key = SigningKey::generate("ins_good");
    let jwks = JwksServer::start(&[&key]).await;
    let body = json!({"keys": [
        {"kty": "RSA", "kid": "ins_broken", "n": "%%%", "e": "AQAB"},
        {"kty": "EC", "kid": "ins_ec", "crv": "P-256", "x": "AA", "y": "AA"},
        key.jwk(),
    ]});
    jwks.reply_with(JwksReply::Body(body.to_string()));
    let app = app(EnsureUserLayer::new(jwks.config(), sqlite_store().await));
    let (status, _, _) =
        status_and_code(&app, &key.session_token(ISSUER, &random_id("user"), 60)).await;
    assert_eq!(status, StatusCode::OK);
}

/// Keys held, the key set due for a refresh on every request, and the
/// endpoint failing: a flood of tokens under the held `kid` with bad
/// signatures (never cached, so each one is verified) and a burst of
/// readiness probes start no more fetches than one per cooldown. Once the
/// endpoint answers again, the keys are refreshed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_refreshes_are_spaced_by_the_cooldown_then_recover() {
    const COOLDOWN: Duration = Duration::from_millis(300);
    const FLOOD: Duration = Duration::from_millis(1500);
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let config = jwks
        .config()
        .with_key_refresh_interval(Duration::from_millis(1))
        .with_key_refetch_cooldown(COOLDOWN);
    let layer = EnsureUserLayer::new(config, sqlite_store().await);
    let app = app(layer.clone());
    let user = random_id("user");
    let valid = key.session_token(ISSUER, &user, 60);
    assert_eq!(status_and_code(&app, &valid).await.0, StatusCode::OK);
    assert_eq!(jwks.fetches(), 1);

    jwks.fail_with(500);
    let forged = Arc::new(SigningKey::generate("ins_test").session_token(ISSUER, &user, 60));
    let started = Instant::now();
    let flood: Vec<_> = (0..4)
        .map(|_| {
            let (app, forged) = (app.clone(), forged.clone());
            tokio::spawn(async move {
                let mut requests = 0;
                while started.elapsed() < FLOOD {
                    let (status, code, _) = status_and_code(&app, &forged).await;
                    assert_eq!(
                        (status, code.as_str()),
                        (StatusCode::UNAUTHORIZED, "invalid_signature")
                    );
                    requests += 1;
                    // As a server does between requests read from sockets:
                    // no flooder keeps a worker thread to itself.
                    tokio::task::yield_now().await;
                }
                requests
            })
        })
        .collect();
    let probes: Vec<_> = (0..32)
        .map(|_| {
            let layer = layer.clone();
            tokio::spawn(async move { layer.readiness().await })
        })
        .collect();
    for probe in probes {
        assert_eq!(probe.await.unwrap().keys_held, 1);
    }
    let mut requests = 0;
    for flooder in flood {
        requests += flooder.await.unwrap();
    }
    let elapsed = started.elapsed();
    let fetches = jwks.fetches() - 1;
    let allowed = 1 + usize::try_from(elapsed.as_millis() / COOLDOWN.as_millis()).unwrap();
    assert!(
        (1..=allowed).contains(&fetches),
        "{fetches} fetches for {requests} requests in {elapsed:?}; one to {allowed} expected"
    );
    assert!(layer.readiness().await.key_endpoint_failing);

    // Back up: past the cooldown, the next token to verify refreshes the keys.
    jwks.serve(&[&key]);
    tokio::time::sleep(COOLDOWN).await;
    let before = jwks.fetches();
    let fresh = key.session_token(ISSUER, &user, 61);
    assert_eq!(status_and_code(&app, &fresh).await.0, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(5);
    while layer.readiness().await.key_endpoint_failing {
        assert!(Instant::now() < deadline, "the keys were not refreshed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(jwks.fetches() > before);
}

/// No keys held and an endpoint that fails slowly: readiness probes, a
/// prefetch and a request that arrive during a fetch wait for it, and none
/// of them fetches again within the cooldown that follows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_during_a_failing_fetch_share_it() {
    const COOLDOWN: Duration = Duration::from_secs(1);
    const FETCH: Duration = Duration::from_millis(1500);
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    jwks.reply_with(JwksReply::Slow(FETCH, "<html>down</html>".into()));
    let config = jwks
        .config()
        .with_key_refetch_cooldown(COOLDOWN)
        .with_key_fetch_timeout(Duration::from_secs(3));
    let layer = EnsureUserLayer::new(config, sqlite_store().await);
    let app = app(layer.clone());

    let first = {
        let layer = layer.clone();
        tokio::spawn(async move { layer.readiness().await })
    };
    // Longer than the cooldown, shorter than the fetch.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let probes: Vec<_> = (0..4)
        .map(|_| {
            let layer = layer.clone();
            tokio::spawn(async move { layer.readiness().await })
        })
        .collect();
    let prefetch = {
        let layer = layer.clone();
        tokio::spawn(async move { layer.prefetch_keys().await })
    };
    let token = key.session_token(ISSUER, &random_id("user"), 60);
    let (status, code, _) = status_and_code(&app, &token).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "keys_unavailable")
    );
    for probe in std::iter::once(first).chain(probes) {
        let readiness = probe.await.unwrap();
        assert_eq!(
            (readiness.keys_held, readiness.key_endpoint_failing),
            (0, true)
        );
    }
    assert!(prefetch.await.unwrap().is_err());
    assert_eq!(jwks.fetches(), 1);
}

/// 10,000 distinct new users, 64 at a time, against PostgreSQL: every one gets
/// exactly one row, and no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_new_users_at_concurrency_64() {
    const USERS: usize = 10_000;
    let key = Arc::new(SigningKey::generate("ins_test"));
    let jwks = JwksServer::start(&[&key]).await;
    let store = postgres_store().await;
    let pool = store.pool().clone();
    let app = app(EnsureUserLayer::new(jwks.config(), store));
    let tokens: Vec<String> = (0..USERS)
        .map(|_| key.sign(&session_claims(ISSUER, &random_id("user"), 300)))
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(tokens));
    let workers: Vec<_> = (0..64)
        .map(|_| {
            let (app, queue) = (app.clone(), queue.clone());
            tokio::spawn(async move {
                let mut failures = 0;
                loop {
                    let Some(token) = queue.lock().unwrap().pop() else {
                        return failures;
                    };
                    if app.clone().oneshot(bearer(&token)).await.unwrap().status() != StatusCode::OK
                    {
                        failures += 1;
                    }
                }
            })
        })
        .collect();
    let mut failures = 0;
    for worker in workers {
        failures += worker.await.unwrap();
    }
    assert_eq!(failures, 0);
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT clerk_id) FROM users")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((rows, distinct), (USERS as i64, USERS as i64));
}
