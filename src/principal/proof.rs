//! What a verified credential proves, whatever its kind: whose it is, under
//! which id, and until when it is valid. The one place that tells the
//! kinds apart; everything above asks it.

use super::Subject;
use crate::{
    machine::{MachineCredential, SubjectKind},
    oidc::OidcClaims,
    rejection::Rejection,
    store::Profile,
    token::{SessionClaims, TokenType},
};

/// The verified content of one credential.
pub(crate) enum Proof {
    /// A Clerk session token's claims.
    Session(SessionClaims),
    /// A Clerk API key, OAuth access token or machine token, verified by
    /// the Backend API or, in JWT form, with the instance's keys. Boxed:
    /// most credentials are sessions.
    Machine(Box<MachineCredential>),
    /// A configured OpenID Connect issuer's token. Boxed, as machines'.
    Oidc(Box<OidcClaims>),
}

impl Proof {
    /// The kind of credential.
    pub(crate) fn token_type(&self) -> TokenType {
        match self {
            Self::Session(_) => TokenType::SessionToken,
            Self::Machine(credential) => credential.token_type(),
            Self::Oidc(_) => TokenType::OidcToken,
        }
    }

    /// Who the credential belongs to.
    pub(crate) fn subject(&self) -> Subject<'_> {
        match self {
            Self::Session(claims) => Subject::User(claims.sub()),
            Self::Machine(credential) => match credential.subject_kind() {
                SubjectKind::User => Subject::User(credential.subject()),
                SubjectKind::Organization => Subject::Organization(credential.subject()),
                SubjectKind::Machine => Subject::Machine(credential.subject()),
            },
            Self::Oidc(claims) => Subject::Oidc {
                issuer: claims.issuer(),
                subject: claims.subject(),
            },
        }
    }

    /// The key of the user the credential acts for, if a user: a Clerk
    /// user id (`user_…`), or an issuer's user key.
    pub(crate) fn user(&self) -> Option<&str> {
        match self {
            Self::Session(claims) => Some(claims.sub()),
            Self::Machine(credential) => credential.user_id(),
            Self::Oidc(claims) => Some(claims.key()),
        }
    }

    /// The Clerk user (`user_…`) the credential acts for, if a Clerk user.
    pub(crate) fn clerk_user(&self) -> Option<&str> {
        match self {
            Self::Oidc(_) => None,
            _ => self.user(),
        }
    }

    /// The profile a new row is given: a session's or an issuer's token's,
    /// as the claims configured name it; none from a machine credential.
    pub(crate) fn profile(&self, session_claims: &crate::ProfileClaims) -> Profile {
        match self {
            Self::Session(claims) => session_claims.read(claims),
            Self::Machine(_) => Profile::default(),
            Self::Oidc(claims) => claims.profile().clone(),
        }
    }

    /// The Clerk organization (`org_…`) the credential acts in: a session's
    /// active organization, or the organization whose API key it is.
    pub(crate) fn organization(&self) -> Option<&str> {
        match self {
            Self::Session(claims) => claims.organization().map(|active| active.id()),
            Self::Machine(credential) => credential.organization_id(),
            Self::Oidc(_) => None,
        }
    }

    /// The machine (`mch_…`) the credential belongs to.
    pub(crate) fn machine(&self) -> Option<&str> {
        match self {
            Self::Session(_) | Self::Oidc(_) => None,
            Self::Machine(credential) => credential.machine_id(),
        }
    }

    /// The credential's own id, which ending or revoking names: a session's
    /// `sid`, a machine credential's `ak_…`, `mt_…` or `oat_…`.
    pub(crate) fn credential_id(&self) -> &str {
        match self {
            Self::Session(claims) => claims.sid(),
            Self::Machine(credential) => credential.id(),
            Self::Oidc(claims) => claims.credential_id(),
        }
    }

    /// The refusal of a credential whose id was ended or revoked.
    pub(crate) fn ended(&self) -> Rejection {
        match self {
            Self::Session(_) | Self::Oidc(_) => Rejection::SessionEnded,
            Self::Machine(_) => Rejection::CredentialRevoked,
        }
    }

    /// The scopes the credential grants.
    pub(crate) fn scopes(&self) -> &[String] {
        match self {
            Self::Session(_) => &[],
            Self::Machine(credential) => credential.scopes(),
            Self::Oidc(claims) => claims.scopes(),
        }
    }

    /// The session token's claims, for a session.
    pub(crate) fn session(&self) -> Option<&SessionClaims> {
        match self {
            Self::Session(claims) => Some(claims),
            Self::Machine(_) | Self::Oidc(_) => None,
        }
    }

    /// An OpenID Connect issuer's token's claims.
    pub(crate) fn oidc(&self) -> Option<&OidcClaims> {
        match self {
            Self::Oidc(claims) => Some(claims),
            _ => None,
        }
    }

    /// The machine credential, for any other kind.
    pub(crate) fn machine_credential(&self) -> Option<&MachineCredential> {
        match self {
            Self::Session(_) | Self::Oidc(_) => None,
            Self::Machine(credential) => Some(credential),
        }
    }

    /// Until when the credential is valid, in Unix milliseconds.
    pub(crate) fn expires_at_ms(&self) -> i64 {
        match self {
            Self::Session(claims) => claims.exp().saturating_mul(1000),
            Self::Machine(credential) => credential.expires_at_ms().unwrap_or(i64::MAX),
            Self::Oidc(claims) => claims.expires_at_ms(),
        }
    }

    /// Bytes the proof holds on the heap, for the token cache's budget.
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Self::Session(claims) => claims.heap_bytes(),
            Self::Machine(credential) => size_of::<MachineCredential>() + credential.heap_bytes(),
            Self::Oidc(claims) => size_of::<OidcClaims>() + claims.heap_bytes(),
        }
    }
}
