//! The model as the explorer sees it: a world started from a scenario,
//! whose actors are its requests and deliveries, and the properties checked
//! when every actor is done.

use super::{
    event::Delivery,
    explore::Model,
    request::{At, Outcome, Path, Request},
    setting::{NOW_MS, Row, SESSION, TOKENS, USER},
    world::{Scenario, UserAnswers, World},
};
use crate::eviction::Subject;

/// The world of `scenario`, after its warm-up request if it has one.
pub(super) fn start(scenario: &Scenario) -> World {
    let mut world = World::new(scenario);
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

impl World {
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
