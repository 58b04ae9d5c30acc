//! Tests of verification: Clerk's own token fixtures at the instant
//! Clerk's tests freeze time at.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::*;

/// Clerk's own fixtures (`@clerk/backend`): a real session token, its
/// key, and variants of the token, at the instant Clerk's tests freeze
/// time at. Each case runs with the PEM key source and with the key set
/// parsed from Clerk's JWK.
mod clerk_fixtures {
    use super::*;
    use crate::{config::Config, token::KeySource};

    /// Clerk's tests run at this instant.
    const FROZEN_MS: i64 = 1_666_648_250_000;
    /// Derives the fixture's issuer, `https://clerk.inspired.puma-74.lcl.dev`.
    const PUBLISHABLE_KEY: &str = "pk_test_Y2xlcmsuaW5zcGlyZWQucHVtYS03NC5sY2wuZGV2JA";
    const AZP: &str = "https://accounts.inspired.puma-74.lcl.dev";
    const SUB: &str = "user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr";
    const SID: &str = "sess_2GbDB4enNdCa5vS1zpC3Xzg9tK9";

    const TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6Imluc18yR0lvUWhiVXB5MGhYN0IyY1ZrdVRNaW5Yb0QiLCJ0eXAiOiJKV1QifQ.eyJhenAiOiJodHRwczovL2FjY291bnRzLmluc3BpcmVkLnB1bWEtNzQubGNsLmRldiIsImV4cCI6MTY2NjY0ODMxMCwiaWF0IjoxNjY2NjQ4MjUwLCJpc3MiOiJodHRwczovL2NsZXJrLmluc3BpcmVkLnB1bWEtNzQubGNsLmRldiIsIm5iZiI6MTY2NjY0ODI0MCwic2lkIjoic2Vzc18yR2JEQjRlbk5kQ2E1dlMxenBDM1h6Zzl0SzkiLCJzdWIiOiJ1c2VyXzJHSXBYT0VwVnlKdzUxcmtabjlLbW5jNlN4ciJ9.j3rB92k32WqbQDkFB093H4GoQsBVLH4HLGF6ObcwUaVGiHC8SEu6T31FuPf257SL8A5sSGtWWM1fqhQpdLohgZb_hbJswGBuYI-Clxl9BtpIRHbWFZkLBIj8yS9W9aVtD3fWBbF6PHx7BY1udio-rbGWg1YAOZNtVcxF02p-MvX-8XIK92Vwu3Un5zyfCoVIg__qo3Xntzw3tznsZ4XDe212c6kVz1R_L1d5DKjeWXpjUPAS_zFeZSIJEQLf4JNr4JCY38tfdnc3ajfDA3p36saf1XwmTdWXQKCXi75c2TJAXROs3Pgqr5Kw_5clygoFuxN5OEMhFWFSnvIBdi3M6w";
    /// Signed by the same key; `exp` 1666648200, `iat` 1666647250.
    const EXPIRED: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6Imluc18yR0lvUWhiVXB5MGhYN0IyY1ZrdVRNaW5Yb0QiLCJ0eXAiOiJKV1QifQ.eyJhenAiOiJodHRwczovL2FjY291bnRzLmluc3BpcmVkLnB1bWEtNzQubGNsLmRldiIsImV4cCI6MTY2NjY0ODIwMCwiaWF0IjoxNjY2NjQ3MjUwLCJpc3MiOiJodHRwczovL2NsZXJrLmluc3BpcmVkLnB1bWEtNzQubGNsLmRldiIsIm5iZiI6MTY2NjY0ODI0MCwic2lkIjoic2Vzc18yR2JEQjRlbk5kQ2E1dlMxenBDM1h6Zzl0SzkiLCJzdWIiOiJ1c2VyXzJHSXBYT0VwVnlKdzUxcmtabjlLbW5jNlN4ciJ9.jLImjg2vGwOJDkK9gtIeJnEJWVOgoCMeC46OFtfzJ1d8OT0KVvwRppC60QIMfHKoOwLTLYlq8SccrkARwlJ_jOvMAYMGZT-R4qHoEfGmet1cSTC67zaafq5gpf9759x1kNMyckry_PJNSx-9hTFbBMWhY7XVLVlrauppqHXOQr1-BC7u-0InzKjCQTCJj-81Yt8xRKweLbO689oYSRAFYK5LNH8BYoLZFWuWLO-6nxUJu0_XAq9xpZPqZOqj3LxFS4hHVGGmTqnPgR8vBetLXxSLAOBsEyIkeQkOBA03YA6enTNIppmy0XTLgAYmUO_JWOGjjjDQoEojuXtuLRdQHQ";
    /// The payload's `azp` changed after signing.
    const TAMPERED: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6Imluc18yR0lvUWhiVXB5MGhYN0IyY1ZrdVRNaW5Yb0QiLCJ0eXAiOiJKV1QifQ.eyJhenAiOiJodHRwczovL2FjY291bnRzLnRhbXBlcmVkLWRvbWFpbi5kZXYiLCJleHAiOjE2NjY2NDgzMTAsImlhdCI6MTY2NjY0ODI1MCwiaXNzIjoiaHR0cHM6Ly9jbGVyay5pbnNwaXJlZC5wdW1hLTc0LmxjbC5kZXYiLCJuYmYiOjE2NjY2NDgyNDAsInNpZCI6InNlc3NfMkdiREI0ZW5OZENhNXZTMXpwQzNYemc5dEs5Iiwic3ViIjoidXNlcl8yR0lwWE9FcFZ5Snc1MXJrWm45S21uYzZTeHIifQ.n1Usc-DLDftqA0Xb-_2w8IGs4yjCmwc5RngwbSRvwevuZOIuRoeHmE2sgCdEvjfJEa7ewL6EVGVcM557TWPW--g_J1XQPwBy8tXfz7-S73CEuyRFiR97L2AHRdvRtvGtwR-o6l8aHaFxtlmfWbQXfg4kFJz2UGe9afmh3U9-f_4JOZ5fa3mI98UMy1-bo20vjXeWQ9aGrqaxHQxjnzzC-1Kpi5LdPvhQ16H0dPB8MHRTSM5TAuLKTpPV7wqixmbtcc2-0k6b9FKYZNqRVTaIyV-lifZloBvdzlfOF8nW1VVH_fx-iW5Q3hovHFcJIULHEC1kcAYTubbxzpgeVQepGg";
    /// The payload is only `{"iat":1666648250}`; the signature is another payload's.
    const MALFORMED_PAYLOAD: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6Imluc18yR0lvUWhiVXB5MGhYN0IyY1ZrdVRNaW5Yb0QiLCJ0eXAiOiJKV1QifQ.eyJpYXQiOjE2NjY2NDgyNTB9.n1Usc-DLDftqA0Xb-_2w8IGs4yjCmwc5RngwbSRvwevuZOIuRoeHmE2sgCdEvjfJEa7ewL6EVGVcM557TWPW--g_J1XQPwBy8tXfz7-S73CEuyRFiR97L2AHRdvRtvGtwR-o6l8aHaFxtlmfWbQXfg4kFJz2UGe9afmh3U9-f_4JOZ5fa3mI98UMy1-bo20vjXeWQ9aGrqaxHQxjnzzC-1Kpi5LdPvhQ16H0dPB8MHRTSM5TAuLKTpPV7wqixmbtcc2-0k6b9FKYZNqRVTaIyV-lifZloBvdzlfOF8nW1VVH_fx-iW5Q3hovHFcJIULHEC1kcAYTubbxzpgeVQepGg";

    /// The signing key, as Clerk's JWKS publishes it.
    const JWK: &str = r#"{"use":"sig","kty":"RSA","kid":"ins_2GIoQhbUpy0hX7B2cVkuTMinXoD","alg":"RS256","n":"qYy3MY8fOneEyzNDu9lp6iGXKkNUF-u_dUnrlkadZYyB35efzKFJEr9fftmWv5PUj1uRHTQ3bh6X1cceOYsIjy008dHWZJsKhGOxgdTjeK91rjaklxt7tyFXEiKHIOr1LSgKzopClOfCIjxK_oPUOf38pVh7WnekcSBQmU5fqA-EzKMi6k9VwvbzqKlZM4XQsiFyn28d9VubJWjTU8nNot0n1NE-9k6TxM8nglM4RwkBH4Ni4B0LhKKOOV-AG8tBNiZVil415dpBldmJ_j0wk7Ad4VFi9en3Z17oCKr-K-zuT7vKMKSb1548dk0vnmi0vj2QGXSo-61wM5yQWpk6sQ","e":"AQAB"}"#;
    /// The same key as the Dashboard shows it.
    const PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqYy3MY8fOneEyzNDu9lp
6iGXKkNUF+u/dUnrlkadZYyB35efzKFJEr9fftmWv5PUj1uRHTQ3bh6X1cceOYsI
jy008dHWZJsKhGOxgdTjeK91rjaklxt7tyFXEiKHIOr1LSgKzopClOfCIjxK/oPU
Of38pVh7WnekcSBQmU5fqA+EzKMi6k9VwvbzqKlZM4XQsiFyn28d9VubJWjTU8nN
ot0n1NE+9k6TxM8nglM4RwkBH4Ni4B0LhKKOOV+AG8tBNiZVil415dpBldmJ/j0w
k7Ad4VFi9en3Z17oCKr+K+zuT7vKMKSb1548dk0vnmi0vj2QGXSo+61wM5yQWpk6
sQIDAQAB
-----END PUBLIC KEY-----";
    /// Another key, under which every fixture signature fails.
    const WRONG_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA5wdNEDm/HUAO6xarLs6e
cS0/J8GencMs5I6rYS825knb8jsNbfoukYfBiK81vQy1/eK5gdWrEprpXQrmIcwG
akdeUhybYlK68UhHNA5+TAmZ+ReLTJ2QDk5YU4I1NlRRq/bqtEhWsBDOCCkpVsC4
OLnUpsZKGUwpCrE/8stMSJ6Xx+TzBlDe21cV1j0gn5CWswrrXo7m8OIZ9xkRnNn4
fTNypMSCbx6BS7fgmer6Efx9HOu9UIKgXD/29q3pEpFXiHRdQRbVoAc9vEZl0QIw
PSNjILVJLKvb6MhKoQMyaP5k0c1rEkVJr9jQk5Z/6WPklCNK3oT5+gh2lgi7ZxBd
oQIDAQAB
-----END PUBLIC KEY-----";

    /// The wrong key as a JWK under the fixture's `kid`.
    fn wrong_jwk() -> String {
        use aws_lc_rs::rsa::{PublicKey, PublicKeyComponents};
        let body: String = WRONG_PEM
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        let key = PublicKey::from_der(&der).unwrap();
        let components = PublicKeyComponents::<Vec<u8>>::from(&key);
        serde_json::json!({
            "kty": "RSA",
            "kid": "ins_2GIoQhbUpy0hX7B2cVkuTMinXoD",
            "n": URL_SAFE_NO_PAD.encode(&components.n),
            "e": URL_SAFE_NO_PAD.encode(&components.e),
        })
        .to_string()
    }

    /// The fixture instance's configuration, with `keys` and `azp` allowed from `parties`.
    fn config(keys: KeySource, parties: &[&str]) -> Config {
        let derived = Config::from_publishable_key(PUBLISHABLE_KEY).unwrap();
        Config::new(derived.issuer(), keys).with_authorized_parties(parties.iter().copied())
    }

    /// Verifiers for `parties`: one with the key as PEM, one holding the key
    /// set parsed from `jwk` (its URL is a closed loopback port: nothing is fetched).
    fn verifiers(pem: &str, jwk: &str, parties: &[&str]) -> [(&'static str, Verifier); 2] {
        let static_key = config(KeySource::pem(pem).unwrap(), parties);
        let jwks = config(
            KeySource::jwks_url("http://127.0.0.1:9/.well-known/jwks.json"),
            parties,
        );
        let keys = KeyStore::holding(
            &jwks.key_rules(),
            format!(r#"{{"keys":[{jwk}]}}"#).as_bytes(),
        );
        let static_keys = Arc::new(KeyStore::new(&static_key.key_rules()));
        [
            (
                "pem",
                Verifier::new(static_key.verifier_rules(), static_keys),
            ),
            ("jwks", Verifier::new(jwks.verifier_rules(), Arc::new(keys))),
        ]
    }

    /// `token` verified at the instant `now_ms`.
    fn verify_at(
        verifier: &Verifier,
        token: &str,
        now_ms: i64,
    ) -> Result<SessionClaims, Rejection> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(verifier.verify(token.as_bytes(), now_ms))
    }

    /// The subject of `token` verified at `now_ms`, or the rejection's code.
    fn outcome(verifier: &Verifier, token: &str, now_ms: i64) -> Result<String, &'static str> {
        verify_at(verifier, token, now_ms)
            .map(|claims| claims.sub().to_owned())
            .map_err(Rejection::code)
    }

    fn assert_cases(
        verifiers: &[(&str, Verifier)],
        cases: &[(&str, &str, i64, Result<&str, &str>)],
    ) {
        for (source, verifier) in verifiers {
            for (name, token, now_ms, expected) in cases {
                let got = outcome(verifier, token, *now_ms);
                assert_eq!(
                    got.as_deref().map_err(|code| *code),
                    *expected,
                    "{source}: {name}"
                );
            }
        }
    }

    #[test]
    fn the_real_token_passes_at_the_frozen_instant() {
        for (source, verifier) in verifiers(PEM, JWK, &[]) {
            let claims = verify_at(&verifier, TOKEN, FROZEN_MS)
                .unwrap_or_else(|rejection| panic!("{source}: {}", rejection.code()));
            assert_eq!(
                (claims.sub(), claims.sid(), claims.azp()),
                (SUB, SID, Some(AZP)),
                "{source}"
            );
            assert_eq!(
                (claims.v(), claims.sts(), claims.exp()),
                (None, None, 1_666_648_310)
            );
        }
    }

    #[test]
    fn verified_claims_share_the_configured_issuer() {
        for (source, verifier) in verifiers(PEM, JWK, &[]) {
            let claims = verify_at(&verifier, TOKEN, FROZEN_MS).unwrap();
            assert_eq!(claims.iss(), "https://clerk.inspired.puma-74.lcl.dev");
            // One text for every token of the instance, held by the
            // verifier: cached claims take no bytes for it.
            assert!(
                std::ptr::eq(claims.iss(), verifier.rules.issuer.as_str()),
                "{source}"
            );
            let payload = URL_SAFE_NO_PAD.decode(TOKEN.split('.').nth(1).unwrap());
            let standalone: SessionClaims = serde_json::from_slice(&payload.unwrap()).unwrap();
            assert_eq!(standalone.iss(), claims.iss());
            assert_eq!(
                standalone.heap_bytes() - claims.heap_bytes(),
                crate::token::footprint::shared::<String>(crate::token::footprint::text(
                    claims.iss()
                )),
                "{source}"
            );
        }
    }

    #[test]
    fn validity_window_edges_with_the_default_skew() {
        // exp 1666648310, nbf 1666648240, iat 1666648250, skew 5 s.
        assert_cases(
            &verifiers(PEM, JWK, &[]),
            &[
                ("last valid instant", TOKEN, 1_666_648_314_999, Ok(SUB)),
                ("expired", TOKEN, 1_666_648_315_000, Err("token_expired")),
                ("first valid instant", TOKEN, 1_666_648_245_000, Ok(SUB)),
                (
                    "iat ahead",
                    TOKEN,
                    1_666_648_244_999,
                    Err("token_issued_in_future"),
                ),
                (
                    "iat ahead, nbf not",
                    TOKEN,
                    1_666_648_235_000,
                    Err("token_issued_in_future"),
                ),
                (
                    "nbf ahead",
                    TOKEN,
                    1_666_648_234_999,
                    Err("token_not_yet_valid"),
                ),
            ],
        );
    }

    #[test]
    fn each_variant_is_refused_with_its_code() {
        assert_cases(
            &verifiers(PEM, JWK, &[]),
            &[
                ("expired", EXPIRED, FROZEN_MS, Err("token_expired")),
                (
                    "tampered azp",
                    TAMPERED,
                    FROZEN_MS,
                    Err("invalid_signature"),
                ),
                // The signature is checked before the claims are read.
                (
                    "malformed payload",
                    MALFORMED_PAYLOAD,
                    FROZEN_MS,
                    Err("invalid_signature"),
                ),
            ],
        );
    }

    #[test]
    fn undecodable_tokens_are_malformed() {
        let cases: Vec<_> = [
            "null",
            "undefined",
            "",
            "whatever",
            "42",
            "aaa.bbb.ccc",
            "YWJj.YWJj.YWJj",
        ]
        .into_iter()
        .map(|token| (token, token, FROZEN_MS, Err("malformed_token")))
        .collect();
        assert_cases(&verifiers(PEM, JWK, &[]), &cases);
    }

    #[test]
    fn another_key_refuses_every_signature() {
        assert_cases(
            &verifiers(WRONG_PEM, &wrong_jwk(), &[]),
            &[
                ("valid token", TOKEN, FROZEN_MS, Err("invalid_signature")),
                (
                    "expired token",
                    EXPIRED,
                    FROZEN_MS,
                    Err("invalid_signature"),
                ),
            ],
        );
    }

    #[test]
    fn authorized_parties_are_matched_exactly() {
        assert_cases(
            &verifiers(PEM, JWK, &[AZP]),
            &[("fixture azp allowed", TOKEN, FROZEN_MS, Ok(SUB))],
        );
        assert_cases(
            &verifiers(PEM, JWK, &["https://accounts.example.com"]),
            &[(
                "another origin",
                TOKEN,
                FROZEN_MS,
                Err("unauthorized_party"),
            )],
        );
    }
}

/// Clerk signs with RS256 alone: a token of any other algorithm is refused
/// before its key is looked at, even when the key set holds its key.
#[test]
fn clerk_tokens_of_any_algorithm_but_rs256_are_unsupported() {
    use serde_json::json;

    use crate::{config::Config, testing::JwsKey, token::KeySource};

    let issuer = "https://clerk.example.test";
    let keys: Vec<JwsKey> = ["RS256", "RS384", "PS256", "ES256", "EdDSA"]
        .into_iter()
        .map(|alg| JwsKey::generate(alg, alg))
        .collect();
    let config = Config::new(
        issuer,
        KeySource::jwks_url("http://127.0.0.1:9/.well-known/jwks.json"),
    );
    let jwks = JwsKey::jwks(&keys.iter().collect::<Vec<_>>()).to_string();
    let store = KeyStore::holding(&config.key_rules(), jwks.as_bytes());
    let verifier = Verifier::new(config.verifier_rules(), Arc::new(store));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let now_ms = crate::testing::session_claims(issuer, "user_1", 0)["iat"]
        .as_i64()
        .unwrap()
        * 1000;
    for key in &keys {
        let session = key.sign(
            &json!({ "typ": "JWT" }),
            &crate::testing::session_claims(issuer, "user_1", 60),
        );
        let machine = key.sign(
            &json!({ "typ": "JWT", "cat": "cl_B7d4PD333AAA" }),
            &json!({ "sub": "mch_1", "exp": now_ms / 1000 + 60 }),
        );
        let session = runtime.block_on(verifier.verify(session.as_bytes(), now_ms));
        let machine = runtime.block_on(verifier.verify_machine(
            machine.as_bytes(),
            TokenType::M2mToken,
            now_ms,
        ));
        if key.alg() == "RS256" {
            assert_eq!(
                session.map(|claims| claims.sub().to_owned()),
                Ok("user_1".into())
            );
            assert!(machine.is_ok(), "{machine:?}");
        } else {
            assert_eq!(
                session.err(),
                Some(Rejection::UnsupportedAlgorithm),
                "{}",
                key.alg()
            );
            assert_eq!(
                machine.err(),
                Some(Rejection::UnsupportedAlgorithm),
                "{}",
                key.alg()
            );
        }
    }
}
