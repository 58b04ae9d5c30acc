//! The statements of organizations and memberships, one row at a time:
//! rendered once per store with the database's placeholders and the users
//! table it maps (memberships reference it), and the values each binds.

use std::sync::Arc;

use super::driver::{Bind, Statement};
use crate::{
    local_id::LocalId,
    store::{IdKind, UserTable},
};

/// The bundled tables (migration `0003`).
pub(super) const ORGANIZATIONS: &str = "organizations";
pub(super) const MEMBERSHIPS: &str = "organization_memberships";
pub(super) const ORGANIZATION_TOMBSTONES: &str = "clerk_organization_tombstones";
pub(super) const MEMBERSHIP_TOMBSTONES: &str = "clerk_membership_tombstones";

/// An organization's stored values: name, slug, image URL and version.
#[derive(Debug, Clone, Copy)]
pub(super) struct OrganizationValues<'a> {
    pub(super) clerk_id: &'a str,
    pub(super) name: Option<&'a str>,
    pub(super) slug: Option<&'a str>,
    pub(super) image_url: Option<&'a str>,
    pub(super) version: i64,
}

/// The statements, rendered once per store.
pub(super) struct OrganizationQueries {
    /// The type of the users table's key, which memberships reference.
    pub(super) user_id_kind: IdKind,
    organization_lookup: Arc<str>,
    organization_tombstoned: Arc<str>,
    organization_insert: Arc<str>,
    organization_upsert: Arc<str>,
    organization_tombstone: Arc<str>,
    organization_remove: Arc<str>,
    membership_state: Arc<str>,
    membership_state_by_clerk_ids: Arc<str>,
    membership_insert: Arc<str>,
    membership_role: Arc<str>,
    membership_upsert: Arc<str>,
    membership_tombstone: Arc<str>,
    membership_remove: Arc<str>,
    membership_remove_any: Arc<str>,
}

impl OrganizationQueries {
    /// `now` is the database's expression for the current time, as the
    /// bundled `updated_at` columns hold it.
    pub(super) fn new(users: &UserTable, param: fn(usize) -> String, now: &str) -> Self {
        let UserTable {
            table: users_table,
            id: user_id,
            clerk_id: user_clerk_id,
            tombstones: user_tombstones,
            ..
        } = users;
        let [p1, p2, p3, p4, p5, p6] = [1, 2, 3, 4, 5, 6].map(param);
        let (orgs, members) = (ORGANIZATIONS, MEMBERSHIPS);
        let (org_graves, member_graves) = (ORGANIZATION_TOMBSTONES, MEMBERSHIP_TOMBSTONES);
        let org_not_tombstoned =
            |id: &str| format!("NOT EXISTS (SELECT 1 FROM {org_graves} WHERE clerk_id = {id})");

        // What is stored for a membership: its row (id, role, role version)
        // and the tombstones of the membership, its organization and its
        // user. The row is found by local ids or by Clerk ids.
        let state = |row_matches: &str| {
            format!(
                "SELECT m.id, m.role, m.role_version, \
                 (SELECT deleted_at FROM {member_graves} \
                  WHERE organization_clerk_id = {p1} AND user_clerk_id = {p2}), \
                 (SELECT deleted_at FROM {org_graves} WHERE clerk_id = {p1}), \
                 (SELECT deleted_at FROM {user_tombstones} WHERE clerk_id = {p2}) \
                 FROM (SELECT 1 AS one) AS anchor \
                 LEFT JOIN {members} AS m ON {row_matches}"
            )
        };
        let org_local = format!("(SELECT id FROM {orgs} WHERE clerk_id = {p1})");
        let user_local =
            format!("(SELECT {user_id} FROM {users_table} WHERE {user_clerk_id} = {p2})");
        // A membership may be written unless its tombstone is as new as the
        // state written, or its organization or user is tombstoned.
        let membership_allowed = |version: &str| {
            format!(
                "NOT EXISTS (SELECT 1 FROM {member_graves} WHERE organization_clerk_id = {p1} \
                 AND user_clerk_id = {p2} AND deleted_at >= {version}) \
                 AND {} \
                 AND NOT EXISTS (SELECT 1 FROM {user_tombstones} WHERE clerk_id = {p2})",
                org_not_tombstoned(&p1)
            )
        };
        // The token's role replaces the stored one only when newer and different.
        let token_wins = "stored_row.role_version < excluded.role_version \
                          AND stored_row.role <> excluded.role";

        Self {
            user_id_kind: users.id_kind,
            organization_lookup: format!(
                "SELECT (SELECT id FROM {orgs} WHERE clerk_id = {p1}) AS id, \
                 EXISTS (SELECT 1 FROM {org_graves} WHERE clerk_id = {p1}) AS deleted"
            )
            .into(),
            organization_tombstoned: format!(
                "SELECT EXISTS (SELECT 1 FROM {org_graves} WHERE clerk_id = {p1})"
            )
            .into(),
            organization_insert: format!(
                "INSERT INTO {orgs} (clerk_id, slug) SELECT {p1}, {p2} WHERE {} \
                 ON CONFLICT (clerk_id) DO UPDATE SET clerk_id = excluded.clerk_id \
                 RETURNING id",
                org_not_tombstoned(&p1)
            )
            .into(),
            organization_upsert: format!(
                "INSERT INTO {orgs} AS stored_row \
                 (clerk_id, name, slug, image_url, clerk_updated_at) \
                 SELECT {p1}, {p2}, {p3}, {p4}, {p5} WHERE {} \
                 ON CONFLICT (clerk_id) DO UPDATE SET name = excluded.name, \
                 slug = excluded.slug, image_url = excluded.image_url, \
                 clerk_updated_at = excluded.clerk_updated_at, updated_at = {now} \
                 WHERE stored_row.clerk_updated_at IS NULL \
                 OR stored_row.clerk_updated_at <= excluded.clerk_updated_at \
                 RETURNING id",
                org_not_tombstoned(&p1)
            )
            .into(),
            organization_tombstone: format!(
                "INSERT INTO {org_graves} (clerk_id, deleted_at) VALUES ({p1}, {p2}) \
                 ON CONFLICT (clerk_id) DO NOTHING"
            )
            .into(),
            organization_remove: format!("DELETE FROM {orgs} WHERE clerk_id = {p1}").into(),
            membership_state: state(&format!("m.organization_id = {p3} AND m.user_id = {p4}"))
                .into(),
            membership_state_by_clerk_ids: state(&format!(
                "m.organization_id = {org_local} AND m.user_id = {user_local}"
            ))
            .into(),
            membership_insert: format!(
                "INSERT INTO {members} AS stored_row \
                 (organization_id, user_id, role, role_version) \
                 SELECT {p3}, {p4}, {p5}, {p6} WHERE {} \
                 AND EXISTS (SELECT 1 FROM {orgs} WHERE id = {p3}) \
                 AND EXISTS (SELECT 1 FROM {users_table} WHERE {user_id} = {p4}) \
                 ON CONFLICT (organization_id, user_id) DO UPDATE SET \
                 role = CASE WHEN {token_wins} THEN excluded.role ELSE stored_row.role END, \
                 role_version = CASE WHEN {token_wins} \
                 THEN excluded.role_version ELSE stored_row.role_version END, \
                 updated_at = CASE WHEN {token_wins} THEN {now} ELSE stored_row.updated_at END \
                 RETURNING id, role, role_version",
                membership_allowed(&p6)
            )
            .into(),
            membership_role: format!(
                "UPDATE {members} SET role = {p2}, role_version = {p3}, updated_at = {now} \
                 WHERE id = {p1} AND role_version < {p3} RETURNING role, role_version"
            )
            .into(),
            membership_upsert: format!(
                "INSERT INTO {members} AS stored_row \
                 (organization_id, user_id, role, role_version, clerk_updated_at) \
                 SELECT o.id, u.{user_id}, {p3}, {p4}, {p4} \
                 FROM {orgs} AS o, {users_table} AS u \
                 WHERE o.clerk_id = {p1} AND u.{user_clerk_id} = {p2} AND {} \
                 ON CONFLICT (organization_id, user_id) DO UPDATE SET role = excluded.role, \
                 role_version = excluded.role_version, \
                 clerk_updated_at = excluded.clerk_updated_at, updated_at = {now} \
                 WHERE stored_row.role_version <= excluded.role_version \
                 RETURNING id",
                membership_allowed(&p4)
            )
            .into(),
            // The latest deletion is kept: `deleted_at` only moves forward.
            membership_tombstone: format!(
                "INSERT INTO {member_graves} AS kept \
                 (organization_clerk_id, user_clerk_id, deleted_at) VALUES ({p1}, {p2}, {p3}) \
                 ON CONFLICT (organization_clerk_id, user_clerk_id) \
                 DO UPDATE SET deleted_at = excluded.deleted_at \
                 WHERE kept.deleted_at < excluded.deleted_at"
            )
            .into(),
            // A row as old as the tombstone goes; a newer one (the user
            // invited back) stays.
            membership_remove: format!(
                "DELETE FROM {members} WHERE organization_id = {org_local} \
                 AND user_id = {user_local} \
                 AND role_version <= (SELECT deleted_at FROM {member_graves} \
                 WHERE organization_clerk_id = {p1} AND user_clerk_id = {p2})"
            )
            .into(),
            membership_remove_any: format!(
                "DELETE FROM {members} WHERE organization_id = {org_local} \
                 AND user_id = {user_local}"
            )
            .into(),
        }
    }

    /// The organization's local id, and whether it is tombstoned.
    pub(super) fn organization_lookup<'a>(&self, clerk_id: &'a str) -> Statement<'a> {
        statement(&self.organization_lookup).bind(Bind::Text(clerk_id))
    }

    /// Whether the organization is tombstoned.
    pub(super) fn organization_tombstoned<'a>(&self, clerk_id: &'a str) -> Statement<'a> {
        statement(&self.organization_tombstoned).bind(Bind::Text(clerk_id))
    }

    /// Creates the organization's row with its slug, unless tombstoned;
    /// returns the id (of the existing row, if a racing insert won).
    pub(super) fn organization_insert<'a>(
        &self,
        clerk_id: &'a str,
        slug: Option<&'a str>,
    ) -> Statement<'a> {
        statement(&self.organization_insert)
            .bind(Bind::Text(clerk_id))
            .bind(Bind::MaybeText(slug))
    }

    /// Writes the organization's values, unless tombstoned or a newer
    /// version is stored; returns the id of the row written.
    pub(super) fn organization_upsert<'a>(&self, values: &OrganizationValues<'a>) -> Statement<'a> {
        statement(&self.organization_upsert).bind_all(organization_binds(values))
    }

    /// Records the organization's tombstone unless one exists.
    pub(super) fn organization_tombstone<'a>(
        &self,
        clerk_id: &'a str,
        deleted_at_ms: i64,
    ) -> Statement<'a> {
        statement(&self.organization_tombstone)
            .bind(Bind::Text(clerk_id))
            .bind(Bind::Int(deleted_at_ms))
    }

    /// Deletes the organization's row (and, by cascade, its memberships).
    pub(super) fn organization_remove<'a>(&self, clerk_id: &'a str) -> Statement<'a> {
        statement(&self.organization_remove).bind(Bind::Text(clerk_id))
    }

    /// The membership's row and the tombstones that bear on it, the row
    /// found by the local ids: see [`MembershipKey`].
    pub(super) fn membership_state<'a>(&self, key: &MembershipKey<'a>) -> Statement<'a> {
        statement(&self.membership_state)
            .bind(Bind::Text(key.organization_clerk_id))
            .bind(Bind::Text(key.user_clerk_id))
            .bind(local_id(key.organization))
            .bind(local_id(key.user))
    }

    /// As [`membership_state`](Self::membership_state), the row found by
    /// the Clerk ids.
    pub(super) fn membership_state_by_clerk_ids<'a>(
        &self,
        organization_clerk_id: &'a str,
        user_clerk_id: &'a str,
    ) -> Statement<'a> {
        statement(&self.membership_state_by_clerk_ids)
            .bind(Bind::Text(organization_clerk_id))
            .bind(Bind::Text(user_clerk_id))
    }

    /// Creates the membership's row with the token's role, unless a
    /// tombstone forbids it; on a racing insert, takes the token's role
    /// only when newer and different. Returns the row's id, role and role
    /// version.
    pub(super) fn membership_insert<'a>(
        &self,
        key: &MembershipKey<'a>,
        role: &'a str,
        version: i64,
    ) -> Statement<'a> {
        statement(&self.membership_insert)
            .bind(Bind::Text(key.organization_clerk_id))
            .bind(Bind::Text(key.user_clerk_id))
            .bind(local_id(key.organization))
            .bind(local_id(key.user))
            .bind(Bind::Text(role))
            .bind(Bind::Int(version))
    }

    /// Gives the row `id` the token's role, unless its role version is as
    /// new; returns the role and version written.
    pub(super) fn membership_role<'a>(
        &self,
        id: LocalId,
        role: &'a str,
        version: i64,
    ) -> Statement<'a> {
        statement(&self.membership_role)
            .bind(local_id(id))
            .bind(Bind::Text(role))
            .bind(Bind::Int(version))
    }

    /// Writes the membership's role as of `version` (an event's
    /// `updated_at`), unless a tombstone forbids it or the stored role is
    /// newer; returns the id of the row written. The organization's and
    /// user's rows must exist.
    pub(super) fn membership_upsert<'a>(
        &self,
        organization_clerk_id: &'a str,
        user_clerk_id: &'a str,
        role: &'a str,
        version: i64,
    ) -> Statement<'a> {
        statement(&self.membership_upsert)
            .bind(Bind::Text(organization_clerk_id))
            .bind(Bind::Text(user_clerk_id))
            .bind(Bind::Text(role))
            .bind(Bind::Int(version))
    }

    /// Records the membership's tombstone, or moves it to `deleted_at_ms`
    /// when that is later.
    pub(super) fn membership_tombstone<'a>(
        &self,
        organization_clerk_id: &'a str,
        user_clerk_id: &'a str,
        deleted_at_ms: i64,
    ) -> Statement<'a> {
        statement(&self.membership_tombstone)
            .bind(Bind::Text(organization_clerk_id))
            .bind(Bind::Text(user_clerk_id))
            .bind(Bind::Int(deleted_at_ms))
    }

    /// Deletes the membership's row if its role is no newer than its tombstone.
    pub(super) fn membership_remove<'a>(
        &self,
        organization_clerk_id: &'a str,
        user_clerk_id: &'a str,
    ) -> Statement<'a> {
        statement(&self.membership_remove)
            .bind(Bind::Text(organization_clerk_id))
            .bind(Bind::Text(user_clerk_id))
    }

    /// Deletes the membership's row, whatever its version.
    pub(super) fn membership_remove_any<'a>(
        &self,
        organization_clerk_id: &'a str,
        user_clerk_id: &'a str,
    ) -> Statement<'a> {
        statement(&self.membership_remove_any)
            .bind(Bind::Text(organization_clerk_id))
            .bind(Bind::Text(user_clerk_id))
    }
}

/// A membership by its organization and user, each by local and Clerk id.
#[derive(Debug, Clone, Copy)]
pub(super) struct MembershipKey<'a> {
    pub(super) organization: LocalId,
    pub(super) organization_clerk_id: &'a str,
    pub(super) user: LocalId,
    pub(super) user_clerk_id: &'a str,
}

fn statement<'a>(sql: &Arc<str>) -> Statement<'a> {
    Statement::new(Arc::clone(sql))
}

/// A local id as a bound value.
pub(super) fn local_id<'a>(id: LocalId) -> Bind<'a> {
    match id {
        LocalId::Int(id) => Bind::Int(id),
        LocalId::Uuid(id) => Bind::Uuid(id),
    }
}

/// An organization's values in column order: Clerk id, name, slug, image
/// URL, version.
pub(super) fn organization_binds<'a>(
    values: &OrganizationValues<'a>,
) -> impl Iterator<Item = Bind<'a>> + use<'a> {
    [
        Bind::Text(values.clerk_id),
        Bind::MaybeText(values.name),
        Bind::MaybeText(values.slug),
        Bind::MaybeText(values.image_url),
        Bind::Int(values.version),
    ]
    .into_iter()
}
