//! The verified-token cache: each verified credential remembered until its
//! entry's `fresh_until` (a session token's `exp` plus the clock skew),
//! bounded by the bytes its entries take, and read without taking a lock or
//! recording anything.
//!
//! A hit is the hot path of every repeat request, so reads go to a lock-free
//! map (papaya) and touch nothing shared but the entry itself. The work of
//! keeping the cache in bounds happens on inserts, which only follow a
//! signature check: expired tokens are swept out at most once a minute, or
//! as soon as the byte budget runs out; a token that still does not fit is
//! verified but not remembered until expiring tokens make room.

use std::{
    hash::{BuildHasher, Hasher},
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::SystemTime,
};

use papaya::{Compute, Operation};

use super::entry::{ActiveRows, VerifiedToken};
use crate::{clock, token::footprint};

/// How often inserts sweep out expired tokens when the budget is not short.
/// Clerk session tokens live 60 seconds, so the map holds at most about two
/// minutes of them.
const SWEEP_INTERVAL_MS: i64 = 60_000;

/// The least time between two sweeps forced by a full budget: with the cache
/// full of live tokens, a flood of new ones must not scan it every time.
const FULL_SWEEP_GAP_MS: i64 = 1_000;

/// What the cache holds for a token.
pub(crate) enum Cached {
    /// Verified before, and unexpired.
    Hit(Arc<VerifiedToken>),
    /// Verified before, and expired since.
    Expired,
    /// Never verified, forgotten, or due to be verified again.
    Miss,
}

/// Verified tokens by their exact bytes.
pub(crate) struct TokenCache {
    map: papaya::HashMap<Box<[u8]>, Arc<VerifiedToken>, TailHash>,
    budget_bytes: u64,
    used_bytes: AtomicU64,
    last_sweep_ms: AtomicI64,
}

impl TokenCache {
    pub(crate) fn new(budget_bytes: u64) -> Self {
        Self {
            map: papaya::HashMap::with_hasher(TailHash::default()),
            budget_bytes,
            used_bytes: AtomicU64::new(0),
            last_sweep_ms: AtomicI64::new(0),
        }
    }

    /// The entry of exactly these bytes: `Hit` while it may be served at
    /// `now`; after, `Expired` if the credential expired, else `Miss` (to be
    /// verified again).
    pub(crate) fn get(&self, token: &[u8], now: SystemTime) -> Cached {
        let map = self.map.pin();
        let Some(verified) = map.get(token) else {
            return Cached::Miss;
        };
        // Entries stay until swept: the time check runs on every hit.
        if verified.fresh_until <= now {
            return if verified.expired_at(clock::now_ms()) {
                Cached::Expired
            } else {
                Cached::Miss
            };
        }
        Cached::Hit(Arc::clone(verified))
    }

    /// Remembers `verified` for `token`, and returns the entry to use: an
    /// entry another request inserted first wins, so that every request with
    /// this token shares one remembered user.
    pub(crate) fn insert(
        &self,
        token: Box<[u8]>,
        verified: Arc<VerifiedToken>,
        now_ms: i64,
    ) -> Arc<VerifiedToken> {
        let cost = entry_cost(&token, &verified);
        let last_sweep = self.last_sweep_ms.load(Ordering::Relaxed);
        let since_sweep = now_ms - last_sweep;
        if since_sweep >= SWEEP_INTERVAL_MS
            || (since_sweep >= FULL_SWEEP_GAP_MS && !self.fits(cost))
        {
            self.sweep(last_sweep, now_ms);
        }
        if !self.fits(cost) {
            return verified;
        }
        // Counted before the insert, so that a removal racing it never
        // takes the count below zero.
        self.used_bytes.fetch_add(cost, Ordering::Relaxed);
        let map = self.map.pin();
        let now = clock::at_ms(now_ms);
        // An entry no longer served (verified again now) is replaced; a
        // fresh one another request inserted first wins.
        let kept = map.compute(token, |held| match held {
            Some((_, held)) if held.fresh_until > now => Operation::Abort(Arc::clone(held)),
            _ => Operation::Insert(Arc::clone(&verified)),
        });
        match kept {
            Compute::Aborted(held) => {
                self.used_bytes.fetch_sub(cost, Ordering::Relaxed);
                held
            }
            Compute::Updated {
                old: (key, held), ..
            } => {
                self.used_bytes
                    .fetch_sub(entry_cost(key, held), Ordering::Relaxed);
                verified
            }
            Compute::Inserted(..) | Compute::Removed(..) => verified,
        }
    }

    /// Forgets every token `doomed` picks.
    pub(crate) fn forget_where(&self, doomed: impl Fn(&VerifiedToken) -> bool) {
        self.remove_where(doomed);
    }

    /// The entry of exactly these bytes, expired or not.
    #[cfg(test)]
    pub(crate) fn held(&self, token: &[u8]) -> Option<Arc<VerifiedToken>> {
        self.map.pin().get(token).cloned()
    }

    /// Tokens held, and the bytes they are counted as.
    #[cfg(test)]
    pub(crate) fn usage(&self) -> (usize, u64) {
        (self.map.len(), self.used_bytes.load(Ordering::Relaxed))
    }

    fn fits(&self, cost: u64) -> bool {
        self.used_bytes.load(Ordering::Relaxed) + cost <= self.budget_bytes
    }

    /// Removes expired tokens, unless another insert swept since `last_sweep`
    /// (the time this one judged by): then it skips, so that racing inserts
    /// sweep once, not once each.
    fn sweep(&self, last_sweep: i64, now_ms: i64) {
        if self
            .last_sweep_ms
            .compare_exchange(last_sweep, now_ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let now = clock::at_ms(now_ms);
        self.remove_where(|verified| verified.fresh_until <= now);
    }

    /// Forgets the entries `doomed` picks. An entry whose verification
    /// cost a call (an opaque machine credential) is not removed but
    /// replaced by a copy with no resolution: its next request resolves its
    /// rows again, which reads what changed, without asking the Backend API
    /// again. A resolution racing this lands in the entry replaced, which
    /// nothing serves any more.
    fn remove_where(&self, doomed: impl Fn(&VerifiedToken) -> bool) {
        let map = self.map.pin();
        let keys: Vec<&Box<[u8]>> = map
            .iter()
            .filter(|(_, verified)| doomed(verified))
            .map(|(key, _)| key)
            .collect();
        for key in keys {
            // Only the entry that was judged: one inserted since stays.
            let outcome = map.compute(key.clone(), |held| match held {
                Some((_, held)) if doomed(held) => match held.unresolved_copy() {
                    Some(copy) => Operation::Insert(Arc::new(copy)),
                    None => Operation::Remove,
                },
                _ => Operation::Abort(()),
            });
            if let Compute::Removed(key, verified) = outcome {
                self.used_bytes
                    .fetch_sub(entry_cost(key, verified), Ordering::Relaxed);
            }
        }
    }
}

/// Bytes the map takes for an entry besides what the entry points to: its
/// node (the key and the value, side by side) and its share of the table's
/// slots, which papaya keeps at most half full (measured in
/// `benches/layer.rs`, memory per entry).
const MAP_ENTRY: usize = footprint::allocation(size_of::<(Box<[u8]>, Arc<VerifiedToken>)>()) + 24;

/// The bytes an entry is counted as against the budget: the token's text,
/// the shared entry (its reference counts, the remembered rows, the claims'
/// fixed part), what the claims hold on the heap, the rows of an active
/// organization (counted whenever the token names one, though only a layer
/// that resolves organizations keeps them), and [`MAP_ENTRY`].
fn entry_cost(token: &[u8], verified: &VerifiedToken) -> u64 {
    let organization_rows = if verified.proof.organization().is_some() {
        footprint::allocation(size_of::<ActiveRows>())
    } else {
        0
    };
    let bytes = footprint::allocation(token.len())
        + footprint::shared::<VerifiedToken>(verified.proof.heap_bytes())
        + organization_rows
        + MAP_ENTRY;
    bytes as u64
}

/// Bytes of a token's end that its hash covers.
const HASHED_TAIL: usize = 32;

/// Hashes a token by its length and its last [`HASHED_TAIL`] bytes only,
/// with foldhash (seeded per process), instead of all 700 bytes and more.
///
/// A token ends with its RS256 signature, whose bytes only the signing key
/// can produce and which look random, and only tokens whose signature checked
/// out are ever inserted: keys spread like a full hash's, and a client cannot
/// pile entries into one bucket. Equality still compares every byte.
#[derive(Clone, Default)]
struct TailHash(foldhash::quality::RandomState);

impl BuildHasher for TailHash {
    type Hasher = TailHasher;

    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.0.build_hasher())
    }
}

struct TailHasher(foldhash::quality::FoldHasher<'static>);

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0
            .write(&bytes[bytes.len().saturating_sub(HASHED_TAIL)..]);
    }

    fn write_usize(&mut self, length: usize) {
        self.0.write_usize(length);
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::token::SessionClaims;

    const NOW_MS: i64 = 1_700_000_000_000;

    fn at(ms: i64) -> SystemTime {
        clock::at_ms(ms)
    }

    fn verified(sub: &str, exp_ms: i64) -> Arc<VerifiedToken> {
        let claims: SessionClaims = serde_json::from_value(serde_json::json!({
            "sub": sub,
            "sid": "sess_1",
            "iss": "https://clerk.example.test",
            "exp": exp_ms / 1000,
            "iat": exp_ms / 1000 - 60,
        }))
        .unwrap();
        Arc::new(VerifiedToken::session(claims, 5_000))
    }

    fn token(n: usize) -> Box<[u8]> {
        format!("header.payload.signature-{n:0>40}")
            .into_bytes()
            .into_boxed_slice()
    }

    /// What the entry of `token(n)` for any of the test users is counted as.
    fn cost(n: usize) -> u64 {
        entry_cost(&token(n), &verified("user_a", NOW_MS))
    }

    #[test]
    fn entries_are_counted_at_what_they_were_measured_to_take() {
        // The shapes of token `benches/layer.rs` measures, and what the
        // allocator held for each (BENCHMARKS.md, memory per entry).
        let user = format!("user_{:027}", 7);
        let lean = crate::testing::session_claims("https://clerk.bench.example", &user, 3600);
        let mut full = lean.clone();
        full["azp"] = json!("https://app.bench.example");
        full["fva"] = json!([0, -1]);
        full["jti"] = json!("j".repeat(20));
        let mut organization = lean.clone();
        organization["o"] = json!({
            "id": format!("org_{:027}", 7),
            "slg": "acme",
            "rol": "admin",
            "per": "manage,read",
            "fpm": "3",
        });
        organization["fea"] = json!("o:billing");
        let key = crate::testing::SigningKey::generate("ins_bench");
        // Verification has the claims share the configured issuer's text.
        let issuer = Arc::new(String::from("https://clerk.bench.example"));
        // The benchmark's layer does not resolve organizations; one that
        // does boxes the rows of the active organization, which the count
        // includes for every token that names one.
        let rows = footprint::allocation(size_of::<ActiveRows>()) as u64;
        for (claims, held) in [(lean, 985), (full, 1_148), (organization, 1_772 + rows)] {
            let token = key.sign(&claims);
            let mut claims: SessionClaims = serde_json::from_value(claims).unwrap();
            claims.share_issuer(&issuer);
            let verified = VerifiedToken::session(claims, 0);
            let cost = entry_cost(token.as_bytes(), &verified);
            let off = cost.abs_diff(held) as f64 / held as f64;
            assert!(off <= 0.03, "counted {cost}, held {held}");
        }
    }

    #[test]
    fn hits_only_the_exact_bytes() {
        let cache = TokenCache::new(1 << 20);
        let entry = verified("user_a", NOW_MS + 60_000);
        cache.insert(token(1), Arc::clone(&entry), NOW_MS);
        assert!(Arc::ptr_eq(&cache.held(&token(1)).unwrap(), &entry));
        assert!(cache.held(&token(2)).is_none());
        // Same tail, different start: the hash collides, the bytes do not.
        assert!(cache.held(&[b"X", &token(1)[1..]].concat()).is_none());
        assert!(cache.held(&token(1)[1..]).is_none());
    }

    #[test]
    fn a_hit_is_checked_against_its_expiry() {
        let cache = TokenCache::new(1 << 20);
        cache.insert(token(1), verified("user_a", NOW_MS + 1_000), NOW_MS);
        assert!(matches!(cache.get(&token(1), at(NOW_MS)), Cached::Hit(_)));
        // Within the skew past `exp`, then expired.
        assert!(matches!(
            cache.get(&token(1), at(NOW_MS + 5_999)),
            Cached::Hit(_)
        ));
        assert!(matches!(
            cache.get(&token(1), at(NOW_MS + 6_000)),
            Cached::Expired
        ));
        assert!(matches!(cache.get(&token(2), at(NOW_MS)), Cached::Miss));
    }

    #[test]
    fn the_first_insert_wins() {
        let cache = TokenCache::new(1 << 20);
        let first = verified("user_a", NOW_MS + 60_000);
        let second = verified("user_a", NOW_MS + 60_000);
        let kept = cache.insert(token(1), Arc::clone(&first), NOW_MS);
        assert!(Arc::ptr_eq(&kept, &first));
        let kept = cache.insert(token(1), second, NOW_MS);
        assert!(Arc::ptr_eq(&kept, &first));
        assert_eq!(cache.usage(), (1, cost(1)));
    }

    #[test]
    fn a_full_budget_sweeps_expired_tokens_then_refuses() {
        let size = cost(0);
        let cache = TokenCache::new(2 * size);
        cache.insert(token(1), verified("user_a", NOW_MS - 10_000), NOW_MS);
        cache.insert(token(2), verified("user_b", NOW_MS + 60_000), NOW_MS);
        assert_eq!(cache.usage(), (2, 2 * size));
        // Full, but swept less than a second ago: not remembered.
        cache.insert(token(3), verified("user_c", NOW_MS + 60_000), NOW_MS + 999);
        assert!(cache.held(&token(3)).is_none());
        // A second later, the expired token makes room for the third.
        cache.insert(
            token(3),
            verified("user_c", NOW_MS + 60_000),
            NOW_MS + 1_000,
        );
        assert!(cache.held(&token(1)).is_none());
        assert!(cache.held(&token(3)).is_some());
        // Full of live tokens: the fourth is not remembered, nothing is lost.
        let fourth = verified("user_d", NOW_MS + 60_000);
        let kept = cache.insert(token(4), Arc::clone(&fourth), NOW_MS + 2_000);
        assert!(Arc::ptr_eq(&kept, &fourth));
        assert!(cache.held(&token(4)).is_none());
        assert!(cache.held(&token(2)).is_some() && cache.held(&token(3)).is_some());
        assert_eq!(cache.usage(), (2, 2 * size));
    }

    #[test]
    fn expired_tokens_are_swept_once_a_minute() {
        let cache = TokenCache::new(1 << 20);
        cache.insert(token(1), verified("user_a", NOW_MS + 1_000), NOW_MS);
        cache.insert(
            token(2),
            verified("user_a", NOW_MS + 1_000),
            NOW_MS + 30_000,
        );
        assert_eq!(cache.usage().0, 2);
        cache.insert(
            token(3),
            verified("user_b", NOW_MS + 120_000),
            NOW_MS + 60_000,
        );
        assert_eq!(cache.usage(), (1, cost(3)));
    }

    #[test]
    fn racing_inserts_sweep_once() {
        let cache = TokenCache::new(1 << 20);
        cache.insert(token(1), verified("user_a", NOW_MS + 60_000), NOW_MS);
        // Both judged by the same last sweep: the first sweeps, the second
        // finds it done and leaves the map alone.
        let judged_by = cache.last_sweep_ms.load(Ordering::Relaxed);
        cache.sweep(judged_by, NOW_MS + 120_000);
        cache.insert(token(2), verified("user_b", NOW_MS), NOW_MS + 120_000);
        cache.sweep(judged_by, NOW_MS + 120_001);
        assert!(cache.held(&token(1)).is_none());
        assert!(cache.held(&token(2)).is_some());
    }

    #[test]
    fn forgets_one_users_tokens() {
        let cache = TokenCache::new(1 << 20);
        cache.insert(token(1), verified("user_a", NOW_MS + 60_000), NOW_MS);
        cache.insert(token(2), verified("user_b", NOW_MS + 60_000), NOW_MS);
        cache.insert(token(3), verified("user_a", NOW_MS + 60_000), NOW_MS);
        cache.forget_where(|verified| verified.proof.user() == Some("user_a"));
        assert!(cache.held(&token(1)).is_none() && cache.held(&token(3)).is_none());
        assert!(cache.held(&token(2)).is_some());
        assert_eq!(cache.usage(), (1, cost(2)));
    }
}
