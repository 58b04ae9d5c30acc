//! What an event does: to the stores, and to the layer's caches.

use super::{Change, Event, VerifiedDelivery};
use crate::{
    eviction::Evictor,
    store::{DynOrganizationSync, DynUserSync, StoreError, SyncOutcome},
};

/// Where events are applied: the users' store, the organizations' (when
/// the receiver keeps them), and the layer's evictor.
pub(crate) struct Targets<'a> {
    pub(crate) users: &'a dyn DynUserSync,
    pub(crate) organizations: Option<&'a dyn DynOrganizationSync>,
    pub(crate) evictor: &'a Evictor,
}

/// Applies `event`; `None` for event types it does not handle, and for
/// organization events when organizations are not kept.
///
/// A deletion is dated by when it happened, never by when it was delivered
/// (svix signs each retry with the time of that attempt): see
/// [`deleted_at_ms`]. It evicts what it deleted from the layer's caches, so
/// that still-valid tokens are refused from the next request on; so does a
/// membership change (its role). An ended session and a ban are refused by
/// this process's layer before the store records them.
pub(crate) async fn apply(
    targets: &Targets<'_>,
    delivery: &VerifiedDelivery,
    event: &Event,
) -> Result<Option<SyncOutcome>, StoreError> {
    let deleted_at_ms = deleted_at_ms(event, delivery);
    let evictor = targets.evictor;
    match &event.change {
        Change::UserUpserted { user, .. } => {
            let outcome = targets
                .users
                .upsert_profile_dyn(&user.id, &user.profile(), user.updated_at)
                .await;
            // A ban takes effect even when the row could not be written; an
            // older state than the row's, or a deleted user's, changes nothing.
            // A state the store did not get is kept in memory until svix
            // delivers it again.
            if !matches!(outcome, Ok(SyncOutcome::Stale | SyncOutcome::Tombstoned)) {
                evictor
                    .record_block(&user.id, user.is_banned(), user.updated_at, outcome.is_ok())
                    .await;
            }
            outcome.map(Some)
        }
        Change::UserDeleted { clerk_id } => {
            let outcome = targets.users.delete_user_dyn(clerk_id, deleted_at_ms).await;
            // Even after a failure: the tombstone may be committed already.
            evictor.forget_user(clerk_id).await;
            outcome.map(Some)
        }
        Change::OrganizationUpserted { organization } => {
            let Some(store) = targets.organizations else {
                return Ok(None);
            };
            store.upsert_organization_dyn(organization).await.map(Some)
        }
        Change::OrganizationDeleted { clerk_id } => {
            let Some(store) = targets.organizations else {
                return Ok(None);
            };
            let outcome = store.delete_organization_dyn(clerk_id, deleted_at_ms).await;
            evictor.forget_organization(clerk_id).await;
            outcome.map(Some)
        }
        Change::MembershipUpserted { membership } => {
            let Some(store) = targets.organizations else {
                return Ok(None);
            };
            let outcome = store.upsert_membership_dyn(membership).await;
            evictor
                .forget_membership(&membership.organization.id, &membership.user.user_id)
                .await;
            outcome.map(Some)
        }
        Change::MembershipDeleted { membership } => {
            let Some(store) = targets.organizations else {
                return Ok(None);
            };
            let (organization, user) = (&membership.organization.id, &membership.user.user_id);
            let outcome = store
                .delete_membership_dyn(organization, user, deleted_at_ms)
                .await;
            evictor.forget_membership(organization, user).await;
            outcome.map(Some)
        }
        Change::SessionEnded {
            session_id,
            clerk_id,
            ..
        } => {
            let until_ms = evictor.end_session(session_id).await;
            targets
                .users
                .end_session_dyn(session_id, clerk_id, until_ms)
                .await
                .map(Some)
        }
        Change::Other { .. } => Ok(None),
    }
}

/// Envelope timestamps below this are in seconds (some of Clerk's published
/// examples use seconds); as milliseconds it is March 1973, as seconds the
/// year 5138.
const SECONDS_BELOW: i64 = 100_000_000_000;

/// When the event happened, in Unix ms: the envelope's `timestamp`, which
/// stays the same across retries, never later than the signed delivery
/// time. `None` when the envelope has none.
fn occurred_at_ms(event: &Event, delivery: &VerifiedDelivery) -> Option<i64> {
    let stamp = event.timestamp_ms?;
    let ms = if stamp < SECONDS_BELOW {
        stamp.saturating_mul(1000)
    } else {
        stamp
    };
    let delivered_ms = delivery.timestamp.saturating_mul(1000).saturating_add(999);
    Some(ms.min(delivered_ms))
}

/// The date a deletion's tombstone records.
///
/// - A membership's deletion is dated by the deleted membership: the later
///   of its own `updated_at` and the event's time, so that it never removes
///   a membership created or changed after it (the user invited back), and
///   a token issued before it never restores it.
/// - A user's or an organization's deletion is final whatever its date
///   (Clerk never reuses their ids); the date recorded is the event's time,
///   or the delivery time when the envelope has none.
fn deleted_at_ms(event: &Event, delivery: &VerifiedDelivery) -> i64 {
    let occurred = occurred_at_ms(event, delivery);
    match &event.change {
        Change::MembershipDeleted { membership } => {
            occurred.map_or(membership.updated_at, |at| at.max(membership.updated_at))
        }
        _ => occurred.unwrap_or_else(|| delivery.timestamp.saturating_mul(1000)),
    }
}
