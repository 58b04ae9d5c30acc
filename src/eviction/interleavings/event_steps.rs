//! The steps of a delivery, taken on the world: [`super::event`] lists
//! them and the code each one stands for.

use super::{
    event::{Event, Forgotten, Step},
    setting::{Answer, Flaw, NOW_MS, Row, SESSION, TOKENS, USER},
    world::World,
};
use crate::{LocalId, eviction::Subject, store::SyncOutcome};

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
                let was = self.bans.record(USER, banned, version, NOW_MS, true);
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
                    .is_some_and(|cached| cached.answer == Answer::Banned);
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
                for token in TOKENS {
                    if let Some(entry) = self.tokens.held(token.as_bytes()) {
                        removed.push(self.entry_index(&entry));
                    }
                }
                self.tokens.forget_where(|verified| match forgotten {
                    Forgotten::User => verified.claims.sub() == USER,
                    Forgotten::Session => verified.claims.sid() == SESSION,
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
