//! The user a handler receives: the app's own row id, the Clerk user, and
//! the credential the request carried.

use std::fmt;

use super::{LocalOrganization, Principal};

use crate::{
    authorization::Requirement,
    local_id::LocalId,
    oidc::OidcClaims,
    token::{SessionClaims, TokenType},
};

/// The authenticated user of a request: the local row id and the verified
/// credential (a session token, or the user's API key or OAuth token).
///
/// Handlers take it as an extractor; it is the [`Principal`] the layer put
/// into the request, when that principal is a user. Cloning is cheap (an `Arc`).
#[derive(Clone)]
pub struct LocalUser(Principal);

impl LocalUser {
    /// The user of `principal`, if the principal is a user with a row.
    pub(crate) fn of(principal: Principal) -> Option<Self> {
        principal.rows().user.is_some().then_some(Self(principal))
    }

    /// The id of the app's own user row.
    pub fn id(&self) -> LocalId {
        match self.0.rows().user {
            Some(id) => id,
            // Built only from a principal with a user row.
            None => unreachable!("a LocalUser without a row"),
        }
    }

    /// The Clerk user id (`user_…`): the session token's `sub`, or the
    /// subject of the user's API key or OAuth token. Empty for a user of
    /// another OpenID Connect issuer: see [`issuer`](Self::issuer) and
    /// [`subject`](Self::subject).
    pub fn clerk_id(&self) -> &str {
        self.0.entry().proof.clerk_user().unwrap_or_default()
    }

    /// The issuer of a user of a configured OpenID Connect issuer; `None`
    /// for Clerk's users.
    pub fn issuer(&self) -> Option<&str> {
        self.oidc_claims().map(OidcClaims::issuer)
    }

    /// The user's id at their issuer: the Clerk user id for Clerk's users,
    /// the token's subject (as the issuer's rules name it) for others.
    pub fn subject(&self) -> &str {
        match self.oidc_claims() {
            Some(claims) => claims.subject(),
            None => self.clerk_id(),
        }
    }

    /// Every verified claim of an OpenID Connect issuer's token, custom
    /// and namespaced ones included, when the request carried one.
    pub fn oidc_claims(&self) -> Option<&OidcClaims> {
        self.0.oidc_claims()
    }

    /// The Clerk session id (`sess_…`), when the request carried a session token.
    pub fn session_id(&self) -> Option<&str> {
        self.claims().map(SessionClaims::sid)
    }

    /// Every verified claim of the session token, when the request carried one.
    pub fn claims(&self) -> Option<&SessionClaims> {
        self.0.session()
    }

    /// The kind of credential the request carried.
    pub fn token_type(&self) -> TokenType {
        self.0.token_type()
    }

    /// Whether the session meets `requirement`, as Clerk's `has()` decides;
    /// always `false` for an API key or an OAuth token, as with Clerk's.
    pub fn has(&self, requirement: &Requirement) -> bool {
        self.0.has(requirement)
    }

    /// The active organization with its local rows: `None` when the token
    /// names none, or when the layer does not resolve organizations (see
    /// [`EnsureUserLayer::with_organizations`](crate::EnsureUserLayer::with_organizations)).
    pub fn organization(&self) -> Option<LocalOrganization> {
        self.0.organization()
    }

    /// Everything the request proved.
    pub fn principal(&self) -> &Principal {
        &self.0
    }
}

/// Shows the ids only: claims may carry personal data.
impl fmt::Debug for LocalUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalUser")
            .field("id", &self.id())
            .field("subject", &self.subject())
            .field("token_type", &self.token_type())
            .finish_non_exhaustive()
    }
}
