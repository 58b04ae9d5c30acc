//! The statements of organizations and memberships, one row at a time:
//! rendered once per store with the database's placeholders and the tables
//! it maps ([`Tables`]), and the values each binds.

use std::sync::Arc;

use uuid::Uuid;

use super::{
    driver::{Bind, Statement},
    organization_columns::{
        OrganizationValues, Tables, UPSERTED, Value, organization_assignments, organization_binds,
        organization_columns,
    },
};
use crate::{
    local_id::LocalId,
    store::{IdKind, MembershipTable, OrganizationTable, UserTable},
};

/// The crate's own tombstone tables (migration `0003`), whatever the mapping.
pub(super) const ORGANIZATION_TOMBSTONES: &str = "clerk_organization_tombstones";
pub(super) const MEMBERSHIP_TOMBSTONES: &str = "clerk_membership_tombstones";

/// The statements, rendered once per store.
pub(super) struct OrganizationQueries {
    /// The type of the users table's key, which memberships reference.
    pub(super) user_id_kind: IdKind,
    /// The type of the organizations table's key.
    pub(super) organization_id_kind: IdKind,
    /// The type of the memberships table's key.
    pub(super) membership_id_kind: IdKind,
    /// Whether the organizations table records the version of its state.
    pub(super) organization_versioned: bool,
    inserted: Vec<Value>,
    upserted: Vec<Value>,
    membership_new_id: bool,
    organization_lookup: Arc<str>,
    organization_tombstoned: Arc<str>,
    organization_insert: Arc<str>,
    organization_upsert: Arc<str>,
    organization_tombstone: Arc<str>,
    organization_remove: Arc<str>,
    organization_memberships_remove: Arc<str>,
    user_memberships_remove: Option<Arc<str>>,
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
    pub(super) fn new(tables: &Tables, param: fn(usize) -> String, now: &str) -> Self {
        let UserTable {
            table: users_table,
            id: user_id,
            clerk_id: user_clerk_id,
            tombstones: user_tombstones,
            ..
        } = &tables.users;
        let organizations = &tables.organizations;
        let OrganizationTable {
            table: orgs,
            id: org_id,
            clerk_id: org_clerk_id,
            ..
        } = organizations;
        let MembershipTable {
            table: members,
            id: member_id,
            organization: member_org,
            user: member_user,
            role,
            role_version,
            ..
        } = &tables.memberships;
        let [p1, p2, p3, p4, p5, p6, p7] = [1, 2, 3, 4, 5, 6, 7].map(param);
        let (org_graves, member_graves) = (ORGANIZATION_TOMBSTONES, MEMBERSHIP_TOMBSTONES);
        let org_not_tombstoned =
            |id: &str| format!("NOT EXISTS (SELECT 1 FROM {org_graves} WHERE clerk_id = {id})");
        let org_touched = organizations
            .updated_at
            .as_ref()
            .map_or_else(String::new, |column| format!(", {column} = {now}"));
        let member_touched = |value: &str| {
            tables
                .memberships
                .updated_at
                .as_ref()
                .map_or_else(String::new, |column| format!(", {column} = {value}"))
        };
        let member_version = tables.memberships.clerk_updated_at.as_ref();
        let member_new_id = tables.memberships.id_kind == IdKind::Uuid;

        // What is stored for a membership: its row (id, role, role version)
        // and the tombstones of the membership, its organization and its
        // user. The row is found by local ids or by Clerk ids.
        let state = |row_matches: &str| {
            format!(
                "SELECT m.{member_id}, m.{role}, m.{role_version}, \
                 (SELECT deleted_at FROM {member_graves} \
                  WHERE organization_clerk_id = {p1} AND user_clerk_id = {p2}), \
                 (SELECT deleted_at FROM {org_graves} WHERE clerk_id = {p1}), \
                 (SELECT deleted_at FROM {user_tombstones} WHERE clerk_id = {p2}) \
                 FROM (SELECT 1 AS one) AS anchor \
                 LEFT JOIN {members} AS m ON {row_matches}"
            )
        };
        let org_local = format!("(SELECT {org_id} FROM {orgs} WHERE {org_clerk_id} = {p1})");
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
        let token_wins = format!(
            "stored_row.{role_version} < excluded.{role_version} \
             AND stored_row.{role} <> excluded.{role}"
        );

        let inserted = organization_columns(organizations, &[Value::Slug, Value::NewId]);
        let upserted = organization_columns(organizations, &UPSERTED);
        let names = |columns: &[(String, Value)]| {
            columns
                .iter()
                .map(|(column, _)| column.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let values = |count: usize| (1..=count).map(param).collect::<Vec<_>>().join(", ");
        let assignments = organization_assignments(organizations, &upserted);
        let newer = organizations
            .clerk_updated_at
            .as_ref()
            .map_or_else(String::new, |v| {
                format!(" WHERE stored_row.{v} IS NULL OR stored_row.{v} <= excluded.{v}")
            });

        let (member_id_column, member_id_value) = if member_new_id {
            (format!(", {member_id}"), format!(", {p7}"))
        } else {
            (String::new(), String::new())
        };
        let (upsert_version_column, upsert_version_value, upsert_version_set) = match member_version
        {
            Some(column) => (
                format!(", {column}"),
                format!(", {p4}"),
                format!(", {column} = excluded.{column}"),
            ),
            None => (String::new(), String::new(), String::new()),
        };
        let upsert_id_value = if member_new_id {
            format!(", {p5}")
        } else {
            String::new()
        };

        Self {
            user_id_kind: tables.users.id_kind,
            organization_id_kind: organizations.id_kind,
            membership_id_kind: tables.memberships.id_kind,
            organization_versioned: organizations.clerk_updated_at.is_some(),
            membership_new_id: member_new_id,
            organization_lookup: format!(
                "SELECT (SELECT {org_id} FROM {orgs} WHERE {org_clerk_id} = {p1}) AS id, \
                 EXISTS (SELECT 1 FROM {org_graves} WHERE clerk_id = {p1}) AS deleted"
            )
            .into(),
            organization_tombstoned: format!(
                "SELECT EXISTS (SELECT 1 FROM {org_graves} WHERE clerk_id = {p1})"
            )
            .into(),
            organization_insert: format!(
                "INSERT INTO {orgs} ({}) SELECT {} WHERE {} \
                 ON CONFLICT ({org_clerk_id}) DO UPDATE SET {org_clerk_id} = excluded.{org_clerk_id} \
                 RETURNING {org_id}",
                names(&inserted),
                values(inserted.len()),
                org_not_tombstoned(&p1)
            )
            .into(),
            organization_upsert: format!(
                "INSERT INTO {orgs} AS stored_row ({}) SELECT {} WHERE {} \
                 ON CONFLICT ({org_clerk_id}) DO UPDATE SET {assignments}{org_touched}{newer} \
                 RETURNING {org_id}",
                names(&upserted),
                values(upserted.len()),
                org_not_tombstoned(&p1)
            )
            .into(),
            inserted: inserted.into_iter().map(|(_, value)| value).collect(),
            upserted: upserted.into_iter().map(|(_, value)| value).collect(),
            organization_tombstone: format!(
                "INSERT INTO {org_graves} (clerk_id, deleted_at) VALUES ({p1}, {p2}) \
                 ON CONFLICT (clerk_id) DO NOTHING"
            )
            .into(),
            organization_remove: format!("DELETE FROM {orgs} WHERE {org_clerk_id} = {p1}").into(),
            // Run before the organization's row goes, so that the app's
            // foreign keys need not cascade.
            organization_memberships_remove: format!(
                "DELETE FROM {members} WHERE {member_org} IN \
                 (SELECT {org_id} FROM {orgs} WHERE {org_clerk_id} = {p1})"
            )
            .into(),
            // The bundled tables cascade; the app's may not.
            user_memberships_remove: tables.organizations_mapped().then(|| {
                format!(
                    "DELETE FROM {members} WHERE {member_user} IN \
                     (SELECT {user_id} FROM {users_table} WHERE {user_clerk_id} = {p1})"
                )
                .into()
            }),
            membership_state: state(&format!(
                "m.{member_org} = {p3} AND m.{member_user} = {p4}"
            ))
            .into(),
            membership_state_by_clerk_ids: state(&format!(
                "m.{member_org} = {org_local} AND m.{member_user} = {user_local}"
            ))
            .into(),
            membership_insert: format!(
                "INSERT INTO {members} AS stored_row \
                 ({member_org}, {member_user}, {role}, {role_version}{member_id_column}) \
                 SELECT {p3}, {p4}, {p5}, {p6}{member_id_value} WHERE {} \
                 AND EXISTS (SELECT 1 FROM {orgs} WHERE {org_id} = {p3}) \
                 AND EXISTS (SELECT 1 FROM {users_table} WHERE {user_id} = {p4}) \
                 ON CONFLICT ({member_org}, {member_user}) DO UPDATE SET \
                 {role} = CASE WHEN {token_wins} THEN excluded.{role} ELSE stored_row.{role} END, \
                 {role_version} = CASE WHEN {token_wins} \
                 THEN excluded.{role_version} ELSE stored_row.{role_version} END{} \
                 RETURNING {member_id}, {role}, {role_version}",
                membership_allowed(&p6),
                tables.memberships.updated_at.as_ref().map_or_else(String::new, |column| {
                    format!(
                        ", {column} = CASE WHEN {token_wins} THEN {now} \
                         ELSE stored_row.{column} END"
                    )
                }),
            )
            .into(),
            membership_role: format!(
                "UPDATE {members} SET {role} = {p2}, {role_version} = {p3}{} \
                 WHERE {member_id} = {p1} AND {role_version} < {p3} \
                 RETURNING {role}, {role_version}",
                member_touched(now)
            )
            .into(),
            membership_upsert: format!(
                "INSERT INTO {members} AS stored_row \
                 ({member_org}, {member_user}, {role}, {role_version}\
                 {upsert_version_column}{member_id_column}) \
                 SELECT o.{org_id}, u.{user_id}, {p3}, {p4}{upsert_version_value}{upsert_id_value} \
                 FROM {orgs} AS o, {users_table} AS u \
                 WHERE o.{org_clerk_id} = {p1} AND u.{user_clerk_id} = {p2} AND {} \
                 ON CONFLICT ({member_org}, {member_user}) DO UPDATE SET \
                 {role} = excluded.{role}, {role_version} = excluded.{role_version}\
                 {upsert_version_set}{} \
                 WHERE stored_row.{role_version} <= excluded.{role_version} \
                 RETURNING {member_id}",
                membership_allowed(&p4),
                member_touched(now)
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
                "DELETE FROM {members} WHERE {member_org} = {org_local} \
                 AND {member_user} = {user_local} \
                 AND {role_version} <= (SELECT deleted_at FROM {member_graves} \
                 WHERE organization_clerk_id = {p1} AND user_clerk_id = {p2})"
            )
            .into(),
            membership_remove_any: format!(
                "DELETE FROM {members} WHERE {member_org} = {org_local} \
                 AND {member_user} = {user_local}"
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
        let values = OrganizationValues {
            clerk_id,
            name: None,
            slug,
            image_url: None,
            version: 0,
        };
        statement(&self.organization_insert).bind_all(organization_binds(&values, &self.inserted))
    }

    /// Writes the organization's values, unless tombstoned or a newer
    /// version is stored; returns the id of the row written.
    pub(super) fn organization_upsert<'a>(&self, values: &OrganizationValues<'a>) -> Statement<'a> {
        statement(&self.organization_upsert).bind_all(organization_binds(values, &self.upserted))
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

    /// Deletes the organization's row, after its memberships.
    pub(super) fn organization_remove<'a>(&self, clerk_id: &'a str) -> [Statement<'a>; 2] {
        [
            statement(&self.organization_memberships_remove).bind(Bind::Text(clerk_id)),
            statement(&self.organization_remove).bind(Bind::Text(clerk_id)),
        ]
    }

    /// Deletes the user's memberships, run before their row goes; `None`
    /// on the bundled tables, whose foreign keys cascade.
    pub(super) fn user_memberships_remove<'a>(&self, clerk_id: &'a str) -> Option<Statement<'a>> {
        let sql = self.user_memberships_remove.as_ref()?;
        Some(statement(sql).bind(Bind::Text(clerk_id)))
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
            .bind_all(self.new_membership_id())
    }

    /// A new key for a membership row, when the key is a UUID.
    pub(super) fn new_membership_id<'a>(&self) -> Option<Bind<'a>> {
        self.membership_new_id.then(|| Bind::Uuid(Uuid::new_v4()))
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
            .bind_all(self.new_membership_id())
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
