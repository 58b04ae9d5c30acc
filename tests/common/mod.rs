//! Real parts for the integration tests: a JWKS server and a fake Backend
//! API on loopback, signing keys, PostgreSQL (one schema per test) and
//! SQLite (one file per test).
#![allow(dead_code, unreachable_pub)]

pub mod clerk_api;
pub mod examples;
pub mod proxy;
pub mod svix;

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, body::Body, extract::State, http::StatusCode, routing::get};
use ensure_user::{
    Config, KeySource,
    store::{PgUserStore, Profile, Resolution, SqliteUserStore, StoreError, UserStore},
    testing::SigningKey,
};
use http_body_util::BodyExt;
use sqlx::{PgPool, SqlitePool, postgres::PgPoolOptions, sqlite::SqlitePoolOptions};

pub const ISSUER: &str = "https://clerk.test.example";

/// The database every Postgres test uses; CI provides it, and a missing server fails the tests.
pub fn postgres_url() -> String {
    std::env::var("ENSURE_USER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A proxy in front of the test database, for cutting connections to it.
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

/// A JWKS endpoint on 127.0.0.1 whose answer a test can change, counting fetches.
#[derive(Clone)]
pub struct JwksServer {
    pub addr: SocketAddr,
    reply: Arc<Mutex<JwksReply>>,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    pub async fn start(keys: &[&SigningKey]) -> Self {
        let reply = Arc::new(Mutex::new(JwksReply::Keys(
            SigningKey::jwks(keys).to_string(),
        )));
        let fetches = Arc::new(AtomicUsize::new(0));
        let state = (reply.clone(), fetches.clone());
        let app = Router::new()
            .route("/jwks.json", get(serve_jwks))
            .route("/v1/jwks", get(serve_jwks))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            addr,
            reply,
            fetches,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    pub fn serve(&self, keys: &[&SigningKey]) {
        *self.reply.lock().unwrap() = JwksReply::Keys(SigningKey::jwks(keys).to_string());
    }

    pub fn fail_with(&self, status: u16) {
        self.reply_with(JwksReply::Status(status));
    }

    pub fn reply_with(&self, reply: JwksReply) {
        *self.reply.lock().unwrap() = reply;
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// A config trusting this server, with no refetch cooldown unless a test sets one.
    pub fn config(&self) -> Config {
        Config::new(ISSUER, KeySource::jwks_url(self.url()))
            .with_key_refetch_cooldown(Duration::ZERO)
            .with_key_fetch_timeout(Duration::from_secs(2))
    }
}

async fn serve_jwks(
    State((reply, fetches)): State<(Arc<Mutex<JwksReply>>, Arc<AtomicUsize>)>,
) -> axum::response::Response {
    fetches.fetch_add(1, Ordering::SeqCst);
    let reply = reply.lock().unwrap().clone();
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

/// A fresh PostgreSQL schema with the bundled tables; the pool's connections use it.
pub async fn postgres_pool() -> PgPool {
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
    let options: sqlx::postgres::PgConnectOptions = postgres_url().parse().unwrap();
    PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .unwrap()
}

/// A fresh SQLite file with the bundled tables.
pub async fn sqlite_pool() -> SqlitePool {
    let path = std::env::temp_dir().join(format!(
        "ensure-user-test-{}.db",
        ensure_user::testing::random_id("db")
    ));
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(10));
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .unwrap()
}

pub async fn postgres_store() -> PgUserStore {
    let store = PgUserStore::new(postgres_pool().await);
    store.migrate().await.unwrap();
    store
}

pub async fn sqlite_store() -> SqliteUserStore {
    let store = SqliteUserStore::new(sqlite_pool().await);
    store.migrate().await.unwrap();
    store
}

/// Wraps a store and counts the calls that reach it.
#[derive(Clone)]
pub struct CountingStore<S> {
    pub inner: S,
    calls: Arc<AtomicUsize>,
}

impl<S> CountingStore<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl<S: UserStore> UserStore for CountingStore<S> {
    async fn find_or_create(
        &self,
        clerk_id: &str,
        profile: &Profile,
    ) -> Result<Resolution, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.find_or_create(clerk_id, profile).await
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

/// An app's own table: `accounts`, UUID keys in `account_id`, the Clerk id in
/// `clerk_user_id`, one profile column (`mail`), and no version or ban column.
pub fn mapped_uuid_table() -> ensure_user::store::UserTable {
    use ensure_user::store::{IdKind, UserTable};
    UserTable::new("accounts")
        .unwrap()
        .with_id_column("account_id", IdKind::Uuid)
        .unwrap()
        .with_clerk_id_column("clerk_user_id")
        .unwrap()
        .with_profile_columns(Some("mail"), None, None, None)
        .unwrap()
        .with_clerk_updated_at_column(None)
        .unwrap()
        .with_banned_column(None)
        .unwrap()
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
