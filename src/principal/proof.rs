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
    /// Any other credential, boxed: most credentials are sessions, and one
    /// boxed variant keeps a session's proof as small as its claims.
    Other(Box<OtherProof>),
}

/// The credentials other than sessions.
#[derive(Clone)]
pub(crate) enum OtherProof {
    /// A Clerk API key, OAuth access token or machine token, verified by
    /// the Backend API or, in JWT form, with the instance's keys.
    Machine(MachineCredential),
    /// A configured OpenID Connect issuer's token.
    Oidc(OidcClaims),
}

/// A proof as its kind, whichever way it is stored.
enum Kind<'a> {
    Session(&'a SessionClaims),
    Machine(&'a MachineCredential),
    Oidc(&'a OidcClaims),
}

impl Proof {
    /// A machine credential's proof.
    pub(crate) fn of_machine(credential: MachineCredential) -> Self {
        Self::Other(Box::new(OtherProof::Machine(credential)))
    }

    /// An OpenID Connect issuer's token's proof.
    pub(crate) fn of_oidc(claims: OidcClaims) -> Self {
        Self::Other(Box::new(OtherProof::Oidc(claims)))
    }

    fn kind(&self) -> Kind<'_> {
        match self {
            Self::Session(claims) => Kind::Session(claims),
            Self::Other(other) => match &**other {
                OtherProof::Machine(credential) => Kind::Machine(credential),
                OtherProof::Oidc(claims) => Kind::Oidc(claims),
            },
        }
    }
    /// The kind of credential.
    pub(crate) fn token_type(&self) -> TokenType {
        match self.kind() {
            Kind::Session(_) => TokenType::SessionToken,
            Kind::Machine(credential) => credential.token_type(),
            Kind::Oidc(_) => TokenType::OidcToken,
        }
    }

    /// Who the credential belongs to.
    pub(crate) fn subject(&self) -> Subject<'_> {
        match self.kind() {
            Kind::Session(claims) => Subject::User(claims.sub()),
            Kind::Machine(credential) => match credential.subject_kind() {
                SubjectKind::User => Subject::User(credential.subject()),
                SubjectKind::Organization => Subject::Organization(credential.subject()),
                SubjectKind::Machine => Subject::Machine(credential.subject()),
            },
            Kind::Oidc(claims) => Subject::Oidc {
                issuer: claims.issuer(),
                subject: claims.subject(),
            },
        }
    }

    /// The key of the user the credential acts for, if a user: a Clerk
    /// user id (`user_…`), or an issuer's user key.
    pub(crate) fn user(&self) -> Option<&str> {
        match self.kind() {
            Kind::Session(claims) => Some(claims.sub()),
            Kind::Machine(credential) => credential.user_id(),
            Kind::Oidc(claims) => Some(claims.key()),
        }
    }

    /// The Clerk user (`user_…`) the credential acts for, if a Clerk user.
    pub(crate) fn clerk_user(&self) -> Option<&str> {
        match self.kind() {
            Kind::Oidc(_) => None,
            _ => self.user(),
        }
    }

    /// The profile a new row is given: a session's or an issuer's token's,
    /// as the claims configured name it; none from a machine credential.
    pub(crate) fn profile(&self, session_claims: &crate::ProfileClaims) -> Profile {
        match self.kind() {
            Kind::Session(claims) => session_claims.read(claims),
            Kind::Machine(_) => Profile::default(),
            Kind::Oidc(claims) => claims.profile().clone(),
        }
    }

    /// The Clerk organization (`org_…`) the credential acts in: a session's
    /// active organization, or the organization whose API key it is.
    pub(crate) fn organization(&self) -> Option<&str> {
        match self.kind() {
            Kind::Session(claims) => claims.organization().map(|active| active.id()),
            Kind::Machine(credential) => credential.organization_id(),
            Kind::Oidc(_) => None,
        }
    }

    /// The machine (`mch_…`) the credential belongs to.
    pub(crate) fn machine(&self) -> Option<&str> {
        match self.kind() {
            Kind::Session(_) | Kind::Oidc(_) => None,
            Kind::Machine(credential) => credential.machine_id(),
        }
    }

    /// The credential's own id, which ending or revoking names: a session's
    /// `sid`, a machine credential's `ak_…`, `mt_…` or `oat_…`.
    pub(crate) fn credential_id(&self) -> &str {
        match self.kind() {
            Kind::Session(claims) => claims.sid(),
            Kind::Machine(credential) => credential.id(),
            Kind::Oidc(claims) => claims.credential_id(),
        }
    }

    /// The refusal of a credential whose id was ended or revoked.
    pub(crate) fn ended(&self) -> Rejection {
        match self.kind() {
            Kind::Session(_) | Kind::Oidc(_) => Rejection::SessionEnded,
            Kind::Machine(_) => Rejection::CredentialRevoked,
        }
    }

    /// The scopes the credential grants.
    pub(crate) fn scopes(&self) -> &[String] {
        match self.kind() {
            Kind::Session(_) => &[],
            Kind::Machine(credential) => credential.scopes(),
            Kind::Oidc(claims) => claims.scopes(),
        }
    }

    /// The session token's claims, for a session.
    pub(crate) fn session(&self) -> Option<&SessionClaims> {
        match self.kind() {
            Kind::Session(claims) => Some(claims),
            Kind::Machine(_) | Kind::Oidc(_) => None,
        }
    }

    /// An OpenID Connect issuer's token's claims.
    pub(crate) fn oidc(&self) -> Option<&OidcClaims> {
        match self.kind() {
            Kind::Oidc(claims) => Some(claims),
            _ => None,
        }
    }

    /// The machine credential, for any other kind.
    pub(crate) fn machine_credential(&self) -> Option<&MachineCredential> {
        match self.kind() {
            Kind::Session(_) | Kind::Oidc(_) => None,
            Kind::Machine(credential) => Some(credential),
        }
    }

    /// Until when the credential is valid, in Unix milliseconds.
    pub(crate) fn expires_at_ms(&self) -> i64 {
        match self.kind() {
            Kind::Session(claims) => claims.exp().saturating_mul(1000),
            Kind::Machine(credential) => credential.expires_at_ms().unwrap_or(i64::MAX),
            Kind::Oidc(claims) => claims.expires_at_ms(),
        }
    }

    /// Bytes the proof holds on the heap, for the token cache's budget.
    pub(crate) fn heap_bytes(&self) -> usize {
        match self.kind() {
            Kind::Session(claims) => claims.heap_bytes(),
            Kind::Machine(credential) => size_of::<OtherProof>() + credential.heap_bytes(),
            Kind::Oidc(claims) => size_of::<OtherProof>() + claims.heap_bytes(),
        }
    }
}
