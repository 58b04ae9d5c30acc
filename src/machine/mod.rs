//! Opaque machine credentials (API keys `ak_…`, M2M tokens `mt_…`, OAuth
//! access tokens `oat_…`), which only Clerk's Backend API can verify.
//!
//! Each verification is a call to the Backend API, whose rate limit the
//! whole app shares (1,000 calls per 10 s per production instance), so
//! [`MachineVerifier`] spends calls carefully:
//!
//! - concurrent verifications of one credential make one call and share
//!   its answer, success or failure;
//! - a refusal that stays true (unknown, revoked, expired) is remembered
//!   for a while, keyed by a hash of the credential, so that repeating a
//!   bad credential costs no call;
//! - the process makes at most a configured number of calls per window; a
//!   verification past it is refused at once as unavailable, so a flood of
//!   made-up credentials costs at most that many calls.
//!
//! A verified credential is remembered by the caller (the layer's token
//! cache), up to [`MachineCredential::fresh_until_ms`].

mod alarm;
mod backend;
mod budget;
mod credential;
mod refusals;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use tokio::sync::OnceCell;

use self::{
    alarm::Alarm,
    backend::Backend,
    budget::Budget,
    refusals::{Key, Refusals},
};
use crate::{rejection::Rejection, token::TokenType};
pub use credential::{MachineCredential, SubjectKind};

/// What the Backend API verification needs, from [`Config`](crate::Config).
#[derive(Clone)]
pub(crate) struct MachineRules {
    /// The Backend API's base URL, e.g. `https://api.clerk.com`.
    pub(crate) api_url: String,
    /// The instance's secret key (`sk_…`): for every kind of credential.
    pub(crate) secret_key: Option<String>,
    /// A machine's secret key: for M2M tokens, instead of the secret key.
    pub(crate) machine_secret_key: Option<String>,
    /// The time limit of one call.
    pub(crate) call_timeout: Duration,
    /// How long a refusal is remembered.
    pub(crate) not_found_for: Duration,
    /// How many refusals are remembered at most.
    pub(crate) not_found_capacity: usize,
    /// At most this many calls…
    pub(crate) budget_calls: usize,
    /// …within any window this long.
    pub(crate) budget_window: Duration,
}

/// Why a machine credential was not verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MachineError {
    /// Clerk does not know the credential.
    #[error("Clerk does not know the credential")]
    NotFound,
    /// The credential was revoked.
    #[error("the credential was revoked")]
    Revoked,
    /// The credential has expired.
    #[error("the credential has expired")]
    Expired,
    /// The Backend API cannot answer now (down, slow, rate limited, an
    /// unreadable answer), or this process's budget of calls is spent;
    /// `retry_after` is when to try again, when known.
    #[error("the Backend API cannot verify credentials right now")]
    Unavailable {
        /// When to try again, when known.
        retry_after: Option<Duration>,
    },
    /// This server cannot verify this kind of credential: no secret key
    /// for it, or the Backend API refuses the key.
    #[error("this server is not configured to verify this kind of credential")]
    Misconfigured,
}

impl From<MachineError> for Rejection {
    fn from(error: MachineError) -> Self {
        match error {
            MachineError::NotFound => Self::CredentialNotFound,
            MachineError::Revoked => Self::CredentialRevoked,
            MachineError::Expired => Self::TokenExpired,
            MachineError::Unavailable { .. } => Self::VerificationUnavailable,
            MachineError::Misconfigured => Self::VerificationMisconfigured,
        }
    }
}

/// What one verification ends in, for every caller that waited on it.
type Outcome = Result<MachineCredential, MachineError>;

/// A verification in flight: the first caller runs it, the others wait for
/// its outcome. Should the caller running it give up (its request dropped),
/// one of those waiting runs it in its place.
type Flight = Arc<OnceCell<Outcome>>;

/// How often a spent budget is logged at most.
const BUDGET_ALARM_EVERY: Duration = Duration::from_secs(60);

/// Verifies opaque machine credentials through the Backend API.
pub(crate) struct MachineVerifier {
    backend: Backend,
    refusals: Refusals,
    budget: Budget,
    /// The verifications in flight, by credential hash.
    flights: Mutex<HashMap<Key, Flight>>,
    budget_spent: Alarm,
}

impl MachineVerifier {
    /// A verifier following `rules`. Never fails: a missing key or an
    /// unusable URL refuses every call as [`MachineError::Misconfigured`],
    /// and says so in the logs.
    pub(crate) fn new(rules: &MachineRules) -> Self {
        Self {
            backend: Backend::new(rules),
            refusals: Refusals::new(rules.not_found_capacity, rules.not_found_for),
            budget: Budget::new(rules.budget_calls, rules.budget_window),
            flights: Mutex::default(),
            budget_spent: Alarm::default(),
        }
    }

    /// Verifies `token`, an opaque credential of kind `kind` (an API key,
    /// M2M or OAuth token; a session token is never one Clerk knows here).
    ///
    /// A credential that is not visible ASCII is refused as unknown without
    /// a call; so is one whose refusal is remembered. Otherwise concurrent
    /// verifications of one credential share one call, which the budget
    /// must allow.
    pub(crate) async fn verify(
        &self,
        kind: TokenType,
        token: &str,
    ) -> Result<MachineCredential, MachineError> {
        let printable = !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic());
        if kind == TokenType::SessionToken || !printable {
            return Err(MachineError::NotFound);
        }
        let key = refusals::key(kind, token);
        if let Some(refusal) = self.refusals.get(&key) {
            return Err(refusal);
        }
        // Boxed, so that the state of a call is not carried by the future
        // of every request.
        Box::pin(self.verify_once(kind, token, key)).await
    }

    /// Joins the verification of `key` in flight, or starts one.
    async fn verify_once(&self, kind: TokenType, token: &str, key: Key) -> Outcome {
        let flight = {
            let mut flights = self.flights();
            // Checked again under the lock, which a finished flight takes to
            // leave after remembering its refusal: a caller either finds
            // the refusal or joins the flight.
            if let Some(refusal) = self.refusals.get(&key) {
                return Err(refusal);
            }
            Arc::clone(flights.entry(key).or_default())
        };
        let outcome = flight.get_or_init(|| async {
            // Leaves the flights when done, or when the caller gives up.
            let _leave = Leave {
                verifier: self,
                key,
                flight: &flight,
            };
            let outcome = self.call(kind, token).await;
            if let Err(refusal) = outcome {
                self.refusals.remember(key, refusal);
            }
            outcome
        });
        outcome.await.clone()
    }

    /// One call, if the budget allows it.
    async fn call(&self, kind: TokenType, token: &str) -> Outcome {
        if let Err(wait) = self.budget.take(Instant::now()) {
            if self.budget_spent.due(BUDGET_ALARM_EVERY) {
                tracing::warn!(
                    target: "ensure_user::machine",
                    token_type = kind.as_str(),
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "the budget of Backend API calls is spent; \
                     machine credentials not verified yet are refused until it returns"
                );
            }
            return Err(MachineError::Unavailable {
                retry_after: Some(wait),
            });
        }
        self.backend.verify(kind, token).await
    }

    /// The verifications in flight. A panic while they were locked leaves
    /// them whole (each change is one map operation), so a poisoned lock is
    /// used.
    fn flights(&self) -> MutexGuard<'_, HashMap<Key, Flight>> {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Removes a flight from those in flight when dropped, unless another has
/// taken its place.
struct Leave<'a> {
    verifier: &'a MachineVerifier,
    key: Key,
    flight: &'a Flight,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut flights = self.verifier.flights();
        if flights
            .get(&self.key)
            .is_some_and(|in_flight| Arc::ptr_eq(in_flight, self.flight))
        {
            flights.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests;
