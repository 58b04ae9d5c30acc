//! The user cache: Clerk user id to local row, bounded, with concurrent misses
//! for one user sharing one store call. Failures are never cached. Each
//! answer carries the stamp of the lookup that loaded it, for the eviction
//! ledger to judge.

use std::{future::Future, sync::Arc, time::Duration};

use moka::future::Cache;

use crate::{
    store::{Resolution, StoreError},
    telemetry,
    user::LocalId,
};

/// What is remembered about one Clerk user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CachedUser {
    Active(LocalId),
    /// Tombstoned: deletion is permanent, so it is safe to remember.
    Deleted,
}

pub(crate) struct UserCache {
    entries: Cache<Box<str>, Stamped>,
}

/// A cached answer and the ledger stamp of the lookup that loaded it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamped {
    pub(crate) user: CachedUser,
    pub(crate) stamp: u64,
}

impl UserCache {
    pub(crate) fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The cached user, or the result of `load` stamped `stamp`; `load` runs
    /// once for all concurrent callers asking for the same id.
    pub(crate) async fn get_or_load<F>(
        &self,
        clerk_id: &str,
        stamp: u64,
        load: F,
    ) -> Result<Stamped, Arc<StoreError>>
    where
        F: Future<Output = Result<Resolution, StoreError>>,
    {
        if let Some(user) = self.entries.get(clerk_id).await {
            telemetry::user_cache(true);
            return Ok(user);
        }
        telemetry::user_cache(false);
        // Boxed, so that the large state of a miss is not carried by the
        // future of every request.
        Box::pin(self.entries.try_get_with(Box::from(clerk_id), async move {
            let user = match load.await? {
                Resolution::Existing(id) | Resolution::Created(id) => CachedUser::Active(id),
                Resolution::Deleted => CachedUser::Deleted,
            };
            Ok(Stamped { user, stamp })
        }))
        .await
    }

    /// Forgets one user, so that the next request reads the store again.
    pub(crate) async fn invalidate(&self, clerk_id: &str) {
        self.entries.invalidate(clerk_id).await;
    }

    /// Forgets every user.
    pub(crate) fn clear(&self) {
        self.entries.invalidate_all();
    }
}
