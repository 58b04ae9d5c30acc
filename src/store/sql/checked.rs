//! What the organization statements accept: Clerk ids of the right kind, a
//! role that can be stored, and text by the profile's rule. Anything else
//! is refused before a statement runs, so nothing of it is written.

use crate::{
    clerk_id::{is_organization_id, is_user_id},
    store::{
        StoreError,
        profile::{is_storable, storable_role},
    },
};

/// Longest part of a refused value shown in its error.
const SHOWN_CHARS: usize = 64;

/// A value the store refuses to write; nothing was written.
#[derive(Debug, thiserror::Error)]
#[error("not written: {what} `{shown}` is not valid")]
struct Refused {
    what: &'static str,
    /// The value, escaped and cut short.
    shown: String,
}

fn refuse(what: &'static str, value: &str) -> StoreError {
    let shown = value
        .chars()
        .take(SHOWN_CHARS)
        .collect::<String>()
        .escape_debug()
        .to_string();
    StoreError::Other(Box::new(Refused { what, shown }))
}

/// `id`, if it is a Clerk organization id.
pub(super) fn organization_id(id: &str) -> Result<&str, StoreError> {
    if is_organization_id(id) {
        Ok(id)
    } else {
        Err(refuse("organization id", id))
    }
}

/// `id`, if it is a Clerk user id.
pub(super) fn user_id(id: &str) -> Result<&str, StoreError> {
    if is_user_id(id) {
        Ok(id)
    } else {
        Err(refuse("user id", id))
    }
}

/// The role in its stored form (exactly one `org:` prefix), if it names a
/// role in text that can be stored.
pub(super) fn role(role: &str) -> Result<String, StoreError> {
    storable_role(role).ok_or_else(|| refuse("role", role))
}

/// `text` if it can be stored (non-empty, no NUL), else absent.
pub(super) fn text(text: Option<&str>) -> Option<&str> {
    text.filter(|text| is_storable(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_can_be_stored_passes() {
        assert_eq!(role("org:org:member").unwrap(), "org:member");
        assert!(role("org:").is_err());
        assert!(organization_id("org_1").is_ok());
        assert!(organization_id("user_1").is_err());
        assert!(user_id("user_1").is_ok());
        let refused = user_id(&format!("user_\0{}", "x".repeat(500))).unwrap_err();
        let shown = refused.to_string();
        assert!(shown.contains("user id `user_\\0xxx"), "{shown}");
        assert!(shown.len() < 200, "{shown}");
        assert_eq!(text(Some("Acme")), Some("Acme"));
        assert_eq!(text(Some("Ac\0me")), None);
        assert_eq!(text(Some("")), None);
    }
}
