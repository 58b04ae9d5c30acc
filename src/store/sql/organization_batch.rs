//! Organizations and memberships many at a time, for the backfill
//! ([`OrganizationBackfillStore`]), as the users' batches are written: per
//! chunk, what is stored is read in a few queries, the plan picks what to
//! write (strictly newer versions only), one multi-row upsert writes it, and
//! the tombstones of what was written are read again, rows a deletion
//! committed against in the meantime being removed.
//!
//! Before its memberships, a chunk writes the organizations from their
//! snapshots (by the same rule) and gives a row to each user without one,
//! so that every membership has the rows it references.

use std::collections::{HashMap, HashSet};

use super::{
    Dialect, SqlUserStore, checked,
    organization_batch_queries::{MembershipRow, membership_bytes, organization_bytes},
    organization_columns::OrganizationValues,
    organizations::organization_values,
    queries::rows_per_statement,
};
use crate::{
    clerk::ClerkMembership,
    clerk::ClerkOrganization,
    local_id::LocalId,
    store::{
        BatchOutcome, Checkpoint, OrganizationBackfillStore, Profile, Resolution, StoreError,
        UserStore, Walk,
        batch::{Stored, plan_items},
    },
};

/// A membership whose ids and role were checked.
struct CheckedMembership<'a> {
    organization: OrganizationValues<'a>,
    user: &'a str,
    role: String,
    version: i64,
}

impl<'a> CheckedMembership<'a> {
    fn new(membership: &'a ClerkMembership) -> Result<Self, StoreError> {
        Ok(Self {
            organization: organization_values(&membership.organization)?,
            user: checked::user_id(&membership.user.user_id)?,
            role: checked::role(&membership.role)?,
            version: membership.updated_at,
        })
    }

    fn key(&self) -> (&'a str, &'a str) {
        (self.organization.clerk_id, self.user)
    }
}

/// What is stored for an organization: its version and tombstone, and its
/// local id.
type StoredOrganization = (Stored, Option<LocalId>);

/// What is stored for a user: their local id, and whether they are tombstoned.
type StoredUser = (Option<LocalId>, bool);

/// Membership tombstones: organization, then user, to `deleted_at`.
type Graves = HashMap<String, HashMap<String, i64>>;

fn grave(graves: &Graves, (organization, user): (&str, &str)) -> Option<i64> {
    graves.get(organization)?.get(user).copied()
}

/// The ids once each, in their first order.
fn distinct<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    ids.filter(|id| seen.insert(*id)).collect()
}

impl<DB: Dialect> SqlUserStore<DB> {
    async fn read_organizations(
        &self,
        ids: &[&str],
    ) -> Result<HashMap<String, StoredOrganization>, sqlx::Error> {
        let statement = self.organization_batches.organizations(ids);
        let rows = DB::rows(&self.pool, statement).await?;
        let mut stored: HashMap<String, StoredOrganization> = HashMap::with_capacity(ids.len());
        for row in &rows {
            let entry = stored.entry(DB::text(row, 0)?).or_default();
            if DB::flag(row, 3)? {
                entry.0.tombstoned = true;
            } else {
                entry.0.exists = true;
                entry.0.version = DB::maybe_int(row, 1)?;
                entry.1 = DB::id(row, 2, self.organizations.organization_id_kind)?;
            }
        }
        Ok(stored)
    }

    async fn read_users(&self, ids: &[&str]) -> Result<HashMap<String, StoredUser>, sqlx::Error> {
        let statement = self.organization_batches.users(ids);
        let rows = DB::rows(&self.pool, statement).await?;
        let kind = self.organizations.user_id_kind;
        let mut stored: HashMap<String, StoredUser> = HashMap::with_capacity(ids.len());
        for row in &rows {
            let entry = stored.entry(DB::text(row, 0)?).or_default();
            if DB::flag(row, 2)? {
                entry.1 = true;
            } else {
                entry.0 = DB::id(row, 1, kind)?;
            }
        }
        Ok(stored)
    }

    /// The role versions of the memberships among these organizations and
    /// users.
    async fn read_memberships(
        &self,
        organizations: &[LocalId],
        users: &[LocalId],
    ) -> Result<HashMap<(LocalId, LocalId), i64>, sqlx::Error> {
        if organizations.is_empty() || users.is_empty() {
            return Ok(HashMap::new());
        }
        let statement = self.organization_batches.memberships(organizations, users);
        let rows = DB::rows(&self.pool, statement).await?;
        let kinds = (
            self.organizations.organization_id_kind,
            self.organizations.user_id_kind,
        );
        rows.iter()
            .map(|row| {
                let organization = DB::id(row, 0, kinds.0)?;
                let user = DB::id(row, 1, kinds.1)?;
                let pair = organization.zip(user).ok_or(sqlx::Error::RowNotFound)?;
                Ok((pair, DB::int(row, 2)?))
            })
            .collect()
    }

    async fn read_graves(
        &self,
        organizations: &[&str],
        users: &[&str],
    ) -> Result<Graves, sqlx::Error> {
        let mut graves = Graves::new();
        if organizations.is_empty() || users.is_empty() {
            return Ok(graves);
        }
        let statement = self
            .organization_batches
            .membership_tombstones(organizations, users);
        for row in &DB::rows(&self.pool, statement).await? {
            graves
                .entry(DB::text(row, 0)?)
                .or_default()
                .insert(DB::text(row, 1)?, DB::int(row, 2)?);
        }
        Ok(graves)
    }

    /// Applies (or, unless `write`, previews) organizations, cut into
    /// statements by size.
    async fn organization_batch(
        &self,
        organizations: &[OrganizationValues<'_>],
        write: bool,
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        let widest = organizations.iter().map(organization_bytes).max();
        let rows = rows_per_statement(widest.unwrap_or(1), DB::STATEMENT_BYTES);
        let mut outcomes = Vec::with_capacity(organizations.len());
        for chunk in organizations.chunks(rows) {
            outcomes.extend(self.organization_chunk(chunk, write).await?);
        }
        Ok(outcomes)
    }

    async fn organization_chunk(
        &self,
        chunk: &[OrganizationValues<'_>],
        write: bool,
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        let ids: Vec<&str> = chunk.iter().map(|values| values.clerk_id).collect();
        let stored = self.read_organizations(&ids).await?;
        let items: Vec<(&str, i64, Stored)> = chunk
            .iter()
            .map(|values| {
                let current = stored.get(values.clerk_id).map(|s| s.0);
                (values.clerk_id, values.version, current.unwrap_or_default())
            })
            .collect();
        let versioned = self.organizations.organization_versioned;
        let (mut outcomes, writes) = plan_items(&items, versioned);
        if !write || writes.is_empty() {
            return Ok(outcomes);
        }
        let values: Vec<OrganizationValues<'_>> = writes.iter().map(|&i| chunk[i]).collect();
        let statement = self.organization_batches.organization_upsert(&values);
        let written = self.clerk_ids(statement).await?;
        // As for a single upsert: a deletion may have committed its
        // tombstone while we wrote; those rows must not survive.
        let written_ids: Vec<&str> = written.iter().map(String::as_str).collect();
        let tombstoned = if written_ids.is_empty() {
            HashSet::new()
        } else {
            let statement = self
                .organization_batches
                .organization_tombstones(&written_ids);
            self.clerk_ids(statement).await?
        };
        for clerk_id in &tombstoned {
            self.remove_organization(clerk_id).await?;
        }
        for index in writes {
            let clerk_id = chunk[index].clerk_id;
            if tombstoned.contains(clerk_id) {
                outcomes[index] = BatchOutcome::Tombstoned;
            } else if !written.contains(clerk_id) {
                outcomes[index] = not_written(items[index].2);
            }
        }
        Ok(outcomes)
    }

    /// Applies (or, unless `write`, previews) memberships, cut into
    /// statements by size.
    async fn membership_batch(
        &self,
        memberships: &[ClerkMembership],
        write: bool,
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        let checked = memberships
            .iter()
            .map(CheckedMembership::new)
            .collect::<Result<Vec<_>, _>>()?;
        let widest = checked
            .iter()
            .map(|m| membership_bytes(m.organization.clerk_id, m.user, &m.role))
            .max();
        let rows = rows_per_statement(widest.unwrap_or(1), DB::STATEMENT_BYTES);
        let mut outcomes = Vec::with_capacity(checked.len());
        for chunk in checked.chunks(rows) {
            outcomes.extend(self.membership_chunk(chunk, write).await?);
        }
        Ok(outcomes)
    }

    async fn membership_chunk(
        &self,
        chunk: &[CheckedMembership<'_>],
        write: bool,
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        let organization_ids = distinct(chunk.iter().map(|m| m.organization.clerk_id));
        let user_ids = distinct(chunk.iter().map(|m| m.user));
        let mut users = self.read_users(&user_ids).await?;
        if write {
            // What the memberships reference: their organizations (from the
            // snapshots, by the same last-write-wins rule) and their users.
            let snapshots: Vec<_> = chunk.iter().map(|m| m.organization).collect();
            self.organization_batch(&snapshots, true).await?;
            for &user in &user_ids {
                if users.contains_key(user) {
                    continue;
                }
                let resolution = self.find_or_create(user, &Profile::new()).await?;
                let stored = (resolution.id(), resolution == Resolution::Deleted);
                users.insert(user.to_owned(), stored);
            }
        }
        let organizations = self.read_organizations(&organization_ids).await?;
        let locals = |m: &CheckedMembership<'_>| {
            let organization = organizations.get(m.organization.clerk_id)?.1?;
            Some((organization, users.get(m.user)?.0?))
        };
        let organization_locals: Vec<LocalId> = organizations
            .values()
            .filter_map(|stored| stored.1)
            .collect();
        let user_locals: Vec<LocalId> = users.values().filter_map(|stored| stored.0).collect();
        let stored = self
            .read_memberships(&organization_locals, &user_locals)
            .await?;
        let graves = self.read_graves(&organization_ids, &user_ids).await?;

        let items: Vec<((&str, &str), i64, Stored)> = chunk
            .iter()
            .map(|m| {
                let parent_deleted = organizations
                    .get(m.organization.clerk_id)
                    .is_some_and(|stored| stored.0.tombstoned)
                    || users.get(m.user).is_some_and(|stored| stored.1);
                let version = locals(m).and_then(|pair| stored.get(&pair).copied());
                let current = Stored {
                    exists: version.is_some(),
                    version,
                    tombstoned: parent_deleted
                        || grave(&graves, m.key()).is_some_and(|at| at >= m.version),
                    // Memberships record no ban.
                    banned: false,
                };
                (m.key(), m.version, current)
            })
            .collect();
        let (mut outcomes, writes) = plan_items(&items, true);
        if !write || writes.is_empty() {
            return Ok(outcomes);
        }

        let mut rows = Vec::with_capacity(writes.len());
        let mut planned: HashMap<(LocalId, LocalId), usize> = HashMap::new();
        for &index in &writes {
            let m = &chunk[index];
            let Some((organization, user)) = locals(m) else {
                // The steps above made both rows unless a deletion removed
                // one; only a deletion removes them.
                outcomes[index] = BatchOutcome::Tombstoned;
                continue;
            };
            planned.insert((organization, user), index);
            rows.push(MembershipRow {
                organization,
                user,
                organization_clerk_id: m.organization.clerk_id,
                user_clerk_id: m.user,
                role: &m.role,
                version: m.version,
            });
        }
        if rows.is_empty() {
            return Ok(outcomes);
        }
        let statement = self.organization_batches.membership_upsert(&rows);
        let (organization_kind, user_kind) = (
            self.organizations.organization_id_kind,
            self.organizations.user_id_kind,
        );
        let written: HashSet<(LocalId, LocalId)> = DB::rows(&self.pool, statement)
            .await?
            .iter()
            .map(|row| {
                let organization = DB::id(row, 0, organization_kind)?;
                let pair = organization.zip(DB::id(row, 1, user_kind)?);
                pair.ok_or(sqlx::Error::RowNotFound)
            })
            .collect::<Result<_, _>>()?;

        // As for a single upsert: a deletion may have committed its
        // tombstone while we wrote; those rows must not survive.
        let written_indexes: Vec<usize> = planned
            .iter()
            .filter(|(pair, _)| written.contains(*pair))
            .map(|(_, &index)| index)
            .collect();
        let written_organizations = distinct(
            written_indexes
                .iter()
                .map(|&i| chunk[i].organization.clerk_id),
        );
        let written_users = distinct(written_indexes.iter().map(|&i| chunk[i].user));
        if !written_indexes.is_empty() {
            let graves = self
                .read_graves(&written_organizations, &written_users)
                .await?;
            let statement = self
                .organization_batches
                .organization_tombstones(&written_organizations);
            let deleted_organizations = self.clerk_ids(statement).await?;
            let statement = self.queries.tombstoned_among(&written_users);
            let deleted_users = self.clerk_ids(statement).await?;
            for &index in &written_indexes {
                let m = &chunk[index];
                let parent_deleted = deleted_organizations.contains(m.organization.clerk_id)
                    || deleted_users.contains(m.user);
                let forbidden = grave(&graves, m.key()).is_some_and(|at| at >= m.version);
                if parent_deleted || forbidden {
                    self.undo_membership(parent_deleted, m.organization.clerk_id, m.user)
                        .await?;
                    outcomes[index] = BatchOutcome::Tombstoned;
                }
            }
        }
        for (pair, &index) in &planned {
            if !written.contains(pair) {
                outcomes[index] = not_written(items[index].2);
            }
        }
        Ok(outcomes)
    }
}

/// The outcome of a planned write that wrote nothing: a newer state was
/// stored in between, or (with no row before) a tombstone kept it out.
fn not_written(stored: Stored) -> BatchOutcome {
    if stored.exists {
        BatchOutcome::Unchanged
    } else {
        BatchOutcome::Tombstoned
    }
}

/// Each organization's values, checked: the first that is refused fails
/// the batch.
fn checked_values(
    organizations: &[ClerkOrganization],
) -> Result<Vec<OrganizationValues<'_>>, StoreError> {
    organizations.iter().map(organization_values).collect()
}

impl<DB: Dialect> OrganizationBackfillStore for SqlUserStore<DB> {
    async fn apply_organizations(
        &self,
        organizations: &[ClerkOrganization],
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        self.organization_batch(&checked_values(organizations)?, true)
            .await
    }

    async fn preview_organizations(
        &self,
        organizations: &[ClerkOrganization],
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        self.organization_batch(&checked_values(organizations)?, false)
            .await
    }

    async fn apply_memberships(
        &self,
        memberships: &[ClerkMembership],
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        self.membership_batch(memberships, true).await
    }

    async fn preview_memberships(
        &self,
        memberships: &[ClerkMembership],
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        self.membership_batch(memberships, false).await
    }

    async fn load_walk_checkpoint(&self, walk: Walk) -> Result<Option<Checkpoint>, StoreError> {
        self.load_named_checkpoint(walk).await
    }

    async fn save_walk_checkpoint(
        &self,
        walk: Walk,
        checkpoint: &Checkpoint,
    ) -> Result<(), StoreError> {
        self.save_named_checkpoint(walk, checkpoint).await
    }

    async fn clear_walk_checkpoint(&self, walk: Walk) -> Result<(), StoreError> {
        self.clear_named_checkpoint(walk).await
    }
}
