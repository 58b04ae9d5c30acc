//! Which verifier checks a presented credential: a configured OpenID
//! Connect issuer's when the token claims one; otherwise its kind as Clerk
//! tells it, whether the layer accepts that kind, then the verifier of the kind —
//! a session token or a machine JWT with the instance's keys, an opaque
//! machine credential through the Backend API — and until when the
//! verified credential may be served without asking again.

use std::time::Duration;

use crate::{
    config::Config,
    machine::{MachineCredential, MachineVerifier},
    oidc::verify::Issuers,
    principal::{entry::VerifiedToken, proof::Proof},
    rejection::Rejection,
    token::{
        AcceptedTokens, TokenType,
        kind::{Classified, classify},
        verify::Verifier,
    },
};

/// Every verifier of the credentials a layer accepts.
pub(crate) struct Credentials {
    /// The OpenID Connect issuers configured, picked by `iss`.
    issuers: Issuers,
    /// Whether Clerk's credentials are accepted at all.
    clerk: bool,
    accepted: AcceptedTokens,
    /// Session tokens and machine JWTs, with the instance's keys.
    jwts: Verifier,
    /// Opaque machine credentials; `None` when no opaque kind is accepted.
    opaque: Option<MachineVerifier>,
    /// How long a verified opaque credential is served without asking Clerk.
    remember_for: Duration,
    skew_ms: i64,
    max_token_bytes: usize,
}

impl Credentials {
    pub(crate) fn new(config: &Config, jwts: Verifier) -> Self {
        let accepted = config.accepted_tokens();
        let opaque_accepted = [
            TokenType::ApiKey,
            TokenType::M2mToken,
            TokenType::OauthToken,
        ]
        .into_iter()
        .any(|kind| accepted.contains(kind));
        Self {
            issuers: Issuers::new(config),
            clerk: config.accepts_clerk(),
            accepted,
            jwts,
            opaque: opaque_accepted.then(|| MachineVerifier::new(&config.machine_rules())),
            remember_for: config.credential_cache_interval,
            skew_ms: config.skew_ms(),
            max_token_bytes: config.max_token_bytes,
        }
    }

    /// `token`, verified at `now_ms`, as the token cache keeps it.
    pub(crate) async fn verify(
        &self,
        token: &[u8],
        now_ms: i64,
    ) -> Result<VerifiedToken, Rejection> {
        if let Some(issuer) = self.issuers.pick(token) {
            let claims = issuer.verify(token, now_ms).await?;
            let fresh_until_ms = claims.expires_at_ms().saturating_add(issuer.skew_ms());
            return Ok(VerifiedToken::new(Proof::of_oidc(claims), fresh_until_ms));
        }
        let kind = classify(token);
        if !self.clerk {
            return Err(match kind {
                Classified::Opaque(_) => Rejection::TokenTypeMismatch,
                _ if token.len() > self.max_token_bytes => Rejection::MalformedToken,
                _ => Rejection::InvalidIssuer,
            });
        }
        if !self.accepted.contains(kind.token_type()) {
            return Err(Rejection::TokenTypeMismatch);
        }
        match kind {
            Classified::Session => {
                let claims = self.jwts.verify(token, now_ms).await?;
                Ok(VerifiedToken::session(claims, self.skew_ms))
            }
            Classified::Jwt(kind) => {
                let claims = self.jwts.verify_machine(token, kind, now_ms).await?;
                let credential =
                    MachineCredential::from_jwt(kind, claims).ok_or(Rejection::MalformedToken)?;
                let fresh_until_ms = credential
                    .expires_at_ms()
                    .unwrap_or(i64::MAX)
                    .saturating_add(self.skew_ms);
                Ok(VerifiedToken::new(
                    Proof::of_machine(credential),
                    fresh_until_ms,
                ))
            }
            Classified::Opaque(kind) => {
                let verifier = self.opaque.as_ref().ok_or(Rejection::TokenTypeMismatch)?;
                // Opaque credentials are printable ASCII by construction.
                let text = std::str::from_utf8(token).map_err(|_| Rejection::CredentialNotFound)?;
                let credential = verifier.verify(kind, text).await?;
                let fresh_until_ms = credential.fresh_until_ms(now_ms, self.remember_for);
                Ok(VerifiedToken::new(
                    Proof::of_machine(credential),
                    fresh_until_ms,
                ))
            }
        }
    }

    /// The configured OpenID Connect issuers.
    pub(crate) fn issuers(&self) -> &Issuers {
        &self.issuers
    }

    /// Whether Clerk's credentials are accepted.
    pub(crate) fn accepts_clerk(&self) -> bool {
        self.clerk
    }
}
