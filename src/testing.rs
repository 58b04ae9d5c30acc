//! Signing keys, session tokens and webhook deliveries for tests and local
//! development.
//!
//! A [`SigningKey`] is a fresh RSA key pair; it publishes itself as a JWKS
//! document and signs tokens shaped like Clerk's. [`webhook_delivery`]
//! builds a Clerk webhook delivery signed as svix signs it. A [`JwsKey`]
//! signs tokens with any JWS algorithm the layer verifies. Nothing here is
//! used by the layer itself: it only trusts keys the
//! [`Config`](crate::Config) names.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::{
    encoding::{AsDer, PublicKeyX509Der},
    hmac,
    rand::SystemRandom,
    rsa::{KeyPair, KeySize, PublicKeyComponents},
    signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
        EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256, RSA_PKCS1_SHA384,
        RSA_PKCS1_SHA512, RSA_PSS_SHA256, RSA_PSS_SHA384, RSA_PSS_SHA512, RsaEncoding,
    },
};
use base64::{
    Engine,
    engine::{
        DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig,
        general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    },
};
use http::Request;
use serde_json::{Value, json};

/// An RSA-2048 signing key with a `kid`.
pub struct SigningKey {
    kid: String,
    pair: KeyPair,
}

impl SigningKey {
    /// Generates a new key pair.
    pub fn generate(kid: impl Into<String>) -> Self {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        Self {
            kid: kid.into(),
            pair,
        }
    }

    /// The key pair of a PKCS#8 document (DER): the same key in every run,
    /// for measurements that must repeat exactly. Panics unless `pkcs8` is
    /// an RSA key of 2048 bits or more.
    pub fn from_pkcs8(kid: impl Into<String>, pkcs8: &[u8]) -> Self {
        let pair = KeyPair::from_pkcs8(pkcs8).expect("an RSA key in PKCS#8");
        Self {
            kid: kid.into(),
            pair,
        }
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (`kty`, `kid`, `alg`, `use`, `n`, `e`).
    pub fn jwk(&self) -> Value {
        let public = PublicKeyComponents::<Vec<u8>>::from(self.pair.public_key());
        json!({
            "kty": "RSA",
            "kid": self.kid,
            "alg": "RS256",
            "use": "sig",
            "n": URL_SAFE_NO_PAD.encode(&public.n),
            "e": URL_SAFE_NO_PAD.encode(&public.e),
        })
    }

    /// A JWKS document holding the public halves of `keys`.
    pub fn jwks(keys: &[&SigningKey]) -> Value {
        json!({ "keys": keys.iter().map(|key| key.jwk()).collect::<Vec<_>>() })
    }

    /// The public key in PEM (SubjectPublicKeyInfo), as Clerk's Dashboard shows it.
    pub fn public_key_pem(&self) -> String {
        let der: PublicKeyX509Der<'static> = self
            .pair
            .public_key()
            .as_der()
            .expect("public key encoding");
        let body = STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|chunk| std::str::from_utf8(chunk).expect("base64 is ASCII"))
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// Signs any header and payload (RS256 over their base64url forms).
    /// Useful for hostile tokens: the header is used as given.
    pub fn sign_raw(&self, header: &[u8], payload: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .expect("RSA signing");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// Signs `claims` with a Clerk-like header (`alg: RS256`, `typ: JWT`, this `kid`).
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({ "alg": "RS256", "typ": "JWT", "kid": self.kid });
        self.sign_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }

    /// A session token for `user_id`, issued by `issuer`, valid for `ttl_seconds`
    /// (Clerk's own tokens live 60 s), with Clerk's default claims.
    pub fn session_token(&self, issuer: &str, user_id: &str, ttl_seconds: i64) -> String {
        self.sign(&session_claims(issuer, user_id, ttl_seconds))
    }

    /// An OAuth access token in JWT form, as Clerk issues it to the OAuth
    /// application `client_id` for `user_id`: typed `at+jwt` (RFC 9068),
    /// issued by `issuer` (the Frontend API), with `scopes`, valid for
    /// `ttl_seconds`.
    pub fn oauth_token(
        &self,
        issuer: &str,
        user_id: &str,
        client_id: &str,
        scopes: &[&str],
        ttl_seconds: i64,
    ) -> String {
        let now = unix_seconds();
        let header = json!({ "alg": "RS256", "typ": "at+jwt", "kid": self.kid });
        let claims = json!({
            "iss": issuer,
            "sub": user_id,
            "client_id": client_id,
            "scope": scopes.join(" "),
            "jti": random_id("oat"),
            "iat": now,
            "nbf": now - 10,
            "exp": now + ttl_seconds,
        });
        self.sign_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }

    /// A machine-to-machine token in JWT form for `machine_id` (`mch_…`),
    /// issued by `issuer`, allowed to call the machines in `scopes`, valid
    /// for `ttl_seconds`: Clerk's machine category in the header.
    pub fn machine_token(
        &self,
        issuer: &str,
        machine_id: &str,
        scopes: &[&str],
        ttl_seconds: i64,
    ) -> String {
        let now = unix_seconds();
        let header =
            json!({ "alg": "RS256", "typ": "JWT", "kid": self.kid, "cat": "cl_B7d4PD333AAA" });
        let claims = json!({
            "iss": issuer,
            "sub": machine_id,
            "scopes": scopes.join(" "),
            "jti": random_id("mt"),
            "iat": now,
            "nbf": now - 10,
            "exp": now + ttl_seconds,
        });
        self.sign_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }
}

/// A signing key for any JWS algorithm the layer verifies, with a `kid`:
/// for tests and benchmarks of tokens from issuers other than Clerk.
///
/// ```
/// use ensure_user::testing::JwsKey;
/// use serde_json::json;
///
/// let key = JwsKey::generate("ES256", "key-1");
/// let token = key.sign(&json!({ "typ": "JWT" }), &json!({ "sub": "alice" }));
/// assert_eq!(token.split('.').count(), 3);
/// assert_eq!(JwsKey::jwks(&[&key])["keys"][0]["crv"], "P-256");
/// ```
pub struct JwsKey {
    alg: &'static str,
    kid: String,
    pair: JwsPair,
}

/// The key pair of a [`JwsKey`], with what its algorithm signs with.
enum JwsPair {
    Rsa(KeyPair, &'static dyn RsaEncoding),
    Ec(EcdsaKeyPair, &'static str),
    Ed25519(Ed25519KeyPair),
}

impl JwsKey {
    /// Generates a new key pair for the JWS algorithm `alg`: `RS256`,
    /// `RS384`, `RS512`, `PS256`, `PS384`, `PS512` (RSA-2048), `ES256`
    /// (P-256), `ES384` (P-384) or `EdDSA` (Ed25519).
    ///
    /// # Panics
    ///
    /// For any other `alg`, such as `none` or `HS256`.
    pub fn generate(alg: &str, kid: impl Into<String>) -> Self {
        let rsa = |encoding: &'static dyn RsaEncoding| {
            let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
            JwsPair::Rsa(pair, encoding)
        };
        let ec = |signing: &'static EcdsaSigningAlgorithm, crv: &'static str| {
            let pair = EcdsaKeyPair::generate(signing).expect("EC key generation");
            JwsPair::Ec(pair, crv)
        };
        let (alg, pair) = match alg {
            "RS256" => ("RS256", rsa(&RSA_PKCS1_SHA256)),
            "RS384" => ("RS384", rsa(&RSA_PKCS1_SHA384)),
            "RS512" => ("RS512", rsa(&RSA_PKCS1_SHA512)),
            "PS256" => ("PS256", rsa(&RSA_PSS_SHA256)),
            "PS384" => ("PS384", rsa(&RSA_PSS_SHA384)),
            "PS512" => ("PS512", rsa(&RSA_PSS_SHA512)),
            "ES256" => ("ES256", ec(&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256")),
            "ES384" => ("ES384", ec(&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384")),
            "EdDSA" => (
                "EdDSA",
                JwsPair::Ed25519(Ed25519KeyPair::generate().expect("Ed25519 key generation")),
            ),
            other => panic!("not a JWS algorithm the layer verifies: {other}"),
        };
        Self {
            alg,
            kid: kid.into(),
            pair,
        }
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWS algorithm name, such as `ES256`.
    pub fn alg(&self) -> &str {
        self.alg
    }

    /// The public key as a JWK: `kty`, `kid`, `alg`, `use: sig`, and `n`
    /// and `e` (RSA), `crv`, `x` and `y` (EC) or `crv` and `x` (OKP).
    pub fn jwk(&self) -> Value {
        let mut jwk = match &self.pair {
            JwsPair::Rsa(pair, _) => {
                let public = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                json!({
                    "kty": "RSA",
                    "n": URL_SAFE_NO_PAD.encode(&public.n),
                    "e": URL_SAFE_NO_PAD.encode(&public.e),
                })
            }
            JwsPair::Ec(pair, crv) => {
                // The uncompressed point: 0x04, then x and y of equal length.
                let point = &pair.public_key().as_ref()[1..];
                let (x, y) = point.split_at(point.len() / 2);
                json!({
                    "kty": "EC",
                    "crv": crv,
                    "x": URL_SAFE_NO_PAD.encode(x),
                    "y": URL_SAFE_NO_PAD.encode(y),
                })
            }
            JwsPair::Ed25519(pair) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            }),
        };
        jwk["kid"] = self.kid.clone().into();
        jwk["alg"] = self.alg.into();
        jwk["use"] = "sig".into();
        jwk
    }

    /// A JWKS document holding the public halves of `keys`.
    pub fn jwks(keys: &[&JwsKey]) -> Value {
        json!({ "keys": keys.iter().map(|key| key.jwk()).collect::<Vec<_>>() })
    }

    /// Signs `claims` under the header `{"alg": <this alg>, "kid": <this
    /// kid>}` with the members of `header_extra` (an object) merged in,
    /// replacing these: a `typ`, a `cat`, or for hostile tokens another
    /// `alg` or `kid` (the signature is still this key's own).
    ///
    /// # Panics
    ///
    /// When `header_extra` is neither an object nor `null`.
    pub fn sign(&self, header_extra: &Value, claims: &Value) -> String {
        let mut header = json!({ "alg": self.alg, "kid": self.kid });
        if let Some(extra) = header_extra.as_object() {
            for (name, value) in extra {
                header[name] = value.clone();
            }
        } else {
            assert!(header_extra.is_null(), "header_extra must be a JSON object");
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = match &self.pair {
            JwsPair::Rsa(pair, encoding) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(
                    *encoding,
                    &SystemRandom::new(),
                    input.as_bytes(),
                    &mut signature,
                )
                .expect("RSA signing");
                signature
            }
            JwsPair::Ec(pair, _) => pair
                .sign(&SystemRandom::new(), input.as_bytes())
                .expect("ECDSA signing")
                .as_ref()
                .to_vec(),
            JwsPair::Ed25519(pair) => pair.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

impl std::fmt::Debug for JwsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwsKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Now, in Unix seconds.
fn unix_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// Clerk's default session claims for `user_id`: `iss`, `sub`, `sid`, `iat`,
/// `nbf` (10 s back, as Clerk does), `exp`, `v: 2`, `sts: active`.
pub fn session_claims(issuer: &str, user_id: &str, ttl_seconds: i64) -> Value {
    let now = unix_seconds();
    json!({
        "iss": issuer,
        "sub": user_id,
        "sid": format!("sess_{}", &user_id.trim_start_matches("user_")),
        "iat": now,
        "nbf": now - 10,
        "exp": now + ttl_seconds,
        "v": 2,
        "sts": "active",
    })
}

/// A fresh Clerk-shaped id: `prefix` + `_` + 27 random base62 characters.
pub fn random_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut bytes = [0u8; 27];
    aws_lc_rs::rand::fill(&mut bytes).expect("system randomness");
    let suffix: String = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    format!("{prefix}_{suffix}")
}

/// A Clerk webhook delivery of `event`, posted to `uri` as svix sends it:
/// a JSON body under a fresh message id (`msg_…`), stamped now, with the
/// `svix-id`, `svix-timestamp` and `svix-signature` headers, signed with
/// `secret` (the endpoint's `whsec_…` signing secret). Send it to the app's
/// router, where the webhook receiver is mounted.
///
/// ```
/// use ensure_user::testing::webhook_delivery;
/// use serde_json::json;
///
/// let event = json!({ "type": "user.deleted", "data": { "id": "user_1", "deleted": true } });
/// let request = webhook_delivery(
///     "/webhooks/clerk",
///     "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
///     &event,
/// );
/// assert!(request.headers()["svix-signature"].to_str()?.starts_with("v1,"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Panics unless `secret` is base64, after an optional `whsec_` prefix.
pub fn webhook_delivery(uri: &str, secret: &str, event: &Value) -> Request<String> {
    webhook_delivery_at(
        uri,
        secret,
        &random_id("msg"),
        unix_seconds(),
        event.to_string(),
    )
}

/// A delivery of `body` as [`webhook_delivery`] builds it, with the
/// message `id` and the `timestamp` (Unix seconds) given: for a retry
/// (the same id), a stale or future delivery, or a body that is not an
/// event. Panics as [`webhook_delivery`] does.
pub fn webhook_delivery_at(
    uri: &str,
    secret: &str,
    id: &str,
    timestamp: i64,
    body: String,
) -> Request<String> {
    let signature = svix_signature(secret, id, timestamp, body.as_bytes());
    Request::post(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("svix-id", id)
        .header("svix-timestamp", timestamp.to_string())
        .header("svix-signature", signature)
        .body(body)
        .expect("a request URI and svix headers")
}

/// The `svix-signature` header of `body` sent as message `id` at
/// `timestamp`: `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`
/// keyed with the secret's decoded bytes. Panics as [`webhook_delivery`]
/// does.
pub fn svix_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let encoded = secret.trim();
    let encoded = encoded.strip_prefix("whsec_").unwrap_or(encoded);
    let key = SECRET_BASE64
        .decode(encoded)
        .expect("a webhook signing secret: whsec_ followed by base64");
    let mut context = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, &key));
    for part in [
        id.as_bytes(),
        b".",
        timestamp.to_string().as_bytes(),
        b".",
        body,
    ] {
        context.update(part);
    }
    format!("v1,{}", STANDARD.encode(context.sign().as_ref()))
}

/// Standard base64, padded or not, as Clerk's dashboard shows secrets.
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// svix's own test vector.
    #[test]
    fn svix_signature_matches_svix() {
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let expected = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
        let id = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
        assert_eq!(svix_signature(secret, id, 1649367553, body), expected);
        // The prefix is optional, as in Clerk's dashboard and svix's libraries.
        let bare = secret.trim_start_matches("whsec_");
        assert_eq!(svix_signature(bare, id, 1649367553, body), expected);
    }

    #[test]
    fn a_delivery_carries_svix_headers_over_its_body() {
        let event = json!({ "type": "user.deleted", "data": { "id": "user_1" } });
        let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let request = webhook_delivery("/hooks", secret, &event);
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(request.uri(), "/hooks");
        assert_eq!(request.body(), &event.to_string());
        let header = |name: &str| request.headers()[name].to_str().unwrap().to_owned();
        assert_eq!(header("content-type"), "application/json");
        let timestamp: i64 = header("svix-timestamp").parse().unwrap();
        assert!((timestamp - unix_seconds()).abs() <= 5, "{timestamp}");
        assert_eq!(
            header("svix-signature"),
            svix_signature(
                secret,
                &header("svix-id"),
                timestamp,
                request.body().as_bytes()
            )
        );
    }
}
