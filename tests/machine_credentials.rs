//! Clerk's machine credentials through the layer: API keys, OAuth access
//! tokens and machine tokens, opaque (verified by a fake Backend API on
//! loopback that answers as Clerk's does) and in JWT form (verified with the
//! instance's keys from a JWKS server on loopback), on both stores.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Json, Router, body::Body, routing::get};
use common::{
    Backend, ISSUER, JwksServer, Store,
    clerk_api::{FakeClerk, MACHINE_ID, MACHINE_SECRET, SECRET, VerifyFaults},
    instances::{Deployment, Instance, PROPAGATION_LIMIT},
    read,
};
use ensure_user::{
    Config, EnsureUserLayer, Guard, LocalOrganization, LocalUser, Principal,
    credential::{AcceptedTokens, TokenType},
    store::{SqliteUserStore, UserSync},
    testing::{SigningKey, random_id, session_claims},
};
use http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

/// A Clerk instance: its signing key and JWKS server, and its Backend API.
struct Clerk {
    key: SigningKey,
    jwks: JwksServer,
    api: FakeClerk,
}

impl Clerk {
    async fn start() -> Self {
        let key = SigningKey::generate("ins_machine");
        let jwks = JwksServer::start(&[&key]).await;
        let api = FakeClerk::start(Vec::new()).await;
        Self { key, jwks, api }
    }

    /// A configuration accepting `accepted`, verifying opaque credentials
    /// with this instance's Backend API.
    fn config(&self, accepted: AcceptedTokens) -> Config {
        self.jwks
            .config()
            .with_accepted_tokens(accepted)
            .with_secret_key(SECRET)
            .with_api_url(self.api.url())
    }

    /// An instance of `deployment` accepting every kind, verifying opaque
    /// credentials with this instance's Backend API.
    async fn instance(&self, deployment: &Deployment) -> Instance {
        let config = deployment
            .config()
            .with_accepted_tokens(AcceptedTokens::ANY)
            .with_secret_key(SECRET)
            .with_api_url(self.api.url());
        deployment.instance().config(config).start().await
    }

    fn session(&self, user: &str) -> String {
        self.key.session_token(ISSUER, user, 600)
    }

    /// A new API key of `subject` with `scopes`: its secret and its id.
    fn api_key(&self, subject: &str, scopes: &[&str]) -> (String, String) {
        let secret = random_id("ak");
        let id = self.api.add_api_key(&secret, subject, scopes, "script");
        (secret, id)
    }
}

/// `/me` (a user), `/whoami` (any principal), `/org` (an organization),
/// and `/reports` (the scope `reports:read`).
fn app(layer: EnsureUserLayer) -> Router {
    Router::new()
        .route(
            "/me",
            get(|user: LocalUser| async move {
                Json(json!({ "id": user.id(), "clerk_id": user.clerk_id() }))
            }),
        )
        .route("/whoami", get(whoami))
        .route(
            "/org",
            get(|organization: LocalOrganization| async move {
                Json(json!({ "id": organization.id(), "clerk_id": organization.clerk_id() }))
            }),
        )
        .route(
            "/reports",
            get(|| async { Json(json!({ "ok": true })) }).route_layer(Guard::scope("reports:read")),
        )
        .layer(layer)
}

async fn whoami(principal: Principal) -> Json<Value> {
    Json(json!({
        "token_type": principal.token_type(),
        "user": principal.user().map(|user| json!({ "id": user.id(), "clerk_id": user.clerk_id() })),
        "org": principal.organization().map(|org| json!({ "id": org.id(), "clerk_id": org.clerk_id() })),
        "machine": principal.machine(),
        "scopes": principal.scopes(),
    }))
}

async fn get_with(app: &Router, path: &str, token: &str) -> (StatusCode, Value) {
    let request = Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    read(app.clone().oneshot(request).await.unwrap()).await
}

/// The error code of a refusal (empty when served).
async fn code(app: &Router, path: &str, token: &str) -> (StatusCode, String) {
    let (status, body) = get_with(app, path, token).await;
    (status, body["error"].as_str().unwrap_or("").to_owned())
}

fn now_ms() -> i64 {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(elapsed.as_millis()).unwrap()
}

common::on_both_stores!(
    a_users_credentials_share_the_sessions_row,
    an_organizations_key_yields_its_organization_and_no_user,
    deleted_and_banned_subjects_are_refused_for_every_kind,
);

fn accepting(kinds: &[TokenType]) -> AcceptedTokens {
    kinds.iter().copied().collect()
}

#[tokio::test]
async fn each_kind_is_served_only_where_accepted() {
    let clerk = Clerk::start().await;
    let user = random_id("user");
    let (api_key, _) = clerk.api_key(&user, &[]);
    let oauth = clerk.key.oauth_token(ISSUER, &user, "client_a", &[], 600);
    let opaque_oauth = random_id("oat");
    clerk
        .api
        .add_oauth_token(&opaque_oauth, &user, "client_a", &[]);
    let m2m = random_id("mt");
    clerk.api.add_m2m_token(&m2m, MACHINE_ID, &[]);
    let m2m_jwt = clerk.key.machine_token(ISSUER, MACHINE_ID, &[], 600);
    let session = clerk.session(&user);
    let every = [
        (TokenType::SessionToken, &session),
        (TokenType::ApiKey, &api_key),
        (TokenType::OauthToken, &oauth),
        (TokenType::OauthToken, &opaque_oauth),
        (TokenType::M2mToken, &m2m),
        (TokenType::M2mToken, &m2m_jwt),
    ];
    let layers = [
        AcceptedTokens::SESSION,
        accepting(&[TokenType::ApiKey]),
        accepting(&[TokenType::OauthToken, TokenType::M2mToken]),
        AcceptedTokens::ANY,
    ];
    for accepted in layers {
        let app = app(EnsureUserLayer::new(
            clerk.config(accepted),
            common::sqlite_store().await,
        ));
        for (kind, token) in every {
            let (status, body) = get_with(&app, "/whoami", token).await;
            if accepted.contains(kind) {
                assert_eq!(status, StatusCode::OK, "{kind} under {accepted}: {body}");
                assert_eq!(body["token_type"], kind.as_str());
            } else {
                assert_eq!(
                    (status, body["error"].as_str()),
                    (StatusCode::UNAUTHORIZED, Some("token_type_mismatch")),
                    "{kind} under {accepted}"
                );
            }
        }
    }
    // The JWTs were verified with the keys: only the opaque ones were asked
    // of the Backend API, once by each layer accepting them.
    assert_eq!(clerk.api.verify_calls(), 1 + 2 + 3);
}

async fn a_users_credentials_share_the_sessions_row(backend: Backend) {
    let store = Store::new(backend).await;
    let clerk = Clerk::start().await;
    let app = app(EnsureUserLayer::new(
        clerk.config(AcceptedTokens::ANY),
        store,
    ));
    let user = random_id("user");
    // The user's API key first: a herd of first uses, one row, one call.
    let (api_key, _) = clerk.api_key(&user, &["reports:read"]);
    clerk.api.set_verify_faults(VerifyFaults {
        delay: Some(Duration::from_millis(200)),
        ..VerifyFaults::default()
    });
    let herd: Vec<_> = (0..16)
        .map(|_| {
            let app = app.clone();
            let api_key = api_key.clone();
            tokio::spawn(async move { get_with(&app, "/me", &api_key).await })
        })
        .collect();
    let mut ids = Vec::new();
    for answer in herd {
        let (status, body) = answer.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        ids.push(body["id"].clone());
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "one row: {ids:?}");
    assert_eq!(
        clerk.api.verify_calls(),
        1,
        "concurrent first uses share one call"
    );
    clerk.api.set_verify_faults(VerifyFaults::default());
    // The session, an opaque OAuth token and an OAuth JWT: the same row.
    let opaque_oauth = random_id("oat");
    clerk
        .api
        .add_oauth_token(&opaque_oauth, &user, "client_a", &["reports:read"]);
    let oauth_jwt = clerk.key.oauth_token(ISSUER, &user, "client_a", &[], 600);
    for token in [clerk.session(&user), opaque_oauth, oauth_jwt] {
        let (status, body) = get_with(&app, "/me", &token).await;
        assert_eq!((status, &body["id"]), (StatusCode::OK, &ids[0]), "{body}");
        assert_eq!(body["clerk_id"], user.as_str());
    }
    // A remembered key asks nothing again.
    let calls = clerk.api.verify_calls();
    for _ in 0..5 {
        assert_eq!(get_with(&app, "/me", &api_key).await.0, StatusCode::OK);
    }
    assert_eq!(clerk.api.verify_calls(), calls);
}

async fn an_organizations_key_yields_its_organization_and_no_user(backend: Backend) {
    let store = Store::new(backend).await;
    let clerk = Clerk::start().await;
    let layer = EnsureUserLayer::new(clerk.config(AcceptedTokens::ANY), store.clone())
        .with_organizations(store);
    let app = app(layer);
    let organization = random_id("org");
    let (key, _) = clerk.api_key(&organization, &["reports:read"]);
    let (status, whoami) = get_with(&app, "/whoami", &key).await;
    assert_eq!(status, StatusCode::OK, "{whoami}");
    assert_eq!(whoami["token_type"], "api_key");
    assert_eq!(whoami["user"], Value::Null);
    assert_eq!(whoami["org"]["clerk_id"], organization.as_str());
    assert_eq!(
        code(&app, "/me", &key).await,
        (StatusCode::FORBIDDEN, "no_user".to_owned())
    );
    let (status, org) = get_with(&app, "/org", &key).await;
    assert_eq!((status, &org["id"]), (StatusCode::OK, &whoami["org"]["id"]));
    // A member's session naming it as active finds the same row.
    let user = random_id("user");
    let mut claims = session_claims(ISSUER, &user, 600);
    claims["o"] = json!({ "id": organization, "slg": "acme", "rol": "admin" });
    let (status, body) = get_with(&app, "/org", &clerk.key.sign(&claims)).await;
    assert_eq!(
        (status, &body["id"]),
        (StatusCode::OK, &org["id"]),
        "{body}"
    );
}

#[tokio::test]
async fn a_machine_is_a_principal_without_a_row() {
    let clerk = Clerk::start().await;
    let pool = common::sqlite_pool().await;
    let store = SqliteUserStore::new(pool.clone());
    store.migrate().await.unwrap();
    let app = app(EnsureUserLayer::new(
        clerk.config(AcceptedTokens::ANY),
        store,
    ));
    let opaque = random_id("mt");
    clerk.api.add_m2m_token(&opaque, MACHINE_ID, &["mch_other"]);
    let jwt = clerk
        .key
        .machine_token(ISSUER, MACHINE_ID, &["mch_other"], 600);
    let (machine_key, _) = clerk.api_key(MACHINE_ID, &[]);
    for token in [&opaque, &jwt, &machine_key] {
        let (status, body) = get_with(&app, "/whoami", token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["machine"], MACHINE_ID);
        assert_eq!((&body["user"], &body["org"]), (&Value::Null, &Value::Null));
        assert_eq!(
            code(&app, "/me", token).await,
            (StatusCode::FORBIDDEN, "no_user".to_owned())
        );
    }
    let (_, body) = get_with(&app, "/whoami", &jwt).await;
    assert_eq!(body["scopes"], json!(["mch_other"]));
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "a machine has no row");
}

#[tokio::test]
async fn machine_tokens_verify_with_a_machine_secret_key() {
    let clerk = Clerk::start().await;
    let config = clerk
        .config(accepting(&[TokenType::M2mToken]))
        .with_machine_secret_key(MACHINE_SECRET);
    let app = app(EnsureUserLayer::new(config, common::sqlite_store().await));
    let mine = random_id("mt");
    clerk.api.add_m2m_token(&mine, "mch_caller", &[MACHINE_ID]);
    let not_for_me = random_id("mt");
    clerk
        .api
        .add_m2m_token(&not_for_me, "mch_caller", &["mch_someone_else"]);
    assert_eq!(get_with(&app, "/whoami", &mine).await.0, StatusCode::OK);
    assert_eq!(
        code(&app, "/whoami", &not_for_me).await,
        (StatusCode::UNAUTHORIZED, "credential_not_found".to_owned())
    );
}

async fn deleted_and_banned_subjects_are_refused_for_every_kind(backend: Backend) {
    let store = Store::new(backend).await;
    let clerk = Clerk::start().await;
    let layer = EnsureUserLayer::new(clerk.config(AcceptedTokens::ANY), store.clone());
    let evictor = layer.evictor();
    let app = app(layer);
    let banned = random_id("user");
    let deleted = random_id("user");
    let credentials = |user: &str| {
        let (api_key, _) = clerk.api_key(user, &[]);
        let opaque_oauth = random_id("oat");
        clerk
            .api
            .add_oauth_token(&opaque_oauth, user, "client_a", &[]);
        let oauth_jwt = clerk.key.oauth_token(ISSUER, user, "client_a", &[], 600);
        [api_key, opaque_oauth, oauth_jwt]
    };
    let (of_banned, of_deleted) = (credentials(&banned), credentials(&deleted));
    for token in of_banned.iter().chain(&of_deleted) {
        assert_eq!(get_with(&app, "/me", token).await.0, StatusCode::OK);
    }
    evictor.block_user(&banned, true, now_ms()).await;
    store.delete_user(&deleted, now_ms()).await.unwrap();
    evictor.forget_user(&deleted).await;
    let calls = clerk.api.verify_calls();
    for _ in 0..2 {
        for token in &of_banned {
            assert_eq!(
                code(&app, "/me", token).await,
                (StatusCode::UNAUTHORIZED, "user_banned".to_owned())
            );
        }
        for token in &of_deleted {
            assert_eq!(
                code(&app, "/me", token).await,
                (StatusCode::UNAUTHORIZED, "user_deleted".to_owned())
            );
        }
    }
    assert_eq!(clerk.api.verify_calls(), calls, "refused from memory");
}

#[tokio::test]
async fn backend_api_failures_are_the_servers_not_the_clients() {
    let clerk = Clerk::start().await;
    let config = clerk
        .config(AcceptedTokens::ANY)
        .with_backend_api_timeout(Duration::from_millis(300));
    let app = app(EnsureUserLayer::new(config, common::sqlite_store().await));
    let user = random_id("user");
    let faults = [
        (
            VerifyFaults {
                status: Some(StatusCode::UNAUTHORIZED),
                ..VerifyFaults::default()
            },
            StatusCode::INTERNAL_SERVER_ERROR,
            "verification_misconfigured",
        ),
        (
            VerifyFaults {
                rate_limited_for: Some(3),
                ..VerifyFaults::default()
            },
            StatusCode::SERVICE_UNAVAILABLE,
            "verification_unavailable",
        ),
        (
            VerifyFaults {
                status: Some(StatusCode::BAD_GATEWAY),
                ..VerifyFaults::default()
            },
            StatusCode::SERVICE_UNAVAILABLE,
            "verification_unavailable",
        ),
        (
            VerifyFaults {
                delay: Some(Duration::from_secs(2)),
                ..VerifyFaults::default()
            },
            StatusCode::SERVICE_UNAVAILABLE,
            "verification_unavailable",
        ),
    ];
    for (fault, status, expected) in faults {
        clerk.api.set_verify_faults(fault);
        let (key, _) = clerk.api_key(&user, &[]);
        let response = app
            .clone()
            .oneshot(
                Request::get("/me")
                    .header("authorization", format!("Bearer {key}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let retry_after = response.headers().get("retry-after").cloned();
        let (got, body) = read(response).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(expected)),
            "{body}"
        );
        assert_eq!(
            retry_after.is_some(),
            status == StatusCode::SERVICE_UNAVAILABLE
        );
        assert!(
            !body.to_string().contains("reqwest"),
            "no library text: {body}"
        );
        // Once Clerk answers again, the same key is served: no failure was remembered.
        clerk.api.set_verify_faults(VerifyFaults::default());
        assert_eq!(get_with(&app, "/me", &key).await.0, StatusCode::OK);
    }
    // An unknown key is the client's: 401, and remembered for a while.
    let made_up = random_id("ak");
    let calls = clerk.api.verify_calls();
    for _ in 0..3 {
        assert_eq!(
            code(&app, "/me", &made_up).await,
            (StatusCode::UNAUTHORIZED, "credential_not_found".to_owned())
        );
    }
    assert_eq!(clerk.api.verify_calls(), calls + 1);
}

#[tokio::test]
async fn a_flood_of_made_up_keys_spends_a_bounded_budget() {
    let clerk = Clerk::start().await;
    let config = clerk
        .config(AcceptedTokens::ANY)
        .with_backend_api_budget(10, Duration::from_secs(60));
    let app = app(EnsureUserLayer::new(config, common::sqlite_store().await));
    let (known, _) = clerk.api_key(&random_id("user"), &[]);
    assert_eq!(get_with(&app, "/me", &known).await.0, StatusCode::OK);
    let refused = Arc::new(AtomicUsize::new(0));
    let flood: Vec<_> = (0..200)
        .map(|_| {
            let (app, refused) = (app.clone(), Arc::clone(&refused));
            tokio::spawn(async move {
                let (status, code) = code(&app, "/me", &random_id("ak")).await;
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    assert_eq!(code, "verification_unavailable");
                    refused.fetch_add(1, Ordering::SeqCst);
                } else {
                    assert_eq!(
                        (status, code.as_str()),
                        (StatusCode::UNAUTHORIZED, "credential_not_found")
                    );
                }
            })
        })
        .collect();
    for request in flood {
        request.await.unwrap();
    }
    assert_eq!(
        clerk.api.verify_calls(),
        10,
        "the known key's call and nine of the flood"
    );
    assert_eq!(refused.load(Ordering::SeqCst), 200 - 9);
    // The remembered key is still served meanwhile.
    assert_eq!(get_with(&app, "/me", &known).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_revocation_in_clerk_is_seen_within_the_interval() {
    let clerk = Clerk::start().await;
    let config = clerk
        .config(AcceptedTokens::ANY)
        .with_credential_cache_interval(Duration::from_millis(400));
    let app = app(EnsureUserLayer::new(config, common::sqlite_store().await));
    let (key, _) = clerk.api_key(&random_id("user"), &[]);
    assert_eq!(get_with(&app, "/me", &key).await.0, StatusCode::OK);
    clerk.api.revoke(&key);
    // Remembered until the interval ends: no call, still served.
    assert_eq!(get_with(&app, "/me", &key).await.0, StatusCode::OK);
    assert_eq!(clerk.api.verify_calls(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        code(&app, "/me", &key).await,
        (StatusCode::UNAUTHORIZED, "credential_not_found".to_owned())
    );
    assert_eq!(clerk.api.verify_calls(), 2);
}

#[tokio::test]
async fn the_scope_guard_requires_the_credentials_scope() {
    let clerk = Clerk::start().await;
    let app = app(EnsureUserLayer::new(
        clerk.config(AcceptedTokens::ANY),
        common::sqlite_store().await,
    ));
    let user = random_id("user");
    let (with_scope, _) = clerk.api_key(&user, &["reports:read"]);
    let (without, _) = clerk.api_key(&user, &["reports:write"]);
    let oauth = clerk
        .key
        .oauth_token(ISSUER, &user, "client_a", &["profile", "reports:read"], 600);
    assert_eq!(
        get_with(&app, "/reports", &with_scope).await,
        (StatusCode::OK, json!({ "ok": true }))
    );
    assert_eq!(get_with(&app, "/reports", &oauth).await.0, StatusCode::OK);
    for token in [without, clerk.session(&user)] {
        let response = app
            .clone()
            .oneshot(
                Request::get("/reports")
                    .header("authorization", format!("Bearer {token}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer error="insufficient_scope", scope="reports:read""#
        );
        let (status, body) = read(response).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::FORBIDDEN, Some("insufficient_scope"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_through_the_evictor_reaches_every_instance() {
    let clerk = Clerk::start().await;
    let deployment = Deployment::postgres().await;
    let [a, b] = [
        clerk.instance(&deployment).await,
        clerk.instance(&deployment).await,
    ];
    deployment
        .listening(&[&a, &b], Duration::from_secs(5))
        .await;
    let user = random_id("user");
    let (key, id) = clerk.api_key(&user, &[]);
    let (kept, _) = clerk.api_key(&user, &[]);
    for instance in [&a, &b] {
        assert_eq!(instance.me(&key).await.0, StatusCode::OK);
        assert_eq!(instance.me(&kept).await.0, StatusCode::OK);
    }
    // Instance A revokes it, and records it for every instance.
    let since = std::time::Instant::now();
    let until = a.layer.evictor().revoke_credential(&id).await;
    assert_eq!(
        a.me(&key).await,
        (StatusCode::UNAUTHORIZED, "credential_revoked".to_owned())
    );
    deployment.db.end_session(&id, &user, until).await.unwrap();
    let heard = b
        .refused(&key, "credential_revoked", since, PROPAGATION_LIMIT)
        .await;
    println!("instance B refused the revoked key {heard:?} after A revoked it");
    // Clerk was never asked again, and the user's other key is still served.
    let calls = clerk.api.verify_calls();
    for instance in [&a, &b] {
        assert_eq!(instance.me(&kept).await.0, StatusCode::OK);
    }
    assert_eq!(clerk.api.verify_calls(), calls);
    // An instance started later reads the record when it starts listening.
    let c = clerk.instance(&deployment).await;
    deployment.listening(&[&c], Duration::from_secs(5)).await;
    assert_eq!(
        c.me(&key).await,
        (StatusCode::UNAUTHORIZED, "credential_revoked".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_on_one_instance_refuses_the_users_keys_on_another() {
    let clerk = Clerk::start().await;
    let deployment = Deployment::postgres().await;
    let [a, b] = [
        clerk.instance(&deployment).await,
        clerk.instance(&deployment).await,
    ];
    deployment
        .listening(&[&a, &b], Duration::from_secs(5))
        .await;
    let user = random_id("user");
    let (key, _) = clerk.api_key(&user, &[]);
    // Signed with the deployment's keys, which its instances trust.
    let oauth = deployment
        .key
        .oauth_token(ISSUER, &user, "client_a", &[], 600);
    for token in [&key, &oauth] {
        let served = b.me(token).await;
        assert_eq!(served.0, StatusCode::OK, "{served:?}");
    }
    let calls = clerk.api.verify_calls();
    let since = std::time::Instant::now();
    let delivered = a.deliver(&common::user_deleted_event(&user)).await;
    assert_eq!(delivered.0, StatusCode::OK, "{delivered:?}");
    for token in [&key, &oauth] {
        b.refused(token, "user_deleted", since, PROPAGATION_LIMIT)
            .await;
    }
    assert_eq!(clerk.api.verify_calls(), calls, "refused from memory");
}
