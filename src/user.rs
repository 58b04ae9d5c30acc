//! The user a handler receives: the app's own row id plus the verified Clerk session.

use std::{fmt, sync::Arc};

use serde::{Serialize, Serializer};
use uuid::Uuid;

use crate::{
    LocalOrganization,
    token::{
        SessionClaims,
        entry::{OrganizationRows, Resolved, VerifiedToken},
    },
};

/// The primary key of the app's own user row.
///
/// The bundled schema uses a 64-bit integer; apps that map their own table
/// may use a UUID instead (see [`IdKind`](crate::store::IdKind)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LocalId {
    /// A 64-bit integer key (`BIGINT` / `INTEGER PRIMARY KEY`).
    Int(i64),
    /// A UUID key.
    Uuid(Uuid),
}

impl LocalId {
    /// The integer key, if this id is one.
    pub fn as_i64(self) -> Option<i64> {
        match self {
            Self::Int(id) => Some(id),
            Self::Uuid(_) => None,
        }
    }

    /// The UUID key, if this id is one.
    pub fn as_uuid(self) -> Option<Uuid> {
        match self {
            Self::Uuid(id) => Some(id),
            Self::Int(_) => None,
        }
    }
}

impl fmt::Display for LocalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(id) => id.fmt(f),
            Self::Uuid(id) => id.fmt(f),
        }
    }
}

/// Serializes as a JSON number for integer ids and a string for UUIDs.
impl Serialize for LocalId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Int(id) => serializer.serialize_i64(*id),
            Self::Uuid(id) => id.serialize(serializer),
        }
    }
}

impl From<i64> for LocalId {
    fn from(id: i64) -> Self {
        Self::Int(id)
    }
}

impl From<Uuid> for LocalId {
    fn from(id: Uuid) -> Self {
        Self::Uuid(id)
    }
}

/// The authenticated user of a request: the local row id and the verified session.
///
/// [`EnsureUserLayer`](crate::EnsureUserLayer) puts one into the request
/// extensions; handlers take it as an extractor. Cloning is cheap (an `Arc`).
#[derive(Clone)]
pub struct LocalUser {
    token: Arc<VerifiedToken>,
    /// The rows, when they are not the ones the token's entry remembers (a
    /// row replaced since the token was first resolved, which is rare):
    /// otherwise the user is the token's entry alone, two words to move.
    other_rows: Option<Box<Resolved>>,
}

impl LocalUser {
    /// The user of `token`: the rows its entry remembers, unless
    /// `other_rows` (what [`VerifiedToken::remember`] handed back).
    pub(crate) fn new(token: Arc<VerifiedToken>, other_rows: Option<Resolved>) -> Self {
        Self {
            token,
            other_rows: other_rows.map(Box::new),
        }
    }

    /// The user of `token` if the resolution its entry remembers was
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

    fn rows(&self) -> &Resolved {
        match (self.other_rows.as_deref(), self.token.first_resolution()) {
            (Some(rows), _) | (None, Some(rows)) => rows,
            // Built either with rows of its own or from a remembered
            // resolution, which once set stays.
            (None, None) => unreachable!("a LocalUser without rows"),
        }
    }

    /// The id of the app's own user row.
    pub fn id(&self) -> LocalId {
        self.rows().user
    }

    /// The Clerk user id (`user_…`), the token's `sub`.
    pub fn clerk_id(&self) -> &str {
        self.token.claims.sub()
    }

    /// The Clerk session id (`sess_…`), the token's `sid`.
    pub fn session_id(&self) -> &str {
        self.token.claims.sid()
    }

    /// Every verified claim of the session token.
    pub fn claims(&self) -> &SessionClaims {
        &self.token.claims
    }

    /// The active organization with its local rows: `None` when the token
    /// names none, or when the layer does not resolve organizations (see
    /// [`EnsureUserLayer::with_organizations`](crate::EnsureUserLayer::with_organizations)).
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

    /// Whether the layer that authenticated the request resolves organizations.
    #[cfg(feature = "axum")]
    pub(crate) fn organizations_resolved(&self) -> bool {
        self.rows().organization != OrganizationRows::NotResolved
    }
}

/// Shows the ids only: claims may carry personal data.
impl fmt::Debug for LocalUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalUser")
            .field("id", &self.id())
            .field("clerk_id", &self.clerk_id())
            .field("session_id", &self.session_id())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_serialize_as_number_or_string() {
        assert_eq!(serde_json::to_string(&LocalId::Int(7)).unwrap(), "7");
        let uuid = Uuid::nil();
        assert_eq!(
            serde_json::to_string(&LocalId::Uuid(uuid)).unwrap(),
            "\"00000000-0000-0000-0000-000000000000\""
        );
        assert_eq!(LocalId::Int(7).as_i64(), Some(7));
        assert_eq!(LocalId::Int(7).as_uuid(), None);
    }
}
