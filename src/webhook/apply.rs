//! What an event does: to the store, and to the layer's caches.

use super::{Event, UserEvent, VerifiedDelivery};
use crate::{
    eviction::Evictor,
    store::{DynUserSync, StoreError, SyncOutcome},
};

/// Applies `event` to `store`; `None` for event types it does not handle.
///
/// A deletion is dated by the signed delivery time (the event carries no
/// reliable one), and evicts the user from the layer's caches so that their
/// still-valid tokens are refused from the next request on.
pub(crate) async fn apply(
    store: &dyn DynUserSync,
    evictor: &Evictor,
    delivery: &VerifiedDelivery,
    event: &Event,
) -> Result<Option<SyncOutcome>, StoreError> {
    match &event.user {
        UserEvent::Upsert { user, .. } => store
            .upsert_profile_dyn(&user.id, &user.profile(), user.updated_at)
            .await
            .map(Some),
        UserEvent::Deleted { clerk_id } => {
            let deleted_at_ms = delivery.timestamp.saturating_mul(1000);
            let outcome = store.delete_user_dyn(clerk_id, deleted_at_ms).await;
            // Even after a failure: the tombstone may be committed already.
            evictor.forget_user(clerk_id).await;
            outcome.map(Some)
        }
        UserEvent::Other { .. } => Ok(None),
    }
}
