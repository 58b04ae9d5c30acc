//! The ledger of what was forgotten: every answer a lookup brings back from
//! the store is checked against it before it is served or remembered, so a
//! lookup that was in flight when a user was forgotten cannot bring that
//! user back into a cache, however long it took.
//!
//! Forgetting is numbered. A lookup notes the number current when it began
//! and stamps what it loads with it; a forget takes the next number and
//! records it in the user's bucket (users hash into a fixed set of buckets,
//! so memory stays bounded and nothing ever has to be pruned). An answer is
//! stale when its user's bucket, or "everything", was forgotten at or after
//! its stamp. Sharing a bucket can only make an answer look stale (it is
//! then loaded again), never make a stale one look good.

use std::{
    hash::BuildHasher,
    sync::atomic::{AtomicU64, Ordering::SeqCst},
};

/// Buckets users hash into: a forget makes one in this many cached users
/// load again when next asked for, whoever they are.
const BUCKETS: usize = 1024;

/// "Never": a bucket no forget has touched.
const NEVER: u64 = 0;

/// Numbered forgetting, lock-free. All operations are sequentially
/// consistent, so a forget and a check are ordered one way or the other.
pub(crate) struct Ledger {
    /// The number the next forget takes; numbers start at 1.
    next: AtomicU64,
    /// When everything was last forgotten.
    everything: AtomicU64,
    /// When some user of each bucket was last forgotten.
    buckets: Box<[AtomicU64]>,
    hasher: foldhash::quality::RandomState,
    /// How many times everything was forgotten: the repeat path trusts a
    /// token's remembered user only under the generation it was confirmed in.
    generation: AtomicU64,
}

impl Default for Ledger {
    fn default() -> Self {
        Self {
            next: AtomicU64::new(NEVER + 1),
            everything: AtomicU64::new(NEVER),
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(NEVER)).collect(),
            hasher: foldhash::quality::RandomState::default(),
            generation: AtomicU64::new(0),
        }
    }
}

impl Ledger {
    /// The stamp for what a lookup beginning now loads.
    pub(crate) fn stamp(&self) -> u64 {
        self.next.load(SeqCst)
    }

    /// The generation to remember `user` under, if an answer about them
    /// stamped `stamp` is still good: `None` when the user (or another user
    /// of their bucket), or everything, was forgotten since.
    pub(crate) fn confirm(&self, user: &str, stamp: u64) -> Option<u64> {
        // Read first: a forget of everything after this read then also
        // moves the generation on, and the remembered user is not trusted.
        let generation = self.generation.load(SeqCst);
        let forgotten = |at: &AtomicU64| at.load(SeqCst) >= stamp;
        if forgotten(&self.everything) || forgotten(self.bucket(user)) {
            return None;
        }
        Some(generation)
    }

    /// The current generation, for the repeat path.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(SeqCst)
    }

    /// Records that `user` is forgotten from now on. Call it before evicting
    /// them from the caches.
    pub(crate) fn forget_user(&self, user: &str) {
        let at = self.next.fetch_add(1, SeqCst);
        self.bucket(user).fetch_max(at, SeqCst);
    }

    /// Records that everything is forgotten from now on.
    pub(crate) fn forget_all(&self) {
        let at = self.next.fetch_add(1, SeqCst);
        self.everything.fetch_max(at, SeqCst);
        self.generation.fetch_add(1, SeqCst);
    }

    fn bucket(&self, user: &str) -> &AtomicU64 {
        // Truncation is the point: any bits pick a bucket.
        #[allow(clippy::cast_possible_truncation)]
        let index = self.hasher.hash_one(user) as usize % BUCKETS;
        &self.buckets[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_loaded_before_a_forget_is_stale() {
        let ledger = Ledger::default();
        let stamp = ledger.stamp();
        assert_eq!(ledger.confirm("user_a", stamp), Some(0));
        ledger.forget_user("user_a");
        assert_eq!(ledger.confirm("user_a", stamp), None);
        // A lookup that began after the forget loads a fresh answer.
        assert_eq!(ledger.confirm("user_a", ledger.stamp()), Some(0));
    }

    #[test]
    fn other_users_stay_good_but_for_their_bucket() {
        let ledger = Ledger::default();
        let stamp = ledger.stamp();
        ledger.forget_user("user_a");
        let good = (0..100)
            .filter(|n| ledger.confirm(&format!("user_{n}"), stamp).is_some())
            .count();
        assert!(
            good >= 95,
            "only users sharing user_a's bucket reload: {good}"
        );
    }

    #[test]
    fn forgetting_everything_makes_every_older_answer_stale() {
        let ledger = Ledger::default();
        let stamp = ledger.stamp();
        ledger.forget_all();
        assert_eq!(ledger.generation(), 1);
        assert_eq!(ledger.confirm("user_b", stamp), None);
        assert_eq!(ledger.confirm("user_b", ledger.stamp()), Some(1));
    }
}
