//! Refusals the Backend API gave, remembered for a while, so that a
//! credential Clerk does not know is not asked about again and again. Keyed
//! by a SHA-256 of the credential: the secret itself is not kept.

use std::time::{Duration, Instant};

use aws_lc_rs::digest;

use super::MachineError;
use crate::token::TokenType;

/// A SHA-256 of a credential and its kind.
pub(super) type Key = [u8; 32];

/// The key of `token`, a credential of kind `kind`.
pub(super) fn key(kind: TokenType, token: &str) -> Key {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(kind.as_str().as_bytes());
    context.update(&[0]);
    context.update(token.as_bytes());
    let mut key = [0; 32];
    key.copy_from_slice(context.finish().as_ref());
    key
}

/// Remembered refusals, bounded in number and each for a time.
pub(super) struct Refusals {
    /// `None` when nothing is to be remembered (no capacity or no time).
    entries: Option<quick_cache::sync::Cache<Key, (MachineError, Instant)>>,
    remember_for: Duration,
}

impl Refusals {
    /// Up to about `capacity` refusals, each for `remember_for`.
    pub(super) fn new(capacity: usize, remember_for: Duration) -> Self {
        let entries = (capacity > 0 && !remember_for.is_zero())
            .then(|| quick_cache::sync::Cache::new(capacity));
        Self {
            entries,
            remember_for,
        }
    }

    /// The refusal remembered for `key`, unless it is older than the time
    /// it is remembered for.
    pub(super) fn get(&self, key: &Key) -> Option<MachineError> {
        let (refusal, at) = self.entries.as_ref()?.get(key)?;
        (at.elapsed() < self.remember_for).then_some(refusal)
    }

    /// Remembers `refusal` for `key` when it stays true: Clerk does not
    /// know the credential, or it was revoked or has expired. An outage or
    /// a misconfiguration is never remembered.
    pub(super) fn remember(&self, key: Key, refusal: MachineError) {
        let lasting = matches!(
            refusal,
            MachineError::NotFound | MachineError::Revoked | MachineError::Expired
        );
        if let Some(entries) = self.entries.as_ref().filter(|_| lasting) {
            entries.insert(key, (refusal, Instant::now()));
        }
    }

    /// How many refusals are held, expired ones included.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries
            .as_ref()
            .map_or(0, quick_cache::sync::Cache::len)
    }
}
