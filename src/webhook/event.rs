//! Clerk event bodies, reduced to what the sync needs.
//!
//! Every event is a JSON envelope `{"type", "object", "timestamp",
//! "instance_id", "data"}`. For `user.created`/`updated` and
//! `organization.created`/`updated`, `data` is the full object (the same
//! shape the Backend API returns); `user.deleted` and `organization.deleted`
//! carry a small deletion marker holding the id; every
//! `organizationMembership.*` event carries the full membership, its
//! organization and its user; `session.*` events carry the session (with
//! its user). Any other event type is passed through as
//! [`Change::Other`] without looking at `data`, so new or unrelated event
//! kinds never break parsing.

use serde::Deserialize;
use serde_json::Value;

use crate::{
    clerk::ClerkMembership,
    clerk::ClerkOrganization,
    clerk::ClerkUser,
    clerk_id::{is_organization_id, is_session_id, is_user_id},
    rejection::{Refusal, webhook},
};

/// A parsed webhook event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Event {
    /// The raw `type` field, e.g. `user.created`.
    pub event_type: String,
    /// The envelope's `timestamp`, when it is an integer: when the event
    /// happened, the same on every retry (unlike the signed delivery time).
    ///
    /// Documented as milliseconds, but some published examples use seconds;
    /// the receiver reads a value too small for milliseconds as seconds
    /// when it dates a deletion.
    pub timestamp_ms: Option<i64>,
    /// The Clerk instance that sent the event (`ins_…`), when present.
    pub instance_id: Option<String>,
    /// What the event changes in the local tables.
    pub change: Change,
}

/// What an event changes in the local tables.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// A user was created (`created == true`) or updated; `user` is the
    /// complete current state, not a diff.
    UserUpserted {
        /// The user as Clerk now sees it.
        user: ClerkUser,
        /// `true` for `user.created`, `false` for `user.updated`.
        created: bool,
    },
    /// A user was deleted.
    UserDeleted {
        /// The deleted user's id (`user_…`).
        clerk_id: String,
    },
    /// An organization was created or updated: its complete current state.
    OrganizationUpserted {
        /// The organization as Clerk now sees it.
        organization: ClerkOrganization,
    },
    /// An organization was deleted, and its memberships with it.
    OrganizationDeleted {
        /// The deleted organization's id (`org_…`).
        clerk_id: String,
    },
    /// A membership was created or updated (a role change, say).
    MembershipUpserted {
        /// The membership as Clerk now sees it.
        membership: ClerkMembership,
    },
    /// A user left, or was removed from, an organization.
    MembershipDeleted {
        /// The membership as it was.
        membership: ClerkMembership,
    },
    /// A session ended: the user signed out (`session.ended`,
    /// `session.removed`), or the application revoked it
    /// (`session.revoked`, a ban included). Its tokens are refused from now
    /// on.
    SessionEnded {
        /// The session's id (`sess_…`), the `sid` of its tokens.
        session_id: String,
        /// The session's user (`user_…`).
        clerk_id: String,
        /// The session's status as Clerk reports it: `revoked`, `ended`,
        /// `removed`, or another state no token of which is valid.
        status: String,
    },
    /// Any other event; its payload is not inspected.
    Other {
        /// The event's `type`, e.g. `email.created`.
        event_type: String,
    },
}

impl Event {
    /// Parses a raw webhook body. Parse only bodies whose signature was verified.
    ///
    /// Fails with [`EventError::MalformedJson`] when the body is not JSON,
    /// and with [`EventError::InvalidEvent`] when it is not an event
    /// envelope with a string `type`, or when an event of a kind the sync
    /// applies lacks a valid Clerk id or an integer `updated_at` where it
    /// needs one.
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

    let change = change(&event_type, data)?;
    Ok(Event {
        event_type,
        timestamp_ms,
        instance_id,
        change,
    })
}

/// What an event of `event_type` with `data` changes.
fn change(event_type: &str, data: Option<Value>) -> Result<Change, EventError> {
    let data = || data.ok_or(EventError::InvalidEvent("`data` is missing"));
    Ok(match event_type {
        "user.created" | "user.updated" => {
            let data = data()?;
            user_id(&data)?;
            versioned(&data)?;
            let user = ClerkUser::deserialize(data)
                .map_err(|_| EventError::InvalidEvent("`data` is not a user object"))?;
            Change::UserUpserted {
                user,
                created: event_type == "user.created",
            }
        }
        "user.deleted" => Change::UserDeleted {
            clerk_id: user_id(&data()?)?.to_owned(),
        },
        "organization.created" | "organization.updated" => {
            let data = data()?;
            organization(&data)?;
            Change::OrganizationUpserted {
                organization: ClerkOrganization::deserialize(data).map_err(|_| {
                    EventError::InvalidEvent("`data` is not an organization object")
                })?,
            }
        }
        "organization.deleted" => Change::OrganizationDeleted {
            clerk_id: organization_id(&data()?)?.to_owned(),
        },
        "organizationMembership.created" | "organizationMembership.updated" => {
            Change::MembershipUpserted {
                membership: membership(data()?)?,
            }
        }
        "organizationMembership.deleted" => Change::MembershipDeleted {
            membership: membership(data()?)?,
        },
        "session.revoked" | "session.ended" | "session.removed" => ended_session(&data()?)?,
        // Another session event (`session.created`, `session.pending`) ends
        // the session only if it reports a state that is over.
        other if other.starts_with("session.") => match data().map(|data| ended_session(&data)) {
            Ok(Ok(ended @ Change::SessionEnded { .. })) if ended.is_over() => ended,
            _ => Change::Other {
                event_type: event_type.to_owned(),
            },
        },
        _ => Change::Other {
            event_type: event_type.to_owned(),
        },
    })
}

impl Change {
    /// Whether a session event reports a session no token of which is
    /// valid: any status but `active` and `pending`.
    fn is_over(&self) -> bool {
        matches!(self, Self::SessionEnded { status, .. } if status != "active" && status != "pending")
    }

    /// The Clerk user the event is about: the user of a user, membership
    /// or session event.
    pub fn clerk_id(&self) -> Option<&str> {
        match self {
            Self::UserUpserted { user, .. } => Some(&user.id),
            Self::UserDeleted { clerk_id } | Self::SessionEnded { clerk_id, .. } => Some(clerk_id),
            Self::MembershipUpserted { membership } | Self::MembershipDeleted { membership } => {
                Some(&membership.user.user_id)
            }
            Self::OrganizationUpserted { .. }
            | Self::OrganizationDeleted { .. }
            | Self::Other { .. } => None,
        }
    }

    /// The Clerk organization the event is about: that of an organization
    /// or membership event.
    pub fn organization_id(&self) -> Option<&str> {
        match self {
            Self::OrganizationUpserted { organization } => Some(&organization.id),
            Self::OrganizationDeleted { clerk_id } => Some(clerk_id),
            Self::MembershipUpserted { membership } | Self::MembershipDeleted { membership } => {
                Some(&membership.organization.id)
            }
            Self::UserUpserted { .. }
            | Self::UserDeleted { .. }
            | Self::SessionEnded { .. }
            | Self::Other { .. } => None,
        }
    }
}

/// Checks an organization object: its id and version.
fn organization(data: &Value) -> Result<(), EventError> {
    organization_id(data)?;
    versioned(data)
}

/// Reads a membership object, after checking its organization, user and version.
fn membership(data: Value) -> Result<ClerkMembership, EventError> {
    let organization_data = data
        .get("organization")
        .ok_or(EventError::InvalidEvent("`data.organization` is missing"))?;
    organization(organization_data)?;
    let user = data
        .get("public_user_data")
        .and_then(|user| user.get("user_id"))
        .and_then(Value::as_str);
    if !user.is_some_and(is_user_id) {
        return Err(EventError::InvalidEvent(
            "`data.public_user_data.user_id` is not a user id",
        ));
    }
    versioned(&data)?;
    ClerkMembership::deserialize(data)
        .map_err(|_| EventError::InvalidEvent("`data` is not a membership object"))
}

/// Reads a session object: its id, its user and its status.
fn ended_session(data: &Value) -> Result<Change, EventError> {
    let text = |field| data.get(field).and_then(Value::as_str);
    let session_id = text("id")
        .filter(|id| is_session_id(id))
        .ok_or(EventError::InvalidEvent("`data.id` is not a session id"))?;
    let clerk_id = text("user_id")
        .filter(|id| is_user_id(id))
        .ok_or(EventError::InvalidEvent("`data.user_id` is not a user id"))?;
    let status = text("status").ok_or(EventError::InvalidEvent("`data.status` is missing"))?;
    Ok(Change::SessionEnded {
        session_id: session_id.to_owned(),
        clerk_id: clerk_id.to_owned(),
        status: status.to_owned(),
    })
}

/// Checks that `data.updated_at` is an integer: the version of the object.
fn versioned(data: &Value) -> Result<(), EventError> {
    if data.get("updated_at").is_some_and(Value::is_i64) {
        Ok(())
    } else {
        Err(EventError::InvalidEvent("`updated_at` is not an integer"))
    }
}

/// Extracts `data.id` and checks that it names an organization.
fn organization_id(data: &Value) -> Result<&str, EventError> {
    match data.get("id") {
        Some(Value::String(id)) if is_organization_id(id) => Ok(id),
        Some(_) => Err(EventError::InvalidEvent("`id` is not an organization id")),
        None => Err(EventError::InvalidEvent("`id` is missing")),
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
