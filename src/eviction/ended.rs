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
        if claim_sweep(&self.last_sweep_ms, now_ms) {
            self.until_ms.pin().retain(|_, &until| until > now_ms);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.until_ms.len()
    }
}

/// How long a user's unblocked state is kept: long enough that an older
/// ban delivered late, out of order, is recognised as older. (The store's
/// last-write-wins rule already drops a ban older than the row; this covers
/// two deliveries racing through this process.)
const UNBLOCKED_KEPT_MS: i64 = 10 * 60_000;

/// A user's blocked state, as of a version.
#[derive(Clone, Copy)]
struct BanState {
    blocked: bool,
    /// Clerk's `updated_at` (Unix ms) of the state.
    version: i64,
    /// When this process recorded it.
    recorded_ms: i64,
    /// Whether the store holds it (in a row, or announced with the write):
    /// a state the store never got is all there is of it, and a listener's
    /// reconnect keeps it.
    in_store: bool,
}

/// Whether each user is blocked, with the version (Clerk's `updated_at`,
/// Unix ms) of the state it came from. Blocked users are kept; unblocked
/// ones for [`UNBLOCKED_KEPT_MS`].
#[derive(Default)]
pub(crate) struct Bans {
    users: papaya::HashMap<Box<str>, BanState>,
    last_sweep_ms: AtomicI64,
}

impl Bans {
    /// Records that `user` is (or is no longer) blocked as of `version`,
    /// and whether the store holds that state. Returns whether the user was
    /// blocked before, or `None` when a newer state is recorded already
    /// (nothing changes; an equal version is applied again, and is held by
    /// the store if either record says so).
    pub(crate) fn record(
        &self,
        user: &str,
        blocked: bool,
        version: i64,
        now_ms: i64,
        in_store: bool,
    ) -> Option<bool> {
        self.sweep(now_ms);
        let map = self.users.pin();
        let outcome = map.compute(Box::from(user), |entry| match entry {
            Some((_, kept)) if version < kept.version => papaya::Operation::Abort(()),
            kept => papaya::Operation::Insert(BanState {
                blocked,
                version,
                recorded_ms: now_ms,
                in_store: in_store
                    || kept.is_some_and(|(_, kept)| kept.version == version && kept.in_store),
            }),
        });
        match outcome {
            papaya::Compute::Updated { old: (_, kept), .. } => Some(kept.blocked),
            papaya::Compute::Inserted(..) => Some(false),
            papaya::Compute::Aborted(()) | papaya::Compute::Removed(..) => None,
        }
    }

    /// Forgets the states the store holds, which it can be asked for
    /// again; keeps those it never got.
    #[cfg(any(feature = "postgres", test))]
    pub(crate) fn forget_stored(&self) {
        self.users.pin().retain(|_, state| !state.in_store);
    }

    /// Whether `user` is blocked.
    pub(crate) fn is_blocked(&self, user: &str) -> bool {
        self.users
            .pin()
            .get(user)
            .is_some_and(|state| state.blocked)
    }

    /// Removes unblocked states kept long enough, at most once a minute.
    fn sweep(&self, now_ms: i64) {
        if claim_sweep(&self.last_sweep_ms, now_ms) {
            self.users
                .pin()
                .retain(|_, state| state.blocked || now_ms - state.recorded_ms < UNBLOCKED_KEPT_MS);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.users.len()
    }
}

/// Whether a sweep is due (none in the last [`SWEEP_INTERVAL_MS`]), claiming
/// it for this caller alone.
fn claim_sweep(last_sweep_ms: &AtomicI64, now_ms: i64) -> bool {
    let last = last_sweep_ms.load(Ordering::Relaxed);
    now_ms - last >= SWEEP_INTERVAL_MS
        && last_sweep_ms
            .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
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
        assert_eq!(bans.record("user_a", true, 10, 0, true), Some(false));
        assert!(bans.is_blocked("user_a"));
        // An older unban delivered late changes nothing.
        assert_eq!(bans.record("user_a", false, 5, 0, true), None);
        assert!(bans.is_blocked("user_a"));
        assert_eq!(bans.record("user_a", false, 20, 0, true), Some(true));
        assert!(!bans.is_blocked("user_a"));
        // An older ban delivered after the unban changes nothing either.
        assert_eq!(bans.record("user_a", true, 15, 0, true), None);
        assert!(!bans.is_blocked("user_a"));
        // The same state again is applied again.
        assert_eq!(bans.record("user_a", false, 20, 0, true), Some(false));
        assert_eq!(bans.record("user_b", false, 1, 0, true), Some(false));
    }

    #[test]
    fn unblocked_states_are_kept_for_a_while_blocked_ones_for_good() {
        let bans = Bans::default();
        bans.record("user_a", true, 1, 60_000, true);
        bans.record("user_b", false, 1, 60_000, true);
        assert_eq!(bans.len(), 2);
        // Swept at the next record after ten minutes.
        bans.record("user_c", true, 1, 60_000 + UNBLOCKED_KEPT_MS, true);
        assert_eq!(bans.len(), 2);
        assert!(bans.is_blocked("user_a"));
        // A late ban older than user_b's unban is no longer recognised as
        // older in memory: the store's last-write-wins rule drops it first.
        assert!(!bans.is_blocked("user_b"));
    }

    #[test]
    fn a_reconnect_forgets_only_the_states_the_store_holds() {
        let bans = Bans::default();
        bans.record("user_stored", true, 1, 0, true);
        bans.record("user_unstored", true, 1, 0, false);
        bans.record("user_retried", true, 1, 0, false);
        // svix's retry wrote it: the same version, now held by the store.
        bans.record("user_retried", true, 1, 0, true);
        bans.record("user_kept", true, 2, 0, true);
        // A failed retry of a state the store holds does not unmark it.
        bans.record("user_kept", true, 2, 0, false);
        bans.forget_stored();
        assert!(!bans.is_blocked("user_stored"));
        assert!(bans.is_blocked("user_unstored"));
        assert!(!bans.is_blocked("user_retried"));
        assert!(!bans.is_blocked("user_kept"));
    }
}
