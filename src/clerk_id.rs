//! What the crate accepts as a Clerk id, in one place: every id that enters
//! (from a token, a webhook, the Backend API or another instance) is checked
//! against the same rule, so no path can store an id another cannot match.

/// Longest id part accepted after the prefix. Clerk's ids are 27 base62
/// characters; the margin keeps room for other formats without letting
/// unbounded text into keys and logs.
const MAX_ID_CHARS: usize = 128;

/// A Clerk user id: `user_` followed by 1 to 128 visible ASCII characters.
pub(crate) fn is_user_id(id: &str) -> bool {
    has_id_shape(id, "user_")
}

/// A Clerk session id: `sess_` followed by 1 to 128 visible ASCII characters.
pub(crate) fn is_session_id(id: &str) -> bool {
    has_id_shape(id, "sess_")
}

/// A Clerk organization id: `org_` followed by 1 to 128 visible ASCII characters.
pub(crate) fn is_organization_id(id: &str) -> bool {
    has_id_shape(id, "org_")
}

/// A Clerk machine id: `mch_` followed by 1 to 128 visible ASCII characters.
pub(crate) fn is_machine_id(id: &str) -> bool {
    has_id_shape(id, "mch_")
}

/// The id of a Clerk machine credential: an API key's `ak_…`, a machine
/// token's `mt_…`, an OAuth access token's `oat_…`.
pub(crate) fn is_credential_id(id: &str) -> bool {
    ["ak_", "mt_", "oat_"]
        .iter()
        .any(|prefix| has_id_shape(id, prefix))
}

/// `prefix` followed by 1 to [`MAX_ID_CHARS`] visible ASCII characters.
/// Clerk ids are base62; this only keeps control characters, spaces and
/// non-ASCII text (which some databases cannot store) out of ids.
fn has_id_shape(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|rest| {
        (1..=MAX_ID_CHARS).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_graphic())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shape_for_every_id() {
        assert!(is_user_id("user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr"));
        assert!(is_user_id("user_123"));
        assert!(is_session_id("sess_2GbDB4enNdCa5vS1zpC3Xzg9tK9"));
        let too_long = format!("user_{}", "a".repeat(MAX_ID_CHARS + 1));
        for bad in [
            "user_",
            "user",
            "usr_1",
            "user_a b",
            "user_a\u{0}b",
            "user_é",
            "sess_1",
            too_long.as_str(),
        ] {
            assert!(!is_user_id(bad), "{bad:?}");
        }
        assert!(is_user_id(&format!("user_{}", "a".repeat(MAX_ID_CHARS))));
        assert!(!is_session_id("user_1"));
        assert!(is_organization_id("org_2g7np7Hrk0SN6kj5EDMLDaKNL0S"));
        assert!(!is_organization_id("orgmem_1") && !is_organization_id("org_"));
        assert!(is_machine_id("mch_2xhFjEI5X2qWRvtV13BzSj8H6Dk") && !is_machine_id("mch_"));
        for credential in ["ak_1f2e", "mt_1f2e", "oat_1f2e"] {
            assert!(is_credential_id(credential), "{credential}");
        }
        assert!(!is_credential_id("sess_1") && !is_credential_id("ak_"));
    }
}
