//! A webhook delivery, step by step, as `webhook::apply` and the
//! [`Evictor`](crate::eviction::Evictor) take it, up to the acknowledgement.
//!
//! | event | steps, in the code's order |
//! |---|---|
//! | `user.deleted` | `UserSync::delete_user` (the tombstone); `Evictor::forget_user`: `ledger.forget(user)`, `users.invalidate`, `forget_tokens(sub)`; acknowledged |
//! | a session ended | `Evictor::end_session`: `ended.insert`, `ledger.forget(session)`, `forget_tokens(sid)`; acknowledged |
//! | `user.updated` | `UserSync::upsert_profile` (stale or tombstoned: acknowledged); `Evictor::block_user`: `bans.record` (older: acknowledged); a change of state: `forget_user`'s steps; an unban that changes nothing in memory: `ledger.forget(user)`, `users.holds(banned)`, and `forget_user`'s steps if a banned row is cached; acknowledged |
//!
//! After `end_session`, `webhook::apply` records the ended session in the
//! store (`UserSync::end_session`), which no request reads: not modeled.
//! `forget_tokens` scans the token cache, then removes each entry it
//! judged, if the entry under that key is still doomed: with one token
//! that is one removal, which the model takes as one step.

use super::setting::{Flaw, SESSION, USER};
use crate::eviction::Subject;

/// What a delivery carries.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) enum Event {
    /// `user.deleted`.
    Delete,
    /// `session.revoked`, `session.ended`, `session.removed`.
    EndSession,
    /// `user.updated`, banned or not, as of `version` (Clerk's `updated_at`).
    Update { banned: bool, version: i64 },
}

impl Event {
    /// Whether requests must be refused once it is acknowledged.
    pub(super) fn refuses(self) -> bool {
        match self {
            Self::Delete | Self::EndSession => true,
            Self::Update { banned, .. } => banned,
        }
    }

    /// Whether `newer`, once begun, lifts what this event requires.
    pub(super) fn overridden_by(self, newer: Event) -> bool {
        match (self, newer) {
            (Self::Update { version, .. }, Self::Update { version: newer, .. }) => newer > version,
            _ => false,
        }
    }

    pub(super) fn first_step(self, flaw: Flaw) -> Step {
        match self {
            Self::Delete => Step::StoreDelete,
            Self::EndSession if flaw == Flaw::TokensBeforeLedger => {
                Step::ForgetTokens(Forgotten::Session)
            }
            Self::EndSession => Step::EndedInsert,
            Self::Update { .. } => Step::StoreUpsert,
        }
    }
}

/// Whose tokens a step forgets, and what it records in the ledger.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) enum Forgotten {
    User,
    Session,
}

impl Forgotten {
    pub(super) fn subject(self) -> Subject<'static> {
        match self {
            Self::User => Subject::User(USER),
            Self::Session => Subject::Session(SESSION),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) enum Step {
    StoreDelete,
    EndedInsert,
    StoreUpsert,
    BansRecord,
    /// `block_user`, an unban changing nothing in memory: the ledger first.
    UnbanForget,
    /// `block_user`: whether a banned row is cached.
    BannedRow,
    LedgerForget(Forgotten),
    Invalidate,
    ForgetTokens(Forgotten),
    Acknowledge,
}

/// One delivery actor: its events, applied in order, each acknowledged
/// before the next.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(super) struct Delivery {
    pub(super) events: &'static [Event],
    /// The event being applied; `events.len()` once all are acknowledged.
    pub(super) position: usize,
    /// Whether the current event's first step has run.
    pub(super) begun: bool,
    pub(super) at: Step,
    pub(super) flaw: Flaw,
}

impl Delivery {
    pub(super) fn new(events: &'static [Event], flaw: Flaw) -> Self {
        Self {
            events,
            position: 0,
            begun: false,
            at: events[0].first_step(flaw),
            flaw,
        }
    }

    pub(super) fn enabled(&self) -> bool {
        self.position < self.events.len()
    }

    pub(super) fn acknowledged(&self, event: usize) -> bool {
        self.position > event
    }

    pub(super) fn began(&self, event: usize) -> bool {
        self.position > event || (self.position == event && self.begun)
    }

    /// The steps of `Evictor::forget_user`, from the first.
    pub(super) fn forget_user(&self) -> Step {
        if self.flaw == Flaw::TokensBeforeLedger {
            Step::ForgetTokens(Forgotten::User)
        } else {
            Step::LedgerForget(Forgotten::User)
        }
    }
}
