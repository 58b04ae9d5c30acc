//! Answers the store gave, cached: bounded, each kept for a time to live,
//! concurrent misses for one key sharing one store call, failures never
//! cached. Each answer carries the stamp of the lookup that loaded it, for
//! the eviction ledger to judge before it is served.
//!
//! The entries live in a quick_cache (its S3-FIFO policy decides what a full
//! cache evicts, at about 170 bytes an entry); the loads in flight, one per
//! key, in a map of their own beside it.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use tokio::sync::OnceCell;

use crate::store::StoreError;

/// An answer and the ledger stamp of the lookup that loaded it.
#[derive(Debug, Clone)]
pub(crate) struct Stamped<V> {
    pub(crate) value: V,
    pub(crate) stamp: u64,
}

/// A cached answer and when it was loaded.
#[derive(Clone)]
struct Entry<V> {
    answer: Stamped<V>,
    loaded: Instant,
}

/// What one load ends in, for every caller that waited on it.
type Outcome<V> = Result<Stamped<V>, Arc<StoreError>>;

/// A load in flight: the first caller runs it, the others wait for its
/// outcome. Should the caller running it give up (its request dropped), one
/// of those waiting runs its own load in its place.
type Flight<V> = Arc<OnceCell<Outcome<V>>>;

/// One kind of answer (users, organizations, memberships) by key.
pub(crate) struct Answers<V> {
    entries: quick_cache::sync::Cache<Box<str>, Entry<V>>,
    ttl: Duration,
    /// The loads in flight by key. Checking the entries again and joining a
    /// load happen under its lock, and so do a load's inserting its answer
    /// and leaving: a caller either finds the answer or joins the load.
    flights: Mutex<HashMap<Box<str>, Flight<V>>>,
    /// Counts hits and misses for the metrics.
    count: fn(bool),
}

impl<V: Clone + Send + Sync + 'static> Answers<V> {
    pub(crate) fn new(capacity: u64, ttl: Duration, count: fn(bool)) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(usize::try_from(capacity).unwrap_or(usize::MAX)),
            ttl,
            flights: Mutex::default(),
            count,
        }
    }

    /// The cached answer for `key`, or the result of `load` stamped
    /// `stamp`; `load` runs once for all concurrent callers of one key, and
    /// they all get its answer or its failure.
    pub(crate) async fn get_or_load<F>(&self, key: &str, stamp: u64, load: F) -> Outcome<V>
    where
        F: Future<Output = Result<V, StoreError>>,
    {
        #[cfg(test)]
        crate::interleave::point("answers: get").await;
        if let Some(answer) = self.fresh(key) {
            (self.count)(true);
            return Ok(answer);
        }
        (self.count)(false);
        // Boxed, so that the large state of a miss is not carried by the
        // future of every request.
        Box::pin(self.load_once(key, stamp, load)).await
    }

    /// Whether an answer for `key` is cached and `test` holds of it.
    pub(crate) fn holds(&self, key: &str, test: impl Fn(&V) -> bool) -> bool {
        self.fresh(key).is_some_and(|answer| test(&answer.value))
    }

    /// Forgets one key's answer, so that the next request asks the store.
    /// A load in flight still inserts what it loads: the ledger's stamps
    /// judge such an answer before it is served.
    pub(crate) fn invalidate(&self, key: &str) {
        self.entries.remove(key);
    }

    /// Forgets every answer.
    pub(crate) fn clear(&self) {
        self.entries.clear();
    }

    /// The answer cached for `key`, unless its time to live has passed.
    fn fresh(&self, key: &str) -> Option<Stamped<V>> {
        self.entries
            .get(key)
            .filter(|entry| entry.loaded.elapsed() < self.ttl)
            .map(|entry| entry.answer)
    }

    /// Joins the load in flight for `key`, or starts one: the answer cached
    /// since the miss, else the outcome of one load for every caller.
    async fn load_once<F>(&self, key: &str, stamp: u64, load: F) -> Outcome<V>
    where
        F: Future<Output = Result<V, StoreError>>,
    {
        #[cfg(test)]
        crate::interleave::point("answers: join or start a load").await;
        let flight = {
            let mut flights = self.flights();
            if let Some(answer) = self.fresh(key) {
                return Ok(answer);
            }
            // Joining a load in flight allocates nothing; only a new load
            // takes a copy of the key.
            if let Some(flight) = flights.get(key) {
                Arc::clone(flight)
            } else {
                let flight = Flight::default();
                flights.insert(Box::from(key), Arc::clone(&flight));
                flight
            }
        };
        let outcome = flight.get_or_init(|| async {
            let outcome = load
                .await
                .map(|value| Stamped { value, stamp })
                .map_err(Arc::new);
            #[cfg(test)]
            crate::interleave::point("answers: keep the loaded answer").await;
            let mut flights = self.flights();
            // This load leaves the loads in flight, unless one started
            // since holds the key; its copy of the key then keys the answer.
            let key_copy = if flights
                .get(key)
                .is_some_and(|in_flight| Arc::ptr_eq(in_flight, &flight))
            {
                flights.remove_entry(key).map(|(key_copy, _)| key_copy)
            } else {
                None
            };
            if let Ok(answer) = &outcome {
                let entry = Entry {
                    answer: answer.clone(),
                    loaded: Instant::now(),
                };
                self.entries
                    .insert(key_copy.unwrap_or_else(|| Box::from(key)), entry);
            }
            outcome
        });
        outcome.await.clone()
    }

    /// The loads in flight. A panic while they were locked leaves them
    /// whole (each change is one map operation), so a poisoned lock is used.
    fn flights(&self) -> MutexGuard<'_, HashMap<Box<str>, Flight<V>>> {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::Notify;

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn answers(capacity: u64, ttl: Duration) -> Answers<u32> {
        Answers::new(capacity, ttl, |_| {})
    }

    /// A load that counts itself, waits for `go`, then answers `answer`.
    async fn load(
        loads: &AtomicUsize,
        go: &Notify,
        answer: Result<u32, ()>,
    ) -> Result<u32, StoreError> {
        loads.fetch_add(1, Ordering::SeqCst);
        go.notified().await;
        answer.map_err(|()| StoreError::TimedOut(Duration::from_secs(1)))
    }

    async fn answer_now(answers: &Answers<u32>, key: &str, value: u32) -> Outcome<u32> {
        answers.get_or_load(key, 1, async move { Ok(value) }).await
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_load_and_its_answer() {
        let (answers, loads, go) = (answers(100, HOUR), AtomicUsize::new(0), Notify::new());
        let ask = |stamp| answers.get_or_load("user_a", stamp, load(&loads, &go, Ok(7)));
        let release = async {
            tokio::task::yield_now().await;
            go.notify_waiters();
        };
        let (first, second, third, ()) = tokio::join!(ask(1), ask(2), ask(3), release);
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        for answer in [first, second, third] {
            let answer = answer.unwrap();
            // The answer of the one load, stamped by the caller that ran it.
            assert_eq!((answer.value, answer.stamp), (7, 1));
        }
        // Cached now: no load at all.
        let cached = answers
            .get_or_load("user_a", 4, async { unreachable!() })
            .await;
        assert_eq!(cached.unwrap().stamp, 1);
    }

    #[tokio::test]
    async fn a_failure_reaches_every_waiter_and_is_not_cached() {
        let (answers, loads, go) = (answers(100, HOUR), AtomicUsize::new(0), Notify::new());
        let ask = || answers.get_or_load("user_a", 1, load(&loads, &go, Err(())));
        let release = async {
            tokio::task::yield_now().await;
            go.notify_waiters();
        };
        let (first, second, ()) = tokio::join!(ask(), ask(), release);
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        let (first, second) = (first.unwrap_err(), second.unwrap_err());
        assert!(Arc::ptr_eq(&first, &second), "one failure, shared");
        assert!(answers.flights().is_empty());
        // The next caller asks the store again.
        assert_eq!(answer_now(&answers, "user_a", 8).await.unwrap().value, 8);
    }

    #[tokio::test]
    async fn a_waiter_loads_in_place_of_a_caller_that_gave_up() {
        let (answers, loads, go) = (answers(100, HOUR), AtomicUsize::new(0), Notify::new());
        let mut first = Box::pin(answers.get_or_load("user_a", 1, load(&loads, &go, Ok(7))));
        // The first caller's load starts, and waits for a go never given.
        let waited = tokio::time::timeout(Duration::from_millis(10), &mut first).await;
        assert!(waited.is_err());
        // The second joins the first's load, and waits for it.
        let mut second = Box::pin(answers.get_or_load("user_a", 2, async { Ok(9) }));
        let waited = tokio::time::timeout(Duration::from_millis(10), &mut second).await;
        assert!(waited.is_err());
        // With the first caller gone, the second runs its own load.
        drop(first);
        let answer = second.await;
        assert_eq!(answer.unwrap().value, 9);
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert!(answers.flights().is_empty());
        assert_eq!(answers.fresh("user_a").unwrap().stamp, 2);
    }

    #[tokio::test]
    async fn an_answer_lives_for_its_time_to_live() {
        let answers = answers(100, Duration::from_millis(40));
        answer_now(&answers, "user_a", 7).await.unwrap();
        assert!(answers.holds("user_a", |value| *value == 7));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!answers.holds("user_a", |_| true));
        assert_eq!(answer_now(&answers, "user_a", 8).await.unwrap().value, 8);
    }

    #[tokio::test]
    async fn forgotten_answers_are_loaded_again() {
        let answers = answers(100, HOUR);
        answer_now(&answers, "user_a", 1).await.unwrap();
        answer_now(&answers, "user_b", 2).await.unwrap();
        answers.invalidate("user_a");
        assert!(!answers.holds("user_a", |_| true));
        assert!(answers.holds("user_b", |value| *value == 2));
        answers.clear();
        assert!(!answers.holds("user_b", |_| true));
        assert_eq!(answer_now(&answers, "user_b", 3).await.unwrap().value, 3);
    }

    #[tokio::test]
    async fn a_load_in_flight_inserts_what_it_loads_even_if_invalidated_meanwhile() {
        let (answers, loads, go) = (answers(100, HOUR), AtomicUsize::new(0), Notify::new());
        let ask = answers.get_or_load("user_a", 1, load(&loads, &go, Ok(7)));
        let invalidate = async {
            tokio::task::yield_now().await;
            answers.invalidate("user_a");
            go.notify_waiters();
        };
        let (answer, ()) = tokio::join!(ask, invalidate);
        assert_eq!(answer.unwrap().value, 7);
        // Left for the ledger's stamps to judge, as the eviction model has it.
        assert!(answers.holds("user_a", |value| *value == 7));
    }

    #[tokio::test]
    async fn the_entries_stay_within_the_capacity() {
        let answers = answers(1_000, HOUR);
        for user in 0..10_000 {
            answer_now(&answers, &format!("user_{user}"), user)
                .await
                .unwrap();
        }
        let held = answers.entries.len();
        assert!((900..=1_000).contains(&held), "{held} held");
    }
}
