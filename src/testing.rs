//! Signing keys and session tokens for tests and local development.
//!
//! A [`SigningKey`] is a fresh RSA key pair; it publishes itself as a JWKS
//! document and signs tokens shaped like Clerk's. Nothing here is used by the
//! layer itself: it only trusts keys the [`Config`](crate::Config) names.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::{
    encoding::{AsDer, PublicKeyX509Der},
    rand::SystemRandom,
    rsa::{KeyPair, KeySize, PublicKeyComponents},
    signature::{KeyPair as _, RSA_PKCS1_SHA256},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
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

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}
