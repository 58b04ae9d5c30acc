//! The user row behind a request, end to end on both stores: 1,000
//! concurrent first requests make one row and one store call, so do racing
//! instances; a user who exists costs no write after a restart; profile
//! claims fill a new row; a tombstoned user is refused and not recreated; a
//! deletion during a lookup is not forgotten; 10,000 new users at once.

mod common;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{app::*, *};
use ensure_user::{
    EnsureUserLayer, LocalId,
    store::{Profile, Resolution, StoreError, UserStore},
    testing::{SigningKey, random_id, session_claims},
};
use http::StatusCode;
use serde_json::json;
use tokio::sync::Notify;
use tower::ServiceExt;

on_both_stores!(
    concurrent_first_requests_make_one_row_and_one_call,
    racing_instances_converge_on_one_row,
    existing_user_miss_writes_nothing,
    profile_claims_fill_a_new_row,
    tombstoned_user_is_refused_and_not_recreated,
    ten_thousand_new_users_at_concurrency_64,
);

async fn concurrent_first_requests_make_one_row_and_one_call(backend: Backend) {
    let f = Fixture::new().await;
    let db = Store::new(backend).await;
    let store = CountingStore::new(db.clone());
    let app = app(EnsureUserLayer::new(f.jwks.config(), store.clone()));
    let user = random_id("user");
    let token = Arc::new(f.token(&f.claims(&user)));
    let requests = (0..1000).map(|_| {
        let (app, token) = (app.clone(), token.clone());
        tokio::spawn(async move { call(&app, bearer(&token)).await })
    });
    let mut ids = Vec::new();
    for request in requests {
        let (status, body) = request.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        ids.push(body["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every request sees the same local id");
    assert_eq!(
        store.calls(),
        1,
        "one store call for 1,000 concurrent misses"
    );
    assert_eq!(db.rows_of(&user).await, 1);
}

/// Wraps a store: the first `parties` calls meet inside it (each waits for
/// the others) before they go on to the real store together, and every
/// answer of the real store is kept.
#[derive(Clone)]
struct MeetingStore<S> {
    inner: S,
    parties: usize,
    meeting: Arc<tokio::sync::Barrier>,
    calls: Arc<AtomicUsize>,
    answers: Arc<Mutex<Vec<Resolution>>>,
}

impl<S> MeetingStore<S> {
    fn new(inner: S, parties: usize) -> Self {
        Self {
            inner,
            parties,
            meeting: Arc::new(tokio::sync::Barrier::new(parties)),
            calls: Arc::new(AtomicUsize::new(0)),
            answers: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The same meeting and records, around another store.
    fn around(&self, inner: S) -> Self {
        Self {
            inner,
            parties: self.parties,
            meeting: self.meeting.clone(),
            calls: self.calls.clone(),
            answers: self.answers.clone(),
        }
    }
}

impl<S: UserStore> UserStore for MeetingStore<S> {
    async fn find_or_create(
        &self,
        clerk_id: &str,
        profile: &Profile,
    ) -> Result<Resolution, StoreError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.parties {
            tokio::time::timeout(Duration::from_secs(30), self.meeting.wait())
                .await
                .expect("every instance's lookup reaches the store");
        }
        let answer = self.inner.find_or_create(clerk_id, profile).await?;
        self.answers.lock().unwrap().push(answer);
        Ok(answer)
    }
}

/// Separate layers (separate caches, as separate processes would have) racing
/// on one new user through separate pools still make exactly one row. Each
/// layer's lookup waits inside the store until all eight are there, so
/// that they reach the database together, and each answers the one row.
async fn racing_instances_converge_on_one_row(backend: Backend) {
    const INSTANCES: usize = 8;
    let f = Fixture::new().await;
    let first = Store::new(backend).await;
    let user = random_id("user");
    let token = Arc::new(f.token(&f.claims(&user)));
    let meeting = MeetingStore::new(first.clone(), INSTANCES);
    let config = f.jwks.config().with_store_timeout(Duration::from_secs(60));
    let mut tasks = Vec::new();
    for _ in 0..INSTANCES {
        let store = meeting.around(first.reopen(2).await);
        let app = app(EnsureUserLayer::new(config.clone(), store));
        for _ in 0..4 {
            let (app, token) = (app.clone(), token.clone());
            tasks.push(tokio::spawn(
                async move { call(&app, bearer(&token)).await },
            ));
        }
    }
    let mut ids = Vec::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        ids.push(body["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1);
    assert_eq!(first.rows_of(&user).await, 1);
    let answers = meeting.answers.lock().unwrap().clone();
    assert_eq!(
        answers.len(),
        INSTANCES,
        "one lookup per instance: {answers:?}"
    );
    let ids: Vec<_> = answers.iter().map(|answer| answer.id()).collect();
    assert!(
        ids.iter().all(|id| id.is_some() && *id == ids[0]),
        "every lookup that met in the store answers the one row: {answers:?}"
    );
}

/// Every insert or update of a user row is counted in `writes`.
const WRITE_AUDIT_SQLITE: &str = "
    CREATE TABLE writes (n INTEGER);
    CREATE TRIGGER users_insert AFTER INSERT ON users BEGIN INSERT INTO writes VALUES (1); END;
    CREATE TRIGGER users_update AFTER UPDATE ON users BEGIN INSERT INTO writes VALUES (1); END;";

const WRITE_AUDIT_POSTGRES: &str = "
    CREATE TABLE writes (n INTEGER);
    CREATE FUNCTION note_write() RETURNS trigger AS $$
        BEGIN INSERT INTO writes VALUES (1); RETURN NULL; END $$ LANGUAGE plpgsql;
    CREATE TRIGGER users_write AFTER INSERT OR UPDATE ON users
        FOR EACH ROW EXECUTE FUNCTION note_write();";

/// A restart (an empty cache) must not turn into writes: an existing user costs a read.
async fn existing_user_miss_writes_nothing(backend: Backend) {
    let store = Store::new(backend).await;
    store
        .execute(match backend {
            Backend::Postgres => WRITE_AUDIT_POSTGRES,
            Backend::Sqlite => WRITE_AUDIT_SQLITE,
        })
        .await;
    let writes = async || store.number("SELECT count(*) FROM writes").await;
    let f = Fixture::new().await;
    let user = random_id("user");
    let first = app(EnsureUserLayer::new(f.jwks.config(), store.clone()));
    let (_, created) = call(&first, bearer(&f.token(&f.claims(&user)))).await;
    assert_eq!(writes().await, 1, "creating the user is one insert");

    // A new process: fresh caches, same database, a new token for the same user.
    let restarted = app(EnsureUserLayer::new(f.jwks.config(), store.clone()));
    let (status, again) = call(&restarted, bearer(&f.token(&f.claims(&user)))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], created["id"]);
    assert_eq!(
        writes().await,
        1,
        "a miss for an existing user must not write"
    );
}

async fn profile_claims_fill_a_new_row(backend: Backend) {
    let f = Fixture::new().await;
    let store = Store::new(backend).await;
    let app = app(EnsureUserLayer::new(f.jwks.config(), store.clone()));
    let user = random_id("user");
    let mut claims = f.claims(&user);
    claims["email"] = json!("ada@example.com");
    claims["first_name"] = json!("Ada'); DROP TABLE users; --");
    assert_eq!(
        call(&app, bearer(&f.token(&claims))).await.0,
        StatusCode::OK
    );
    let (email, first, ..) = store.profile(&user).await.unwrap();
    assert_eq!(email.as_deref(), Some("ada@example.com"));
    assert_eq!(first.as_deref(), Some("Ada'); DROP TABLE users; --"));
}

async fn tombstoned_user_is_refused_and_not_recreated(backend: Backend) {
    let store = Store::new(backend).await;
    let f = Fixture::new().await;
    let app = app(EnsureUserLayer::new(f.jwks.config(), store.clone()));
    let user = random_id("user");
    store.tombstone(&user).await;
    let (status, body) = call(&app, bearer(&f.token(&f.claims(&user)))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("user_deleted"))
    );
    assert_eq!(store.rows_of(&user).await, 0);
}

/// A store whose first lookup stops inside the store until the test lets
/// it go; a lookup answers `Deleted` when the user was gone as it began.
#[derive(Clone, Default)]
struct PausingStore {
    deleted: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
    inside: Arc<Notify>,
    resume: Arc<Notify>,
}

impl UserStore for PausingStore {
    async fn find_or_create(
        &self,
        _clerk_id: &str,
        _profile: &Profile,
    ) -> Result<Resolution, StoreError> {
        let deleted_before = self.deleted.load(Ordering::SeqCst);
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            self.inside.notify_one();
            self.resume.notified().await;
        }
        Ok(if deleted_before {
            Resolution::Deleted
        } else {
            Resolution::Existing(LocalId::Int(1))
        })
    }
}

/// A lookup in flight while the user is deleted brings back a stale answer:
/// the layer loads it again rather than serve or cache it, so neither that
/// request nor a later one is served once the deletion is acknowledged.
#[tokio::test]
async fn deletion_during_an_in_flight_lookup_is_not_remembered() {
    let f = Fixture::new().await;
    let store = PausingStore::default();
    let layer = EnsureUserLayer::new(
        f.jwks.config().with_store_timeout(Duration::from_secs(60)),
        store.clone(),
    );
    let app = app(layer.clone());
    let user = random_id("user");
    let token = f.token(&f.claims(&user));
    let in_flight = {
        let (app, token) = (app.clone(), token.clone());
        tokio::spawn(async move { call(&app, bearer(&token)).await })
    };
    // The lookup is inside the store, its answer (the user exists) decided.
    store.inside.notified().await;
    store.deleted.store(true, Ordering::SeqCst);
    layer.forget_user(&user).await;
    store.resume.notify_one();
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("user_deleted")),
        "answered after the deletion was acknowledged"
    );
    assert_eq!(
        store.calls.load(Ordering::SeqCst),
        2,
        "the stale answer was loaded again"
    );
    let (status, body) = call(&app, bearer(&token)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("user_deleted"))
    );
}

/// 10,000 distinct new users, 64 at a time: every one gets exactly one row,
/// and no request fails.
async fn ten_thousand_new_users_at_concurrency_64(backend: Backend) {
    const USERS: usize = 10_000;
    let key = Arc::new(SigningKey::generate("ins_test"));
    let jwks = JwksServer::start(&[&key]).await;
    let store = Store::new(backend).await;
    let app = app(EnsureUserLayer::new(jwks.config(), store.clone()));
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
    let rows = store.number("SELECT count(*) FROM users").await;
    let distinct = store
        .number("SELECT count(DISTINCT clerk_id) FROM users")
        .await;
    assert_eq!((rows, distinct), (USERS as i64, USERS as i64));
}
