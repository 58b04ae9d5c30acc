//! The active organization a session token carries, decoded once, the way
//! Clerk's SDKs decode it, for version 1 and version 2 tokens.

use std::{borrow::Cow, fmt, iter::FusedIterator, slice};

use serde_json::Value;

use super::scope::js_trim;

/// The user's active organization, as the session token states it.
///
/// Read it from [`SessionClaims::organization`](super::SessionClaims::organization).
/// Both token versions give the same shape: a version 2 token's compact
/// `o` claim is expanded exactly as Clerk's SDKs expand it, and a version 1
/// token's `org_*` claims are taken as they are.
///
/// The token is a snapshot: Clerk mints a new one every minute or so, and a
/// change of role or plan shows in the next one. System permissions
/// (`org:sys_…`) are never in session tokens: check the role instead. See
/// [`authorization`](crate::authorization) for checks.
#[derive(Clone)]
pub struct ActiveOrganization {
    id: Box<str>,
    slug: Option<Box<str>>,
    role: Option<Box<str>>,
    grants: Grants,
}

/// The permissions of the active organization, as the token encodes them.
#[derive(Clone)]
enum Grants {
    /// Version 1: `org_permissions`, verbatim (its string elements).
    Listed(Box<[Box<str>]>),
    /// Version 2: for each organization feature with at least one grant,
    /// which of the permission names (`o.per`) it grants.
    Encoded {
        names: Box<[Box<str>]>,
        features: Box<[FeatureGrant]>,
    },
}

#[derive(Clone)]
struct FeatureGrant {
    feature: Box<str>,
    mask: Mask,
}

impl ActiveOrganization {
    /// Bytes the organization holds on the heap, as [`footprint`](super::footprint) counts them.
    pub(crate) fn heap_bytes(&self) -> usize {
        use super::footprint::{allocation, text, texts};
        let grants = match &self.grants {
            Grants::Listed(names) => texts(names),
            Grants::Encoded { names, features } => {
                texts(names)
                    + allocation(size_of_val(&**features))
                    + features
                        .iter()
                        .map(|grant| text(&grant.feature) + allocation(size_of_val(&*grant.mask.0)))
                        .sum::<usize>()
            }
        };
        text(&self.id)
            + self.slug.as_deref().map_or(0, text)
            + self.role.as_deref().map_or(0, text)
            + grants
    }

    /// The organization id (`org_…`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The organization's slug, if the token carries one.
    pub fn slug(&self) -> Option<&str> {
        self.slug.as_deref()
    }

    /// The user's role in the organization, if the token carries one.
    ///
    /// Version 2 tokens give it with the `org:` prefix (`org:admin`).
    /// Version 1 tokens give it as written, which on instances older than
    /// custom roles can lack the prefix (`admin`, `basic_member`); a
    /// [`Requirement::role`](crate::Requirement::role) matches with or
    /// without it.
    pub fn role(&self) -> Option<&str> {
        self.role.as_deref()
    }

    /// The user's permissions in the organization, in
    /// `org:feature:permission` form and in Clerk's order.
    ///
    /// A version 2 token encodes them compactly, and they stay encoded:
    /// each call expands them again. To check one, ask
    /// [`SessionClaims::has`](super::SessionClaims::has) with a
    /// [`Requirement::permission`](crate::Requirement::permission), which
    /// reads the compact form directly.
    pub fn permissions(&self) -> Permissions<'_> {
        let state = match &self.grants {
            Grants::Listed(list) => State::Listed(list.iter()),
            Grants::Encoded { names, features } => State::Encoded {
                names,
                features: features.iter(),
                current: None,
            },
        };
        Permissions { state }
    }

    /// Whether the token lists exactly this permission.
    pub(crate) fn has_permission(&self, permission: &str) -> bool {
        match &self.grants {
            Grants::Listed(list) => list.iter().any(|granted| **granted == *permission),
            Grants::Encoded { names, features } => {
                let Some(rest) = permission.strip_prefix("org:") else {
                    return false;
                };
                features.iter().any(|grant| {
                    let Some(name) = rest
                        .strip_prefix(&*grant.feature)
                        .and_then(|rest| rest.strip_prefix(':'))
                    else {
                        return false;
                    };
                    names
                        .iter()
                        .enumerate()
                        .any(|(bit, granted)| **granted == *name && grant.mask.contains(bit))
                })
            }
        }
    }

    /// The organization of a version 1 token: `org_id`, `org_slug`,
    /// `org_role` and `org_permissions`, as they are. No usable `org_id`
    /// means no active organization.
    pub(crate) fn from_v1(
        id: Option<&Value>,
        slug: Option<&Value>,
        role: Option<&Value>,
        permissions: Option<&Value>,
    ) -> Option<Self> {
        let id = text(id)?;
        let listed = match permissions {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(Box::from)
                .collect(),
            _ => Box::default(),
        };
        Some(Self {
            id: id.into(),
            slug: text(slug).map(Box::from),
            role: text(role).map(Box::from),
            grants: Grants::Listed(listed),
        })
    }

    /// The organization of a version 2 token's `o` claim. `org_features` are
    /// the organization features of `fea` in claim order (empty without
    /// `fea`), or `None` if `fea` could not be read: then nothing is granted.
    pub(crate) fn from_v2(o: &Value, org_features: Option<&[Box<str>]>) -> Option<Self> {
        let id = text(o.get("id"))?;
        let grants = match (text(o.get("per")), text(o.get("fpm")), org_features) {
            (Some(per), Some(fpm), Some(features)) => Grants::decode(per, fpm, features),
            _ => Grants::Listed(Box::default()),
        };
        Some(Self {
            id: id.into(),
            slug: text(o.get("slg")).map(Box::from),
            role: text(o.get("rol")).map(|role| format!("org:{role}").into_boxed_str()),
            grants,
        })
    }
}

impl Grants {
    /// Version 2's permissions: the i-th number of `fpm` is a bit mask over
    /// the names of `per` (bit 0 is the first name) for the i-th organization
    /// feature. Numbers past the features and bits past the names are
    /// ignored; a number that is not all decimal digits grants nothing.
    fn decode(per: &str, fpm: &str, org_features: &[Box<str>]) -> Self {
        let names: Box<[Box<str>]> = per.split(',').map(|name| js_trim(name).into()).collect();
        let features: Box<[FeatureGrant]> = org_features
            .iter()
            .zip(fpm.split(','))
            .filter_map(|(feature, mask)| {
                let mask = Mask::decode(mask, names.len());
                (!mask.is_empty()).then(|| FeatureGrant {
                    feature: feature.clone(),
                    mask,
                })
            })
            .collect();
        if features.is_empty() {
            return Self::Listed(Box::default());
        }
        Self::Encoded { names, features }
    }
}

/// A string claim with something in it.
fn text(value: Option<&Value>) -> Option<&str> {
    value
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
}

/// Same organization, role and permissions (in the same order), whichever
/// token version they came from.
impl PartialEq for ActiveOrganization {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.slug == other.slug
            && self.role == other.role
            && self.permissions().eq(other.permissions())
    }
}

impl Eq for ActiveOrganization {}

impl fmt::Debug for ActiveOrganization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct List<'a>(&'a ActiveOrganization);
        impl fmt::Debug for List<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.0.permissions()).finish()
            }
        }
        f.debug_struct("ActiveOrganization")
            .field("id", &self.id)
            .field("slug", &self.slug)
            .field("role", &self.role)
            .field("permissions", &List(self))
            .finish()
    }
}

/// The permissions of an [`ActiveOrganization`], from
/// [`ActiveOrganization::permissions`].
///
/// Yields `org:feature:permission` strings: borrowed from a version 1
/// token, built one by one from a version 2 token.
#[derive(Debug, Clone)]
pub struct Permissions<'a> {
    state: State<'a>,
}

#[derive(Debug, Clone)]
enum State<'a> {
    Listed(slice::Iter<'a, Box<str>>),
    Encoded {
        names: &'a [Box<str>],
        features: slice::Iter<'a, FeatureGrant>,
        current: Option<(&'a str, Ones<'a>)>,
    },
}

impl Permissions<'_> {
    /// No permissions: what an organization's own credential holds.
    pub(crate) fn none() -> Self {
        Self {
            state: State::Listed([].iter()),
        }
    }
}

impl<'a> Iterator for Permissions<'a> {
    type Item = Cow<'a, str>;

    fn next(&mut self) -> Option<Cow<'a, str>> {
        match &mut self.state {
            State::Listed(list) => list.next().map(|permission| Cow::Borrowed(&**permission)),
            State::Encoded {
                names,
                features,
                current,
            } => loop {
                if let Some((feature, ones)) = current
                    && let Some(name) = ones.next().and_then(|bit| names.get(bit))
                {
                    return Some(Cow::Owned(format!("org:{feature}:{name}")));
                }
                let grant = features.next()?;
                *current = Some((&grant.feature, grant.mask.ones()));
            },
        }
    }
}

impl FusedIterator for Permissions<'_> {}

impl fmt::Debug for FeatureGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeatureGrant")
            .field("feature", &self.feature)
            .finish_non_exhaustive()
    }
}

/// A set of bit positions of any size: a non-negative integer in 64-bit
/// words, least significant first, without trailing zero words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Mask(Box<[u64]>);

impl Mask {
    /// Decodes one `fpm` number, keeping its bits below `width`. Clerk's
    /// rule: after trimming, only decimal digits (leading zeros allowed) make
    /// a number; anything else grants nothing. Exact at any length: the
    /// digits are folded in 19 at a time, modulo 2^(64·words), which leaves
    /// the low bits exact while never holding more words than `width` needs.
    fn decode(number: &str, width: usize) -> Self {
        let digits = js_trim(number).as_bytes();
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Self::default();
        }
        let mut words = vec![0u64; width.div_ceil(64)];
        if words.is_empty() {
            return Self::default();
        }
        for chunk in digits.chunks(19) {
            let mut scale = 1u64;
            let mut value = 0u64;
            for digit in chunk {
                scale *= 10;
                value = value * 10 + u64::from(digit - b'0');
            }
            // words · scale + value, keeping the low words.
            let mut carry = u128::from(value);
            for word in &mut words {
                let product = u128::from(*word) * u128::from(scale) + carry;
                *word = product as u64;
                carry = product >> 64;
            }
        }
        let spare = width % 64;
        if spare != 0
            && let Some(last) = words.last_mut()
        {
            *last &= (1u64 << spare) - 1;
        }
        while words.last() == Some(&0) {
            words.pop();
        }
        Self(words.into_boxed_slice())
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn contains(&self, bit: usize) -> bool {
        self.0
            .get(bit / 64)
            .is_some_and(|word| word & (1u64 << (bit % 64)) != 0)
    }

    fn ones(&self) -> Ones<'_> {
        Ones {
            words: &self.0,
            index: 0,
            word: self.0.first().copied().unwrap_or(0),
        }
    }
}

/// The set bits of a [`Mask`], lowest first.
#[derive(Debug, Clone)]
struct Ones<'a> {
    words: &'a [u64],
    index: usize,
    word: u64,
}

impl Iterator for Ones<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.word == 0 {
            self.index += 1;
            self.word = *self.words.get(self.index)?;
        }
        let bit = self.word.trailing_zeros() as usize;
        self.word &= self.word - 1;
        Some(self.index * 64 + bit)
    }
}

#[cfg(test)]
mod tests;
