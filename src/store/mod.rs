//! Where local users, organizations and memberships live: the
//! [`UserStore`], [`UserSync`], [`BackfillStore`], [`OrganizationStore`] and
//! [`OrganizationSync`] traits, and their SQL implementations.

use std::{future::Future, pin::Pin};

use crate::user::LocalId;

mod batch;
mod organization;
mod profile;
mod sync;
mod table;
pub use batch::{BackfillStore, BatchOutcome, Checkpoint, ProfileUpdate};
pub(crate) use organization::DynOrganizationStore;
#[cfg(feature = "webhooks")]
pub(crate) use organization::DynOrganizationSync;
pub use organization::{
    MembershipClaim, MembershipResolution, OrganizationResolution, OrganizationStore,
    OrganizationSync,
};
pub use profile::Profile;
#[cfg(any(feature = "webhooks", feature = "clerk-api"))]
pub(crate) use sync::DynUserSync;
pub use sync::{SyncOutcome, UserSync};
pub use table::{IdKind, InvalidIdentifier, UserTable};

#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod sql;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) use sql::Dialect;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use sql::PgUserStore;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
pub use sql::SqlUserStore;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sql::SqliteUserStore;
#[cfg(feature = "postgres")]
pub(crate) use sql::{Bind, Statement};

/// What the store found (or made) for a Clerk user id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The row already existed; nothing was written.
    Existing(LocalId),
    /// The row was created by this call.
    Created(LocalId),
    /// The user was deleted in Clerk; no row exists and none was created.
    Deleted,
    /// The row exists and records that Clerk bans the user; nothing was
    /// written.
    Banned(LocalId),
}

impl Resolution {
    /// `existing`, `created` or `deleted`, for the metrics.
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            Self::Existing(_) => "existing",
            Self::Created(_) => "created",
            Self::Deleted => "deleted",
            Self::Banned(_) => "banned",
        }
    }

    /// The local id, unless the user was deleted.
    pub fn id(self) -> Option<LocalId> {
        match self {
            Self::Existing(id) | Self::Created(id) | Self::Banned(id) => Some(id),
            Self::Deleted => None,
        }
    }

    /// Whether the row records that the user is banned.
    pub(crate) fn is_banned(&self) -> bool {
        matches!(self, Self::Banned(_))
    }
}

/// A store failure. Shown to no client: the layer answers `503 store_unavailable`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The call did not finish within the configured store timeout.
    #[error("store call timed out after {0:?}")]
    TimedOut(std::time::Duration),
    /// Any other failure: of a custom store, or a bundled store's upgrade
    /// refusing to change the database.
    #[error("store error: {0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Whether the database refused the data (a constraint, a value a
    /// column cannot hold) rather than being unavailable.
    #[cfg(feature = "clerk-api")]
    pub(crate) fn is_about_the_data(&self) -> bool {
        match self {
            #[cfg(any(feature = "postgres", feature = "sqlite"))]
            Self::Database(sqlx::Error::Database(_)) => true,
            _ => false,
        }
    }
}

/// Finds or creates the app's user row for a Clerk user.
///
/// Implement it for a schema the bundled stores cannot map. The contract:
///
/// - a user who already has a row costs a read and no write;
/// - concurrent calls for one new user, from any number of processes, end
///   with exactly one row, and all of them return its id;
/// - a user with a deletion tombstone is never (re)created: return
///   [`Resolution::Deleted`].
///
/// ```
/// use ensure_user::{LocalId, store::{Profile, Resolution, StoreError, UserStore}};
///
/// /// Every Clerk user maps to the same row: enough for a demo.
/// struct Fixed;
///
/// impl UserStore for Fixed {
///     async fn find_or_create(&self, _clerk_id: &str, _profile: &Profile) -> Result<Resolution, StoreError> {
///         Ok(Resolution::Existing(LocalId::Int(1)))
///     }
/// }
/// ```
pub trait UserStore: Send + Sync + 'static {
    /// Returns the row for `clerk_id`, creating it with `profile` when absent.
    fn find_or_create(
        &self,
        clerk_id: &str,
        profile: &Profile,
    ) -> impl Future<Output = Result<Resolution, StoreError>> + Send;

    /// Whether the store can be reached, for readiness checks. Default: always.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`UserStore`] made object-safe, so the layer has no store type parameter.
pub(crate) trait DynUserStore: Send + Sync + 'static {
    fn find_or_create_dyn<'a>(
        &'a self,
        clerk_id: &'a str,
        profile: &'a Profile,
    ) -> BoxFuture<'a, Result<Resolution, StoreError>>;

    fn ping_dyn(&self) -> BoxFuture<'_, Result<(), StoreError>>;
}

impl<S: UserStore> DynUserStore for S {
    fn find_or_create_dyn<'a>(
        &'a self,
        clerk_id: &'a str,
        profile: &'a Profile,
    ) -> BoxFuture<'a, Result<Resolution, StoreError>> {
        Box::pin(self.find_or_create(clerk_id, profile))
    }

    fn ping_dyn(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.ping())
    }
}
