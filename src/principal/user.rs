//! The user a handler receives: the app's own row id, the Clerk user, and
//! the credential the request carried.

use std::fmt;

use super::{LocalOrganization, Principal};

use crate::{
    authorization::Requirement,
    local_id::LocalId,
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
    /// subject of the user's API key or OAuth token.
    pub fn clerk_id(&self) -> &str {
        self.0.entry().proof.user().unwrap_or_default()
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
            .field("clerk_id", &self.clerk_id())
            .field("token_type", &self.token_type())
            .finish_non_exhaustive()
    }
}
