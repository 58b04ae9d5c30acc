//! Profile on first sight: a new user's profile fetched from the Backend
//! API (a fake on loopback) into the row the layer creates, on both stores;
//! a failing or slow fetch never fails the request, and never outlives a
//! deletion.

mod common;

use std::time::{Duration, Instant};

use axum::Router;
use common::{
    app::app,
    clerk_api::{FakeClerk, Faults, fake_users},
    *,
};
use ensure_user::{
    Config, EnsureUserLayer, ProfileFetch,
    clerk_api::ClerkApi,
    store::UserSync,
    testing::{SigningKey, random_id, session_claims},
};
use http::StatusCode;
use tower::ServiceExt;

on_both_stores!(
    profile_on_first_sight,
    profile_fetch_failures_never_fail_a_request,
    deletion_during_a_slow_profile_fetch_is_final,
    nul_in_profile_text_is_left_out,
);

/// A layer on `store` fetching new users' profiles from `api`.
fn layer_for(store: &Store, api: ClerkApi, timeout: Duration, config: Config) -> EnsureUserLayer {
    let fetch = ProfileFetch::new(api, store.clone()).with_timeout(timeout);
    EnsureUserLayer::new(config, store.clone()).with_profile_fetch(fetch)
}

/// An app behind the layer, fetching new users' profiles from `api`.
async fn app_for(store: &Store, api: ClerkApi, timeout: Duration) -> (Router, SigningKey) {
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let layer = layer_for(store, api, timeout, jwks.config());
    (app(layer), key)
}

async fn profile_on_first_sight(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = FakeClerk::start(fake_users(3)).await;
    let users = fake.users();
    let (app, key) = app_for(&store, fake.client(), Duration::from_secs(2)).await;
    let get_me = |user: &str| {
        app.clone()
            .oneshot(bearer(&key.session_token(ISSUER, user, 60)))
    };

    let (status, _) = read(get_me(&users[0].id).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(store.rows().await, [users[0].row()]);
    assert_eq!(fake.requests(), 1);

    // Concurrent first requests share one lookup; later requests make none.
    let burst: Vec<_> = (0..8).map(|_| tokio::spawn(get_me(&users[1].id))).collect();
    for response in burst {
        assert_eq!(response.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    let (status, _) = read(get_me(&users[0].id).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fake.requests(), 2);
    assert_eq!(store.rows().await, [users[0].row(), users[1].row()]);

    // A token carrying profile claims needs no lookup.
    let mut claims = session_claims(ISSUER, &users[2].id, 60);
    claims["email"] = "from-token@example.com".into();
    let (status, _) = read(
        app.clone()
            .oneshot(bearer(&key.sign(&claims)))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fake.requests(), 2);
    assert_eq!(
        store.rows().await[2].1.as_deref(),
        Some("from-token@example.com")
    );
}

/// A user deleted while their first request waits on a slow profile fetch
/// (longer than the store timeout) is not cached as active when the fetch
/// returns: neither that request nor any later one is served.
async fn deletion_during_a_slow_profile_fetch_is_final(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = FakeClerk::start(fake_users(1)).await;
    fake.set_faults(Faults {
        user_delay: Some(Duration::from_millis(900)),
        ..Faults::default()
    });
    let user = fake.users()[0].id.clone();
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let config = jwks.config().with_store_timeout(Duration::from_millis(300));
    let layer = layer_for(&store, fake.client(), Duration::from_secs(3), config);
    let app = app(layer.clone());
    let token = key.session_token(ISSUER, &user, 60);

    let first = tokio::spawn({
        let (app, token) = (app.clone(), token.clone());
        async move { read(app.oneshot(bearer(&token)).await.unwrap()).await }
    });
    // The row is created, the profile fetch is under way: delete the user
    // as the webhook receiver does, and acknowledge.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.rows().await.len(), 1, "the row exists meanwhile");
    store.delete_user(&user, 1).await.unwrap();
    layer.forget_user(&user).await;

    let (status, body) = first.await.unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("user_deleted")),
        "answered after the deletion was acknowledged"
    );
    for _ in 0..3 {
        let (status, body) = read(app.clone().oneshot(bearer(&token)).await.unwrap()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("user_deleted"))
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(store.rows().await.is_empty());
}

async fn profile_fetch_failures_never_fail_a_request(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = FakeClerk::start(fake_users(4)).await;
    let users = fake.users();
    let nowhere = fake.client().with_api_url(&closed_port_url()).unwrap();
    let cases = [
        (
            "down",
            Faults {
                down: true,
                ..Faults::default()
            },
            fake.client(),
        ),
        ("unreachable", Faults::default(), nowhere),
        (
            "rate limited for a minute",
            Faults {
                rate_limit_every: Some(1),
                retry_after_secs: 60,
                ..Faults::default()
            },
            fake.client(),
        ),
        ("user unknown to Clerk", Faults::default(), fake.client()),
    ];
    for (index, (case, faults, api)) in cases.into_iter().enumerate() {
        fake.set_faults(faults);
        let (app, key) = app_for(&store, api, Duration::from_millis(700)).await;
        let user = if index == 3 {
            random_id("user")
        } else {
            users[index].id.clone()
        };
        let started = Instant::now();
        let response = app
            .oneshot(bearer(&key.session_token(ISSUER, &user, 60)))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{case}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{case}: {:?}",
            started.elapsed()
        );
        let rows = store.rows().await;
        let row = rows
            .iter()
            .find(|row| row.0 == user)
            .unwrap_or_else(|| panic!("{case}: no row"));
        assert_eq!(
            (row.1.as_deref(), row.5),
            (None, None),
            "{case}: no profile"
        );
    }
}

/// Text PostgreSQL cannot hold (a NUL) is stored as absent by the profile
/// fetched on first sight, with the rest of the profile.
async fn nul_in_profile_text_is_left_out(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = FakeClerk::start(fake_users(1)).await;
    fake.edit(|users| users[0].last_name = Some("Love\u{0}lace".into()));
    let (app, key) = app_for(&store, fake.client(), Duration::from_secs(2)).await;
    let user = fake.users()[0].clone();
    let token = key.session_token(ISSUER, &user.id, 60);
    let (status, _) = read(app.oneshot(bearer(&token)).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let mut row = user.row();
    row.3 = None;
    assert_eq!(store.rows().await, [row]);
}
