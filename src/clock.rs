//! The time, as the crate reads it: the system clock, as a `SystemTime`
//! where it is only compared (a cache hit's expiry check) and in Unix
//! milliseconds everywhere else.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The latest time [`at_ms`] names, in Unix milliseconds (the year 2527):
/// within what every platform's `SystemTime` holds.
const LATEST_MS: i64 = 1 << 44;

/// Now, to compare with a time [`at_ms`] made, no arithmetic on it.
pub(crate) fn now() -> SystemTime {
    SystemTime::now()
}

/// Now, in Unix milliseconds (0 for a clock set before 1970).
pub(crate) fn now_ms() -> i64 {
    now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
        i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
    })
}

/// The time `ms` Unix milliseconds name, clamped between the epoch and
/// [`LATEST_MS`].
pub(crate) fn at_ms(ms: i64) -> SystemTime {
    let ms = ms.clamp(0, LATEST_MS).unsigned_abs();
    UNIX_EPOCH + Duration::from_millis(ms)
}
