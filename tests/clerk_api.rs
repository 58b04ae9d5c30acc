//! The Backend API client against a fake Backend API on loopback: it walks
//! the users by cursor or by offset, rides out rate limits and server
//! errors, bounds its retries, and never shows the secret key.

mod common;

use std::time::{Duration, Instant};

use common::{
    clerk_api::{FakeClerk, Faults, SECRET, fake_users},
    *,
};
use ensure_user::clerk_api::{ApiError, ClerkApi, RetryPolicy};

/// Every user a walk returns, in order.
async fn walk(api: &ClerkApi, page_size: u32) -> Result<Vec<String>, ApiError> {
    let mut pages = api.users(page_size);
    let mut ids = Vec::new();
    while let Some(page) = pages.next_page().await? {
        ids.extend(page.into_iter().map(|user| user.id));
    }
    Ok(ids)
}

#[tokio::test]
async fn client_walks_with_the_cursor() {
    let fake = FakeClerk::start(fake_users(1234)).await;
    let api = fake.client();
    assert_eq!(api.user_count().await.unwrap(), 1234);
    assert_eq!(walk(&api, 500).await.unwrap(), fake.ids());
    let queries = fake.list_queries();
    assert_eq!(queries.len(), 3, "{queries:?}");
    assert_eq!(queries[0], "limit=500&order_by=created_at");
    assert_eq!(
        queries[1],
        format!(
            "limit=500&order_by=created_at&starting_after={}",
            fake.ids()[499]
        )
    );

    // A walk ending on a full page asks once more and gets an empty one.
    let even = FakeClerk::start(fake_users(20)).await;
    assert_eq!(walk(&even.client(), 10).await.unwrap(), even.ids());
    assert_eq!(even.list_queries().len(), 3);
}

#[tokio::test]
async fn client_falls_back_to_offsets() {
    let fake = FakeClerk::start(fake_users(1100)).await;
    fake.set_faults(Faults {
        no_cursor: true,
        ..Faults::default()
    });
    let api = fake.client();
    assert_eq!(walk(&api, 500).await.unwrap(), fake.ids());
    let queries = fake.list_queries();
    assert!(queries[1].contains("starting_after"), "{queries:?}");
    assert_eq!(queries[2], "limit=500&order_by=created_at&offset=500");
    assert_eq!(queries[3], "limit=500&order_by=created_at&offset=1000");

    // A resumed walk falls back from its saved position.
    let mut pages = api.users(500).resume_after(fake.ids()[999].clone(), 1000);
    let page = pages.next_page().await.unwrap().unwrap();
    assert_eq!(page.len(), 100);
    assert_eq!(page[0].id, fake.ids()[1000]);
    assert!(pages.uses_offsets());
    assert_eq!(pages.position(), 1100);
}

#[tokio::test]
async fn client_rides_out_rate_limits_and_server_errors() {
    let fake = FakeClerk::start(fake_users(2000)).await;
    fake.set_faults(Faults {
        rate_limit_every: Some(3),
        fail_every: Some(4),
        ..Faults::default()
    });
    let api = fake.client();
    assert_eq!(walk(&api, 200).await.unwrap(), fake.ids());
    assert!(
        fake.requests() > 14,
        "faults were served: {}",
        fake.requests()
    );
}

#[tokio::test]
async fn client_waits_as_retry_after_says() {
    let fake = FakeClerk::start(fake_users(3)).await;
    fake.set_faults(Faults {
        rate_limit_every: Some(1),
        retry_after_secs: 1,
        ..Faults::default()
    });
    let api = fake.client().with_retry(RetryPolicy::new(1));
    let started = Instant::now();
    let error = api.user_count().await.unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, ApiError::RateLimited { retry_after: Some(wait) } if wait == Duration::from_secs(1)),
        "{error:?}"
    );
    assert_eq!(fake.requests(), 2);

    // A wait longer than the policy allows fails at once.
    let impatient = fake
        .client()
        .with_retry(RetryPolicy::new(3).with_max_retry_after(Duration::ZERO));
    let started = Instant::now();
    assert_eq!(
        impatient.user_count().await.unwrap_err().status(),
        Some(429)
    );
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn client_retries_are_bounded() {
    let fake = FakeClerk::start(fake_users(3)).await;
    fake.set_faults(Faults {
        down: true,
        ..Faults::default()
    });
    let api = fake.client().with_retry(
        RetryPolicy::new(2).with_backoff(Duration::from_millis(1), Duration::from_millis(1)),
    );
    let error = api.user_count().await.unwrap_err();
    assert_eq!(error.status(), Some(500));
    assert_eq!(fake.requests(), 3, "one attempt and two retries");
}

#[tokio::test]
async fn client_errors_never_show_the_secret() {
    let fake = FakeClerk::start(fake_users(3)).await;
    let wrong = ClerkApi::new("sk_test_WRONGkey0also0secret")
        .unwrap()
        .with_api_url(&fake.url())
        .unwrap();
    let error = wrong.user_count().await.unwrap_err();
    assert!(
        matches!(error, ApiError::Unauthorized { status: 401, .. }),
        "{error:?}"
    );
    assert_eq!(fake.requests(), 1, "a refused key is not retried");

    let nowhere = fake
        .client()
        .with_api_url(&closed_port_url())
        .unwrap()
        .with_retry(RetryPolicy::never());
    let unreachable = nowhere.user("user_1").await.unwrap_err();
    assert!(
        matches!(unreachable, ApiError::Unreachable(_)),
        "{unreachable:?}"
    );

    for (shown, secret) in [
        (format!("{error} {error:?} {wrong:?}"), "WRONGkey"),
        (format!("{unreachable} {unreachable:?} {nowhere:?}"), SECRET),
    ] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

#[tokio::test]
async fn client_reads_one_user() {
    let fake = FakeClerk::start(fake_users(6)).await;
    let api = fake.client();
    let expected = &fake.users()[0];
    let user = api.user(&expected.id).await.unwrap().unwrap();
    assert_eq!(user.primary_email(), expected.email.as_deref());
    assert_eq!(user.updated_at, expected.updated_at);
    assert_eq!(api.user("user_missing").await.unwrap(), None);
    // Ids are one path segment, whatever they hold.
    assert_eq!(api.user("../count").await.unwrap(), None);
}
