//! Clerk's organization and membership objects, as webhooks deliver them and
//! the Backend API returns them.

use serde::{Deserialize, Serialize};

use super::user::null_as_default;

/// The part of Clerk's organization object that the sync keeps.
///
/// Every field except `id` and `updated_at` may be missing or `null`, and
/// unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct ClerkOrganization {
    /// The organization id (`org_…`).
    pub id: String,
    /// The display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The slug, when the instance has slugs enabled.
    #[serde(default)]
    pub slug: Option<String>,
    /// The logo URL.
    #[serde(default)]
    pub image_url: Option<String>,
    /// Creation time, Unix milliseconds.
    #[serde(default)]
    pub created_at: Option<i64>,
    /// Last modification time, Unix milliseconds: the version of this state.
    pub updated_at: i64,
}

/// The part of Clerk's organization membership object that the sync keeps.
///
/// A membership is identified by its organization and its user: Clerk
/// addresses it so, and a membership created from a session token has no
/// Clerk membership id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct ClerkMembership {
    /// The membership id (`orgmem_…`), when Clerk sent one.
    #[serde(default)]
    pub id: Option<String>,
    /// The role key, e.g. `org:admin`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub role: String,
    /// The organization, as of the event.
    pub organization: ClerkOrganization,
    /// The member (`public_user_data.user_id` in Clerk's object).
    #[serde(rename = "public_user_data")]
    pub user: MemberUser,
    /// Creation time, Unix milliseconds.
    #[serde(default)]
    pub created_at: Option<i64>,
    /// Last modification time, Unix milliseconds: the version of this state.
    pub updated_at: i64,
}

/// Who a membership is for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct MemberUser {
    /// The Clerk user id (`user_…`).
    pub user_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_membership_event_reads_as_clerk_sends_it() {
        let data = r#"{"object":"organization_membership","id":"orgmem_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
          "role":"org:member","role_name":"Member","permissions":["org:posts:read"],
          "public_metadata":{},"private_metadata":{},
          "organization":{"object":"organization","id":"org_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
            "name":"Acme Corp","slug":"acme-corp","has_image":true,"members_count":2,
            "max_allowed_memberships":5,"admin_delete_enabled":true,"public_metadata":{},
            "created_at":1716883200000,"updated_at":1716883200000},
          "public_user_data":{"user_id":"user_2h8op3Isl1QR7tKu5FGNfaLKEoU","first_name":"Jane",
            "last_name":"Doe","profile_image_url":"https://img.clerk.com/yyyyy",
            "image_url":"https://img.clerk.com/yyyyy","has_image":true,"identifier":"jane.doe@acme.com"},
          "created_at":1716883200000,"updated_at":1716883200000}"#;
        let membership: ClerkMembership = serde_json::from_str(data).unwrap();
        assert_eq!(membership.role, "org:member");
        assert_eq!(
            membership.organization.id,
            "org_2g7np7Hrk0SN6kj5EDMLDaKNL0S"
        );
        assert_eq!(membership.organization.slug.as_deref(), Some("acme-corp"));
        assert_eq!(membership.user.user_id, "user_2h8op3Isl1QR7tKu5FGNfaLKEoU");
        assert_eq!(membership.updated_at, 1_716_883_200_000);
    }

    #[test]
    fn an_organization_with_nulls_reads() {
        let organization: ClerkOrganization = serde_json::from_str(
            r#"{"id":"org_1","name":null,"slug":null,"image_url":null,"updated_at":5}"#,
        )
        .unwrap();
        assert_eq!(organization.id, "org_1");
        assert_eq!(organization.slug, None);
    }
}
