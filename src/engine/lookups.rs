//! The answers a resolution gathers — the user, the active organization and
//! the membership — each through its cache (concurrent misses share one
//! store call), each store call bounded by the store timeout and counted.

use std::{future::Future, sync::Arc, time::Instant};

use super::Engine;
use crate::{
    answers::{Answers, Stamped},
    authorization::normalized_role,
    clerk_id::is_organization_id,
    eviction::{Subject, membership_key},
    local_id::LocalId,
    policy::FirstSight,
    principal::{
        entry::{ActiveRows, OrganizationRows},
        proof::Proof,
    },
    rejection::Rejection,
    store::{
        DynOrganizationStore, MembershipClaim, MembershipResolution, OrganizationResolution,
        Resolution, StoreError,
    },
    telemetry,
    token::{ActiveOrganization, SessionClaims},
};

/// The organization part of a resolution, with the stamps of its answers.
pub(super) struct OrganizationAnswers {
    pub(super) rows: OrganizationRows,
    organization_stamp: u64,
    /// The membership's stamp; none for an organization's own credential.
    membership_stamp: Option<u64>,
}

impl OrganizationAnswers {
    /// The answers to confirm with the ledger, by subject.
    pub(super) fn answers<'a>(
        &self,
        organization: &'a str,
        user: Option<&'a str>,
    ) -> impl Iterator<Item = (Subject<'a>, u64)> {
        let membership = user
            .zip(self.membership_stamp)
            .map(|(user, stamp)| (Subject::Membership { organization, user }, stamp));
        std::iter::once((Subject::Organization(organization), self.organization_stamp))
            .chain(membership)
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
    /// given one by the first-sight hook): the profile is read from a
    /// session token's claims, where the app added it to them.
    pub(super) async fn user(
        &self,
        proof: &Proof,
        key: &str,
        stamp: u64,
        first_sight: Option<&dyn FirstSight>,
    ) -> Result<Stamped<UserRow>, Rejection> {
        let load = async {
            let profile = proof.profile(&self.profile_claims);
            let call = self.store.find_or_create_dyn(key, &profile);
            let result = self.bounded("user", call, Resolution::outcome).await;
            if let Ok(Resolution::Created(id)) = &result {
                tracing::info!(target: "ensure_user", user = key, local_id = %id, "created local user");
                // The first-sight hook asks Clerk: for Clerk's users only.
                let clerk_user = proof.clerk_user().filter(|_| profile.is_empty());
                if let Some((first_sight, clerk_id)) = first_sight.zip(clerk_user) {
                    first_sight.created(clerk_id).await;
                }
            }
            result
        };
        let answer = answered(&self.caches.users, key, stamp, load).await?;
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

    /// The rows of a session's active organization and of the user's
    /// membership, found or created as the token states them.
    pub(super) async fn active_organization(
        &self,
        store: &dyn DynOrganizationStore,
        claims: &SessionClaims,
        active: &ActiveOrganization,
        user: LocalId,
        stamp: u64,
    ) -> Result<OrganizationAnswers, Rejection> {
        let clerk_id = active.id();
        let role = active
            .role()
            .map(normalized_role)
            .ok_or(Rejection::MalformedToken)?;
        let organization = self
            .organization_row(store, clerk_id, active.slug(), stamp)
            .await?;
        let claim = MembershipClaim::new(
            (organization.value, clerk_id),
            (user, claims.sub()),
            &role,
            claims.iat().unwrap_or(0).saturating_mul(1000),
        );
        let membership = self.membership(store, &claim, stamp).await?;
        match membership.value {
            MembershipResolution::Member { id, .. } => Ok(OrganizationAnswers {
                rows: OrganizationRows::Active(Box::new(ActiveRows {
                    organization: organization.value,
                    membership: Some(id),
                })),
                organization_stamp: organization.stamp,
                membership_stamp: Some(membership.stamp),
            }),
            MembershipResolution::Deleted { .. } => Err(Rejection::MembershipDeleted),
        }
    }

    /// The row of an organization whose own credential the request carried.
    pub(super) async fn owning_organization(
        &self,
        store: &dyn DynOrganizationStore,
        clerk_id: &str,
        stamp: u64,
    ) -> Result<OrganizationAnswers, Rejection> {
        let organization = self.organization_row(store, clerk_id, None, stamp).await?;
        Ok(OrganizationAnswers {
            rows: OrganizationRows::Active(Box::new(ActiveRows {
                organization: organization.value,
                membership: None,
            })),
            organization_stamp: organization.stamp,
            membership_stamp: None,
        })
    }

    /// An organization's row, found or created.
    async fn organization_row(
        &self,
        store: &dyn DynOrganizationStore,
        clerk_id: &str,
        slug: Option<&str>,
        stamp: u64,
    ) -> Result<Stamped<LocalId>, Rejection> {
        // A signed credential with such an organization is not Clerk's to trust.
        if !is_organization_id(clerk_id) {
            return Err(Rejection::MalformedToken);
        }
        let load = async {
            let call = store.find_or_create_organization_dyn(clerk_id, slug);
            self.bounded("organization", call, OrganizationResolution::outcome)
                .await
        };
        let organization = answered(&self.caches.organizations, clerk_id, stamp, load).await?;
        match organization.value {
            OrganizationResolution::Existing(id) | OrganizationResolution::Created(id) => {
                Ok(Stamped {
                    value: id,
                    stamp: organization.stamp,
                })
            }
            OrganizationResolution::Deleted => Err(Rejection::OrganizationDeleted),
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
/// refused as an outage, or, when the schema is at fault, as a
/// misconfiguration that retrying cannot mend.
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
            if error.is_schema_mismatch() {
                tracing::error!(
                    target: "ensure_user",
                    key,
                    %error,
                    "store misconfigured: the database lacks a table, column or unique \
                     constraint the store needs; see `check_schema`"
                );
                return Rejection::StoreMisconfigured;
            }
            tracing::error!(target: "ensure_user", key, %error, "store failed");
            Rejection::StoreUnavailable
        })
}
