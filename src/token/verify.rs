//! Session-token verification: header and key checks, the RS256 signature,
//! then Clerk's claim rules.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{
    SessionClaims, TokenType,
    jws::{self, Algorithm, Algorithms, Header, decode_json},
    keys::KeyStore,
    rules::VerifierRules,
};
use crate::{
    clerk_id::{is_session_id, is_user_id},
    rejection::Rejection,
};

/// `cat` header values that mark a session token (or carry no category).
const SESSION_CATEGORIES: [&str; 2] = ["cl_B7d4PD111AAA", "cl_I7d4PD111III"];

/// The `cat` header value of a machine-to-machine token.
const M2M_CATEGORY: &str = "cl_B7d4PD333AAA";

/// Verifies Clerk session tokens: bytes in, claims out.
pub(crate) struct Verifier {
    rules: VerifierRules,
    keys: Arc<KeyStore>,
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
        let payload = self.signed_payload(token, session_header).await?;
        // Only now, with the signature checked, are the claims looked at.
        let mut claims: SessionClaims = decode_json(payload)?;
        self.check_claims(&claims, now_ms)?;
        claims.share_issuer(&self.rules.issuer);
        Ok(claims)
    }

    /// The claims of a machine credential in JWT form (an OAuth access
    /// token, a machine-to-machine token), verified at `now_ms` with the
    /// instance's keys: the header of its `kind`, the RS256 signature, a
    /// string `sub`, the times with the clock skew, the authorized parties
    /// when configured, and for an OAuth token the issuer.
    pub(crate) async fn verify_machine(
        &self,
        token: &[u8],
        kind: TokenType,
        now_ms: i64,
    ) -> Result<Map<String, Value>, Rejection> {
        let header_rule = match kind {
            TokenType::OauthToken => oauth_header,
            _ => m2m_header,
        };
        let payload = self.signed_payload(token, header_rule).await?;
        let claims: Map<String, Value> = decode_json(payload)?;
        let number = |name: &str| claims.get(name).and_then(Value::as_i64);
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        if text("sub").is_none() {
            return Err(Rejection::MalformedToken);
        }
        let exp = number("exp").ok_or(Rejection::MalformedToken)?;
        self.check_times(exp, number("nbf"), number("iat"), now_ms)?;
        self.check_party(text("azp"))?;
        // Clerk issues OAuth access tokens as its Frontend API, the
        // session tokens' issuer; a machine token's issuer is not published,
        // and the instance's own key is what ties it to the instance.
        if kind == TokenType::OauthToken && text("iss") != Some(self.rules.issuer.as_str()) {
            return Err(Rejection::InvalidIssuer);
        }
        Ok(claims)
    }

    /// The payload of `token` once its form, its header (RS256, then as
    /// `header_rule` judges it, before any key is fetched) and its signature
    /// check out.
    async fn signed_payload<'t>(
        &self,
        token: &'t [u8],
        header_rule: fn(&Header) -> Result<(), Rejection>,
    ) -> Result<&'t str, Rejection> {
        jws::verified_payload(
            token,
            self.rules.max_token_bytes,
            &self.keys,
            Algorithms::only(Algorithm::Rs256),
            header_rule,
        )
        .await
    }

    fn check_claims(&self, claims: &SessionClaims, now_ms: i64) -> Result<(), Rejection> {
        if !is_user_id(claims.sub()) || !is_session_id(claims.sid()) {
            return Err(Rejection::NotASessionToken);
        }
        let rules = &self.rules;
        if claims.iss() != rules.issuer.as_str() {
            return Err(Rejection::InvalidIssuer);
        }
        self.check_party(claims.azp())?;
        self.check_times(claims.exp(), claims.nbf(), claims.iat(), now_ms)?;
        check_lifetime(claims.exp(), claims.iat(), now_ms, rules.max_lifetime_ms)?;
        if claims.is_pending() && !rules.allow_pending {
            return Err(Rejection::SessionPending);
        }
        Ok(())
    }
}

impl Verifier {
    /// `azp` against the authorized parties, when any are configured (then
    /// a token without `azp` is refused).
    fn check_party(&self, azp: Option<&str>) -> Result<(), Rejection> {
        let parties = &self.rules.authorized_parties;
        if parties.is_empty() || azp.is_some_and(|azp| parties.iter().any(|party| party == azp)) {
            return Ok(());
        }
        Err(Rejection::UnauthorizedParty)
    }

    /// `exp`, `nbf` and `iat` (in seconds) at `now_ms`, with the clock skew.
    fn check_times(
        &self,
        exp: i64,
        nbf: Option<i64>,
        iat: Option<i64>,
        now_ms: i64,
    ) -> Result<(), Rejection> {
        check_times(exp, nbf, iat, now_ms, self.rules.skew_ms)
    }
}

/// `exp`, `nbf` and `iat` (in seconds) at `now_ms`, with `skew_ms` of
/// clock skew: the rule of every JWT the crate verifies.
pub(crate) fn check_times(
    exp: i64,
    nbf: Option<i64>,
    iat: Option<i64>,
    now_ms: i64,
    skew_ms: i64,
) -> Result<(), Rejection> {
    if exp.saturating_mul(1000) <= now_ms - skew_ms {
        return Err(Rejection::TokenExpired);
    }
    if nbf.is_some_and(|nbf| nbf.saturating_mul(1000) > now_ms + skew_ms) {
        return Err(Rejection::TokenNotYetValid);
    }
    if iat.is_some_and(|iat| iat.saturating_mul(1000) > now_ms + skew_ms) {
        return Err(Rejection::TokenIssuedInFuture);
    }
    Ok(())
}

/// The lifetime `exp` − `iat` (from `now_ms` without `iat`) at most
/// `max_ms`; a lifetime too long to compute is too long.
pub(crate) fn check_lifetime(
    exp: i64,
    iat: Option<i64>,
    now_ms: i64,
    max_ms: i64,
) -> Result<(), Rejection> {
    let issued_ms = iat.map_or(now_ms, |iat| iat.saturating_mul(1000));
    let lifetime_ms = exp.saturating_mul(1000).checked_sub(issued_ms);
    if lifetime_ms.is_none_or(|lifetime| lifetime > max_ms) {
        return Err(Rejection::TokenLifetimeExceeded);
    }
    Ok(())
}

/// A session token's header: typed `JWT` or untyped, of a session category
/// or none.
fn session_header(header: &Header) -> Result<(), Rejection> {
    if header.typ.as_deref().is_some_and(|typ| typ != "JWT") {
        return Err(Rejection::NotASessionToken);
    }
    match header.cat.as_deref() {
        Some(cat) if !SESSION_CATEGORIES.contains(&cat) => Err(Rejection::NotASessionToken),
        _ => Ok(()),
    }
}

/// An OAuth access token's header: typed as RFC 9068 says.
fn oauth_header(header: &Header) -> Result<(), Rejection> {
    match header.typ.as_deref() {
        Some("at+jwt" | "application/at+jwt") => Ok(()),
        _ => Err(Rejection::TokenTypeMismatch),
    }
}

/// A machine-to-machine token's header: typed `JWT` or untyped, of the
/// machine category or none (Clerk still issues some without one).
fn m2m_header(header: &Header) -> Result<(), Rejection> {
    let typed = header.typ.as_deref().is_none_or(|typ| typ == "JWT");
    let category = header.cat.as_deref().is_none_or(|cat| cat == M2M_CATEGORY);
    if typed && category {
        Ok(())
    } else {
        Err(Rejection::TokenTypeMismatch)
    }
}

#[cfg(test)]
mod tests;
