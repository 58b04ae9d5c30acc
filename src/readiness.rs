//! Whether a layer can serve: keys held, the store reachable and its
//! schema what the store needs, and the eviction listener (when one runs)
//! hearing.

use std::sync::atomic::Ordering::SeqCst;

use crate::{engine::Engine, store::StoreError};

/// What [`EnsureUserLayer::readiness`](crate::EnsureUserLayer::readiness) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Readiness {
    /// Signing keys held (1 for a static PEM key): Clerk's, and every
    /// OpenID Connect issuer's (whose discovery is tried first when it has
    /// not succeeded).
    pub keys_held: usize,
    /// Seconds since the key set was last fetched; `None` if never (or static).
    pub keys_age_seconds: Option<u64>,
    /// Whether the last key fetch failed (held keys still serve), or an
    /// OpenID Connect issuer has no key.
    pub key_endpoint_failing: bool,
    /// Whether the store answered a ping within the store timeout.
    pub store_reachable: bool,
    /// Whether the store's database lacks a table, column or unique
    /// constraint the store needs (see
    /// [`UserStore::check_schema`](crate::store::UserStore::check_schema)):
    /// requests that need it are refused `500 store_misconfigured` until
    /// the schema is fixed.
    pub store_misconfigured: bool,
    /// Whether the [eviction listener](crate::eviction) runs but does not
    /// hear its own notifications (through a transaction-mode pooler, say):
    /// other instances' deletions, bans and ended sessions then reach this
    /// one only through the store, when its cached answers are checked
    /// again. `false` when no listener runs.
    pub eviction_listener_deaf: bool,
}

impl Readiness {
    /// Ready when keys are held, the store is reachable and its schema
    /// right, and the eviction listener is not deaf.
    pub fn is_ready(&self) -> bool {
        self.keys_held > 0
            && self.store_reachable
            && !self.store_misconfigured
            && !self.eviction_listener_deaf
    }

    /// Checks the engine's keys (one fetch is tried when none are held),
    /// pings its store and checks its schema, each bounded by the store
    /// timeout.
    pub(crate) async fn of(engine: &Engine) -> Self {
        let keys = engine.key_health().await;
        let ping = engine.store().ping_dyn();
        let store_reachable = match tokio::time::timeout(engine.store_timeout(), ping).await {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                tracing::warn!(target: "ensure_user", %error, "readiness: store unreachable");
                false
            }
            Err(_) => {
                tracing::warn!(target: "ensure_user", "readiness: store ping timed out");
                false
            }
        };
        let store_misconfigured = store_reachable
            && match tokio::time::timeout(engine.store_timeout(), check_schema(engine)).await {
                Ok(Err(error)) if error.is_schema_mismatch() => {
                    tracing::error!(target: "ensure_user", %error, "readiness: store misconfigured");
                    true
                }
                _ => false,
            };
        Self {
            keys_held: keys.held,
            keys_age_seconds: keys.age.map(|age| age.as_secs()),
            key_endpoint_failing: keys.last_fetch_failed,
            store_reachable,
            store_misconfigured,
            eviction_listener_deaf: engine.caches().listener_deaf.load(SeqCst),
        }
    }
}

/// Whether the engine's stores find every table, column and unique
/// constraint they need: the users', and the organizations' when the
/// engine resolves them.
pub(crate) async fn check_schema(engine: &Engine) -> Result<(), StoreError> {
    engine.store().check_schema_dyn().await?;
    if let Some(organizations) = engine.organization_store() {
        organizations.check_organization_schema_dyn().await?;
    }
    Ok(())
}
