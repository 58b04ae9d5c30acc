//! What one layer remembers: verified tokens, users, and the ledger of what
//! was forgotten. Every clone of the layer shares it, and so does the
//! layer's [`Evictor`](crate::eviction::Evictor), the only way anything is
//! forgotten before it expires.

use crate::{config::Config, eviction::Ledger, token::cache::TokenCache, user_cache::UserCache};

pub(crate) struct Caches {
    /// `None` when the configuration disables it: every request is verified.
    pub(crate) tokens: Option<TokenCache>,
    pub(crate) users: UserCache,
    pub(crate) ledger: Ledger,
}

impl Caches {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            tokens: (config.token_cache_bytes > 0)
                .then(|| TokenCache::new(config.token_cache_bytes, config.skew_ms())),
            users: UserCache::new(config.user_cache_capacity, config.user_cache_ttl),
            ledger: Ledger::default(),
        }
    }
}
