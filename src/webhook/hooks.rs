//! The app's own reaction to each delivery: [`WebhookHooks`].

use std::{future::Future, pin::Pin};

use super::{Event, VerifiedDelivery};
use crate::store::SyncOutcome;

/// The error type hooks return: any error, sent to the logs only.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A verified delivery after the store has applied it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AppliedEvent {
    /// The svix message id and signed send time.
    pub delivery: VerifiedDelivery,
    /// The event, with the full user object for `user.created`/`user.updated`.
    pub event: Event,
    /// What the store did; `None` for event types the receiver does not apply.
    pub outcome: Option<SyncOutcome>,
}

/// Code the app runs right after each verified delivery is applied.
///
/// [`after_apply`](Self::after_apply) sees every verified event, including
/// ignored ones (a stale update, an event for a deleted user, an event type
/// the store does not handle). When it fails, the delivery is answered
/// `500 hook_failed`, so svix delivers it again; applying is idempotent,
/// but the hook runs again too, so make it idempotent as well (the
/// delivery id is a natural key). A retry may report a different outcome
/// than the first attempt (`updated` where it said `created`): decide on
/// the event type rather than on the outcome.
///
/// Svix waits 15 s for an answer; queue slow work rather than doing it here.
///
/// ```
/// use ensure_user::webhook::{AppliedEvent, BoxError, Change, WebhookHooks};
///
/// struct Welcome;
///
/// impl WebhookHooks for Welcome {
///     async fn after_apply(&self, applied: &AppliedEvent) -> Result<(), BoxError> {
///         if let Change::UserUpserted { user, created: true } = &applied.event.change {
///             if let Some(email) = user.primary_email() {
///                 // Queue a welcome email, keyed by `applied.delivery.id`.
///                 let _ = (email, &applied.delivery.id);
///             }
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait WebhookHooks: Send + Sync + 'static {
    /// Runs after `applied` was written. The default does nothing.
    fn after_apply(
        &self,
        applied: &AppliedEvent,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = applied;
        async { Ok(()) }
    }
}

/// No hooks.
impl WebhookHooks for () {}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`WebhookHooks`] made object-safe, so the receiver has no hooks type parameter.
pub(crate) trait DynWebhookHooks: Send + Sync + 'static {
    fn after_apply_dyn<'a>(
        &'a self,
        applied: &'a AppliedEvent,
    ) -> BoxFuture<'a, Result<(), BoxError>>;
}

impl<H: WebhookHooks> DynWebhookHooks for H {
    fn after_apply_dyn<'a>(
        &'a self,
        applied: &'a AppliedEvent,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(self.after_apply(applied))
    }
}
