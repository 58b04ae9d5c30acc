//! The Backend API client, profile on first sight, batched syncs, the
//! backfill and the `ensure-user` command, end to end: a fake Backend API on
//! loopback, real PostgreSQL and SQLite, and the built binary.

mod common;

use std::time::{Duration, Instant};

use axum::{Json, Router, routing::get};
use common::{
    clerk_api::{FakeClerk, Faults, SECRET, fake_users},
    *,
};
use ensure_user::{
    Config, EnsureUserLayer, LocalUser, ProfileFetch,
    backfill::{Backfill, BackfillError, Progress, Summary},
    clerk_api::{ApiError, ClerkApi, RetryPolicy},
    store::{
        BackfillStore, BatchOutcome, Checkpoint, PgUserStore, Profile, ProfileUpdate,
        SqliteUserStore, StoreError, UserStore, UserSync,
    },
    testing::{SigningKey, random_id, session_claims},
};
use http::StatusCode;
use tower::ServiceExt;

#[derive(Clone, Copy, Debug)]
enum Backend {
    Postgres,
    Sqlite,
}

/// Runs each listed `async fn(Backend)` as one test per backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Backend::Postgres).await
            })*
        }
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Backend::Sqlite).await
            })*
        }
    };
}

on_both_backends!(
    batches_follow_versions_and_tombstones,
    batch_respects_a_tombstone_committed_during_the_write,
    batches_on_a_mapped_uuid_table,
    large_batches_keep_their_outcomes,
    preview_writes_nothing,
    checkpoints_round_trip,
    profile_on_first_sight,
    profile_fetch_failures_never_fail_a_request,
    deletion_during_a_slow_profile_fetch_is_final,
    backfill_writes_every_user_then_nothing,
    interrupted_backfill_resumes,
    failing_api_changes_no_row,
    tombstoned_users_are_skipped,
    dry_run_counts_and_writes_nothing,
    a_refused_user_fails_alone,
    users_with_invalid_ids_are_not_written,
    nul_in_profile_text_is_left_out,
);

/// One of the bundled stores, behind one type.
#[derive(Clone)]
enum Store {
    Pg(PgUserStore),
    Lite(SqliteUserStore),
}

/// A user row: clerk id, email, first and last name, image URL, version.
type Row = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

const ROWS: &str = "SELECT clerk_id, email, first_name, last_name, image_url, clerk_updated_at \
                    FROM users ORDER BY clerk_id";

impl Store {
    async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Postgres => Self::Pg(postgres_store().await),
            Backend::Sqlite => Self::Lite(sqlite_store().await),
        }
    }

    async fn rows(&self) -> Vec<Row> {
        match self {
            Self::Pg(store) => sqlx::query_as(ROWS).fetch_all(store.pool()).await,
            Self::Lite(store) => sqlx::query_as(ROWS).fetch_all(store.pool()).await,
        }
        .unwrap()
    }

    async fn execute(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Self::Pg(store) => drop(sqlx::raw_sql(sql).execute(store.pool()).await.unwrap()),
            Self::Lite(store) => drop(sqlx::raw_sql(sql).execute(store.pool()).await.unwrap()),
        }
    }

    /// What the webhook receiver does to the store for `user.deleted`.
    async fn delete_user(&self, clerk_id: &str) {
        match self {
            Self::Pg(store) => drop(store.delete_user(clerk_id, 1).await.unwrap()),
            Self::Lite(store) => drop(store.delete_user(clerk_id, 1).await.unwrap()),
        }
    }

    async fn tombstone(&self, clerk_id: &str) {
        assert!(!clerk_id.contains('\''));
        self.execute(&format!(
            "INSERT INTO clerk_user_tombstones (clerk_id, deleted_at) VALUES ('{clerk_id}', 1)"
        ))
        .await;
    }

    /// Makes every insert of a `user_race…` row also record its tombstone,
    /// as a deletion committing between the insert's guard and its write would.
    async fn tombstone_on_insert(&self) {
        self.execute(match self {
            Self::Pg(_) => {
                "CREATE FUNCTION tombstone_race() RETURNS trigger AS $$
                    BEGIN
                        INSERT INTO clerk_user_tombstones VALUES (NEW.clerk_id, 0)
                            ON CONFLICT DO NOTHING;
                        RETURN NULL;
                    END $$ LANGUAGE plpgsql;
                 CREATE TRIGGER users_race AFTER INSERT ON users FOR EACH ROW
                    WHEN (NEW.clerk_id LIKE 'user_race%') EXECUTE FUNCTION tombstone_race();"
            }
            Self::Lite(_) => {
                "CREATE TRIGGER users_race AFTER INSERT ON users
                    WHEN NEW.clerk_id LIKE 'user_race%'
                 BEGIN INSERT OR IGNORE INTO clerk_user_tombstones VALUES (NEW.clerk_id, 0); END;"
            }
        })
        .await;
    }
}

impl BackfillStore for Store {
    async fn apply_batch(&self, users: &[ProfileUpdate]) -> Result<Vec<BatchOutcome>, StoreError> {
        match self {
            Self::Pg(store) => store.apply_batch(users).await,
            Self::Lite(store) => store.apply_batch(users).await,
        }
    }

    async fn preview_batch(
        &self,
        users: &[ProfileUpdate],
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        match self {
            Self::Pg(store) => store.preview_batch(users).await,
            Self::Lite(store) => store.preview_batch(users).await,
        }
    }

    async fn load_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        match self {
            Self::Pg(store) => store.load_checkpoint().await,
            Self::Lite(store) => store.load_checkpoint().await,
        }
    }

    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        match self {
            Self::Pg(store) => store.save_checkpoint(checkpoint).await,
            Self::Lite(store) => store.save_checkpoint(checkpoint).await,
        }
    }

    async fn clear_checkpoint(&self) -> Result<(), StoreError> {
        match self {
            Self::Pg(store) => store.clear_checkpoint().await,
            Self::Lite(store) => store.clear_checkpoint().await,
        }
    }
}

fn update(clerk_id: &str, version: i64) -> ProfileUpdate {
    ProfileUpdate::new(
        clerk_id,
        Profile::new()
            .with_email(format!("v{version}@example.com"))
            .with_names(Some(format!("First{version}")), None),
        version,
    )
}

fn row(clerk_id: &str, version: i64) -> Row {
    (
        clerk_id.to_owned(),
        Some(format!("v{version}@example.com")),
        Some(format!("First{version}")),
        None,
        None,
        Some(version),
    )
}

async fn batches_follow_versions_and_tombstones(backend: Backend) {
    use BatchOutcome::*;
    let store = Store::new(backend).await;
    let [a, b, c, gone] = ["user_a", "user_b", "user_c", "user_gone"];
    store.tombstone(gone).await;
    let outcomes = store
        .apply_batch(&[update(a, 10), update(b, 10), update(gone, 10)])
        .await
        .unwrap();
    assert_eq!(outcomes, [Created, Created, Tombstoned]);
    assert_eq!(store.rows().await, [row(a, 10), row(b, 10)]);

    // The same data again writes nothing; newer wins, older and equal do not.
    let again = [update(a, 10), update(b, 10)];
    assert_eq!(store.apply_batch(&again).await.unwrap(), [Unchanged; 2]);
    let mixed = [update(a, 11), update(b, 9), update(c, 1), update(c, 2)];
    assert_eq!(
        store.apply_batch(&mixed).await.unwrap(),
        [Updated, Unchanged, Unchanged, Created]
    );
    assert_eq!(
        store.rows().await,
        [row(a, 11), row(b, 10), row(c, 2)],
        "the newest of duplicate ids is the one kept"
    );

    // A row the layer created (no version yet) takes any profile.
    store
        .execute("INSERT INTO users (clerk_id) VALUES ('user_layer')")
        .await;
    assert_eq!(
        store.apply_batch(&[update("user_layer", 1)]).await.unwrap(),
        [Updated]
    );

    // The single-row path agrees with the batch.
    let sync = match &store {
        Store::Pg(s) => s.upsert_profile(a, &update(a, 12).profile, 12).await,
        Store::Lite(s) => s.upsert_profile(a, &update(a, 12).profile, 12).await,
    };
    assert_eq!(sync.unwrap().code(), "updated");
    assert_eq!(
        store.apply_batch(&[update(a, 12)]).await.unwrap(),
        [Unchanged]
    );
    assert_eq!(store.apply_batch(&[]).await.unwrap(), []);
}

async fn large_batches_keep_their_outcomes(backend: Backend) {
    use BatchOutcome::*;
    let store = Store::new(backend).await;
    let long = |n: usize| {
        ProfileUpdate::new(
            format!("user_{n:027}"),
            Profile::new()
                .with_image_url(format!("https://img.example.com/{}", "x".repeat(300 + n))),
            1,
        )
    };
    // Long rows, so that PostgreSQL cuts the batch into many statements;
    // the last user repeats the first with a newer version.
    let mut batch: Vec<ProfileUpdate> = (0..999).map(long).collect();
    let mut newer = long(0);
    newer.updated_at_ms = 2;
    batch.push(newer);
    let outcomes = store.apply_batch(&batch).await.unwrap();
    assert_eq!(outcomes[..999], [Created; 999]);
    assert_eq!(
        outcomes[999], Updated,
        "the newer duplicate wins, in a later statement"
    );
    let rows = store.rows().await;
    assert_eq!(rows.len(), 999);
    assert_eq!(rows[0].5, Some(2));
    assert_eq!(rows[998].4.as_ref().map(String::len), Some(24 + 300 + 998));
    assert_eq!(store.apply_batch(&batch).await.unwrap(), [Unchanged; 1000]);
}

async fn batch_respects_a_tombstone_committed_during_the_write(backend: Backend) {
    let store = Store::new(backend).await;
    store.tombstone_on_insert().await;
    let outcomes = store
        .apply_batch(&[update("user_race1", 1), update("user_fine", 1)])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [BatchOutcome::Tombstoned, BatchOutcome::Created],
        "the raced row is removed again"
    );
    assert_eq!(store.rows().await, [row("user_fine", 1)]);
}

async fn batches_on_a_mapped_uuid_table(backend: Backend) {
    let table = mapped_uuid_table();
    let id_type = match backend {
        Backend::Postgres => "UUID",
        Backend::Sqlite => "BLOB",
    };
    let bundled = Store::new(backend).await;
    bundled
        .execute(&format!(
            "CREATE TABLE accounts (account_id {id_type} PRIMARY KEY, \
             clerk_user_id TEXT NOT NULL UNIQUE, mail TEXT)"
        ))
        .await;
    let store = match bundled {
        Store::Pg(s) => Store::Pg(PgUserStore::with_table(s.pool().clone(), &table)),
        Store::Lite(s) => Store::Lite(SqliteUserStore::with_table(s.pool().clone(), &table)),
    };
    let users = [update("user_a", 1), update("user_b", 1)];
    use BatchOutcome::*;
    assert_eq!(store.apply_batch(&users).await.unwrap(), [Created, Created]);
    // Without a version column, an existing row is always overwritten.
    assert_eq!(store.apply_batch(&users).await.unwrap(), [Updated, Updated]);
    assert_eq!(
        store.preview_batch(&users).await.unwrap(),
        [Updated, Updated]
    );
}

async fn preview_writes_nothing(backend: Backend) {
    use BatchOutcome::*;
    let store = Store::new(backend).await;
    store.apply_batch(&[update("user_a", 5)]).await.unwrap();
    store.tombstone("user_gone").await;
    let batch = [
        update("user_a", 5),
        update("user_a", 6),
        update("user_new", 1),
        update("user_gone", 1),
    ];
    assert_eq!(
        store.preview_batch(&batch).await.unwrap(),
        [Unchanged, Updated, Created, Tombstoned]
    );
    assert_eq!(store.rows().await, [row("user_a", 5)]);
}

async fn checkpoints_round_trip(backend: Backend) {
    let store = Store::new(backend).await;
    assert_eq!(store.load_checkpoint().await.unwrap(), None);
    let first = Checkpoint::new(random_id("user"), 500);
    store.save_checkpoint(&first).await.unwrap();
    assert_eq!(store.load_checkpoint().await.unwrap(), Some(first));
    let second = Checkpoint::new("user_b", 1000);
    store.save_checkpoint(&second).await.unwrap();
    assert_eq!(store.load_checkpoint().await.unwrap(), Some(second));
    store.clear_checkpoint().await.unwrap();
    assert_eq!(store.load_checkpoint().await.unwrap(), None);
    store.clear_checkpoint().await.unwrap();
}

/// A client for `fake` that retries quickly.
fn client(fake: &FakeClerk) -> ClerkApi {
    ClerkApi::new(SECRET)
        .unwrap()
        .with_api_url(&fake.url())
        .unwrap()
        .with_retry(
            RetryPolicy::new(5).with_backoff(Duration::from_millis(5), Duration::from_millis(20)),
        )
}

/// Every user a walk returns, in order.
async fn walk(api: &ClerkApi, page_size: u32) -> Result<Vec<String>, ApiError> {
    let mut pages = api.users(page_size);
    let mut ids = Vec::new();
    while let Some(page) = pages.next_page().await? {
        ids.extend(page.into_iter().map(|user| user.id));
    }
    Ok(ids)
}

fn ids(fake: &FakeClerk) -> Vec<String> {
    fake.users().into_iter().map(|user| user.id).collect()
}

#[tokio::test]
async fn client_walks_with_the_cursor() {
    let fake = FakeClerk::start(fake_users(1234)).await;
    let api = client(&fake);
    assert_eq!(api.user_count().await.unwrap(), 1234);
    assert_eq!(walk(&api, 500).await.unwrap(), ids(&fake));
    let queries = fake.list_queries();
    assert_eq!(queries.len(), 3, "{queries:?}");
    assert_eq!(queries[0], "limit=500&order_by=created_at");
    assert_eq!(
        queries[1],
        format!(
            "limit=500&order_by=created_at&starting_after={}",
            ids(&fake)[499]
        )
    );

    // A walk ending on a full page asks once more and gets an empty one.
    let even = FakeClerk::start(fake_users(20)).await;
    assert_eq!(walk(&client(&even), 10).await.unwrap(), ids(&even));
    assert_eq!(even.list_queries().len(), 3);
}

#[tokio::test]
async fn client_falls_back_to_offsets() {
    let fake = FakeClerk::start(fake_users(1100)).await;
    fake.set_faults(Faults {
        no_cursor: true,
        ..Faults::default()
    });
    let api = client(&fake);
    assert_eq!(walk(&api, 500).await.unwrap(), ids(&fake));
    let queries = fake.list_queries();
    assert!(queries[1].contains("starting_after"), "{queries:?}");
    assert_eq!(queries[2], "limit=500&order_by=created_at&offset=500");
    assert_eq!(queries[3], "limit=500&order_by=created_at&offset=1000");

    // A resumed walk falls back from its saved position.
    let mut pages = api.users(500).resume_after(ids(&fake)[999].clone(), 1000);
    let page = pages.next_page().await.unwrap().unwrap();
    assert_eq!(page.len(), 100);
    assert_eq!(page[0].id, ids(&fake)[1000]);
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
    let api = client(&fake);
    assert_eq!(walk(&api, 200).await.unwrap(), ids(&fake));
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
    let api = client(&fake).with_retry(RetryPolicy::new(1));
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
    let impatient =
        client(&fake).with_retry(RetryPolicy::new(3).with_max_retry_after(Duration::ZERO));
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
    let api = client(&fake).with_retry(
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

    let nowhere = client(&fake)
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
    let api = client(&fake);
    let expected = &fake.users()[0];
    let user = api.user(&expected.id).await.unwrap().unwrap();
    assert_eq!(user.primary_email(), expected.email.as_deref());
    assert_eq!(user.updated_at, expected.updated_at);
    assert_eq!(api.user("user_missing").await.unwrap(), None);
    // Ids are one path segment, whatever they hold.
    assert_eq!(api.user("../count").await.unwrap(), None);
}

/// A layer fetching new users' profiles from `api`.
fn layer_fetching_profiles<S>(
    store: S,
    api: ClerkApi,
    timeout: Duration,
    config: Config,
) -> EnsureUserLayer
where
    S: UserStore + UserSync + Clone,
{
    let fetch = ProfileFetch::new(api, store.clone()).with_timeout(timeout);
    EnsureUserLayer::new(config, store).with_profile_fetch(fetch)
}

fn layer_for(store: &Store, api: ClerkApi, timeout: Duration, config: Config) -> EnsureUserLayer {
    match store.clone() {
        Store::Pg(s) => layer_fetching_profiles(s, api, timeout, config),
        Store::Lite(s) => layer_fetching_profiles(s, api, timeout, config),
    }
}

fn me_behind(layer: EnsureUserLayer) -> Router {
    Router::new()
        .route("/me", get(|user: LocalUser| async move { Json(user.id()) }))
        .layer(layer)
}

/// An app behind the layer, fetching new users' profiles from `api`.
async fn app_for(store: &Store, api: ClerkApi, timeout: Duration) -> (Router, SigningKey) {
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let layer = layer_for(store, api, timeout, jwks.config());
    (me_behind(layer), key)
}

fn expected_row(user: &common::clerk_api::FakeUser) -> Row {
    (
        user.id.clone(),
        user.email.clone(),
        user.first_name.clone(),
        user.last_name.clone(),
        user.image_url.clone(),
        Some(user.updated_at),
    )
}

async fn profile_on_first_sight(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = FakeClerk::start(fake_users(3)).await;
    let users = fake.users();
    let (app, key) = app_for(&store, client(&fake), Duration::from_secs(2)).await;
    let get_me = |user: &str| {
        app.clone()
            .oneshot(bearer(&key.session_token(ISSUER, user, 60)))
    };

    let (status, _) = read(get_me(&users[0].id).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(store.rows().await, [expected_row(&users[0])]);
    assert_eq!(fake.requests(), 1);

    // Concurrent first requests share one lookup; later requests make none.
    let burst: Vec<_> = (0..8).map(|_| tokio::spawn(get_me(&users[1].id))).collect();
    for response in burst {
        assert_eq!(response.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    let (status, _) = read(get_me(&users[0].id).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fake.requests(), 2);
    assert_eq!(
        store.rows().await,
        [expected_row(&users[0]), expected_row(&users[1])]
    );

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
    let layer = layer_for(&store, client(&fake), Duration::from_secs(3), config);
    let app = me_behind(layer.clone());
    let token = key.session_token(ISSUER, &user, 60);

    let first = tokio::spawn({
        let (app, token) = (app.clone(), token.clone());
        async move { read(app.oneshot(bearer(&token)).await.unwrap()).await }
    });
    // The row is created, the profile fetch is under way: delete the user
    // as the webhook receiver does, and acknowledge.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.rows().await.len(), 1, "the row exists meanwhile");
    store.delete_user(&user).await;
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
    let nowhere = client(&fake).with_api_url(&closed_port_url()).unwrap();
    let cases = [
        (
            "down",
            Faults {
                down: true,
                ..Faults::default()
            },
            client(&fake),
        ),
        ("unreachable", Faults::default(), nowhere),
        (
            "rate limited for a minute",
            Faults {
                rate_limit_every: Some(1),
                retry_after_secs: 60,
                ..Faults::default()
            },
            client(&fake),
        ),
        ("user unknown to Clerk", Faults::default(), client(&fake)),
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

fn backfill(store: &Store, fake: &FakeClerk, page_size: u32) -> Backfill<Store> {
    Backfill::new(client(fake), store.clone()).with_page_size(page_size)
}

/// Runs `backfill` and returns its result with every progress report.
async fn run(backfill: &Backfill<Store>) -> (Result<Summary, BackfillError>, Vec<Progress>) {
    let mut reports = Vec::new();
    let result = backfill.run(|progress| reports.push(*progress)).await;
    (result, reports)
}

fn counts(summary: Summary) -> [u64; 5] {
    [
        summary.created,
        summary.updated,
        summary.unchanged,
        summary.skipped,
        summary.failed,
    ]
}

fn expected_rows(fake: &FakeClerk) -> Vec<Row> {
    let mut rows: Vec<Row> = fake.users().iter().map(expected_row).collect();
    rows.sort();
    rows
}

async fn backfill_writes_every_user_then_nothing(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = FakeClerk::start(fake_users(2600)).await;
    fake.set_faults(Faults {
        rate_limit_every: Some(5),
        fail_every: Some(7),
        ..Faults::default()
    });
    // A row the layer created before the backfill, without a profile.
    let early = fake.users()[10].id.clone();
    store
        .execute(&format!("INSERT INTO users (clerk_id) VALUES ('{early}')"))
        .await;

    let (result, reports) = run(&backfill(&store, &fake, 500)).await;
    assert_eq!(counts(result.unwrap()), [2599, 1, 0, 0, 0]);
    assert_eq!(
        store.rows().await,
        expected_rows(&fake),
        "rows match Clerk exactly"
    );
    let last = reports.last().unwrap();
    assert_eq!(
        (last.position, last.total, last.resumed_from),
        (2600, Some(2600), 0)
    );
    assert_eq!(reports.len(), 7, "one report at the start and one per page");
    assert_eq!(
        store.load_checkpoint().await.unwrap(),
        None,
        "a complete run clears it"
    );

    // A second run over the same data writes nothing.
    let (result, _) = run(&backfill(&store, &fake, 500)).await;
    assert_eq!(counts(result.unwrap()), [0, 0, 2600, 0, 0]);

    // Newer profiles are taken; an older one is not.
    fake.edit(|users| {
        for user in &mut users[100..103] {
            user.email = Some(format!("changed-{}", user.id));
            user.updated_at += 1;
        }
        users[200].first_name = Some("Older".into());
        users[200].updated_at -= 1;
    });
    let (result, _) = run(&backfill(&store, &fake, 500)).await;
    assert_eq!(counts(result.unwrap()), [0, 3, 2597, 0, 0]);
    let rows = store.rows().await;
    assert_eq!(
        rows[100].1.as_deref(),
        Some(format!("changed-{}", rows[100].0).as_str())
    );
    assert_ne!(rows[200].2.as_deref(), Some("Older"));
}

async fn interrupted_backfill_resumes(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = FakeClerk::start(fake_users(2000)).await;
    let ids = ids(&fake);
    let stop_after = |pages| Faults {
        fail_after_pages: Some(pages),
        ..Faults::default()
    };

    // Three pages are served, then the API fails for good.
    fake.set_faults(stop_after(3));
    let (result, _) = run(&backfill(&store, &fake, 250)).await;
    let error = result.unwrap_err();
    assert!(matches!(error, BackfillError::Api { .. }), "{error}");
    assert_eq!(counts(error.summary()), [750, 0, 0, 0, 0]);
    assert_eq!(store.rows().await.len(), 750);
    assert_eq!(
        store.load_checkpoint().await.unwrap(),
        Some(Checkpoint::new(ids[749].clone(), 750))
    );

    // The next run resumes after the last user written, with the cursor...
    fake.set_faults(stop_after(2));
    let queries_before = fake.list_queries().len();
    let (result, reports) = run(&backfill(&store, &fake, 250)).await;
    assert_eq!(counts(result.unwrap_err().summary()), [500, 0, 0, 0, 0]);
    assert_eq!(reports[0].resumed_from, 750);
    assert_eq!(
        fake.list_queries()[queries_before],
        format!("limit=250&order_by=created_at&starting_after={}", ids[749])
    );

    // ...or, where the cursor is refused, by offset from the same place.
    fake.set_faults(Faults {
        no_cursor: true,
        ..Faults::default()
    });
    let queries_before = fake.list_queries().len();
    let (result, _) = run(&backfill(&store, &fake, 250)).await;
    assert_eq!(counts(result.unwrap()), [750, 0, 0, 0, 0]);
    let offsets: Vec<String> = fake.list_queries()[queries_before + 1..]
        .iter()
        .map(|query| query.rsplit('&').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        offsets,
        ["offset=1250", "offset=1500", "offset=1750", "offset=2000"]
    );
    assert_eq!(store.rows().await, expected_rows(&fake));
    assert_eq!(store.load_checkpoint().await.unwrap(), None);

    // --restart ignores a saved checkpoint.
    store
        .save_checkpoint(&Checkpoint::new(ids[1899].clone(), 1900))
        .await
        .unwrap();
    fake.set_faults(Faults::default());
    let (result, _) = run(&backfill(&store, &fake, 250).restart(true)).await;
    assert_eq!(counts(result.unwrap()), [0, 0, 2000, 0, 0]);
}

async fn failing_api_changes_no_row(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = FakeClerk::start(fake_users(600)).await;
    run(&backfill(&store, &fake, 200)).await.0.unwrap();
    let before = store.rows().await;

    fake.edit(|users| {
        for user in users.iter_mut() {
            user.email = None;
            user.updated_at += 10;
        }
    });
    for faults in [
        Faults {
            down: true,
            ..Faults::default()
        },
        Faults {
            rate_limit_every: Some(1),
            retry_after_secs: 0,
            ..Faults::default()
        },
    ] {
        fake.set_faults(faults);
        let (result, _) = run(&backfill(&store, &fake, 200)).await;
        let error = result.unwrap_err();
        assert!(matches!(error, BackfillError::Api { .. }), "{error}");
        assert_eq!(error.summary().total(), 0);
        assert_eq!(store.rows().await, before);
    }
}

async fn tombstoned_users_are_skipped(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = FakeClerk::start(fake_users(700)).await;
    let deleted: Vec<String> = ids(&fake).into_iter().step_by(100).collect();
    for clerk_id in &deleted {
        store.tombstone(clerk_id).await;
    }
    let (result, _) = run(&backfill(&store, &fake, 300)).await;
    assert_eq!(counts(result.unwrap()), [693, 0, 0, 7, 0]);
    let mut expected = expected_rows(&fake);
    expected.retain(|row| !deleted.contains(&row.0));
    assert_eq!(store.rows().await, expected);
}

async fn dry_run_counts_and_writes_nothing(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = FakeClerk::start(fake_users(450)).await;
    let (result, _) = run(&backfill(&store, &fake, 200).dry_run(true)).await;
    assert_eq!(counts(result.unwrap()), [450, 0, 0, 0, 0]);
    assert_eq!(store.rows().await, []);

    run(&backfill(&store, &fake, 200)).await.0.unwrap();
    fake.edit(|users| {
        for user in &mut users[..10] {
            user.updated_at += 1;
            user.last_name = None;
        }
    });
    store.tombstone(&fake.users()[20].id).await;
    store
        .save_checkpoint(&Checkpoint::new("user_kept", 42))
        .await
        .unwrap();
    let before = store.rows().await;
    let (result, _) = run(&backfill(&store, &fake, 200).dry_run(true)).await;
    assert_eq!(counts(result.unwrap()), [0, 10, 439, 1, 0]);
    assert_eq!(store.rows().await, before);
    assert_eq!(
        store.load_checkpoint().await.unwrap(),
        Some(Checkpoint::new("user_kept", 42)),
        "a dry run neither reads nor moves the checkpoint"
    );
}

async fn a_refused_user_fails_alone(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = FakeClerk::start(fake_users(300)).await;
    fake.edit(|users| users[123].email = Some("refused@example.com".into()));
    store
        .execute(match backend {
            Backend::Postgres => {
                "CREATE FUNCTION refuse() RETURNS trigger AS $$
                    BEGIN RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql;
                 CREATE TRIGGER refuse BEFORE INSERT ON users FOR EACH ROW
                    WHEN (NEW.email = 'refused@example.com') EXECUTE FUNCTION refuse();"
            }
            Backend::Sqlite => {
                "CREATE TRIGGER refuse BEFORE INSERT ON users
                    WHEN NEW.email = 'refused@example.com'
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;"
            }
        })
        .await;
    let (result, _) = run(&backfill(&store, &fake, 100)).await;
    assert_eq!(counts(result.unwrap()), [299, 0, 0, 0, 1]);
    assert_eq!(store.rows().await.len(), 299);

    store
        .execute(match backend {
            Backend::Postgres => "DROP TRIGGER refuse ON users",
            Backend::Sqlite => "DROP TRIGGER refuse",
        })
        .await;
    let (result, _) = run(&backfill(&store, &fake, 100)).await;
    assert_eq!(counts(result.unwrap()), [1, 0, 299, 0, 0]);
}

/// Text PostgreSQL cannot hold (a NUL) is stored as absent, by the backfill
/// and by the profile fetched on first sight, with the rest of the profile.
async fn nul_in_profile_text_is_left_out(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = FakeClerk::start(fake_users(200)).await;
    fake.edit(|users| {
        users[50].first_name = Some("Bad\u{0}Name".into());
        users[60].email = Some("x\u{0}@example.com".into());
    });
    let (result, _) = run(&backfill(&store, &fake, 100)).await;
    assert_eq!(counts(result.unwrap()), [200, 0, 0, 0, 0]);
    let expected: Vec<Row> = {
        let mut users = fake.users();
        users[50].first_name = None;
        users[60].email = None;
        let mut rows: Vec<Row> = users.iter().map(expected_row).collect();
        rows.sort();
        rows
    };
    assert_eq!(store.rows().await, expected);

    let store = Store::new(backend).await;
    let fake = FakeClerk::start(fake_users(1)).await;
    fake.edit(|users| users[0].last_name = Some("Love\u{0}lace".into()));
    let (app, key) = app_for(&store, client(&fake), Duration::from_secs(2)).await;
    let user = fake.users()[0].clone();
    let token = key.session_token(ISSUER, &user.id, 60);
    let (status, _) = read(app.oneshot(bearer(&token)).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let mut row = expected_row(&user);
    row.3 = None;
    assert_eq!(store.rows().await, [row]);
}

/// Ids no token or webhook could ever carry are not written: one rule for
/// every way an id enters.
async fn users_with_invalid_ids_are_not_written(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = FakeClerk::start(fake_users(300)).await;
    let long = format!("user_{}", "x".repeat(200));
    fake.edit(|users| {
        users[100].id = "user_with space".into();
        users[200].id = long.clone();
    });
    let (result, _) = run(&backfill(&store, &fake, 100)).await;
    assert_eq!(counts(result.unwrap()), [298, 0, 0, 0, 2]);
    let rows = store.rows().await;
    assert_eq!(rows.len(), 298);
    assert!(
        rows.iter()
            .all(|row| row.0 != "user_with space" && row.0 != long)
    );
}

/// Runs the `ensure-user` binary with `args` and `env` (nothing else from
/// the environment that it reads); returns its exit code and all it printed.
async fn ensure_user(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ensure-user"));
    command.args(args);
    for name in ["DATABASE_URL", "CLERK_SECRET_KEY", "CLERK_API_URL"] {
        command.env_remove(name);
    }
    command.env("RUST_LOG", "trace").envs(env.iter().copied());
    let output = command.output().await.unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The number after `label:` on a summary line.
fn count_of(stdout: &str, label: &str) -> u64 {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{label}:")))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no `{label}` in {stdout}"))
}

fn sqlite_url() -> String {
    let path = std::env::temp_dir().join(format!("ensure-user-cli-{}.db", random_id("db")));
    format!("sqlite:{}", path.display())
}

#[tokio::test]
async fn cli_backfills_and_never_shows_the_secret() {
    let fake = FakeClerk::start(fake_users(1200)).await;
    fake.set_faults(Faults {
        rate_limit_every: Some(4),
        fail_every: Some(5),
        ..Faults::default()
    });
    let database = sqlite_url();
    let api = fake.url();
    let env = [
        ("DATABASE_URL", database.as_str()),
        ("CLERK_SECRET_KEY", SECRET),
        ("CLERK_API_URL", api.as_str()),
    ];
    let mut printed = String::new();

    let (code, out, err) = ensure_user(&["migrate"], &env).await;
    assert_eq!(code, 0, "{out}{err}");
    printed += &(out + &err);

    let (code, out, err) = ensure_user(&["backfill", "--dry-run"], &env).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("dry run: nothing was written"), "{out}");
    assert_eq!(count_of(&out, "created"), 1200);
    printed += &(out + &err);

    let (code, out, err) = ensure_user(&["backfill", "--page-size", "300"], &env).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(count_of(&out, "created"), 1200, "{out}");
    assert!(
        err.contains("backfill: 0/1200 users (0%)"),
        "a plain progress line: {err}"
    );
    assert!(
        err.contains("trying again"),
        "the retries are logged: {err}"
    );
    printed += &(out + &err);

    let (code, out, err) = ensure_user(&["backfill"], &env).await;
    assert_eq!(code, 0, "{out}{err}");
    let summary: Vec<u64> = ["created", "updated", "unchanged", "skipped", "failed"]
        .iter()
        .map(|label| count_of(&out, label))
        .collect();
    assert_eq!(summary, [0, 0, 1200, 0, 0]);
    printed += &(out + &err);

    let pool = sqlx::SqlitePool::connect(&database).await.unwrap();
    let (rows, emails): (i64, i64) = sqlx::query_as("SELECT COUNT(*), COUNT(email) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    let with_email = fake
        .users()
        .iter()
        .filter(|user| user.email.is_some())
        .count();
    assert_eq!((rows, emails), (1200, with_email as i64));
    assert!(
        !printed.contains(SECRET),
        "the secret key was printed:\n{printed}"
    );
    assert!(
        !printed.contains(&SECRET[8..]),
        "part of the secret key was printed"
    );
}

#[tokio::test]
async fn cli_failures_exit_non_zero_and_never_show_the_secret() {
    let fake = FakeClerk::start(fake_users(50)).await;
    let database = sqlite_url();
    let api = fake.url();
    let with_key = |secret| {
        [
            ("DATABASE_URL", database.as_str()),
            ("CLERK_SECRET_KEY", secret),
            ("CLERK_API_URL", api.as_str()),
        ]
    };
    let good = with_key(SECRET);
    assert_eq!(ensure_user(&["migrate"], &good).await.0, 0);
    let mut printed = String::new();

    // A refused key.
    let wrong = with_key("sk_test_WRONG0but0still0secret");
    let (code, out, err) = ensure_user(&["backfill"], &wrong).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("refused the secret key"), "{err}");
    assert!(!format!("{out}{err}").contains("WRONG0but0still0secret"));

    // The API down: retried, then a non-zero exit.
    fake.set_faults(Faults {
        down: true,
        ..Faults::default()
    });
    let (code, out, err) = ensure_user(&["backfill"], &good).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("error: reading users from the Backend API failed"),
        "{err}"
    );
    printed += &(out + &err);

    // The key as a flag, with a database that cannot be opened.
    let (code, out, err) = ensure_user(
        &[
            "backfill",
            "--secret-key",
            SECRET,
            "--database-url",
            "mysql://nowhere",
        ],
        &[("CLERK_API_URL", api.as_str())],
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("DATABASE_URL must start with"), "{err}");
    printed += &(out + &err);

    // Help shows which variables are read, never their values.
    let (code, out, err) = ensure_user(&["backfill", "--help"], &good).await;
    assert_eq!(code, 0);
    assert!(out.contains("CLERK_SECRET_KEY"), "{out}");
    printed += &(out + &err);

    assert!(
        !printed.contains(SECRET),
        "the secret key was printed:\n{printed}"
    );
}

#[tokio::test]
async fn cli_backfills_postgres() {
    let fake = FakeClerk::start(fake_users(700)).await;
    let pool = postgres_pool().await;
    let schema: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let database = format!("{}?options=-c%20search_path%3D{schema}", postgres_url());
    let api = fake.url();
    let env = [
        ("DATABASE_URL", database.as_str()),
        ("CLERK_SECRET_KEY", SECRET),
        ("CLERK_API_URL", api.as_str()),
    ];
    let (code, out, err) = ensure_user(&["migrate"], &env).await;
    assert_eq!(
        (code, out.trim()),
        (0, "migrations applied (PostgreSQL)"),
        "{err}"
    );
    let (code, out, err) = ensure_user(&["backfill"], &env).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(count_of(&out, "created"), 700);
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 700);
    assert!(!format!("{out}{err}").contains(SECRET));
}
