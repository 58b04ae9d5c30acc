//! Answers the store gave, cached: bounded, each kept for a time to live,
//! concurrent misses for one key sharing one store call, failures never
//! cached. Each answer carries the stamp of the lookup that loaded it, for
//! the eviction ledger to judge before it is served.

use std::{future::Future, sync::Arc, time::Duration};

use moka::future::Cache;

use crate::store::StoreError;

/// An answer and the ledger stamp of the lookup that loaded it.
#[derive(Debug, Clone)]
pub(crate) struct Stamped<V> {
    pub(crate) value: V,
    pub(crate) stamp: u64,
}

/// One kind of answer (users, organizations, memberships) by key.
pub(crate) struct Answers<V> {
    entries: Cache<Box<str>, Stamped<V>>,
    /// Counts hits and misses for the metrics.
    count: fn(bool),
}

impl<V: Clone + Send + Sync + 'static> Answers<V> {
    pub(crate) fn new(capacity: u64, ttl: Duration, count: fn(bool)) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            count,
        }
    }

    /// The cached answer for `key`, or the result of `load` stamped
    /// `stamp`; `load` runs once for all concurrent callers of one key.
    pub(crate) async fn get_or_load<F>(
        &self,
        key: &str,
        stamp: u64,
        load: F,
    ) -> Result<Stamped<V>, Arc<StoreError>>
    where
        F: Future<Output = Result<V, StoreError>>,
    {
        if let Some(answer) = self.entries.get(key).await {
            (self.count)(true);
            return Ok(answer);
        }
        (self.count)(false);
        // Boxed, so that the large state of a miss is not carried by the
        // future of every request.
        Box::pin(self.entries.try_get_with(Box::from(key), async move {
            Ok(Stamped {
                value: load.await?,
                stamp,
            })
        }))
        .await
    }

    /// Whether an answer for `key` is cached and `test` holds of it.
    pub(crate) async fn holds(&self, key: &str, test: impl Fn(&V) -> bool) -> bool {
        self.entries
            .get(key)
            .await
            .is_some_and(|answer| test(&answer.value))
    }

    /// Forgets one key's answer, so that the next request asks the store.
    pub(crate) async fn invalidate(&self, key: &str) {
        self.entries.invalidate(key).await;
    }

    /// Forgets every answer.
    pub(crate) fn clear(&self) {
        self.entries.invalidate_all();
    }
}
