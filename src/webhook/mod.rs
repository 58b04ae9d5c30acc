//! Clerk webhooks: verifying svix deliveries and reading Clerk's events.

mod event;
mod signature;

pub use event::{ClerkUser, EmailAddress, Event, EventError, UserEvent};
pub use signature::{
    DEFAULT_TOLERANCE, InvalidSecret, SECRET_ENV, SignatureError, VerifiedDelivery, WebhookSecret,
    WebhookVerifier, sign,
};
