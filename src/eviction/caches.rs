//! What one layer remembers: verified tokens, the store's answers about
//! users, organizations and memberships, and the ledger of what was
//! forgotten. Every clone of the layer shares it, and so does the layer's
//! [`Evictor`](super::Evictor), the only way anything is forgotten before it
//! expires.

use std::sync::{Arc, Mutex, PoisonError, Weak, atomic::AtomicBool};

use super::{
    Ledger,
    ended::{Bans, EndedSessions},
};
use crate::{
    answers::Answers,
    config::Config,
    principal::cache::TokenCache,
    store::{MembershipResolution, OrganizationResolution, Resolution},
    telemetry,
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
    /// What refuses a request whatever the caches above hold, shared with
    /// every copy of these caches.
    pub(crate) ledger: Arc<Ledger>,
    /// Sessions ended, refused until none of their tokens can be valid.
    pub(crate) ended: Arc<EndedSessions>,
    /// Users blocked (banned), by the newest state heard of.
    pub(crate) bans: Arc<Bans>,
    /// How long after a session ends one of its tokens can still be
    /// accepted: the longest token lifetime, and the clock skew twice (on
    /// the token's `iat` and on its `exp`).
    pub(crate) session_afterlife_ms: i64,
    /// Whether the eviction listener found that it does not hear its own
    /// channel, shared with every copy of these caches: readiness reports it.
    pub(crate) listener_deaf: Arc<AtomicBool>,
    /// These caches and every copy of them: what an evictor of any of them
    /// reaches.
    family: Family,
}

/// Caches that must forget together: a layer's, and those of a copy of
/// the layer configured differently after it was cloned (with
/// organizations, say), which serve requests as well.
type Family = Arc<Mutex<Vec<Weak<Caches>>>>;

impl Caches {
    pub(crate) fn new(config: &Config) -> Arc<Self> {
        Self::join(config, None)
    }

    /// Caches of their own for a copy of the layer that owns `original`,
    /// sharing what refuses requests (the ledger, the ended sessions, the
    /// bans) and reached by every evictor of `original`, as `original` is
    /// by the copy's.
    pub(crate) fn copy_of(original: &Self, config: &Config) -> Arc<Self> {
        Self::join(config, Some(original))
    }

    fn join(config: &Config, original: Option<&Self>) -> Arc<Self> {
        let (capacity, ttl) = (config.user_cache_capacity, config.user_cache_ttl);
        let caches = Arc::new(Self {
            tokens: (config.token_cache_bytes > 0)
                .then(|| TokenCache::new(config.token_cache_bytes)),
            users: Answers::new(capacity, ttl, telemetry::user_cache),
            organizations: Answers::new(capacity, ttl, telemetry::organization_cache),
            memberships: Answers::new(capacity, ttl, telemetry::membership_cache),
            ledger: original.map_or_else(Arc::default, |o| Arc::clone(&o.ledger)),
            ended: original.map_or_else(Arc::default, |o| Arc::clone(&o.ended)),
            bans: original.map_or_else(Arc::default, |o| Arc::clone(&o.bans)),
            session_afterlife_ms: config.max_token_lifetime_ms() + 2 * config.skew_ms(),
            listener_deaf: original.map_or_else(Arc::default, |o| Arc::clone(&o.listener_deaf)),
            family: original.map_or_else(Family::default, |o| Arc::clone(&o.family)),
        });
        let mut family = caches.family.lock().unwrap_or_else(PoisonError::into_inner);
        family.retain(|member| member.strong_count() > 0);
        family.push(Arc::downgrade(&caches));
        drop(family);
        caches
    }

    /// Each of the family's caches still in use: these and their copies.
    pub(crate) fn family(&self) -> Vec<Arc<Self>> {
        let family = self.family.lock().unwrap_or_else(PoisonError::into_inner);
        family.iter().filter_map(Weak::upgrade).collect()
    }
}

/// The cache key of a user's membership of an organization: both Clerk ids,
/// apart by a space (which no Clerk id holds).
pub(crate) fn membership_key(organization: &str, user: &str) -> String {
    format!("{organization} {user}")
}
