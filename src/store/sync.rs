//! Applying Clerk's own account of a user: the [`UserSync`] trait.

use std::future::Future;
#[cfg(any(feature = "webhooks", feature = "clerk-api"))]
use std::pin::Pin;

use super::{Profile, StoreError};
use crate::local_id::LocalId;

/// What a [`UserSync`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SyncOutcome {
    /// A row was created with the profile.
    Created(LocalId),
    /// The existing row took the profile.
    Updated(LocalId),
    /// The row already holds a newer profile; nothing was written.
    Stale,
    /// The user is deleted (tombstoned) already; nothing was written.
    Tombstoned,
    /// The tombstone is recorded and the user's row removed.
    Deleted,
    /// The tombstone is recorded; the user had no row.
    NotFound,
    /// The session's end is recorded.
    Ended,
    /// The store keeps nothing of this kind: the layer of this process
    /// holds it in memory only.
    NotKept,
}

impl SyncOutcome {
    /// A stable `snake_case` code: `created`, `updated`, `stale`,
    /// `tombstoned`, `deleted`, `not_found`, `ended` or `not_kept`.
    pub const fn code(self) -> &'static str {
        match self {
            Self::Created(_) => "created",
            Self::Updated(_) => "updated",
            Self::Stale => "stale",
            Self::Tombstoned => "tombstoned",
            Self::Deleted => "deleted",
            Self::NotFound => "not_found",
            Self::Ended => "ended",
            Self::NotKept => "not_kept",
        }
    }

    /// The local id of a created or updated row.
    pub const fn id(self) -> Option<LocalId> {
        match self {
            Self::Created(id) | Self::Updated(id) => Some(id),
            _ => None,
        }
    }
}

/// Writes what Clerk reports about a user: profile changes and deletions.
///
/// The webhook receiver calls it; the bundled SQL stores implement it. A
/// custom store implementing it keeps these promises:
///
/// - last write wins on Clerk's `updated_at`: a profile older than the one
///   stored is ignored ([`SyncOutcome::Stale`]), an equal one is applied
///   again (so a duplicate delivery is harmless);
/// - a tombstoned user is never (re)created or updated
///   ([`SyncOutcome::Tombstoned`]);
/// - a deletion commits its tombstone *before* removing the row, and an
///   insert re-checks the tombstone after inserting, so that neither this
///   trait nor [`UserStore`](super::UserStore) can resurrect a deleted user
///   whatever the interleaving;
/// - every call is idempotent, so a retried delivery converges.
///
/// ```
/// use ensure_user::{LocalId, store::{Profile, StoreError, SyncOutcome, UserSync}};
///
/// /// Keeps nothing: enough for an app that syncs no profile data.
/// struct Ignore;
///
/// impl UserSync for Ignore {
///     async fn upsert_profile(&self, _: &str, _: &Profile, _: i64) -> Result<SyncOutcome, StoreError> {
///         Ok(SyncOutcome::Stale)
///     }
///     async fn delete_user(&self, _: &str, _: i64) -> Result<SyncOutcome, StoreError> {
///         Ok(SyncOutcome::NotFound)
///     }
/// }
/// ```
pub trait UserSync: Send + Sync + 'static {
    /// Creates or updates the row for `clerk_id` with the full `profile`
    /// (absent fields are cleared), unless the stored profile is newer than
    /// `updated_at_ms` (Clerk's `updated_at`, Unix ms) or the user is tombstoned.
    fn upsert_profile(
        &self,
        clerk_id: &str,
        profile: &Profile,
        updated_at_ms: i64,
    ) -> impl Future<Output = Result<SyncOutcome, StoreError>> + Send;

    /// Records a tombstone for `clerk_id` (kept from the first deletion; the
    /// time is Unix ms), then removes the user's row.
    fn delete_user(
        &self,
        clerk_id: &str,
        deleted_at_ms: i64,
    ) -> impl Future<Output = Result<SyncOutcome, StoreError>> + Send;

    /// Records that `session` (of `clerk_id`) ended: its tokens are refused
    /// until `until_ms` (Unix ms), when none can be valid any more.
    ///
    /// The bundled stores keep it, tell the other instances listening, and
    /// give it to instances that start listening later. The default keeps
    /// nothing ([`SyncOutcome::NotKept`]): the receiving process refuses
    /// the session from memory, and no other one does.
    fn end_session(
        &self,
        session: &str,
        clerk_id: &str,
        until_ms: i64,
    ) -> impl Future<Output = Result<SyncOutcome, StoreError>> + Send {
        let _ = (session, clerk_id, until_ms);
        async { Ok(SyncOutcome::NotKept) }
    }
}

#[cfg(any(feature = "webhooks", feature = "clerk-api"))]
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`UserSync`] made object-safe, so the webhook receiver and the profile
/// fetch have no store type parameter.
#[cfg(any(feature = "webhooks", feature = "clerk-api"))]
pub(crate) trait DynUserSync: Send + Sync + 'static {
    fn upsert_profile_dyn<'a>(
        &'a self,
        clerk_id: &'a str,
        profile: &'a Profile,
        updated_at_ms: i64,
    ) -> BoxFuture<'a, Result<SyncOutcome, StoreError>>;

    #[cfg(feature = "webhooks")]
    fn delete_user_dyn<'a>(
        &'a self,
        clerk_id: &'a str,
        deleted_at_ms: i64,
    ) -> BoxFuture<'a, Result<SyncOutcome, StoreError>>;

    #[cfg(feature = "webhooks")]
    fn end_session_dyn<'a>(
        &'a self,
        session: &'a str,
        clerk_id: &'a str,
        until_ms: i64,
    ) -> BoxFuture<'a, Result<SyncOutcome, StoreError>>;
}

#[cfg(any(feature = "webhooks", feature = "clerk-api"))]
impl<S: UserSync> DynUserSync for S {
    fn upsert_profile_dyn<'a>(
        &'a self,
        clerk_id: &'a str,
        profile: &'a Profile,
        updated_at_ms: i64,
    ) -> BoxFuture<'a, Result<SyncOutcome, StoreError>> {
        Box::pin(self.upsert_profile(clerk_id, profile, updated_at_ms))
    }

    #[cfg(feature = "webhooks")]
    fn delete_user_dyn<'a>(
        &'a self,
        clerk_id: &'a str,
        deleted_at_ms: i64,
    ) -> BoxFuture<'a, Result<SyncOutcome, StoreError>> {
        Box::pin(self.delete_user(clerk_id, deleted_at_ms))
    }

    #[cfg(feature = "webhooks")]
    fn end_session_dyn<'a>(
        &'a self,
        session: &'a str,
        clerk_id: &'a str,
        until_ms: i64,
    ) -> BoxFuture<'a, Result<SyncOutcome, StoreError>> {
        Box::pin(self.end_session(session, clerk_id, until_ms))
    }
}
