//! The batch statements of organizations and memberships, for the backfill:
//! their parameter lists grow with the batch, so they are rendered per call
//! from parts rendered once per store, and planned anew each time (as the
//! users' batch reads are).

use super::{
    driver::{Bind, Statement},
    organization_queries::{
        MEMBERSHIP_TOMBSTONES, MEMBERSHIPS, ORGANIZATION_TOMBSTONES, ORGANIZATIONS,
        OrganizationValues, local_id, organization_binds,
    },
    queries::placeholders,
};
use crate::{local_id::LocalId, store::UserTable};

/// Values bound per organization row written.
const ORGANIZATION_COLUMNS: usize = 5;
/// Values bound per membership row written.
const MEMBERSHIP_COLUMNS: usize = 6;

/// One membership row to write: its organization and user by local and
/// Clerk id, its role and version.
pub(super) struct MembershipRow<'a> {
    pub(super) organization: LocalId,
    pub(super) user: LocalId,
    pub(super) organization_clerk_id: &'a str,
    pub(super) user_clerk_id: &'a str,
    pub(super) role: &'a str,
    pub(super) version: i64,
}

/// The batch statements, rendered once per store up to their lists.
pub(super) struct OrganizationBatchQueries {
    param: fn(usize) -> String,
    /// `(clerk id, version, local id, tombstoned)` of organizations: rows,
    /// then tombstones.
    organizations: (String, String),
    /// `(clerk id, local id, tombstoned)` of users: rows, then tombstones.
    users: (String, String),
    /// Which of a list of organizations are tombstoned.
    organization_tombstones: String,
    /// `(organization id, user id, role version)` of memberships among
    /// organizations (first list) and users (second list).
    memberships: (String, String),
    /// `(organization clerk id, user clerk id, deleted at)` of membership
    /// tombstones among organizations (first list) and users (second list).
    membership_tombstones: (String, String),
    /// `INSERT … VALUES` up to the rows, then the rest after them.
    organization_upsert: (String, String),
    membership_upsert: (String, String),
}

impl OrganizationBatchQueries {
    pub(super) fn new(users: &UserTable, param: fn(usize) -> String, now: &str) -> Self {
        let UserTable {
            table: users_table,
            id: user_id,
            clerk_id: user_clerk_id,
            tombstones: user_tombstones,
            ..
        } = users;
        let (orgs, members) = (ORGANIZATIONS, MEMBERSHIPS);
        let (org_graves, member_graves) = (ORGANIZATION_TOMBSTONES, MEMBERSHIP_TOMBSTONES);
        Self {
            param,
            organizations: (
                format!(
                    "SELECT clerk_id, clerk_updated_at, id, FALSE FROM {orgs} WHERE clerk_id IN "
                ),
                format!(
                    " UNION ALL SELECT clerk_id, NULL, NULL, TRUE FROM {org_graves} \
                     WHERE clerk_id IN "
                ),
            ),
            users: (
                format!(
                    "SELECT {user_clerk_id}, {user_id}, FALSE FROM {users_table} \
                     WHERE {user_clerk_id} IN "
                ),
                format!(
                    " UNION ALL SELECT clerk_id, NULL, TRUE FROM {user_tombstones} \
                     WHERE clerk_id IN "
                ),
            ),
            organization_tombstones: format!(
                "SELECT clerk_id FROM {org_graves} WHERE clerk_id IN "
            ),
            memberships: (
                format!(
                    "SELECT organization_id, user_id, role_version FROM {members} \
                     WHERE organization_id IN "
                ),
                " AND user_id IN ".to_owned(),
            ),
            membership_tombstones: (
                format!(
                    "SELECT organization_clerk_id, user_clerk_id, deleted_at FROM {member_graves} \
                     WHERE organization_clerk_id IN "
                ),
                " AND user_clerk_id IN ".to_owned(),
            ),
            // Strictly newer versions only: a second pass writes nothing.
            organization_upsert: (
                format!(
                    "INSERT INTO {orgs} AS stored_row \
                     (clerk_id, name, slug, image_url, clerk_updated_at) \
                     SELECT * FROM (VALUES "
                ),
                format!(
                    ") AS incoming WHERE NOT EXISTS \
                     (SELECT 1 FROM {org_graves} WHERE clerk_id = incoming.column1) \
                     ON CONFLICT (clerk_id) DO UPDATE SET name = excluded.name, \
                     slug = excluded.slug, image_url = excluded.image_url, \
                     clerk_updated_at = excluded.clerk_updated_at, updated_at = {now} \
                     WHERE stored_row.clerk_updated_at IS NULL \
                     OR stored_row.clerk_updated_at < excluded.clerk_updated_at \
                     RETURNING clerk_id"
                ),
            ),
            // The columns: organization id, user id, organization clerk id,
            // user clerk id, role, version. A row is written only when no
            // tombstone forbids it and both of its rows still exist.
            membership_upsert: (
                format!(
                    "INSERT INTO {members} AS stored_row \
                     (organization_id, user_id, role, role_version, clerk_updated_at) \
                     SELECT incoming.column1, incoming.column2, incoming.column5, \
                     incoming.column6, incoming.column6 FROM (VALUES "
                ),
                format!(
                    ") AS incoming WHERE NOT EXISTS (SELECT 1 FROM {member_graves} AS t \
                     WHERE t.organization_clerk_id = incoming.column3 \
                     AND t.user_clerk_id = incoming.column4 \
                     AND t.deleted_at >= incoming.column6) \
                     AND NOT EXISTS (SELECT 1 FROM {org_graves} \
                     WHERE clerk_id = incoming.column3) \
                     AND NOT EXISTS (SELECT 1 FROM {user_tombstones} \
                     WHERE clerk_id = incoming.column4) \
                     AND EXISTS (SELECT 1 FROM {orgs} WHERE id = incoming.column1) \
                     AND EXISTS (SELECT 1 FROM {users_table} \
                     WHERE {user_id} = incoming.column2) \
                     ON CONFLICT (organization_id, user_id) DO UPDATE SET role = excluded.role, \
                     role_version = excluded.role_version, \
                     clerk_updated_at = excluded.clerk_updated_at, updated_at = {now} \
                     WHERE stored_row.role_version < excluded.role_version \
                     RETURNING organization_id, user_id"
                ),
            ),
        }
    }

    /// What is stored for the organizations `ids`.
    pub(super) fn organizations<'a>(&self, ids: &[&'a str]) -> Statement<'a> {
        self.twice(&self.organizations, ids)
    }

    /// What is stored for the users `ids`.
    pub(super) fn users<'a>(&self, ids: &[&'a str]) -> Statement<'a> {
        self.twice(&self.users, ids)
    }

    /// Which of the organizations `ids` are tombstoned.
    pub(super) fn organization_tombstones<'a>(&self, ids: &[&'a str]) -> Statement<'a> {
        let list = placeholders(self.param, 1, ids.len());
        Statement::new(format!("{}{list}", self.organization_tombstones))
            .bind_all(ids.iter().map(|id| Bind::Text(id)))
            .planned_each_time()
    }

    /// The memberships of any of `users` in any of `organizations` (local ids).
    pub(super) fn memberships<'a>(
        &self,
        organizations: &[LocalId],
        users: &[LocalId],
    ) -> Statement<'a> {
        let binds = organizations.iter().chain(users).map(|id| local_id(*id));
        self.crossed(&self.memberships, organizations.len(), users.len())
            .bind_all(binds)
    }

    /// The membership tombstones of any of `users` in any of
    /// `organizations` (Clerk ids).
    pub(super) fn membership_tombstones<'a>(
        &self,
        organizations: &[&'a str],
        users: &[&'a str],
    ) -> Statement<'a> {
        let binds = organizations.iter().chain(users).map(|id| Bind::Text(id));
        self.crossed(
            &self.membership_tombstones,
            organizations.len(),
            users.len(),
        )
        .bind_all(binds)
    }

    /// Upserts the organizations, strictly newer versions only; returns the
    /// Clerk ids of the rows written.
    pub(super) fn organization_upsert<'a>(
        &self,
        organizations: &[OrganizationValues<'a>],
    ) -> Statement<'a> {
        let sql = self.values(
            &self.organization_upsert,
            organizations.len(),
            ORGANIZATION_COLUMNS,
        );
        organizations
            .iter()
            .fold(Statement::new(sql), |statement, values| {
                statement.bind_all(organization_binds(values))
            })
    }

    /// Upserts the memberships, strictly newer versions only; returns the
    /// `(organization id, user id)` of the rows written.
    pub(super) fn membership_upsert<'a>(&self, rows: &[MembershipRow<'a>]) -> Statement<'a> {
        let sql = self.values(&self.membership_upsert, rows.len(), MEMBERSHIP_COLUMNS);
        rows.iter().fold(Statement::new(sql), |statement, row| {
            statement.bind_all([
                local_id(row.organization),
                local_id(row.user),
                Bind::Text(row.organization_clerk_id),
                Bind::Text(row.user_clerk_id),
                Bind::Text(row.role),
                Bind::Int(row.version),
            ])
        })
    }

    /// `first` and `second` around the same list of `ids`.
    fn twice<'a>(&self, (first, second): &(String, String), ids: &[&'a str]) -> Statement<'a> {
        let list = placeholders(self.param, 1, ids.len());
        Statement::new(format!("{first}{list}{second}{list}"))
            .bind_all(ids.iter().map(|id| Bind::Text(id)))
            .planned_each_time()
    }

    /// `first`, a list of `a` values, `second`, a list of `b` values.
    fn crossed<'a>(&self, (first, second): &(String, String), a: usize, b: usize) -> Statement<'a> {
        let (left, right) = (
            placeholders(self.param, 1, a),
            placeholders(self.param, a + 1, b),
        );
        Statement::new(format!("{first}{left}{second}{right}")).planned_each_time()
    }

    /// `prefix`, `rows` lists of `columns` values, `suffix`.
    fn values(&self, (prefix, suffix): &(String, String), rows: usize, columns: usize) -> String {
        let values: Vec<String> = (0..rows)
            .map(|row| placeholders(self.param, row * columns + 1, columns))
            .collect();
        format!("{prefix}{}{suffix}", values.join(", "))
    }
}

/// The size of an organization row's values on the wire, 4 length bytes each.
pub(super) fn organization_bytes(values: &OrganizationValues<'_>) -> usize {
    let text = |value: Option<&str>| 4 + value.map_or(0, str::len);
    4 + values.clerk_id.len()
        + text(values.name)
        + text(values.slug)
        + text(values.image_url)
        + 4
        + 8
}

/// The size of a membership row's values on the wire, 4 length bytes each
/// (a local id counted at its largest, a UUID).
pub(super) fn membership_bytes(
    organization_clerk_id: &str,
    user_clerk_id: &str,
    role: &str,
) -> usize {
    2 * (4 + 16) + 4 + organization_clerk_id.len() + 4 + user_clerk_id.len() + 4 + role.len() + 12
}
