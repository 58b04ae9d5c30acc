//! The ledger of what was forgotten: every answer a lookup brings back from
//! the store is checked against it before it is served or remembered, so a
//! lookup that was in flight when a user (an organization, a membership)
//! was forgotten cannot bring it back into a cache, however long it took.
//!
//! Forgetting is numbered. A lookup notes the number current when it began
//! and stamps what it loads with it; a forget takes the next number and
//! records it in its subject's bucket (subjects hash into a fixed set of
//! buckets, so memory stays bounded and nothing ever has to be pruned). An
//! answer is stale when its subject's bucket, or "everything", was
//! forgotten at or after its stamp. Sharing a bucket can only make an answer
//! look stale (it is then loaded again), never make a stale one look good.

use std::{
    hash::BuildHasher,
    sync::atomic::{AtomicU64, Ordering::SeqCst},
};

/// Buckets subjects hash into: a forget makes one in this many cached
/// answers load again when next asked for, whatever they are about.
const BUCKETS: usize = 1024;

/// What an answer is about: what a forget names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Subject<'a> {
    /// A Clerk user.
    User(&'a str),
    /// A Clerk organization.
    Organization(&'a str),
    /// A user's membership of an organization.
    Membership {
        organization: &'a str,
        user: &'a str,
    },
    /// A Clerk session.
    Session(&'a str),
}

/// "Never": a bucket no forget has touched.
const NEVER: u64 = 0;

/// Numbered forgetting, lock-free. All operations are sequentially
/// consistent, so a forget and a check are ordered one way or the other.
pub(crate) struct Ledger {
    /// The number the next forget takes; numbers start at 1.
    next: AtomicU64,
    /// When everything was last forgotten.
    everything: AtomicU64,
    /// When some subject of each bucket was last forgotten.
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

    /// The generation to remember answers under, if each answer (about its
    /// subject, stamped when its lookup began) is still good: `None` when
    /// one of the subjects (or another of its bucket), or everything, was
    /// forgotten since.
    pub(crate) fn confirm(&self, answers: &[(Subject<'_>, u64)]) -> Option<u64> {
        // Read first: a forget of everything after this read then also
        // moves the generation on, and what is remembered is not trusted.
        let generation = self.generation.load(SeqCst);
        let everything = self.everything.load(SeqCst);
        let good = answers.iter().all(|&(subject, stamp)| {
            everything < stamp && self.bucket(subject).load(SeqCst) < stamp
        });
        good.then_some(generation)
    }

    /// The current generation, for the repeat path.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(SeqCst)
    }

    /// Records that `subject` is forgotten from now on. Call it before
    /// evicting it from the caches.
    pub(crate) fn forget(&self, subject: Subject<'_>) {
        let at = self.next.fetch_add(1, SeqCst);
        self.bucket(subject).fetch_max(at, SeqCst);
    }

    /// Records that everything is forgotten from now on.
    pub(crate) fn forget_all(&self) {
        let at = self.next.fetch_add(1, SeqCst);
        self.everything.fetch_max(at, SeqCst);
        self.generation.fetch_add(1, SeqCst);
    }

    fn bucket(&self, subject: Subject<'_>) -> &AtomicU64 {
        // Truncation is the point: any bits pick a bucket.
        #[allow(clippy::cast_possible_truncation)]
        let index = self.hasher.hash_one(subject) as usize % BUCKETS;
        &self.buckets[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Subject<'static> = Subject::User("user_a");

    #[test]
    fn an_answer_loaded_before_a_forget_is_stale() {
        let ledger = Ledger::default();
        let stamp = ledger.stamp();
        assert_eq!(ledger.confirm(&[(A, stamp)]), Some(0));
        ledger.forget(A);
        assert_eq!(ledger.confirm(&[(A, stamp)]), None);
        // A lookup that began after the forget loads a fresh answer.
        assert_eq!(ledger.confirm(&[(A, ledger.stamp())]), Some(0));
    }

    #[test]
    fn other_subjects_stay_good_but_for_their_bucket() {
        let ledger = Ledger::default();
        let stamp = ledger.stamp();
        ledger.forget(A);
        let names: Vec<String> = (0..100).map(|n| format!("user_{n}")).collect();
        let good = names
            .iter()
            .filter(|name| ledger.confirm(&[(Subject::User(name), stamp)]).is_some())
            .count();
        assert!(
            good >= 95,
            "only subjects sharing user_a's bucket reload: {good}"
        );
    }

    #[test]
    fn every_answer_of_a_request_is_confirmed_together() {
        let ledger = Ledger::default();
        let stamp = ledger.stamp();
        let membership = Subject::Membership {
            organization: "org_1",
            user: "user_a",
        };
        let answers = [
            (A, stamp),
            (Subject::Organization("org_1"), stamp),
            (membership, stamp),
        ];
        assert_eq!(ledger.confirm(&answers), Some(0));
        ledger.forget(membership);
        assert_eq!(ledger.confirm(&answers), None);
        assert_eq!(ledger.confirm(&answers[..2]), Some(0));
    }

    #[test]
    fn forgetting_everything_makes_every_older_answer_stale() {
        let ledger = Ledger::default();
        let stamp = ledger.stamp();
        ledger.forget_all();
        assert_eq!(ledger.generation(), 1);
        assert_eq!(ledger.confirm(&[(A, stamp)]), None);
        assert_eq!(ledger.confirm(&[(A, ledger.stamp())]), Some(1));
    }
}
