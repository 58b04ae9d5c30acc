//! A verified token as the cache keeps it: its claims, and the local user
//! it resolved to, for the repeat path to serve without a lookup.

use std::sync::{
    OnceLock,
    atomic::{AtomicU64, Ordering},
};

use super::SessionClaims;
use crate::LocalId;

/// A token that passed verification, and the local user it resolved to.
///
/// A cache hit reads `resolved_in`, `user` and `exp_ms` and bumps the
/// reference count, so they come first (`repr(C)`): with the count they
/// share one cache line, and the claims behind them are not touched at all.
#[repr(C)]
pub(crate) struct VerifiedToken {
    /// One more than the latest user generation the local id was confirmed
    /// under (0: never), so that a repeat request needs no user-cache lookup.
    resolved_in: AtomicU64,
    /// The user's local id, from the first resolution.
    user: OnceLock<LocalId>,
    /// `exp` in milliseconds.
    pub(crate) exp_ms: i64,
    pub(crate) claims: SessionClaims,
}

impl VerifiedToken {
    pub(crate) fn new(claims: SessionClaims) -> Self {
        Self {
            resolved_in: AtomicU64::new(0),
            user: OnceLock::new(),
            exp_ms: claims.exp.saturating_mul(1000),
            claims,
        }
    }

    /// The remembered local id, if it was confirmed under `generation`.
    pub(crate) fn user(&self, generation: u64) -> Option<LocalId> {
        if self.resolved_in.load(Ordering::Acquire) != generation + 1 {
            return None;
        }
        self.user.get().copied()
    }

    /// Remembers the user this token resolved to under `generation` (read
    /// before the lookup). After a `forget_all_users` the next resolution
    /// confirms the id again; should a user's row ever have been replaced
    /// (another id), the token keeps taking the lookup path until it expires.
    pub(crate) fn remember_user(&self, generation: u64, id: LocalId) {
        if *self.user.get_or_init(|| id) == id {
            self.resolved_in.fetch_max(generation + 1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified() -> VerifiedToken {
        let claims: SessionClaims = serde_json::from_value(serde_json::json!({
            "sub": "user_a",
            "sid": "sess_a",
            "exp": 2_000_000_000,
        }))
        .unwrap();
        VerifiedToken::new(claims)
    }

    #[test]
    fn the_remembered_user_follows_the_generation() {
        let token = verified();
        assert_eq!(token.user(0), None);
        token.remember_user(0, LocalId::Int(7));
        assert_eq!(token.user(0), Some(LocalId::Int(7)));
        // `forget_all_users` moved on: void until confirmed again.
        assert_eq!(token.user(1), None);
        token.remember_user(1, LocalId::Int(7));
        assert_eq!(token.user(1), Some(LocalId::Int(7)));
        // A late answer from before does not take the token back.
        token.remember_user(0, LocalId::Int(7));
        assert_eq!(token.user(1), Some(LocalId::Int(7)));
    }

    #[test]
    fn a_different_id_is_never_served_from_the_token() {
        let token = verified();
        token.remember_user(0, LocalId::Int(7));
        token.remember_user(1, LocalId::Int(8));
        assert_eq!(token.user(1), None);
        assert_eq!(token.user(0), Some(LocalId::Int(7)));
    }
}
