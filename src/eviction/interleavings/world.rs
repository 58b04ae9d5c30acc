//! The model's state: the layer's real ledger, ended sessions, bans,
//! token cache and verified tokens; plain models of the user answers (moka)
//! and of the store; the actors; and the properties checked.

use std::sync::Arc;

use super::{
    event::{Delivery, Event},
    explore::Model,
    request::{At, Outcome, Path, Request},
};
use crate::{
    eviction::{
        Subject,
        ended::{Bans, EndedSessions},
        ledger::Ledger,
    },
    token::{SessionClaims, cache::TokenCache, entry::VerifiedToken},
};

pub(super) const USER: &str = "user_u";
pub(super) const SESSION: &str = "sess_s";
/// The one instant of the model: nothing expires while it runs.
pub(super) const NOW_MS: i64 = 1_700_000_000_000;

/// The tokens of the session: requests carry the first; the final check
/// also tries a new one.
pub(super) const TOKENS: [&str; 2] = ["header.payload.signature-T", "header.payload.signature-N"];

/// A protocol deliberately broken, to show that the explorer finds what
/// each step of the real one is for. [`Flaw::None`] is the real protocol.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) enum Flaw {
    None,
    /// A lookup checks ended sessions and bans before taking its stamp.
    ChecksBeforeStamp,
    /// Ending a session records nothing in the ledger.
    EndWithoutLedger,
    /// The evictor forgets tokens first, then records in the ledger.
    TokensBeforeLedger,
    /// A shared load's answer carries the stamp of each request waiting for
    /// it, instead of the stamp of the lookup that ran it.
    StampedByWaiter,
    /// A lookup checks neither ended sessions nor bans.
    NoChecks,
    /// A live answer is served without the ledger's confirmation.
    NoConfirm,
    /// An unban that changes nothing in memory records nothing in the
    /// ledger, and evicts a banned row only if it is cached already.
    UnbanWithoutLedger,
}

/// What the store holds for the user.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) enum Row {
    Live { banned: bool, version: i64 },
    Tombstone,
}

/// The store's answer about the user, as `Engine::user` reads a
/// `Resolution`: `Existing` and `Created` are `Live`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) enum Answer {
    Live,
    Banned,
    Deleted,
}

/// An answer and the stamp of the lookup that loaded it (`answers::Stamped`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) struct Stamped {
    pub(super) answer: Answer,
    pub(super) stamp: u64,
}

/// The user answers cache (`Answers`, moka) for the one user: an answer
/// cached, and whether a load is in flight (moka's waiter for the key;
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
    trace: Option<Vec<String>>,
}

impl World {
    pub(super) fn new(scenario: &Scenario) -> Self {
        let mut world = Self {
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
        };
        if scenario.warm {
            let outcome = world.run_alone(Request::new('W', 0));
            assert_eq!(
                outcome,
                Outcome::Served(Path::Lookup),
                "the warm-up request"
            );
        }
        world
    }

    /// The claims of every token of the model: one user, one session.
    pub(super) fn claims() -> SessionClaims {
        serde_json::from_value(serde_json::json!({
            "sub": USER,
            "sid": SESSION,
            "iss": "https://clerk.example.test",
            "iat": NOW_MS / 1000,
            "exp": NOW_MS / 1000 + 60,
        }))
        .expect("claims")
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

    /// The last number the ledger gave a forget of `subject` (or of
    /// everything), as `confirm` sees it: the newest stamp it refuses.
    fn forgotten(&self, subject: Subject<'_>) -> u64 {
        (1..self.ledger.stamp())
            .rev()
            .find(|&stamp| self.ledger.confirm(&[(subject, stamp)]).is_none())
            .unwrap_or(0)
    }

    /// Runs a request alone from its first step to its outcome.
    fn run_alone(&mut self, request: Request) -> Outcome {
        let index = self.requests.len();
        self.requests.push(request);
        loop {
            if let At::Done(outcome) = self.requests[index].at {
                return outcome;
            }
            // Alone, no step can break the properties.
            let _ = self.request_step(index);
        }
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
            bans.record(USER, blocked, version, NOW_MS);
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

/// Everything the rest of a schedule depends on: the actors, the modeled
/// cache and store, and what the real structures answer.
#[derive(PartialEq, Eq, Hash)]
pub(super) struct Key {
    requests: Vec<Request>,
    deliveries: Vec<Delivery>,
    users: UserAnswers,
    row: Row,
    /// The next stamp, the generation, and the last forget of the user and
    /// of the session.
    ledger: [u64; 4],
    ended: bool,
    bans: Option<(bool, i64)>,
    /// The entry each token finds in the token cache.
    held: [Option<usize>; 2],
    /// Each entry's resolution: the generation it is served under.
    resolved: Vec<Option<u64>>,
}

impl Model for World {
    type Key = Key;

    fn enabled(&self) -> Vec<usize> {
        let requests = self.requests.iter().enumerate();
        let requests = requests
            .filter(|(_, request)| request.enabled())
            .map(|(i, _)| i);
        let first = self.requests.len();
        let deliveries = self.deliveries.iter().enumerate();
        let deliveries = deliveries
            .filter(|(_, delivery)| delivery.enabled())
            .map(|(i, _)| first + i);
        requests.chain(deliveries).collect()
    }

    fn step(&mut self, actor: usize) -> Result<(), String> {
        match actor.checked_sub(self.requests.len()) {
            None => self.request_step(actor),
            Some(delivery) => {
                self.delivery_step(delivery);
                Ok(())
            }
        }
    }

    /// A request for the same token, then one for a new token of the same
    /// session, each alone: refused while a window is open, served when
    /// none is (the newest state of the user allows it).
    fn finish(&mut self) -> Result<(), String> {
        let refusing = self.open_windows() != 0;
        for (name, token) in [('F', 0), ('G', 1)] {
            let outcome = self.run_alone(Request::new(name, token));
            let token = TOKENS[usize::from(token)];
            match (refusing, outcome) {
                (true, Outcome::Served(_)) => {
                    return Err(format!(
                        "after every event, a new request {name} with token {token} is served: {outcome:?}"
                    ));
                }
                (false, Outcome::Refused(_)) => {
                    return Err(format!(
                        "after every event, nothing refuses the user, yet a new request {name} with token {token} is refused: {outcome:?}"
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn key(&self) -> Key {
        let generation = self.ledger.generation();
        let held = TOKENS.map(|token| {
            self.tokens
                .held(token.as_bytes())
                .map(|entry| self.entry_index(&entry))
        });
        let resolved = self
            .entries
            .iter()
            .map(|entry| (0..=generation).find(|&generation| entry.resolved(generation).is_some()));
        Key {
            requests: self.requests.clone(),
            deliveries: self.deliveries.clone(),
            users: self.users,
            row: self.row,
            ledger: [
                self.ledger.stamp(),
                generation,
                self.forgotten(Subject::User(USER)),
                self.forgotten(Subject::Session(SESSION)),
            ],
            ended: self.ended.contains(SESSION, NOW_MS),
            bans: self.bans.recorded(USER),
            held,
            resolved: resolved.collect(),
        }
    }

    fn trace(&mut self) {
        self.trace = Some(Vec::new());
    }

    fn lines(&self) -> Vec<String> {
        self.trace.clone().unwrap_or_default()
    }
}
