//! A verified credential as the cache keeps it: what it proves, and the
//! local rows it resolved to, for the repeat path to serve without a lookup.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::SystemTime,
};

use super::proof::{OtherProof, Proof};
use crate::{clock, local_id::LocalId};

/// What a credential resolved to: its user's row (none for an
/// organization's or a machine's credential) and, when the layer resolves
/// organizations, the rows of its organization and membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub(crate) user: Option<LocalId>,
    pub(crate) organization: OrganizationRows,
}

/// The organization part of a resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OrganizationRows {
    /// The layer does not resolve organizations.
    NotResolved,
    /// The credential names no organization.
    NoneActive,
    /// The rows of the credential's organization and of the membership,
    /// boxed: every cached token keeps a resolution, and most name no
    /// organization (a resolution takes 40 bytes, not 72).
    Active(Box<ActiveRows>),
}

/// The local rows of an organization and of the user's membership in it
/// (none when the credential is the organization's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ActiveRows {
    pub(crate) organization: LocalId,
    pub(crate) membership: Option<LocalId>,
}

/// A credential that passed verification, and the local rows it resolved to.
///
/// A cache hit reads `resolved_in`, `resolved` and `fresh_until` and bumps the
/// reference count, so they come first (`repr(C)`): with the count they
/// share one cache line or two, and the proof behind them is not touched.
#[repr(C)]
pub(crate) struct VerifiedToken {
    /// One more than the latest ledger generation the resolution was
    /// confirmed under (0: never), so that a repeat request needs no lookup.
    resolved_in: AtomicU64,
    /// The first resolution.
    resolved: OnceLock<Resolved>,
    /// Until when the credential may be served without asking again, as a
    /// time a hit compares the clock's reading with, no arithmetic.
    pub(crate) fresh_until: SystemTime,
    pub(crate) proof: Proof,
}

impl VerifiedToken {
    /// The entry of `proof`, served until `fresh_until_ms` (Unix milliseconds).
    pub(crate) fn new(proof: Proof, fresh_until_ms: i64) -> Self {
        Self {
            resolved_in: AtomicU64::new(0),
            resolved: OnceLock::new(),
            fresh_until: clock::at_ms(fresh_until_ms),
            proof,
        }
    }

    /// The entry of a session token's `claims`, served until `skew_ms` past
    /// their `exp`.
    pub(crate) fn session(claims: crate::token::SessionClaims, skew_ms: i64) -> Self {
        let fresh_until_ms = claims.exp().saturating_mul(1000).saturating_add(skew_ms);
        Self::new(Proof::Session(claims), fresh_until_ms)
    }

    /// A copy with no resolution, for an entry worth keeping when its rows
    /// are forgotten: a machine credential, whose verification cost a
    /// Backend API call. `None` for a session token or an issuer's token,
    /// verified again cheaply.
    pub(crate) fn unresolved_copy(&self) -> Option<Self> {
        match &self.proof {
            Proof::Other(other) if matches!(**other, OtherProof::Machine(_)) => Some(Self {
                resolved_in: AtomicU64::new(0),
                resolved: OnceLock::new(),
                fresh_until: self.fresh_until,
                proof: Proof::Other(other.clone()),
            }),
            Proof::Session(_) | Proof::Other(_) => None,
        }
    }

    /// Whether a credential no longer served is expired (refused), rather
    /// than due to be verified again.
    pub(crate) fn expired_at(&self, now_ms: i64) -> bool {
        self.proof.expires_at_ms() <= now_ms
    }

    /// The remembered resolution, if it was confirmed under `generation`.
    #[cfg(test)]
    pub(crate) fn resolved(&self, generation: u64) -> Option<Resolved> {
        self.is_confirmed(generation)
            .then(|| self.first_resolution().cloned())
            .flatten()
    }

    /// Whether the remembered resolution was confirmed under `generation`
    /// (it is then set: confirming follows remembering).
    pub(crate) fn is_confirmed(&self, generation: u64) -> bool {
        self.resolved_in.load(Ordering::Acquire) == generation + 1
    }

    /// The first resolution remembered, confirmed or not. Once set, it stays.
    pub(crate) fn first_resolution(&self) -> Option<&Resolved> {
        self.resolved.get()
    }

    /// Remembers what this token resolved to, confirmed under `generation`,
    /// and hands back a resolution that differs from the one remembered.
    /// After everything was forgotten, the next resolution confirms it
    /// again; should a row ever have been replaced (another id), the token
    /// keeps taking the lookup path until it expires.
    pub(crate) fn remember(&self, generation: u64, resolved: Resolved) -> Option<Resolved> {
        let other = match self.resolved.set(resolved) {
            Ok(()) => None,
            Err(resolved) => (self.resolved.get() != Some(&resolved)).then_some(resolved),
        };
        if other.is_none() {
            self.resolved_in.fetch_max(generation + 1, Ordering::AcqRel);
        }
        other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified() -> VerifiedToken {
        let claims: crate::token::SessionClaims = serde_json::from_value(serde_json::json!({
            "sub": "user_a",
            "sid": "sess_a",
            "exp": 2_000_000_000,
        }))
        .unwrap();
        VerifiedToken::session(claims, 0)
    }

    fn user(id: i64) -> Resolved {
        Resolved {
            user: Some(LocalId::Int(id)),
            organization: OrganizationRows::NotResolved,
        }
    }

    #[test]
    fn the_remembered_resolution_follows_the_generation() {
        let token = verified();
        assert_eq!(token.resolved(0), None);
        token.remember(0, user(7));
        assert_eq!(token.resolved(0), Some(user(7)));
        // Everything was forgotten: void until confirmed again.
        assert_eq!(token.resolved(1), None);
        token.remember(1, user(7));
        assert_eq!(token.resolved(1), Some(user(7)));
        // A late answer from before does not take the token back.
        token.remember(0, user(7));
        assert_eq!(token.resolved(1), Some(user(7)));
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn an_entry_fits_a_176_byte_allocation() {
        // With its two reference counts, and glibc's header of 8 bytes.
        assert_eq!(
            crate::token::footprint::allocation(16 + size_of::<VerifiedToken>()),
            176
        );
        // An organization's rows are boxed: most tokens name none.
        assert_eq!(size_of::<Resolved>(), 40);
    }

    #[test]
    fn a_different_resolution_is_never_served_from_the_token() {
        let token = verified();
        assert_eq!(token.remember(0, user(7)), None);
        assert_eq!(token.remember(1, user(8)), Some(user(8)));
        assert_eq!(token.resolved(1), None);
        assert_eq!(token.resolved(0), Some(user(7)));
        let with_organization = Resolved {
            organization: OrganizationRows::Active(Box::new(ActiveRows {
                organization: LocalId::Int(1),
                membership: Some(LocalId::Int(2)),
            })),
            ..user(7)
        };
        assert_eq!(
            token.remember(2, with_organization.clone()),
            Some(with_organization)
        );
        assert_eq!(token.resolved(2), None);
    }
}
