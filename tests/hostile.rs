//! Hostile tokens and headers: each is refused with its code, nothing reaches
//! the store, nothing panics; and random mutations of a valid token never pass.

mod common;

use std::time::Duration;

use aws_lc_rs::hmac;
use axum::{Router, body::Body};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use common::{app::app, *};
use ensure_user::{
    Config, EnsureUserLayer, KeySource,
    testing::{SigningKey, random_id, session_claims},
};
use http::{HeaderValue, Request, StatusCode};
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

on_both_stores!(hostile_claim_values_are_stored_verbatim);

fn unsigned(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

#[tokio::test]
async fn hostile_catalogue() {
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let store = CountingStore::new(sqlite_store().await);
    let app = app(EnsureUserLayer::new(
        jwks.config()
            .with_key_refetch_cooldown(Duration::from_secs(60)),
        store.clone(),
    ));
    let claims = session_claims(ISSUER, &random_id("user"), 60);
    let valid = key.sign(&claims);

    // Algorithm confusion: HS256 keyed with the public key's PEM text.
    let confusion = {
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": "ins_test"});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mac = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, key.public_key_pem().as_bytes()),
            input.as_bytes(),
        );
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()))
    };
    let with_alg = |alg: &str| {
        key.sign_raw(
            json!({"alg": alg, "typ": "JWT", "kid": "ins_test"})
                .to_string()
                .as_bytes(),
            claims.to_string().as_bytes(),
        )
    };
    let mut truncated = valid.clone();
    truncated.truncate(valid.len() - 10);
    let (head, rest) = valid.split_once('.').unwrap();

    let tokens: Vec<(&str, String, &str)> = vec![
        (
            "alg none, empty signature",
            format!(
                "{}.",
                unsigned(&json!({"alg":"none"}), &claims, b"").trim_end_matches('.')
            ),
            "malformed_token",
        ),
        (
            "alg none with a signature",
            unsigned(&json!({"alg":"none","kid":"ins_test"}), &claims, b"sig"),
            "unsupported_algorithm",
        ),
        (
            "HS256 keyed with the public key",
            confusion,
            "unsupported_algorithm",
        ),
        ("RS384", with_alg("RS384"), "unsupported_algorithm"),
        ("PS256", with_alg("PS256"), "unsupported_algorithm"),
        ("ES256", with_alg("ES256"), "unsupported_algorithm"),
        (
            "absurd kid",
            key.sign_raw(
                json!({"alg":"RS256","kid":"k".repeat(4000)})
                    .to_string()
                    .as_bytes(),
                claims.to_string().as_bytes(),
            ),
            "unknown_key",
        ),
        (
            "kid of the wrong type",
            key.sign_raw(
                br#"{"alg":"RS256","kid":42}"#,
                claims.to_string().as_bytes(),
            ),
            "malformed_token",
        ),
        ("truncated", truncated, "invalid_signature"),
        (
            "doubled dots",
            valid.replacen('.', "..", 1),
            "malformed_token",
        ),
        ("four segments", format!("{valid}.x"), "malformed_token"),
        (
            "padded base64",
            format!("{head}=.{rest}"),
            "malformed_token",
        ),
        (
            "signature in the standard base64 alphabet",
            {
                let (input, signature) = valid.rsplit_once('.').unwrap();
                format!("{input}.{}", signature.replace('-', "+").replace('_', "/"))
            },
            "malformed_token",
        ),
        ("one megabyte", "a".repeat(1024 * 1024), "malformed_token"),
        (
            "header not JSON",
            format!("{}.{rest}", URL_SAFE_NO_PAD.encode("not json")),
            "malformed_token",
        ),
        (
            "payload claims of the wrong type",
            key.sign(&json!({"sub": 5, "sid": "sess_1", "exp": "soon", "iss": ISSUER})),
            "malformed_token",
        ),
        (
            "subject with a NUL",
            key.sign(&{
                let mut c = claims.clone();
                c["sub"] = json!("user_a\u{0}b");
                c
            }),
            "not_a_session_token",
        ),
        (
            "subject with spaces",
            key.sign(&{
                let mut c = claims.clone();
                c["sub"] = json!("user_a; DROP TABLE users");
                c
            }),
            "not_a_session_token",
        ),
        (
            "bare user_ subject",
            key.sign(&{
                let mut c = claims.clone();
                c["sub"] = json!("user_");
                c
            }),
            "not_a_session_token",
        ),
    ];
    for (name, token, code) in tokens {
        let (status, body) = read(app.clone().oneshot(bearer(&token)).await.unwrap()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some(code)),
            "{name}"
        );
    }

    let mut many_cookies: String = (0..200).map(|i| format!("c{i}=v; ")).collect();
    many_cookies.push_str(&format!("__session={valid}"));
    let mut non_utf8 = Request::get("/me").body(Body::empty()).unwrap();
    non_utf8.headers_mut().insert(
        "authorization",
        HeaderValue::from_bytes(b"Bearer \xc3\x28\xa0\xa1").unwrap(),
    );
    let requests: Vec<(&str, Request<Body>, &str)> = vec![
        (
            "two Authorization headers",
            Request::get("/me")
                .header("authorization", format!("Bearer {valid}"))
                .header("authorization", format!("Bearer {valid}"))
                .body(Body::empty())
                .unwrap(),
            "malformed_token",
        ),
        (
            "a space inside the token",
            Request::get("/me")
                .header(
                    "authorization",
                    format!("Bearer {} {}", &valid[..20], &valid[20..]),
                )
                .body(Body::empty())
                .unwrap(),
            "malformed_token",
        ),
        (
            "Basic scheme, no cookie",
            Request::get("/me")
                .header("authorization", "Basic dXNlcjpwYXNz")
                .body(Body::empty())
                .unwrap(),
            "missing_token",
        ),
        (
            "Bearer scheme with no token",
            Request::get("/me")
                .header("authorization", "Bearer ")
                .header("cookie", format!("__session={valid}"))
                .body(Body::empty())
                .unwrap(),
            "malformed_token",
        ),
        ("non-UTF-8 header bytes", non_utf8, "malformed_token"),
        (
            "200 cookies, session past the cap",
            Request::get("/me")
                .header("cookie", many_cookies)
                .body(Body::empty())
                .unwrap(),
            "missing_token",
        ),
        (
            "token in the query string",
            Request::get(format!("/me?token={valid}&__session={valid}"))
                .body(Body::empty())
                .unwrap(),
            "missing_token",
        ),
    ];
    for (name, request, code) in requests {
        let (status, body) = read(app.clone().oneshot(request).await.unwrap()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some(code)),
            "{name}"
        );
    }

    assert_eq!(store.calls(), 0, "no hostile input may reach the store");
    assert!(
        jwks.fetches() <= 1,
        "unknown kids fetched {} times",
        jwks.fetches()
    );
    let (status, _) = read(app.clone().oneshot(bearer(&valid)).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "the control token passes");
}

/// Correctly signed tokens whose times are absurd (at the ends of the
/// 64-bit range, or past what milliseconds can hold) are refused with the
/// code of the check they fail, and nothing overflows: a debug build would
/// panic, a release build would wrap and let a forever-lived token through.
#[tokio::test]
async fn signed_tokens_with_extreme_times_are_refused_without_overflow() {
    let fixture = common::app::Fixture::new().await;
    let store = CountingStore::new(sqlite_store().await);
    let app = app(EnsureUserLayer::new(fixture.jwks.config(), store.clone()));
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    /// A case's name, the claims it sets, and the code it is refused with.
    type Case<'a> = (&'a str, &'a [(&'a str, i64)], &'a str);
    let cases: [Case; 9] = [
        (
            "iat at i64::MIN",
            &[("iat", i64::MIN)],
            "token_lifetime_exceeded",
        ),
        (
            "iat far in the past",
            &[("iat", -(1 << 60))],
            "token_lifetime_exceeded",
        ),
        (
            "iat one second past the ms range",
            &[("iat", i64::MIN / 1000 - 1)],
            "token_lifetime_exceeded",
        ),
        (
            "exp at i64::MAX",
            &[("exp", i64::MAX)],
            "token_lifetime_exceeded",
        ),
        (
            "exp at i64::MAX, iat at i64::MIN",
            &[("exp", i64::MAX), ("iat", i64::MIN)],
            "token_lifetime_exceeded",
        ),
        ("exp at i64::MIN", &[("exp", i64::MIN)], "token_expired"),
        (
            "nbf at i64::MAX",
            &[("nbf", i64::MAX)],
            "token_not_yet_valid",
        ),
        (
            "iat at i64::MAX",
            &[("iat", i64::MAX)],
            "token_issued_in_future",
        ),
        (
            "nbf at i64::MIN",
            &[("nbf", i64::MIN), ("iat", now), ("exp", now + 60)],
            "",
        ),
    ];
    for (case, times, code) in cases {
        let mut claims = fixture.claims(&random_id("user"));
        for (claim, value) in times {
            claims[*claim] = json!(value);
        }
        let (status, error, _) = common::app::status_and_code(&app, &fixture.token(&claims)).await;
        let expected = if code.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!((status, error.as_str()), (expected, code), "{case}");
    }
    assert_eq!(store.calls(), 1, "only the valid token reaches the store");
}

async fn hostile_claim_values_are_stored_verbatim(backend: Backend) {
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let store = Store::new(backend).await;
    let app = app(EnsureUserLayer::new(jwks.config(), store.clone()));
    let user = "user_x'\"--;/**/";
    let mut claims = session_claims(ISSUER, user, 60);
    claims["first_name"] = json!("Robert'); DROP TABLE users; --");
    claims["last_name"] = json!("\"quoted\" \\ back\\slash");
    claims["email"] = json!("nul\u{0}byte@example.com");
    let (status, body) = read(
        app.clone()
            .oneshot(bearer(&key.sign(&claims)))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["clerk_id"], user);
    let (clerk_id, email, first, last, ..) = store.rows().await.remove(0);
    assert_eq!(clerk_id, user);
    assert_eq!(first.as_deref(), Some("Robert'); DROP TABLE users; --"));
    assert_eq!(last.as_deref(), Some("\"quoted\" \\ back\\slash"));
    assert_eq!(email, None, "a value PostgreSQL cannot store is left out");
}

/// One runtime, key and app for every property case (a pool is tied to its runtime).
struct PropFixture {
    runtime: tokio::runtime::Runtime,
    app: Router,
    token: String,
}

static PROP: std::sync::LazyLock<PropFixture> = std::sync::LazyLock::new(|| {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let key = SigningKey::generate("ins_prop");
    let config = Config::new(ISSUER, KeySource::pem(&key.public_key_pem()).unwrap());
    let store = runtime.block_on(sqlite_store());
    PropFixture {
        app: app(EnsureUserLayer::new(config, store)),
        token: key.session_token(ISSUER, "user_prop", 3600),
        runtime,
    }
});

fn status_of(request: Request<Body>) -> StatusCode {
    PROP.runtime
        .block_on(PROP.app.clone().oneshot(request))
        .unwrap()
        .status()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any byte-level change to a valid token is refused, and nothing panics.
    #[test]
    fn mutated_tokens_are_refused(position in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = PROP.token.clone().into_bytes();
        let at = position.index(bytes.len());
        prop_assume!(bytes[at] != byte);
        bytes[at] = byte;
        let mut value = b"Bearer ".to_vec();
        value.extend_from_slice(&bytes);
        // Bytes http cannot carry in a header never reach the layer.
        if let Ok(value) = HeaderValue::from_bytes(&value) {
            let mut request = Request::get("/me").body(Body::empty()).unwrap();
            request.headers_mut().insert("authorization", value);
            prop_assert_eq!(status_of(request), StatusCode::UNAUTHORIZED);
        }
    }

    /// Random header values never panic the token search, and never authenticate.
    #[test]
    fn random_headers_never_panic(
        authorization in prop::collection::vec(any::<u8>(), 0..300),
        cookie in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut request = Request::get("/me").body(Body::empty()).unwrap();
        if let Ok(value) = HeaderValue::from_bytes(&authorization) {
            request.headers_mut().insert("authorization", value);
        }
        if let Ok(value) = HeaderValue::from_bytes(&cookie) {
            request.headers_mut().insert("cookie", value);
        }
        prop_assert_eq!(status_of(request), StatusCode::UNAUTHORIZED);
    }
}
