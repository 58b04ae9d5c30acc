//! Clerk event bodies, reduced to what a user sync needs.
//!
//! Every event is a JSON envelope `{"type", "object", "timestamp",
//! "instance_id", "data"}`. For `user.created` and `user.updated`, `data` is
//! the full user object (the same shape the Backend API returns); for
//! `user.deleted` it is a small deletion marker holding the id. Any other
//! event type is passed through as [`UserEvent::Other`] without looking at
//! `data`, so new or unrelated event kinds never break parsing.

use serde::Deserialize;
use serde_json::Value;

use crate::{
    ClerkUser,
    clerk_id::is_user_id,
    rejection::{Refusal, webhook},
};

/// A parsed webhook event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Event {
    /// The raw `type` field, e.g. `user.created`.
    pub event_type: String,
    /// The envelope's `timestamp`, when it is an integer.
    ///
    /// Documented as milliseconds, but some published examples use seconds,
    /// so prefer the signed delivery time or the user's `updated_at` for
    /// ordering decisions.
    pub timestamp_ms: Option<i64>,
    /// The Clerk instance that sent the event (`ins_…`), when present.
    pub instance_id: Option<String>,
    /// What the event means for the local user table.
    pub user: UserEvent,
}

/// The effect of an event on the synced user table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserEvent {
    /// A user was created (`created == true`) or updated; `user` is the
    /// complete current state, not a diff.
    Upsert {
        /// The user as Clerk now sees it.
        user: ClerkUser,
        /// `true` for `user.created`, `false` for `user.updated`.
        created: bool,
    },
    /// A user was deleted.
    Deleted {
        /// The deleted user's id (`user_…`).
        clerk_id: String,
    },
    /// Any event that does not concern users; its payload is not inspected.
    Other {
        /// The event's `type`, e.g. `session.created`.
        event_type: String,
    },
}

impl Event {
    /// Parses a raw webhook body. Parse only bodies whose signature was verified.
    ///
    /// Fails with [`EventError::MalformedJson`] when the body is not JSON,
    /// and with [`EventError::InvalidEvent`] when it is not an event
    /// envelope with a string `type`, or when a user event lacks a `user_`
    /// id in `data.id` (or, for an upsert, an integer `data.updated_at`).
    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        parse(body)
    }
}

fn parse(body: &[u8]) -> Result<Event, EventError> {
    let root: Value = serde_json::from_slice(body).map_err(EventError::MalformedJson)?;
    let Value::Object(mut envelope) = root else {
        return Err(EventError::InvalidEvent("body is not a JSON object"));
    };
    let event_type = match envelope.get("type") {
        Some(Value::String(kind)) if !kind.is_empty() => kind.clone(),
        Some(_) => return Err(EventError::InvalidEvent("`type` is not a non-empty string")),
        None => return Err(EventError::InvalidEvent("`type` is missing")),
    };
    let timestamp_ms = envelope.get("timestamp").and_then(Value::as_i64);
    let instance_id = envelope
        .get("instance_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let data = envelope.remove("data");

    let user = match event_type.as_str() {
        "user.created" | "user.updated" => {
            let data = data.ok_or(EventError::InvalidEvent("`data` is missing"))?;
            user_id(&data)?;
            if !data.get("updated_at").is_some_and(Value::is_i64) {
                return Err(EventError::InvalidEvent(
                    "`data.updated_at` is not an integer",
                ));
            }
            let user = ClerkUser::deserialize(data)
                .map_err(|_| EventError::InvalidEvent("`data` is not a user object"))?;
            UserEvent::Upsert {
                user,
                created: event_type == "user.created",
            }
        }
        "user.deleted" => {
            let data = data.ok_or(EventError::InvalidEvent("`data` is missing"))?;
            UserEvent::Deleted {
                clerk_id: user_id(&data)?.to_owned(),
            }
        }
        _ => UserEvent::Other {
            event_type: event_type.clone(),
        },
    };
    Ok(Event {
        event_type,
        timestamp_ms,
        instance_id,
        user,
    })
}

impl UserEvent {
    /// The Clerk user the event is about, if it is a user event.
    pub fn clerk_id(&self) -> Option<&str> {
        match self {
            Self::Upsert { user, .. } => Some(&user.id),
            Self::Deleted { clerk_id } => Some(clerk_id),
            Self::Other { .. } => None,
        }
    }
}

/// Extracts `data.id` and checks that it names a user.
fn user_id(data: &Value) -> Result<&str, EventError> {
    match data.get("id") {
        Some(Value::String(id)) if is_user_id(id) => Ok(id),
        Some(Value::String(_)) => Err(EventError::InvalidEvent("`data.id` is not a user id")),
        Some(_) => Err(EventError::InvalidEvent("`data.id` is not a string")),
        None => Err(EventError::InvalidEvent("`data.id` is missing")),
    }
}

/// Why a webhook body could not be turned into an [`Event`].
///
/// Messages never include body content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The body is not syntactically valid JSON.
    #[error("webhook body is not valid JSON")]
    MalformedJson(#[source] serde_json::Error),
    /// The body is JSON but not a usable event; the text says which part.
    #[error("invalid webhook event: {0}")]
    InvalidEvent(&'static str),
}

impl EventError {
    /// A stable `snake_case` code: `malformed_json` or `invalid_event`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.refusal().code()
    }

    /// How the receiver answers a delivery refused for this reason.
    pub(crate) fn refusal(&self) -> Refusal {
        match self {
            Self::MalformedJson(_) => webhook::MALFORMED_JSON,
            Self::InvalidEvent(_) => webhook::INVALID_EVENT,
        }
    }
}

#[cfg(test)]
mod tests;
