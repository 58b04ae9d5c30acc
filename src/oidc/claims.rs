//! What a verified token of an OpenID Connect issuer says: its issuer and
//! subject, which key the user's row, and every claim, for the app to read
//! into its own type.

use std::{fmt, sync::Arc};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{store::Profile, token::scope};

/// The verified claims of an OpenID Connect issuer's token.
///
/// ```
/// # fn handler(user: ensure_user::LocalUser) {
/// #[derive(serde::Deserialize)]
/// struct Roles {
///     #[serde(rename = "https://example.com/roles", default)]
///     roles: Vec<String>,
/// }
/// if let Some(claims) = user.oidc_claims() {
///     let roles: Roles = claims.extra().unwrap_or(Roles { roles: Vec::new() });
///     println!("{} at {}: {:?}", claims.subject(), claims.issuer(), roles.roles);
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct OidcClaims {
    /// The issuer as configured (an alias in `iss` reads as this).
    issuer: Arc<str>,
    subject: String,
    /// What the user's row, caches and bans go by: `<issuer>#<subject>`,
    /// or the subject alone where the issuer is so configured.
    key: String,
    /// `<issuer>#<sid>` (or `#<jti>`) where the token has either, which ending
    /// a session names; empty otherwise, which nothing ends.
    credential_id: String,
    expires_at_ms: i64,
    scopes: Vec<String>,
    profile: Profile,
    /// Every claim: an object, read in place by [`extra`](Self::extra).
    claims: Value,
}

impl OidcClaims {
    pub(crate) fn new(
        issuer: Arc<str>,
        subject: String,
        key: String,
        claims: Map<String, Value>,
        expires_at_ms: i64,
        profile: Profile,
    ) -> Self {
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        let credential_id = text("sid")
            .or(text("jti"))
            .map(|id| credential_key(&issuer, id))
            .unwrap_or_default();
        let scopes = scope::listed(&claims, "scp")
            .or_else(|| scope::listed(&claims, "scope"))
            .unwrap_or_default();
        Self {
            key,
            issuer,
            subject,
            credential_id,
            expires_at_ms,
            scopes,
            profile,
            claims: Value::Object(claims),
        }
    }

    /// The issuer, as configured: the first half of the user's key.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The user's stable id at the issuer (`sub`, or the claim the issuer's
    /// rules name, such as Entra's `oid`): the second half of the key.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// A claim by name, as the token holds it.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }

    /// Every claim, read into the app's own type (custom and namespaced
    /// claims included, with `#[serde(rename = "https://…")]`).
    pub fn extra<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.claims)
    }

    /// The scopes granted: `scp` (a list or a string, as Okta and Entra
    /// write it) or `scope` (space-separated, RFC 9068).
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The user key.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn credential_id(&self) -> &str {
        &self.credential_id
    }

    pub(crate) fn expires_at_ms(&self) -> i64 {
        self.expires_at_ms
    }

    /// The profile read from the claims the issuer's rules name.
    pub(crate) fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Bytes held on the heap, roughly, for the token cache's budget.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.subject.len()
            + self.key.len()
            + self.credential_id.len()
            + self.scopes.iter().map(|s| s.len() + 24).sum::<usize>()
            + value_bytes(&self.claims)
    }
}

/// The id under which a session (`sid`) or token (`jti`) of `issuer` is
/// ended: namespaced, so that no other issuer's, nor Clerk's, can match it.
pub(crate) fn credential_key(issuer: &str, id: &str) -> String {
    format!("{issuer}#{id}")
}

/// Shows the issuer and subject only: claims may carry personal data.
impl fmt::Debug for OidcClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcClaims")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

fn value_bytes(value: &Value) -> usize {
    match value {
        Value::String(text) => text.len(),
        Value::Array(items) => items.iter().map(|item| value_bytes(item) + 16).sum(),
        Value::Object(map) => map
            .iter()
            .map(|(name, value)| name.len() + value_bytes(value) + 64)
            .sum(),
        _ => 0,
    }
}
