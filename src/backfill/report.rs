//! What a backfill reports: [`Progress`] on the way, a [`Summary`] at the
//! end, or a [`BackfillError`] holding the summary so far.

use std::fmt;

use crate::{
    clerk_api::ApiError,
    store::{BatchOutcome, StoreError, Walk},
};

/// Users counted by what the backfill did to their rows (or, in a dry
/// run, would do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// Rows created.
    pub created: u64,
    /// Rows that took a newer profile.
    pub updated: u64,
    /// Rows already holding this version or a newer one.
    pub unchanged: u64,
    /// Users deleted in this app (tombstoned): no row written.
    pub skipped: u64,
    /// Users whose row could not be written.
    pub failed: u64,
}

impl Summary {
    /// Every user counted.
    pub fn total(&self) -> u64 {
        self.created + self.updated + self.unchanged + self.skipped + self.failed
    }

    /// Counts one user: `None` is a failure.
    pub(crate) fn record(&mut self, outcome: Option<BatchOutcome>) {
        let count = match outcome {
            Some(BatchOutcome::Created) => &mut self.created,
            Some(BatchOutcome::Updated) => &mut self.updated,
            Some(BatchOutcome::Unchanged) => &mut self.unchanged,
            Some(BatchOutcome::Tombstoned) => &mut self.skipped,
            None => &mut self.failed,
        };
        *count += 1;
    }
}

/// `created 3, updated 1, unchanged 10, skipped 0, failed 0`.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "created {}, updated {}, unchanged {}, skipped {}, failed {}",
            self.created, self.updated, self.unchanged, self.skipped, self.failed
        )
    }
}

/// Where a running backfill is, reported after each page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// The walk under way.
    pub walk: Walk,
    /// What this walk did so far.
    pub summary: Summary,
    /// Users (or organizations) passed, counting those before the
    /// checkpoint it resumed from. The memberships walk counts the
    /// organizations whose memberships it wrote.
    pub position: u64,
    /// Users (or organizations) in the instance: users as counted when the
    /// walk started, organizations as the last page reported.
    pub total: Option<u64>,
    /// The position this run started from (0 unless it resumed).
    pub resumed_from: u64,
}

/// Why a backfill stopped before its end. A re-run resumes after the
/// last page written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackfillError {
    /// The Backend API failed, after its retries.
    #[error("reading from the Backend API failed: {source}")]
    Api {
        /// The API failure.
        source: ApiError,
        /// What the run did before it stopped.
        summary: Summary,
    },
    /// The database failed.
    #[error("writing to the database failed: {source}")]
    Store {
        /// The store failure.
        source: StoreError,
        /// What the run did before it stopped.
        summary: Summary,
    },
}

impl BackfillError {
    /// What the run did before it stopped.
    pub fn summary(&self) -> Summary {
        match self {
            Self::Api { summary, .. } | Self::Store { summary, .. } => *summary,
        }
    }
}
