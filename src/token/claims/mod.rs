//! The claims of a Clerk session token, for token versions 1 and 2: the
//! type and its accessors here, Clerk's wire format in `wire`, the compact
//! text in `layout`, the boxed structures in `structured`.

mod layout;
mod structured;
mod wire;

use std::sync::Arc;

use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use layout::{Part, Present};
pub use structured::Actor;
pub(crate) use structured::Billing;
use structured::Structured;
use wire::RawClaims;

use super::{footprint, organization::ActiveOrganization};

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
    /// # use ensure_user::clerk::SessionClaims;
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
        let features = structured::Scoped::read(Some(&Value::from(fea)));
        let mut structured = self.structured.map(|s| *s).unwrap_or_default();
        structured.billing = Billing::new(features, Some(&Value::from(pla)));
        self.structured = structured.boxed();
        self
    }
}

#[cfg(test)]
mod tests;
