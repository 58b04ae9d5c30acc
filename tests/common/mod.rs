//! Real parts for the integration tests and the benchmarks: a JWKS server
//! and a fake Backend API on loopback, signing keys, PostgreSQL (one schema
//! per test) and SQLite (one file per test). What needs a feature of the
//! crate is there only with that feature, so that each test asks for the
//! features it uses and no more.
#![allow(dead_code, unreachable_pub)]

#[cfg(feature = "axum")]
pub mod app;
pub mod clerk_api;
pub mod examples;
#[cfg(all(
    feature = "postgres",
    feature = "sqlite",
    feature = "webhooks",
    feature = "axum"
))]
pub mod instances;
pub mod oidc_provider;
#[cfg(all(feature = "postgres", feature = "sqlite"))]
pub mod organizations;
pub mod proxy;
#[cfg(all(feature = "postgres", feature = "sqlite"))]
pub mod stores;
#[cfg(feature = "webhooks")]
pub mod svix;
#[cfg(all(
    feature = "postgres",
    feature = "sqlite",
    feature = "webhooks",
    feature = "axum"
))]
pub mod webhook_app;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, body::Body, extract::State, http::StatusCode, routing::get};
#[cfg(feature = "postgres")]
use ensure_user::store::PgUserStore;
#[cfg(feature = "sqlite")]
use ensure_user::store::SqliteUserStore;
use ensure_user::{
    Config, KeySource,
    store::{
        MembershipClaim, MembershipResolution, OrganizationResolution, OrganizationStore, Profile,
        Resolution, StoreError, UserStore,
    },
    testing::SigningKey,
};
use http_body_util::BodyExt;
#[cfg(feature = "postgres")]
use sqlx::{PgPool, postgres::PgPoolOptions};
#[cfg(feature = "sqlite")]
use sqlx::{SqlitePool, sqlite::SqlitePoolOptions};
#[cfg(all(feature = "postgres", feature = "sqlite"))]
#[allow(unused_imports)]
pub(crate) use stores::on_both_stores;
#[cfg(all(feature = "postgres", feature = "sqlite"))]
#[allow(unused_imports)]
pub use stores::{Backend, ProfileRow, Row, Store};

pub const ISSUER: &str = "https://clerk.test.example";

/// The database every Postgres test uses; CI provides it, and a missing server fails the tests.
pub fn postgres_url() -> String {
    std::env::var("ENSURE_USER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A proxy in front of the test database, for cutting connections to it.
#[cfg(feature = "postgres")]
pub async fn postgres_proxy() -> proxy::Proxy {
    let url: sqlx::postgres::PgConnectOptions = postgres_url().parse().unwrap();
    let upstream = tokio::net::lookup_host((url.get_host(), url.get_port()))
        .await
        .unwrap()
        .next()
        .unwrap();
    proxy::Proxy::start(upstream).await
}

/// How the key server answers.
#[derive(Clone)]
pub enum JwksReply {
    /// `200` with this JWKS document.
    Keys(String),
    /// This status and a short text body.
    Status(u16),
    /// `200` with this body, JSON or not.
    Body(String),
    /// A `302` to this location.
    Redirect(String),
    /// This long a wait, then the keys.
    Slow(Duration, String),
}

/// A JWKS endpoint on 127.0.0.1 whose answer a test can change, counting
/// fetches, and whose answers a test can hold back.
#[derive(Clone)]
pub struct JwksServer {
    pub addr: SocketAddr,
    state: JwksState,
}

#[derive(Clone)]
struct JwksState {
    reply: Arc<Mutex<JwksReply>>,
    fetches: Arc<AtomicUsize>,
    /// While it says `false`, every fetch waits before it is answered.
    gate: Arc<Mutex<Option<tokio::sync::watch::Receiver<bool>>>>,
}

/// Fetches held back by [`JwksServer::hold`]: each is counted when it
/// arrives, and answered once this is released (or dropped).
pub struct JwksHold(tokio::sync::watch::Sender<bool>);

impl JwksHold {
    /// Answers the fetches held, and every later one at once.
    pub fn release(self) {}
}

impl Drop for JwksHold {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

impl JwksServer {
    pub async fn start(keys: &[&SigningKey]) -> Self {
        let state = JwksState {
            reply: Arc::new(Mutex::new(JwksReply::Keys(
                SigningKey::jwks(keys).to_string(),
            ))),
            fetches: Arc::new(AtomicUsize::new(0)),
            gate: Arc::new(Mutex::new(None)),
        };
        let app = Router::new()
            .route("/jwks.json", get(serve_jwks))
            .route("/v1/jwks", get(serve_jwks))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    pub fn serve(&self, keys: &[&SigningKey]) {
        self.reply_with(JwksReply::Keys(SigningKey::jwks(keys).to_string()));
    }

    pub fn fail_with(&self, status: u16) {
        self.reply_with(JwksReply::Status(status));
    }

    pub fn reply_with(&self, reply: JwksReply) {
        *self.state.reply.lock().unwrap() = reply;
    }

    /// Fetches arrived so far, answered or held.
    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    /// Holds every fetch from now on until the hold is released.
    pub fn hold(&self) -> JwksHold {
        let (open, gate) = tokio::sync::watch::channel(false);
        *self.state.gate.lock().unwrap() = Some(gate);
        JwksHold(open)
    }

    /// Waits until `n` fetches have arrived; panics after 10 s.
    pub async fn fetched(&self, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.fetches() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "{} fetches of {n} after 10 s",
                self.fetches()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// A config trusting this server, with no refetch cooldown unless a test sets one.
    pub fn config(&self) -> Config {
        Config::new(ISSUER, KeySource::jwks_url(self.url()))
            .with_key_refetch_cooldown(Duration::ZERO)
            .with_key_fetch_timeout(Duration::from_secs(2))
    }
}

async fn serve_jwks(State(state): State<JwksState>) -> axum::response::Response {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    let gate = state.gate.lock().unwrap().clone();
    if let Some(mut gate) = gate {
        // Released, or the hold dropped: answered either way.
        let _ = gate.wait_for(|open| *open).await;
    }
    let reply = state.reply.lock().unwrap().clone();
    let with_status = |code: u16, body: String| {
        let mut response = axum::response::Response::new(Body::from(body));
        *response.status_mut() = StatusCode::from_u16(code).unwrap();
        response
    };
    match reply {
        JwksReply::Keys(body) | JwksReply::Body(body) => with_status(200, body),
        JwksReply::Status(code) => with_status(code, "unavailable".into()),
        JwksReply::Redirect(location) => {
            let mut response = with_status(302, String::new());
            response
                .headers_mut()
                .insert("location", location.parse().unwrap());
            response
        }
        JwksReply::Slow(delay, body) => {
            tokio::time::sleep(delay).await;
            with_status(200, body)
        }
    }
}

/// A new, empty PostgreSQL schema; returns its name.
#[cfg(feature = "postgres")]
pub async fn postgres_schema() -> String {
    let schema = format!(
        "t_{}",
        ensure_user::testing::random_id("s")
            .to_lowercase()
            .replace('_', "")
    );
    let admin = PgPool::connect(&postgres_url())
        .await
        .expect("PostgreSQL at ENSURE_USER_TEST_DATABASE_URL (default 127.0.0.1:5432/test)");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    schema
}

/// A pool of at most `max_connections` whose connections use `schema`.
#[cfg(feature = "postgres")]
pub async fn postgres_pool_in(schema: &str, max_connections: u32) -> PgPool {
    let options: sqlx::postgres::PgConnectOptions = postgres_url().parse().unwrap();
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options.options([("search_path", schema)]))
        .await
        .unwrap()
}

/// A pool on a fresh PostgreSQL schema.
#[cfg(feature = "postgres")]
pub async fn postgres_pool() -> PgPool {
    postgres_pool_in(&postgres_schema().await, 8).await
}

/// A path in the temp dir for a new SQLite file.
pub fn sqlite_path() -> PathBuf {
    std::env::temp_dir().join(format!(
        "ensure-user-test-{}.db",
        ensure_user::testing::random_id("db")
    ))
}

/// A pool of at most `max_connections` on the SQLite file at `path` (made
/// if missing), in WAL mode.
#[cfg(feature = "sqlite")]
pub async fn sqlite_pool_at(path: &std::path::Path, max_connections: u32) -> SqlitePool {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(10));
    SqlitePoolOptions::new()
        .max_connections(max_connections)
        .connect_with(options)
        .await
        .unwrap()
}

/// A pool on a fresh SQLite file.
#[cfg(feature = "sqlite")]
pub async fn sqlite_pool() -> SqlitePool {
    sqlite_pool_at(&sqlite_path(), 4).await
}

/// A store with the bundled tables on a fresh PostgreSQL schema.
#[cfg(feature = "postgres")]
pub async fn postgres_store() -> PgUserStore {
    let store = PgUserStore::new(postgres_pool().await);
    store.migrate().await.unwrap();
    store
}

/// A store with the bundled tables on a fresh SQLite file.
#[cfg(feature = "sqlite")]
pub async fn sqlite_store() -> SqliteUserStore {
    let store = SqliteUserStore::new(sqlite_pool().await);
    store.migrate().await.unwrap();
    store
}

/// Wraps a store and counts the calls that reach it: users looked up
/// ([`calls`](Self::calls)) and, when it also stands for the layer's
/// organization store, memberships looked up.
#[derive(Clone)]
pub struct CountingStore<S> {
    pub inner: S,
    counts: Counts,
}

/// The counters of a [`CountingStore`], shared with every clone of it.
#[derive(Clone, Default)]
pub struct Counts {
    users: Arc<AtomicUsize>,
    memberships: Arc<AtomicUsize>,
}

impl Counts {
    /// Calls of `find_or_create` so far.
    pub fn users(&self) -> usize {
        self.users.load(Ordering::SeqCst)
    }

    /// Calls of `ensure_membership` so far.
    pub fn memberships(&self) -> usize {
        self.memberships.load(Ordering::SeqCst)
    }
}

impl<S> CountingStore<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            counts: Counts::default(),
        }
    }

    /// Users looked up so far.
    pub fn calls(&self) -> usize {
        self.counts.users()
    }

    /// The counters, to read after the store was handed away.
    pub fn counts(&self) -> Counts {
        self.counts.clone()
    }
}

impl<S: UserStore> UserStore for CountingStore<S> {
    async fn find_or_create(
        &self,
        clerk_id: &str,
        profile: &Profile,
    ) -> Result<Resolution, StoreError> {
        self.counts.users.fetch_add(1, Ordering::SeqCst);
        self.inner.find_or_create(clerk_id, profile).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

impl<S: OrganizationStore> OrganizationStore for CountingStore<S> {
    async fn find_or_create_organization(
        &self,
        clerk_id: &str,
        slug: Option<&str>,
    ) -> Result<OrganizationResolution, StoreError> {
        self.inner.find_or_create_organization(clerk_id, slug).await
    }

    async fn ensure_membership(
        &self,
        claim: &MembershipClaim<'_>,
    ) -> Result<MembershipResolution, StoreError> {
        self.counts.memberships.fetch_add(1, Ordering::SeqCst);
        self.inner.ensure_membership(claim).await
    }
}

/// Status, and the body as JSON (or `null` when it is not JSON).
pub async fn read<B>(response: http::Response<B>) -> (StatusCode, serde_json::Value)
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json)
}

pub fn bearer(token: &str) -> http::Request<Body> {
    http::Request::get("/me")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

/// Captured log output, for asserting what is (and is not) logged.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Captures every line at `level` and above, from every thread, for the
    /// rest of the process: the test binary's only global subscriber.
    /// Callsites shared with concurrently running tests make a thread-scoped
    /// subscriber miss events; other tests' lines land here too.
    pub fn capture_globally(level: tracing::Level) -> Self {
        let logs = Self::default();
        tracing::subscriber::set_global_default(logs.subscriber(level)).unwrap();
        logs
    }

    /// A subscriber writing every line at `level` and above here, plain.
    pub fn subscriber(&self, level: tracing::Level) -> impl tracing::Subscriber + Send + Sync {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(level)
            .finish()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A `user.deleted` event as Clerk sends it.
pub fn user_deleted_event(user: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "user.deleted",
        "object": "event",
        "instance_id": "ins_test",
        "timestamp": 1_716_883_200,
        "data": { "object": "user", "id": user, "deleted": true }
    })
}

/// A loopback URL on a port just released, where nothing listens.
pub fn closed_port_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}
