//! Clerk webhooks: the users table kept in step with Clerk.
//!
//! The layer creates a user's row on first sight; webhooks keep it current
//! and remove it when the user is deleted in Clerk. [`WebhookReceiver`]
//! takes Clerk's deliveries (sent by svix):
//!
//! - it verifies the svix signature over the raw body before reading it,
//!   against one or several secrets ([`WebhookVerifier`]), and refuses
//!   deliveries more than 5 minutes off;
//! - `user.created` and `user.updated` upsert the row's profile, last write
//!   wins on the user's `updated_at`, so a late older event changes nothing;
//! - `user.deleted` records a tombstone, removes the row and evicts the user
//!   from the layer, whose still-valid tokens for that user then get
//!   `401 user_deleted`; later events for the user are acknowledged and
//!   ignored. On PostgreSQL the deletion also reaches the layers of other
//!   instances that listen for it (see [`eviction`](crate::eviction));
//! - a `user.updated` that bans the user (`banned`, or `deprovisioned` by
//!   directory sync) refuses them at once (`401 user_banned`), new tokens
//!   included, until a newer one unbans them;
//! - `session.revoked`, `session.ended` and `session.removed` refuse every
//!   token of that session at once (`401 session_ended`), for as long as
//!   one could still be valid; the user's other sessions go on;
//! - organization and membership events keep those rows, when the
//!   receiver keeps organizations (`with_organizations`);
//! - every other event type is acknowledged and ignored;
//! - [`WebhookHooks`] lets the app react after each event is applied.
//!
//! Deliveries are idempotent: a duplicate or a retry converges on the same
//! rows. Each one is logged (target `ensure_user`) with its svix id, event
//! type, Clerk user id and outcome; bodies and secrets never are.
//!
//! # Responses
//!
//! Bodies are small JSON: `{"outcome": code}` on success, `{"error": code,
//! "message": text}` otherwise. Svix retries anything but a `2xx`.
//!
//! | status | code | when |
//! |---|---|---|
//! | `200` | `created`, `updated`, `deleted`, `not_found`, `ended` | applied (`not_found`: deleted a user who had no row; `ended`: a session's end recorded) |
//! | `200` | `not_kept` | a session's end, refused by this process only: the store keeps no record of it |
//! | `200` | `stale`, `tombstoned`, `ignored` | ignored: an older profile, a deleted user, another event type |
//! | `400` | `missing_header`, `invalid_header`, `invalid_timestamp` | svix headers absent or malformed |
//! | `400` | `malformed_json`, `invalid_event`, `unreadable_body` | signed, but not a usable event |
//! | `401` | `invalid_signature`, `timestamp_too_old`, `timestamp_in_future` | not from Clerk, or replayed |
//! | `405` | `method_not_allowed` | not a `POST` |
//! | `413` | `body_too_large` | over the body limit (1 MiB by default) |
//! | `500` | `hook_failed` | applied, but a hook failed |
//! | `503` | `store_unavailable` | the database failed (with `Retry-After`) |
//!
//! # Example
//!
//! ```no_run
//! use axum::{Json, Router, routing::get};
//! use ensure_user::{Config, EnsureUserLayer, LocalUser, store::SqliteUserStore};
//! use ensure_user::webhook::{WebhookReceiver, WebhookVerifier};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = SqliteUserStore::new(sqlx::SqlitePool::connect("sqlite://app.db?mode=rwc").await?);
//! store.migrate().await?;
//! let layer = EnsureUserLayer::new(Config::from_env()?, store.clone());
//! let verifier = WebhookVerifier::from_env()?; // CLERK_WEBHOOK_SECRET
//! let webhooks = WebhookReceiver::new(verifier, store, layer.evictor());
//!
//! let app: Router = Router::new()
//!     .route("/me", get(|user: LocalUser| async move { Json(user.id()) }))
//!     .layer(layer)
//!     // After `.layer`: svix sends no session token.
//!     .merge(webhooks.into_router("/webhooks/clerk"));
//! # Ok(()) }
//! ```

mod apply;
mod event;
pub(crate) mod hooks;
mod receiver;
mod signature;

#[cfg(test)]
pub(crate) use apply::{Targets, apply};
pub use event::{Change, Event, EventError};
pub use hooks::{AppliedEvent, BoxError, WebhookHooks};
pub use receiver::{DEFAULT_BODY_LIMIT, WebhookReceiver};
pub use signature::{
    DEFAULT_TOLERANCE, InvalidSecret, SECRET_ENV, SignatureError, VerifiedDelivery, WebhookSecret,
    WebhookVerifier, sign,
};
