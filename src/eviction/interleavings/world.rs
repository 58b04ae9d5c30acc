//! One run of the explored system: the real layer (its engine, caches and
//! tower service) over the model store, the layer's evictor, and the
//! actors: requests through the service, webhook deliveries through
//! `webhook::apply`, a listener listening again. Each actor is a real
//! future, polled one yield point at a time.

use std::{
    cell::RefCell,
    convert::Infallible,
    future::{Future, Ready, ready},
    pin::Pin,
    rc::Rc,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{ServiceExt, service_fn, util::ServiceFn};
use tower_layer::Layer;

use super::{
    explore::System,
    store::{ModelStore, Row},
};
use crate::{
    config::Config,
    engine::CONFIRM,
    eviction::Evictor,
    interleave::{Driven, point},
    layer::EnsureUserLayer,
    service::EnsureUser,
    testing::{SigningKey, session_claims},
    token::KeySource,
    webhook::{self, Event as Parsed, VerifiedDelivery},
};

const ISSUER: &str = "https://clerk.interleavings.test";
const USER: &str = "user_interleavings";
/// The point before a request enters the layer's service.
const DECIDE: &str = "service: call (decide, the repeat path)";
/// The store call an abandoned request is dropped at, its load in flight.
const ABANDON_AT: &str = "store: find_or_create";

/// What a webhook delivery carries.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Event {
    /// `user.deleted`.
    Delete,
    /// `session.revoked`.
    EndSession,
    /// `user.updated`, banned or not, as of `version` (Clerk's `updated_at`).
    Update { banned: bool, version: i64 },
}

/// Who acts.
#[derive(Clone, Copy, Debug)]
pub(super) enum Actor {
    /// A request with the session's token, through the layer's service.
    Request,
    /// A request dropped by its caller while its store call is in flight.
    Abandoned,
    /// A webhook delivery: its events applied in order.
    Delivery(&'static [Event]),
    /// The eviction listener listening again after a lost connection.
    Reconnect,
}

/// How a scenario starts, and who acts in it.
#[derive(Clone, Copy)]
pub(super) struct Scenario {
    pub(super) actors: &'static [Actor],
    /// The user's row before anything runs.
    pub(super) row: Row,
    /// Whether the table records bans.
    pub(super) records_bans: bool,
    /// Whether the store's writes fail (deliveries then answer `503`).
    pub(super) writes_fail: bool,
    /// Whether a request ran alone first: the token is cached, its user
    /// remembered.
    pub(super) warm: bool,
}

/// What stays the same over every run of an exploration: the keys, the
/// tokens, the configuration and a runtime for timers.
pub(super) struct Fixture {
    scenario: Scenario,
    config: Config,
    /// The token the actors carry, and one no actor saw.
    tokens: [String; 2],
    runtime: tokio::runtime::Runtime,
}

impl Fixture {
    pub(super) fn new(scenario: Scenario) -> Self {
        let key = SigningKey::generate("ins_interleavings");
        let keys = KeySource::pem(&key.public_key_pem()).expect("the test key");
        let config = Config::new(ISSUER, keys)
            .with_user_cache(16, std::time::Duration::from_secs(600))
            .with_token_cache_bytes(1 << 20);
        let claims = session_claims(ISSUER, USER, 600);
        let mut other = claims.clone();
        other["jti"] = serde_json::json!("another token of the session");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        Self {
            scenario,
            config,
            tokens: [key.sign(&claims), key.sign(&other)],
            runtime,
        }
    }

    /// A fresh system: a new layer and store, the actors at their start.
    pub(super) fn fresh(&self) -> World<'_> {
        let Scenario {
            row,
            records_bans,
            writes_fail,
            ..
        } = self.scenario;
        let store = ModelStore::new(row, records_bans, writes_fail);
        let layer = EnsureUserLayer::new(self.config.clone(), store.clone());
        let evictor = layer.evictor();
        let service = layer.layer(service_fn(serve as fn(_) -> _));
        if self.scenario.warm {
            let (status, _) = self.runtime.block_on(ask(service.clone(), &self.tokens[0]));
            assert_eq!(status, StatusCode::OK, "the warm-up request");
        }
        let notes = Rc::new(RefCell::new(Vec::new()));
        let actors = self
            .scenario
            .actors
            .iter()
            .enumerate()
            .map(|(index, &actor)| {
                let future: Pin<Box<dyn Future<Output = Outcome>>> = match actor {
                    Actor::Request | Actor::Abandoned => {
                        let (service, token) = (service.clone(), self.tokens[0].clone());
                        Box::pin(async move {
                            point(DECIDE).await;
                            let (status, code) = ask(service, &token).await;
                            Outcome::Answered(status, code)
                        })
                    }
                    Actor::Delivery(events) => Box::pin(deliver(
                        events,
                        store.clone(),
                        evictor.clone(),
                        Rc::clone(&notes),
                        index,
                    )),
                    Actor::Reconnect => {
                        let evictor = evictor.clone();
                        Box::pin(async move {
                            evictor.listening_again(records_bans).await;
                            Outcome::Done
                        })
                    }
                };
                Running {
                    actor,
                    name: name(self.scenario.actors, index),
                    future: Some(future),
                    woken: Arc::new(Flag(AtomicBool::new(true))),
                    at: "start",
                    history: Vec::new(),
                    outcome: None,
                }
            })
            .collect();
        World {
            fixture: self,
            service,
            actors,
            notes,
            stamped: Vec::new(),
            steps: 0,
            trace: String::new(),
        }
    }
}

/// An actor's name: requests `A`, `B`, …; deliveries `D1`, `D2`, …; a
/// reconnect `R`.
fn name(actors: &[Actor], index: usize) -> String {
    let before = &actors[..index];
    match actors[index] {
        Actor::Request | Actor::Abandoned => {
            let n = before
                .iter()
                .filter(|a| matches!(a, Actor::Request | Actor::Abandoned))
                .count();
            char::from(b'A' + u8::try_from(n).expect("few requests")).to_string()
        }
        Actor::Delivery(_) => {
            let n = before
                .iter()
                .filter(|a| matches!(a, Actor::Delivery(_)))
                .count();
            format!("D{}", n + 1)
        }
        Actor::Reconnect => "R".to_owned(),
    }
}

/// The app behind the layer: every request it gets is served.
type Inner =
    ServiceFn<fn(Request<Full<Bytes>>) -> Ready<Result<Response<Full<Bytes>>, Infallible>>>;

fn serve(_: Request<Full<Bytes>>) -> Ready<Result<Response<Full<Bytes>>, Infallible>> {
    ready(Ok(Response::new(Full::new(Bytes::new()))))
}

/// Sends `token` through `service`: the status, and the code of a refusal.
async fn ask(service: EnsureUser<Inner>, token: &str) -> (StatusCode, String) {
    let request = Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .expect("a request");
    let response = service
        .oneshot(request)
        .await
        .unwrap_or_else(|never| match never {});
    let status = response.status();
    let body = response.into_body().collect().await;
    let body = body
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let code = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|body| body["error"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, code)
}

/// Applies `events` in order, as the webhook receiver does, noting when
/// each begins and ends.
async fn deliver(
    events: &'static [Event],
    store: ModelStore,
    evictor: Evictor,
    notes: Rc<RefCell<Vec<Note>>>,
    actor: usize,
) -> Outcome {
    for (index, &event) in events.iter().enumerate() {
        point("deliver: receive").await;
        notes.borrow_mut().push(Note::Begun { actor, index });
        let parsed = Parsed::parse(event_json(event).to_string().as_bytes()).expect("an event");
        let delivery = VerifiedDelivery {
            id: format!("msg_{actor}_{index}"),
            timestamp: crate::clock::now_ms() / 1000,
        };
        let targets = webhook::Targets {
            users: &store,
            organizations: None,
            evictor: &evictor,
        };
        let outcome = webhook::apply(&targets, &delivery, &parsed).await;
        notes.borrow_mut().push(Note::Ended {
            actor,
            index,
            applied: outcome.is_ok(),
        });
    }
    Outcome::Done
}

/// The body Clerk would send for `event`.
fn event_json(event: Event) -> serde_json::Value {
    match event {
        Event::Delete => serde_json::json!({
            "type": "user.deleted", "object": "event",
            "data": { "object": "user", "id": USER, "deleted": true },
        }),
        Event::EndSession => serde_json::json!({
            "type": "session.revoked", "object": "event",
            "data": {
                "object": "session", "status": "revoked", "user_id": USER,
                "id": format!("sess_{}", USER.trim_start_matches("user_")),
            },
        }),
        Event::Update { banned, version } => serde_json::json!({
            "type": "user.updated", "object": "event",
            "data": {
                "object": "user", "id": USER, "email_addresses": [], "banned": banned,
                "created_at": 1, "updated_at": version,
            },
        }),
    }
}

/// What a delivery noted, stamped by the explorer with the step it ran in.
#[derive(Clone, Copy)]
enum Note {
    Begun {
        actor: usize,
        index: usize,
    },
    Ended {
        actor: usize,
        index: usize,
        applied: bool,
    },
}

/// How an actor ended.
#[derive(Debug)]
enum Outcome {
    Answered(StatusCode, String),
    Done,
    /// Dropped by its caller.
    Abandoned,
}

/// Sets itself when its actor is woken.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

struct Running {
    actor: Actor,
    name: String,
    future: Option<Pin<Box<dyn Future<Output = Outcome>>>>,
    woken: Arc<Flag>,
    /// The point the actor waits at: its next step starts there.
    at: &'static str,
    /// Each step it took, and the point it started from.
    history: Vec<(usize, &'static str)>,
    outcome: Option<Outcome>,
}

pub(super) struct World<'a> {
    fixture: &'a Fixture,
    service: EnsureUser<Inner>,
    actors: Vec<Running>,
    notes: Rc<RefCell<Vec<Note>>>,
    /// The notes, each with the step it was made in.
    stamped: Vec<(usize, Note)>,
    steps: usize,
    trace: String,
}

impl System for World<'_> {
    fn runnable(&self) -> Vec<usize> {
        (0..self.actors.len())
            .filter(|&n| {
                let actor = &self.actors[n];
                actor.future.is_some() && actor.woken.0.load(Ordering::SeqCst)
            })
            .collect()
    }

    fn step(&mut self, index: usize) {
        let step = self.steps;
        self.steps += 1;
        let actor = &mut self.actors[index];
        actor.woken.0.store(false, Ordering::SeqCst);
        let waker = Waker::from(Arc::clone(&actor.woken));
        let future = actor.future.as_mut().expect("a runnable actor");
        let (poll, reached) = {
            let _runtime = self.fixture.runtime.enter();
            let driven = Driven::start();
            let poll = future.as_mut().poll(&mut Context::from_waker(&waker));
            (poll, driven.reached())
        };
        let from = actor.at;
        actor.history.push((step, from));
        let to = match poll {
            Poll::Ready(outcome) => {
                let ended = format!("{outcome:?}");
                actor.outcome = Some(outcome);
                actor.future = None;
                ended
            }
            Poll::Pending => match reached {
                Some(label) if matches!(actor.actor, Actor::Abandoned) && label == ABANDON_AT => {
                    actor.future = None;
                    actor.outcome = Some(Outcome::Abandoned);
                    format!("{label}, then dropped by its caller")
                }
                Some(label) => {
                    actor.at = label;
                    label.to_owned()
                }
                None => {
                    actor.at = "(woken from waiting)";
                    "waits for another's load".to_owned()
                }
            },
        };
        self.trace.push_str(&format!(
            "{:>4}. {:<3} {from}  ->  {to}\n",
            step + 1,
            actor.name
        ));
        let notes: Vec<Note> = self.notes.borrow_mut().drain(..).collect();
        self.stamped
            .extend(notes.into_iter().map(|note| (step, note)));
    }

    fn verdict(&mut self) -> Result<(), String> {
        if let Some(stuck) = self.actors.iter().find(|actor| actor.future.is_some()) {
            return Err(format!(
                "{} never finishes, waiting at {}",
                stuck.name, stuck.at
            ));
        }
        for actor in &self.actors {
            let Some(Outcome::Answered(status, code)) = &actor.outcome else {
                continue;
            };
            if *status == StatusCode::OK {
                let decisive = decisive_step(&actor.history);
                if let Some(reason) = self.refused_at(decisive) {
                    return Err(format!(
                        "{} is served by its step {}, after {reason} was acknowledged",
                        actor.name,
                        decisive + 1
                    ));
                }
            } else if status.is_server_error() {
                return Err(format!("{} is answered {status} {code}", actor.name));
            }
        }
        // Afterwards: the actors' token (cached or not) and a new one.
        let expected = self.refused_at(usize::MAX);
        for token in &self.fixture.tokens {
            let service = self.service.clone();
            let (status, code) = self.fixture.runtime.block_on(ask(service, token));
            match (&expected, status) {
                (Some(reason), StatusCode::OK) => {
                    return Err(format!("a request afterwards is served, after {reason}"));
                }
                (None, status) if status != StatusCode::OK => {
                    return Err(format!("a request afterwards is refused: {status} {code}"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn trace(&self) -> String {
        self.trace.clone()
    }
}

/// The step that decided a served request: the last that confirmed its
/// answers with the ledger, or, on the repeat path, the call itself.
fn decisive_step(history: &[(usize, &'static str)]) -> usize {
    history
        .iter()
        .rev()
        .find(|(_, from)| *from == CONFIRM)
        .or_else(|| history.iter().find(|(_, from)| *from == DECIDE))
        .map(|&(step, _)| step)
        .expect("a request steps through the service")
}

impl World<'_> {
    /// The event that must refuse a request deciding at `step`: one that
    /// ended before it (a deletion or an end applied; a ban, applied or
    /// held in memory), unless a newer state had begun to lift it.
    fn refused_at(&self, step: usize) -> Option<String> {
        let event = |actor: usize, index: usize| match self.actors[actor].actor {
            Actor::Delivery(events) => events[index],
            _ => unreachable!("only deliveries note"),
        };
        let ended: Vec<(Event, bool)> = self
            .stamped
            .iter()
            .filter(|(at, _)| *at < step)
            .filter_map(|(_, note)| match *note {
                Note::Ended {
                    actor,
                    index,
                    applied,
                } => Some((event(actor, index), applied)),
                Note::Begun { .. } => None,
            })
            .collect();
        if ended.contains(&(Event::Delete, true)) {
            return Some("the deletion".to_owned());
        }
        if ended.iter().any(|(event, _)| *event == Event::EndSession) {
            return Some("the session's end".to_owned());
        }
        let begun_versions = || {
            self.stamped
                .iter()
                .filter(|(at, _)| *at < step)
                .filter_map(|(_, note)| match *note {
                    Note::Begun { actor, index } => match event(actor, index) {
                        Event::Update { version, .. } => Some(version),
                        _ => None,
                    },
                    Note::Ended { .. } => None,
                })
        };
        // The newest ban state delivered, applied or (a ban the store
        // could not write) held in memory; else the row's.
        let newest = ended
            .iter()
            .filter_map(|&(event, applied)| match event {
                Event::Update { banned, version } if applied || banned => Some((version, banned)),
                _ => None,
            })
            .max();
        let row = match self.fixture.scenario.row {
            Row::Live { banned, version } => Some((version, banned)),
            _ => None,
        };
        match newest.max(row) {
            Some((version, true)) if !begun_versions().any(|newer| newer > version) => {
                Some(format!("the ban of version {version}"))
            }
            _ => None,
        }
    }
}
