//! A small client for Clerk's Backend API: the users, organizations and
//! memberships endpoints.
//!
//! [`ClerkApi`] authenticates with the instance's secret key, bounds every
//! attempt by a timeout, waits out `429` answers as their `Retry-After`
//! says, and retries `5xx` answers and network failures with exponential
//! backoff, a bounded number of times ([`RetryPolicy`]). Its errors, log
//! lines and `Debug` output never contain the secret key.
//!
//! [`UserPages`] walks every user in creation order, with the
//! `starting_after` cursor; on a deployment that refuses the cursor
//! (`422`), it carries on with `offset` paging from the same place.
//! [`ListPages`] walks organizations, or one organization's memberships,
//! by `offset`.
//!
//! # Example
//!
//! ```no_run
//! use ensure_user::clerk_api::{ApiError, ClerkApi};
//!
//! # async fn run() -> Result<(), ApiError> {
//! let api = ClerkApi::from_env()?; // CLERK_SECRET_KEY, CLERK_API_URL
//! println!("{} users", api.user_count().await?);
//! let mut pages = api.users(500);
//! while let Some(page) = pages.next_page().await? {
//!     for user in page {
//!         println!("{} {:?}", user.id, user.primary_email());
//!     }
//! }
//! # Ok(()) }
//! ```

mod client;
mod error;
mod list_pages;
mod pages;
mod retry;

pub use crate::config::DEFAULT_API_URL;
pub use client::ClerkApi;
pub use error::ApiError;
pub use list_pages::ListPages;
pub use pages::{MAX_PAGE_SIZE, UserPages};
pub use retry::RetryPolicy;
