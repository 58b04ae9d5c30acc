//! The answers a resolution gathers — the user, the active organization and
//! the membership — each through its cache (concurrent misses share one
//! store call), each store call bounded by the store timeout and counted.

use std::{future::Future, sync::Arc, time::Instant};

use super::Engine;
use crate::{
    LocalId, Rejection,
    answers::{Answers, Stamped},
    authorization::normalized_role,
    clerk_id::is_organization_id,
    eviction::{Subject, membership_key},
    policy::FirstSight,
    store::{
        DynOrganizationStore, MembershipClaim, MembershipResolution, OrganizationResolution,
        Resolution, StoreError,
    },
    telemetry,
    token::{
        ActiveOrganization, SessionClaims,
        entry::{ActiveRows, OrganizationRows},
    },
};

/// The organization part of a resolution, with the stamps of its answers.
pub(super) struct OrganizationAnswers {
    pub(super) rows: OrganizationRows,
    organization_stamp: u64,
    membership_stamp: u64,
}

impl OrganizationAnswers {
    /// The answers to confirm with the ledger, by subject.
    pub(super) fn answers<'a>(
        &self,
        organization: &'a str,
        user: &'a str,
    ) -> [(Subject<'a>, u64); 2] {
        [
            (Subject::Organization(organization), self.organization_stamp),
            (
                Subject::Membership { organization, user },
                self.membership_stamp,
            ),
        ]
    }
}

/// The user's row, as far as a resolution needs it.
#[derive(Clone, Copy)]
pub(super) struct UserRow {
    pub(super) id: LocalId,
    /// Whether the row records that Clerk bans the user.
    pub(super) banned: bool,
}

impl Engine {
    /// The user's row, found or created (and, created without a profile,
    /// given one by the first-sight hook).
    pub(super) async fn user(
        &self,
        claims: &SessionClaims,
        stamp: u64,
        first_sight: Option<&dyn FirstSight>,
    ) -> Result<Stamped<UserRow>, Rejection> {
        let load = async {
            let profile = self.profile_claims.read(claims);
            let call = self.store.find_or_create_dyn(claims.sub(), &profile);
            let result = self.bounded("user", call, Resolution::outcome).await;
            if let Ok(Resolution::Created(id)) = &result {
                tracing::info!(target: "ensure_user", clerk_id = %claims.sub(), local_id = %id, "created local user");
                if let Some(first_sight) = first_sight.filter(|_| profile.is_empty()) {
                    first_sight.created(claims.sub()).await;
                }
            }
            result
        };
        let answer = answered(&self.caches.users, claims.sub(), stamp, load).await?;
        let row = |id, banned| Stamped {
            value: UserRow { id, banned },
            stamp: answer.stamp,
        };
        match answer.value {
            Resolution::Existing(id) | Resolution::Created(id) => Ok(row(id, false)),
            Resolution::Banned(id) => Ok(row(id, true)),
            // A tombstone is forever: no need to ask whether it is stale.
            Resolution::Deleted => Err(Rejection::UserDeleted),
        }
    }

    /// The rows of the token's active organization and of the user's
    /// membership, found or created as the token states them.
    pub(super) async fn organization(
        &self,
        store: &dyn DynOrganizationStore,
        claims: &SessionClaims,
        active: &ActiveOrganization,
        user: LocalId,
        stamp: u64,
    ) -> Result<OrganizationAnswers, Rejection> {
        let clerk_id = active.id();
        // A signed token with such an organization is not Clerk's to trust.
        if !is_organization_id(clerk_id) {
            return Err(Rejection::MalformedToken);
        }
        let role = active
            .role()
            .map(normalized_role)
            .ok_or(Rejection::MalformedToken)?;
        let load = async {
            let call = store.find_or_create_organization_dyn(clerk_id, active.slug());
            self.bounded("organization", call, OrganizationResolution::outcome)
                .await
        };
        let organization = answered(&self.caches.organizations, clerk_id, stamp, load).await?;
        let organization_id = match organization.value {
            OrganizationResolution::Existing(id) | OrganizationResolution::Created(id) => id,
            OrganizationResolution::Deleted => return Err(Rejection::OrganizationDeleted),
        };
        let claim = MembershipClaim::new(
            (organization_id, clerk_id),
            (user, claims.sub()),
            &role,
            claims.iat().unwrap_or(0).saturating_mul(1000),
        );
        let membership = self.membership(store, &claim, stamp).await?;
        match membership.value {
            MembershipResolution::Member { id, .. } => Ok(OrganizationAnswers {
                rows: OrganizationRows::Active(Box::new(ActiveRows {
                    organization: organization_id,
                    membership: id,
                })),
                organization_stamp: organization.stamp,
                membership_stamp: membership.stamp,
            }),
            MembershipResolution::Deleted { .. } => Err(Rejection::MembershipDeleted),
        }
    }

    /// The membership `claim` states. A cached answer older than the token
    /// (a deletion before it was issued, or another role before it) is
    /// asked of the store once more, which re-creates or updates the row.
    async fn membership(
        &self,
        store: &dyn DynOrganizationStore,
        claim: &MembershipClaim<'_>,
        stamp: u64,
    ) -> Result<Stamped<MembershipResolution>, Rejection> {
        let key = membership_key(claim.organization_clerk_id, claim.user_clerk_id);
        let load = || async {
            let call = store.ensure_membership_dyn(claim);
            self.bounded("membership", call, MembershipResolution::outcome)
                .await
        };
        let answer = answered(&self.caches.memberships, &key, stamp, load()).await?;
        if !predates(&answer.value, claim) {
            return Ok(answer);
        }
        self.caches.memberships.invalidate(&key);
        answered(&self.caches.memberships, &key, stamp, load()).await
    }

    /// Forgets the cached answers of these subjects, to load them again.
    pub(super) fn forget_answers(&self, answers: &[(Subject<'_>, u64)]) {
        for &(subject, _) in answers {
            match subject {
                Subject::User(id) => self.caches.users.invalidate(id),
                Subject::Organization(id) => self.caches.organizations.invalidate(id),
                Subject::Membership { organization, user } => {
                    let key = membership_key(organization, user);
                    self.caches.memberships.invalidate(&key);
                }
                // Nothing cached about a session but its tokens.
                Subject::Session(_) => {}
            }
        }
    }

    /// `call`, bounded by the store timeout, counted and timed by `kind`
    /// and the outcome `outcome` names.
    async fn bounded<T>(
        &self,
        kind: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
        outcome: fn(&T) -> &'static str,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.store_timeout, call)
            .await
            .map_err(|_| StoreError::TimedOut(self.store_timeout))
            .and_then(|result| result);
        let outcome = result.as_ref().map_or("error", outcome);
        telemetry::store_call(kind, outcome, started.elapsed());
        result
    }
}

/// Whether the cached membership answer is older than what the token
/// states: deleted before the token was issued (the user came back), or
/// holding another role of an older version.
fn predates(answer: &MembershipResolution, claim: &MembershipClaim<'_>) -> bool {
    match answer {
        MembershipResolution::Deleted { deleted_at_ms } => *deleted_at_ms < claim.issued_at_ms,
        MembershipResolution::Member {
            role, role_version, ..
        } => role != claim.role && *role_version < claim.issued_at_ms,
    }
}

/// The cached answer for `key`, or `load`'s; a store failure is logged and
/// refused as an outage.
async fn answered<V, F>(
    answers: &Answers<V>,
    key: &str,
    stamp: u64,
    load: F,
) -> Result<Stamped<V>, Rejection>
where
    V: Clone + Send + Sync + 'static,
    F: Future<Output = Result<V, StoreError>>,
{
    answers
        .get_or_load(key, stamp, load)
        .await
        .map_err(|error: Arc<StoreError>| {
            tracing::error!(target: "ensure_user", key, %error, "store failed");
            Rejection::StoreUnavailable
        })
}
