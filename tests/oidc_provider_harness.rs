//! The OpenID Provider the tests of other issuers' tokens talk to
//! (`tests/common/oidc_provider.rs`) is a real one: its discovery document
//! and JWKS are its own, its tokens are RFC 9068 access tokens signed with
//! the keys its JWKS serves (checked here with jsonwebtoken), its keys
//! rotate, and it goes away with the test.

mod common;

use std::{collections::HashSet, time::Duration};

use common::oidc_provider::*;
use jsonwebtoken::{DecodingKey, Validation, jwk::Jwk};
use serde_json::{Value, json};

const AUDIENCE: &str = "https://api.example.com";

/// The kids of a JWKS.
fn kids(jwks: &Value) -> HashSet<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// The payload of `token` once its signature checks out against the key of
/// `jwks` its header names, for `audience` from `issuer`.
fn verified(token: &str, jwks: &Value, issuer: &str, audience: &str) -> Value {
    let (header, _) = decode_jwt(token);
    let kid = header["kid"].as_str().expect("the header names a kid");
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["kid"] == kid)
        .unwrap_or_else(|| panic!("the JWKS has the key {kid}: {jwks}"));
    let jwk: Jwk = serde_json::from_value(key.clone()).unwrap();
    let alg: jsonwebtoken::Algorithm = header["alg"].as_str().unwrap().parse().unwrap();
    let mut validation = Validation::new(alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[issuer]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(&jwk).unwrap(), &validation)
        .unwrap_or_else(|error| panic!("{alg:?} token verifies against {kid}: {error}"))
        .claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_names_the_loopback_issuer_and_a_jwks_with_one_key_per_algorithm() {
    let provider = OidcProvider::start().await;
    assert!(provider.issuer().starts_with("http://127.0.0.1:"));
    assert_eq!(provider.advertised_issuer(), provider.issuer());

    let discovery = provider.discovery().await;
    assert_eq!(discovery["issuer"], provider.issuer());
    let jwks_uri = discovery["jwks_uri"].as_str().unwrap();
    assert!(
        jwks_uri.starts_with(&format!("{}/", provider.issuer())),
        "{jwks_uri}"
    );
    assert!(
        discovery["token_endpoint"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );

    let jwks = provider.jwks().await;
    let keys = jwks["keys"].as_array().unwrap();
    let algorithms: Vec<&str> = keys
        .iter()
        .map(|key| key["alg"].as_str().unwrap())
        .collect();
    assert_eq!(algorithms, ALGORITHMS, "one key per algorithm, in order");
    assert_eq!(kids(&jwks).len(), ALGORITHMS.len(), "distinct kids");
    for key in keys {
        assert_eq!(key["use"], "sig", "{key}");
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(key.get(private).is_none(), "the JWKS is public: {key}");
        }
    }
    let by_alg = |alg: &str| keys.iter().find(|key| key["alg"] == alg).unwrap().clone();
    assert_eq!(by_alg("ES256")["crv"], "P-256");
    assert_eq!(by_alg("ES384")["crv"], "P-384");
    assert_eq!(by_alg("EdDSA")["crv"], "Ed25519");
    assert_eq!(by_alg("PS512")["kty"], "RSA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_access_tokens_are_rfc_9068_jwts_signed_with_the_requested_algorithm() {
    let provider = OidcProvider::start().await;
    let jwks = provider.jwks().await;
    for alg in ALGORITHMS {
        let mint = Mint::new("user_42", AUDIENCE)
            .alg(alg)
            .scope("openid read")
            .claim("email", "someone@example.com")
            .claim("https://example.com/roles", json!(["admin"]))
            .ttl_seconds(120);
        let token = provider.access_token(&mint).await;

        let (header, payload) = decode_jwt(&token);
        assert_eq!(header["typ"], "at+jwt", "{alg}: {header}");
        assert_eq!(header["alg"], alg, "{header}");
        let kid = header["kid"].as_str().unwrap();
        let key = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|key| key["kid"] == kid)
            .unwrap_or_else(|| panic!("{alg}: the kid {kid} is in the JWKS"));
        assert_eq!(key["alg"], alg);

        assert_eq!(payload["iss"], provider.issuer());
        assert_eq!(payload["sub"], "user_42");
        assert_eq!(payload["aud"], AUDIENCE);
        assert_eq!(payload["client_id"], USER_CLIENT_ID);
        assert_eq!(payload["scope"], "openid read");
        assert!(payload["jti"].as_str().is_some_and(|jti| !jti.is_empty()));
        let (iat, exp) = (
            payload["iat"].as_u64().unwrap(),
            payload["exp"].as_u64().unwrap(),
        );
        assert_eq!(exp - iat, 120, "{payload}");
        assert_eq!(payload["email"], "someone@example.com");
        assert_eq!(payload["https://example.com/roles"], json!(["admin"]));

        assert_eq!(
            verified(&token, &jwks, provider.issuer(), AUDIENCE),
            payload,
            "{alg}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_tokens_come_from_the_token_endpoint_and_id_tokens_are_not_access_tokens() {
    let provider = OidcProvider::start().await;
    let jwks = provider.jwks().await;

    let machine = provider.client_credentials(AUDIENCE, "ES384").await;
    let (header, payload) = decode_jwt(&machine);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES384");
    assert_eq!(payload["sub"], MACHINE_CLIENT_ID);
    assert_eq!(payload["client_id"], MACHINE_CLIENT_ID);
    assert_eq!(payload["aud"], AUDIENCE);
    assert_eq!(payload["scope"], "read");
    verified(&machine, &jwks, provider.issuer(), AUDIENCE);

    let id_token = provider.id_token("user_42", "my-spa", "PS256").await;
    let (header, payload) = decode_jwt(&id_token);
    assert_eq!(header["typ"], "JWT", "an ID token is no at+jwt: {header}");
    assert_eq!(header["alg"], "PS256");
    assert_eq!(payload["sub"], "user_42");
    assert_eq!(payload["aud"], "my-spa");
    assert!(payload.get("client_id").is_none(), "{payload}");
    verified(&id_token, &jwks, provider.issuer(), "my-spa");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_replaces_the_keys_or_adds_to_them() {
    let provider = OidcProvider::start().await;
    let first = kids(&provider.jwks().await);

    let served = provider.rotate(false).await;
    let second = kids(&provider.jwks().await);
    assert_eq!(served.iter().cloned().collect::<HashSet<_>>(), second);
    assert_eq!(second.len(), ALGORITHMS.len());
    assert!(first.is_disjoint(&second), "{first:?} {second:?}");
    let token = provider
        .access_token(&Mint::new("user_42", AUDIENCE).alg("ES256"))
        .await;
    let (header, _) = decode_jwt(&token);
    assert!(second.contains(header["kid"].as_str().unwrap()));
    verified(&token, &provider.jwks().await, provider.issuer(), AUDIENCE);

    provider.rotate(true).await;
    let third = kids(&provider.jwks().await);
    assert_eq!(third.len(), 2 * ALGORITHMS.len());
    assert!(second.is_subset(&third));
    let token = provider
        .access_token(&Mint::new("user_42", AUDIENCE).alg("ES256"))
        .await;
    let kid = decode_jwt(&token).0["kid"].as_str().unwrap().to_owned();
    assert!(
        third.contains(&kid) && !second.contains(&kid),
        "the newest key signs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overridden_issuer_is_advertised_but_not_where_it_serves() {
    let advertised = "http://127.0.0.1:1/other";
    let provider = OidcProvider::start_with_issuer_override(advertised).await;
    assert_ne!(provider.issuer(), advertised);
    assert_eq!(provider.advertised_issuer(), advertised);
    let discovery = provider.discovery().await;
    assert_eq!(discovery["issuer"], advertised);
    assert!(
        discovery["jwks_uri"]
            .as_str()
            .unwrap()
            .starts_with(provider.issuer())
    );
    let token = provider.access_token(&Mint::new("user_42", AUDIENCE)).await;
    assert_eq!(decode_jwt(&token).1["iss"], advertised);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_goes_away_with_the_harness() {
    let provider = OidcProvider::start().await;
    let health = provider.url("/test/health");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    assert_eq!(client.get(&health).send().await.unwrap().status(), 200);
    drop(provider);
    let mut refused = false;
    for _ in 0..50 {
        if client.get(&health).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the server still answers after the drop");
}
