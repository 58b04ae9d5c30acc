//! Every interleaving of the steps that race: requests verifying, looking
//! up and remembering a user, against webhook deliveries deleting the
//! user, ending the session, banning and unbanning. An explorer of our own
//! runs every schedule of the actors' steps, depth first, and checks that
//! once an event is acknowledged no request is served against it.
//!
//! # What is modelled
//!
//! One user, one session, two tokens of it. The actors are requests (the
//! steps of `Engine::decide` and `Engine::authenticate`, see `request`) and
//! deliveries (the steps of `webhook::apply` and the `Evictor`, up to the
//! acknowledgement, see `event`). They act on the layer's real
//! [`Ledger`](super::ledger::Ledger), `EndedSessions`, `Bans`,
//! `TokenCache` and `VerifiedToken`s; the user answers cache (`Answers`: a
//! cached answer, a load in flight shared by its waiters, inserted when
//! done whatever was invalidated meanwhile) and the store's row (last
//! write wins on the version, a tombstone forever) are plain models.
//!
//! # Which steps are atomic
//!
//! A step is one operation on shared state, in the code's order: a read or
//! write of one atomic or one map entry (the ledger's `stamp`, `confirm`
//! and `forget`, a token cache `get`, `insert` or removal, a user cache
//! `get`, `invalidate` or a finished load, `ended.contains`,
//! `bans.is_blocked` or `bans.record`, a store read or write). Each is
//! atomic in the code too: sequentially consistent atomics, papaya's and
//! quick_cache's per-entry operations, the answers cache's lock over its
//! loads in flight, one SQL statement. `Ledger::confirm` reads
//! several atomics, but sequentially consistent reads that only ever see
//! numbers grow are equivalent to one read at the last of them for what it
//! decides. What happens between two steps (the signature check, matching
//! an answer) touches nothing another actor sees.
//!
//! # The properties
//!
//! - Once an event refusing the user or the session (a deletion, an end, a
//!   ban not yet overridden by a newer unban that has begun) is
//!   acknowledged, no request's decisive step lets it through: neither a
//!   ledger confirmation, nor a token cache hit later served by the repeat
//!   path. A request that made its decisive step before may still finish:
//!   it raced the event.
//! - When every actor is done, a new request with the same token and one
//!   with a new token are refused if an event requires it, and served
//!   otherwise (a stale refusal is a failure too).
//!
//! Each flaw of [`Flaw`] breaks one step of the protocol; the explorer must
//! find a schedule breaking a property for each, so that the properties
//! are shown able to fail.
//!
//! # What is not modelled
//!
//! Organizations and memberships (confirmed by the same ledger calls);
//! forgetting everything (`Evictor::forget_all`, the listener
//! reconnecting) and the generations it moves on; other instances and
//! their announcements (`Evictor::hear` runs the same steps); expiry and
//! eviction by size in any cache, and the sweeps; store failures and
//! timeouts; a ledger bucket shared by the user and the session (it only
//! makes answers look stale). The memory orderings weaker than sequential
//! consistency (the token entry's `Acquire`/`AcqRel`) are taken as
//! sequentially consistent.

mod event;
mod event_steps;
mod explore;
mod model;
mod request;
mod request_steps;
mod setting;
mod world;

use std::time::Instant;

use event::Event;
use explore::{Memo, Report, explore};
use setting::{Flaw, Row};
use world::Scenario;

const LIVE: Row = Row::Live {
    banned: false,
    version: 0,
};
const DELETE: &[Event] = &[Event::Delete];
const END_SESSION: &[Event] = &[Event::EndSession];
const BAN: &[Event] = &[Event::Update {
    banned: true,
    version: 1,
}];
const UNBAN: &[Event] = &[Event::Update {
    banned: false,
    version: 2,
}];
const BAN_THEN_UNBAN: &[Event] = &[
    Event::Update {
        banned: true,
        version: 1,
    },
    Event::Update {
        banned: false,
        version: 2,
    },
];
const NEWER_BAN: &[Event] = &[Event::Update {
    banned: true,
    version: 2,
}];
const OLDER_UNBAN: &[Event] = &[Event::Update {
    banned: false,
    version: 1,
}];

fn scenario(requests: &'static [char], deliveries: &'static [&'static [Event]]) -> Scenario {
    Scenario {
        requests,
        deliveries,
        row: LIVE,
        records_bans: true,
        warm: false,
        flaw: Flaw::None,
    }
}

/// Explores `scenario`, and prints what was explored.
fn run(name: &str, scenario: &Scenario, memo: Memo) -> Report {
    let started = Instant::now();
    let report = explore(&|| model::start(scenario), memo);
    println!(
        "{name}: {} schedules, {} states, {} steps run, {} violating, in {:?}",
        report.schedules,
        report.states,
        report.steps,
        report.violating,
        started.elapsed()
    );
    report
}

/// Explores `scenario` and expects no schedule to break a property, and
/// at least `floor` states explored.
fn holds(name: &str, scenario: &Scenario, floor: usize) {
    let report = run(name, scenario, Memo::On);
    if let Some(counterexample) = report.counterexample {
        panic!(
            "{name}: {} of {} schedules break a property; the first:\n{counterexample}",
            report.violating, report.schedules
        );
    }
    assert!(
        report.states >= floor,
        "{name}: only {} states explored",
        report.states
    );
}

/// Explores `scenario` with `flaw` and expects a schedule to break a
/// property; prints the first.
fn breaks(name: &str, scenario: Scenario, flaw: Flaw) {
    let scenario = Scenario { flaw, ..scenario };
    let report = run(name, &scenario, Memo::On);
    let counterexample = report
        .counterexample
        .unwrap_or_else(|| panic!("{name}: no schedule breaks a property with {flaw:?}"));
    println!(
        "{name}, the first of {} schedules found:\n{counterexample}",
        report.violating
    );
}

#[test]
fn a_deleted_user_is_never_served_after_the_acknowledgement() {
    holds("deletion", &scenario(&['A', 'B'], &[DELETE]), 10_000);
}

#[test]
fn an_ended_session_is_never_served_after_the_acknowledgement() {
    holds("session end", &scenario(&['A', 'B'], &[END_SESSION]), 2_500);
}

#[test]
fn a_banned_user_is_never_served_after_the_acknowledgement() {
    holds("ban", &scenario(&['A', 'B'], &[BAN]), 5_000);
    let without_column = Scenario {
        records_bans: false,
        ..scenario(&['A', 'B'], &[BAN])
    };
    holds("ban, the table recording no bans", &without_column, 4_500);
}

#[test]
fn a_cached_token_is_never_served_after_the_acknowledgement() {
    const DELIVERIES: [&[&[Event]]; 3] = [&[END_SESSION], &[DELETE], &[BAN]];
    for (name, deliveries) in ["session end", "deletion", "ban"]
        .into_iter()
        .zip(DELIVERIES)
    {
        let warm = Scenario {
            warm: true,
            ..scenario(&['A', 'B'], deliveries)
        };
        let name = format!("cached token, {name}");
        holds(&name, &warm, 200);
    }
}

#[test]
fn a_ban_holds_until_the_unban_begins() {
    holds("ban then unban", &scenario(&['A'], &[BAN_THEN_UNBAN]), 500);
}

#[test]
fn the_newest_state_wins_whatever_the_order_of_deliveries() {
    holds(
        "newer ban, older unban",
        &scenario(&['A'], &[NEWER_BAN, OLDER_UNBAN]),
        500,
    );
    holds(
        "newer unban, older ban",
        &scenario(&['A'], &[UNBAN, BAN]),
        500,
    );
}

#[test]
fn an_unban_of_a_ban_recorded_before_the_process_started() {
    holds("unban of a ban from the store", &banned_row(&['A']), 100);
}

/// The user banned in the store, not in memory, then unbanned.
fn banned_row(requests: &'static [char]) -> Scenario {
    Scenario {
        row: Row::Live {
            banned: true,
            version: 1,
        },
        ..scenario(requests, &[UNBAN])
    }
}

#[test]
fn every_step_of_the_protocol_is_needed() {
    let flawed = [
        (Flaw::ChecksBeforeStamp, scenario(&['A'], &[END_SESSION])),
        (Flaw::NoChecks, scenario(&['A'], &[END_SESSION])),
        (Flaw::EndWithoutLedger, scenario(&['A'], &[END_SESSION])),
        (Flaw::NoConfirm, scenario(&['A'], &[DELETE])),
        (Flaw::TokensBeforeLedger, scenario(&['A', 'B'], &[DELETE])),
        (Flaw::StampedByWaiter, scenario(&['A', 'B'], &[DELETE])),
        (Flaw::UnbanWithoutLedger, banned_row(&['A'])),
    ];
    for (flaw, scenario) in flawed {
        breaks(&format!("{flaw:?}"), scenario, flaw);
    }
}

#[test]
fn remembering_states_explores_as_running_every_schedule_would() {
    for (name, scenario) in [
        ("deletion", scenario(&['A'], &[DELETE])),
        ("session end", scenario(&['A'], &[END_SESSION])),
        (
            "checks before the stamp",
            Scenario {
                flaw: Flaw::ChecksBeforeStamp,
                ..scenario(&['A'], &[END_SESSION])
            },
        ),
    ] {
        let remembered = run(name, &scenario, Memo::On);
        let every = run(name, &scenario, Memo::Off);
        assert_eq!(
            (remembered.schedules, remembered.violating),
            (every.schedules, every.violating),
            "{name}"
        );
    }
}
