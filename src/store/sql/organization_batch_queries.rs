//! The batch statements of organizations and memberships, for the backfill:
//! their parameter lists grow with the batch, so they are rendered per call
//! from parts rendered once per store, and planned anew each time (as the
//! users' batch reads are).

use super::{
    driver::{Bind, Statement},
    organization_columns::{
        OrganizationValues, Tables, UPSERTED, Value, organization_assignments, organization_binds,
        organization_columns,
    },
    organization_queries::{MEMBERSHIP_TOMBSTONES, ORGANIZATION_TOMBSTONES, local_id},
    queries::placeholders,
};
use crate::{
    local_id::LocalId,
    store::{IdKind, MembershipTable, OrganizationTable, UserTable},
};

/// Values bound per membership row written, before a new UUID key.
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
    /// What each organization row's values are, in order.
    organization_values: Vec<Value>,
    /// Whether each membership row also binds a new UUID key.
    membership_new_id: bool,
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
            organization: member_org,
            user: member_user,
            role,
            role_version,
            ..
        } = &tables.memberships;
        let (org_graves, member_graves) = (ORGANIZATION_TOMBSTONES, MEMBERSHIP_TOMBSTONES);
        let version = organizations
            .clerk_updated_at
            .as_ref()
            .map_or("NULL".to_owned(), String::clone);
        let upserted = organization_columns(organizations, &UPSERTED);
        let upserted_names = upserted
            .iter()
            .map(|(column, _)| column.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let assignments = organization_assignments(organizations, &upserted);
        let touched = |updated_at: &Option<String>| {
            updated_at
                .as_ref()
                .map_or_else(String::new, |column| format!(", {column} = {now}"))
        };
        let org_touched = touched(&organizations.updated_at);
        let member_touched = touched(&tables.memberships.updated_at);
        let newer = organizations
            .clerk_updated_at
            .as_ref()
            .map_or_else(String::new, |v| {
                format!(" WHERE stored_row.{v} IS NULL OR stored_row.{v} < excluded.{v}")
            });
        let membership_new_id = tables.memberships.id_kind == IdKind::Uuid;
        let (member_version_column, member_version_value, member_version_set) =
            match &tables.memberships.clerk_updated_at {
                Some(column) => (
                    format!(", {column}"),
                    ", incoming.column6".to_owned(),
                    format!(", {column} = excluded.{column}"),
                ),
                None => (String::new(), String::new(), String::new()),
            };
        let (member_id_column, member_id_value) = if membership_new_id {
            (
                format!(", {}", tables.memberships.id),
                ", incoming.column7".to_owned(),
            )
        } else {
            (String::new(), String::new())
        };
        Self {
            param,
            organization_values: upserted.iter().map(|(_, value)| *value).collect(),
            membership_new_id,
            organizations: (
                format!(
                    "SELECT {org_clerk_id}, {version}, {org_id}, FALSE FROM {orgs} \
                     WHERE {org_clerk_id} IN "
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
                    "SELECT {member_org}, {member_user}, {role_version} FROM {members} \
                     WHERE {member_org} IN "
                ),
                format!(" AND {member_user} IN "),
            ),
            membership_tombstones: (
                format!(
                    "SELECT organization_clerk_id, user_clerk_id, deleted_at FROM {member_graves} \
                     WHERE organization_clerk_id IN "
                ),
                " AND user_clerk_id IN ".to_owned(),
            ),
            // Strictly newer versions only: a second pass writes nothing.
            // The Clerk id is each row's first value.
            organization_upsert: (
                format!(
                    "INSERT INTO {orgs} AS stored_row ({upserted_names}) \
                     SELECT * FROM (VALUES "
                ),
                format!(
                    ") AS incoming WHERE NOT EXISTS \
                     (SELECT 1 FROM {org_graves} WHERE clerk_id = incoming.column1) \
                     ON CONFLICT ({org_clerk_id}) DO UPDATE SET \
                     {assignments}{org_touched}{newer} \
                     RETURNING {org_clerk_id}"
                ),
            ),
            // The columns: organization id, user id, organization clerk id,
            // user clerk id, role, version, and a new UUID key if the key
            // is one. A row is written only when no tombstone forbids it
            // and both of its rows still exist.
            membership_upsert: (
                format!(
                    "INSERT INTO {members} AS stored_row \
                     ({member_org}, {member_user}, {role}, {role_version}\
                     {member_version_column}{member_id_column}) \
                     SELECT incoming.column1, incoming.column2, incoming.column5, \
                     incoming.column6{member_version_value}{member_id_value} FROM (VALUES "
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
                     AND EXISTS (SELECT 1 FROM {orgs} WHERE {org_id} = incoming.column1) \
                     AND EXISTS (SELECT 1 FROM {users_table} \
                     WHERE {user_id} = incoming.column2) \
                     ON CONFLICT ({member_org}, {member_user}) DO UPDATE SET \
                     {role} = excluded.{role}, {role_version} = excluded.{role_version}\
                     {member_version_set}{member_touched} \
                     WHERE stored_row.{role_version} < excluded.{role_version} \
                     RETURNING {member_org}, {member_user}"
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
            self.organization_values.len(),
        );
        organizations
            .iter()
            .fold(Statement::new(sql), |statement, values| {
                statement.bind_all(organization_binds(values, &self.organization_values))
            })
    }

    /// Upserts the memberships, strictly newer versions only; returns the
    /// `(organization id, user id)` of the rows written.
    pub(super) fn membership_upsert<'a>(&self, rows: &[MembershipRow<'a>]) -> Statement<'a> {
        let columns = MEMBERSHIP_COLUMNS + usize::from(self.membership_new_id);
        let sql = self.values(&self.membership_upsert, rows.len(), columns);
        rows.iter().fold(Statement::new(sql), |statement, row| {
            statement
                .bind_all([
                    local_id(row.organization),
                    local_id(row.user),
                    Bind::Text(row.organization_clerk_id),
                    Bind::Text(row.user_clerk_id),
                    Bind::Text(row.role),
                    Bind::Int(row.version),
                ])
                .bind_all(
                    self.membership_new_id
                        .then(|| Bind::Uuid(uuid::Uuid::new_v4())),
                )
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

/// The size of an organization row's values on the wire, 4 length bytes each
/// (a new UUID key counted whether or not the table's key is one).
pub(super) fn organization_bytes(values: &OrganizationValues<'_>) -> usize {
    let text = |value: Option<&str>| 4 + value.map_or(0, str::len);
    4 + values.clerk_id.len()
        + text(values.name)
        + text(values.slug)
        + text(values.image_url)
        + 4
        + 8
        + 4
        + 16
}

/// The size of a membership row's values on the wire, 4 length bytes each
/// (a local id counted at its largest, a UUID, and a new UUID key counted
/// whether or not the table's key is one).
pub(super) fn membership_bytes(
    organization_clerk_id: &str,
    user_clerk_id: &str,
    role: &str,
) -> usize {
    3 * (4 + 16) + 4 + organization_clerk_id.len() + 4 + user_clerk_id.len() + 4 + role.len() + 12
}
