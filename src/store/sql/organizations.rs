//! Organizations and memberships, one at a time: [`OrganizationStore`] for
//! the layer and [`OrganizationSync`] for webhooks, by the users' algorithm
//! (read first, guarded insert, tombstone re-check; a deletion commits its
//! tombstone, then deletes).
//!
//! A membership's tombstone is dated: it forbids states as old as the
//! deletion (a token issued before it, an event updated before it) and
//! lets a newer one re-create the row, as when the user is invited back.
//! Its role is versioned by the time of the state it came from (a token's
//! `iat`, an event's `updated_at`), so that neither path overwrites a newer
//! role with an older one.

use super::{
    Dialect, SqlUserStore, Statement, checked, driver::is_foreign_key_violation, one,
    organization_columns::OrganizationValues, organization_queries::MembershipKey,
};
use crate::{
    clerk::ClerkMembership,
    clerk::ClerkOrganization,
    eviction::Announcement,
    local_id::LocalId,
    store::{
        IdKind, MembershipClaim, MembershipResolution, OrganizationResolution, OrganizationStore,
        OrganizationSync, Profile, Resolution, StoreError, SyncOutcome, UserStore,
    },
};

/// Reads of a membership before [`OrganizationStore::ensure_membership`]
/// gives up on a row that other writers keep changing (each failed attempt
/// means one of them wrote a newer role, or deleted the row).
const MEMBERSHIP_ATTEMPTS: usize = 3;

/// A membership row as stored.
pub(super) struct StoredMembership {
    pub(super) id: LocalId,
    pub(super) role: String,
    pub(super) role_version: i64,
}

/// What is stored for a membership: its row, and when the membership, its
/// organization and its user were deleted, if they were.
pub(super) struct MembershipState {
    row: Option<StoredMembership>,
    membership_deleted_at: Option<i64>,
    organization_deleted_at: Option<i64>,
    user_deleted_at: Option<i64>,
}

impl MembershipState {
    /// When the deletion that forbids a state as of `version` happened: the
    /// organization's or the user's (whenever it was), or the membership's
    /// at or after `version`.
    fn forbidding(&self, version: i64) -> Option<i64> {
        self.organization_deleted_at
            .or(self.user_deleted_at)
            .or(self
                .membership_deleted_at
                .filter(|&deleted_at| deleted_at >= version))
    }

    /// Whether the organization or the user is deleted.
    fn parent_deleted(&self) -> bool {
        self.organization_deleted_at.is_some() || self.user_deleted_at.is_some()
    }
}

/// Neither a tombstone nor a membership row explains why nothing was
/// written: the organization's or the user's row does not exist.
#[derive(Debug, thiserror::Error)]
#[error("the membership was not written: its organization's or user's row does not exist")]
struct RowsMissing;

impl<DB: Dialect> SqlUserStore<DB> {
    /// The organization's local id, and whether it is tombstoned.
    async fn organization_lookup(
        &self,
        clerk_id: &str,
    ) -> Result<(Option<LocalId>, bool), sqlx::Error> {
        let statement = self.organizations.organization_lookup(clerk_id);
        let rows = DB::rows(&self.pool, statement).await?;
        let row = one(&rows)?;
        let kind = self.organizations.organization_id_kind;
        Ok((DB::id(row, 0, kind)?, DB::flag(row, 1)?))
    }

    pub(super) async fn organization_tombstoned(
        &self,
        clerk_id: &str,
    ) -> Result<bool, sqlx::Error> {
        let statement = self.organizations.organization_tombstoned(clerk_id);
        let rows = DB::rows(&self.pool, statement).await?;
        DB::flag(one(&rows)?, 0)
    }

    /// Deletes the organization's memberships and row, in one transaction;
    /// returns whether there was a row.
    pub(super) async fn remove_organization(&self, clerk_id: &str) -> Result<bool, sqlx::Error> {
        let statements = self.organizations.organization_remove(clerk_id);
        let changed = DB::execute_together(&self.pool, statements.into()).await?;
        Ok(changed.last().is_some_and(|&rows| rows > 0))
    }

    /// The local id (of an organization or membership, its key of type
    /// `kind`) a statement returned.
    async fn returned_id(
        &self,
        statement: Statement<'_>,
        kind: IdKind,
    ) -> Result<Option<LocalId>, sqlx::Error> {
        let rows = DB::rows(&self.pool, statement).await?;
        match rows.first() {
            Some(row) => DB::id(row, 0, kind),
            None => Ok(None),
        }
    }

    /// Records a tombstone and announces the deletion, in one transaction;
    /// returns whether the tombstone changed (is new, or moved forward).
    async fn record_tombstone(
        &self,
        tombstone: Statement<'_>,
        deleted: Announcement<'_>,
    ) -> Result<bool, sqlx::Error> {
        let mut statements = vec![tombstone];
        statements.extend(DB::announce(deleted));
        let changed = DB::execute_together(&self.pool, statements).await?;
        Ok(changed.first().is_some_and(|&rows| rows > 0))
    }

    async fn membership_state(
        &self,
        statement: Statement<'_>,
    ) -> Result<MembershipState, sqlx::Error> {
        let rows = DB::rows(&self.pool, statement).await?;
        let row = one(&rows)?;
        let stored = match DB::id(row, 0, self.organizations.membership_id_kind)? {
            Some(id) => Some(StoredMembership {
                id,
                role: DB::text(row, 1)?,
                role_version: DB::int(row, 2)?,
            }),
            None => None,
        };
        Ok(MembershipState {
            row: stored,
            membership_deleted_at: DB::maybe_int(row, 3)?,
            organization_deleted_at: DB::maybe_int(row, 4)?,
            user_deleted_at: DB::maybe_int(row, 5)?,
        })
    }

    /// Gives the row the token's role unless a role as new is stored;
    /// returns the role and version written.
    async fn take_role(
        &self,
        id: LocalId,
        role: &str,
        version: i64,
    ) -> Result<Option<(String, i64)>, sqlx::Error> {
        let statement = self.organizations.membership_role(id, role, version);
        let rows = DB::rows(&self.pool, statement).await?;
        rows.first()
            .map(|row| Ok((DB::text(row, 0)?, DB::int(row, 1)?)))
            .transpose()
    }

    /// Inserts the token's membership; the row written, or `None` when a
    /// tombstone or a missing organization or user kept it out.
    async fn insert_membership(
        &self,
        key: &MembershipKey<'_>,
        role: &str,
        version: i64,
    ) -> Result<Option<StoredMembership>, sqlx::Error> {
        let statement = self.organizations.membership_insert(key, role, version);
        let rows = match DB::rows(&self.pool, statement).await {
            Ok(rows) => rows,
            // The organization's or user's row went between the statement's
            // guard and its write: the re-check tells why.
            Err(error) if is_foreign_key_violation(&error) => return Ok(None),
            Err(error) => return Err(error),
        };
        rows.first()
            .map(|row| {
                Ok(StoredMembership {
                    id: DB::id(row, 0, self.organizations.membership_id_kind)?
                        .ok_or(sqlx::Error::RowNotFound)?,
                    role: DB::text(row, 1)?,
                    role_version: DB::int(row, 2)?,
                })
            })
            .transpose()
    }

    /// Tells other processes that a membership's role changed, so that they
    /// forget what they cached of it (nothing is deleted). Sent after the
    /// change committed, as a deletion's announcement is delivered.
    async fn announce_role_change(
        &self,
        organization_clerk_id: &str,
        user_clerk_id: &str,
    ) -> Result<(), sqlx::Error> {
        let announcement = Announcement::Membership {
            organization: organization_clerk_id,
            user: user_clerk_id,
        };
        if let Some(statement) = DB::announce(announcement) {
            DB::execute(&self.pool, statement).await?;
        }
        Ok(())
    }

    /// Removes a membership row written while a deletion that forbids it
    /// committed; `parent_deleted` says whether that was the deletion of its
    /// organization or user rather than of the membership.
    pub(super) async fn undo_membership(
        &self,
        parent_deleted: bool,
        organization_clerk_id: &str,
        user_clerk_id: &str,
    ) -> Result<(), sqlx::Error> {
        let statement = if parent_deleted {
            // Its organization or user goes, and it with them.
            self.organizations
                .membership_remove_any(organization_clerk_id, user_clerk_id)
        } else {
            // Only if no newer state was written over it.
            self.organizations
                .membership_remove(organization_clerk_id, user_clerk_id)
        };
        DB::execute(&self.pool, statement).await?;
        Ok(())
    }

    /// The second half of `ensure_membership`: no row was found, so the
    /// token's membership is created, then checked against the tombstones.
    async fn create_membership(
        &self,
        key: &MembershipKey<'_>,
        role: &str,
        version: i64,
    ) -> Result<MembershipResolution, StoreError> {
        let written = self.insert_membership(key, role, version).await?;
        // A deletion that committed its tombstone while we inserted may have
        // deleted rows before ours existed: undo ours.
        let after = self
            .membership_state(self.organizations.membership_state(key))
            .await?;
        if let Some(deleted_at_ms) = after.forbidding(version) {
            if written.is_some() {
                self.undo_membership(
                    after.parent_deleted(),
                    key.organization_clerk_id,
                    key.user_clerk_id,
                )
                .await?;
            }
            return Ok(MembershipResolution::Deleted { deleted_at_ms });
        }
        let row = written.ok_or_else(|| StoreError::Other(Box::new(RowsMissing)))?;
        // Reported as created even when a racing call inserted it first (the
        // statement cannot tell), as the users' `find_or_create` does.
        Ok(member(row, true))
    }
}

fn member(row: StoredMembership, created: bool) -> MembershipResolution {
    MembershipResolution::Member {
        id: row.id,
        role: row.role,
        role_version: row.role_version,
        created,
    }
}

impl<DB: Dialect> OrganizationStore for SqlUserStore<DB> {
    async fn find_or_create_organization(
        &self,
        clerk_id: &str,
        slug: Option<&str>,
    ) -> Result<OrganizationResolution, StoreError> {
        let clerk_id = checked::organization_id(clerk_id)?;
        match self.organization_lookup(clerk_id).await? {
            (_, true) => return Ok(OrganizationResolution::Deleted),
            (Some(id), false) => return Ok(OrganizationResolution::Existing(id)),
            (None, false) => {}
        }
        let statement = self
            .organizations
            .organization_insert(clerk_id, checked::text(slug));
        let kind = self.organizations.organization_id_kind;
        let Some(id) = self.returned_id(statement, kind).await? else {
            return Ok(OrganizationResolution::Deleted);
        };
        // As for users: a deletion may have committed its tombstone while
        // we inserted, and deleted rows before ours existed.
        if self.organization_tombstoned(clerk_id).await? {
            self.remove_organization(clerk_id).await?;
            return Ok(OrganizationResolution::Deleted);
        }
        Ok(OrganizationResolution::Created(id))
    }

    async fn ensure_membership(
        &self,
        claim: &MembershipClaim<'_>,
    ) -> Result<MembershipResolution, StoreError> {
        let key = MembershipKey {
            organization: claim.organization,
            organization_clerk_id: checked::organization_id(claim.organization_clerk_id)?,
            user: claim.user,
            user_clerk_id: checked::user_id(claim.user_clerk_id)?,
        };
        let role = checked::role(claim.role)?;
        let version = claim.issued_at_ms;
        for _ in 0..MEMBERSHIP_ATTEMPTS {
            let state = self
                .membership_state(self.organizations.membership_state(&key))
                .await?;
            if let Some(deleted_at_ms) = state.forbidding(version) {
                return Ok(MembershipResolution::Deleted { deleted_at_ms });
            }
            let Some(row) = state.row else {
                return self.create_membership(&key, &role, version).await;
            };
            if version <= row.role_version || row.role == role {
                return Ok(member(row, false));
            }
            // The token is newer and names another role: it takes the row,
            // unless a newer role lands first (then read again).
            if let Some((role, role_version)) = self.take_role(row.id, &role, version).await? {
                self.announce_role_change(key.organization_clerk_id, key.user_clerk_id)
                    .await?;
                return Ok(member(
                    StoredMembership {
                        id: row.id,
                        role,
                        role_version,
                    },
                    false,
                ));
            }
        }
        Err(StoreError::Other(
            "the membership kept changing while it was read".into(),
        ))
    }

    /// Checks the organizations and memberships tables as mapped (their
    /// keys and mapped columns, the unique constraints on the Clerk
    /// organization id and on the membership's organization and user),
    /// `clerk_organization_tombstones` and `clerk_membership_tombstones`.
    async fn check_organization_schema(&self) -> Result<(), StoreError> {
        self.needs.check_organizations(&self.pool).await
    }
}

impl<DB: Dialect> OrganizationSync for SqlUserStore<DB> {
    async fn upsert_organization(
        &self,
        organization: &ClerkOrganization,
    ) -> Result<SyncOutcome, StoreError> {
        let values = organization_values(organization)?;
        let existing = match self.organization_lookup(values.clerk_id).await? {
            (_, true) => return Ok(SyncOutcome::Tombstoned),
            (existing, false) => existing,
        };
        let statement = self.organizations.organization_upsert(&values);
        let kind = self.organizations.organization_id_kind;
        let written = self.returned_id(statement, kind).await?;
        if self.organization_tombstoned(values.clerk_id).await? {
            if written.is_some() {
                self.remove_organization(values.clerk_id).await?;
            }
            return Ok(SyncOutcome::Tombstoned);
        }
        Ok(match (written, existing) {
            (None, _) => SyncOutcome::Stale,
            (Some(id), None) => SyncOutcome::Created(id),
            (Some(id), Some(_)) => SyncOutcome::Updated(id),
        })
    }

    async fn delete_organization(
        &self,
        clerk_id: &str,
        deleted_at_ms: i64,
    ) -> Result<SyncOutcome, StoreError> {
        let clerk_id = checked::organization_id(clerk_id)?;
        // The tombstone first, committed and announced: from then on no
        // insert keeps a row, so the delete (which cascades to the
        // memberships) is final.
        let tombstone = self
            .organizations
            .organization_tombstone(clerk_id, deleted_at_ms);
        let new_tombstone = self
            .record_tombstone(tombstone, Announcement::Organization(clerk_id))
            .await?;
        let removed = self.remove_organization(clerk_id).await?;
        Ok(deletion_outcome(removed, new_tombstone))
    }

    async fn upsert_membership(
        &self,
        membership: &ClerkMembership,
    ) -> Result<SyncOutcome, StoreError> {
        let organization = checked::organization_id(&membership.organization.id)?;
        let user = checked::user_id(&membership.user.user_id)?;
        let role = checked::role(&membership.role)?;
        let version = membership.updated_at;
        let by_clerk_ids = || {
            self.organizations
                .membership_state_by_clerk_ids(organization, user)
        };
        // Nothing is written for a deleted user or organization, or a
        // membership deleted since this state.
        let before = self.membership_state(by_clerk_ids()).await?;
        if before.forbidding(version).is_some() {
            return Ok(SyncOutcome::Tombstoned);
        }
        if self.upsert_organization(&membership.organization).await? == SyncOutcome::Tombstoned {
            return Ok(SyncOutcome::Tombstoned);
        }
        if self.find_or_create(user, &Profile::new()).await? == Resolution::Deleted {
            return Ok(SyncOutcome::Tombstoned);
        }
        let statement = self
            .organizations
            .membership_upsert(organization, user, &role, version);
        let kind = self.organizations.membership_id_kind;
        let written = match self.returned_id(statement, kind).await {
            Ok(written) => written,
            Err(error) if is_foreign_key_violation(&error) => None,
            Err(error) => return Err(error.into()),
        };
        let after = self.membership_state(by_clerk_ids()).await?;
        if after.forbidding(version).is_some() {
            if written.is_some() {
                self.undo_membership(after.parent_deleted(), organization, user)
                    .await?;
            }
            return Ok(SyncOutcome::Tombstoned);
        }
        Ok(match (written, before.row) {
            (None, _) => SyncOutcome::Stale,
            (Some(id), None) => SyncOutcome::Created(id),
            (Some(id), Some(stored)) => {
                if stored.role != role {
                    self.announce_role_change(organization, user).await?;
                }
                SyncOutcome::Updated(id)
            }
        })
    }

    async fn delete_membership(
        &self,
        organization_clerk_id: &str,
        user_clerk_id: &str,
        deleted_at_ms: i64,
    ) -> Result<SyncOutcome, StoreError> {
        let organization = checked::organization_id(organization_clerk_id)?;
        let user = checked::user_id(user_clerk_id)?;
        let tombstone = self
            .organizations
            .membership_tombstone(organization, user, deleted_at_ms);
        let deleted = Announcement::Membership { organization, user };
        let moved = self.record_tombstone(tombstone, deleted).await?;
        let statement = self.organizations.membership_remove(organization, user);
        let removed = DB::execute(&self.pool, statement).await? > 0;
        Ok(deletion_outcome(removed, moved))
    }
}

/// What a deletion did: removed a row, recorded (or moved) only its
/// tombstone, or nothing at all.
fn deletion_outcome(removed: bool, tombstone_changed: bool) -> SyncOutcome {
    match (removed, tombstone_changed) {
        (true, _) => SyncOutcome::Deleted,
        (false, true) => SyncOutcome::NotFound,
        (false, false) => SyncOutcome::Tombstoned,
    }
}

/// The organization's values as stored: its id checked, its texts kept
/// only when they can be stored.
pub(super) fn organization_values(
    organization: &ClerkOrganization,
) -> Result<OrganizationValues<'_>, StoreError> {
    Ok(OrganizationValues {
        clerk_id: checked::organization_id(&organization.id)?,
        name: checked::text(organization.name.as_deref()),
        slug: checked::text(organization.slug.as_deref()),
        image_url: checked::text(organization.image_url.as_deref()),
        version: organization.updated_at,
    })
}
