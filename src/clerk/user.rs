//! Clerk's user object, as webhooks deliver it and the Backend API returns it.

use serde::{Deserialize, Deserializer, Serialize};

use crate::store::Profile;

/// The subset of Clerk's user object that the sync keeps.
///
/// Used both for webhook `data` and for Backend API user responses. Every
/// field except `id` and `updated_at` may be missing or `null`, and unknown
/// fields are ignored, so additions on Clerk's side do not break
/// deserialisation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct ClerkUser {
    /// The Clerk user id (`user_…`).
    pub id: String,
    /// Id of the primary entry in [`email_addresses`](Self::email_addresses).
    #[serde(default)]
    pub primary_email_address_id: Option<String>,
    /// All email addresses on the account.
    #[serde(default, deserialize_with = "null_as_default")]
    pub email_addresses: Vec<EmailAddress>,
    /// Given name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Avatar URL.
    #[serde(default)]
    pub image_url: Option<String>,
    /// Creation time, Unix milliseconds.
    #[serde(default)]
    pub created_at: Option<i64>,
    /// Last modification time, Unix milliseconds: the version of this state.
    pub updated_at: i64,
    /// The application's own id for this user, if one was set in Clerk.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Whether the user is banned: all their sessions revoked, and signing
    /// in refused.
    #[serde(default, deserialize_with = "null_as_default")]
    pub banned: bool,
    /// Whether directory sync deprovisioned the user: deactivated, all
    /// their sessions revoked.
    #[serde(default, deserialize_with = "null_as_default")]
    pub deprovisioned: bool,
}

impl ClerkUser {
    /// The primary email address, found by matching
    /// `primary_email_address_id` against the ids in `email_addresses`.
    ///
    /// Returns `None` when there is no primary id, when no entry carries
    /// it, or when that entry's address is empty; it never substitutes a
    /// different address.
    #[must_use]
    pub fn primary_email(&self) -> Option<&str> {
        let primary = self.primary_email_address_id.as_deref()?;
        self.email_addresses
            .iter()
            .find(|entry| entry.id.as_deref() == Some(primary))
            .map(|entry| entry.email_address.as_str())
            .filter(|address| !address.is_empty())
    }

    /// The profile the stores keep: primary email, names and image URL
    /// (empty text, or text with a NUL, read as absent).
    #[must_use]
    pub fn profile(&self) -> Profile {
        Profile::from_reported(
            self.primary_email(),
            self.first_name.as_deref(),
            self.last_name.as_deref(),
            self.image_url.as_deref(),
        )
        .with_banned(self.is_banned())
    }

    /// Whether the layer refuses the user: banned, or deprovisioned.
    #[must_use]
    pub fn is_banned(&self) -> bool {
        self.banned || self.deprovisioned
    }
}

/// One email address on a Clerk user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct EmailAddress {
    /// Identification id (`idn_…`), referenced by
    /// [`ClerkUser::primary_email_address_id`].
    #[serde(default)]
    pub id: Option<String>,
    /// The address itself; empty if Clerk sent none.
    #[serde(default, deserialize_with = "null_as_default")]
    pub email_address: String,
}

/// Reads a value that may be `null`, substituting the type's default.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_profile_strings_are_absent() {
        let user = ClerkUser {
            id: "user_1".to_owned(),
            first_name: Some(String::new()),
            last_name: Some("Lovelace".to_owned()),
            image_url: Some(String::new()),
            ..ClerkUser::default()
        };
        assert_eq!(
            user.profile(),
            Profile::new().with_names(None, Some("Lovelace".into()))
        );
    }

    #[test]
    fn primary_email_does_not_fall_back() {
        let user = ClerkUser {
            id: "user_1".to_owned(),
            primary_email_address_id: Some("idn_missing".to_owned()),
            email_addresses: vec![EmailAddress {
                id: Some("idn_other".to_owned()),
                email_address: "other@example.com".to_owned(),
            }],
            ..ClerkUser::default()
        };
        assert_eq!(user.primary_email(), None);
        let no_primary = ClerkUser {
            primary_email_address_id: None,
            ..user.clone()
        };
        assert_eq!(no_primary.primary_email(), None);
        let blank = ClerkUser {
            primary_email_address_id: Some("idn_other".to_owned()),
            email_addresses: vec![EmailAddress {
                id: Some("idn_other".to_owned()),
                email_address: String::new(),
            }],
            ..user
        };
        assert_eq!(blank.primary_email(), None);
    }

    #[test]
    fn backend_api_user_list_shape() {
        let body = r#"[
          {"id":"user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr","object":"user","username":null,
           "first_name":"Ada","last_name":"Lovelace","has_image":false,
           "image_url":"https://img.clerk.com/eyJ0eXBlIjoiZGVmYXVsdCJ9",
           "primary_email_address_id":"idn_a","primary_phone_number_id":null,
           "primary_web3_wallet_id":null,"password_enabled":true,"two_factor_enabled":false,
           "totp_enabled":false,"backup_code_enabled":false,
           "email_addresses":[{"id":"idn_a","object":"email_address","email_address":"ada@example.com",
             "reserved":false,"verification":{"status":"verified","strategy":"email_code","attempts":null,"expire_at":null},
             "linked_to":[],"created_at":1666000000000,"updated_at":1666000000000}],
           "phone_numbers":[],"web3_wallets":[],"passkeys":[],"external_accounts":[],
           "saml_accounts":[],"enterprise_accounts":[],"public_metadata":{},"private_metadata":null,
           "unsafe_metadata":{},"external_id":null,"last_sign_in_at":null,"banned":false,
           "locked":false,"lockout_expires_in_seconds":null,"verification_attempts_remaining":100,
           "created_at":1666000000000,"updated_at":1666000001000,"delete_self_enabled":true,
           "create_organization_enabled":true,"last_active_at":1700690400000,
           "mfa_enabled_at":null,"mfa_disabled_at":null,"legal_accepted_at":null},
          {"id":"user_123","updated_at":0}
        ]"#;
        let users: Vec<ClerkUser> = serde_json::from_str(body).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].primary_email(), Some("ada@example.com"));
        assert_eq!(users[0].updated_at, 1_666_000_001_000);
        assert_eq!(users[1].primary_email(), None);
        // Serialising and reading back gives the same user.
        let again: ClerkUser =
            serde_json::from_str(&serde_json::to_string(&users[0]).unwrap()).unwrap();
        assert_eq!(again, users[0]);
    }
}
