//! Clerk's wire format: the claims as they arrive, read into
//! [`SessionClaims`] (both token versions, the authorization claims
//! leniently).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{
    SessionClaims,
    layout::{ClaimsTooLong, Part, Present, pack},
    structured::{Actor, Billing, Scoped, Structured},
};
use crate::token::organization::ActiveOrganization;

/// The claims as they arrive; authorization claims as plain JSON, read
/// into [`SessionClaims`] by its `From` conversion.
#[derive(Deserialize)]
pub(super) struct RawClaims {
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
