//! The key a user's row, cache entries, bans and announcements go by: a
//! Clerk user id (`user_…`) for Clerk's users, and `<issuer>#<subject>` for
//! a user of another OpenID Connect issuer. An issuer is an `http(s)` URL
//! without a fragment, so the first `#` ends it, and the two kinds of key
//! cannot meet: no Clerk id starts with `http`.

/// The key of `subject` at `issuer`.
pub(crate) fn of_issuer(issuer: &str, subject: &str) -> String {
    format!("{issuer}#{subject}")
}

/// Whether `url` can be an issuer: `https://` or `http://` and a host, no
/// fragment and no whitespace.
pub(crate) fn is_issuer_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|rest| {
        !rest.is_empty()
            && !rest.starts_with('/')
            && !url.contains('#')
            && !url.contains(char::is_whitespace)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_hash_ends_the_issuer() {
        let key = of_issuer("https://tenant.auth0.com/", "auth0|64f1#x");
        assert_eq!(key, "https://tenant.auth0.com/#auth0|64f1#x");
        assert_eq!(
            key.split_once('#'),
            Some(("https://tenant.auth0.com/", "auth0|64f1#x"))
        );
        assert!(!key.starts_with("user_"));
    }

    #[test]
    fn issuers_are_http_urls_without_fragments() {
        for url in [
            "https://tenant.auth0.com/",
            "http://127.0.0.1:8080/realms/a",
        ] {
            assert!(is_issuer_url(url), "{url}");
        }
        for url in [
            "https://",
            "https:///x",
            "ftp://host",
            "https://host/a#b",
            "https:// host",
            "host",
        ] {
            assert!(!is_issuer_url(url), "{url}");
        }
    }
}
