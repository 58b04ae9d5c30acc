//! The claims decoded into structures of their own (the actor, the active
//! organization, the features and plans), which most tokens lack and which
//! are then boxed together behind one pointer; and how the scoped claims
//! they are read from (`fea`, `pla`) are found.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::token::{
    footprint,
    organization::ActiveOrganization,
    scope::{ScopedNames, split_by_scope},
};

/// The claims of a token decoded into structures of their own, boxed
/// together: most tokens carry none of them, and then pay one pointer.
#[derive(Clone, Default)]
pub(super) struct Structured {
    pub(super) act: Option<Box<Actor>>,
    pub(super) organization: Option<Box<ActiveOrganization>>,
    pub(super) billing: Option<Box<Billing>>,
}

impl Structured {
    /// The structures, boxed; `None` when there are none.
    pub(super) fn boxed(self) -> Option<Box<Self>> {
        let any = self.act.is_some() || self.organization.is_some() || self.billing.is_some();
        any.then(|| Box::new(self))
    }

    /// Bytes the structures hold on the heap, as [`footprint`] counts them.
    pub(super) fn heap_bytes(&self) -> usize {
        fn boxed<T>(value: Option<&T>, heap_bytes: fn(&T) -> usize) -> usize {
            value.map_or(0, |value| footprint::boxed::<T>(heap_bytes(value)))
        }
        boxed(self.act.as_deref(), Actor::heap_bytes)
            + boxed(self.organization.as_deref(), ActiveOrganization::heap_bytes)
            + boxed(self.billing.as_deref(), Billing::heap_bytes)
    }
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
    pub(super) fn new(features: Scoped, plans: Option<&Value>) -> Option<Box<Self>> {
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

/// A scoped claim (`fea`, `pla`) as found.
pub(super) enum Scoped {
    /// Absent, `null` or empty.
    Absent,
    Read(ScopedNames),
    /// Not a string, or an element without a colon.
    Unreadable,
}

impl Scoped {
    pub(super) fn read(claim: Option<&Value>) -> Self {
        match claim {
            None | Some(Value::Null) => Self::Absent,
            Some(Value::String(text)) if text.is_empty() => Self::Absent,
            Some(Value::String(text)) => split_by_scope(text).map_or(Self::Unreadable, Self::Read),
            Some(_) => Self::Unreadable,
        }
    }

    pub(super) fn usable(self) -> Option<ScopedNames> {
        match self {
            Self::Read(names) => Some(names),
            Self::Absent | Self::Unreadable => None,
        }
    }
}
