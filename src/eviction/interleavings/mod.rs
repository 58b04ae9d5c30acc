//! Every interleaving of the steps that race, run on the real code:
//! requests through the layer's tower service (its engine, caches and
//! ledger), against webhook deliveries applied by `webhook::apply` and the
//! layer's [`Evictor`](super::Evictor) (deleting the user, ending the
//! session, banning and unbanning), a listener listening again, and a
//! request dropped by its caller while its load is in flight.
//!
//! # How
//!
//! The real code awaits a yield point (`crate::interleave::point`, compiled
//! in tests only) before each step that touches shared state: the ledger's
//! stamp and confirmation, the checks of ended sessions and bans, the
//! answers cache's lookup, joining or starting a load and keeping its
//! answer, a token's insertion and remembering, each step of the evictor,
//! each store call. The explorer (`explore`) polls the actors, real
//! futures, one point at a time, and runs every schedule within a bound on
//! preemptions, each from a fresh layer: nothing of the protocol is
//! restated here, so a flaw made in the real code is a flaw explored.
//! Only the store is a model (`store`): one user's row with the bundled
//! stores' rules, each call one step, as one SQL statement is.
//!
//! # The properties
//!
//! - Once an event refusing the user or the session is acknowledged (a
//!   deletion or an end applied; a ban applied, or held in memory when the
//!   store could not write it), no request is served by a decision taken
//!   after it (the ledger's confirmation, or the repeat path's cache hit),
//!   unless a newer state lifting a ban had begun. A request that decided
//!   before may still be served: it raced the event.
//! - Every actor finishes: none waits forever for a load its caller dropped.
//! - No request is answered with a server error.
//! - Afterwards, a request with the same token and one with a new token
//!   are refused if an event requires it, and served otherwise.
//!
//! # Shown able to fail
//!
//! Each of these flaws, made in the real code, makes a test below fail
//! (checked when the explorer was written; the test names the flaw):
//!
//! | flaw made in the real code | caught by |
//! |---|---|
//! | `Engine::resolve` checks ended sessions and bans before taking its stamp | `an_ended_session_is_never_served_after_the_acknowledgement` |
//! | `Engine::resolve` checks neither | the same, and `a_banned_user_…` |
//! | `Evictor::forget_user` forgets tokens before recording in the ledger | `a_cached_token_is_never_served_after_the_acknowledgement` |
//! | the session's end records nothing in the ledger | `an_ended_session_…` |
//! | `Engine::resolve` serves without the ledger's confirmation | `a_deleted_user_is_never_served_after_the_acknowledgement` |
//! | an unban that changes nothing in memory records nothing in the ledger | `an_unban_of_a_ban_recorded_before_the_process_started` |
//! | a listener listening again forgets every ban held in memory | `a_ban_the_store_never_got_outlives_a_reconnect` |
//!
//! # What is not explored
//!
//! Organizations and memberships (confirmed by the same ledger calls);
//! other instances' announcements (`Evictor::hear` runs the same evictor
//! steps); expiry and eviction by size; store timeouts; schedules beyond
//! the preemption bound (two, or three where stated: most concurrency
//! faults need no more).

mod explore;
mod store;
mod world;

use std::time::Instant;

use explore::{Report, explore};
use store::Row;
use world::{Actor, Event, Fixture, Scenario};

const LIVE: Row = Row::Live {
    banned: false,
    version: 0,
};
const DELETE: Actor = Actor::Delivery(&[Event::Delete]);
const END_SESSION: Actor = Actor::Delivery(&[Event::EndSession]);
const BAN: Actor = Actor::Delivery(&[Event::Update {
    banned: true,
    version: 1,
}]);
const UNBAN: Actor = Actor::Delivery(&[Event::Update {
    banned: false,
    version: 2,
}]);
const BAN_THEN_UNBAN: Actor = Actor::Delivery(&[
    Event::Update {
        banned: true,
        version: 1,
    },
    Event::Update {
        banned: false,
        version: 2,
    },
]);
const NEWER_BAN: Actor = Actor::Delivery(&[Event::Update {
    banned: true,
    version: 2,
}]);
const OLDER_UNBAN: Actor = Actor::Delivery(&[Event::Update {
    banned: false,
    version: 1,
}]);
const A: Actor = Actor::Request;
const B: Actor = Actor::Request;

fn scenario(actors: &'static [Actor]) -> Scenario {
    Scenario {
        actors,
        row: LIVE,
        records_bans: true,
        writes_fail: false,
        warm: false,
    }
}

/// Explores `scenario` with at most `preemptions` preemptions; expects no
/// schedule to break a property, and at least `floor` schedules run.
fn holds(name: &str, scenario: Scenario, preemptions: usize, floor: usize) -> Report {
    let started = Instant::now();
    let fixture = Fixture::new(scenario);
    let report = explore(&|| fixture.fresh(), preemptions, 200_000);
    println!(
        "{name}: {} schedules of up to {} steps, {} violating, in {:?}",
        report.schedules,
        report.longest,
        report.violating,
        started.elapsed()
    );
    if let Some(counterexample) = &report.counterexample {
        panic!(
            "{name}: {} of {} schedules break a property; the first:\n{counterexample}",
            report.violating, report.schedules
        );
    }
    assert!(
        report.schedules >= floor,
        "{name}: only {} schedules explored",
        report.schedules
    );
    report
}

#[test]
fn a_deleted_user_is_never_served_after_the_acknowledgement() {
    holds("deletion", scenario(&[A, B, DELETE]), 2, 100);
    let first_sight = Scenario {
        row: Row::Absent,
        ..scenario(&[A, DELETE])
    };
    holds(
        "deletion of a user seen for the first time",
        first_sight,
        3,
        50,
    );
}

#[test]
fn an_ended_session_is_never_served_after_the_acknowledgement() {
    holds("session end", scenario(&[A, B, END_SESSION]), 2, 100);
}

#[test]
fn a_banned_user_is_never_served_after_the_acknowledgement() {
    holds("ban", scenario(&[A, B, BAN]), 2, 100);
    let without_column = Scenario {
        records_bans: false,
        ..scenario(&[A, B, BAN])
    };
    holds("ban, the table recording no bans", without_column, 2, 100);
}

#[test]
fn a_cached_token_is_never_served_after_the_acknowledgement() {
    for (name, actors) in [
        ("session end", &[A, B, END_SESSION] as &'static [Actor]),
        ("deletion", &[A, B, DELETE]),
        ("ban", &[A, B, BAN]),
    ] {
        let warm = Scenario {
            warm: true,
            ..scenario(actors)
        };
        holds(&format!("cached token, {name}"), warm, 3, 20);
    }
}

#[test]
fn a_ban_holds_until_the_unban_begins() {
    holds("ban then unban", scenario(&[A, BAN_THEN_UNBAN]), 3, 50);
}

#[test]
fn the_newest_state_wins_whatever_the_order_of_deliveries() {
    holds(
        "newer ban, older unban",
        scenario(&[A, NEWER_BAN, OLDER_UNBAN]),
        2,
        50,
    );
    holds("newer unban, older ban", scenario(&[A, UNBAN, BAN]), 2, 50);
}

#[test]
fn an_unban_of_a_ban_recorded_before_the_process_started() {
    let banned_row = Scenario {
        row: Row::Live {
            banned: true,
            version: 1,
        },
        ..scenario(&[A, UNBAN])
    };
    holds("unban of a ban from the store", banned_row, 3, 20);
}

#[test]
fn a_ban_the_store_never_got_outlives_a_reconnect() {
    let store_down = Scenario {
        writes_fail: true,
        ..scenario(&[A, BAN, Actor::Reconnect])
    };
    holds(
        "ban the store never got, then a reconnect",
        store_down,
        2,
        50,
    );
}

#[test]
fn a_reconnect_racing_a_deletion_serves_nobody_deleted() {
    holds(
        "deletion and a reconnect",
        scenario(&[A, DELETE, Actor::Reconnect]),
        2,
        50,
    );
}

#[test]
fn a_caller_dropped_mid_load_leaves_the_others_served() {
    holds(
        "a caller dropped while loading",
        scenario(&[Actor::Abandoned, B, DELETE]),
        2,
        50,
    );
    holds(
        "a caller dropped while loading, no event",
        scenario(&[Actor::Abandoned, B]),
        3,
        5,
    );
}
