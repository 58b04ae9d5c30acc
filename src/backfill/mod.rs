//! Backfill: every existing Clerk user, organization and membership
//! written to the local tables.
//!
//! The layer creates rows on first sight and webhooks keep them current;
//! users who signed up before either was in place have no row until they
//! come back. [`Backfill`] walks every user of the instance through the
//! Backend API ([`clerk_api::UserPages`](crate::clerk_api::UserPages)) and
//! writes them in batches, one statement per page
//! ([`BackfillStore::apply_batch`](crate::store::BackfillStore::apply_batch)),
//! by the webhooks' rules: last write wins on `updated_at`, tombstoned
//! users are skipped, and a second run over unchanged data writes nothing.
//!
//! After each written page it saves a checkpoint (the last user written).
//! A run that stops (interrupted, API or database down) resumes from there
//! on the next run; a run that completes clears it, so the run after that
//! is a full pass again. Fetching the next page overlaps writing the
//! current one.
//!
//! [`Backfill::run_walks`] also walks organizations and their memberships
//! ([`Walk`](crate::store::Walk)), on a store that keeps them
//! ([`OrganizationBackfillStore`](crate::store::OrganizationBackfillStore)):
//! each organization page is one batch, then each organization's
//! memberships, page by page. Each walk has its own checkpoint; the
//! memberships walk saves it after each organization.
//!
//! The `ensure-user backfill` command (feature `cli`) runs it with a
//! progress bar.
//!
//! # Example
//!
//! ```no_run
//! use ensure_user::{backfill::Backfill, clerk_api::ClerkApi, store::SqliteUserStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = SqliteUserStore::new(sqlx::SqlitePool::connect("sqlite://app.db?mode=rwc").await?);
//! store.migrate().await?;
//! let summary = Backfill::new(ClerkApi::from_env()?, store)
//!     .run(|progress| eprintln!("{} of {:?} users", progress.position, progress.total))
//!     .await?;
//! println!("{summary}");
//! # Ok(()) }
//! ```

mod organizations;
mod report;
mod run;

pub use report::{BackfillError, Progress, Summary};
pub use run::Backfill;
