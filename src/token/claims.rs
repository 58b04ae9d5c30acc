//! The claims of a Clerk session token, for token versions 1 and 2.

use std::sync::Arc;

use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use super::{
    footprint,
    organization::ActiveOrganization,
    scope::{ScopedNames, split_by_scope},
};

/// The verified claims of a Clerk session token.
///
/// Each claim is read through the method of its name. Known claims are
/// typed; anything Clerk adds later, or that the app adds through a
/// session-token template, is kept as well: read one with [`get`](Self::get),
/// or all of them into a type of the app's with [`extra`](Self::extra).
///
/// The claims are stored compactly, the text of every claim in one
/// allocation and the issuer shared with every other token of the instance,
/// since a verified token stays cached with its claims until it expires.
///
/// # Organizations and authorization
///
/// The active organization is decoded once, when the claims are read, from
/// either token version: version 2 (`v: 2`) from the compact `o` claim and
/// `fea`, any other version from the flat `org_*` claims. Read it with
/// [`organization`](Self::organization), and check roles, permissions,
/// features, the plan and how recently the user verified with
/// [`has`](Self::has). The token carries the active organization only,
/// never system permissions (`org:sys_…`: check the role instead), and
/// features and plans in version 2 tokens only; [`authorization`](crate::authorization)
/// has the details.
///
/// Claims that only serve authorization (`v`, `fva`, `fea`, `pla`, `o` and
/// the `org_*` claims) are read leniently: one of an unexpected type counts
/// as absent, so the checks that need it fail, while the token itself stays
/// valid. The user's identity claims (`sub`, `sid`, `exp`, …) are strict.
#[derive(Clone, Deserialize)]
#[serde(try_from = "RawClaims")]
pub struct SessionClaims {
    /// The text of each [`Part`], back to back.
    text: Box<str>,
    /// `iss`: once verified, the configured issuer's own text, which every
    /// token of the instance shares (behind a thin pointer).
    iss: Arc<String>,
    /// Where each [`Part`] but the last ends in `text`, within 16 bits
    /// ([`ClaimsTooLong`]); the last ends with the text.
    ends: [u16; Part::COUNT - 1],
    /// Which optional claims are present, one [`Present`] bit each.
    present: u16,
    /// A version beyond 16 bits is none (read as version 1).
    v: u16,
    exp: i64,
    iat: i64,
    nbf: i64,
    /// Minutes, as `fva` is; an age beyond 32 bits makes `fva` unusable.
    fva: [i32; 2],
    /// Claims decoded into structures of their own, which most tokens lack.
    structured: Option<Box<Structured>>,
}

/// The claims of a token decoded into structures of their own, boxed
/// together: most tokens carry none of them, and then pay one pointer.
#[derive(Clone, Default)]
struct Structured {
    act: Option<Box<Actor>>,
    organization: Option<Box<ActiveOrganization>>,
    billing: Option<Box<Billing>>,
}

impl Structured {
    /// The structures, boxed; `None` when there are none.
    fn boxed(self) -> Option<Box<Self>> {
        let any = self.act.is_some() || self.organization.is_some() || self.billing.is_some();
        any.then(|| Box::new(self))
    }

    /// Bytes the structures hold on the heap, as [`footprint`] counts them.
    fn heap_bytes(&self) -> usize {
        fn boxed<T>(value: Option<&T>, heap_bytes: fn(&T) -> usize) -> usize {
            value.map_or(0, |value| footprint::boxed::<T>(heap_bytes(value)))
        }
        boxed(self.act.as_deref(), Actor::heap_bytes)
            + boxed(self.organization.as_deref(), ActiveOrganization::heap_bytes)
            + boxed(self.billing.as_deref(), Billing::heap_bytes)
    }
}

/// The parts of [`SessionClaims`]' text, in order: string claims, then every
/// other claim as one JSON object.
#[derive(Clone, Copy)]
enum Part {
    Sub,
    Sid,
    Azp,
    Sts,
    Pla,
    Fea,
    Extra,
}

impl Part {
    const COUNT: usize = 7;

    /// The part's bit in [`SessionClaims::present`], when it is optional.
    fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// Bits of [`SessionClaims::present`] for the claims that are not text
/// (the text parts take the low bits, by their [`Part`] number).
struct Present;

impl Present {
    const IAT: u16 = 1 << Part::COUNT;
    const NBF: u16 = Self::IAT << 1;
    const V: u16 = Self::IAT << 2;
    const FVA: u16 = Self::IAT << 3;
}

/// Who is acting on the user's behalf during impersonation.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct Actor {
    /// The impersonator's user id.
    pub sub: String,
    /// Where the actor token came from, e.g. `https://dashboard.clerk.com`.
    #[serde(default)]
    pub iss: Option<String>,
    /// The impersonation session id.
    #[serde(default)]
    pub sid: Option<String>,
    /// Other actor fields (for example `type: "agent"`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Actor {
    /// Bytes the actor holds on the heap, as [`footprint`] counts them.
    fn heap_bytes(&self) -> usize {
        footprint::text(&self.sub)
            + self.iss.as_deref().map_or(0, footprint::text)
            + self.sid.as_deref().map_or(0, footprint::text)
            + footprint::json_object(&self.extra)
    }
}

/// A version 2 token's features and plan, split by scope. `None` where the
/// claim is absent, empty or unreadable: every check against it fails.
#[derive(Debug, Clone)]
pub(crate) struct Billing {
    pub(crate) features: Option<ScopedNames>,
    pub(crate) plans: Option<ScopedNames>,
}

impl Billing {
    /// Bytes the names hold on the heap, as [`footprint`] counts them.
    fn heap_bytes(&self) -> usize {
        [&self.features, &self.plans]
            .into_iter()
            .flatten()
            .map(ScopedNames::heap_bytes)
            .sum()
    }

    /// `fea` as read, and `pla`. `None` if neither can be used.
    fn new(features: Scoped, plans: Option<&Value>) -> Option<Box<Self>> {
        // Clerk's SDKs throw on an unreadable `fea` while reading the
        // organization; here it fails the plan checks as well.
        let plans = match features {
            Scoped::Unreadable => Scoped::Unreadable,
            _ => Scoped::read(plans),
        };
        let billing = Self {
            features: features.usable(),
            plans: plans.usable(),
        };
        (billing.features.is_some() || billing.plans.is_some()).then(|| Box::new(billing))
    }
}

/// The claims as they arrive; authorization claims as plain JSON, read
/// into [`SessionClaims`] by its `From` conversion.
#[derive(Deserialize)]
struct RawClaims {
    sub: String,
    #[serde(default)]
    sid: String,
    #[serde(default)]
    iss: String,
    #[serde(default)]
    azp: Option<String>,
    exp: i64,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    v: Option<Value>,
    #[serde(default)]
    sts: Option<String>,
    #[serde(default)]
    fva: Option<Value>,
    #[serde(default)]
    pla: Option<Value>,
    #[serde(default)]
    fea: Option<Value>,
    #[serde(default)]
    act: Option<Actor>,
    #[serde(default)]
    o: Option<Value>,
    #[serde(default)]
    org_id: Option<Value>,
    #[serde(default)]
    org_slug: Option<Value>,
    #[serde(default)]
    org_role: Option<Value>,
    #[serde(default)]
    org_permissions: Option<Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// A scoped claim (`fea`, `pla`) as found.
enum Scoped {
    /// Absent, `null` or empty.
    Absent,
    Read(ScopedNames),
    /// Not a string, or an element without a colon.
    Unreadable,
}

impl Scoped {
    fn read(claim: Option<&Value>) -> Self {
        match claim {
            None | Some(Value::Null) => Self::Absent,
            Some(Value::String(text)) if text.is_empty() => Self::Absent,
            Some(Value::String(text)) => split_by_scope(text).map_or(Self::Unreadable, Self::Read),
            Some(_) => Self::Unreadable,
        }
    }

    fn usable(self) -> Option<ScopedNames> {
        match self {
            Self::Read(names) => Some(names),
            Self::Absent | Self::Unreadable => None,
        }
    }
}

impl TryFrom<RawClaims> for SessionClaims {
    type Error = ClaimsTooLong;

    fn try_from(raw: RawClaims) -> Result<Self, ClaimsTooLong> {
        let v = raw
            .v
            .as_ref()
            .and_then(whole_number)
            .and_then(|v| u16::try_from(v).ok());
        let mut extra = raw.extra;
        let mut keep = |name: &str, claim: Option<Value>| {
            if let Some(claim) = claim {
                extra.insert(name.to_owned(), claim);
            }
        };
        let (organization, billing) = if v == Some(2) {
            let features = Scoped::read(raw.fea.as_ref());
            let org_features = match &features {
                Scoped::Absent => Some(&[][..]),
                Scoped::Read(names) => Some(&names.org[..]),
                Scoped::Unreadable => None,
            };
            let organization = raw
                .o
                .as_ref()
                .and_then(|o| ActiveOrganization::from_v2(o, org_features));
            let billing = Billing::new(features, raw.pla.as_ref());
            keep("org_id", raw.org_id);
            keep("org_slug", raw.org_slug);
            keep("org_role", raw.org_role);
            keep("org_permissions", raw.org_permissions);
            (organization, billing)
        } else {
            let organization = ActiveOrganization::from_v1(
                raw.org_id.as_ref(),
                raw.org_slug.as_ref(),
                raw.org_role.as_ref(),
                raw.org_permissions.as_ref(),
            );
            keep("o", raw.o);
            (organization, None)
        };
        let pla = raw.pla.and_then(into_string);
        let fea = raw.fea.and_then(into_string);
        // Every other claim, kept as its JSON text: a map would take an
        // allocation of several hundred bytes for a single `jti`.
        let extra = (!extra.is_empty()).then(|| Value::Object(extra).to_string());
        let parts: [Option<&str>; Part::COUNT] = [
            Some(&raw.sub),
            Some(&raw.sid),
            raw.azp.as_deref(),
            raw.sts.as_deref(),
            pla.as_deref(),
            fea.as_deref(),
            extra.as_deref(),
        ];
        let (text, ends, mut present) = pack(parts)?;
        let fva = raw.fva.as_ref().and_then(factor_ages);
        for (bit, is_present) in [
            (Present::IAT, raw.iat.is_some()),
            (Present::NBF, raw.nbf.is_some()),
            (Present::V, v.is_some()),
            (Present::FVA, fva.is_some()),
        ] {
            if is_present {
                present |= bit;
            }
        }
        Ok(Self {
            text,
            iss: Arc::new(raw.iss),
            ends,
            present,
            v: v.unwrap_or(0),
            exp: raw.exp,
            iat: raw.iat.unwrap_or(0),
            nbf: raw.nbf.unwrap_or(0),
            fva: fva.unwrap_or_default(),
            structured: Structured {
                act: raw.act.map(Box::new),
                organization: organization.map(Box::new),
                billing,
            }
            .boxed(),
        })
    }
}

/// Claims whose typed string claims (`sub`, `sid`, `azp`, `sts`, `pla` and
/// `fea`) together exceed 64 KiB, too long to index with 16 bits: never a
/// real token's (a session token travels in a cookie of at most 4 KiB, and
/// the layer refuses tokens over 8 KiB unless told otherwise). The other
/// claims, kept last, may take any length.
#[derive(Debug, thiserror::Error)]
#[error("the typed string claims exceed 64 KiB")]
pub(crate) struct ClaimsTooLong;

/// The parts' text back to back, where each ends, and the bits of the parts
/// present.
fn pack(
    parts: [Option<&str>; Part::COUNT],
) -> Result<(Box<str>, [u16; Part::COUNT - 1], u16), ClaimsTooLong> {
    let mut text = String::with_capacity(parts.iter().flatten().map(|part| part.len()).sum());
    let mut ends = [0; Part::COUNT - 1];
    let mut present = 0;
    for (index, part) in parts.into_iter().enumerate() {
        if let Some(part) = part {
            text.push_str(part);
            present |= 1 << index;
        }
        if let Some(end) = ends.get_mut(index) {
            *end = u16::try_from(text.len()).map_err(|_| ClaimsTooLong)?;
        }
    }
    Ok((text.into_boxed_str(), ends, present))
}

/// `fva`: exactly two whole numbers, each within 32 bits.
fn factor_ages(claim: &Value) -> Option<[i32; 2]> {
    let [first, second] = claim.as_array()?.as_slice() else {
        return None;
    };
    let age = |claim| whole_number(claim).and_then(|age| i32::try_from(age).ok());
    Some([age(first)?, age(second)?])
}

/// A JSON number without a fraction that fits an `i64` (`2` or `2.0`).
fn whole_number(claim: &Value) -> Option<i64> {
    if let Some(number) = claim.as_i64() {
        return Some(number);
    }
    let number = claim.as_f64()?;
    let in_range = (i64::MIN as f64..i64::MAX as f64).contains(&number);
    (in_range && number.fract() == 0.0).then_some(number as i64)
}

fn into_string(claim: Value) -> Option<String> {
    match claim {
        Value::String(text) => Some(text),
        _ => None,
    }
}

/// Shows the ids and times; other claims by name only, since they may carry
/// personal data.
impl std::fmt::Debug for SessionClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let extra = self.extra::<Map<String, Value>>().unwrap_or_default();
        f.debug_struct("SessionClaims")
            .field("sub", &self.sub())
            .field("sid", &self.sid())
            .field("iss", &self.iss())
            .field("azp", &self.azp())
            .field("exp", &self.exp())
            .field("v", &self.v())
            .field("sts", &self.sts())
            .field(
                "organization",
                &self.organization().map(ActiveOrganization::id),
            )
            .field("extra", &extra.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl SessionClaims {
    /// The Clerk user id (`user_…`).
    pub fn sub(&self) -> &str {
        self.part(Part::Sub)
    }

    /// The Clerk session id (`sess_…`).
    pub fn sid(&self) -> &str {
        self.part(Part::Sid)
    }

    /// The issuer: the instance's Frontend API URL.
    pub fn iss(&self) -> &str {
        &self.iss
    }

    /// The authorized party: the origin the token was requested from, if any.
    pub fn azp(&self) -> Option<&str> {
        self.optional_part(Part::Azp)
    }

    /// Expiry, Unix seconds.
    pub fn exp(&self) -> i64 {
        self.exp
    }

    /// Issued at, Unix seconds.
    pub fn iat(&self) -> Option<i64> {
        self.is_present(Present::IAT).then_some(self.iat)
    }

    /// Not before, Unix seconds.
    pub fn nbf(&self) -> Option<i64> {
        self.is_present(Present::NBF).then_some(self.nbf)
    }

    /// Token version: `Some(2)` for version 2 tokens, absent for version 1
    /// (any version other than 2 is read as version 1).
    pub fn v(&self) -> Option<u32> {
        self.is_present(Present::V).then_some(u32::from(self.v))
    }

    /// Session status (`active` or `pending`), when the instance reports it.
    pub fn sts(&self) -> Option<&str> {
        self.optional_part(Part::Sts)
    }

    /// Factor verification age in minutes: `[first factor, second factor]`,
    /// `-1` if never. Absent unless the claim holds two whole numbers.
    pub fn fva(&self) -> Option<[i64; 2]> {
        self.is_present(Present::FVA)
            .then_some(self.fva.map(i64::from))
    }

    /// The active plan (`u:free`, `o:pro`), version 2 only.
    pub fn pla(&self) -> Option<&str> {
        self.optional_part(Part::Pla)
    }

    /// Enabled features, comma-separated `scope:feature`, version 2 only.
    pub fn fea(&self) -> Option<&str> {
        self.optional_part(Part::Fea)
    }

    /// The actor, present while someone impersonates the user.
    pub fn act(&self) -> Option<&Actor> {
        self.structured.as_ref()?.act.as_deref()
    }

    /// Whether Clerk marked the session `pending` (signed up, not yet fully signed in).
    pub fn is_pending(&self) -> bool {
        self.sts() == Some("pending")
    }

    /// The user's active organization, if the token names one.
    ///
    /// Decoded when the claims were read, so this costs nothing. A token
    /// without an organization id (or with one that is not a non-empty
    /// string) has no active organization.
    pub fn organization(&self) -> Option<&ActiveOrganization> {
        self.structured.as_ref()?.organization.as_deref()
    }

    /// A version 2 token's features and plan, split by scope.
    pub(crate) fn billing(&self) -> Option<&Billing> {
        self.structured.as_ref()?.billing.as_deref()
    }

    /// One of the other claims (those without a method of their own, such as
    /// the app's session-token template claims), by name, as JSON. Read from
    /// the kept text on each call.
    pub fn get(&self, name: &str) -> Option<Value> {
        self.extra::<Map<String, Value>>().ok()?.remove(name)
    }

    /// Every other claim (those without a method of their own), read into
    /// `T`: the app's own type for the claims its session-token template
    /// adds, or a [`Map`] for all of them. This includes a version 1 token's
    /// `o` and a version 2 token's `org_*` claims, which are not Clerk's
    /// there.
    ///
    /// ```
    /// # use ensure_user::SessionClaims;
    /// #[derive(serde::Deserialize)]
    /// struct Template {
    ///     email: String,
    /// }
    ///
    /// fn email(claims: &SessionClaims) -> Option<String> {
    ///     claims.extra::<Template>().ok().map(|template| template.email)
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// When the claims do not fit `T`.
    pub fn extra<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.optional_part(Part::Extra).unwrap_or("{}"))
    }

    /// Has `iss` share `issuer`'s text, which it equals.
    pub(crate) fn share_issuer(&mut self, issuer: &Arc<String>) {
        debug_assert_eq!(self.iss, *issuer);
        self.iss = Arc::clone(issuer);
    }

    /// Bytes the claims hold on the heap, as [`footprint`] counts them; a
    /// shared issuer costs them nothing.
    pub(crate) fn heap_bytes(&self) -> usize {
        let issuer = if Arc::strong_count(&self.iss) == 1 {
            footprint::shared::<String>(footprint::text(&self.iss))
        } else {
            0
        };
        let structured = self.structured.as_deref().map_or(0, |structured| {
            footprint::boxed::<Structured>(structured.heap_bytes())
        });
        footprint::text(&self.text) + issuer + structured
    }

    fn part(&self, part: Part) -> &str {
        let index = part as usize;
        let start = index
            .checked_sub(1)
            .map_or(0, |before| usize::from(self.ends[before]));
        let end = self
            .ends
            .get(index)
            .map_or(self.text.len(), |&end| usize::from(end));
        // Both ends fall between whole claims, pushed as they were.
        self.text.get(start..end).unwrap_or_default()
    }

    fn optional_part(&self, part: Part) -> Option<&str> {
        self.is_present(part.bit()).then(|| self.part(part))
    }

    fn is_present(&self, bit: u16) -> bool {
        self.present & bit != 0
    }
}

#[cfg(test)]
impl SessionClaims {
    /// These claims with `fea` and `pla` read as a version 2 token's,
    /// whatever their version: the inputs Clerk's own authorization tests
    /// state directly, next to an organization given in version 1 form.
    pub(crate) fn with_billing(mut self, fea: &str, pla: &str) -> Self {
        let features = Scoped::read(Some(&Value::from(fea)));
        let mut structured = self.structured.map(|s| *s).unwrap_or_default();
        structured.billing = Billing::new(features, Some(&Value::from(pla)));
        self.structured = structured.boxed();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> SessionClaims {
        serde_json::from_str(json).unwrap()
    }

    fn permissions(org: &ActiveOrganization) -> Vec<String> {
        org.permissions().map(|p| p.into_owned()).collect()
    }

    #[test]
    fn v2_organization_is_expanded() {
        let claims = parse(
            r#"{"sub":"user_1","sid":"sess_1","exp":1,"v":2,"fea":"o:dashboard,o:teams",
                "o":{"id":"org_1","slg":"acme","rol":"admin","per":"manage,read","fpm":"3,2"}}"#,
        );
        let org = claims.organization().unwrap();
        assert_eq!(org.id(), "org_1");
        assert_eq!(org.slug(), Some("acme"));
        assert_eq!(org.role(), Some("org:admin"));
        assert_eq!(
            permissions(org),
            [
                "org:dashboard:manage",
                "org:dashboard:read",
                "org:teams:read"
            ]
        );
    }

    #[test]
    fn v1_organization_is_read_flat() {
        let claims = parse(
            r#"{"sub":"user_1","sid":"sess_1","exp":1,"org_id":"org_9","org_slug":"s",
                "org_role":"org:member","org_permissions":["org:a:b"]}"#,
        );
        let org = claims.organization().unwrap();
        assert_eq!(org.role(), Some("org:member"));
        assert_eq!(permissions(org), ["org:a:b"]);
    }

    #[test]
    fn unknown_claims_and_actor_are_kept() {
        let claims = parse(
            r#"{"sub":"user_1","sid":"sess_1","exp":1,"email":"a@b.c",
                "act":{"sub":"user_2","iss":"https://dashboard.clerk.com","type":"agent"}}"#,
        );
        assert_eq!(claims.get("email").unwrap(), "a@b.c");
        assert!(claims.organization().is_none());
        let actor = claims.act().unwrap();
        assert_eq!(actor.sub, "user_2");
        assert_eq!(actor.extra["type"], "agent");
    }

    #[test]
    fn every_claim_reads_back_as_given() {
        let claims = parse(
            r#"{"sub":"user_1","sid":"sess_1","iss":"https://i.example","azp":"","exp":5,
                "iat":3,"nbf":2,"v":2,"sts":"active","fva":[7,-1],"pla":"u:free","fea":"u:a",
                "jti":"j1","email":"a@b.c"}"#,
        );
        assert_eq!(
            (claims.sub(), claims.sid(), claims.iss(), claims.azp()),
            ("user_1", "sess_1", "https://i.example", Some(""))
        );
        assert_eq!(
            (claims.exp(), claims.iat(), claims.nbf(), claims.v()),
            (5, Some(3), Some(2), Some(2))
        );
        assert_eq!(
            (claims.sts(), claims.fva(), claims.pla(), claims.fea()),
            (Some("active"), Some([7, -1]), Some("u:free"), Some("u:a"))
        );
        #[derive(Deserialize)]
        struct Template {
            email: String,
            jti: String,
        }
        let template: Template = claims.extra().unwrap();
        assert_eq!((&*template.email, &*template.jti), ("a@b.c", "j1"));
        assert_eq!(claims.get("jti").unwrap(), "j1");
        assert_eq!(claims.get("sub"), None, "typed claims are not repeated");

        let bare = parse(r#"{"sub":"user_1","exp":1}"#);
        assert_eq!(
            (bare.sid(), bare.iss(), bare.azp(), bare.sts()),
            ("", "", None, None)
        );
        assert_eq!(
            (bare.iat(), bare.nbf(), bare.v(), bare.fva()),
            (None, None, None, None)
        );
        assert_eq!(
            (bare.pla(), bare.fea(), bare.get("jti")),
            (None, None, None)
        );
        assert!(bare.extra::<Map<String, Value>>().unwrap().is_empty());
    }

    /// The claims with a method of their own, and those read as an
    /// organization's: never among the other claims.
    const NAMED: [&str; 18] = [
        "sub",
        "sid",
        "iss",
        "azp",
        "exp",
        "iat",
        "nbf",
        "v",
        "sts",
        "fva",
        "pla",
        "fea",
        "act",
        "o",
        "org_id",
        "org_slug",
        "org_role",
        "org_permissions",
    ];

    proptest::proptest! {
        /// Whatever their text, the string claims and the other claims read
        /// back exactly as they were given, present or absent.
        #[test]
        fn the_claims_read_back_as_given(
            texts in proptest::collection::vec(proptest::prelude::any::<String>(), 7),
            present in proptest::collection::vec(proptest::prelude::any::<bool>(), 4),
            others in proptest::collection::btree_map("[a-z_]{1,9}", proptest::prelude::any::<String>(), 0..4),
        ) {
            let mut json = serde_json::json!({
                "sub": texts[0], "sid": texts[1], "iss": texts[2], "exp": 1, "v": 1,
            });
            let optional = ["azp", "sts", "pla", "fea"];
            for ((name, text), is_present) in optional.iter().zip(&texts[3..]).zip(&present) {
                if *is_present {
                    json[*name] = Value::from(text.as_str());
                }
            }
            let others: Map<String, Value> = others
                .into_iter()
                .filter(|(name, _)| !NAMED.contains(&name.as_str()))
                .map(|(name, text)| (name, Value::from(text)))
                .collect();
            json.as_object_mut().unwrap().extend(others.clone());
            let claims: SessionClaims = serde_json::from_value(json).unwrap();

            proptest::prop_assert_eq!(
                (claims.sub(), claims.sid(), claims.iss()),
                (&*texts[0], &*texts[1], &*texts[2])
            );
            let read = [claims.azp(), claims.sts(), claims.pla(), claims.fea()];
            for ((read, text), is_present) in read.into_iter().zip(&texts[3..]).zip(&present) {
                proptest::prop_assert_eq!(read, is_present.then_some(text.as_str()));
            }
            proptest::prop_assert_eq!(claims.extra::<Map<String, Value>>().unwrap(), others.clone());
            for (name, value) in &others {
                proptest::prop_assert_eq!(claims.get(name), Some(value.clone()));
            }
        }
    }

    #[test]
    fn typed_string_claims_up_to_64_kib_are_read_and_longer_ones_refused() {
        let with = |azp: usize, note: usize| {
            let (azp, note) = ("a".repeat(azp), "n".repeat(note));
            format!(
                r#"{{"sub":"user_1","sid":"sess_1","exp":1,"azp":"{azp}","sts":"active","note":"{note}"}}"#
            )
        };
        // `user_1`, `sess_1`, the `azp` and `active` end within 16 bits.
        let fits = u16::MAX as usize - 18;
        let claims = parse(&with(fits, 100_000));
        assert_eq!(claims.azp().map(str::len), Some(fits));
        assert_eq!(
            (claims.sub(), claims.sid(), claims.sts()),
            ("user_1", "sess_1", Some("active"))
        );
        // The other claims come last, and may take any length.
        assert_eq!(
            claims.get("note").unwrap().as_str().map(str::len),
            Some(100_000)
        );
        let error = serde_json::from_str::<SessionClaims>(&with(fits + 1, 1)).unwrap_err();
        assert!(error.to_string().contains("64 KiB"), "{error}");
    }

    #[test]
    fn malformed_fpm_entries_are_skipped() {
        let claims = parse(
            r#"{"sub":"user_1","sid":"s","exp":1,"v":2,"fea":"o:a,u:b,o:c",
                "o":{"id":"org_1","per":"x,y","fpm":"zz,2"}}"#,
        );
        assert_eq!(permissions(claims.organization().unwrap()), ["org:c:y"]);
    }

    #[test]
    fn only_the_scopes_o_ou_and_uo_are_the_organization_s() {
        let claims = parse(
            r#"{"sub":"user_1","sid":"s","exp":1,"v":2,"fea":"org:a,oo:b,ou:c,uo:d,o:e",
                "o":{"id":"org_1","per":"x","fpm":"1,1,1"}}"#,
        );
        assert_eq!(
            permissions(claims.organization().unwrap()),
            ["org:c:x", "org:d:x", "org:e:x"]
        );
    }

    #[test]
    fn authorization_claims_of_the_wrong_type_count_as_absent() {
        let claims = parse(
            r#"{"sub":"user_1","sid":"s","exp":1,"v":"2","fva":[1.5,0],"fea":5,"pla":["u:free"],
                "o":7,"org_id":{"id":"org_1"},"org_role":1,"org_permissions":"org:a:b"}"#,
        );
        assert_eq!(claims.v(), None);
        assert_eq!(claims.fva(), None);
        assert_eq!(claims.fea(), None);
        assert_eq!(claims.pla(), None);
        assert!(claims.organization().is_none());
        for fva in [
            "[7]",
            "[7,-1,0]",
            r#"["7",-1]"#,
            "7",
            "{}",
            "[1e300,0]",
            "[2147483648,0]",
            "[0,-2147483649]",
        ] {
            let json = format!(r#"{{"sub":"user_1","sid":"s","exp":1,"fva":{fva}}}"#);
            assert_eq!(parse(&json).fva(), None, "fva {fva}");
        }
        assert_eq!(
            parse(r#"{"sub":"user_1","sid":"s","exp":1,"v":65536}"#).v(),
            None
        );
        assert_eq!(
            parse(r#"{"sub":"user_1","sid":"s","exp":1,"v":65535}"#).v(),
            Some(65_535)
        );
        let claims = parse(r#"{"sub":"user_1","sid":"s","exp":1,"v":2.0,"fva":[7.0,-1]}"#);
        assert_eq!((claims.v(), claims.fva()), (Some(2), Some([7, -1])));
        let claims = parse(r#"{"sub":"user_1","sid":"s","exp":1,"fva":[2147483647,-2147483648]}"#);
        assert_eq!(claims.fva(), Some([2_147_483_647, -2_147_483_648]));
        // Identity claims stay strict.
        assert!(serde_json::from_str::<SessionClaims>(r#"{"sub":1,"exp":1}"#).is_err());
        assert!(serde_json::from_str::<SessionClaims>(r#"{"sub":"user_1","exp":"1"}"#).is_err());
    }
}
