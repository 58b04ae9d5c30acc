//! The organizations and memberships walks, and [`Backfill::run_walks`].

use std::future::Future;

use crate::{
    clerk::ClerkMembership,
    clerk::ClerkOrganization,
    clerk_api::{ApiError, ListPages},
    clerk_id::{is_organization_id, is_user_id},
    store::{BatchOutcome, Checkpoint, OrganizationBackfillStore, StoreError, Walk},
};

use super::{Backfill, BackfillError, Progress, Summary};

impl<S: OrganizationBackfillStore> Backfill<S> {
    /// Runs each of `walks` in turn, in [`Walk::ALL`]'s order whatever the
    /// order given, calling `on_progress` at the start of each and after
    /// each page (for memberships, after each organization). Returns what
    /// each walk did, or why one stopped early; a walk that stopped keeps
    /// its own checkpoint, and the next run resumes it.
    ///
    /// Organizations are written from `GET /v1/organizations`; memberships
    /// from each organization's `GET /v1/organizations/{id}/memberships`.
    /// Both follow the webhooks' rules: newest `updated_at` wins, and a
    /// tombstoned organization (or user) is skipped, never brought back.
    ///
    /// On an instance that does not have organizations turned on (the
    /// Backend API answers `403 organization_not_enabled_in_instance`),
    /// the organizations and memberships walks are skipped: they are
    /// missing from the result, and the users are written as usual. Any
    /// other failure of those walks stops the run.
    pub async fn run_walks(
        &self,
        walks: &[Walk],
        mut on_progress: impl FnMut(&Progress),
    ) -> Result<Vec<(Walk, Summary)>, BackfillError> {
        let mut summaries = Vec::new();
        let mut organizations_enabled = true;
        for walk in Walk::ALL {
            if !walks.contains(&walk) || (walk != Walk::Users && !organizations_enabled) {
                continue;
            }
            let summary = match walk {
                Walk::Organizations => self.organizations(&mut on_progress).await,
                Walk::Memberships => self.memberships(&mut on_progress).await,
                Walk::Users => self.run(&mut on_progress).await,
            };
            match summary {
                Ok(summary) => summaries.push((walk, summary)),
                Err(BackfillError::Api {
                    source: ApiError::OrganizationsNotEnabled,
                    ..
                }) if walk != Walk::Users => {
                    tracing::info!(target: "ensure_user", %walk, "organizations are not enabled for this Clerk instance; skipped");
                    organizations_enabled = false;
                }
                Err(error) => return Err(error),
            }
        }
        Ok(summaries)
    }

    /// The saved checkpoint of `walk`, once a restart or a dry run is
    /// accounted for.
    async fn walk_checkpoint(&self, walk: Walk) -> Result<Option<Checkpoint>, StoreError> {
        match (self.dry_run, self.restart) {
            (true, _) => Ok(None),
            (false, true) => self.store.clear_walk_checkpoint(walk).await.map(|()| None),
            (false, false) => self.store.load_walk_checkpoint(walk).await,
        }
    }

    /// Where `walk` starts (its checkpoint's position, or the first
    /// object), reported to `on_progress`.
    async fn start_walk(
        &self,
        walk: Walk,
        on_progress: &mut impl FnMut(&Progress),
    ) -> Result<Progress, BackfillError> {
        let summary = Summary::default();
        let checkpoint = self
            .walk_checkpoint(walk)
            .await
            .map_err(|source| BackfillError::Store { source, summary })?;
        let resumed_from = checkpoint.map_or(0, |checkpoint| checkpoint.position);
        let progress = Progress {
            walk,
            summary,
            position: resumed_from,
            total: None,
            resumed_from,
        };
        on_progress(&progress);
        Ok(progress)
    }

    /// Saves `reached` as the walk's checkpoint, then reports `summary` at
    /// its position, of `total`.
    async fn walk_reached(
        &self,
        progress: &mut Progress,
        summary: Summary,
        reached: Checkpoint,
        total: Option<u64>,
        on_progress: &mut impl FnMut(&Progress),
    ) -> Result<(), BackfillError> {
        let position = reached.position;
        self.save_walk(progress.walk, &summary, reached)
            .await
            .map_err(|source| BackfillError::Store { source, summary })?;
        progress.summary = summary;
        progress.position = position;
        progress.total = total;
        on_progress(progress);
        Ok(())
    }

    /// Saves the checkpoint of `walk` unless this is a dry run or an object
    /// failed (the checkpoint must not move past it).
    async fn save_walk(
        &self,
        walk: Walk,
        summary: &Summary,
        checkpoint: Checkpoint,
    ) -> Result<(), StoreError> {
        if self.dry_run || summary.failed > 0 {
            return Ok(());
        }
        self.store.save_walk_checkpoint(walk, &checkpoint).await
    }

    /// Forgets the checkpoint of a complete walk: the next run is a full
    /// pass again.
    async fn finish_walk(&self, walk: Walk) {
        if self.dry_run {
            return;
        }
        if let Err(error) = self.store.clear_walk_checkpoint(walk).await {
            tracing::warn!(target: "ensure_user", %error, %walk, "could not clear the backfill checkpoint");
        }
    }

    /// Every organization, one batch per page. The checkpoint holds the
    /// last organization written and the count passed.
    async fn organizations(
        &self,
        on_progress: &mut impl FnMut(&Progress),
    ) -> Result<Summary, BackfillError> {
        let walk = Walk::Organizations;
        let mut progress = self.start_walk(walk, on_progress).await?;
        let mut summary = progress.summary;
        let mut pages = self
            .api
            .organizations(self.page_size)
            .resume_at(progress.resumed_from);
        while let Some(page) = next(&mut pages, summary).await? {
            let outcomes = self
                .write_organizations(&page)
                .await
                .map_err(|source| BackfillError::Store { source, summary })?;
            outcomes
                .into_iter()
                .for_each(|outcome| summary.record(outcome));
            let last = page.last().map(|organization| organization.id.clone());
            let reached = Checkpoint::new(last.unwrap_or_default(), pages.position());
            self.walk_reached(&mut progress, summary, reached, pages.total(), on_progress)
                .await?;
        }
        self.finish_walk(walk).await;
        Ok(summary)
    }

    /// Every organization's memberships, one batch per page. The checkpoint
    /// holds the last organization whose memberships were all written and
    /// how many organizations the walk had passed; progress counts
    /// organizations too.
    async fn memberships(
        &self,
        on_progress: &mut impl FnMut(&Progress),
    ) -> Result<Summary, BackfillError> {
        let walk = Walk::Memberships;
        let mut progress = self.start_walk(walk, on_progress).await?;
        let mut summary = progress.summary;
        let mut organizations = self
            .api
            .organizations(self.page_size)
            .resume_at(progress.resumed_from);
        let mut position = progress.resumed_from;
        while let Some(page) = next(&mut organizations, summary).await? {
            for organization in &page {
                if is_organization_id(&organization.id) {
                    let mut memberships = self.api.memberships(&organization.id, self.page_size);
                    while let Some(members) = next(&mut memberships, summary).await? {
                        let outcomes = self
                            .write_memberships(&members)
                            .await
                            .map_err(|source| BackfillError::Store { source, summary })?;
                        outcomes
                            .into_iter()
                            .for_each(|outcome| summary.record(outcome));
                    }
                }
                position += 1;
                let reached = Checkpoint::new(organization.id.clone(), position);
                let total = organizations.total();
                self.walk_reached(&mut progress, summary, reached, total, on_progress)
                    .await?;
            }
        }
        self.finish_walk(walk).await;
        Ok(summary)
    }

    /// Writes (or previews) one page of organizations; `None` marks one
    /// not written (an id that is not a Clerk organization id, or data
    /// the database refused).
    async fn write_organizations(
        &self,
        organizations: &[ClerkOrganization],
    ) -> Result<Vec<Option<BatchOutcome>>, StoreError> {
        let valid = |organization: &ClerkOrganization| is_organization_id(&organization.id);
        let key = |organization: &ClerkOrganization| organization.id.clone();
        if self.dry_run {
            write_valid(organizations, valid, key, |batch| async move {
                self.store.preview_organizations(&batch).await
            })
            .await
        } else {
            write_valid(organizations, valid, key, |batch| async move {
                self.store.apply_organizations(&batch).await
            })
            .await
        }
    }

    /// [`write_organizations`](Self::write_organizations) for memberships,
    /// whose organization and user ids must both be valid.
    async fn write_memberships(
        &self,
        memberships: &[ClerkMembership],
    ) -> Result<Vec<Option<BatchOutcome>>, StoreError> {
        let valid = |membership: &ClerkMembership| {
            is_organization_id(&membership.organization.id) && is_user_id(&membership.user.user_id)
        };
        let key = |membership: &ClerkMembership| {
            format!("{} {}", membership.organization.id, membership.user.user_id)
        };
        if self.dry_run {
            write_valid(memberships, valid, key, |batch| async move {
                self.store.preview_memberships(&batch).await
            })
            .await
        } else {
            write_valid(memberships, valid, key, |batch| async move {
                self.store.apply_memberships(&batch).await
            })
            .await
        }
    }
}

/// The next page of `pages`, a failure turned into the walk's error.
async fn next<T: serde::de::DeserializeOwned>(
    pages: &mut ListPages<T>,
    summary: Summary,
) -> Result<Option<Vec<T>>, BackfillError> {
    pages
        .next_page()
        .await
        .map_err(|source| BackfillError::Api { source, summary })
}

/// Writes the `valid` items of a page with `apply`, one outcome per item
/// in order (`None`: not written). When the batch is refused for its data,
/// the items are written one at a time, so that a bad one fails alone; an
/// unavailable database fails the page.
async fn write_valid<T, F, Fut>(
    items: &[T],
    valid: impl Fn(&T) -> bool,
    key: impl Fn(&T) -> String,
    apply: F,
) -> Result<Vec<Option<BatchOutcome>>, StoreError>
where
    T: Clone,
    F: Fn(Vec<T>) -> Fut,
    Fut: Future<Output = Result<Vec<BatchOutcome>, StoreError>>,
{
    for item in items.iter().filter(|item| !valid(item)) {
        tracing::warn!(target: "ensure_user", id = %key(item).escape_debug(), "not written: not a Clerk id");
    }
    let batch: Vec<T> = items.iter().filter(|item| valid(item)).cloned().collect();
    let written: Vec<Option<BatchOutcome>> = if batch.is_empty() {
        Vec::new()
    } else {
        match apply(batch.clone()).await {
            Ok(outcomes) => outcomes.into_iter().map(Some).collect(),
            Err(error) if error.is_about_the_data() => {
                tracing::warn!(target: "ensure_user", %error, "batch refused; writing it one at a time");
                let mut outcomes = Vec::with_capacity(batch.len());
                for item in batch {
                    let id = key(&item);
                    match apply(vec![item]).await {
                        Ok(outcome) => outcomes.push(outcome.first().copied()),
                        Err(error) if error.is_about_the_data() => {
                            tracing::warn!(target: "ensure_user", %id, %error, "not written");
                            outcomes.push(None);
                        }
                        Err(error) => return Err(error),
                    }
                }
                outcomes
            }
            Err(error) => return Err(error),
        }
    };
    let mut written = written.into_iter();
    Ok(items
        .iter()
        .map(|item| {
            if valid(item) {
                written.next().flatten()
            } else {
                None
            }
        })
        .collect())
}
