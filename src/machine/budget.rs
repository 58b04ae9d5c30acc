//! How many Backend API calls this process may still make: at most `calls`
//! within any `window`, whoever asks.

use std::{
    collections::VecDeque,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

/// A sliding window of the calls made: each call takes a place, given back
/// `window` after it was taken. Unlike a token bucket, which lets a full
/// bucket and its refill through within one window (twice the rate), no
/// window of that length ever holds more than `calls` calls. It keeps one
/// instant per call in the window.
pub(super) struct Budget {
    calls: usize,
    window: Duration,
    taken: Mutex<VecDeque<Instant>>,
}

impl Budget {
    /// `calls` per `window`; zero calls refuses every call.
    pub(super) fn new(calls: usize, window: Duration) -> Self {
        Self {
            calls,
            window,
            taken: Mutex::default(),
        }
    }

    /// Takes a place for a call at `now`, or says how long until one is
    /// given back.
    pub(super) fn take(&self, now: Instant) -> Result<(), Duration> {
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        while taken
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= self.window)
        {
            taken.pop_front();
        }
        if taken.len() < self.calls {
            taken.push_back(now);
            return Ok(());
        }
        let back_at = taken
            .front()
            .map_or(now + self.window, |at| *at + self.window);
        Err(back_at.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(10);

    #[test]
    fn at_most_calls_in_any_window() {
        let budget = Budget::new(3, WINDOW);
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        assert_eq!(budget.take(at(0)), Ok(()));
        assert_eq!(budget.take(at(4)), Ok(()));
        assert_eq!(budget.take(at(6)), Ok(()));
        // Full: the first place comes back 10 s after it was taken.
        assert_eq!(budget.take(at(7)), Err(Duration::from_secs(3)));
        assert_eq!(budget.take(at(10)), Ok(()));
        assert_eq!(budget.take(at(11)), Err(Duration::from_secs(3)));
        assert_eq!(budget.take(at(14)), Ok(()));
        // A refused call takes nothing.
        assert_eq!(budget.take(at(15)), Err(Duration::from_secs(1)));
        assert_eq!(budget.take(at(16)), Ok(()));
    }

    #[test]
    fn zero_calls_refuses_every_call() {
        let budget = Budget::new(0, WINDOW);
        assert_eq!(budget.take(Instant::now()), Err(WINDOW));
    }
}
