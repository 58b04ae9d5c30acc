//! What a request proved: whose credential it carried (a user's, an
//! organization's, a machine's), of which kind, and the app's own rows for
//! it. The layer puts one [`Principal`] into each authenticated request;
//! [`LocalUser`] and [`LocalOrganization`] are views of it.

pub(crate) mod cache;
pub(crate) mod entry;
mod organization;
pub(crate) mod proof;
mod user;

use std::{fmt, sync::Arc};

use entry::{OrganizationRows, Resolved, VerifiedToken};

pub use organization::LocalOrganization;
pub use user::LocalUser;

use crate::{
    authorization::Requirement,
    machine::MachineCredential,
    oidc::OidcClaims,
    token::{SessionClaims, TokenType},
};

/// Who a credential belongs to: by Clerk id, or by issuer and subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subject<'a> {
    /// A user (`user_…`): a session, or the user's API key or OAuth token.
    User(&'a str),
    /// An organization (`org_…`): the organization's API key.
    Organization(&'a str),
    /// A machine (`mch_…`): a machine-to-machine token or a machine's API key.
    Machine(&'a str),
    /// A user of a configured OpenID Connect issuer.
    Oidc {
        /// The issuer, as configured.
        issuer: &'a str,
        /// The user's id at the issuer.
        subject: &'a str,
    },
}

/// What an authenticated request proved: the credential's kind and
/// subject, and the app's own rows for it.
///
/// [`EnsureUserLayer`](crate::EnsureUserLayer) puts one into the request
/// extensions; handlers take it as an extractor, or take the
/// [`LocalUser`] or [`LocalOrganization`] it holds. Cloning is cheap (an `Arc`).
#[derive(Clone)]
pub struct Principal {
    token: Arc<VerifiedToken>,
    /// The rows, when they are not the ones the token's entry remembers (a
    /// row replaced since the token was first resolved, which is rare):
    /// otherwise the principal is the token's entry alone, two words to move.
    other_rows: Option<Box<Resolved>>,
}

impl Principal {
    /// The principal of `token`: the rows its entry remembers, unless
    /// `other_rows` (what [`VerifiedToken::remember`] handed back).
    pub(crate) fn new(token: Arc<VerifiedToken>, other_rows: Option<Resolved>) -> Self {
        Self {
            token,
            other_rows: other_rows.map(Box::new),
        }
    }

    /// The principal of `token` if the resolution its entry remembers was
    /// confirmed under `generation` (the repeat path), else the token back.
    pub(crate) fn confirmed(
        token: Arc<VerifiedToken>,
        generation: u64,
    ) -> Result<Self, Arc<VerifiedToken>> {
        if token.is_confirmed(generation) && token.first_resolution().is_some() {
            return Ok(Self {
                token,
                other_rows: None,
            });
        }
        Err(token)
    }

    pub(crate) fn rows(&self) -> &Resolved {
        match (self.other_rows.as_deref(), self.token.first_resolution()) {
            (Some(rows), _) | (None, Some(rows)) => rows,
            // Built either with rows of its own or from a remembered
            // resolution, which once set stays.
            (None, None) => unreachable!("a Principal without rows"),
        }
    }

    pub(crate) fn entry(&self) -> &VerifiedToken {
        &self.token
    }

    /// The kind of credential the request carried.
    pub fn token_type(&self) -> TokenType {
        self.token.proof.token_type()
    }

    /// Who the credential belongs to.
    pub fn subject(&self) -> Subject<'_> {
        self.token.proof.subject()
    }

    /// The credential's own id: a session's `sess_…`, an API key's `ak_…`,
    /// an OAuth token's `oat_…` (or a JWT's `jti`), a machine token's `mt_…`.
    pub fn credential_id(&self) -> &str {
        self.token.proof.credential_id()
    }

    /// The user, with the app's row, when the credential is a user's.
    pub fn user(&self) -> Option<LocalUser> {
        LocalUser::of(self.clone())
    }

    /// The organization with the app's rows: a session's active
    /// organization, or the organization whose API key this is. `None`
    /// when there is none, or when the layer does not resolve organizations
    /// (see [`EnsureUserLayer::with_organizations`](crate::EnsureUserLayer::with_organizations)).
    pub fn organization(&self) -> Option<LocalOrganization> {
        match &self.rows().organization {
            OrganizationRows::Active(rows) => Some(LocalOrganization::new(
                rows.organization,
                rows.membership,
                Arc::clone(&self.token),
            )),
            OrganizationRows::NotResolved | OrganizationRows::NoneActive => None,
        }
    }

    /// The machine (`mch_…`) whose credential this is.
    pub fn machine(&self) -> Option<&str> {
        self.token.proof.machine()
    }

    /// The scopes the credential grants (an API key's or an OAuth token's
    /// `scopes`; none for a session).
    pub fn scopes(&self) -> &[String] {
        self.token.proof.scopes()
    }

    /// Whether the credential grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().iter().any(|held| held == scope)
    }

    /// An API key, OAuth token or machine token as Clerk describes it (its
    /// name, client, custom claims, expiration); `None` for a session.
    pub fn machine_credential(&self) -> Option<&MachineCredential> {
        self.token.proof.machine_credential()
    }

    /// The session token's verified claims, for a session.
    pub fn session(&self) -> Option<&SessionClaims> {
        self.token.proof.session()
    }

    /// The verified claims of an OpenID Connect issuer's token.
    pub fn oidc_claims(&self) -> Option<&OidcClaims> {
        self.token.proof.oidc()
    }

    /// Whether the session meets `requirement`, as Clerk's `has()` decides;
    /// always `false` for other credentials, as with Clerk's.
    pub fn has(&self, requirement: &Requirement) -> bool {
        self.session().is_some_and(|claims| claims.has(requirement))
    }

    /// Whether the layer that authenticated the request resolves organizations.
    #[cfg(feature = "axum")]
    pub(crate) fn organizations_resolved(&self) -> bool {
        self.rows().organization != OrganizationRows::NotResolved
    }
}

/// Shows the kind and ids only: claims may carry personal data.
impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("token_type", &self.token_type())
            .field("subject", &self.subject())
            .field("credential_id", &self.credential_id())
            .finish_non_exhaustive()
    }
}
