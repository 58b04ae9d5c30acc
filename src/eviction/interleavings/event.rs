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

use super::world::{Flaw, Row, SESSION, USER, World};
use crate::{LocalId, eviction::Subject, store::SyncOutcome};

use super::world::NOW_MS;

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

    fn first_step(self, flaw: Flaw) -> Step {
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
    fn subject(self) -> Subject<'static> {
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
    position: usize,
    /// Whether the current event's first step has run.
    begun: bool,
    at: Step,
    flaw: Flaw,
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
    fn forget_user(&self) -> Step {
        if self.flaw == Flaw::TokensBeforeLedger {
            Step::ForgetTokens(Forgotten::User)
        } else {
            Step::LedgerForget(Forgotten::User)
        }
    }
}

impl World {
    /// Runs delivery `index`'s next step.
    pub(super) fn delivery_step(&mut self, index: usize) {
        let mut delivery = self.deliveries[index].clone();
        let event = delivery.events[delivery.position];
        let who = char::from(b'1' + index as u8);
        delivery.begun = true;
        let tokens_first = self.flaw == Flaw::TokensBeforeLedger;
        delivery.at = match delivery.at {
            Step::StoreDelete => {
                self.row = Row::Tombstone;
                self.note(who, || format!("{event:?}: store: tombstone for {USER}"));
                delivery.forget_user()
            }
            Step::EndedInsert => {
                self.ended.insert(SESSION, NOW_MS + 60_000, NOW_MS);
                self.note(who, || format!("{event:?}: ended.insert({SESSION})"));
                if self.flaw == Flaw::EndWithoutLedger {
                    Step::ForgetTokens(Forgotten::Session)
                } else {
                    Step::LedgerForget(Forgotten::Session)
                }
            }
            Step::StoreUpsert => {
                let Event::Update { banned, version } = event else {
                    unreachable!("only an update upserts");
                };
                let outcome = self.upsert(banned, version);
                self.note(who, || {
                    format!("{event:?}: store: upsert_profile = {outcome:?}")
                });
                match outcome {
                    SyncOutcome::Stale | SyncOutcome::Tombstoned => Step::Acknowledge,
                    _ => Step::BansRecord,
                }
            }
            Step::BansRecord => {
                let Event::Update { banned, version } = event else {
                    unreachable!("only an update records a ban");
                };
                let was = self.bans.record(USER, banned, version, NOW_MS);
                self.note(who, || format!("{event:?}: bans.record = {was:?}"));
                match was {
                    None => Step::Acknowledge,
                    Some(was) if was != banned => delivery.forget_user(),
                    Some(_) if !banned && self.flaw == Flaw::UnbanWithoutLedger => Step::BannedRow,
                    Some(_) if !banned => Step::UnbanForget,
                    Some(_) => Step::Acknowledge,
                }
            }
            Step::UnbanForget => {
                self.ledger.forget(Subject::User(USER));
                self.note(who, || {
                    format!("{event:?}: ledger.forget(User(\"{USER}\"))")
                });
                Step::BannedRow
            }
            Step::BannedRow => {
                let holds = self
                    .users
                    .cached
                    .is_some_and(|cached| cached.answer == super::world::Answer::Banned);
                self.note(who, || {
                    format!("{event:?}: users.holds({USER}, banned) = {holds}")
                });
                if holds {
                    delivery.forget_user()
                } else {
                    Step::Acknowledge
                }
            }
            Step::LedgerForget(forgotten) => {
                self.ledger.forget(forgotten.subject());
                self.note(who, || {
                    format!("{event:?}: ledger.forget({:?})", forgotten.subject())
                });
                match (forgotten, tokens_first) {
                    (Forgotten::User, _) => Step::Invalidate,
                    (Forgotten::Session, false) => Step::ForgetTokens(Forgotten::Session),
                    (Forgotten::Session, true) => Step::Acknowledge,
                }
            }
            Step::Invalidate => {
                self.users.cached = None;
                self.note(who, || format!("{event:?}: users.invalidate({USER})"));
                if tokens_first {
                    Step::Acknowledge
                } else {
                    Step::ForgetTokens(Forgotten::User)
                }
            }
            Step::ForgetTokens(forgotten) => {
                // Every token of the model is the user's and the session's.
                let mut removed = Vec::new();
                for token in super::world::TOKENS {
                    if let Some(entry) = self.tokens.held(token.as_bytes()) {
                        removed.push(self.entry_index(&entry));
                    }
                }
                self.tokens.forget_where(|verified| match forgotten {
                    Forgotten::User => verified.claims.sub == USER,
                    Forgotten::Session => verified.claims.sid == SESSION,
                });
                self.note(who, || {
                    format!("{event:?}: forget_tokens({forgotten:?}) removes entries {removed:?}")
                });
                match (forgotten, tokens_first) {
                    (_, false) => Step::Acknowledge,
                    (Forgotten::User, true) => Step::LedgerForget(Forgotten::User),
                    (Forgotten::Session, true) => Step::EndedInsert,
                }
            }
            Step::Acknowledge => {
                self.note(who, || format!("{event:?}: acknowledged"));
                delivery.position += 1;
                delivery.begun = false;
                match delivery.events.get(delivery.position) {
                    Some(next) => next.first_step(self.flaw),
                    None => Step::Acknowledge,
                }
            }
        };
        self.deliveries[index] = delivery;
    }

    /// `UserSync::upsert_profile` on the modeled row: last write wins on
    /// the version, an equal one applied again; a tombstone stays.
    fn upsert(&mut self, banned: bool, version: i64) -> SyncOutcome {
        match self.row {
            Row::Tombstone => SyncOutcome::Tombstoned,
            Row::Live { version: kept, .. } if version < kept => SyncOutcome::Stale,
            Row::Live { .. } => {
                self.row = Row::Live {
                    banned: banned && self.records_bans,
                    version,
                };
                SyncOutcome::Updated(LocalId::Int(1))
            }
        }
    }
}
