//! Requests through the layer end to end, with real keys served over HTTP
//! and a real store: which tokens pass and which are refused with which
//! code, where a token is read from, the optional mode, the extractor
//! without the layer, and the token size and cookie count limits to the
//! byte and the cookie.

mod common;

use std::time::Duration;

use axum::{Router, body::Body, routing::get};
use common::{app::*, *};
use ensure_user::{
    EnsureUserLayer, LocalUser, Mode,
    testing::{SigningKey, random_id, session_claims},
};
use http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

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
            "OAuth access token, not accepted by default",
            header(json!({"alg":"RS256","typ":"at+jwt","kid":"ins_test"})),
            "token_type_mismatch",
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
            "machine token, not accepted by default",
            f.token(&with(&|c| c["sub"] = json!("mch_123"))),
            "token_type_mismatch",
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
            // Issued at `now`, whenever the claims are made: on a loaded
            // machine a second may pass between two calls of `base`.
            f.token(&with(&|c| {
                c["iat"] = json!(now);
                c["exp"] = json!(now + 3601);
            })),
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

/// Organizations configured on a layer that was already cloned, and whose
/// evictor was already handed out (to a webhook receiver, a listener): the
/// copy gets caches of its own, and still every evictor reaches them. A
/// session ended, a ban and a deletion are refused on the copy and on the
/// clone, whichever layer's evictor carried them.
#[tokio::test]
async fn a_layer_configured_after_cloning_is_reached_by_every_evictor() {
    let f = Fixture::new().await;
    let store = sqlite_store().await;
    let layer = EnsureUserLayer::new(f.jwks.config(), store.clone());
    // As a webhook receiver and a listener would hold it.
    let handed_out = layer.evictor();
    let clone = layer.clone();
    let copy = layer.with_organizations(store.clone());
    let copy_evictor = copy.evictor();
    let (clone, copy) = (app(clone), app(copy));

    let tokens: Vec<String> = (0..6)
        .map(|_| f.token(&f.claims(&random_id("user"))))
        .collect();
    for token in &tokens {
        for app in [&clone, &copy] {
            assert_eq!(status_and_code(app, token).await.0, StatusCode::OK);
        }
    }
    let claims = |token: &str| -> Value {
        let payload = token.split('.').nth(1).unwrap();
        let bytes =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
                .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let parts = |token: &str| {
        let claims = claims(token);
        (
            claims["sub"].as_str().unwrap().to_owned(),
            claims["sid"].as_str().unwrap().to_owned(),
        )
    };

    for (index, evictor) in [&handed_out, &copy_evictor].into_iter().enumerate() {
        let [ended, banned, deleted] = [0, 1, 2].map(|n| &tokens[index * 3 + n]);
        evictor.end_session(&parts(ended).1).await;
        evictor.block_user(&parts(banned).0, true, 1).await;
        ensure_user::store::UserSync::delete_user(&store, &parts(deleted).0, 1)
            .await
            .unwrap();
        evictor.forget_user(&parts(deleted).0).await;
        for (app, which) in [(&clone, "the clone"), (&copy, "the copy")] {
            let case = format!("{which}, evictor {index}");
            assert_eq!(
                status_and_code(app, ended).await.1,
                "session_ended",
                "{case}"
            );
            assert_eq!(
                status_and_code(app, banned).await.1,
                "user_banned",
                "{case}"
            );
            assert_eq!(
                status_and_code(app, deleted).await.1,
                "user_deleted",
                "{case}"
            );
        }
    }
}

/// Base64url without padding: the length of `bytes` bytes once encoded.
fn encoded_len(bytes: usize) -> usize {
    (bytes * 4).div_ceil(3)
}

/// A key (one of a few, whose `kid`s differ in length) and a token it
/// signed for `user` that is exactly `length` bytes long: the claims are
/// padded to reach it.
fn token_of_length(user: &str, length: usize) -> (SigningKey, String) {
    for kid in ["ins_a", "ins_ab", "ins_abc", "ins_abcd"] {
        let key = SigningKey::generate(kid);
        let claims = session_claims(ISSUER, user, 60);
        let bare = key.sign(&claims);
        let payload = claims.to_string().len() + r#","pad":"""#.len();
        let others = bare.len() - encoded_len(claims.to_string().len());
        let Some(pad) = (0..length).find(|pad| others + encoded_len(payload + pad) == length)
        else {
            continue;
        };
        let mut padded = claims;
        padded["pad"] = json!("x".repeat(pad));
        let token = key.sign(&padded);
        assert_eq!(token.len(), length);
        return (key, token);
    }
    panic!("no token of {length} bytes");
}

/// `with_max_token_bytes`: a token exactly at the limit is verified, one
/// byte longer is refused `malformed_token` (and never reaches the store);
/// so at the default limit, 8 KiB.
#[tokio::test]
async fn token_size_limit_is_exact() {
    for (limit, configured) in [(1000, true), (8 * 1024, false)] {
        let user = random_id("user");
        let (at_key, at) = token_of_length(&user, limit);
        let (over_key, over) = token_of_length(&user, limit + 1);
        let jwks = JwksServer::start(&[&at_key, &over_key]).await;
        let config = if configured {
            jwks.config().with_max_token_bytes(limit)
        } else {
            jwks.config()
        };
        let store = CountingStore::new(sqlite_store().await);
        let app = app(EnsureUserLayer::new(config, store.clone()));
        let (status, body) = call(&app, bearer(&over)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("malformed_token")),
            "{} bytes, limit {limit}",
            over.len()
        );
        assert_eq!(store.calls(), 0);
        let (status, body) = call(&app, bearer(&at)).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{} bytes, limit {limit}: {body}",
            at.len()
        );
    }
}

/// `with_max_cookies`: a session cookie that is the last of exactly the
/// maximum number of cookies is read; one cookie more and it is not looked
/// at (`missing_token`). So at the default of 64.
#[tokio::test]
async fn cookie_count_limit_is_exact() {
    let f = Fixture::new().await;
    let token = f.token(&f.claims(&random_id("user")));
    for (max, configured) in [(5, true), (64, false)] {
        let config = if configured {
            f.jwks.config().with_max_cookies(max)
        } else {
            f.jwks.config()
        };
        let app = app(EnsureUserLayer::new(config, sqlite_store().await));
        let with_cookies = |others: usize| {
            // Split over two headers, as a client may send them.
            let first: Vec<String> = (0..others / 2).map(|i| format!("c{i}=v")).collect();
            let mut second: Vec<String> = (others / 2..others).map(|i| format!("c{i}=v")).collect();
            second.push(format!("__session={token}"));
            Request::get("/me")
                .header("cookie", first.join("; "))
                .header("cookie", second.join("; "))
                .body(Body::empty())
                .unwrap()
        };
        let (status, body) = call(&app, with_cookies(max - 1)).await;
        assert_eq!(status, StatusCode::OK, "{max} cookies: {body}");
        let (status, body) = call(&app, with_cookies(max)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("missing_token")),
            "{} cookies",
            max + 1
        );
    }
}

/// A handler returning `Err(Rejection)` answers as the layer refuses: the
/// status, the code, the challenge, and no library text.
#[tokio::test]
async fn a_rejection_returned_by_a_handler_is_the_layers_response() {
    let f = Fixture::new().await;
    let app = Router::new()
        .route(
            "/refuse",
            get(|_: LocalUser| async { Err::<(), _>(ensure_user::Rejection::UserBanned) }),
        )
        .layer(EnsureUserLayer::new(f.jwks.config(), sqlite_store().await));
    let mut request = bearer(&f.token(&f.claims(&random_id("user"))));
    *request.uri_mut() = "/refuse".parse().unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert!(
        response
            .headers()
            .get("www-authenticate")
            .is_some_and(|value| value.to_str().unwrap().contains("invalid_token")),
        "{:?}",
        response.headers()
    );
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "user_banned");
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["error", "message"]);
}
