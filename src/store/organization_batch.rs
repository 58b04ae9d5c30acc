//! Writing many organizations and memberships at once, and remembering how
//! far each walk got: the [`OrganizationBackfillStore`] trait.

use std::future::Future;

use super::{BackfillStore, BatchOutcome, Checkpoint, StoreError, Walk};
use crate::{clerk::ClerkMembership, clerk::ClerkOrganization};

/// What a backfill of organizations and memberships needs from a store, on
/// top of the users' [`BackfillStore`]: batched upserts and a checkpoint
/// per [`Walk`]. The bundled SQL stores implement it.
///
/// The batches follow the [`OrganizationSync`](super::OrganizationSync)
/// rules (last write wins on `updated_at`, tombstones respected and
/// re-checked after the write), with the users' batch difference: a state
/// whose version equals the stored one is not written again, so a second
/// pass over unchanged data writes nothing. For a membership the stored
/// version is its role's, which a newer session token may have set.
pub trait OrganizationBackfillStore: BackfillStore {
    /// Creates or updates the rows of `organizations`, and returns one
    /// outcome per organization, in order. When an id occurs twice, the
    /// newer version is the one applied.
    fn apply_organizations(
        &self,
        organizations: &[ClerkOrganization],
    ) -> impl Future<Output = Result<Vec<BatchOutcome>, StoreError>> + Send;

    /// What [`apply_organizations`](Self::apply_organizations) would do
    /// now, writing nothing.
    fn preview_organizations(
        &self,
        organizations: &[ClerkOrganization],
    ) -> impl Future<Output = Result<Vec<BatchOutcome>, StoreError>> + Send;

    /// Creates or updates the rows of `memberships` (their roles), and
    /// returns one outcome per membership, in order. First, as a single
    /// [`upsert_membership`](super::OrganizationSync::upsert_membership)
    /// does, the organizations are upserted from the snapshots the
    /// memberships carry and users without a row get one, with an empty
    /// profile. A tombstoned organization or user makes the membership
    /// [`BatchOutcome::Tombstoned`].
    fn apply_memberships(
        &self,
        memberships: &[ClerkMembership],
    ) -> impl Future<Output = Result<Vec<BatchOutcome>, StoreError>> + Send;

    /// What [`apply_memberships`](Self::apply_memberships) would do now to
    /// the memberships' rows, writing nothing.
    fn preview_memberships(
        &self,
        memberships: &[ClerkMembership],
    ) -> impl Future<Output = Result<Vec<BatchOutcome>, StoreError>> + Send;

    /// The saved checkpoint of `walk`, if it stopped before its end. For
    /// [`Walk::Users`], the same as [`BackfillStore::load_checkpoint`].
    fn load_walk_checkpoint(
        &self,
        walk: Walk,
    ) -> impl Future<Output = Result<Option<Checkpoint>, StoreError>> + Send;

    /// Saves the checkpoint of `walk`, replacing its previous one.
    fn save_walk_checkpoint(
        &self,
        walk: Walk,
        checkpoint: &Checkpoint,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets the checkpoint of `walk`: its next run starts from the first
    /// object.
    fn clear_walk_checkpoint(
        &self,
        walk: Walk,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
