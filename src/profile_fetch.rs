//! Profile on first sight: a new user's profile read from the Backend API.

use std::{fmt, pin::Pin, sync::Arc, time::Duration};

use crate::{
    clerk_api::{ApiError, ClerkApi},
    policy::FirstSight,
    store::{DynUserSync, StoreError, SyncOutcome, UserSync},
    telemetry,
};

/// Fills in a new user's email, names and image from Clerk's Backend API,
/// for apps whose session token carries no profile claims.
///
/// Given to [`EnsureUserLayer::with_profile_fetch`](crate::EnsureUserLayer::with_profile_fetch),
/// it runs when the layer has just *created* a user's row and the token
/// held none of the [`ProfileClaims`](crate::ProfileClaims): it reads
/// `GET /v1/users/{id}` and stores the profile through
/// [`UserSync::upsert_profile`], with the user's `updated_at`, so a newer
/// profile from a webhook is never overwritten. It runs once per new user:
/// concurrent first requests share one lookup. An existing user never
/// triggers it.
///
/// It cannot fail a request. When the API is down, slow or rate-limited,
/// the row stays as created (without a profile), a warning is logged, and
/// the request goes on; the first request waits for it at most the timeout
/// (2 s by default).
///
/// # Token claims or an API call?
///
/// Adding the profile to Clerk's session token (Dashboard → Sessions →
/// Customize session token, read through [`ProfileClaims`](crate::ProfileClaims))
/// costs no call at all, but every token grows by those fields, on every
/// request and in the cookie, which is limited to about 4 KB. Fetching
/// keeps tokens small and reads Clerk's full current profile, at the price
/// of one Backend API call per new user, counted against the instance's
/// rate limit (1,000 requests per 10 s in production, 100 in development):
/// during a sign-up burst past that limit some rows start without a
/// profile until a webhook or a backfill fills them in. The first request
/// of each new user also waits for the call.
///
/// ```no_run
/// use ensure_user::{Config, EnsureUserLayer, ProfileFetch, clerk_api::ClerkApi, store::SqliteUserStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = SqliteUserStore::new(sqlx::SqlitePool::connect("sqlite://app.db?mode=rwc").await?);
/// let fetch = ProfileFetch::new(ClerkApi::from_env()?, store.clone()); // CLERK_SECRET_KEY
/// let layer = EnsureUserLayer::new(Config::from_env()?, store).with_profile_fetch(fetch);
/// # let _ = layer;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ProfileFetch {
    api: ClerkApi,
    store: Arc<dyn DynUserSync>,
    timeout: Duration,
}

impl ProfileFetch {
    /// Reads profiles with `api` and stores them in `store` (normally the
    /// layer's own store).
    pub fn new(api: ClerkApi, store: impl UserSync) -> Self {
        Self {
            api,
            store: Arc::new(store),
            timeout: Duration::from_secs(2),
        }
    }

    /// The longest a first request waits for the profile, API retries and
    /// store write included. Default 2 s.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn fetch_and_store(&self, clerk_id: &str) -> Result<SyncOutcome, Failure> {
        let user = self
            .api
            .user(clerk_id)
            .await?
            .filter(|user| user.id == clerk_id)
            .ok_or(Failure::NotFound)?;
        let outcome = self
            .store
            .upsert_profile_dyn(clerk_id, &user.profile(), user.updated_at)
            .await?;
        Ok(outcome)
    }
}

impl FirstSight for ProfileFetch {
    fn created<'a>(&'a self, clerk_id: &'a str) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let fetched = tokio::time::timeout(self.timeout, self.fetch_and_store(clerk_id)).await;
            let failure = match fetched {
                Ok(Ok(outcome)) => {
                    telemetry::profile_fetch("ok");
                    tracing::debug!(
                        target: "ensure_user",
                        clerk_id,
                        outcome = outcome.code(),
                        "stored the new user's profile from the Backend API"
                    );
                    return;
                }
                Ok(Err(failure)) => failure,
                Err(_) => Failure::TimedOut(self.timeout),
            };
            telemetry::profile_fetch(failure.code());
            tracing::warn!(
                target: "ensure_user",
                clerk_id,
                error = %failure,
                "created the user without a profile"
            );
        })
    }
}

/// Shows the client and the timeout; never the secret key.
impl fmt::Debug for ProfileFetch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProfileFetch")
            .field("api", &self.api)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("profile fetch failed: {0}")]
    Api(#[from] ApiError),
    #[error("the Backend API has no such user")]
    NotFound,
    #[error("storing the fetched profile failed: {0}")]
    Store(#[from] StoreError),
    #[error("profile fetch timed out after {0:?}")]
    TimedOut(Duration),
}

impl Failure {
    fn code(&self) -> &'static str {
        match self {
            Self::Api(_) => "api_error",
            Self::NotFound => "not_found",
            Self::Store(_) => "store_error",
            Self::TimedOut(_) => "timed_out",
        }
    }
}
