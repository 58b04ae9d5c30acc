//! The model's state: the layer's real ledger, ended sessions, bans,
//! token cache and verified tokens; plain models of the user answers (`Answers`)
//! and of the store; and the actors, each at its next step.

use std::sync::Arc;

use super::{
    event::{Delivery, Event},
    request::Request,
    setting::{Flaw, NOW_MS, Row, SESSION, Stamped, TOKENS, USER},
};
use crate::{
    eviction::{
        Subject,
        ended::{Bans, EndedSessions},
        ledger::Ledger,
    },
    token::{cache::TokenCache, entry::VerifiedToken},
};

/// The user answers cache (`Answers`) for the one user: an answer cached,
/// and whether a load is in flight (its entry among the loads in flight;
/// the requests waiting on it are in [`At::Wait`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub(super) struct UserAnswers {
    pub(super) cached: Option<Stamped>,
    pub(super) loading: bool,
}

/// How a scenario starts, and who acts in it.
pub(super) struct Scenario {
    /// The requests' names, each a request for the first token.
    pub(super) requests: &'static [char],
    /// The webhook deliveries, each a sequence of events applied in order.
    pub(super) deliveries: &'static [&'static [Event]],
    /// The user's row before anything runs.
    pub(super) row: Row,
    /// Whether the store's table records bans (a custom table may not).
    pub(super) records_bans: bool,
    /// Whether a request for the first token runs alone before anyone
    /// acts: the token is then cached, with its user remembered.
    pub(super) warm: bool,
    pub(super) flaw: Flaw,
}

pub(super) struct World {
    pub(super) flaw: Flaw,
    pub(super) ledger: Ledger,
    pub(super) ended: EndedSessions,
    pub(super) bans: Bans,
    pub(super) tokens: TokenCache,
    /// Every verified token made, in order: its index names it.
    pub(super) entries: Vec<Arc<VerifiedToken>>,
    pub(super) users: UserAnswers,
    pub(super) row: Row,
    pub(super) records_bans: bool,
    pub(super) requests: Vec<Request>,
    pub(super) deliveries: Vec<Delivery>,
    /// The lines of a traced run.
    pub(super) trace: Option<Vec<String>>,
}

impl World {
    pub(super) fn new(scenario: &Scenario) -> Self {
        Self {
            flaw: scenario.flaw,
            ledger: ledger(),
            ended: EndedSessions::default(),
            bans: Bans::default(),
            tokens: TokenCache::new(1 << 20),
            entries: Vec::new(),
            users: UserAnswers::default(),
            row: scenario.row,
            records_bans: scenario.records_bans,
            requests: scenario
                .requests
                .iter()
                .map(|&name| Request::new(name, 0))
                .collect(),
            deliveries: scenario
                .deliveries
                .iter()
                .map(|&events| Delivery::new(events, scenario.flaw))
                .collect(),
            trace: None,
        }
    }

    /// The index of `entry` among the entries made.
    pub(super) fn entry_index(&self, entry: &Arc<VerifiedToken>) -> usize {
        self.entries
            .iter()
            .position(|made| Arc::ptr_eq(made, entry))
            .expect("an entry the model made")
    }

    /// Records a line of a traced run; `line` is only built then.
    pub(super) fn note(&mut self, who: char, line: impl FnOnce() -> String) {
        if let Some(lines) = &mut self.trace {
            lines.push(format!("{who}  {}", line()));
        }
    }

    /// The refusal windows open now, one bit each: an event acknowledged
    /// that requires refusing the user or the session, and not overridden
    /// since by a newer event that has begun (a newer unban, for a ban).
    pub(super) fn open_windows(&self) -> u32 {
        let mut open = 0;
        for (d, delivery) in self.deliveries.iter().enumerate() {
            for (p, &event) in delivery.events.iter().enumerate() {
                if !delivery.acknowledged(p) || !event.refuses() {
                    continue;
                }
                let overridden = self.deliveries.iter().any(|other| {
                    other
                        .events
                        .iter()
                        .enumerate()
                        .any(|(q, &newer)| other.began(q) && event.overridden_by(newer))
                });
                if !overridden {
                    open |= 1 << (d * 8 + p);
                }
            }
        }
        open
    }
}

/// A copy to explore another step from: the real structures rebuilt to
/// answer as the originals do, with copies of the verified tokens.
impl Clone for World {
    fn clone(&self) -> Self {
        let generation = self.ledger.generation();
        let entries: Vec<Arc<VerifiedToken>> = self
            .entries
            .iter()
            .map(|entry| {
                let copy = Arc::new(VerifiedToken::new(entry.claims.clone(), 5_000));
                if let Some(resolved) =
                    (0..=generation).find_map(|g| entry.resolved(g).map(|r| (g, r)))
                {
                    copy.remember(resolved.0, resolved.1);
                }
                copy
            })
            .collect();
        let tokens = TokenCache::new(1 << 20);
        for token in TOKENS {
            if let Some(entry) = self.tokens.held(token.as_bytes()) {
                let copy = Arc::clone(&entries[self.entry_index(&entry)]);
                tokens.insert(Box::from(token.as_bytes()), copy, NOW_MS);
            }
        }
        let ended = EndedSessions::default();
        if self.ended.contains(SESSION, NOW_MS) {
            ended.insert(SESSION, NOW_MS + 60_000, NOW_MS);
        }
        let bans = Bans::default();
        if let Some((blocked, version)) = self.bans.recorded(USER) {
            bans.record(USER, blocked, version, NOW_MS, true);
        }
        Self {
            flaw: self.flaw,
            ledger: self.ledger.clone(),
            ended,
            bans,
            tokens,
            entries,
            users: self.users,
            row: self.row,
            records_bans: self.records_bans,
            requests: self.requests.clone(),
            deliveries: self.deliveries.clone(),
            trace: self.trace.clone(),
        }
    }
}

/// A fresh ledger whose buckets keep the user and the session apart.
/// Buckets are chosen by a hasher seeded at random, and sharing one only
/// makes answers look stale (loaded again): the model takes the common
/// case, so that every run of a schedule behaves the same. Number 1
/// goes to telling them apart; every stamp comes after it.
fn ledger() -> Ledger {
    loop {
        let ledger = Ledger::default();
        ledger.forget(Subject::User(USER));
        if ledger.confirm(&[(Subject::Session(SESSION), 1)]).is_some() {
            return ledger;
        }
    }
}
