//! Authorization from the session token alone, decided as Clerk's SDKs
//! decide `has()`.
//!
//! Build a [`Requirement`] once (a role, permissions, features, a plan, a
//! recent verification) and ask [`SessionClaims::has`] on each request. Each
//! check reads what was decoded when the token was verified: no network, no
//! database and no allocation.
//!
//! # What the session token carries
//!
//! - The **active organization** only: its id, the user's role in it and
//!   the user's custom permissions in it. A role or permission requirement
//!   never passes while the user has no active organization, whatever
//!   organizations they belong to.
//! - **System permissions are never in session tokens** (`org:sys_profile:manage`,
//!   `org:sys_memberships:read`, `org:sys_billing:manage`, …), so a
//!   requirement of one never passes here. Require the role that holds it
//!   instead (for example `org:admin`).
//! - With Clerk Billing, a custom permission `org:<feature>:<permission>` is
//!   in the token only while `<feature>` is in the organization's plan.
//! - **Features and the plan** (`fea`, `pla`) are in version 2 tokens only.
//!   A version 1 token has none, so every feature and plan requirement fails
//!   on it, even if the token carries claims by those names (they would be
//!   the app's own, from a session-token template).
//! - **Verification ages** (`fva`): minutes since the user last verified
//!   their first and their second factor, for
//!   [`Reverification`] requirements.
//! - A snapshot: Clerk mints a new token every minute or so, so a change of
//!   role, permissions or plan is seen with the next token.
//!
//! # How a requirement is judged
//!
//! Every condition must hold; a requirement always has at least one. One
//! that passes never carries one that fails, and missing or malformed data
//! fails the conditions that need it.
//!
//! - **Role**: the token's role and the required one are compared with their
//!   `org:` prefixes normalised, so `admin`, `org:admin` and `org:org:admin`
//!   are the same role (version 1 tokens from before custom roles say
//!   `admin` or `basic_member`).
//! - **Permission**: the required permission, given exactly one `org:`
//!   prefix, must be one the token lists, as the token spells it.
//! - **Feature** and **plan**: `scope:name` with the scope `o`, `org` or
//!   `organization` (the organization's), `u` or `user` (the user's), or no
//!   scope (either). Any other scope never passes. Text after a second colon
//!   is ignored (`o:reports:x` asks for `reports`), and an empty name after
//!   the scope asks for a feature named like the scope (`o:` asks for `o`),
//!   both as Clerk's SDKs read them.
//! - **Reverification**: see [`Reverification`].
//!
//! Clerk's `has()` allows one condition of each kind; here asking for two of
//! the same kind requires both.
//!
//! Where Clerk's SDKs would accept claims no Clerk instance mints, this
//! crate fails closed: an organization id, role or list that is not a
//! string (or an array) counts as absent; a verification age that is not a
//! whole number within 32 bits (some 4,000 years of minutes) makes `fva`
//! unusable; and an `fea` that cannot be read fails
//! plan requirements as well as feature requirements (Clerk's SDKs throw
//! while reading such a token).
//!
//! A pending session (`sts: pending`) is judged like any other: the layer
//! refuses pending sessions unless
//! [`Config::allow_pending_sessions`](crate::Config::allow_pending_sessions)
//! lets them through.

use crate::{token::SessionClaims, token::scope::ScopedNames};

/// What a request must have to go ahead: organization role and
/// permissions, features, a plan, a recent verification. Checked with
/// [`SessionClaims::has`].
///
/// Start from one condition and add others; every one must hold. See the
/// [module documentation](self) for how each kind is judged.
///
/// ```
/// use ensure_user::{
///     Requirement,
///     authorization::Reverification,
///     clerk::SessionClaims,
/// };
///
/// let manage_billing = Requirement::role("org:admin")
///     .and_permission("org:billing:manage")
///     .and_reverification(Reverification::STRICT);
///
/// // The claims a version 2 token carries for an admin of `org_1` who
/// // verified their second factor three minutes ago.
/// let claims: SessionClaims = serde_json::from_value(serde_json::json!({
///     "sub": "user_1", "sid": "sess_1", "exp": 1_700_000_000, "v": 2,
///     "fea": "o:billing", "pla": "o:pro", "fva": [3, 3],
///     "o": { "id": "org_1", "rol": "admin", "per": "manage,read", "fpm": "3" },
/// }))?;
/// assert!(claims.has(&manage_billing));
/// assert!(claims.has(&Requirement::plan("o:pro").and_feature("billing")));
/// assert!(!claims.has(&Requirement::role("org:member")));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    /// The role without any leading `org:`.
    Role(Box<str>),
    /// The permission with exactly one leading `org:`.
    Permission(Box<str>),
    Feature(Scoped),
    Plan(Scoped),
    Reverification(Reverification),
}

/// A feature or plan asked for, with the lists it may be found in.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scoped {
    Org(Box<str>),
    User(Box<str>),
    Either(Box<str>),
    /// An unknown scope: never found.
    Nowhere,
}

impl Requirement {
    /// The user's role in the active organization must be `role`
    /// (`org:admin`; `admin` is the same role).
    pub fn role(role: impl AsRef<str>) -> Self {
        Self::from(Condition::Role(without_org_prefixes(role.as_ref()).into()))
    }

    /// The token must list `permission` (`org:billing:manage`) for the
    /// active organization. System permissions (`org:sys_…`) are never in
    /// session tokens: require a role instead.
    pub fn permission(permission: impl AsRef<str>) -> Self {
        let normalised = format!("org:{}", without_org_prefixes(permission.as_ref()));
        Self::from(Condition::Permission(normalised.into()))
    }

    /// The token must list `feature` (`o:reports`, `user:export`, or
    /// `reports` from either list). Version 2 tokens only.
    pub fn feature(feature: impl AsRef<str>) -> Self {
        Self::from(Condition::Feature(Scoped::parse(feature.as_ref())))
    }

    /// The token's plan must be `plan` (`o:pro`, `u:free`, or `pro` for
    /// either). Version 2 tokens only.
    pub fn plan(plan: impl AsRef<str>) -> Self {
        Self::from(Condition::Plan(Scoped::parse(plan.as_ref())))
    }

    /// The user must have verified recently enough.
    pub fn reverification(reverification: Reverification) -> Self {
        Self::from(Condition::Reverification(reverification))
    }

    /// This requirement, and a role as [`role`](Self::role) asks.
    #[must_use]
    pub fn and_role(self, role: impl AsRef<str>) -> Self {
        self.and(Self::role(role))
    }

    /// This requirement, and a permission as [`permission`](Self::permission) asks.
    #[must_use]
    pub fn and_permission(self, permission: impl AsRef<str>) -> Self {
        self.and(Self::permission(permission))
    }

    /// This requirement, and a feature as [`feature`](Self::feature) asks.
    #[must_use]
    pub fn and_feature(self, feature: impl AsRef<str>) -> Self {
        self.and(Self::feature(feature))
    }

    /// This requirement, and a plan as [`plan`](Self::plan) asks.
    #[must_use]
    pub fn and_plan(self, plan: impl AsRef<str>) -> Self {
        self.and(Self::plan(plan))
    }

    /// This requirement, and a recent verification as
    /// [`reverification`](Self::reverification) asks.
    #[must_use]
    pub fn and_reverification(self, reverification: Reverification) -> Self {
        self.and(Self::reverification(reverification))
    }

    /// Both requirements: every condition of each.
    #[must_use]
    pub fn and(mut self, other: Self) -> Self {
        self.conditions.extend(other.conditions);
        self
    }
}

impl From<Condition> for Requirement {
    fn from(condition: Condition) -> Self {
        Self {
            conditions: vec![condition],
        }
    }
}

impl SessionClaims {
    /// Whether these claims meet `requirement`, decided from the token
    /// alone as Clerk's `has()` decides it: every condition must hold, and
    /// missing or malformed claims fail the conditions that need them. See
    /// [`authorization`](crate::authorization) for what a session token
    /// can tell.
    pub fn has(&self, requirement: &Requirement) -> bool {
        !self.sub().is_empty()
            && !requirement.conditions.is_empty()
            && requirement
                .conditions
                .iter()
                .all(|condition| condition.holds(self))
    }
}

impl Condition {
    fn holds(&self, claims: &SessionClaims) -> bool {
        match self {
            Self::Role(role) => claims.organization().is_some_and(|org| {
                org.role()
                    .is_some_and(|held| without_org_prefixes(held) == &**role)
            }),
            Self::Permission(permission) => claims
                .organization()
                .is_some_and(|org| org.has_permission(permission)),
            Self::Feature(feature) => claims
                .billing()
                .and_then(|billing| billing.features.as_ref())
                .is_some_and(|features| feature.is_in(features)),
            Self::Plan(plan) => claims
                .billing()
                .and_then(|billing| billing.plans.as_ref())
                .is_some_and(|plans| plan.is_in(plans)),
            Self::Reverification(reverification) => reverification.is_met(claims.fva()),
        }
    }
}

impl Scoped {
    /// Reads `scope:name` as Clerk's SDKs do: split on every colon, the
    /// first part the scope and the second the name (an empty name falls
    /// back to the scope), and without a colon, a name from either list.
    fn parse(wanted: &str) -> Self {
        let mut parts = wanted.split(':');
        let scope = parts.next().unwrap_or_default();
        let Some(name) = parts.next() else {
            return Self::Either(scope.into());
        };
        let name = if name.is_empty() { scope } else { name };
        match scope {
            "o" | "org" | "organization" => Self::Org(name.into()),
            "u" | "user" => Self::User(name.into()),
            _ => Self::Nowhere,
        }
    }

    fn is_in(&self, claim: &ScopedNames) -> bool {
        let listed = |list: &[Box<str>], name: &str| list.iter().any(|item| **item == *name);
        match self {
            Self::Org(name) => listed(&claim.org, name),
            Self::User(name) => listed(&claim.user, name),
            Self::Either(name) => listed(&claim.org, name) || listed(&claim.user, name),
            Self::Nowhere => false,
        }
    }
}

/// A role in Clerk's normal form: exactly one leading `org:` (`admin`,
/// `org:admin` and `org:org:admin` are all `org:admin`), as it is stored.
pub(crate) fn normalized_role(role: &str) -> String {
    format!("org:{}", without_org_prefixes(role))
}

/// `text` without any run of leading `org:`: Clerk's normal form of a role
/// or permission is `org:` followed by this.
fn without_org_prefixes(mut text: &str) -> &str {
    while let Some(rest) = text.strip_prefix("org:") {
        text = rest;
    }
    text
}

/// How recently the user must have verified, by factor: Clerk's
/// reverification levels and presets.
///
/// Judged from the token's `fva` claim, the minutes since the user last
/// verified each factor (`-1`: never, or no second factor set up). A
/// requirement fails without a usable `fva`: absent, not two whole numbers
/// within 32 bits, or a number that is neither `-1` nor at least `0`, or
/// both `-1`. A factor
/// is fresh when its age is less than `after_minutes` (strictly).
///
/// A user without a second factor is judged on their first factor for the
/// second-factor and multi-factor levels, as Clerk does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reverification {
    level: VerificationLevel,
    after_minutes: u32,
}

/// Which factors a [`Reverification`] asks to be fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VerificationLevel {
    /// The first factor (password, email code, …).
    FirstFactor,
    /// The second factor, or the first for users without one.
    SecondFactor,
    /// Both factors, or the first for users without a second one.
    MultiFactor,
}

impl Reverification {
    /// Clerk's `strict_mfa`: both factors within 10 minutes.
    pub const STRICT_MFA: Self = Self::new(VerificationLevel::MultiFactor, 10);
    /// Clerk's `strict`: the second factor within 10 minutes.
    pub const STRICT: Self = Self::new(VerificationLevel::SecondFactor, 10);
    /// Clerk's `moderate`: the second factor within an hour.
    pub const MODERATE: Self = Self::new(VerificationLevel::SecondFactor, 60);
    /// Clerk's `lax`: the second factor within a day.
    pub const LAX: Self = Self::new(VerificationLevel::SecondFactor, 1_440);

    /// `level` within `after_minutes`. Zero minutes is no valid
    /// configuration in Clerk's SDKs, and a requirement of it never passes.
    pub const fn new(level: VerificationLevel, after_minutes: u32) -> Self {
        Self {
            level,
            after_minutes,
        }
    }

    /// The factors that must be fresh.
    pub const fn level(self) -> VerificationLevel {
        self.level
    }

    /// How many minutes a verification stays fresh.
    pub const fn after_minutes(self) -> u32 {
        self.after_minutes
    }

    fn is_met(self, fva: Option<[i64; 2]>) -> bool {
        let Some([first, second]) = fva else {
            return false;
        };
        let valid = |age: i64| age == -1 || age >= 0;
        if !valid(first) || !valid(second) || self.after_minutes == 0 {
            return false;
        }
        if first == -1 && second == -1 {
            return false;
        }
        let fresh = |age: i64| age != -1 && i64::from(self.after_minutes) > age;
        match self.level {
            VerificationLevel::FirstFactor => fresh(first),
            VerificationLevel::SecondFactor if second == -1 => fresh(first),
            VerificationLevel::SecondFactor => fresh(second),
            VerificationLevel::MultiFactor if second == -1 => fresh(first),
            VerificationLevel::MultiFactor => fresh(first) && fresh(second),
        }
    }
}

#[cfg(test)]
mod tests;
