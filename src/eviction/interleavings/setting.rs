//! What the model is about: one user, one session and its tokens, the
//! store's row and answers, and the flaws the explorer must be able to find.

use crate::token::SessionClaims;

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
