//! Organizations and memberships: what the layer asks of a store
//! ([`OrganizationStore`]) and what webhooks and the backfill write
//! ([`OrganizationSync`]), with the same rules as users.

use std::future::Future;

use super::{StoreError, SyncOutcome};
use crate::{clerk::ClerkMembership, clerk::ClerkOrganization, local_id::LocalId};

/// What the store found (or made) for an organization a token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OrganizationResolution {
    /// The row already existed; nothing was written.
    Existing(LocalId),
    /// The row was created by this call.
    Created(LocalId),
    /// The organization was deleted in Clerk; no row exists and none was made.
    Deleted,
}

impl OrganizationResolution {
    /// `existing`, `created` or `deleted`, for the metrics.
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            Self::Existing(_) => "existing",
            Self::Created(_) => "created",
            Self::Deleted => "deleted",
        }
    }
}

/// A membership as a session token states it: the user, in the active
/// organization, with a role, as of the token's issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MembershipClaim<'a> {
    /// The organization's local id.
    pub organization: LocalId,
    /// The organization's Clerk id (`org_…`).
    pub organization_clerk_id: &'a str,
    /// The user's local id.
    pub user: LocalId,
    /// The user's Clerk id (`user_…`).
    pub user_clerk_id: &'a str,
    /// The role, normalised (`org:admin`).
    pub role: &'a str,
    /// When the token was issued, Unix milliseconds: the version of `role`.
    pub issued_at_ms: i64,
}

impl<'a> MembershipClaim<'a> {
    /// A claim of `user` in `organization` with `role`, as of `issued_at_ms`.
    pub fn new(
        organization: (LocalId, &'a str),
        user: (LocalId, &'a str),
        role: &'a str,
        issued_at_ms: i64,
    ) -> Self {
        Self {
            organization: organization.0,
            organization_clerk_id: organization.1,
            user: user.0,
            user_clerk_id: user.1,
            role,
            issued_at_ms,
        }
    }
}

/// What the store holds for a membership a token states.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MembershipResolution {
    /// The membership's row, found or made.
    Member {
        /// The row's local id.
        id: LocalId,
        /// The role the row holds after this call.
        role: String,
        /// The version of that role (Unix ms): the `updated_at` of the
        /// webhook or the `iat` of the token it came from.
        role_version: i64,
        /// Whether this call created the row.
        created: bool,
    },
    /// The membership was deleted at or after the token was issued: no row,
    /// and none made. A token issued later may make one again.
    Deleted {
        /// When it was deleted, Unix ms.
        deleted_at_ms: i64,
    },
}

impl MembershipResolution {
    /// `existing`, `created` or `deleted`, for the metrics.
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            Self::Member { created: true, .. } => "created",
            Self::Member { created: false, .. } => "existing",
            Self::Deleted { .. } => "deleted",
        }
    }
}

/// Finds or creates the rows of the organization and the membership a
/// session token names, for the layer (see
/// [`EnsureUserLayer::with_organizations`](crate::EnsureUserLayer::with_organizations)).
///
/// The bundled SQL stores implement it. The contract, as for users:
///
/// - an organization or membership that exists costs reads and no write
///   (unless the token changes the role: below);
/// - concurrent calls for one new row, from any number of processes, end
///   with exactly one row;
/// - a tombstoned organization is never (re)created
///   ([`OrganizationResolution::Deleted`]); a membership deleted at or after
///   the token's issue is not re-created ([`MembershipResolution::Deleted`]),
///   while a token issued after the deletion (the user invited back) may;
/// - when the token is newer than the row's role version and carries
///   another role, the row takes the token's role and version; an older
///   token never overwrites a newer one.
pub trait OrganizationStore: Send + Sync + 'static {
    /// The row of the organization `clerk_id`, created with `slug` when absent.
    fn find_or_create_organization(
        &self,
        clerk_id: &str,
        slug: Option<&str>,
    ) -> impl Future<Output = Result<OrganizationResolution, StoreError>> + Send;

    /// The row of the membership `claim` states, created or brought to the
    /// token's role as the contract says.
    fn ensure_membership(
        &self,
        claim: &MembershipClaim<'_>,
    ) -> impl Future<Output = Result<MembershipResolution, StoreError>> + Send;

    /// Whether the database has every table, column and unique constraint
    /// the store keeps organizations and memberships with, as
    /// [`UserStore::check_schema`](super::UserStore::check_schema) does for
    /// users; run alike where organizations are turned on. Default: nothing
    /// to check.
    fn check_organization_schema(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }
}

/// Writes what Clerk reports about organizations and memberships: the
/// webhook receiver and the backfill call it; the bundled SQL stores
/// implement it. Every call is idempotent, and the rules are the users':
///
/// - last write wins on Clerk's `updated_at` (an equal version is applied
///   again, an older one is [`SyncOutcome::Stale`]);
/// - a tombstoned organization is never (re)created or updated, and a
///   membership deleted at or after an event's `updated_at` is not
///   re-created by it ([`SyncOutcome::Tombstoned`]);
/// - a deletion commits its tombstone before removing the row, and an
///   insert re-checks the tombstone after inserting;
/// - deleting an organization deletes its memberships with it.
pub trait OrganizationSync: Send + Sync + 'static {
    /// Creates or updates the organization's row (name, slug, image).
    fn upsert_organization(
        &self,
        organization: &ClerkOrganization,
    ) -> impl Future<Output = Result<SyncOutcome, StoreError>> + Send;

    /// Records the organization's tombstone, then removes its row and its
    /// memberships.
    fn delete_organization(
        &self,
        clerk_id: &str,
        deleted_at_ms: i64,
    ) -> impl Future<Output = Result<SyncOutcome, StoreError>> + Send;

    /// Creates or updates the membership's row (its role), first making
    /// sure the organization's row (from the snapshot in the event, by the
    /// same last-write-wins rule) and the user's row exist. A tombstoned
    /// user or organization makes it [`SyncOutcome::Tombstoned`].
    fn upsert_membership(
        &self,
        membership: &ClerkMembership,
    ) -> impl Future<Output = Result<SyncOutcome, StoreError>> + Send;

    /// Records the membership's tombstone (by organization and user, kept
    /// at the latest deletion), then removes its row.
    fn delete_membership(
        &self,
        organization_clerk_id: &str,
        user_clerk_id: &str,
        deleted_at_ms: i64,
    ) -> impl Future<Output = Result<SyncOutcome, StoreError>> + Send;
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`OrganizationStore`] made object-safe, so the layer has no store type
/// parameter.
pub(crate) trait DynOrganizationStore: Send + Sync + 'static {
    fn find_or_create_organization_dyn<'a>(
        &'a self,
        clerk_id: &'a str,
        slug: Option<&'a str>,
    ) -> BoxFuture<'a, Result<OrganizationResolution, StoreError>>;

    fn ensure_membership_dyn<'a>(
        &'a self,
        claim: &'a MembershipClaim<'a>,
    ) -> BoxFuture<'a, Result<MembershipResolution, StoreError>>;

    fn check_organization_schema_dyn(&self) -> BoxFuture<'_, Result<(), StoreError>>;
}

impl<S: OrganizationStore> DynOrganizationStore for S {
    fn find_or_create_organization_dyn<'a>(
        &'a self,
        clerk_id: &'a str,
        slug: Option<&'a str>,
    ) -> BoxFuture<'a, Result<OrganizationResolution, StoreError>> {
        Box::pin(self.find_or_create_organization(clerk_id, slug))
    }

    fn ensure_membership_dyn<'a>(
        &'a self,
        claim: &'a MembershipClaim<'a>,
    ) -> BoxFuture<'a, Result<MembershipResolution, StoreError>> {
        Box::pin(self.ensure_membership(claim))
    }

    fn check_organization_schema_dyn(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.check_organization_schema())
    }
}

/// [`OrganizationSync`] made object-safe, so the webhook receiver and the
/// backfill have no store type parameter.
#[cfg(feature = "webhooks")]
pub(crate) trait DynOrganizationSync: Send + Sync + 'static {
    fn upsert_organization_dyn<'a>(
        &'a self,
        organization: &'a ClerkOrganization,
    ) -> BoxFuture<'a, Result<SyncOutcome, StoreError>>;

    fn delete_organization_dyn<'a>(
        &'a self,
        clerk_id: &'a str,
        deleted_at_ms: i64,
    ) -> BoxFuture<'a, Result<SyncOutcome, StoreError>>;

    fn upsert_membership_dyn<'a>(
        &'a self,
        membership: &'a ClerkMembership,
    ) -> BoxFuture<'a, Result<SyncOutcome, StoreError>>;

    fn delete_membership_dyn<'a>(
        &'a self,
        organization_clerk_id: &'a str,
        user_clerk_id: &'a str,
        deleted_at_ms: i64,
    ) -> BoxFuture<'a, Result<SyncOutcome, StoreError>>;
}

#[cfg(feature = "webhooks")]
impl<S: OrganizationSync> DynOrganizationSync for S {
    fn upsert_organization_dyn<'a>(
        &'a self,
        organization: &'a ClerkOrganization,
    ) -> BoxFuture<'a, Result<SyncOutcome, StoreError>> {
        Box::pin(self.upsert_organization(organization))
    }

    fn delete_organization_dyn<'a>(
        &'a self,
        clerk_id: &'a str,
        deleted_at_ms: i64,
    ) -> BoxFuture<'a, Result<SyncOutcome, StoreError>> {
        Box::pin(self.delete_organization(clerk_id, deleted_at_ms))
    }

    fn upsert_membership_dyn<'a>(
        &'a self,
        membership: &'a ClerkMembership,
    ) -> BoxFuture<'a, Result<SyncOutcome, StoreError>> {
        Box::pin(self.upsert_membership(membership))
    }

    fn delete_membership_dyn<'a>(
        &'a self,
        organization_clerk_id: &'a str,
        user_clerk_id: &'a str,
        deleted_at_ms: i64,
    ) -> BoxFuture<'a, Result<SyncOutcome, StoreError>> {
        Box::pin(self.delete_membership(organization_clerk_id, user_clerk_id, deleted_at_ms))
    }
}
