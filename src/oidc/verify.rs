//! Verifying an OpenID Connect issuer's token: the issuer picked by the
//! token's `iss` (read before verification for that alone), then its own
//! keys and its own rules.

use std::{borrow::Cow, sync::Arc};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{
    claims::OidcClaims,
    discovery::IssuerKeyStore,
    issuer::{Issuer, TokenUse},
};
use crate::{
    config::Config,
    rejection::Rejection,
    token::{
        jws::{self, Algorithms, Header},
        keys::KeyHealth,
        verify::{check_lifetime, check_times},
    },
};

/// The longest subject accepted, in bytes.
const MAX_SUBJECT_BYTES: usize = 255;

/// Every configured issuer's verifier, picked by `iss`.
pub(crate) struct Issuers {
    verifiers: Vec<IssuerVerifier>,
    /// The longest token whose `iss` is read.
    max_token_bytes: usize,
}

impl Issuers {
    /// The verifiers of the issuers `config` names, each with a key store
    /// of its own.
    pub(crate) fn new(config: &Config) -> Self {
        let verifiers = config
            .oidc_issuers
            .iter()
            .map(|issuer| IssuerVerifier::new(issuer, config))
            .collect();
        Self {
            verifiers,
            max_token_bytes: config.max_token_bytes,
        }
    }

    /// The verifier of the issuer `token` claims, if it claims one of them.
    /// The claim is not trusted: the verifier checks it again, with keys
    /// that are that issuer's alone.
    /// A token longer than the layer accepts is read no further.
    pub(crate) fn pick(&self, token: &[u8]) -> Option<&IssuerVerifier> {
        if self.verifiers.is_empty() || token.len() > self.max_token_bytes {
            return None;
        }
        with_claimed_issuer(token, |iss| {
            self.verifiers
                .iter()
                .find(|verifier| verifier.rules.names(iss))
        })
    }

    /// Fetches every issuer's keys now (discovering first where need
    /// be); how many are held, or the first issuer's refusal.
    pub(crate) async fn prefetch(&self) -> Result<usize, Rejection> {
        let mut held = 0;
        for verifier in &self.verifiers {
            let store = verifier.keys.get().await?;
            held += store
                .prefetch()
                .await
                .map_err(|_| Rejection::KeysUnavailable)?;
        }
        Ok(held)
    }

    /// Keys held by every issuer together, and whether any issuer's keys
    /// could not be had at the last attempt.
    pub(crate) async fn health(&self) -> Option<KeyHealth> {
        let mut total: Option<KeyHealth> = None;
        for verifier in &self.verifiers {
            let mut health = verifier.keys.health().await;
            // An issuer without a key cannot verify its tokens.
            health.last_fetch_failed |= health.held == 0;
            total = Some(match total {
                Some(sum) => sum.and(health),
                None => health,
            });
        }
        total
    }
}

/// One issuer's verifier.
pub(crate) struct IssuerVerifier {
    rules: Issuer,
    issuer: Arc<str>,
    keys: IssuerKeyStore,
    skew_ms: i64,
    max_lifetime_ms: i64,
    max_token_bytes: usize,
}

impl IssuerVerifier {
    fn new(rules: &Issuer, config: &Config) -> Self {
        let skew = rules.clock_skew.unwrap_or(config.clock_skew);
        let millis = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4);
        Self {
            issuer: Arc::from(rules.issuer.as_str()),
            keys: IssuerKeyStore::new(&rules.issuer, &rules.keys, config.key_rules()),
            skew_ms: millis(skew),
            max_lifetime_ms: millis(rules.max_lifetime),
            max_token_bytes: config.max_token_bytes,
            rules: rules.clone(),
        }
    }

    /// A verifier of `rules` holding the keys of the JWKS document `jwks`,
    /// as if fetched just now.
    #[cfg(test)]
    pub(crate) fn holding(rules: &Issuer, jwks: &[u8]) -> Self {
        let config = Config::for_issuers([]).expect("no issuer to refuse");
        let mut verifier = Self::new(rules, &config);
        let store = crate::token::keys::KeyStore::holding(&config.key_rules(), jwks);
        verifier.keys = IssuerKeyStore::Ready(Arc::new(store));
        verifier
    }

    /// The clock skew this issuer's tokens are checked with, in milliseconds.
    pub(crate) fn skew_ms(&self) -> i64 {
        self.skew_ms
    }

    /// The claims of `token`, verified at `now_ms`: the header for the
    /// accepted token use, a key of this issuer bound to the token's
    /// algorithm, the signature, then the issuer, times, audience, required
    /// claims and subject.
    pub(crate) async fn verify(&self, token: &[u8], now_ms: i64) -> Result<OidcClaims, Rejection> {
        let keys = self.keys.get().await?;
        let token_use = self.rules.token_use;
        let payload = jws::verified_payload(
            token,
            self.max_token_bytes,
            keys,
            Algorithms::all(),
            |header: &Header| typed_for(token_use, header.typ.as_deref()),
        )
        .await?;
        let claims: Map<String, Value> = jws::decode_json(payload)?;
        self.check(&claims, now_ms)?;
        let subject = self.subject(&claims)?;
        let profile = self.rules.profile_claims.read_map(&claims);
        let expires_at_ms = seconds(&claims, "exp")
            .ok_or(Rejection::MalformedToken)?
            .saturating_mul(1000);
        let key = self.rules.user_key(&subject);
        Ok(OidcClaims::new(
            Arc::clone(&self.issuer),
            subject,
            key,
            claims,
            expires_at_ms,
            profile,
        ))
    }

    fn check(&self, claims: &Map<String, Value>, now_ms: i64) -> Result<(), Rejection> {
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        if !text("iss").is_some_and(|iss| self.rules.names(iss)) {
            return Err(Rejection::InvalidIssuer);
        }
        let exp = seconds(claims, "exp").ok_or(Rejection::MalformedToken)?;
        let iat = seconds(claims, "iat");
        check_times(exp, seconds(claims, "nbf"), iat, now_ms, self.skew_ms)?;
        check_lifetime(exp, iat, now_ms, self.max_lifetime_ms)?;
        if !self.audience_matches(claims.get(&self.rules.audience_claim)) {
            return Err(Rejection::InvalidAudience);
        }
        let required = |(name, value): &(String, String)| text(name) == Some(value.as_str());
        if !self.rules.required_claims.iter().all(required) {
            return Err(Rejection::TokenTypeMismatch);
        }
        // An ID token's marks, where access tokens are expected.
        if self.rules.token_use == TokenUse::AccessToken
            && ["nonce", "at_hash", "c_hash"]
                .iter()
                .any(|name| claims.contains_key(*name))
        {
            return Err(Rejection::TokenTypeMismatch);
        }
        Ok(())
    }

    /// Whether the audience claim names a configured audience (a string,
    /// or an array holding one); anything goes when none is configured.
    fn audience_matches(&self, claim: Option<&Value>) -> bool {
        let audiences = &self.rules.audiences;
        if audiences.is_empty() {
            return true;
        }
        let named = |value: &Value| {
            value
                .as_str()
                .is_some_and(|aud| audiences.iter().any(|wanted| wanted == aud))
        };
        match claim {
            Some(Value::Array(values)) => values.iter().any(named),
            Some(value) => named(value),
            None => false,
        }
    }

    /// The user's id at the issuer: a token without one, or whose subject
    /// marks a machine, is not a user's.
    fn subject(&self, claims: &Map<String, Value>) -> Result<String, Rejection> {
        let subject = claims
            .get(&self.rules.subject_claim)
            .and_then(Value::as_str)
            .filter(|subject| !subject.is_empty())
            .ok_or(Rejection::TokenTypeMismatch)?;
        if let Some(suffix) = &self.rules.machine_subject_suffix
            && subject.ends_with(suffix.as_str())
        {
            return Err(Rejection::TokenTypeMismatch);
        }
        if subject.len() > MAX_SUBJECT_BYTES || subject.chars().any(char::is_control) {
            return Err(Rejection::MalformedToken);
        }
        Ok(subject.to_owned())
    }
}

/// Whether a header's `typ` fits the token use: RFC 9068's `at+jwt` for
/// typed access tokens; `JWT`, none or `at+jwt` for others' access tokens;
/// anything but `at+jwt` for ID tokens.
fn typed_for(token_use: TokenUse, typ: Option<&str>) -> Result<(), Rejection> {
    let is = |name: &str| typ.is_some_and(|typ| typ.eq_ignore_ascii_case(name));
    let access = is("at+jwt") || is("application/at+jwt");
    let plain = typ.is_none() || is("JWT");
    let fits = match token_use {
        TokenUse::Rfc9068AccessToken => access,
        TokenUse::AccessToken => access || plain,
        TokenUse::IdToken => plain,
    };
    if fits {
        Ok(())
    } else {
        Err(Rejection::TokenTypeMismatch)
    }
}

/// A time claim in whole seconds (a fractional one rounded down).
fn seconds(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    let value = claims.get(name)?;
    value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|seconds| seconds.is_finite())
            .map(|seconds| seconds.floor() as i64)
    })
}

/// `read` of the `iss` a compact JWS claims, read without verifying
/// anything (and borrowed from the decoded payload where it can be): it
/// only picks whose keys and rules verify the token.
fn with_claimed_issuer<T>(token: &[u8], read: impl FnOnce(&str) -> Option<T>) -> Option<T> {
    #[derive(Deserialize)]
    struct Claimed<'a> {
        #[serde(borrow)]
        iss: Option<Cow<'a, str>>,
    }
    let mut parts = token.split(|byte| *byte == b'.');
    let (_, payload) = (parts.next()?, parts.next()?);
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claimed: Claimed<'_> = serde_json::from_slice(&bytes).ok()?;
    read(claimed.iss.as_deref()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_use_takes_its_own_typing() {
        use TokenUse::*;
        for (token_use, typ, fits) in [
            (Rfc9068AccessToken, Some("at+jwt"), true),
            (Rfc9068AccessToken, Some("application/at+jwt"), true),
            (Rfc9068AccessToken, Some("JWT"), false),
            (Rfc9068AccessToken, None, false),
            (AccessToken, Some("JWT"), true),
            (AccessToken, None, true),
            (AccessToken, Some("at+JWT"), true),
            (AccessToken, Some("logout+jwt"), false),
            (IdToken, Some("JWT"), true),
            (IdToken, None, true),
            (IdToken, Some("at+jwt"), false),
        ] {
            assert_eq!(
                typed_for(token_use, typ).is_ok(),
                fits,
                "{token_use:?} {typ:?}"
            );
        }
    }

    #[tokio::test]
    async fn keys_given_as_a_document_verify_with_no_network() {
        use crate::{testing::JwsKey, token::KeySource};
        let key = JwsKey::generate("EdDSA", "given-1");
        let jwks = JwsKey::jwks(&[&key]).to_string();
        let issuer = Issuer::new("https://id.example.com")
            .with_keys(KeySource::jwks_document(&jwks).unwrap());
        let config = Config::for_issuers([issuer.clone()]).unwrap();
        let verifier = IssuerVerifier::new(&issuer, &config);
        let now = 1_800_000_000;
        let claims = serde_json::json!({
            "iss": "https://id.example.com", "sub": "s", "iat": now, "exp": now + 60,
        });
        let token = key.sign(&serde_json::json!({ "typ": "at+jwt" }), &claims);
        let verified = verifier.verify(token.as_bytes(), now * 1000).await.unwrap();
        assert_eq!(verified.key(), "https://id.example.com#s");
        let stranger = JwsKey::generate("EdDSA", "given-2");
        let token = stranger.sign(&serde_json::json!({ "typ": "at+jwt" }), &claims);
        assert_eq!(
            verifier
                .verify(token.as_bytes(), now * 1000)
                .await
                .unwrap_err(),
            Rejection::UnknownKey
        );
        assert!(KeySource::jwks_document(r#"{"keys":[]}"#).is_err());
    }

    #[test]
    fn the_claimed_issuer_is_read_from_the_payload_alone() {
        let segment = |json: &str| URL_SAFE_NO_PAD.encode(json);
        let claimed_issuer = |token: &[u8]| with_claimed_issuer(token, |iss| Some(iss.to_owned()));
        let token = format!(
            "{}.{}.sig",
            segment("{}"),
            segment(r#"{"iss":"https://a"}"#)
        );
        assert_eq!(
            claimed_issuer(token.as_bytes()).as_deref(),
            Some("https://a")
        );
        assert_eq!(claimed_issuer(b"ak_123"), None);
        assert_eq!(
            claimed_issuer(format!("x.{}.y", segment("{}")).as_bytes()),
            None
        );
    }
}
