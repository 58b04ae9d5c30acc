//! Clerk's scoped lists (`fea`, `pla`): comma-separated `scope:name`
//! elements, read exactly as Clerk's SDKs read them; and the scopes an
//! access token grants.

use serde_json::{Map, Value};

/// The scopes the claim `name` lists: an array of strings, or one string
/// of space-separated scopes; `None` when the claim is neither. Empty
/// scopes are left out.
pub(crate) fn listed(claims: &Map<String, Value>, name: &str) -> Option<Vec<String>> {
    let scopes = match claims.get(name)? {
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>(),
        Value::String(text) => text.split(' ').collect(),
        _ => return None,
    };
    let kept = scopes.into_iter().filter(|scope| !scope.is_empty());
    Some(kept.map(str::to_owned).collect())
}

/// The names of a scoped claim, sorted into the organization's and the
/// user's, in claim order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ScopedNames {
    pub(crate) org: Box<[Box<str>]>,
    pub(crate) user: Box<[Box<str>]>,
}

impl ScopedNames {
    /// Bytes the names hold on the heap, as [`footprint`](super::footprint) counts them.
    pub(crate) fn heap_bytes(&self) -> usize {
        super::footprint::texts(&self.org) + super::footprint::texts(&self.user)
    }
}

/// Splits a scoped claim: on `,`, each element trimmed, then at its first
/// `:`. Scope `o` is the organization's, `u` the user's, `ou` and `uo` both;
/// any other scope is skipped. An element without a colon makes the whole
/// claim unreadable (`None`), as it makes Clerk's SDKs throw. An empty claim
/// holds nothing.
pub(crate) fn split_by_scope(claim: &str) -> Option<ScopedNames> {
    let mut org = Vec::new();
    let mut user = Vec::new();
    if claim.is_empty() {
        return Some(ScopedNames::default());
    }
    for element in claim.split(',') {
        let (scope, name) = js_trim(element).split_once(':')?;
        match scope {
            "o" => org.push(Box::from(name)),
            "u" => user.push(Box::from(name)),
            "ou" | "uo" => {
                org.push(Box::from(name));
                user.push(Box::from(name));
            }
            _ => {}
        }
    }
    Some(ScopedNames {
        org: org.into_boxed_slice(),
        user: user.into_boxed_slice(),
    })
}

/// `text` without the leading and trailing white space JavaScript's
/// `String.prototype.trim` removes: Unicode `White_Space` except U+0085,
/// plus U+FEFF.
pub(crate) fn js_trim(text: &str) -> &str {
    text.trim_matches(|c: char| c == '\u{feff}' || (c.is_whitespace() && c != '\u{85}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[Box<str>]) -> Vec<&str> {
        list.iter().map(|name| &**name).collect()
    }

    #[test]
    fn scopes_sort_names_into_org_and_user() {
        let split = split_by_scope("o:reservations,u:dashboard").unwrap();
        assert_eq!(names(&split.org), ["reservations"]);
        assert_eq!(names(&split.user), ["dashboard"]);

        let split =
            split_by_scope("o:reservations,u:dashboard,ou:support-chat,uo:billing").unwrap();
        assert_eq!(
            names(&split.org),
            ["reservations", "support-chat", "billing"]
        );
        assert_eq!(names(&split.user), ["dashboard", "support-chat", "billing"]);
    }

    #[test]
    fn elements_are_trimmed_and_split_at_the_first_colon() {
        let split = split_by_scope(" o:a:b ,\tu:c\n,x:ignored,org:ignored,:ignored").unwrap();
        assert_eq!(names(&split.org), ["a:b"]);
        assert_eq!(names(&split.user), ["c"]);
        // The scope itself is not trimmed inside the element.
        let split = split_by_scope("o :a").unwrap();
        assert!(split.org.is_empty() && split.user.is_empty());
        // An empty name is a name.
        assert_eq!(names(&split_by_scope("o:").unwrap().org), [""]);
    }

    #[test]
    fn an_element_without_a_colon_spoils_the_claim() {
        assert_eq!(split_by_scope("reservations,dashboard"), None);
        assert_eq!(split_by_scope("o:a,b"), None);
        assert_eq!(split_by_scope("o:a,"), None);
        assert_eq!(split_by_scope(" "), None);
        assert_eq!(split_by_scope(""), Some(ScopedNames::default()));
    }

    #[test]
    fn trimming_follows_javascript() {
        assert_eq!(js_trim("\u{feff}\u{a0} 3\u{2028}\r\n"), "3");
        assert_eq!(js_trim("\u{85}3"), "\u{85}3");
    }
}
