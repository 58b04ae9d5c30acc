//! The profile a store keeps for a user, and the one rule for what text of
//! it can be stored.

/// Profile fields stored with a user, when known.
///
/// Whatever a profile comes from (token claims, a webhook, the Backend API,
/// a backfill, or the app itself), the same rule decides what is stored: a
/// value is kept when it is non-empty text without a NUL character (which
/// PostgreSQL text cannot hold); any other value is stored as absent, and
/// the rest of the profile is stored as usual.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Profile {
    /// The primary email address.
    pub email: Option<String>,
    /// The first name.
    pub first_name: Option<String>,
    /// The last name.
    pub last_name: Option<String>,
    /// The profile image URL.
    pub image_url: Option<String>,
    /// Whether Clerk bans the user (banned, or deprovisioned by directory
    /// sync): the layer refuses them with `401 user_banned`. Kept where the
    /// table has a column for it.
    pub banned: bool,
}

impl Profile {
    /// An empty profile.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the email address.
    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Sets the first and last names.
    pub fn with_names(mut self, first: Option<String>, last: Option<String>) -> Self {
        self.first_name = first;
        self.last_name = last;
        self
    }

    /// Sets the image URL.
    pub fn with_image_url(mut self, url: impl Into<String>) -> Self {
        self.image_url = Some(url.into());
        self
    }

    /// Sets whether Clerk bans the user.
    pub fn with_banned(mut self, banned: bool) -> Self {
        self.banned = banned;
        self
    }

    /// Whether no field holds text that would be stored.
    pub fn is_empty(&self) -> bool {
        self.storable_fields().iter().all(Option::is_none)
    }

    /// A profile from what a source reports, each value kept only when it
    /// can be stored.
    pub(crate) fn from_reported(
        email: Option<&str>,
        first_name: Option<&str>,
        last_name: Option<&str>,
        image_url: Option<&str>,
    ) -> Self {
        let keep = |value: Option<&str>| value.filter(|v| is_storable(v)).map(str::to_owned);
        Self {
            email: keep(email),
            first_name: keep(first_name),
            last_name: keep(last_name),
            image_url: keep(image_url),
            banned: false,
        }
    }

    /// The fields in column order (email, first name, last name, image URL),
    /// each `None` unless it can be stored.
    pub(crate) fn storable_fields(&self) -> [Option<&str>; 4] {
        [
            &self.email,
            &self.first_name,
            &self.last_name,
            &self.image_url,
        ]
        .map(|value| value.as_deref().filter(|v| is_storable(v)))
    }
}

/// Non-empty, and no NUL (which PostgreSQL text cannot hold): the rule for
/// every text a store keeps from Clerk.
pub(crate) fn is_storable(text: &str) -> bool {
    !text.is_empty() && !text.contains('\0')
}

/// The role as it is stored, in Clerk's normal form (exactly one `org:`
/// prefix), when it names a role in text that can be stored.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) fn storable_role(role: &str) -> Option<String> {
    let normalized = crate::authorization::normalized_role(role);
    (normalized.len() > "org:".len() && is_storable(&normalized)).then_some(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_nul_text_is_stored_as_absent() {
        let profile = Profile::from_reported(Some("a@b.c"), Some("A\0da"), Some(""), None);
        assert_eq!(profile, Profile::new().with_email("a@b.c"));
        let built = Profile::new()
            .with_email("x\0y")
            .with_names(Some("Ada".into()), Some(String::new()));
        assert_eq!(built.storable_fields(), [None, Some("Ada"), None, None]);
        assert!(Profile::new().with_email("\0").is_empty());
        assert!(!built.is_empty());
    }

    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    #[test]
    fn roles_are_stored_normalised() {
        assert_eq!(storable_role("admin").as_deref(), Some("org:admin"));
        assert_eq!(
            storable_role("org:org:member").as_deref(),
            Some("org:member")
        );
        for bad in ["", "org:", "org:org:", "org:a\0b"] {
            assert_eq!(storable_role(bad), None, "{bad:?}");
        }
    }
}
