//! What verifying a session token needs to know, as values handed down by
//! whoever configures the layer: the token module reads no configuration.

use std::{sync::Arc, time::Duration};

use super::KeySource;

/// How the signing keys are obtained and kept fresh.
#[derive(Clone)]
pub(crate) struct KeyRules {
    pub(crate) source: KeySource,
    /// How often held keys are refreshed in the background.
    pub(crate) refresh_interval: Duration,
    /// The least time from the end of one fetch to the start of the next.
    pub(crate) refetch_cooldown: Duration,
    /// The bound of one fetch, connecting included.
    pub(crate) fetch_timeout: Duration,
    /// The largest key set accepted, in bytes.
    pub(crate) max_body: usize,
}

/// Clerk's claim rules, and the bounds checked before any crypto.
#[derive(Clone)]
pub(crate) struct VerifierRules {
    /// The expected `iss`, whose text every verified token's claims share.
    pub(crate) issuer: Arc<String>,
    /// Origins allowed in `azp`; empty: not checked.
    pub(crate) authorized_parties: Vec<String>,
    /// The clock skew allowed on `exp`, `nbf` and `iat`, in milliseconds.
    pub(crate) skew_ms: i64,
    /// The longest lifetime (`exp` − `iat`) accepted, in milliseconds.
    pub(crate) max_lifetime_ms: i64,
    /// Whether pending sessions are accepted.
    pub(crate) allow_pending: bool,
    /// The longest token accepted, in bytes.
    pub(crate) max_token_bytes: usize,
}

/// The error of a key that cannot verify tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a usable public key: an RSA public key in PEM (or base64 SPKI) form, or a JWKS \
     document holding a signing key"
)]
pub struct InvalidKey;
