//! A log line that a burst of failures writes once, not once per request.

use std::{
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

/// When one kind of trouble was last logged.
#[derive(Default)]
pub(super) struct Alarm {
    last: Mutex<Option<Instant>>,
}

impl Alarm {
    /// Whether to log now: the first time, then once `every` has passed
    /// since the last time this said so.
    pub(super) fn due(&self, every: Duration) -> bool {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let due = last.is_none_or(|at| now.duration_since(at) >= every);
        if due {
            *last = Some(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_interval() {
        let alarm = Alarm::default();
        assert!(alarm.due(Duration::from_secs(60)));
        assert!(!alarm.due(Duration::from_secs(60)));
        assert!(alarm.due(Duration::ZERO));
    }
}
