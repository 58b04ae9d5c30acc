//! A request, step by step, as `Engine::decide` and `Engine::authenticate`
//! take it: one step for each operation on shared state, in the code's order.
//!
//! | step | the code |
//! |---|---|
//! | [`At::Generation`] | `Engine::decide`: `caches.ledger.generation()` |
//! | [`At::Lookup`] | `Engine::decide`: `tokens.get(token, now)` |
//! | [`At::Resolved`] | `Engine::decide`: `LocalUser::confirmed(verified, generation)`; `Ok` serves (the repeat path) |
//! | [`At::Insert`] | `Engine::verify`: `tokens.insert(token, verified, now)` (verifying touches nothing shared) |
//! | [`At::Stamp`] | `Engine::resolve`: `caches.ledger.stamp()`, each attempt |
//! | [`At::Ended`] | `Engine::resolve`: `caches.ended.contains(sid, now)` |
//! | [`At::Bans`] | `Engine::resolve`: `caches.bans.is_blocked(sub)` |
//! | [`At::CacheGet`] | `Answers::get_or_load`: `entries.get(key)` |
//! | [`At::TryGetWith`] | `Answers::load_once`, under the lock of the loads in flight: the cache checked again, then a load in flight joined, or one started |
//! | [`At::Load`] | the load: `UserStore::find_or_create` |
//! | [`At::Complete`] | `Answers::load_once`, the load done, under the same lock: the answer inserted (whatever was invalidated meanwhile) and the load ended; waiters woken with it |
//! | [`At::ConfirmBanned`] | `Engine::resolve`, a banned row: `ledger.confirm([(user, answer stamp)])` |
//! | [`At::Confirm`] | `Engine::resolve`: `ledger.confirm([(user, answer stamp), (session, stamp)])` |
//! | [`At::Invalidate`] | `Engine::forget_answers`: `users.invalidate(sub)`, then the next attempt (at most `MAX_LOOKUPS`) |
//! | [`At::Remember`] | `Engine::resolve`: `verified.remember(generation, resolved)`, then serves |
//!
//! What happens between two steps touches nothing another actor sees: the
//! verification of the signature, and what `Engine::user` makes of an
//! answer (a tombstone refuses, a banned row is confirmed, a live one goes
//! on). A request waiting on another's load is woken by that load's last
//! step and goes on from the answer.

use super::setting::Answer;

/// Where a request is: the step it takes next.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) enum At {
    Generation,
    Lookup {
        generation: u64,
    },
    /// Found in the token cache, while the windows `hit_in` were open.
    Resolved {
        generation: u64,
        hit_in: u32,
    },
    Insert,
    /// `checked`: ended sessions and bans checked already (only
    /// [`Flaw::ChecksBeforeStamp`] checks them first).
    Stamp {
        checked: bool,
    },
    Ended {
        stamp: Option<u64>,
    },
    Bans {
        stamp: Option<u64>,
    },
    CacheGet {
        stamp: u64,
    },
    TryGetWith {
        stamp: u64,
    },
    Load {
        stamp: u64,
    },
    Complete {
        stamp: u64,
        answer: Answer,
    },
    /// Waiting on another request's load; woken by its [`At::Complete`].
    Wait {
        stamp: u64,
    },
    ConfirmBanned {
        answer: u64,
    },
    Confirm {
        stamp: u64,
        answer: u64,
    },
    Invalidate,
    Remember {
        generation: u64,
    },
    Done(Outcome),
}

/// How a request ended.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) enum Outcome {
    Served(Path),
    Refused(Refusal),
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) enum Path {
    /// From the token cache, without a lookup.
    Repeat,
    /// Through a lookup confirmed by the ledger.
    Lookup,
}

/// The `Rejection`s the model can end in.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) enum Refusal {
    SessionEnded,
    UserBanned,
    UserDeleted,
    /// Every attempt found the user forgotten under it.
    StoreUnavailable,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) struct Request {
    pub(super) name: char,
    /// Which of [`TOKENS`](super::setting::TOKENS) it carries.
    pub(super) token: u8,
    /// The verified token it resolves, once it has one.
    pub(super) entry: Option<u8>,
    /// Attempts of `Engine::resolve`'s loop begun, less one.
    pub(super) attempt: u8,
    pub(super) at: At,
}

impl Request {
    pub(super) fn new(name: char, token: u8) -> Self {
        Self {
            name,
            token,
            entry: None,
            attempt: 0,
            at: At::Generation,
        }
    }

    pub(super) fn enabled(&self) -> bool {
        !matches!(self.at, At::Done(_) | At::Wait { .. })
    }
}
