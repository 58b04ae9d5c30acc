//! Tests of JWS verification: every algorithm with its own key, and no key
//! under any algorithm but its own.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::{
    testing::JwsKey,
    token::{KeySource, rules::KeyRules},
};

/// The largest token the tests accept.
const MAX_BYTES: usize = 16 * 1024;

/// A store holding the key set `jwks`, as fetched just now; its URL is a
/// closed loopback port, and the cooldown keeps any fetch from starting.
fn store(jwks: &Value) -> Arc<KeyStore> {
    let rules = KeyRules {
        source: KeySource::jwks_url("http://127.0.0.1:9/.well-known/jwks.json"),
        refresh_interval: Duration::from_secs(3600),
        refetch_cooldown: Duration::from_secs(3600),
        fetch_timeout: Duration::from_secs(1),
        max_body: 1 << 20,
    };
    Arc::new(KeyStore::holding(&rules, jwks.to_string().as_bytes()))
}

/// `token` verified against `keys` with the algorithms `allowed` and no
/// header rule: its decoded payload, or the rejection.
fn verify(token: &str, keys: &Arc<KeyStore>, allowed: Algorithms) -> Result<Value, Rejection> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(verified_payload(
            token.as_bytes(),
            MAX_BYTES,
            keys,
            allowed,
            |_| Ok(()),
        ))
        .and_then(decode_json)
}

/// `key`'s JWK with `change` made to it.
fn jwk_with(key: &JwsKey, change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut jwk = key.jwk();
    change(jwk.as_object_mut().unwrap());
    jwk
}

/// Claims to sign.
fn claims() -> Value {
    json!({ "sub": "alice", "n": 7 })
}

#[test]
fn there_is_room_for_the_signature_of_an_8192_bit_key() {
    let signature = URL_SAFE_NO_PAD.encode([0x5a; MAX_SIGNATURE_BYTES]);
    let mut room = [0; MAX_SIGNATURE_BYTES];
    assert_eq!(
        URL_SAFE_NO_PAD.decode_slice(&signature, &mut room),
        Ok(MAX_SIGNATURE_BYTES)
    );
    let longer = URL_SAFE_NO_PAD.encode([0x5a; MAX_SIGNATURE_BYTES + 1]);
    assert!(URL_SAFE_NO_PAD.decode_slice(&longer, &mut room).is_err());
}

#[test]
fn names_and_sets() {
    for alg in Algorithm::ALL {
        assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
        assert!(Algorithms::all().contains(alg));
        assert!(Algorithms::only(alg).contains(alg));
        let others = Algorithm::ALL.into_iter().filter(|other| *other != alg);
        for other in others {
            assert!(!Algorithms::only(alg).contains(other), "{alg:?} {other:?}");
            assert!(Algorithms::only(alg).with(other).contains(other));
        }
    }
    for name in [
        "none", "None", "HS256", "HS384", "HS512", "rs256", "ES512", "Ed25519", "",
    ] {
        assert_eq!(Algorithm::from_name(name), None, "{name}");
    }
}

#[test]
fn every_algorithm_verifies_with_its_own_key() {
    for alg in Algorithm::ALL {
        let key = JwsKey::generate(alg.name(), "k");
        let keys = store(&JwsKey::jwks(&[&key]));
        let token = key.sign(&json!({ "typ": "JWT" }), &claims());
        for allowed in [Algorithms::all(), Algorithms::only(alg)] {
            assert_eq!(verify(&token, &keys, allowed), Ok(claims()), "{alg:?}");
        }
        // Another payload under the same signature.
        let (header, rest) = token.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let other = URL_SAFE_NO_PAD.encode(json!({ "sub": "mallory", "n": 7 }).to_string());
        let forged = format!("{header}.{other}.{signature}");
        assert_eq!(
            verify(&forged, &keys, Algorithms::all()),
            Err(Rejection::InvalidSignature),
            "{alg:?}"
        );
        // Another key of the same algorithm under the same kid.
        let impostor = JwsKey::generate(alg.name(), "k");
        let forged = impostor.sign(&json!({ "typ": "JWT" }), &claims());
        assert_eq!(
            verify(&forged, &keys, Algorithms::all()),
            Err(Rejection::InvalidSignature),
            "{alg:?}"
        );
    }
}

#[test]
fn none_and_symmetric_algorithms_are_unsupported() {
    let key = JwsKey::generate("ES256", "k");
    let keys = store(&JwsKey::jwks(&[&key]));
    for name in ["none", "HS256", "HS512", "es256", "ES512"] {
        let token = key.sign(&json!({ "alg": name }), &claims());
        assert_eq!(
            verify(&token, &keys, Algorithms::all()),
            Err(Rejection::UnsupportedAlgorithm),
            "{name}"
        );
    }
    // An unsigned token as RFC 7519 writes it: an empty signature segment.
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims().to_string());
    assert_eq!(
        verify(&format!("{header}.{payload}."), &keys, Algorithms::all()),
        Err(Rejection::MalformedToken)
    );
}

#[test]
fn the_allowed_set_then_the_header_rule_are_judged_before_the_key() {
    let key = JwsKey::generate("ES256", "k");
    let keys = store(&JwsKey::jwks(&[&key]));
    let token = key.sign(&Value::Null, &claims());
    let allowed = Algorithms::only(Algorithm::Rs256).with(Algorithm::Ps256);
    assert_eq!(
        verify(&token, &keys, allowed),
        Err(Rejection::UnsupportedAlgorithm)
    );
    let judged = |allowed, kid: &str| {
        let token = key.sign(&json!({ "kid": kid }), &claims());
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(verified_payload(
                token.as_bytes(),
                MAX_BYTES,
                &keys,
                allowed,
                |header| {
                    assert_eq!(header.alg, Algorithm::Es256);
                    assert_eq!(header.kid.as_deref(), Some(kid));
                    Err(Rejection::TokenTypeMismatch)
                },
            ))
            .map(str::to_owned)
    };
    assert_eq!(judged(allowed, "k"), Err(Rejection::UnsupportedAlgorithm));
    // The header rule is judged before the key is looked for.
    assert_eq!(
        judged(Algorithms::all(), "unknown"),
        Err(Rejection::TokenTypeMismatch)
    );
    let token = key.sign(&json!({ "kid": "unknown" }), &claims());
    assert_eq!(
        verify(&token, &keys, Algorithms::all()),
        Err(Rejection::UnknownKey)
    );
}

#[test]
fn a_key_never_verifies_under_another_algorithm() {
    let ec = JwsKey::generate("ES256", "ec");
    let bare_ec = jwk_with(&ec, |jwk| {
        jwk.remove("alg");
        jwk.insert("kid".into(), "bare-ec".into());
    });
    let keys = store(&json!({ "keys": [ec.jwk(), bare_ec] }));
    for kid in ["ec", "bare-ec"] {
        let token = ec.sign(&json!({ "kid": kid }), &claims());
        assert_eq!(verify(&token, &keys, Algorithms::all()), Ok(claims()));
        // The same signature, labelled RS256 or ES384.
        for alg in ["RS256", "ES384"] {
            let token = ec.sign(&json!({ "kid": kid, "alg": alg }), &claims());
            assert_eq!(
                verify(&token, &keys, Algorithms::all()),
                Err(Rejection::InvalidSignature),
                "{kid} {alg}"
            );
        }
    }
}

#[test]
fn pss_and_pkcs1_signatures_of_one_rsa_key_are_told_apart() {
    let pss = JwsKey::generate("PS256", "pss");
    let pkcs1 = JwsKey::generate("RS256", "pkcs1");
    // Each key's material once more, bound to the other padding.
    let rebound = |key: &JwsKey, alg: &str| {
        jwk_with(key, |jwk| {
            jwk.insert("alg".into(), alg.into());
            jwk.insert("kid".into(), format!("{}-as-{alg}", key.kid()).into());
        })
    };
    let keys = store(&json!({ "keys": [
        pss.jwk(), pkcs1.jwk(), rebound(&pss, "RS256"), rebound(&pkcs1, "PS256"),
    ]}));
    let signed = |key: &JwsKey, header: Value| key.sign(&header, &claims());
    assert_eq!(
        verify(&signed(&pss, Value::Null), &keys, Algorithms::all()),
        Ok(claims())
    );
    assert_eq!(
        verify(&signed(&pkcs1, Value::Null), &keys, Algorithms::all()),
        Ok(claims())
    );
    // A PSS signature under the key bound to RS256, labelled RS256.
    let token = signed(&pss, json!({ "kid": "pss-as-RS256", "alg": "RS256" }));
    assert_eq!(
        verify(&token, &keys, Algorithms::all()),
        Err(Rejection::InvalidSignature)
    );
    // A PKCS #1 signature under the key bound to PS256, labelled PS256.
    let token = signed(&pkcs1, json!({ "kid": "pkcs1-as-PS256", "alg": "PS256" }));
    assert_eq!(
        verify(&token, &keys, Algorithms::all()),
        Err(Rejection::InvalidSignature)
    );
}

#[test]
fn an_rsa_key_without_alg_verifies_rs256_only() {
    // Entra ID publishes its RSA keys without `alg`.
    let pkcs1 = JwsKey::generate("RS256", "pkcs1");
    let pss = JwsKey::generate("PS256", "pss");
    let bare = |key: &JwsKey| {
        jwk_with(key, |jwk| {
            jwk.remove("alg");
        })
    };
    let keys = store(&json!({ "keys": [bare(&pkcs1), bare(&pss)] }));
    let token = pkcs1.sign(&Value::Null, &claims());
    assert_eq!(verify(&token, &keys, Algorithms::all()), Ok(claims()));
    for (key, alg) in [(&pss, "PS256"), (&pkcs1, "PS256"), (&pkcs1, "RS512")] {
        let token = key.sign(&json!({ "alg": alg }), &claims());
        assert_eq!(
            verify(&token, &keys, Algorithms::all()),
            Err(Rejection::InvalidSignature),
            "{} {alg}",
            key.kid()
        );
    }
}

#[test]
fn a_key_set_keeps_the_usable_signing_keys_only() {
    let good = JwsKey::generate("ES384", "good");
    let rsa = JwsKey::generate("RS256", "rsa");
    let ec = JwsKey::generate("ES256", "ec");
    let keys = store(&json!({ "keys": [
        // Keycloak's encryption key.
        jwk_with(&rsa, |jwk| {
            jwk.insert("kid".into(), "enc".into());
            jwk.insert("use".into(), "enc".into());
            jwk.insert("alg".into(), "RSA-OAEP".into());
        }),
        // An encryption key without `alg`.
        jwk_with(&rsa, |jwk| {
            jwk.insert("kid".into(), "bare-enc".into());
            jwk.insert("use".into(), "enc".into());
            jwk.remove("alg");
        }),
        // A coordinate that is not base64url.
        jwk_with(&ec, |jwk| {
            jwk.insert("kid".into(), "broken".into());
            jwk.insert("y".into(), "!!".into());
        }),
        // `alg` against `kty`, then against `crv`.
        jwk_with(&ec, |jwk| {
            jwk.insert("kid".into(), "ec-as-rs256".into());
            jwk.insert("alg".into(), "RS256".into());
        }),
        jwk_with(&ec, |jwk| {
            jwk.insert("kid".into(), "p256-as-es384".into());
            jwk.insert("alg".into(), "ES384".into());
        }),
        jwk_with(&rsa, |jwk| {
            jwk.insert("kid".into(), "rsa-as-es256".into());
            jwk.insert("alg".into(), "ES256".into());
        }),
        { "kty": "oct", "kid": "hs", "alg": "HS256", "k": "c2VjcmV0" },
        good.jwk(),
    ]}));
    let skipped = [
        ("enc", &rsa),
        ("bare-enc", &rsa),
        ("broken", &ec),
        ("ec-as-rs256", &ec),
        ("p256-as-es384", &ec),
        ("rsa-as-es256", &rsa),
        ("hs", &rsa),
    ];
    for (kid, key) in skipped {
        for header in [json!({ "kid": kid }), json!({ "kid": kid, "alg": "ES256" })] {
            let token = key.sign(&header, &claims());
            assert_eq!(
                verify(&token, &keys, Algorithms::all()),
                Err(Rejection::UnknownKey),
                "{kid}"
            );
        }
    }
    let token = good.sign(&Value::Null, &claims());
    assert_eq!(verify(&token, &keys, Algorithms::all()), Ok(claims()));
}
