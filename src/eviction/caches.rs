//! What one layer remembers: verified tokens, the store's answers about
//! users, organizations and memberships, and the ledger of what was
//! forgotten. Every clone of the layer shares it, and so does the layer's
//! [`Evictor`](super::Evictor), the only way anything is forgotten before it
//! expires.

use super::{
    Ledger,
    ended::{Bans, EndedSessions},
};
use crate::{
    answers::Answers,
    config::Config,
    store::{MembershipResolution, OrganizationResolution, Resolution},
    telemetry,
    token::cache::TokenCache,
};

pub(crate) struct Caches {
    /// `None` when the configuration disables it: every request is verified.
    pub(crate) tokens: Option<TokenCache>,
    /// By Clerk user id.
    pub(crate) users: Answers<Resolution>,
    /// By Clerk organization id.
    pub(crate) organizations: Answers<OrganizationResolution>,
    /// By [`membership_key`].
    pub(crate) memberships: Answers<MembershipResolution>,
    pub(crate) ledger: Ledger,
    /// Sessions ended, refused until none of their tokens can be valid.
    pub(crate) ended: EndedSessions,
    /// Users blocked (banned), by the newest state heard of.
    pub(crate) bans: Bans,
    /// How long after a session ends one of its tokens can still be
    /// accepted: the longest token lifetime, and the clock skew twice (on
    /// the token's `iat` and on its `exp`).
    pub(crate) session_afterlife_ms: i64,
}

impl Caches {
    pub(crate) fn new(config: &Config) -> Self {
        let (capacity, ttl) = (config.user_cache_capacity, config.user_cache_ttl);
        Self {
            tokens: (config.token_cache_bytes > 0)
                .then(|| TokenCache::new(config.token_cache_bytes)),
            users: Answers::new(capacity, ttl, telemetry::user_cache),
            organizations: Answers::new(capacity, ttl, telemetry::organization_cache),
            memberships: Answers::new(capacity, ttl, telemetry::membership_cache),
            ledger: Ledger::default(),
            ended: EndedSessions::default(),
            bans: Bans::default(),
            session_afterlife_ms: config.max_token_lifetime_ms() + 2 * config.skew_ms(),
        }
    }
}

/// The cache key of a user's membership of an organization: both Clerk ids,
/// apart by a space (which no Clerk id holds).
pub(crate) fn membership_key(organization: &str, user: &str) -> String {
    format!("{organization} {user}")
}
