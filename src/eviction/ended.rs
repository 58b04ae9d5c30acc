//! Sessions that ended (signed out, removed, revoked) and users blocked
//! (banned), as this process knows them: checked by every lookup before an
//! answer is served, so a token of an ended session or a blocked user is
//! refused from the moment the event is recorded, new tokens included.
//!
//! Both are small maps read without a lock. An ended session is kept until
//! no token of it can still be valid; a ban is kept with the version of the
//! user it came from, so that an older event delivered late never undoes a
//! newer one.

use std::sync::atomic::{AtomicI64, Ordering};

/// How often expired ended sessions are swept out, at most.
const SWEEP_INTERVAL_MS: i64 = 60_000;

/// Ended sessions, each until the last moment a token of it could be valid.
#[derive(Default)]
pub(crate) struct EndedSessions {
    until_ms: papaya::HashMap<Box<str>, i64>,
    last_sweep_ms: AtomicI64,
}

impl EndedSessions {
    /// Records that `session` ended; it is refused until `until_ms`.
    pub(crate) fn insert(&self, session: &str, until_ms: i64, now_ms: i64) {
        self.sweep(now_ms);
        let map = self.until_ms.pin();
        map.update_or_insert(Box::from(session), |kept| (*kept).max(until_ms), until_ms);
    }

    /// Whether `session` ended (and tokens of it could still be valid).
    pub(crate) fn contains(&self, session: &str, now_ms: i64) -> bool {
        self.until_ms
            .pin()
            .get(session)
            .is_some_and(|&until| until > now_ms)
    }

    /// Removes the sessions no token of which can be valid any more, at
    /// most once a minute.
    fn sweep(&self, now_ms: i64) {
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if now_ms - last < SWEEP_INTERVAL_MS
            || self
                .last_sweep_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.until_ms.pin().retain(|_, &until| until > now_ms);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.until_ms.len()
    }
}

/// Whether each user is blocked, with the version (Clerk's `updated_at`,
/// Unix ms) of the state it came from.
#[derive(Default)]
pub(crate) struct Bans {
    users: papaya::HashMap<Box<str>, (bool, i64)>,
}

impl Bans {
    /// Records that `user` is (or is no longer) blocked as of `version`;
    /// returns whether this changed what is recorded. An older version
    /// changes nothing; an equal one is applied again.
    pub(crate) fn record(&self, user: &str, blocked: bool, version: i64) -> bool {
        let map = self.users.pin();
        let outcome = map.compute(Box::from(user), |entry| match entry {
            Some((_, &(_, was_version))) if version < was_version => papaya::Operation::Abort(()),
            _ => papaya::Operation::Insert((blocked, version)),
        });
        match outcome {
            papaya::Compute::Inserted(..) => blocked,
            papaya::Compute::Updated {
                old: (_, &(was_blocked, _)),
                ..
            } => was_blocked != blocked,
            papaya::Compute::Aborted(()) | papaya::Compute::Removed(..) => false,
        }
    }

    /// Whether `user` is blocked.
    pub(crate) fn is_blocked(&self, user: &str) -> bool {
        self.users
            .pin()
            .get(user)
            .is_some_and(|&(blocked, _)| blocked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_session_is_refused_until_no_token_of_it_can_be_valid() {
        let ended = EndedSessions::default();
        ended.insert("sess_a", 1_000, 0);
        assert!(ended.contains("sess_a", 999));
        assert!(!ended.contains("sess_a", 1_000));
        assert!(!ended.contains("sess_b", 0));
        // Ended again, later: the later bound holds.
        ended.insert("sess_a", 5_000, 10);
        ended.insert("sess_a", 2_000, 20);
        assert!(ended.contains("sess_a", 4_999));
        // Swept once expired, at the next insert a minute on.
        ended.insert("sess_c", 200_000, 100_000);
        assert_eq!(ended.len(), 1);
    }

    #[test]
    fn the_newest_state_of_a_user_wins_whatever_the_order() {
        let bans = Bans::default();
        assert!(!bans.is_blocked("user_a"));
        assert!(bans.record("user_a", true, 10));
        assert!(bans.is_blocked("user_a"));
        // An older unban delivered late changes nothing.
        assert!(!bans.record("user_a", false, 5));
        assert!(bans.is_blocked("user_a"));
        assert!(bans.record("user_a", false, 20));
        assert!(!bans.is_blocked("user_a"));
        // An older ban delivered after the unban changes nothing either.
        assert!(!bans.record("user_a", true, 15));
        assert!(!bans.is_blocked("user_a"));
        // The same state again is no change.
        assert!(!bans.record("user_a", false, 20));
        assert!(!bans.record("user_b", false, 1));
    }
}
