//! Tokens of any OpenID Connect issuer through the layer, against a real
//! OpenID Provider on loopback (npm's `oidc-provider`, see
//! `tests/common/oidc_provider.rs`): discovery, every algorithm, key
//! rotation, several issuers beside Clerk, what must be refused, a herd of
//! first requests, the claims, and a deletion reaching a second instance,
//! on both stores.

mod common;

use std::time::{Duration, Instant};

use axum::{Json, Router, body::Body, routing::get};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use common::{
    Backend, JwksServer, Store,
    instances::{Deployment, PROPAGATION_LIMIT},
    oidc_provider::{ALGORITHMS, Mint, OidcProvider, decode_jwt},
    on_both_stores, read,
};
use ensure_user::{
    Config, EnsureUserLayer, LocalUser,
    oidc::{Issuer, Lifecycle, user_key},
    store::Profile,
    testing::{SigningKey, random_id},
};
use http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The API the tokens are issued for.
const API: &str = "https://api.example.test";

/// `GET /me`: the row, the issuer and subject, and a namespaced claim.
fn app(layer: EnsureUserLayer) -> Router {
    Router::new()
        .route(
            "/me",
            get(|user: LocalUser| async move {
                #[derive(serde::Deserialize, Default)]
                struct Roles {
                    #[serde(rename = "https://example.test/roles", default)]
                    roles: Vec<String>,
                }
                let roles = user
                    .oidc_claims()
                    .map(|claims| claims.extra::<Roles>().unwrap_or_default().roles);
                Json(json!({
                    "id": user.id(),
                    "issuer": user.issuer(),
                    "subject": user.subject(),
                    "clerk_id": user.clerk_id(),
                    "roles": roles,
                    "scopes": user.principal().scopes(),
                }))
            }),
        )
        .layer(layer)
}

async fn me(app: &Router, token: &str) -> (StatusCode, Value) {
    let request = Request::get("/me")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    read(app.clone().oneshot(request).await.unwrap()).await
}

/// The refusal code of `token`, with its status.
async fn refusal(app: &Router, token: &str) -> (StatusCode, String) {
    let (status, body) = me(app, token).await;
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

/// The generic issuer of `provider`, for [`API`].
fn issuer_of(provider: &OidcProvider) -> Issuer {
    Issuer::new(provider.issuer()).with_audience(API)
}

/// `claims` signed by `key` with an RFC 9068 header (`typ: at+jwt`).
fn access_token_of(key: &SigningKey, claims: &Value) -> String {
    let header = json!({ "alg": "RS256", "typ": "at+jwt", "kid": key.kid() });
    key.sign_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn layer_on(store: &Store, config: Config) -> EnsureUserLayer {
    EnsureUserLayer::new(config, store.clone())
}

async fn every_algorithm_through_discovery_gives_one_row(backend: Backend) {
    let provider = OidcProvider::start().await;
    let store = Store::new(backend).await;
    let config = Config::for_issuers([issuer_of(&provider)]).unwrap();
    let app = app(layer_on(&store, config));
    for alg in ALGORITHMS {
        let subject = random_id("person");
        let token = provider
            .access_token(&Mint::new(&subject, API).alg(alg))
            .await;
        assert_eq!(decode_jwt(&token).0["alg"], alg);
        let (status, first) = me(&app, &token).await;
        assert_eq!(status, StatusCode::OK, "{alg}: {first}");
        assert_eq!(first["issuer"], provider.issuer(), "{alg}");
        assert_eq!(first["subject"], subject.as_str(), "{alg}");
        assert_eq!(first["clerk_id"], "", "{alg}");
        // The same token again, and another of the same person: one row.
        assert_eq!(me(&app, &token).await.1["id"], first["id"], "{alg}");
        let again = provider.access_token(&Mint::new(&subject, API)).await;
        assert_eq!(me(&app, &again).await.1["id"], first["id"], "{alg}");
        assert_eq!(
            store.rows_of(&user_key(provider.issuer(), &subject)).await,
            1,
            "{alg}"
        );
    }
}

async fn a_herd_of_first_requests_makes_one_row(backend: Backend) {
    let provider = OidcProvider::start().await;
    let store = Store::new(backend).await;
    let config = Config::for_issuers([issuer_of(&provider)]).unwrap();
    let app = app(layer_on(&store, config));
    let subject = random_id("person");
    let mut tokens = Vec::new();
    for alg in ALGORITHMS.iter().cycle().take(16) {
        tokens.push(
            provider
                .access_token(&Mint::new(&subject, API).alg(alg))
                .await,
        );
    }
    let requests = tokens.iter().map(|token| {
        let app = app.clone();
        let token = token.clone();
        tokio::spawn(async move { me(&app, &token).await })
    });
    let mut ids = Vec::new();
    for request in requests {
        let (status, body) = request.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        ids.push(body["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one id for everyone: {ids:?}");
    assert_eq!(
        store.rows_of(&user_key(provider.issuer(), &subject)).await,
        1
    );
}

async fn a_deletion_through_the_lifecycle_reaches_every_instance(backend: Backend) {
    let provider = OidcProvider::start().await;
    let deployment = Deployment::new(backend).await;
    let issuer = issuer_of(&provider);
    let config = deployment.config().with_issuer(issuer.clone()).unwrap();
    let a = deployment.instance().config(config.clone()).start().await;
    let b = deployment.instance().config(config).start().await;
    deployment
        .listening(&[&a, &b], Duration::from_secs(5))
        .await;
    let (deleted, banned, signed_out) = (
        random_id("person"),
        random_id("person"),
        random_id("person"),
    );
    let deleted_token = provider.access_token(&Mint::new(&deleted, API)).await;
    let banned_token = provider.access_token(&Mint::new(&banned, API)).await;
    let ended_token = provider.access_token(&Mint::new(&signed_out, API)).await;
    let kept_token = provider.access_token(&Mint::new(&signed_out, API)).await;
    for token in [&deleted_token, &banned_token, &ended_token, &kept_token] {
        for instance in [&a, &b] {
            let served = instance.me(token).await;
            assert_eq!(served.0, StatusCode::OK, "{served:?}");
        }
    }
    let lifecycle = Lifecycle::new(deployment.db.clone(), a.layer.evictor());
    let since = Instant::now();
    lifecycle
        .delete(&issuer, &deleted, now_s() * 1000)
        .await
        .unwrap();
    lifecycle
        .ban(&issuer, &banned, &Profile::default(), true, now_s() * 1000)
        .await
        .unwrap();
    // One token's session (here its `jti`, as the provider sets no `sid`).
    let jti = decode_jwt(&ended_token).1["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    lifecycle
        .end_session(&issuer, &signed_out, &jti)
        .await
        .unwrap();
    // The instance that applied them refuses at once; the other, on
    // PostgreSQL, once it hears (on SQLite, when its cached answers are
    // read again: there is nothing to hear).
    assert_eq!(a.me(&deleted_token).await.1, "user_deleted");
    assert_eq!(a.me(&banned_token).await.1, "user_banned");
    assert_eq!(a.me(&ended_token).await.1, "session_ended");
    assert_eq!(a.me(&kept_token).await.0, StatusCode::OK, "another session");
    if backend == Backend::Postgres {
        b.refused(&ended_token, "session_ended", since, PROPAGATION_LIMIT)
            .await;
        b.refused(&deleted_token, "user_deleted", since, PROPAGATION_LIMIT)
            .await;
        b.refused(&banned_token, "user_banned", since, PROPAGATION_LIMIT)
            .await;
    }
    // A new token of the deleted person is refused too: the tombstone (on
    // SQLite, the other instance serves its cached answer until it expires).
    let fresh = provider.access_token(&Mint::new(&deleted, API)).await;
    let instances = match backend {
        Backend::Postgres => vec![&a, &b],
        Backend::Sqlite => vec![&a],
    };
    for instance in instances {
        assert_eq!(instance.me(&fresh).await.1, "user_deleted");
    }
    assert_eq!(
        deployment
            .db
            .rows_of(&user_key(provider.issuer(), &deleted))
            .await,
        0
    );
}

on_both_stores!(
    every_algorithm_through_discovery_gives_one_row,
    a_deletion_through_the_lifecycle_reaches_every_instance
);
on_both_stores!(worker_threads = 4; a_herd_of_first_requests_makes_one_row);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_issuers_beside_clerk_key_the_same_subject_apart() {
    let (one, other) = tokio::join!(OidcProvider::start(), OidcProvider::start());
    let clerk = SigningKey::generate("ins_oidc");
    let jwks = JwksServer::start(&[&clerk]).await;
    let store = Store::new(Backend::Sqlite).await;
    let config = jwks
        .config()
        .with_issuer(issuer_of(&one))
        .unwrap()
        .with_issuer(issuer_of(&other))
        .unwrap();
    let app = app(layer_on(&store, config));
    let subject = "the-same-subject";
    let at_one = me(&app, &one.access_token(&Mint::new(subject, API)).await).await;
    let at_other = me(&app, &other.access_token(&Mint::new(subject, API)).await).await;
    let clerk_user = random_id("user");
    let at_clerk = me(&app, &clerk.session_token(common::ISSUER, &clerk_user, 600)).await;
    for (status, body) in [&at_one, &at_other, &at_clerk] {
        assert_eq!(*status, StatusCode::OK, "{body}");
    }
    assert_eq!(at_one.1["issuer"], one.issuer());
    assert_eq!(at_other.1["issuer"], other.issuer());
    assert_eq!(at_clerk.1["clerk_id"], clerk_user.as_str());
    assert_eq!(at_clerk.1["issuer"], Value::Null);
    let ids = [&at_one.1["id"], &at_other.1["id"], &at_clerk.1["id"]];
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "three people: {ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_issuer_type_and_key_confusion_are_refused() {
    let (provider, stranger) = tokio::join!(OidcProvider::start(), OidcProvider::start());
    let store = Store::new(Backend::Sqlite).await;
    let config = Config::for_issuers([issuer_of(&provider)]).unwrap();
    let app = app(layer_on(&store, config));
    let subject = random_id("person");
    let unauthorized = |code: &str| (StatusCode::UNAUTHORIZED, code.to_owned());

    let other_api = provider
        .access_token(&Mint::new(&subject, "https://other.example.test"))
        .await;
    assert_eq!(
        refusal(&app, &other_api).await,
        unauthorized("invalid_audience")
    );
    let id_token = provider.id_token(&subject, API, "RS256").await;
    assert_eq!(
        refusal(&app, &id_token).await,
        unauthorized("token_type_mismatch")
    );
    let not_configured = stranger.access_token(&Mint::new(&subject, API)).await;
    assert_eq!(
        refusal(&app, &not_configured).await,
        unauthorized("invalid_issuer")
    );
    let clerk = SigningKey::generate("ins_oidc").session_token(common::ISSUER, "user_1", 600);
    assert_eq!(refusal(&app, &clerk).await, unauthorized("invalid_issuer"));
    assert_eq!(
        refusal(&app, "ak_123").await,
        unauthorized("token_type_mismatch")
    );

    // A token claiming the provider, signed by another key under one of
    // the provider's kids: the provider's key does not verify it.
    let genuine = provider.access_token(&Mint::new(&subject, API)).await;
    let (header, claims) = decode_jwt(&genuine);
    let kid = header["kid"].as_str().unwrap();
    let forged = access_token_of(&SigningKey::generate(kid), &claims);
    assert_eq!(
        refusal(&app, &forged).await,
        unauthorized("invalid_signature")
    );
    // The stranger's token relabelled as the provider's: its kid is not
    // the provider's, and the stranger's keys are never asked.
    let (stranger_header, _) = decode_jwt(&not_configured);
    let relabelled = access_token_of(
        &SigningKey::generate(stranger_header["kid"].as_str().unwrap()),
        &claims,
    );
    assert_eq!(
        refusal(&app, &relabelled).await,
        unauthorized("unknown_key")
    );
    // `none` and a shared secret are never algorithms of an issuer.
    for alg in ["none", "HS256"] {
        let header =
            URL_SAFE_NO_PAD.encode(json!({ "alg": alg, "typ": "at+jwt", "kid": kid }).to_string());
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let token = format!("{header}.{payload}.c2lnbmF0dXJl");
        assert_eq!(
            refusal(&app, &token).await,
            unauthorized("unsupported_algorithm"),
            "{alg}"
        );
    }
    // A token longer than the layer accepts is not read for its issuer.
    let padded = json!({ "iss": provider.issuer(), "pad": "x".repeat(64 * 1024) });
    let huge = format!(
        "{}.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(json!({ "alg": "RS256", "typ": "at+jwt" }).to_string()),
        URL_SAFE_NO_PAD.encode(padded.to_string())
    );
    assert_eq!(refusal(&app, &huge).await, unauthorized("malformed_token"));
    // The genuine token is served.
    assert_eq!(me(&app, &genuine).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_keys_are_fetched_and_retired_ones_refused() {
    let provider = OidcProvider::start().await;
    let store = Store::new(Backend::Sqlite).await;
    let config = Config::for_issuers([issuer_of(&provider)])
        .unwrap()
        .with_key_refetch_cooldown(Duration::ZERO);
    let app = app(layer_on(&store, config));
    let subject = random_id("person");
    let served = provider.access_token(&Mint::new(&subject, API)).await;
    let unused = provider.access_token(&Mint::new(&subject, API)).await;
    assert_eq!(me(&app, &served).await.0, StatusCode::OK);
    let kids = provider.rotate(false).await;
    let rotated = provider.access_token(&Mint::new(&subject, API)).await;
    assert!(kids.contains(&decode_jwt(&rotated).0["kid"].as_str().unwrap().to_owned()));
    let (status, body) = me(&app, &rotated).await;
    assert_eq!(status, StatusCode::OK, "a new kid is fetched: {body}");
    assert_eq!(
        refusal(&app, &unused).await,
        (StatusCode::UNAUTHORIZED, "unknown_key".to_owned()),
        "a key no longer published verifies nothing new"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_document_naming_another_issuer_is_refused() {
    let provider = OidcProvider::start_with_issuer_override("https://elsewhere.example.test").await;
    let store = Store::new(Backend::Sqlite).await;
    // Configured as where it serves, while it calls itself otherwise.
    let config = Config::for_issuers([issuer_of(&provider)]).unwrap();
    let layer = layer_on(&store, config);
    let app = app(layer.clone());
    let claims = json!({
        "iss": provider.issuer(), "sub": "someone", "aud": API,
        "exp": now_s() + 600, "iat": now_s(),
    });
    let token = access_token_of(&SigningKey::generate("k"), &claims);
    assert_eq!(
        refusal(&app, &token).await,
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "verification_misconfigured".to_owned()
        )
    );
    assert!(!layer.readiness().await.is_ready());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_scopes_and_profile_come_from_the_token() {
    let provider = OidcProvider::start().await;
    let store = Store::new(Backend::Sqlite).await;
    let config = Config::for_issuers([issuer_of(&provider)]).unwrap();
    let layer = layer_on(&store, config);
    assert!(layer.readiness().await.keys_held >= ALGORITHMS.len());
    let app = app(layer);
    let subject = random_id("person");
    let token = provider
        .access_token(
            &Mint::new(&subject, API)
                .scope("openid reports:read")
                .claim("https://example.test/roles", json!(["admin"]))
                .claim("email", "ada@example.test")
                .claim("given_name", "Ada"),
        )
        .await;
    let (status, body) = me(&app, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["roles"], json!(["admin"]));
    assert_eq!(body["scopes"], json!(["openid", "reports:read"]));
    let profile = store
        .profile(&user_key(provider.issuer(), &subject))
        .await
        .expect("a row");
    assert_eq!(profile.0.as_deref(), Some("ada@example.test"));
    assert_eq!(profile.1.as_deref(), Some("Ada"));
}
