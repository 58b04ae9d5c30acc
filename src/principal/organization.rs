//! The organization a handler receives: the app's own rows for it and for
//! the user's membership, with what the session token says of it.

use std::{fmt, sync::Arc};

use super::entry::VerifiedToken;

use crate::{
    authorization::Requirement,
    local_id::LocalId,
    token::{ActiveOrganization, Permissions},
};

/// The request's organization, with the app's own rows: a session's active
/// organization, or the organization whose API key the request carried.
///
/// With [`EnsureUserLayer::with_organizations`](crate::EnsureUserLayer::with_organizations),
/// a request whose token names an active organization has its row and the
/// membership's row, created on first sight; handlers take
/// `LocalOrganization` (refused `403 no_active_organization` when the token
/// names none) or `Option<LocalOrganization>` as an extractor, or ask
/// [`LocalUser::organization`](crate::LocalUser::organization).
///
/// The slug, role and permissions are the token's: Clerk mints a new token
/// every minute or so, and a change shows in the next one, as with Clerk's
/// own `has()`. Cloning is cheap (an `Arc`).
#[derive(Clone)]
pub struct LocalOrganization {
    id: LocalId,
    membership_id: Option<LocalId>,
    token: Arc<VerifiedToken>,
}

impl LocalOrganization {
    pub(crate) fn new(
        id: LocalId,
        membership_id: Option<LocalId>,
        token: Arc<VerifiedToken>,
    ) -> Self {
        Self {
            id,
            membership_id,
            token,
        }
    }

    /// The id of the app's own organization row.
    pub fn id(&self) -> LocalId {
        self.id
    }

    /// The id of the app's own row of the user's membership; `None` for
    /// the organization's own API key, which no member holds.
    pub fn membership_id(&self) -> Option<LocalId> {
        self.membership_id
    }

    /// The Clerk organization id (`org_…`).
    pub fn clerk_id(&self) -> &str {
        self.token.proof.organization().unwrap_or_default()
    }

    /// The organization's slug, if the session token carries one.
    pub fn slug(&self) -> Option<&str> {
        self.active().and_then(ActiveOrganization::slug)
    }

    /// The user's role (`org:admin`), if the session token carries one.
    pub fn role(&self) -> Option<&str> {
        self.active().and_then(ActiveOrganization::role)
    }

    /// The user's permissions in the organization (`org:feature:permission`),
    /// as the session token grants them; never Clerk's system permissions.
    pub fn permissions(&self) -> Permissions<'_> {
        self.active()
            .map_or_else(Permissions::none, ActiveOrganization::permissions)
    }

    /// Whether the session meets `requirement`, as Clerk's `has()` decides;
    /// always `false` for an organization's API key, as with Clerk's.
    pub fn has(&self, requirement: &Requirement) -> bool {
        self.token
            .proof
            .session()
            .is_some_and(|claims| claims.has(requirement))
    }

    /// The session's active organization, as its token states it.
    fn active(&self) -> Option<&ActiveOrganization> {
        self.token.proof.session()?.organization()
    }
}

/// Shows the ids only.
impl fmt::Debug for LocalOrganization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalOrganization")
            .field("id", &self.id)
            .field("membership_id", &self.membership_id)
            .field("clerk_id", &self.clerk_id())
            .finish_non_exhaustive()
    }
}
