//! Helpers for the organization tests: Clerk's objects built as Clerk sends
//! them, and the organization tables read and poked on either bundled
//! [`Store`].

use ensure_user::clerk::{ClerkMembership, ClerkOrganization};
use serde_json::json;

use super::{Backend, Store};

/// An organization as Clerk sends it (the webhook's `data`, a Backend API
/// list entry).
pub fn organization(id: &str, name: &str, updated_at: i64) -> ClerkOrganization {
    organization_json(id, Some(name), updated_at)
}

pub fn organization_json(id: &str, name: Option<&str>, updated_at: i64) -> ClerkOrganization {
    serde_json::from_value(json!({
        "object": "organization", "id": id, "name": name,
        "slug": name.map(|name| name.to_lowercase().replace(' ', "-")),
        "image_url": format!("https://img.example.com/{id}.png"), "has_image": true,
        "max_allowed_memberships": 5, "admin_delete_enabled": true, "public_metadata": {},
        "created_at": 1_700_000_000_000_i64, "updated_at": updated_at
    }))
    .unwrap()
}

/// A membership as Clerk sends it, with its organization's snapshot (as
/// of `1`, so that it never overwrites a newer one).
pub fn membership(organization: &str, user: &str, role: &str, updated_at: i64) -> ClerkMembership {
    membership_with(
        serde_json::to_value(self::organization(organization, "Snapshot", 1)).unwrap(),
        user,
        role,
        updated_at,
    )
}

/// A membership with this organization snapshot (JSON).
pub fn membership_with(
    organization: serde_json::Value,
    user: &str,
    role: &str,
    updated_at: i64,
) -> ClerkMembership {
    serde_json::from_value(json!({
        "object": "organization_membership", "id": format!("orgmem_{updated_at}"),
        "role": role, "role_name": "Role", "permissions": [], "public_metadata": {},
        "organization": organization,
        "public_user_data": {"user_id": user, "first_name": "Jane", "last_name": null,
            "profile_image_url": "", "image_url": "", "has_image": false,
            "identifier": "jane@example.com"},
        "created_at": 1_700_000_000_000_i64, "updated_at": updated_at
    }))
    .unwrap()
}

/// An organization row: Clerk id, name, slug, image URL, version.
pub type OrganizationRow = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// A membership row: organization's and user's Clerk ids, role, role version.
pub type MembershipRow = (String, String, String, i64);

const ORGANIZATIONS: &str = "SELECT clerk_id, name, slug, image_url, clerk_updated_at \
                             FROM organizations ORDER BY clerk_id";
const MEMBERSHIPS: &str = "SELECT o.clerk_id, u.clerk_id, m.role, m.role_version \
                           FROM organization_memberships m \
                           JOIN organizations o ON o.id = m.organization_id \
                           JOIN users u ON u.id = m.user_id ORDER BY 1, 2";

/// The organization tables, on either bundled store.
impl Store {
    /// How many rows `table` has.
    pub async fn count(&self, table: &str) -> i64 {
        self.number(&format!("SELECT COUNT(*) FROM {table}")).await
    }

    /// Every organization row, by Clerk id.
    pub async fn organizations(&self) -> Vec<OrganizationRow> {
        match self {
            Self::Postgres(store) => sqlx::query_as(ORGANIZATIONS).fetch_all(store.pool()).await,
            Self::Sqlite(store) => sqlx::query_as(ORGANIZATIONS).fetch_all(store.pool()).await,
        }
        .unwrap()
    }

    /// Every membership row, by organization and user.
    pub async fn memberships(&self) -> Vec<MembershipRow> {
        match self {
            Self::Postgres(store) => sqlx::query_as(MEMBERSHIPS).fetch_all(store.pool()).await,
            Self::Sqlite(store) => sqlx::query_as(MEMBERSHIPS).fetch_all(store.pool()).await,
        }
        .unwrap()
    }

    /// Every row of every table the store writes, tombstones included, so
    /// that a test can tell that nothing at all was written.
    pub async fn everything(&self) -> [i64; 7] {
        let mut counts = [0; 7];
        for (count, table) in counts.iter_mut().zip([
            "users",
            "clerk_user_tombstones",
            "organizations",
            "organization_memberships",
            "clerk_organization_tombstones",
            "clerk_membership_tombstones",
            "ensure_user_backfill_state",
        ]) {
            *count = self.count(table).await;
        }
        counts
    }

    /// From now on, every insert, update or delete of organizations,
    /// memberships and users adds a row to `writes`.
    pub async fn audit_writes(&self) {
        let tables = ["organizations", "organization_memberships", "users"];
        let mut sql = String::from("CREATE TABLE writes (n INTEGER);");
        match self.backend() {
            Backend::Postgres => {
                sql += "CREATE FUNCTION note_write() RETURNS trigger AS $$
                    BEGIN INSERT INTO writes VALUES (1); RETURN NULL; END $$ LANGUAGE plpgsql;";
                for table in tables {
                    sql += &format!(
                        "CREATE TRIGGER {table}_write AFTER INSERT OR UPDATE OR DELETE ON {table}
                         FOR EACH ROW EXECUTE FUNCTION note_write();"
                    );
                }
            }
            Backend::Sqlite => {
                for table in tables {
                    for event in ["INSERT", "UPDATE", "DELETE"] {
                        sql += &format!(
                            "CREATE TRIGGER {table}_{event} AFTER {event} ON {table}
                             BEGIN INSERT INTO writes VALUES (1); END;"
                        );
                    }
                }
            }
        }
        self.execute(&sql).await;
    }

    /// Rows written since [`audit_writes`](Self::audit_writes).
    pub async fn writes(&self) -> i64 {
        self.count("writes").await
    }

    /// A trigger `name` that runs `then` (SQL that may use `NEW.`) after
    /// every insert into `table` for which `when` holds: as a deletion
    /// committing between an insert's guard and its write would.
    pub async fn on_insert(&self, name: &str, table: &str, when: &str, then: &str) {
        self.execute(&match self.backend() {
            Backend::Postgres => format!(
                "CREATE FUNCTION {name}() RETURNS trigger AS $$
                    BEGIN {then}; RETURN NULL; END $$ LANGUAGE plpgsql;
                 CREATE TRIGGER {name} AFTER INSERT ON {table} FOR EACH ROW
                    WHEN ({when}) EXECUTE FUNCTION {name}();"
            ),
            Backend::Sqlite => format!(
                "CREATE TRIGGER {name} AFTER INSERT ON {table} WHEN {when}
                 BEGIN {then}; END;"
            ),
        })
        .await;
    }

    /// Triggers that record the deletion's tombstone as a row is inserted,
    /// as a deletion committing during the insert would: for each
    /// organization for which `organization_when` holds, and for each
    /// membership with the role `org:raced`.
    pub async fn tombstone_as_inserted(&self, organization_when: &str) {
        let (insert, or_ignore) = match self.backend() {
            Backend::Postgres => ("INSERT INTO", "ON CONFLICT DO NOTHING"),
            Backend::Sqlite => ("INSERT OR IGNORE INTO", ""),
        };
        self.on_insert(
            "organization_race",
            "organizations",
            organization_when,
            &format!("{insert} clerk_organization_tombstones VALUES (NEW.clerk_id, 7) {or_ignore}"),
        )
        .await;
        self.on_insert(
            "membership_race",
            "organization_memberships",
            "NEW.role = 'org:raced'",
            &format!(
                "{insert} clerk_membership_tombstones SELECT o.clerk_id, u.clerk_id, \
                 NEW.role_version FROM organizations o, users u \
                 WHERE o.id = NEW.organization_id AND u.id = NEW.user_id {or_ignore}"
            ),
        )
        .await;
    }
}
