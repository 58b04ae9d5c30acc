//! Where a request carries its session token: `Authorization: Bearer …`, else
//! the `__session_<suffix>` cookie, else `__session`.

use http::{HeaderMap, header};

use crate::Rejection;

const SESSION_COOKIE: &[u8] = b"__session";

/// Finds the session token. `Ok(None)` when the request carries none.
///
/// A present `Authorization` header is used exclusively (as Clerk's SDKs do):
/// it must be exactly one `Bearer <token>`, and cookies are then not read.
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
        let token = value
            .as_bytes()
            .strip_prefix(b"Bearer ")
            .map(<[u8]>::trim_ascii)
            // A space inside the token is left to verification to refuse
            // (it is outside a JWT's alphabet), so a cache hit skips the scan.
            .filter(|t| !t.is_empty())
            .ok_or(Rejection::MalformedToken)?;
        return Ok(Some(token));
    }
    Ok(session_cookie(headers, cookie_suffix, max_cookies))
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
    fn header_must_be_exactly_one_bearer() {
        for value in ["bearer abc", "abc", "Bearer ", "Basic abc"] {
            let h = headers(&[("authorization", value), ("cookie", "__session=xyz")]);
            assert_eq!(
                find(&h, None, 64),
                Err(Rejection::MalformedToken),
                "{value}"
            );
        }
        // Handed on as is: verification refuses it.
        let spaced = headers(&[("authorization", "Bearer a b")]);
        assert_eq!(find(&spaced, None, 64), Ok(Some("a b")));
        let twice = headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
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
