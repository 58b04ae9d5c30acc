//! How often, and after how long, a failed Backend API call is tried again.

use std::time::Duration;

use super::ApiError;

/// When [`ClerkApi`](super::ClerkApi) tries a failed call again.
///
/// Retried: `429` (after its `Retry-After`, or the backoff when it has
/// none), `5xx`, timeouts and connection failures. Anything else (`4xx`, a
/// malformed body) fails at once.
///
/// ```
/// use ensure_user::clerk_api::RetryPolicy;
/// use std::time::Duration;
///
/// let patient = RetryPolicy::new(8).with_backoff(Duration::from_millis(500), Duration::from_secs(30));
/// # let _ = patient;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_retries: u32,
    first_backoff: Duration,
    max_backoff: Duration,
    max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 4 retries; backoff from 250 ms, doubling, at most 8 s; a
    /// `Retry-After` of up to 60 s is waited out.
    fn default() -> Self {
        Self {
            max_retries: 4,
            first_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// At most `max_retries` retries after the first attempt, with the
    /// default delays.
    pub fn new(max_retries: u32) -> Self {
        Self {
            max_retries,
            ..Self::default()
        }
    }

    /// No retry: every failure is returned at once.
    pub fn never() -> Self {
        Self::new(0)
    }

    /// The backoff before the first retry, doubled for each further one up
    /// to `max`. Default 250 ms and 8 s.
    pub fn with_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.first_backoff = first;
        self.max_backoff = max.max(first);
        self
    }

    /// The longest `Retry-After` waited out; a `429` asking for more fails
    /// with [`ApiError::RateLimited`]. Default 60 s.
    pub fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// How long to wait before retry number `retries_done + 1` after
    /// `error`, or `None` when the call should fail now.
    pub(crate) fn delay(&self, retries_done: u32, error: &ApiError) -> Option<Duration> {
        if retries_done >= self.max_retries || !error.is_retryable() {
            return None;
        }
        if let ApiError::RateLimited {
            retry_after: Some(wait),
        } = error
        {
            return (*wait <= self.max_retry_after).then_some(*wait);
        }
        let factor = 2u32.saturating_pow(retries_done);
        Some(
            self.first_backoff
                .saturating_mul(factor)
                .min(self.max_backoff),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_bound() {
        let policy = RetryPolicy::new(6)
            .with_backoff(Duration::from_millis(100), Duration::from_millis(500));
        let outage = ApiError::Unreachable("connection refused".into());
        let delays: Vec<_> = (0..7).map(|n| policy.delay(n, &outage)).collect();
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(
            delays,
            [ms(100), ms(200), ms(400), ms(500), ms(500), ms(500), None]
        );
    }

    #[test]
    fn retry_after_is_honoured_within_its_bound() {
        let policy = RetryPolicy::default().with_max_retry_after(Duration::from_secs(10));
        let limited = |secs| ApiError::RateLimited {
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(policy.delay(0, &limited(3)), Some(Duration::from_secs(3)));
        assert_eq!(policy.delay(0, &limited(11)), None);
        let unspecified = ApiError::RateLimited { retry_after: None };
        assert_eq!(
            policy.delay(1, &unspecified),
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn client_errors_are_not_retried() {
        let refused = ApiError::Unauthorized {
            status: 401,
            code: None,
        };
        assert_eq!(RetryPolicy::default().delay(0, &refused), None);
        let server = ApiError::Status {
            status: 503,
            code: None,
            message: None,
        };
        assert!(RetryPolicy::default().delay(0, &server).is_some());
        assert_eq!(RetryPolicy::never().delay(0, &server), None);
    }
}
