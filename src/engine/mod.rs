//! How a request is authenticated, top to bottom.
//!
//! 1. [`Engine::decide`], synchronously, from memory alone: find the token;
//!    a token verified before whose entry remembers its local user (confirmed
//!    under the ledger's current generation) is served at once — the repeat
//!    path, with no lock, no await and no allocation but the request's own.
//! 2. Otherwise [`Engine::authenticate`], asynchronously: verify a new token
//!    (and remember it), then resolve its user through the user cache and,
//!    on a miss, the store; an answer is checked against the eviction ledger
//!    before it is served or remembered, and loaded again if the user was
//!    forgotten meanwhile.

mod credentials;
mod lookups;

use std::sync::Arc;

use http::HeaderMap;

use self::credentials::Credentials;
use crate::{
    clock,
    config::Config,
    config::ProfileClaims,
    eviction::{Caches, Subject},
    policy::{FirstSight, Mode},
    principal::{
        Principal,
        cache::Cached,
        entry::{OrganizationRows, Resolved, VerifiedToken},
    },
    rejection::Rejection,
    store::{DynOrganizationStore, DynUserStore, UserStore},
    telemetry,
    token::{
        find::find_token,
        keys::{KeyHealth, KeyStore},
        verify::Verifier,
    },
};

/// Lookups of one user a request makes at most while the user keeps being
/// forgotten under it.
pub(crate) const MAX_LOOKUPS: usize = 3;

/// The yield point before the ledger confirms a resolution's answers: the
/// step that decides whether the resolution serves.
#[cfg(test)]
pub(crate) const CONFIRM: &str = "resolve: ledger.confirm";

/// What every clone of a layer, and its services, share.
pub(crate) struct Engine {
    /// The configuration the engine was built from, to build it again with
    /// organizations for a layer cloned before they were enabled.
    config: Config,
    caches: Arc<Caches>,
    credentials: Credentials,
    keys: Arc<KeyStore>,
    store: Arc<dyn DynUserStore>,
    /// Where organizations and memberships are kept; `None`: not resolved.
    organizations: Option<Arc<dyn DynOrganizationStore>>,
    cookie_suffix: Option<String>,
    max_cookies: usize,
    profile_claims: ProfileClaims,
    store_timeout: std::time::Duration,
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    pub(crate) eviction_timing: crate::eviction::Timing,
}

/// What [`Engine::decide`] concluded from memory alone.
pub(crate) enum Decision {
    /// Authenticated: the repeat path.
    Authenticated(Principal),
    /// No token, and the layer is optional.
    Anonymous,
    Refused(Rejection),
    /// Needs the asynchronous path.
    Lookup(Pending),
}

/// What the asynchronous path starts from: what the synchronous one knew.
pub(crate) enum Pending {
    /// A token never verified (or forgotten): its bytes, to verify and keep.
    Verify(Box<[u8]>),
    /// A verified token whose user is not confirmed under this generation.
    Resolve(Arc<VerifiedToken>),
}

impl Engine {
    pub(crate) fn new(config: Config, store: impl UserStore) -> Self {
        let caches = Caches::new(&config);
        Self::with_stores(config, caches, Arc::new(store), None)
    }

    fn with_stores(
        config: Config,
        caches: Arc<Caches>,
        store: Arc<dyn DynUserStore>,
        organizations: Option<Arc<dyn DynOrganizationStore>>,
    ) -> Self {
        let keys = Arc::new(KeyStore::new(&config.key_rules()));
        Self {
            caches,
            credentials: Credentials::new(
                &config,
                Verifier::new(config.verifier_rules(), Arc::clone(&keys)),
            ),
            keys,
            store,
            organizations,
            cookie_suffix: config.cookie_suffix.clone(),
            max_cookies: config.max_cookies,
            profile_claims: config.profile_claims.clone(),
            store_timeout: config.store_timeout,
            #[cfg(any(feature = "postgres", feature = "sqlite"))]
            eviction_timing: crate::eviction::Timing {
                heartbeat: config.eviction_heartbeat,
                probe_timeout: config.eviction_probe_timeout,
            },
            config,
        }
    }

    /// Resolves organizations and memberships with `store` from now on. An
    /// engine shared with other layers is left as it is: the one returned
    /// is a new one, with caches of its own that forget with the shared
    /// one's, and the same refusals.
    pub(crate) fn enable_organizations(
        engine: &mut Arc<Self>,
        store: Arc<dyn DynOrganizationStore>,
    ) {
        match Arc::get_mut(engine) {
            Some(only) => only.organizations = Some(store),
            None => {
                // Caches of its own (the clones' entries hold no
                // organization rows), in the family of the clones', so
                // that every evictor reaches both.
                let caches = Caches::copy_of(&engine.caches, &engine.config);
                let fresh = Self::with_stores(
                    engine.config.clone(),
                    caches,
                    Arc::clone(&engine.store),
                    Some(store),
                );
                *engine = Arc::new(fresh);
            }
        }
    }

    pub(crate) fn caches(&self) -> &Arc<Caches> {
        &self.caches
    }

    /// What readiness learns of the keys: Clerk's (when Clerk's tokens are
    /// accepted) and every OpenID Connect issuer's, together.
    pub(crate) async fn key_health(&self) -> KeyHealth {
        let clerk = match self.credentials.accepts_clerk() {
            true => Some(self.keys.health().await),
            false => None,
        };
        let issuers = self.credentials.issuers().health().await;
        let none = KeyHealth {
            held: 0,
            age: None,
            last_fetch_failed: false,
        };
        clerk.into_iter().chain(issuers).fold(none, KeyHealth::and)
    }

    pub(crate) fn store(&self) -> &dyn DynUserStore {
        &*self.store
    }

    /// The organizations' store, when organizations are resolved.
    pub(crate) fn organization_store(&self) -> Option<&dyn DynOrganizationStore> {
        self.organizations.as_deref()
    }

    pub(crate) fn store_timeout(&self) -> std::time::Duration {
        self.store_timeout
    }

    /// Decides from memory alone when it can, without awaiting anything.
    pub(crate) fn decide(&self, headers: &HeaderMap, mode: Mode) -> Decision {
        let token = match find_token(headers, self.cookie_suffix.as_deref(), self.max_cookies) {
            Ok(Some(token)) => token,
            Ok(None) if mode == Mode::Optional => return Decision::Anonymous,
            Ok(None) => return Decision::Refused(Rejection::MissingToken),
            Err(rejection) => return Decision::Refused(rejection),
        };
        let Some(tokens) = &self.caches.tokens else {
            return Decision::Lookup(Pending::Verify(Box::from(token)));
        };
        let generation = self.caches.ledger.generation();
        match tokens.get(token, clock::now()) {
            Cached::Hit(verified) => {
                telemetry::token_cache(true);
                match Principal::confirmed(verified, generation) {
                    Ok(principal) => {
                        telemetry::user_cache(true);
                        Decision::Authenticated(principal)
                    }
                    Err(verified) => Decision::Lookup(Pending::Resolve(verified)),
                }
            }
            Cached::Expired => {
                telemetry::token_cache(true);
                Decision::Refused(Rejection::TokenExpired)
            }
            Cached::Miss => {
                telemetry::token_cache(false);
                Decision::Lookup(Pending::Verify(Box::from(token)))
            }
        }
    }

    /// The asynchronous path: verify the token if need be, then resolve its rows.
    pub(crate) async fn authenticate(
        &self,
        pending: Pending,
        first_sight: Option<&dyn FirstSight>,
    ) -> Result<Principal, Rejection> {
        let verified = match pending {
            Pending::Resolve(verified) => verified,
            Pending::Verify(token) => self.verify(token).await?,
        };
        self.resolve(verified, first_sight).await
    }

    /// Verifies a new token and remembers it; the entry to use (another
    /// request's, if it remembered the same token first).
    async fn verify(&self, token: Box<[u8]>) -> Result<Arc<VerifiedToken>, Rejection> {
        let now_ms = clock::now_ms();
        // Boxed, so that the state of this rare path (a key fetch included)
        // is not carried by the future of every request.
        let verified = Arc::new(Box::pin(self.credentials.verify(&token, now_ms)).await?);
        #[cfg(test)]
        crate::interleave::point("verify: tokens.insert").await;
        Ok(match &self.caches.tokens {
            Some(tokens) => tokens.insert(token, verified, now_ms),
            None => verified,
        })
    }

    /// The credential's rows (its user's, and its organization's and
    /// membership's when the layer resolves organizations), from the caches
    /// or the store, remembered with the token once the ledger confirms
    /// every answer is still good.
    async fn resolve(
        &self,
        verified: Arc<VerifiedToken>,
        first_sight: Option<&dyn FirstSight>,
    ) -> Result<Principal, Rejection> {
        let proof = &verified.proof;
        let credential = proof.credential_id();
        // An answer loaded while its subject was being forgotten is loaded
        // again; only a subject forgotten over and over runs out of attempts.
        for _ in 0..MAX_LOOKUPS {
            #[cfg(test)]
            crate::interleave::point("resolve: ledger.stamp").await;
            let stamp = self.caches.ledger.stamp();
            // Checked after the stamp: an end or a ban recorded after this
            // check makes the confirmation below fail.
            #[cfg(test)]
            crate::interleave::point("resolve: ended.contains").await;
            if self.caches.ended.contains(credential, clock::now_ms()) {
                return Err(proof.ended());
            }
            #[cfg(test)]
            crate::interleave::point("resolve: bans.is_blocked").await;
            if proof
                .user()
                .is_some_and(|user| self.caches.bans.is_blocked(user))
            {
                return Err(Rejection::UserBanned);
            }
            let mut answers = Vec::with_capacity(4);
            let user = match proof.user() {
                Some(key) => {
                    let user = self.user(proof, key, stamp, first_sight).await?;
                    let read = (Subject::User(key), user.stamp);
                    if user.value.banned {
                        // Unless unbanned since the row was read: then read it again.
                        #[cfg(test)]
                        crate::interleave::point("resolve: ledger.confirm (banned row)").await;
                        if self.caches.ledger.confirm(&[read]).is_some() {
                            return Err(Rejection::UserBanned);
                        }
                        self.forget_answers(&[read]);
                        continue;
                    }
                    answers.push(read);
                    Some(user.value.id)
                }
                None => None,
            };
            answers.push((Subject::Session(credential), stamp));
            let organization = match (&self.organizations, proof.organization()) {
                (None, _) => OrganizationRows::NotResolved,
                (Some(_), None) => OrganizationRows::NoneActive,
                (Some(store), Some(clerk_id)) => {
                    let rows = match (proof.session(), user) {
                        (Some(claims), Some(user)) => {
                            let active = claims.organization().ok_or(Rejection::MalformedToken)?;
                            self.active_organization(&**store, claims, active, user, stamp)
                                .await?
                        }
                        _ => self.owning_organization(&**store, clerk_id, stamp).await?,
                    };
                    answers.extend(rows.answers(clerk_id, proof.user()));
                    rows.rows
                }
            };
            #[cfg(test)]
            crate::interleave::point(CONFIRM).await;
            let Some(generation) = self.caches.ledger.confirm(&answers) else {
                self.forget_answers(&answers);
                continue;
            };
            let resolved = Resolved { user, organization };
            #[cfg(test)]
            crate::interleave::point("resolve: remember").await;
            let other_rows = verified.remember(generation, resolved);
            return Ok(Principal::new(verified, other_rows));
        }
        tracing::warn!(target: "ensure_user", credential, "forgotten during every lookup");
        Err(Rejection::StoreUnavailable)
    }

    /// Fetches the signing keys now; how many are held.
    pub(crate) async fn prefetch_keys(&self) -> Result<usize, Rejection> {
        let issuers = self.credentials.issuers().prefetch().await?;
        if !self.credentials.accepts_clerk() {
            return Ok(issuers);
        }
        let clerk = self
            .keys
            .prefetch()
            .await
            .map_err(|_| Rejection::KeysUnavailable)?;
        Ok(clerk + issuers)
    }
}
