//! The webhook receiver end to end: deliveries signed exactly as svix signs
//! them, on real PostgreSQL and SQLite, next to the layer.

mod common;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{Json, Router, body::Body, routing::get};
use bytes::Bytes;
use common::*;
use ensure_user::{
    EnsureUserLayer, LocalId, LocalUser,
    store::{PgUserStore, Profile, Resolution, SqliteUserStore, SyncOutcome, UserStore, UserSync},
    testing::{SigningKey, random_id},
    webhook::{
        AppliedEvent, BoxError, WebhookHooks, WebhookReceiver, WebhookSecret, WebhookVerifier, sign,
    },
};
use http::{Request, StatusCode};
use serde_json::{Value, json};
use sqlx::{PgPool, SqlitePool, postgres::PgPoolOptions, sqlite::SqlitePoolOptions};
use tower::ServiceExt;

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const NEW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const UNKNOWN_SECRET: &str = "whsec_dW5rbm93bi1zZWNyZXQtb2YtMjQtYnl0ZXM=";
const PATH: &str = "/webhooks/clerk";

#[derive(Clone, Copy)]
enum Backend {
    Postgres,
    Sqlite,
}

/// A pool on the test database: the store's own, or a second one for looking.
enum Db {
    Pg(PgPool),
    Lite(SqlitePool),
}

type ProfileRow = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

const DUMP_USERS: &str = "SELECT CAST(id AS TEXT) || '|' || clerk_id || '|' || COALESCE(email, '-') \
    || '|' || COALESCE(first_name, '-') || '|' || COALESCE(last_name, '-') \
    || '|' || COALESCE(image_url, '-') || '|' || COALESCE(CAST(clerk_updated_at AS TEXT), '-') \
    || '|' || CAST(created_at AS TEXT) || '|' || CAST(updated_at AS TEXT) \
    FROM users ORDER BY clerk_id";
const DUMP_TOMBSTONES: &str = "SELECT clerk_id || '|' || CAST(deleted_at AS TEXT) \
    FROM clerk_user_tombstones ORDER BY clerk_id";
macro_rules! profile_sql {
    ($param:literal) => {
        concat!(
            "SELECT email, first_name, last_name, image_url, clerk_updated_at FROM users ",
            "WHERE clerk_id = ",
            $param
        )
    };
}

const RACE_POSTGRES: &str = "
    CREATE FUNCTION tombstone_race() RETURNS trigger AS $$
        BEGIN
            INSERT INTO clerk_user_tombstones VALUES (NEW.clerk_id, 0) ON CONFLICT DO NOTHING;
            RETURN NULL;
        END $$ LANGUAGE plpgsql;
    CREATE TRIGGER users_race AFTER INSERT ON users FOR EACH ROW
        WHEN (NEW.clerk_id LIKE 'user_race%') EXECUTE FUNCTION tombstone_race();";

const RACE_SQLITE: &str = "
    CREATE TRIGGER users_race AFTER INSERT ON users WHEN NEW.clerk_id LIKE 'user_race%'
    BEGIN INSERT OR IGNORE INTO clerk_user_tombstones VALUES (NEW.clerk_id, 0); END;";

impl Db {
    /// Every row of both tables, every column, as text.
    async fn dump(&self) -> Vec<String> {
        let mut rows = Vec::new();
        for (name, sql) in [("users", DUMP_USERS), ("tombstones", DUMP_TOMBSTONES)] {
            let table: Vec<String> = match self {
                Self::Pg(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
                Self::Lite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
            }
            .unwrap();
            rows.extend(table.into_iter().map(|row| format!("{name}: {row}")));
        }
        rows
    }

    async fn profile(&self, clerk_id: &str) -> Option<ProfileRow> {
        match self {
            Self::Pg(pool) => {
                sqlx::query_as(profile_sql!("$1"))
                    .bind(clerk_id)
                    .fetch_optional(pool)
                    .await
            }
            Self::Lite(pool) => {
                sqlx::query_as(profile_sql!("?1"))
                    .bind(clerk_id)
                    .fetch_optional(pool)
                    .await
            }
        }
        .unwrap()
    }

    async fn tombstoned(&self, clerk_id: &str) -> bool {
        self.dump()
            .await
            .iter()
            .any(|row| row.starts_with(&format!("tombstones: {clerk_id}|")))
    }

    /// Makes every insert of a `user_race…` row also record its tombstone,
    /// as a deletion committing between the insert's guard and its write would.
    async fn tombstone_on_insert(&self) {
        match self {
            Self::Pg(pool) => drop(sqlx::raw_sql(RACE_POSTGRES).execute(pool).await.unwrap()),
            Self::Lite(pool) => drop(sqlx::raw_sql(RACE_SQLITE).execute(pool).await.unwrap()),
        }
    }

    async fn close(&self) {
        match self {
            Self::Pg(pool) => pool.close().await,
            Self::Lite(pool) => pool.close().await,
        }
    }
}

/// A layer and a receiver sharing one store, mounted as an app would.
struct Harness {
    app: Router,
    receiver: WebhookReceiver,
    store_pool: Db,
    db: Db,
    key: SigningKey,
    _jwks: JwksServer,
}

impl Harness {
    async fn new(backend: Backend) -> Self {
        Self::build(backend, verifier(&[SECRET]), |receiver| receiver).await
    }

    async fn build(
        backend: Backend,
        verifier: WebhookVerifier,
        configure: impl FnOnce(WebhookReceiver) -> WebhookReceiver,
    ) -> Self {
        let key = SigningKey::generate("ins_test");
        let jwks = JwksServer::start(&[&key]).await;
        let (layer, receiver, store_pool, db) = match backend {
            Backend::Postgres => {
                let store = postgres_store().await;
                let layer = EnsureUserLayer::new(jwks.config(), store.clone());
                let observer = PgPoolOptions::new()
                    .max_connections(2)
                    .connect_with(store.pool().connect_options().as_ref().clone())
                    .await
                    .unwrap();
                let pool = store.pool().clone();
                let receiver = WebhookReceiver::new(verifier, store, layer.evictor());
                (layer, receiver, Db::Pg(pool), Db::Pg(observer))
            }
            Backend::Sqlite => {
                let store = sqlite_store().await;
                let layer = EnsureUserLayer::new(jwks.config(), store.clone());
                let observer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(store.pool().connect_options().as_ref().clone())
                    .await
                    .unwrap();
                let pool = store.pool().clone();
                let receiver = WebhookReceiver::new(verifier, store, layer.evictor());
                (layer, receiver, Db::Lite(pool), Db::Lite(observer))
            }
        };
        let receiver = configure(receiver);
        let app = Router::new()
            .route(
                "/me",
                get(|user: LocalUser| async move { Json(json!({ "id": user.id() })) }),
            )
            .layer(layer)
            .merge(receiver.clone().into_router(PATH));
        Self {
            app,
            receiver,
            store_pool,
            db,
            key,
            _jwks: jwks,
        }
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        read(self.app.clone().oneshot(request).await.unwrap()).await
    }

    /// Delivers `event` signed with [`SECRET`] now, under a fresh message id.
    async fn deliver(&self, event: &Value) -> (StatusCode, Value) {
        self.send(signed(event.to_string().as_bytes())).await
    }

    /// Delivers `event` and returns the outcome code, asserting a `200`.
    async fn outcome(&self, event: &Value) -> String {
        let (status, body) = self.deliver(event).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["outcome"].as_str().unwrap().to_owned()
    }

    async fn me(&self, token: &str) -> (StatusCode, Value) {
        self.send(bearer(token)).await
    }
}

fn verifier(secrets: &[&str]) -> WebhookVerifier {
    let mut secrets = secrets.iter().map(|s| s.parse::<WebhookSecret>().unwrap());
    let first = WebhookVerifier::new(secrets.next().unwrap());
    secrets.fold(first, WebhookVerifier::with_secret)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

fn delivery(id: &str, timestamp: &str, signature: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(PATH)
        .header("content-type", "application/json")
        .header("svix-id", id)
        .header("svix-timestamp", timestamp)
        .header("svix-signature", signature)
        .body(body.into())
        .unwrap()
}

/// A request exactly as svix sends it: signed with `secret` at `timestamp`.
fn signed_with(secret: &str, timestamp: i64, body: &[u8]) -> Request<Body> {
    let id = random_id("msg");
    let signature = sign(&secret.parse().unwrap(), &id, timestamp, body);
    delivery(&id, &timestamp.to_string(), &signature, body.to_vec())
}

fn signed(body: &[u8]) -> Request<Body> {
    signed_with(SECRET, now(), body)
}

/// A `user.created`/`user.updated` event: primary email chosen by id, names, image.
fn user_event(kind: &str, user: &str, updated_at: i64, email: &str, first: &str) -> Value {
    json!({
        "type": kind,
        "object": "event",
        "instance_id": "ins_test",
        "timestamp": updated_at,
        "event_attributes": { "http_request": { "client_ip": "", "user_agent": "" } },
        "data": {
            "id": user,
            "object": "user",
            "first_name": first,
            "last_name": "Lovelace",
            "image_url": "https://img.example.com/ada.png",
            "username": null,
            "primary_email_address_id": "idn_primary",
            "email_addresses": [
                { "id": "idn_other", "object": "email_address", "email_address": "other@example.com",
                  "verification": null, "linked_to": [] },
                { "id": "idn_primary", "object": "email_address", "email_address": email,
                  "verification": { "status": "verified", "strategy": "email_code" }, "linked_to": [] }
            ],
            "public_metadata": {},
            "created_at": 1_654_012_591_514_i64,
            "updated_at": updated_at
        }
    })
}

fn created(user: &str, updated_at: i64) -> Value {
    user_event("user.created", user, updated_at, "ada@example.com", "Ada")
}

fn updated(user: &str, updated_at: i64, first: &str) -> Value {
    let email = format!("{}@example.com", first.to_lowercase());
    user_event("user.updated", user, updated_at, &email, first)
}

fn profile(email: &str, first: &str, updated_at: i64) -> Option<ProfileRow> {
    Some((
        Some(email.to_owned()),
        Some(first.to_owned()),
        Some("Lovelace".to_owned()),
        Some("https://img.example.com/ada.png".to_owned()),
        Some(updated_at),
    ))
}

/// Runs a scenario once on PostgreSQL and once on SQLite.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$scenario(Backend::Postgres).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario(Backend::Sqlite).await;
            }
        }
    )*};
}

on_both_backends!(
    each_user_event_is_applied,
    older_update_after_newer_is_ignored,
    created_after_deleted_makes_no_row,
    deleted_users_tokens_are_refused,
    duplicate_deliveries_are_harmless,
    other_event_types_are_acknowledged,
    hostile_deliveries_change_nothing,
    signature_lists_and_rotated_secrets,
    database_down_is_503_and_changes_nothing,
    failed_hook_is_500_and_the_retry_converges,
    concurrent_updates_keep_the_newest,
    deletion_racing_creations_leaves_no_row,
    tombstone_committed_mid_insert_removes_the_row,
    mapped_table_without_version_column,
    nul_in_profile_text_is_left_out,
);

async fn each_user_event_is_applied(backend: Backend) {
    let h = Harness::new(backend).await;
    let user = random_id("user");

    assert_eq!(h.outcome(&created(&user, 1_000)).await, "created");
    assert_eq!(
        h.db.profile(&user).await,
        profile("ada@example.com", "Ada", 1_000)
    );

    assert_eq!(
        h.outcome(&updated(&user, 2_000, "Augusta")).await,
        "updated"
    );
    assert_eq!(
        h.db.profile(&user).await,
        profile("augusta@example.com", "Augusta", 2_000)
    );

    // A full user object, not a diff: fields Clerk no longer has are cleared.
    let mut cleared = updated(&user, 3_000, "Augusta");
    cleared["data"]["last_name"] = Value::Null;
    cleared["data"]["image_url"] = json!("");
    cleared["data"]["primary_email_address_id"] = Value::Null;
    assert_eq!(h.outcome(&cleared).await, "updated");
    assert_eq!(
        h.db.profile(&user).await,
        Some((None, Some("Augusta".to_owned()), None, None, Some(3_000)))
    );

    assert_eq!(h.outcome(&user_deleted_event(&user)).await, "deleted");
    assert_eq!(h.db.profile(&user).await, None);
    assert!(h.db.tombstoned(&user).await);
}

/// PostgreSQL text cannot hold NUL: such a field is stored as absent, the
/// rest of the profile is applied, and the delivery is acknowledged (a `503`
/// would have svix retry it for days).
async fn nul_in_profile_text_is_left_out(backend: Backend) {
    let h = Harness::new(backend).await;
    let user = random_id("user");
    let mut event = created(&user, 1_000);
    event["data"]["first_name"] = json!("A\u{0}da");
    event["data"]["email_addresses"][1]["email_address"] = json!("ada\u{0}@example.com");
    let (status, body) = h.deliver(&event).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("created"))
    );
    assert_eq!(
        h.db.profile(&user).await,
        Some((
            None,
            None,
            Some("Lovelace".to_owned()),
            Some("https://img.example.com/ada.png".to_owned()),
            Some(1_000)
        ))
    );
    assert_eq!(h.outcome(&updated(&user, 2_000, "Ada")).await, "updated");
    assert_eq!(
        h.db.profile(&user).await,
        profile("ada@example.com", "Ada", 2_000)
    );
}

async fn older_update_after_newer_is_ignored(backend: Backend) {
    let h = Harness::new(backend).await;
    let user = random_id("user");
    // The update overtook the creation (a retried `user.created` arrives late).
    assert_eq!(
        h.outcome(&updated(&user, 2_000, "Augusta")).await,
        "created"
    );
    let newest = h.db.dump().await;

    assert_eq!(h.outcome(&created(&user, 1_000)).await, "stale");
    assert_eq!(h.outcome(&updated(&user, 1_999, "Older")).await, "stale");
    assert_eq!(h.db.dump().await, newest);

    // The same version again is applied again, and changes nothing.
    assert_eq!(
        h.outcome(&updated(&user, 2_000, "Augusta")).await,
        "updated"
    );
    assert_eq!(h.db.dump().await, newest);

    assert_eq!(h.outcome(&updated(&user, 2_001, "Newer")).await, "updated");
    assert_eq!(
        h.db.profile(&user).await,
        profile("newer@example.com", "Newer", 2_001)
    );
}

async fn created_after_deleted_makes_no_row(backend: Backend) {
    let h = Harness::new(backend).await;
    let user = random_id("user");
    // The deletion overtook the creation: the user never had a row here.
    assert_eq!(h.outcome(&user_deleted_event(&user)).await, "not_found");
    assert!(h.db.tombstoned(&user).await);
    let after_delete = h.db.dump().await;

    assert_eq!(h.outcome(&created(&user, 1_000)).await, "tombstoned");
    assert_eq!(
        h.outcome(&updated(&user, 9_000, "Late")).await,
        "tombstoned"
    );
    assert_eq!(h.outcome(&user_deleted_event(&user)).await, "tombstoned");
    assert_eq!(h.db.profile(&user).await, None);
    assert_eq!(h.db.dump().await, after_delete);
}

async fn deleted_users_tokens_are_refused(backend: Backend) {
    let h = Harness::new(backend).await;
    let user = random_id("user");
    let token = h.key.session_token(ISSUER, &user, 60);
    let (status, first) = h.me(&token).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(h.outcome(&created(&user, 1_000)).await, "updated");

    assert_eq!(h.outcome(&user_deleted_event(&user)).await, "deleted");
    // The same, still unexpired token: refused at once, and no row comes back.
    let (status, body) = h.me(&token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("user_deleted"))
    );
    let fresh = h.key.session_token(ISSUER, &user, 60);
    assert_eq!(h.me(&fresh).await.1["error"], "user_deleted");
    assert_eq!(
        h.outcome(&updated(&user, 2_000, "Late")).await,
        "tombstoned"
    );
    assert_eq!(h.db.profile(&user).await, None);
    assert_eq!(h.me(&token).await.0, StatusCode::UNAUTHORIZED);
}

async fn duplicate_deliveries_are_harmless(backend: Backend) {
    let h = Harness::new(backend).await;
    let user = random_id("user");
    for (event, first, again) in [
        (created(&user, 1_000), "created", "updated"),
        (user_deleted_event(&user), "deleted", "tombstoned"),
    ] {
        // The very same message: id, timestamp, signature and body.
        let body = event.to_string();
        let id = random_id("msg");
        let timestamp = now();
        let signature = sign(&SECRET.parse().unwrap(), &id, timestamp, body.as_bytes());
        let send = || delivery(&id, &timestamp.to_string(), &signature, body.clone());

        let (status, reply) = h.send(send()).await;
        assert_eq!(
            (status, reply["outcome"].as_str()),
            (StatusCode::OK, Some(first))
        );
        let once = h.db.dump().await;
        let (status, reply) = h.send(send()).await;
        assert_eq!(
            (status, reply["outcome"].as_str()),
            (StatusCode::OK, Some(again))
        );
        assert_eq!(h.db.dump().await, once);
    }
}

async fn other_event_types_are_acknowledged(backend: Backend) {
    let h = Harness::new(backend).await;
    h.outcome(&created(&random_id("user"), 1_000)).await;
    let before = h.db.dump().await;
    for event in [
        json!({"type": "session.created", "object": "event",
               "data": {"id": "sess_1", "user_id": random_id("user"), "status": "active"}}),
        json!({"type": "organization.updated", "data": {"id": "org_1", "name": "Acme", "updated_at": 1}}),
        json!({"type": "email.created", "data": "not an object"}),
        json!({"type": "user.banned_someday", "data": [1, 2, 3]}),
    ] {
        assert_eq!(h.outcome(&event).await, "ignored", "{event}");
    }
    assert_eq!(h.db.dump().await, before);
}

async fn hostile_deliveries_change_nothing(backend: Backend) {
    let h = Harness::new(backend).await;
    let user = random_id("user");
    let gone = random_id("user");
    h.outcome(&created(&user, 1_000)).await;
    h.outcome(&user_deleted_event(&gone)).await;
    let before = h.db.dump().await;

    let update = updated(&user, 9_000, "Mallory").to_string();
    let update = update.as_bytes();
    let delete = user_deleted_event(&user).to_string();
    let delete = delete.as_bytes();
    let t = now();
    let valid = sign(&SECRET.parse().unwrap(), "msg_1", t, update);
    let mut oversized = br#"{"type":"user.deleted","pad":""#.to_vec();
    oversized.resize(1024 * 1024 + 1, b' ');

    let cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        (
            "tampered body",
            delivery("msg_1", &t.to_string(), &valid, delete.to_vec()),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "wrong secret",
            signed_with(UNKNOWN_SECRET, t, delete),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "signature of another message id",
            delivery("msg_2", &t.to_string(), &valid, update.to_vec()),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "stale timestamp (replay)",
            signed_with(SECRET, t - 301, delete),
            StatusCode::UNAUTHORIZED,
            "timestamp_too_old",
        ),
        (
            "future timestamp",
            // A minute past the tolerance: the clock moves on while the
            // cases run (the exact boundary is a unit test with a fixed clock).
            signed_with(SECRET, t + 360, delete),
            StatusCode::UNAUTHORIZED,
            "timestamp_in_future",
        ),
        (
            "re-dated: fresh timestamp, old signature",
            {
                let old = sign(&SECRET.parse().unwrap(), "msg_3", t - 400, delete);
                delivery("msg_3", &t.to_string(), &old, delete.to_vec())
            },
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "empty signature list",
            delivery("msg_1", &t.to_string(), "v1,", update.to_vec()),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "non-integer timestamp",
            delivery("msg_1", "soon", &valid, update.to_vec()),
            StatusCode::BAD_REQUEST,
            "invalid_timestamp",
        ),
        (
            "malformed JSON, validly signed",
            signed(b"{\"type\":\"user.deleted\","),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "deletion without a user id, validly signed",
            signed(br#"{"type":"user.deleted","data":{"deleted":true}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_event",
        ),
        (
            "an id no token could carry, validly signed",
            signed(
                updated("user_with space", 9_000, "Mallory")
                    .to_string()
                    .as_bytes(),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_event",
        ),
        (
            "a deletion of a non-ASCII id, validly signed",
            signed(
                user_deleted_event("user_\u{e9}t\u{e9}")
                    .to_string()
                    .as_bytes(),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_event",
        ),
        (
            "update without updated_at, validly signed",
            signed(format!(r#"{{"type":"user.updated","data":{{"id":"{user}"}}}}"#).as_bytes()),
            StatusCode::BAD_REQUEST,
            "invalid_event",
        ),
        (
            "body over 1 MiB, validly signed",
            signed(&oversized),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            "GET",
            Request::get(PATH).body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "",
        ),
    ];
    let missing = ["svix-id", "svix-timestamp", "svix-signature"].map(|name| {
        let mut request = signed_with(SECRET, t, delete);
        request.headers_mut().remove(name);
        (name, request, StatusCode::BAD_REQUEST, "missing_header")
    });
    for (name, request, status, code) in cases.into_iter().chain(missing) {
        let response = h.app.clone().oneshot(request).await.unwrap();
        let (got, body) = read(response).await;
        assert_eq!(got, status, "{name}: {body}");
        if !code.is_empty() {
            assert_eq!(body["error"], code, "{name}");
            let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["error", "message"], "{name}");
        }
        assert_eq!(h.db.dump().await, before, "{name} changed the database");
    }
}

async fn signature_lists_and_rotated_secrets(backend: Backend) {
    let h = Harness::build(backend, verifier(&[SECRET, NEW_SECRET]), |r| r).await;
    let user = random_id("user");
    let t = now();

    // Several signatures in one header: unknown versions, garbage, then the real one.
    let body = created(&user, 1_000).to_string();
    let real = sign(&SECRET.parse().unwrap(), "msg_list", t, body.as_bytes());
    let list = format!(
        "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v2,{} v1a,xyz v1,AAAA {real}",
        &real[3..]
    );
    let (status, reply) = h
        .send(delivery("msg_list", &t.to_string(), &list, body))
        .await;
    assert_eq!(
        (status, reply["outcome"].as_str()),
        (StatusCode::OK, Some("created"))
    );

    // During a rotation svix signs with both secrets; either one alone passes too.
    let body = updated(&user, 2_000, "Both").to_string();
    let both = format!(
        "{} {}",
        sign(&SECRET.parse().unwrap(), "msg_both", t, body.as_bytes()),
        sign(&NEW_SECRET.parse().unwrap(), "msg_both", t, body.as_bytes())
    );
    let (status, _) = h
        .send(delivery("msg_both", &t.to_string(), &both, body))
        .await;
    assert_eq!(status, StatusCode::OK);
    let only_new = updated(&user, 3_000, "New").to_string();
    let (status, reply) = h
        .send(signed_with(NEW_SECRET, t, only_new.as_bytes()))
        .await;
    assert_eq!(
        (status, reply["outcome"].as_str()),
        (StatusCode::OK, Some("updated"))
    );
    assert_eq!(
        h.db.profile(&user).await,
        profile("new@example.com", "New", 3_000)
    );

    let before = h.db.dump().await;
    let (status, reply) = h
        .send(signed_with(
            UNKNOWN_SECRET,
            t,
            user_deleted_event(&user).to_string().as_bytes(),
        ))
        .await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_signature"))
    );
    assert_eq!(h.db.dump().await, before);
}

async fn database_down_is_503_and_changes_nothing(backend: Backend) {
    let h = Harness::new(backend).await;
    let user = random_id("user");
    h.outcome(&created(&user, 1_000)).await;
    let before = h.db.dump().await;

    h.store_pool.close().await;
    for event in [
        updated(&user, 2_000, "Lost"),
        user_deleted_event(&user),
        created(&random_id("user"), 1),
    ] {
        let response = h
            .app
            .clone()
            .oneshot(signed(event.to_string().as_bytes()))
            .await
            .unwrap();
        assert_eq!(response.headers()["retry-after"], "5");
        let (status, body) = read(response).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("store_unavailable"))
        );
        assert!(!body.to_string().contains("closed"), "{body}");
    }
    assert_eq!(h.db.dump().await, before);
}

/// An event type and the outcome code a hook saw.
type Seen = (String, Option<&'static str>);

/// Records what hooks saw, failing the first `failures` calls.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    failures: Arc<AtomicUsize>,
}

impl WebhookHooks for Recorder {
    async fn after_apply(&self, applied: &AppliedEvent) -> Result<(), BoxError> {
        let outcome = applied.outcome.map(SyncOutcome::code);
        self.seen
            .lock()
            .unwrap()
            .push((applied.event.event_type.clone(), outcome));
        let failing = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() {
            return Err("mail queue unreachable at 10.0.0.7".into());
        }
        Ok(())
    }
}

async fn failed_hook_is_500_and_the_retry_converges(backend: Backend) {
    let hooks = Recorder::default();
    hooks.failures.store(1, Ordering::SeqCst);
    let h = Harness::build(backend, verifier(&[SECRET]), |r| {
        r.with_hooks(hooks.clone())
    })
    .await;
    let user = random_id("user");
    let body = created(&user, 1_000).to_string();
    let id = random_id("msg");
    let timestamp = now();
    let signature = sign(&SECRET.parse().unwrap(), &id, timestamp, body.as_bytes());
    let send = || delivery(&id, &timestamp.to_string(), &signature, body.clone());

    let (status, reply) = h.send(send()).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("hook_failed"))
    );
    assert!(!reply.to_string().contains("10.0.0.7"));
    let applied = h.db.dump().await;

    // Svix retries the same message; applying it again converges.
    let (status, reply) = h.send(send()).await;
    assert_eq!(
        (status, reply["outcome"].as_str()),
        (StatusCode::OK, Some("updated"))
    );
    assert_eq!(h.db.dump().await, applied);
    h.outcome(&json!({"type": "email.created", "data": {}}))
        .await;
    assert_eq!(
        *hooks.seen.lock().unwrap(),
        [
            ("user.created".to_owned(), Some("created")),
            ("user.created".to_owned(), Some("updated")),
            ("email.created".to_owned(), None),
        ]
    );
}

async fn concurrent_updates_keep_the_newest(backend: Backend) {
    let h = Arc::new(Harness::new(backend).await);
    let user = random_id("user");
    // Versions 1..=24 delivered at once, in a scrambled order.
    let tasks: Vec<_> = (1..=24_i64)
        .map(|i| (i * 7) % 25)
        .map(|version| {
            let (h, user) = (h.clone(), user.clone());
            tokio::spawn(async move {
                let event = updated(&user, version, &format!("V{version}"));
                h.deliver(&event).await
            })
        })
        .collect();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(
        h.db.profile(&user).await,
        profile("v24@example.com", "V24", 24)
    );
}

async fn deletion_racing_creations_leaves_no_row(backend: Backend) {
    let h = Arc::new(Harness::new(backend).await);
    for _ in 0..3 {
        let user = random_id("user");
        let token = Arc::new(h.key.session_token(ISSUER, &user, 60));
        let mut tasks = Vec::new();
        for i in 0..12_i64 {
            let (h2, user2) = (h.clone(), user.clone());
            tasks.push(tokio::spawn(async move {
                h2.deliver(&updated(&user2, i, "Racer")).await.0
            }));
            let (h2, token2) = (h.clone(), token.clone());
            tasks.push(tokio::spawn(async move { h2.me(&token2).await.0 }));
            if i == 6 {
                let (h2, user2) = (h.clone(), user.clone());
                tasks.push(tokio::spawn(async move {
                    h2.deliver(&user_deleted_event(&user2)).await.0
                }));
            }
        }
        for task in tasks {
            let status = task.await.unwrap();
            assert!(
                status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
                "{status}"
            );
        }
        assert_eq!(h.db.profile(&user).await, None, "a deleted user came back");
        assert!(h.db.tombstoned(&user).await);
        assert_eq!(h.me(&token).await.1["error"], "user_deleted");
    }
}

/// The re-check after writing: a tombstone that lands after the insert's
/// guard was evaluated still wins, on the webhook path and the layer's.
async fn tombstone_committed_mid_insert_removes_the_row(backend: Backend) {
    let h = Harness::new(backend).await;
    h.db.tombstone_on_insert().await;
    let user = random_id("user_race");
    assert_eq!(h.outcome(&created(&user, 1_000)).await, "tombstoned");
    assert_eq!(h.db.profile(&user).await, None);

    let other = random_id("user_race");
    let (status, body) = h.me(&h.key.session_token(ISSUER, &other, 60)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("user_deleted"))
    );
    assert_eq!(h.db.profile(&other).await, None);

    // Updates of an existing row are not inserts: untouched by the trigger.
    let plain = random_id("user");
    assert_eq!(h.outcome(&created(&plain, 1_000)).await, "created");
}

/// A mapped table: UUID keys, one profile column, no version column (so no
/// last-write-wins: the latest delivery always overwrites).
async fn mapped_table_without_version_column(backend: Backend) {
    let table = mapped_uuid_table();
    match backend {
        Backend::Postgres => {
            let pool = postgres_store().await.pool().clone();
            sqlx::raw_sql(
                "CREATE TABLE accounts (account_id UUID PRIMARY KEY, \
                 clerk_user_id TEXT NOT NULL UNIQUE, mail TEXT)",
            )
            .execute(&pool)
            .await
            .unwrap();
            sync_mapped_table(PgUserStore::with_table(pool, &table)).await;
        }
        Backend::Sqlite => {
            let pool = sqlite_store().await.pool().clone();
            sqlx::raw_sql(
                "CREATE TABLE accounts (account_id BLOB PRIMARY KEY, \
                 clerk_user_id TEXT NOT NULL UNIQUE, mail TEXT)",
            )
            .execute(&pool)
            .await
            .unwrap();
            sync_mapped_table(SqliteUserStore::with_table(pool, &table)).await;
        }
    }
}

async fn sync_mapped_table<S: UserSync + UserStore>(store: S) {
    let user = random_id("user");
    let newer = Profile::new()
        .with_email("new@example.com")
        .with_names(Some("Ada".into()), None);
    let SyncOutcome::Created(id @ LocalId::Uuid(_)) =
        store.upsert_profile(&user, &newer, 2_000).await.unwrap()
    else {
        panic!("expected a created row with a UUID");
    };
    let older = Profile::new().with_email("old@example.com");
    assert_eq!(
        store.upsert_profile(&user, &older, 1_000).await.unwrap(),
        SyncOutcome::Updated(id)
    );
    assert_eq!(
        store.find_or_create(&user, &newer).await.unwrap(),
        Resolution::Existing(id)
    );
    assert_eq!(
        store.delete_user(&user, 5).await.unwrap(),
        SyncOutcome::Deleted
    );
    assert_eq!(
        store.upsert_profile(&user, &newer, 3_000).await.unwrap(),
        SyncOutcome::Tombstoned
    );
    assert_eq!(
        store.find_or_create(&user, &newer).await.unwrap(),
        Resolution::Deleted
    );
}

/// Without axum: the receiver is a plain tower service over any body.
#[tokio::test]
async fn tower_service_takes_any_body() {
    let h = Harness::new(Backend::Sqlite).await;
    let user = random_id("user");
    let body = created(&user, 1_000).to_string();
    let id = random_id("msg");
    let t = now();
    let request = http::Request::post("/anywhere")
        .header("svix-id", &id)
        .header("svix-timestamp", t.to_string())
        .header(
            "svix-signature",
            sign(&SECRET.parse().unwrap(), &id, t, body.as_bytes()),
        )
        .body(http_body_util::Full::new(Bytes::from(body)))
        .unwrap();
    let (status, reply) = read(h.receiver.clone().oneshot(request).await.unwrap()).await;
    assert_eq!(
        (status, reply["outcome"].as_str()),
        (StatusCode::OK, Some("created"))
    );

    // A declared length over the limit is refused before the body is read.
    let small = h.receiver.clone().with_body_limit(16);
    let request = http::Request::post("/anywhere")
        .header("content-length", "17")
        .body(http_body_util::Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let (status, reply) = read(small.oneshot(request).await.unwrap()).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("body_too_large"))
    );
}

/// Every delivery is logged with its id, type, user and outcome; bodies and secrets never.
#[tokio::test]
async fn deliveries_are_logged_without_bodies_or_secrets() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // Global, because callsites shared with concurrently running tests make
    // a thread-scoped subscriber miss events. Other tests' lines land here too.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let h = Harness::new(Backend::Sqlite).await;
    let user = random_id("user");
    let body = created(&user, 1_000).to_string();
    let request = signed(body.as_bytes());
    let id = request.headers()["svix-id"].to_str().unwrap().to_owned();
    let signature = request.headers()["svix-signature"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(h.send(request).await.0, StatusCode::OK);
    h.outcome(&created(&user, 500)).await;
    let forged = signed_with(UNKNOWN_SECRET, now(), body.as_bytes());
    let forged_id = forged.headers()["svix-id"].to_str().unwrap().to_owned();
    assert_eq!(h.send(forged).await.0, StatusCode::UNAUTHORIZED);
    h.store_pool.close().await;
    assert_eq!(
        h.deliver(&user_deleted_event(&user)).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let text = logs.text();
    let line = |needles: &[&str]| {
        text.lines()
            .find(|line| needles.iter().all(|needle| line.contains(needle)))
            .unwrap_or_else(|| panic!("no log line with {needles:?}:\n{text}"))
    };
    line(&[
        "INFO",
        &id,
        "user.created",
        &user,
        "outcome=\"applied\"",
        "created",
    ]);
    line(&["INFO", "user.created", &user, "ignored_stale"]);
    line(&["WARN", &forged_id, "rejected", "invalid_signature"]);
    line(&["ERROR", "user.deleted", &user, "store_unavailable"]);
    for secret in [
        "ada@example.com",
        "Lovelace",
        "img.example.com",
        &SECRET[6..],
        &UNKNOWN_SECRET[6..],
        &signature[3..],
    ] {
        assert!(!text.contains(secret), "{secret} was logged:\n{text}");
    }
}
