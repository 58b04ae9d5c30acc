//! Session-token verification: header and key checks, the RS256 signature,
//! then Clerk's claim rules.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;

use super::{
    SessionClaims,
    keys::{KeyError, KeyStore, VerifyingKey},
    rules::VerifierRules,
};
use crate::{
    clerk::id::{is_session_id, is_user_id},
    rejection::Rejection,
};

/// `cat` header values that mark a session token (or carry no category).
const SESSION_CATEGORIES: [&str; 2] = ["cl_B7d4PD111AAA", "cl_I7d4PD111III"];

/// Verifies Clerk session tokens: bytes in, claims out.
pub(crate) struct Verifier {
    rules: VerifierRules,
    keys: Arc<KeyStore>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    cat: Option<String>,
}

impl Verifier {
    pub(crate) fn new(rules: VerifierRules, keys: Arc<KeyStore>) -> Self {
        Self { rules, keys }
    }

    /// The claims of `token`, verified at `now_ms`: its form, header and
    /// key, the RS256 signature, then Clerk's claim rules.
    pub(crate) async fn verify(
        &self,
        token: &[u8],
        now_ms: i64,
    ) -> Result<SessionClaims, Rejection> {
        // A compact JWS: three base64url segments joined by dots, nothing else.
        let alphabet = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
        if token.len() > self.rules.max_token_bytes || !token.iter().all(alphabet) {
            return Err(Rejection::MalformedToken);
        }
        let token = std::str::from_utf8(token).map_err(|_| Rejection::MalformedToken)?;
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Rejection::MalformedToken);
        };
        if header_b64.is_empty() || payload_b64.is_empty() || signature_b64.is_empty() {
            return Err(Rejection::MalformedToken);
        }
        let header: Header = decode_json(header_b64)?;
        if header.alg != "RS256" {
            return Err(Rejection::UnsupportedAlgorithm);
        }
        if header.typ.as_deref().is_some_and(|typ| typ != "JWT") {
            return Err(Rejection::NotASessionToken);
        }
        if let Some(cat) = header.cat.as_deref()
            && !SESSION_CATEGORIES.contains(&cat)
        {
            return Err(Rejection::NotASessionToken);
        }
        let key = self
            .keys
            .key_for(header.kid.as_deref())
            .await
            .map_err(|error| match error {
                KeyError::Unknown => Rejection::UnknownKey,
                KeyError::Unavailable => Rejection::KeysUnavailable,
            })?;
        let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
        if !signature_verifies(&key, signing_input.as_bytes(), signature_b64) {
            return Err(Rejection::InvalidSignature);
        }
        // Only now, with the signature checked, are the claims looked at.
        let mut claims: SessionClaims = decode_json(payload_b64)?;
        self.check_claims(&claims, now_ms)?;
        claims.share_issuer(&self.rules.issuer);
        Ok(claims)
    }

    fn check_claims(&self, claims: &SessionClaims, now_ms: i64) -> Result<(), Rejection> {
        if !is_user_id(claims.sub()) || !is_session_id(claims.sid()) {
            return Err(Rejection::NotASessionToken);
        }
        let rules = &self.rules;
        if claims.iss() != rules.issuer.as_str() {
            return Err(Rejection::InvalidIssuer);
        }
        if !rules.authorized_parties.is_empty() {
            let allowed = claims
                .azp()
                .is_some_and(|azp| rules.authorized_parties.iter().any(|party| party == azp));
            if !allowed {
                return Err(Rejection::UnauthorizedParty);
            }
        }
        let skew = rules.skew_ms;
        if claims.exp().saturating_mul(1000) <= now_ms - skew {
            return Err(Rejection::TokenExpired);
        }
        if claims
            .nbf()
            .is_some_and(|nbf| nbf.saturating_mul(1000) > now_ms + skew)
        {
            return Err(Rejection::TokenNotYetValid);
        }
        if claims
            .iat()
            .is_some_and(|iat| iat.saturating_mul(1000) > now_ms + skew)
        {
            return Err(Rejection::TokenIssuedInFuture);
        }
        let issued_ms = claims.iat().map_or(now_ms, |iat| iat.saturating_mul(1000));
        // A lifetime too long to compute is too long.
        let lifetime_ms = claims.exp().saturating_mul(1000).checked_sub(issued_ms);
        if lifetime_ms.is_none_or(|lifetime| lifetime > rules.max_lifetime_ms) {
            return Err(Rejection::TokenLifetimeExceeded);
        }
        if claims.is_pending() && !rules.allow_pending {
            return Err(Rejection::SessionPending);
        }
        Ok(())
    }
}

/// The signature of the largest key accepted: 8192 bits.
const MAX_SIGNATURE_BYTES: usize = 8192 / 8;

/// Whether the base64url `signature` is `key`'s RS256 signature of `signing_input`.
fn signature_verifies(key: &VerifyingKey, signing_input: &[u8], signature: &str) -> bool {
    let mut decoded = [0; MAX_SIGNATURE_BYTES];
    match URL_SAFE_NO_PAD.decode_slice(signature, &mut decoded) {
        Ok(length) => key.verifies(signing_input, &decoded[..length]),
        Err(_) => false,
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(segment: &str) -> Result<T, Rejection> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| Rejection::MalformedToken)?;
    serde_json::from_slice(&bytes).map_err(|_| Rejection::MalformedToken)
}

#[cfg(test)]
mod tests;
