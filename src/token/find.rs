//! Where a request carries its session token: `Authorization`, else the
//! `__session_<suffix>` cookie, else `__session`.

use http::{HeaderMap, header};

use crate::rejection::Rejection;

const SESSION_COOKIE: &[u8] = b"__session";

/// Finds the session token. `Ok(None)` when the request carries none.
///
/// The `Authorization` header follows Clerk's rule: `Bearer <token>` is the
/// token (the scheme matched without regard to case, as RFC 7235 asks), a
/// value without a scheme is the token itself, and any other scheme
/// (`Basic …` from a staging password, `Digest …`) is not Clerk's and is
/// skipped. A token found in the header is used exclusively, as Clerk's
/// SDKs do: cookies are then not read. Two `Authorization` headers are
/// refused as ambiguous.
///
/// The token is returned as raw bytes, unchecked: a cached token matches
/// byte for byte, and verification refuses any byte outside a JWT's alphabet
/// (`malformed_token`), so the hot path never validates the text.
pub(crate) fn find_token<'a>(
    headers: &'a HeaderMap,
    cookie_suffix: Option<&str>,
    max_cookies: usize,
) -> Result<Option<&'a [u8]>, Rejection> {
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    if let Some(value) = authorization.next() {
        if authorization.next().is_some() {
            return Err(Rejection::MalformedToken);
        }
        if let Some(token) = header_token(value.as_bytes()) {
            return Ok(Some(token));
        }
    }
    Ok(session_cookie(headers, cookie_suffix, max_cookies))
}

/// The token an `Authorization` value carries for Clerk: `Bearer <token>`
/// or a bare token; `None` for an empty value or another scheme.
fn header_token(value: &[u8]) -> Option<&[u8]> {
    // The usual form, `Bearer <token>`, without the general scan below (which
    // reads it the same way).
    if let Some(token) = value
        .strip_prefix(b"Bearer ")
        .map(<[u8]>::trim_ascii)
        .filter(|token| !token.is_empty())
    {
        return Some(token);
    }
    let value = value.trim_ascii();
    let Some(space) = value.iter().position(|b| *b == b' ') else {
        // No scheme: the whole value is the token (`Bearer` alone included,
        // which verification refuses).
        return (!value.is_empty()).then_some(value);
    };
    let (scheme, token) = value.split_at(space);
    // A space inside the token is left to verification to refuse (it is
    // outside a JWT's alphabet), so a cache hit skips the scan.
    scheme
        .eq_ignore_ascii_case(b"Bearer")
        .then(|| token.trim_ascii())
}

fn session_cookie<'a>(
    headers: &'a HeaderMap,
    suffix: Option<&str>,
    max_cookies: usize,
) -> Option<&'a [u8]> {
    let mut plain = None;
    let pairs = headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b';'))
        .take(max_cookies);
    for pair in pairs {
        let pair = pair.trim_ascii();
        let Some(eq) = pair.iter().position(|b| *b == b'=') else {
            continue;
        };
        let (name, value) = (&pair[..eq], &pair[eq + 1..]);
        let Some(rest) = name.strip_prefix(SESSION_COOKIE) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        match (rest, suffix) {
            ([], _) if plain.is_none() => plain = Some(value),
            ([b'_', tail @ ..], Some(suffix)) if tail == suffix.as_bytes() => return Some(value),
            _ => {}
        }
    }
    plain
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// `find_token` with the token as text.
    fn find<'a>(
        headers: &'a HeaderMap,
        suffix: Option<&str>,
        max_cookies: usize,
    ) -> Result<Option<&'a str>, Rejection> {
        find_token(headers, suffix, max_cookies)
            .map(|token| token.map(|bytes| std::str::from_utf8(bytes).unwrap()))
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn bearer_header_wins_over_cookie() {
        let h = headers(&[("authorization", "Bearer abc"), ("cookie", "__session=xyz")]);
        assert_eq!(find(&h, None, 64), Ok(Some("abc")));
    }

    #[test]
    fn authorization_follows_clerks_rule() {
        let cookie = ("cookie", "__session=xyz");
        // Bearer, in any case, and a bare token: the header's token, exclusively.
        for (value, token) in [
            ("Bearer abc", "abc"),
            ("bearer abc", "abc"),
            ("BEARER  abc ", "abc"),
            ("abc", "abc"),
        ] {
            let h = headers(&[("authorization", value), cookie]);
            assert_eq!(find(&h, None, 64), Ok(Some(token)), "{value}");
        }
        // Another scheme, or nothing: not Clerk's, so the cookie is read.
        for value in ["Basic dXNlcjpwYXNz", "Digest username=\"a\"", "", "  "] {
            let h = headers(&[("authorization", value), cookie]);
            assert_eq!(find(&h, None, 64), Ok(Some("xyz")), "{value:?}");
            let alone = headers(&[("authorization", value)]);
            assert_eq!(find(&alone, None, 64), Ok(None), "{value:?}");
        }
        // `Bearer` alone reads as a bare token, which verification refuses.
        let empty = headers(&[("authorization", "Bearer  \t"), cookie]);
        assert_eq!(find(&empty, None, 64), Ok(Some("Bearer")));
        // Handed on as is: verification refuses it.
        let spaced = headers(&[("authorization", "Bearer a b")]);
        assert_eq!(find(&spaced, None, 64), Ok(Some("a b")));
        let twice = headers(&[("authorization", "Basic x"), ("authorization", "Bearer b")]);
        assert_eq!(find(&twice, None, 64), Err(Rejection::MalformedToken));
    }

    #[test]
    fn suffixed_cookie_before_plain() {
        let h = headers(&[(
            "cookie",
            "theme=dark; __session=plain; __session_QvfNY2dr=suffixed",
        )]);
        assert_eq!(find(&h, Some("QvfNY2dr"), 64), Ok(Some("suffixed")));
        assert_eq!(find(&h, None, 64), Ok(Some("plain")));
        assert_eq!(find(&h, Some("other123"), 64), Ok(Some("plain")));
    }

    #[test]
    fn other_cookies_and_lookalikes_are_ignored() {
        let h = headers(&[(
            "cookie",
            "__session_other=x; __sessionx=y; __client_uat=1; __session=",
        )]);
        assert_eq!(find(&h, None, 64), Ok(None));
        assert_eq!(find(&HeaderMap::new(), None, 64), Ok(None));
    }

    #[test]
    fn cookie_count_is_capped() {
        let mut cookie: String = (0..200).map(|i| format!("c{i}=v; ")).collect();
        cookie.push_str("__session=late");
        let h = headers(&[("cookie", &cookie)]);
        assert_eq!(find(&h, None, 64), Ok(None));
        assert_eq!(find(&h, None, 201), Ok(Some("late")));
    }

    #[test]
    fn non_utf8_tokens_are_handed_on_for_verification_to_refuse() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_bytes(b"__session=\xff\xfe").unwrap(),
        );
        assert_eq!(find_token(&h, None, 64), Ok(Some(&b"\xff\xfe"[..])));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff").unwrap(),
        );
        assert_eq!(find_token(&h, None, 64), Ok(Some(&b"\xff"[..])));
    }
}
