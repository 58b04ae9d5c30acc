//! What a verified credential proves, whatever its kind: whose it is, under
//! which id, and until when it may be served.

use super::Subject;
use crate::token::{SessionClaims, TokenType};

/// The verified content of one credential.
pub(crate) enum Proof {
    /// A Clerk session token's claims.
    Session(SessionClaims),
}

impl Proof {
    /// The kind of credential.
    pub(crate) fn token_type(&self) -> TokenType {
        match self {
            Self::Session(_) => TokenType::SessionToken,
        }
    }

    /// Who the credential belongs to.
    pub(crate) fn subject(&self) -> Subject<'_> {
        match self {
            Self::Session(claims) => Subject::User(claims.sub()),
        }
    }

    /// The Clerk user (`user_…`) the credential acts for, if a user.
    pub(crate) fn user(&self) -> Option<&str> {
        match self {
            Self::Session(claims) => Some(claims.sub()),
        }
    }

    /// The Clerk organization (`org_…`) the credential acts in: a session's
    /// active organization.
    pub(crate) fn organization(&self) -> Option<&str> {
        match self {
            Self::Session(claims) => claims.organization().map(|active| active.id()),
        }
    }

    /// The credential's own id, which ending or revoking names: a session's
    /// `sid`.
    pub(crate) fn credential_id(&self) -> &str {
        match self {
            Self::Session(claims) => claims.sid(),
        }
    }

    /// The machine (`mch_…`) the credential belongs to.
    pub(crate) fn machine(&self) -> Option<&str> {
        match self {
            Self::Session(_) => None,
        }
    }

    /// The scopes the credential grants.
    pub(crate) fn scopes(&self) -> &[String] {
        match self {
            Self::Session(_) => &[],
        }
    }

    /// The session token's claims, for a session.
    pub(crate) fn session(&self) -> Option<&SessionClaims> {
        match self {
            Self::Session(claims) => Some(claims),
        }
    }

    /// Until when the credential is valid, in Unix milliseconds.
    pub(crate) fn expires_at_ms(&self) -> i64 {
        match self {
            Self::Session(claims) => claims.exp().saturating_mul(1000),
        }
    }

    /// Bytes the proof holds on the heap, for the token cache's budget.
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Self::Session(claims) => claims.heap_bytes(),
        }
    }
}
