//! What an app calls when its provider says a user was deleted, banned or
//! signed out: the store records it (and, on PostgreSQL, announces it to
//! every instance in the same transaction), and this process's layer
//! forgets the user at once.

use super::{Issuer, claims::credential_key};
use crate::{
    eviction::Evictor,
    store::{Profile, StoreError, SyncOutcome, UserSync},
};

/// Deletions, bans and ended sessions of an issuer's users, written to the
/// store and the layer's caches together: what a Clerk webhook does for
/// Clerk's users, for the app's own hook or event stream of its provider
/// (Auth0's `user.deleted`, a Keycloak admin event, a Supabase trigger…).
///
/// ```no_run
/// use ensure_user::{EnsureUserLayer, oidc::{Issuer, Lifecycle}, store::PgUserStore};
///
/// # async fn on_deleted(layer: &EnsureUserLayer, store: PgUserStore, subject: &str, at_ms: i64)
/// # -> Result<(), ensure_user::store::StoreError> {
/// let auth0 = Issuer::auth0("example.eu.auth0.com");
/// let lifecycle = Lifecycle::new(store, layer.evictor());
/// // The tombstone is committed and announced; every instance refuses the
/// // user's still-valid tokens from now on, and no path creates them again.
/// lifecycle.delete(&auth0, subject, at_ms).await?;
/// # Ok(()) }
/// ```
pub struct Lifecycle<S> {
    store: S,
    evictor: Evictor,
}

impl<S: UserSync> Lifecycle<S> {
    /// Writes through `store` and forgets through `evictor` (the layer's,
    /// [`EnsureUserLayer::evictor`](crate::EnsureUserLayer::evictor)).
    pub fn new(store: S, evictor: Evictor) -> Self {
        Self { store, evictor }
    }

    /// Deletes `subject` of `issuer`: the tombstone (kept from the first
    /// deletion, `deleted_at_ms` in Unix ms), then the row; the user's
    /// cached tokens are forgotten here, and on PostgreSQL every listening
    /// instance hears of it.
    pub async fn delete(
        &self,
        issuer: &Issuer,
        subject: &str,
        deleted_at_ms: i64,
    ) -> Result<SyncOutcome, StoreError> {
        let key = issuer.user_key(subject);
        let outcome = self.store.delete_user(&key, deleted_at_ms).await;
        // Even after a failure: the tombstone may be committed already.
        self.evictor.forget_user(&key).await;
        outcome
    }

    /// Bans (`banned`) or unbans `subject` of `issuer` as of `version_ms`
    /// (the provider's `updated_at`, or the event's time; an older state
    /// than one recorded changes nothing), writing `profile` with it: the
    /// store keeps the whole profile, as a Clerk `user.updated` does. A
    /// banned user's tokens are refused `401 user_banned` at once.
    pub async fn ban(
        &self,
        issuer: &Issuer,
        subject: &str,
        profile: &Profile,
        banned: bool,
        version_ms: i64,
    ) -> Result<SyncOutcome, StoreError> {
        let key = issuer.user_key(subject);
        let profile = profile.clone().with_banned(banned);
        let outcome = self.store.upsert_profile(&key, &profile, version_ms).await;
        if !matches!(outcome, Ok(SyncOutcome::Stale | SyncOutcome::Tombstoned)) {
            self.evictor
                .record_block(&key, banned, version_ms, outcome.is_ok())
                .await;
        }
        outcome
    }

    /// Ends a session of `subject` (its `sid` claim, as a back-channel
    /// logout names it; or a token's `jti`): its tokens are refused
    /// `401 session_ended` here at once and, where the store keeps ended
    /// sessions, on every instance. An empty id ends nothing.
    pub async fn end_session(
        &self,
        issuer: &Issuer,
        subject: &str,
        session: &str,
    ) -> Result<SyncOutcome, StoreError> {
        if session.is_empty() {
            return Ok(SyncOutcome::NotKept);
        }
        let ended = credential_key(issuer.issuer(), session);
        let until_ms = self.evictor.end_session(&ended).await;
        let key = issuer.user_key(subject);
        self.store.end_session(&ended, &key, until_ms).await
    }
}
