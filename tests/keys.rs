//! Signing keys, end to end with a JWKS endpoint on loopback: a rotated key
//! is fetched once; held keys outlive an endpoint outage and unknown ones
//! are a bounded `503`; floods of unknown kids and failing refreshes fetch
//! at most once per cooldown; a hostile endpoint never yields keys; a PEM
//! needs no network.

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::Router;
use common::{app::*, *};
use ensure_user::{
    Config, EnsureUserLayer, KeySource,
    testing::{SigningKey, random_id, session_claims},
};
use http::StatusCode;
use serde_json::json;
use tower::ServiceExt;

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

/// A flood of tokens with unknown `kid`s when the cooldown allows a fetch:
/// the first token starts it, the others wait behind it (held until every
/// one of them is waiting), and none fetches again, then or within the
/// cooldown that follows.
///
/// On this single-threaded runtime, a spawned request runs as soon as the
/// test waits, up to the key store's fetch lock, with nothing to wait for
/// on its way there; the held fetch arrives at the endpoint only after
/// every request spawned before it ran that far.
#[tokio::test]
async fn unknown_kid_flood_fetches_once_per_cooldown() {
    const FLOOD: usize = 100;
    let f = Fixture::new().await;
    let config = f
        .jwks
        .config()
        .with_key_refetch_cooldown(Duration::from_secs(60));
    let app = app(EnsureUserLayer::new(config, sqlite_store().await));
    let user = random_id("user");
    let unknown = |i: usize| {
        let key_header = json!({"alg":"RS256","typ":"JWT","kid":format!("ins_random{i}")});
        f.key.sign_raw(
            key_header.to_string().as_bytes(),
            f.claims(&user).to_string().as_bytes(),
        )
    };
    let flood = |from: usize| -> Vec<_> {
        (from..from + FLOOD)
            .map(|i| {
                let (app, token) = (app.clone(), unknown(i));
                tokio::spawn(async move { call(&app, bearer(&token)).await })
            })
            .collect()
    };

    // No fetch yet: the window is open.
    let hold = f.jwks.hold();
    let first = flood(0);
    f.jwks.fetched(1).await;
    for _ in 0..FLOOD {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        f.jwks.fetches(),
        1,
        "the flood waits for the fetch in flight"
    );
    assert!(
        first.iter().all(|request| !request.is_finished()),
        "a request of the flood was answered before the fetch it needs"
    );
    hold.release();
    for request in first {
        assert_eq!(request.await.unwrap().1["error"], "unknown_key");
    }
    assert_eq!(f.jwks.fetches(), 1, "one fetch for the whole flood");

    // Within the cooldown: a second flood fetches nothing.
    for request in flood(FLOOD) {
        assert_eq!(request.await.unwrap().1["error"], "unknown_key");
    }
    assert_eq!(f.jwks.fetches(), 1, "no fetch within the cooldown");
    // The fetched key still serves.
    assert_eq!(
        call(&app, bearer(&f.token(&f.claims(&user)))).await.0,
        StatusCode::OK
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

#[tokio::test]
async fn slow_key_endpoint_is_a_bounded_503() {
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    jwks.reply_with(JwksReply::Slow(
        Duration::from_secs(30),
        SigningKey::jwks(&[&key]).to_string(),
    ));
    let config = jwks
        .config()
        .with_key_fetch_timeout(Duration::from_millis(500));
    let app = app(EnsureUserLayer::new(config, sqlite_store().await));
    let started = Instant::now();
    let (status, code, _) =
        status_and_code(&app, &key.session_token(ISSUER, &random_id("user"), 60)).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "keys_unavailable")
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn hostile_key_endpoints_never_yield_keys() {
    let key = SigningKey::generate("ins_test");
    let good = JwksServer::start(&[&key]).await;
    let huge = format!(
        r#"{{"keys":[{}],"padding":"{}"}}"#,
        key.jwk(),
        "x".repeat(2 * 1024 * 1024)
    );
    let hostile = [
        ("oversized body", JwksReply::Body(huge)),
        ("not JSON", JwksReply::Body("<html>hello</html>".into())),
        ("wrong JSON", JwksReply::Body(r#"{"keys":"nope"}"#.into())),
        (
            "no usable keys",
            JwksReply::Body(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#.into()),
        ),
        ("redirect to good keys", JwksReply::Redirect(good.url())),
    ];
    for (name, reply) in hostile {
        let jwks = JwksServer::start(&[&key]).await;
        jwks.reply_with(reply);
        let app = app(EnsureUserLayer::new(jwks.config(), sqlite_store().await));
        let (status, code, _) =
            status_and_code(&app, &key.session_token(ISSUER, &random_id("user"), 60)).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "keys_unavailable"),
            "{name}"
        );
        assert_eq!(good.fetches(), 0, "{name}: a redirect must not be followed");
    }
}

#[tokio::test]
async fn one_bad_key_among_good_ones_does_not_spoil_the_set() {
    let key = SigningKey::generate("ins_good");
    let jwks = JwksServer::start(&[&key]).await;
    let body = json!({"keys": [
        {"kty": "RSA", "kid": "ins_broken", "n": "%%%", "e": "AQAB"},
        {"kty": "EC", "kid": "ins_ec", "crv": "P-256", "x": "AA", "y": "AA"},
        key.jwk(),
    ]});
    jwks.reply_with(JwksReply::Body(body.to_string()));
    let app = app(EnsureUserLayer::new(jwks.config(), sqlite_store().await));
    let (status, _, _) =
        status_and_code(&app, &key.session_token(ISSUER, &random_id("user"), 60)).await;
    assert_eq!(status, StatusCode::OK);
}

/// Keys held, the key set due for a refresh on every request, and the
/// endpoint failing: a flood of tokens under the held `kid` with bad
/// signatures (never cached, so each one is verified) and a burst of
/// readiness probes start no more fetches than one per cooldown. Once the
/// endpoint answers again, the keys are refreshed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_refreshes_are_spaced_by_the_cooldown_then_recover() {
    const COOLDOWN: Duration = Duration::from_millis(300);
    const FLOOD: Duration = Duration::from_millis(1500);
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let config = jwks
        .config()
        .with_key_refresh_interval(Duration::from_millis(1))
        .with_key_refetch_cooldown(COOLDOWN);
    let layer = EnsureUserLayer::new(config, sqlite_store().await);
    let app = app(layer.clone());
    let user = random_id("user");
    let valid = key.session_token(ISSUER, &user, 60);
    assert_eq!(status_and_code(&app, &valid).await.0, StatusCode::OK);
    assert_eq!(jwks.fetches(), 1);

    jwks.fail_with(500);
    let forged = Arc::new(SigningKey::generate("ins_test").session_token(ISSUER, &user, 60));
    let started = Instant::now();
    let flood: Vec<_> = (0..4)
        .map(|_| {
            let (app, forged) = (app.clone(), forged.clone());
            tokio::spawn(async move {
                let mut requests = 0;
                while started.elapsed() < FLOOD {
                    let (status, code, _) = status_and_code(&app, &forged).await;
                    assert_eq!(
                        (status, code.as_str()),
                        (StatusCode::UNAUTHORIZED, "invalid_signature")
                    );
                    requests += 1;
                    // As a server does between requests read from sockets:
                    // no flooder keeps a worker thread to itself.
                    tokio::task::yield_now().await;
                }
                requests
            })
        })
        .collect();
    let probes: Vec<_> = (0..32)
        .map(|_| {
            let layer = layer.clone();
            tokio::spawn(async move { layer.readiness().await })
        })
        .collect();
    for probe in probes {
        assert_eq!(probe.await.unwrap().keys_held, 1);
    }
    let mut requests = 0;
    for flooder in flood {
        requests += flooder.await.unwrap();
    }
    let elapsed = started.elapsed();
    let fetches = jwks.fetches() - 1;
    let allowed = 1 + usize::try_from(elapsed.as_millis() / COOLDOWN.as_millis()).unwrap();
    assert!(
        (1..=allowed).contains(&fetches),
        "{fetches} fetches for {requests} requests in {elapsed:?}; one to {allowed} expected"
    );
    assert!(layer.readiness().await.key_endpoint_failing);

    // Back up: past the cooldown, the next token to verify refreshes the keys.
    jwks.serve(&[&key]);
    tokio::time::sleep(COOLDOWN).await;
    let before = jwks.fetches();
    let fresh = key.session_token(ISSUER, &user, 61);
    assert_eq!(status_and_code(&app, &fresh).await.0, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(5);
    while layer.readiness().await.key_endpoint_failing {
        assert!(Instant::now() < deadline, "the keys were not refreshed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(jwks.fetches() > before);
}

/// No keys held and an endpoint that fails, its answer held back:
/// readiness probes, a prefetch and a request that arrive during the fetch,
/// longer than the cooldown after it started, wait for it, and none of them
/// fetches again within the cooldown that follows its end.
///
/// As in the flood above, the single-threaded runtime runs each spawned
/// caller up to the fetch lock before the test goes on.
#[tokio::test]
async fn callers_during_a_failing_fetch_share_it() {
    const COOLDOWN: Duration = Duration::from_secs(2);
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    jwks.reply_with(JwksReply::Body("<html>down</html>".into()));
    let config = jwks
        .config()
        .with_key_refetch_cooldown(COOLDOWN)
        .with_key_fetch_timeout(Duration::from_secs(60));
    let layer = EnsureUserLayer::new(config, sqlite_store().await);
    let app = app(layer.clone());

    let hold = jwks.hold();
    let first = {
        let layer = layer.clone();
        tokio::spawn(async move { layer.readiness().await })
    };
    jwks.fetched(1).await;
    // The fetch is held: waiting longer than the cooldown is safe, and
    // the callers below come more than a cooldown after it started.
    tokio::time::sleep(COOLDOWN + Duration::from_millis(200)).await;
    let probes: Vec<_> = (0..4)
        .map(|_| {
            let layer = layer.clone();
            tokio::spawn(async move { layer.readiness().await })
        })
        .collect();
    let prefetch = {
        let layer = layer.clone();
        tokio::spawn(async move { layer.prefetch_keys().await })
    };
    let request = {
        let (app, token) = (
            app.clone(),
            key.session_token(ISSUER, &random_id("user"), 60),
        );
        tokio::spawn(async move { status_and_code(&app, &token).await })
    };
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        jwks.fetches(),
        1,
        "the callers wait for the fetch in flight"
    );
    assert!(
        !first.is_finished()
            && !prefetch.is_finished()
            && !request.is_finished()
            && probes.iter().all(|probe| !probe.is_finished()),
        "a caller was answered before the fetch ended"
    );
    hold.release();

    let (status, code, _) = request.await.unwrap();
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "keys_unavailable")
    );
    for probe in std::iter::once(first).chain(probes) {
        let readiness = probe.await.unwrap();
        assert_eq!(
            (readiness.keys_held, readiness.key_endpoint_failing),
            (0, true)
        );
    }
    assert!(prefetch.await.unwrap().is_err());
    assert_eq!(jwks.fetches(), 1);
}
