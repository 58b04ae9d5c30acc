//! Session-token verification: header and key checks, the RS256 signature,
//! then Clerk's claim rules, with verified tokens remembered until they expire.

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, crypto};
use serde::Deserialize;

use super::{
    SessionClaims,
    cache::TokenCache,
    keys::{KeyError, KeyStore},
};
use crate::{
    LocalId, Rejection,
    clerk_id::{is_session_id, is_user_id},
    config::Config,
};

/// `cat` header values that mark a session token (or carry no category).
const SESSION_CATEGORIES: [&str; 2] = ["cl_B7d4PD111AAA", "cl_I7d4PD111III"];

/// Verifies Clerk session tokens and remembers the ones that passed.
pub(crate) struct Verifier {
    issuer: String,
    authorized_parties: Vec<String>,
    skew_ms: i64,
    allow_pending: bool,
    max_token_bytes: usize,
    keys: Arc<KeyStore>,
    verified: Option<TokenCache>,
}

/// A token that passed verification, and the local user it resolved to.
///
/// A cache hit reads `resolved_in`, `user` and `exp_ms` and bumps the
/// reference count, so they come first (`repr(C)`): with the count they
/// share one cache line, and the claims behind them are not touched at all.
#[repr(C)]
pub(crate) struct VerifiedToken {
    /// One more than the latest user generation the local id was confirmed
    /// under (0: never), so that a repeat request needs no user-cache lookup.
    resolved_in: AtomicU64,
    /// The user's local id, from the first resolution.
    user: OnceLock<LocalId>,
    /// `exp` in milliseconds.
    pub(crate) exp_ms: i64,
    pub(crate) claims: SessionClaims,
}

impl VerifiedToken {
    pub(crate) fn new(claims: SessionClaims) -> Self {
        Self {
            resolved_in: AtomicU64::new(0),
            user: OnceLock::new(),
            exp_ms: claims.exp.saturating_mul(1000),
            claims,
        }
    }

    /// The remembered local id, if it was confirmed under `generation`.
    pub(crate) fn user(&self, generation: u64) -> Option<LocalId> {
        if self.resolved_in.load(Ordering::Acquire) != generation + 1 {
            return None;
        }
        self.user.get().copied()
    }

    /// Remembers the user this token resolved to under `generation` (read
    /// before the lookup). After a `forget_all_users` the next resolution
    /// confirms the id again; should a user's row ever have been replaced
    /// (another id), the token keeps taking the lookup path until it expires.
    pub(crate) fn remember_user(&self, generation: u64, id: LocalId) {
        if *self.user.get_or_init(|| id) == id {
            self.resolved_in.fetch_max(generation + 1, Ordering::AcqRel);
        }
    }
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
    pub(crate) fn new(config: &Config, keys: Arc<KeyStore>) -> Self {
        let skew_ms = i64::try_from(config.clock_skew.as_millis()).unwrap_or(i64::MAX / 4);
        let verified = (config.token_cache_bytes > 0)
            .then(|| TokenCache::new(config.token_cache_bytes, skew_ms));
        Self {
            issuer: config.issuer.clone(),
            authorized_parties: config.authorized_parties.clone(),
            skew_ms,
            allow_pending: config.allow_pending_sessions,
            max_token_bytes: config.max_token_bytes,
            keys,
            verified,
        }
    }

    /// `token`'s cache entry, if it was verified before: the entry while the
    /// token is still unexpired, `token_expired` after. `None` on a miss.
    pub(crate) fn cached(&self, token: &[u8]) -> Option<Result<Arc<VerifiedToken>, Rejection>> {
        let verified = self.verified.as_ref()?.get(token)?;
        // Entries stay until swept: the time check runs on every hit.
        if verified.exp_ms <= now_ms() - self.skew_ms {
            return Some(Err(Rejection::TokenExpired));
        }
        Some(Ok(verified))
    }

    /// `token` verified now (it was not in the cache) and cached.
    pub(crate) async fn verify_new(&self, token: &[u8]) -> Result<Arc<VerifiedToken>, Rejection> {
        // Boxed, so that the state of this rare path (key fetch included) is
        // not carried by the future of every request.
        let now_ms = now_ms();
        let claims = Box::pin(self.verify_uncached(token, now_ms)).await?;
        let verified = Arc::new(VerifiedToken::new(claims));
        Ok(match &self.verified {
            Some(cache) => cache.insert(token, verified, now_ms),
            None => verified,
        })
    }

    async fn verify_uncached(&self, token: &[u8], now_ms: i64) -> Result<SessionClaims, Rejection> {
        // A compact JWS: three base64url segments joined by dots, nothing else.
        let alphabet = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
        if token.len() > self.max_token_bytes || !token.iter().all(alphabet) {
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
        let valid = crypto::verify(
            signature_b64,
            signing_input.as_bytes(),
            &key,
            Algorithm::RS256,
        )
        .unwrap_or(false);
        if !valid {
            return Err(Rejection::InvalidSignature);
        }
        // Only now, with the signature checked, are the claims looked at.
        let claims: SessionClaims = decode_json(payload_b64)?;
        self.check_claims(&claims, now_ms)?;
        Ok(claims)
    }

    fn check_claims(&self, claims: &SessionClaims, now_ms: i64) -> Result<(), Rejection> {
        if !is_user_id(&claims.sub) || !is_session_id(&claims.sid) {
            return Err(Rejection::NotASessionToken);
        }
        if claims.iss != self.issuer {
            return Err(Rejection::InvalidIssuer);
        }
        if !self.authorized_parties.is_empty() {
            let allowed = claims
                .azp
                .as_ref()
                .is_some_and(|azp| self.authorized_parties.contains(azp));
            if !allowed {
                return Err(Rejection::UnauthorizedParty);
            }
        }
        let skew = self.skew_ms;
        if claims.exp.saturating_mul(1000) <= now_ms - skew {
            return Err(Rejection::TokenExpired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf.saturating_mul(1000) > now_ms + skew)
        {
            return Err(Rejection::TokenNotYetValid);
        }
        if claims
            .iat
            .is_some_and(|iat| iat.saturating_mul(1000) > now_ms + skew)
        {
            return Err(Rejection::TokenIssuedInFuture);
        }
        if claims.is_pending() && !self.allow_pending {
            return Err(Rejection::SessionPending);
        }
        Ok(())
    }

    pub(crate) fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// Forgets every cached token of one user (after a deletion, say).
    pub(crate) fn forget_user(&self, clerk_id: &str) {
        if let Some(cache) = &self.verified {
            cache.forget_user(clerk_id);
        }
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(segment: &str) -> Result<T, Rejection> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| Rejection::MalformedToken)?;
    serde_json::from_slice(&bytes).map_err(|_| Rejection::MalformedToken)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified() -> VerifiedToken {
        let claims: SessionClaims = serde_json::from_value(serde_json::json!({
            "sub": "user_a",
            "sid": "sess_a",
            "exp": 2_000_000_000,
        }))
        .unwrap();
        VerifiedToken::new(claims)
    }

    #[test]
    fn the_remembered_user_follows_the_generation() {
        let token = verified();
        assert_eq!(token.user(0), None);
        token.remember_user(0, LocalId::Int(7));
        assert_eq!(token.user(0), Some(LocalId::Int(7)));
        // `forget_all_users` moved on: void until confirmed again.
        assert_eq!(token.user(1), None);
        token.remember_user(1, LocalId::Int(7));
        assert_eq!(token.user(1), Some(LocalId::Int(7)));
        // A late answer from before does not take the token back.
        token.remember_user(0, LocalId::Int(7));
        assert_eq!(token.user(1), Some(LocalId::Int(7)));
    }

    #[test]
    fn a_different_id_is_never_served_from_the_token() {
        let token = verified();
        token.remember_user(0, LocalId::Int(7));
        token.remember_user(1, LocalId::Int(8));
        assert_eq!(token.user(1), None);
        assert_eq!(token.user(0), Some(LocalId::Int(7)));
    }
}
