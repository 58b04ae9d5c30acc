//! The layer end to end: real keys served over HTTP, real SQLite and PostgreSQL.

mod common;

use std::{sync::Arc, time::Duration};

use axum::{Json, Router, body::Body, routing::get};
use common::*;
use ensure_user::{
    Config, EnsureUserLayer, KeySource, LocalUser, Mode,
    store::{PgUserStore, UserStore},
    testing::{SigningKey, random_id, session_claims},
};
use http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

fn app(layer: EnsureUserLayer) -> Router {
    Router::new()
        .route(
            "/me",
            get(|user: LocalUser| async move {
                Json(json!({ "id": user.id(), "clerk_id": user.clerk_id(), "sid": user.session_id() }))
            }),
        )
        .route(
            "/maybe",
            get(|user: Option<LocalUser>| async move {
                Json(json!({ "clerk_id": user.as_ref().map(LocalUser::clerk_id) }))
            }),
        )
        .layer(layer)
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    read(app.clone().oneshot(request).await.unwrap()).await
}

struct Fixture {
    key: SigningKey,
    jwks: JwksServer,
}

impl Fixture {
    async fn new() -> Self {
        let key = SigningKey::generate("ins_test");
        let jwks = JwksServer::start(&[&key]).await;
        Self { key, jwks }
    }

    fn token(&self, claims: &Value) -> String {
        self.key.sign(claims)
    }

    fn claims(&self, user: &str) -> Value {
        session_claims(ISSUER, user, 60)
    }
}

/// Every way a token can be refused: the code, and that the store was never called.
#[tokio::test]
async fn each_rejection_has_its_code_and_never_reaches_the_store() {
    let f = Fixture::new().await;
    let other_key = SigningKey::generate("ins_test");
    let store = CountingStore::new(sqlite_store().await);
    let config = f
        .jwks
        .config()
        .with_authorized_parties(["https://app.example"]);
    let app = app(EnsureUserLayer::new(config, store.clone()));
    let user = random_id("user");
    let base = || {
        let mut claims = f.claims(&user);
        claims["azp"] = json!("https://app.example");
        claims
    };
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = base();
        change(&mut claims);
        claims
    };
    let now = base()["iat"].as_i64().unwrap();
    let header = |h: Value| {
        f.key
            .sign_raw(h.to_string().as_bytes(), base().to_string().as_bytes())
    };

    let cases: Vec<(&str, String, &str)> = vec![
        ("garbage", "not-a-jwt".into(), "malformed_token"),
        ("two segments", "a.b".into(), "malformed_token"),
        ("bad base64", "@@@.###.$$$".into(), "malformed_token"),
        (
            "json header is not an object",
            "WzFd.e30.c2ln".into(),
            "malformed_token",
        ),
        (
            "HS256",
            header(json!({"alg":"HS256","typ":"JWT","kid":"ins_test"})),
            "unsupported_algorithm",
        ),
        (
            "alg none",
            header(json!({"alg":"none","kid":"ins_test"})),
            "unsupported_algorithm",
        ),
        (
            "OAuth access token",
            header(json!({"alg":"RS256","typ":"at+jwt","kid":"ins_test"})),
            "not_a_session_token",
        ),
        (
            "machine token category",
            header(json!({"alg":"RS256","kid":"ins_test","cat":"cl_B7d4PD333AAA"})),
            "not_a_session_token",
        ),
        (
            "JWT template (no sid)",
            f.token(&with(&|c| {
                c.as_object_mut().unwrap().remove("sid");
            })),
            "not_a_session_token",
        ),
        (
            "machine subject",
            f.token(&with(&|c| c["sub"] = json!("mch_123"))),
            "not_a_session_token",
        ),
        (
            "unknown kid",
            header(json!({"alg":"RS256","typ":"JWT","kid":"ins_other"})),
            "unknown_key",
        ),
        (
            "no kid",
            header(json!({"alg":"RS256","typ":"JWT"})),
            "unknown_key",
        ),
        (
            "signed by another key under the same kid",
            other_key.sign(&base()),
            "invalid_signature",
        ),
        (
            "expired",
            f.token(&with(&|c| c["exp"] = json!(now - 6))),
            "token_expired",
        ),
        (
            "lives longer than an hour",
            f.token(&with(&|c| c["exp"] = json!(now + 3601))),
            "token_lifetime_exceeded",
        ),
        (
            "not yet valid",
            f.token(&with(&|c| c["nbf"] = json!(now + 30))),
            "token_not_yet_valid",
        ),
        (
            "issued in the future",
            f.token(&with(&|c| c["iat"] = json!(now + 30))),
            "token_issued_in_future",
        ),
        (
            "wrong issuer",
            f.token(&with(&|c| c["iss"] = json!("https://clerk.evil.example"))),
            "invalid_issuer",
        ),
        (
            "missing azp",
            f.token(&with(&|c| {
                c.as_object_mut().unwrap().remove("azp");
            })),
            "unauthorized_party",
        ),
        (
            "wrong azp",
            f.token(&with(&|c| c["azp"] = json!("https://app.example.evil"))),
            "unauthorized_party",
        ),
        (
            "pending session",
            f.token(&with(&|c| c["sts"] = json!("pending"))),
            "session_pending",
        ),
        (
            "exp missing",
            f.token(&with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            })),
            "malformed_token",
        ),
    ];
    for (name, token, code) in cases {
        let response = app.clone().oneshot(bearer(&token)).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#,
            "{name}"
        );
        let (_, body) = read(response).await;
        assert_eq!(body["error"], code, "{name}");
        let text = body.to_string();
        assert!(
            !text.contains("InvalidSignature") && !text.contains("Error"),
            "{name}: {text}"
        );
    }

    let response = app
        .clone()
        .oneshot(Request::get("/me").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(read(response).await.1["error"], "missing_token");
    assert_eq!(
        store.calls(),
        0,
        "a refused token must never reach the store"
    );

    // The control: the unmodified claims pass.
    let (status, body) = call(&app, bearer(&f.token(&base()))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(store.calls(), 1);
}

#[tokio::test]
async fn clock_skew_bounds_are_exact() {
    let f = Fixture::new().await;
    let app = app(EnsureUserLayer::new(
        f.jwks.config().with_clock_skew(Duration::from_secs(30)),
        sqlite_store().await,
    ));
    let user = random_id("user");
    let mut claims = f.claims(&user);
    let now = claims["iat"].as_i64().unwrap();
    claims["exp"] = json!(now - 25); // inside a 30 s skew
    claims["iat"] = json!(now + 20);
    claims["nbf"] = json!(now + 20);
    assert_eq!(
        call(&app, bearer(&f.token(&claims))).await.0,
        StatusCode::OK
    );
    claims["exp"] = json!(now - 35); // outside
    let (status, body) = call(&app, bearer(&f.token(&claims))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("token_expired"))
    );

    let strict = app_with_zero_skew(&f).await;
    let mut claims = f.claims(&user);
    claims["exp"] = json!(now - 1);
    assert_eq!(
        call(&strict, bearer(&f.token(&claims))).await.1["error"],
        "token_expired"
    );
}

async fn app_with_zero_skew(f: &Fixture) -> Router {
    app(EnsureUserLayer::new(
        f.jwks.config().with_clock_skew(Duration::ZERO),
        sqlite_store().await,
    ))
}

#[tokio::test]
async fn pending_sessions_can_be_allowed() {
    let f = Fixture::new().await;
    let app = app(EnsureUserLayer::new(
        f.jwks.config().allow_pending_sessions(true),
        sqlite_store().await,
    ));
    let mut claims = f.claims(&random_id("user"));
    claims["sts"] = json!("pending");
    assert_eq!(
        call(&app, bearer(&f.token(&claims))).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn header_wins_over_cookie_and_suffixed_cookie_is_read() {
    let f = Fixture::new().await;
    let layer = EnsureUserLayer::new(
        f.jwks.config().with_cookie_suffix("QvfNY2dr"),
        sqlite_store().await,
    );
    let app = app(layer);
    let alice = random_id("user");
    let bob = random_id("user");
    let alice_token = f.token(&f.claims(&alice));
    let bob_token = f.token(&f.claims(&bob));

    let request = Request::get("/me")
        .header("authorization", format!("Bearer {alice_token}"))
        .header("cookie", format!("__session={bob_token}"))
        .body(Body::empty())
        .unwrap();
    let (status, body) = call(&app, request).await;
    assert_eq!(
        (status, body["clerk_id"].as_str()),
        (StatusCode::OK, Some(alice.as_str()))
    );

    // Clerk's rule: a bare token is the token; another scheme (a staging
    // site's password, say) is not Clerk's, and the cookie is read instead.
    for (authorization, who) in [
        (alice_token.clone(), &alice),
        (format!("bearer {alice_token}"), &alice),
        ("Basic c3RhZ2luZzpzZWNyZXQ=".to_owned(), &bob),
        (r#"Digest username="staging""#.to_owned(), &bob),
    ] {
        let request = Request::get("/me")
            .header("authorization", &authorization)
            .header("cookie", format!("__session={bob_token}"))
            .body(Body::empty())
            .unwrap();
        let (status, body) = call(&app, request).await;
        assert_eq!(
            (status, body["clerk_id"].as_str()),
            (StatusCode::OK, Some(who.as_str())),
            "{authorization}"
        );
    }

    // A bad Bearer header is not rescued by a good cookie.
    let request = Request::get("/me")
        .header("authorization", "Bearer nope")
        .header("cookie", format!("__session={bob_token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app, request).await.0, StatusCode::UNAUTHORIZED);

    let request = Request::get("/me")
        .header(
            "cookie",
            format!("__session=garbage; __session_QvfNY2dr={bob_token}"),
        )
        .body(Body::empty())
        .unwrap();
    let (status, body) = call(&app, request).await;
    assert_eq!(
        (status, body["clerk_id"].as_str()),
        (StatusCode::OK, Some(bob.as_str()))
    );

    let request = Request::get("/me")
        .header("cookie", format!("theme=dark; __session={alice_token}"))
        .body(Body::empty())
        .unwrap();
    let (status, body) = call(&app, request).await;
    assert_eq!(
        (status, body["clerk_id"].as_str()),
        (StatusCode::OK, Some(alice.as_str()))
    );

    // A token in the query string is ignored.
    let request = Request::get(format!("/me?__session={alice_token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app, request).await.1["error"], "missing_token");
}

#[tokio::test]
async fn optional_mode_passes_anonymous_requests_only() {
    let f = Fixture::new().await;
    let layer =
        EnsureUserLayer::new(f.jwks.config(), sqlite_store().await).with_mode(Mode::Optional);
    let app = app(layer);
    let anonymous = Request::get("/maybe").body(Body::empty()).unwrap();
    let (status, body) = call(&app, anonymous).await;
    assert_eq!((status, &body["clerk_id"]), (StatusCode::OK, &Value::Null));

    let user = random_id("user");
    let mut request = bearer(&f.token(&f.claims(&user)));
    *request.uri_mut() = "/maybe".parse().unwrap();
    assert_eq!(call(&app, request).await.1["clerk_id"], user.as_str());

    let mut bad = bearer("x.y.z");
    *bad.uri_mut() = "/maybe".parse().unwrap();
    assert_eq!(call(&app, bad).await.0, StatusCode::UNAUTHORIZED);

    // A route that requires a user still refuses the anonymous request.
    let anonymous = Request::get("/me").body(Body::empty()).unwrap();
    let (status, body) = call(&app, anonymous).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing_token"))
    );
}

#[tokio::test]
async fn extractor_without_layer_names_the_missing_layer() {
    let app = Router::new()
        .route("/me", get(|_: LocalUser| async { "unreachable" }))
        .route(
            "/maybe",
            get(|_: Option<LocalUser>| async { "unreachable" }),
        );
    for path in ["/me", "/maybe"] {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.headers()["cache-control"], "no-store");
        let (status, body) = read(response).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"], "missing_layer");
    }
}

async fn concurrent_first_requests_make_one_row<S: UserStore + Clone>(
    store: S,
    count_rows: impl AsyncFnOnce(&str) -> i64,
) {
    let f = Fixture::new().await;
    let store = CountingStore::new(store);
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
    assert_eq!(count_rows(&user).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_1000_concurrent_first_requests_one_row_one_call() {
    let store = postgres_store().await;
    let pool = store.pool().clone();
    concurrent_first_requests_make_one_row(store, async |user| {
        sqlx::query_scalar("SELECT count(*) FROM users WHERE clerk_id = $1")
            .bind(user)
            .fetch_one(&pool)
            .await
            .unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_1000_concurrent_first_requests_one_row_one_call() {
    let store = sqlite_store().await;
    let pool = store.pool().clone();
    concurrent_first_requests_make_one_row(store, async |user| {
        sqlx::query_scalar("SELECT count(*) FROM users WHERE clerk_id = ?1")
            .bind(user)
            .fetch_one(&pool)
            .await
            .unwrap()
    })
    .await;
}

/// Separate layers (separate caches, as separate processes would have) racing
/// on one new user through separate pools still make exactly one row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_racing_instances_converge_on_one_row() {
    let f = Fixture::new().await;
    let first = postgres_store().await;
    let pool = first.pool().clone();
    let user = random_id("user");
    let token = Arc::new(f.token(&f.claims(&user)));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = PgUserStore::new(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect_with(pool.connect_options().as_ref().clone())
                .await
                .unwrap(),
        );
        let app = app(EnsureUserLayer::new(f.jwks.config(), store));
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
        assert_eq!(status, StatusCode::OK);
        ids.push(body["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE clerk_id = $1")
        .bind(&user)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

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
#[tokio::test]
async fn sqlite_existing_user_miss_writes_nothing() {
    let store = sqlite_store().await;
    sqlx::raw_sql(WRITE_AUDIT_SQLITE)
        .execute(store.pool())
        .await
        .unwrap();
    let pool = store.pool().clone();
    existing_user_miss_writes_nothing(store, async || {
        sqlx::query_scalar("SELECT count(*) FROM writes")
            .fetch_one(&pool)
            .await
            .unwrap()
    })
    .await;
}

#[tokio::test]
async fn postgres_existing_user_miss_writes_nothing() {
    let store = postgres_store().await;
    sqlx::raw_sql(WRITE_AUDIT_POSTGRES)
        .execute(store.pool())
        .await
        .unwrap();
    let pool = store.pool().clone();
    existing_user_miss_writes_nothing(store, async || {
        sqlx::query_scalar("SELECT count(*) FROM writes")
            .fetch_one(&pool)
            .await
            .unwrap()
    })
    .await;
}

async fn existing_user_miss_writes_nothing<S: UserStore + Clone>(
    store: S,
    writes: impl AsyncFn() -> i64,
) {
    let f = Fixture::new().await;
    let user = random_id("user");
    let first = app(EnsureUserLayer::new(f.jwks.config(), store.clone()));
    let (_, created) = call(&first, bearer(&f.token(&f.claims(&user)))).await;
    assert_eq!(writes().await, 1, "creating the user is one insert");

    // A new process: fresh caches, same database, a new token for the same user.
    let restarted = app(EnsureUserLayer::new(f.jwks.config(), store));
    let (status, again) = call(&restarted, bearer(&f.token(&f.claims(&user)))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], created["id"]);
    assert_eq!(
        writes().await,
        1,
        "a miss for an existing user must not write"
    );
}

#[tokio::test]
async fn profile_claims_fill_a_new_row() {
    let f = Fixture::new().await;
    let store = sqlite_store().await;
    let pool = store.pool().clone();
    let app = app(EnsureUserLayer::new(f.jwks.config(), store));
    let user = random_id("user");
    let mut claims = f.claims(&user);
    claims["email"] = json!("ada@example.com");
    claims["first_name"] = json!("Ada'); DROP TABLE users; --");
    assert_eq!(
        call(&app, bearer(&f.token(&claims))).await.0,
        StatusCode::OK
    );
    let (email, first): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT email, first_name FROM users WHERE clerk_id = ?1")
            .bind(&user)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(email.as_deref(), Some("ada@example.com"));
    assert_eq!(first.as_deref(), Some("Ada'); DROP TABLE users; --"));
}

async fn tombstoned_user_is_refused_and_not_recreated<S: UserStore>(
    store: S,
    tombstone: impl AsyncFn(&str),
    rows: impl AsyncFn(&str) -> i64,
) {
    let f = Fixture::new().await;
    let app = app(EnsureUserLayer::new(f.jwks.config(), store));
    let user = random_id("user");
    tombstone(&user).await;
    let (status, body) = call(&app, bearer(&f.token(&f.claims(&user)))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("user_deleted"))
    );
    assert_eq!(rows(&user).await, 0);
}

#[tokio::test]
async fn sqlite_tombstoned_user_is_refused_and_not_recreated() {
    let store = sqlite_store().await;
    let pool = store.pool().clone();
    tombstoned_user_is_refused_and_not_recreated(
        store,
        async |user| {
            sqlx::query("INSERT INTO clerk_user_tombstones VALUES (?1, 0)")
                .bind(user)
                .execute(&pool)
                .await
                .unwrap();
        },
        async |user| {
            sqlx::query_scalar("SELECT count(*) FROM users WHERE clerk_id = ?1")
                .bind(user)
                .fetch_one(&pool)
                .await
                .unwrap()
        },
    )
    .await;
}

#[tokio::test]
async fn postgres_tombstoned_user_is_refused_and_not_recreated() {
    let store = postgres_store().await;
    let pool = store.pool().clone();
    tombstoned_user_is_refused_and_not_recreated(
        store,
        async |user| {
            sqlx::query("INSERT INTO clerk_user_tombstones VALUES ($1, 0)")
                .bind(user)
                .execute(&pool)
                .await
                .unwrap();
        },
        async |user| {
            sqlx::query_scalar("SELECT count(*) FROM users WHERE clerk_id = $1")
                .bind(user)
                .fetch_one(&pool)
                .await
                .unwrap()
        },
    )
    .await;
}

#[tokio::test]
async fn rotated_key_is_accepted_after_one_refetch() {
    let old = SigningKey::generate("ins_old");
    let jwks = JwksServer::start(&[&old]).await;
    let app = app(EnsureUserLayer::new(jwks.config(), sqlite_store().await));
    let user = random_id("user");
    let claims = session_claims(ISSUER, &user, 60);
    assert_eq!(
        call(&app, bearer(&old.sign(&claims))).await.0,
        StatusCode::OK
    );
    assert_eq!(jwks.fetches(), 1);

    let new = SigningKey::generate("ins_new");
    jwks.serve(&[&new]);
    let (status, _) = call(&app, bearer(&new.sign(&session_claims(ISSUER, &user, 60)))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(jwks.fetches(), 2, "one refetch for the unknown kid");
}

#[tokio::test]
async fn key_endpoint_down_keeps_serving_held_keys_and_503s_unknown_ones() {
    let f = Fixture::new().await;
    let app = app(EnsureUserLayer::new(f.jwks.config(), sqlite_store().await));
    let user = random_id("user");
    assert_eq!(
        call(&app, bearer(&f.token(&f.claims(&user)))).await.0,
        StatusCode::OK
    );

    f.jwks.fail_with(500);
    // A token never seen before, signed by the held key: verified without the endpoint.
    let fresh = f.token(&f.claims(&random_id("user")));
    assert_eq!(call(&app, bearer(&fresh)).await.0, StatusCode::OK);

    // A key that cannot be fetched while the endpoint fails: 503, never 401.
    let rotated = SigningKey::generate("ins_rotated");
    let response = app
        .clone()
        .oneshot(bearer(&rotated.sign(&f.claims(&user))))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "5");
    assert_eq!(read(response).await.1["error"], "keys_unavailable");

    // Back up: the rotated key is fetched and accepted.
    f.jwks.serve(&[&f.key, &rotated]);
    assert_eq!(
        call(&app, bearer(&rotated.sign(&f.claims(&user)))).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn no_keys_yet_and_endpoint_down_is_503() {
    let f = Fixture::new().await;
    f.jwks.fail_with(503);
    let app = app(EnsureUserLayer::new(f.jwks.config(), sqlite_store().await));
    let (status, body) = call(&app, bearer(&f.token(&f.claims(&random_id("user"))))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("keys_unavailable"))
    );
}

#[tokio::test]
async fn unknown_kid_flood_fetches_at_most_once_per_cooldown() {
    let f = Fixture::new().await;
    let config = f
        .jwks
        .config()
        .with_key_refetch_cooldown(Duration::from_secs(60));
    let app = app(EnsureUserLayer::new(config, sqlite_store().await));
    let user = random_id("user");
    assert_eq!(
        call(&app, bearer(&f.token(&f.claims(&user)))).await.0,
        StatusCode::OK
    );
    let before = f.jwks.fetches();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let key_header = json!({"alg":"RS256","typ":"JWT","kid":format!("ins_random{i}")});
            let token = f.key.sign_raw(
                key_header.to_string().as_bytes(),
                f.claims(&user).to_string().as_bytes(),
            );
            let app = app.clone();
            tokio::spawn(async move { call(&app, bearer(&token)).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().1["error"], "unknown_key");
    }
    assert!(
        f.jwks.fetches() - before <= 1,
        "fetches: {}",
        f.jwks.fetches() - before
    );
}

#[tokio::test]
async fn networkless_pem_verifies_clerk_fixture_token() {
    // Clerk's published test fixture: a real RS256 token and its key (2022, so
    // the clock skew is stretched to reach it).
    const PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqYy3MY8fOneEyzNDu9lp
6iGXKkNUF+u/dUnrlkadZYyB35efzKFJEr9fftmWv5PUj1uRHTQ3bh6X1cceOYsI
jy008dHWZJsKhGOxgdTjeK91rjaklxt7tyFXEiKHIOr1LSgKzopClOfCIjxK/oPU
Of38pVh7WnekcSBQmU5fqA+EzKMi6k9VwvbzqKlZM4XQsiFyn28d9VubJWjTU8nN
ot0n1NE+9k6TxM8nglM4RwkBH4Ni4B0LhKKOOV+AG8tBNiZVil415dpBldmJ/j0w
k7Ad4VFi9en3Z17oCKr+K+zuT7vKMKSb1548dk0vnmi0vj2QGXSo+61wM5yQWpk6
sQIDAQAB
-----END PUBLIC KEY-----";
    const TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6Imluc18yR0lvUWhiVXB5MGhYN0IyY1ZrdVRNaW5Yb0QiLCJ0eXAiOiJKV1QifQ.eyJhenAiOiJodHRwczovL2FjY291bnRzLmluc3BpcmVkLnB1bWEtNzQubGNsLmRldiIsImV4cCI6MTY2NjY0ODMxMCwiaWF0IjoxNjY2NjQ4MjUwLCJpc3MiOiJodHRwczovL2NsZXJrLmluc3BpcmVkLnB1bWEtNzQubGNsLmRldiIsIm5iZiI6MTY2NjY0ODI0MCwic2lkIjoic2Vzc18yR2JEQjRlbk5kQ2E1dlMxenBDM1h6Zzl0SzkiLCJzdWIiOiJ1c2VyXzJHSXBYT0VwVnlKdzUxcmtabjlLbW5jNlN4ciJ9.j3rB92k32WqbQDkFB093H4GoQsBVLH4HLGF6ObcwUaVGiHC8SEu6T31FuPf257SL8A5sSGtWWM1fqhQpdLohgZb_hbJswGBuYI-Clxl9BtpIRHbWFZkLBIj8yS9W9aVtD3fWBbF6PHx7BY1udio-rbGWg1YAOZNtVcxF02p-MvX-8XIK92Vwu3Un5zyfCoVIg__qo3Xntzw3tznsZ4XDe212c6kVz1R_L1d5DKjeWXpjUPAS_zFeZSIJEQLf4JNr4JCY38tfdnc3ajfDA3p36saf1XwmTdWXQKCXi75c2TJAXROs3Pgqr5Kw_5clygoFuxN5OEMhFWFSnvIBdi3M6w";
    let ten_years = Duration::from_secs(10 * 365 * 24 * 3600);
    let config =
        Config::from_publishable_key("pk_test_Y2xlcmsuaW5zcGlyZWQucHVtYS03NC5sY2wuZGV2JA").unwrap();
    assert_eq!(config.issuer(), "https://clerk.inspired.puma-74.lcl.dev");
    let config = Config::new(config.issuer(), KeySource::pem(PEM).unwrap())
        .with_clock_skew(ten_years)
        .with_authorized_parties(["https://accounts.inspired.puma-74.lcl.dev"]);
    let app = app(EnsureUserLayer::new(config, sqlite_store().await));
    let (status, body) = call(&app, bearer(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["clerk_id"], "user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr");
    assert_eq!(body["sid"], "sess_2GbDB4enNdCa5vS1zpC3Xzg9tK9");

    // The same token under the default skew has long expired.
    let strict = app_for_pem(PEM).await;
    assert_eq!(
        call(&strict, bearer(TOKEN)).await.1["error"],
        "token_expired"
    );
}

async fn app_for_pem(pem: &str) -> Router {
    let config = Config::new(
        "https://clerk.inspired.puma-74.lcl.dev",
        KeySource::pem(pem).unwrap(),
    );
    app(EnsureUserLayer::new(config, sqlite_store().await))
}

/// A store that answers slowly, and `Deleted` once told the user is gone.
#[derive(Clone, Default)]
struct SlowStore {
    deleted: Arc<std::sync::atomic::AtomicBool>,
}

impl UserStore for SlowStore {
    async fn find_or_create(
        &self,
        _clerk_id: &str,
        _profile: &ensure_user::store::Profile,
    ) -> Result<ensure_user::store::Resolution, ensure_user::store::StoreError> {
        use ensure_user::store::Resolution;
        let deleted_before = self.deleted.load(std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(if deleted_before {
            Resolution::Deleted
        } else {
            Resolution::Existing(ensure_user::LocalId::Int(1))
        })
    }
}

/// A lookup in flight while the user is deleted brings back a stale answer:
/// the layer loads it again rather than serve or cache it, so neither that
/// request nor a later one is served once the deletion is acknowledged.
#[tokio::test]
async fn deletion_during_an_in_flight_lookup_is_not_remembered() {
    let f = Fixture::new().await;
    let store = SlowStore::default();
    let layer = EnsureUserLayer::new(
        f.jwks
            .config()
            .with_store_timeout(Duration::from_millis(500)),
        store.clone(),
    );
    let app = app(layer.clone());
    let user = random_id("user");
    let token = f.token(&f.claims(&user));
    let in_flight = {
        let (app, token) = (app.clone(), token.clone());
        tokio::spawn(async move { call(&app, bearer(&token)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    store
        .deleted
        .store(true, std::sync::atomic::Ordering::SeqCst);
    layer.forget_user(&user).await;
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("user_deleted")),
        "answered after the deletion was acknowledged"
    );
    let (status, body) = call(&app, bearer(&token)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("user_deleted"))
    );
}
