//! [`Backfill`]: the walk, the batches and the checkpoint.

use crate::{
    clerk::ClerkUser,
    clerk_api::{ApiError, ClerkApi, MAX_PAGE_SIZE},
    clerk_id::is_user_id,
    store::{BackfillStore, BatchOutcome, Checkpoint, ProfileUpdate, StoreError, Walk},
};

use super::{BackfillError, Progress, Summary};

/// A backfill of every Clerk user into a [`BackfillStore`]. See the
/// [module docs](super) for an example.
#[derive(Debug)]
pub struct Backfill<S> {
    pub(super) api: ClerkApi,
    pub(super) store: S,
    pub(super) page_size: u32,
    pub(super) dry_run: bool,
    pub(super) restart: bool,
}

impl<S: BackfillStore> Backfill<S> {
    /// A backfill reading from `api` and writing to `store`, 500 objects
    /// per page and batch, resuming each walk from its saved checkpoint.
    pub fn new(api: ClerkApi, store: S) -> Self {
        Self {
            api,
            store,
            page_size: MAX_PAGE_SIZE,
            dry_run: false,
            restart: false,
        }
    }

    /// Objects (users, organizations, memberships) per page and per batch,
    /// 1 to 500. Default 500.
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.clamp(1, MAX_PAGE_SIZE);
        self
    }

    /// Counts what a run would change and writes nothing, not even the
    /// checkpoint; a dry run always walks every user. Default off.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Ignores (and forgets) the saved checkpoints: each walk starts from
    /// its first object. Default off.
    pub fn restart(mut self, restart: bool) -> Self {
        self.restart = restart;
        self
    }

    /// Runs the backfill, calling `on_progress` once at the start and
    /// after each page. Returns what it did, or why it stopped early.
    pub async fn run(
        &self,
        mut on_progress: impl FnMut(&Progress),
    ) -> Result<Summary, BackfillError> {
        let mut summary = Summary::default();
        let store_error = |source, summary| BackfillError::Store { source, summary };
        let checkpoint = match (self.dry_run, self.restart) {
            (true, _) => None,
            (false, true) => {
                self.store
                    .clear_checkpoint()
                    .await
                    .map_err(|e| store_error(e, summary))?;
                None
            }
            (false, false) => self
                .store
                .load_checkpoint()
                .await
                .map_err(|e| store_error(e, summary))?,
        };
        // The count only feeds progress reports, but a failure here would
        // fail the walk too: stop now, unless the endpoint is missing.
        let total = match self.api.user_count().await {
            Ok(total) => Some(total),
            Err(error) if error.status() == Some(404) => None,
            Err(source) => return Err(BackfillError::Api { source, summary }),
        };
        let mut pages = self.api.users(self.page_size);
        if let Some(checkpoint) = checkpoint {
            tracing::info!(
                target: "ensure_user",
                after = %checkpoint.last_clerk_id,
                position = checkpoint.position,
                "resuming the backfill"
            );
            pages = pages.resume_after(checkpoint.last_clerk_id, checkpoint.position);
        }
        let resumed_from = pages.position();
        let mut progress = Progress {
            walk: Walk::Users,
            summary,
            position: resumed_from,
            total,
            resumed_from,
        };
        on_progress(&progress);

        // Set once a user failed: the checkpoint must not move past it.
        let mut checkpoint_frozen = false;
        let mut next = pages.next_page().await;
        loop {
            let page = match next {
                Ok(Some(page)) => page,
                Ok(None) => break,
                Err(source) => return Err(BackfillError::Api { source, summary }),
            };
            let reached = Checkpoint::new(pages.last_id().unwrap_or_default(), pages.position());
            // The next page is fetched (and parsed) on another task while
            // this one is written.
            let fetching = tokio::spawn(async move {
                let fetched = pages.next_page().await;
                (pages, fetched)
            });
            let outcomes = match self.write(&page).await {
                Ok(outcomes) => outcomes,
                Err(source) => {
                    fetching.abort();
                    summary.failed += page.len() as u64;
                    return Err(store_error(source, summary));
                }
            };
            let fetched = match fetching.await {
                Ok((returned, fetched)) => {
                    pages = returned;
                    fetched
                }
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Err(_) => {
                    let source = ApiError::Unreachable("the page fetch was cancelled".to_owned());
                    return Err(BackfillError::Api { source, summary });
                }
            };
            for outcome in outcomes {
                summary.record(outcome);
            }
            checkpoint_frozen |= summary.failed > 0;
            if !self.dry_run && !checkpoint_frozen {
                self.store
                    .save_checkpoint(&reached)
                    .await
                    .map_err(|e| store_error(e, summary))?;
            }
            progress.summary = summary;
            progress.position = reached.position;
            on_progress(&progress);
            next = fetched;
        }

        if !self.dry_run {
            // The walk is complete: the next run is a full pass again.
            if let Err(error) = self.store.clear_checkpoint().await {
                tracing::warn!(target: "ensure_user", %error, "could not clear the backfill checkpoint");
            }
        }
        Ok(summary)
    }

    /// Writes (or previews) one page; `None` marks a user not written.
    ///
    /// A user whose id is not a Clerk user id is not written (no token or
    /// webhook could ever name it). When the batch statement is refused for
    /// its data, the users are written one at a time, so that one bad user
    /// fails alone. An unavailable database fails the page.
    async fn write(&self, users: &[ClerkUser]) -> Result<Vec<Option<BatchOutcome>>, StoreError> {
        let (valid, invalid): (Vec<&ClerkUser>, Vec<&ClerkUser>) =
            users.iter().partition(|user| is_user_id(&user.id));
        for user in &invalid {
            tracing::warn!(
                target: "ensure_user",
                clerk_id = %user.id.escape_debug(),
                "user not written: not a Clerk user id"
            );
        }
        let written = self.write_valid(&valid).await?;
        let mut written = written.into_iter();
        Ok(users
            .iter()
            .map(|user| {
                if is_user_id(&user.id) {
                    written.next().flatten()
                } else {
                    None
                }
            })
            .collect())
    }

    /// [`write`](Self::write) for users whose ids are valid, in their order.
    async fn write_valid(
        &self,
        users: &[&ClerkUser],
    ) -> Result<Vec<Option<BatchOutcome>>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let updates: Vec<ProfileUpdate> = users
            .iter()
            .map(|user| ProfileUpdate::from(*user))
            .collect();
        if self.dry_run {
            let outcomes = self.store.preview_batch(&updates).await?;
            return Ok(outcomes.into_iter().map(Some).collect());
        }
        match self.store.apply_batch(&updates).await {
            Ok(outcomes) => Ok(outcomes.into_iter().map(Some).collect()),
            Err(error) if error.is_about_the_data() => {
                tracing::warn!(target: "ensure_user", %error, "batch refused; writing its users one at a time");
                let mut outcomes = Vec::with_capacity(updates.len());
                for update in &updates {
                    match self.store.apply_batch(std::slice::from_ref(update)).await {
                        Ok(outcome) => outcomes.push(outcome.first().copied()),
                        Err(error) if error.is_about_the_data() => {
                            tracing::warn!(
                                target: "ensure_user",
                                clerk_id = %update.clerk_id,
                                %error,
                                "user not written"
                            );
                            outcomes.push(None);
                        }
                        Err(error) => return Err(error),
                    }
                }
                Ok(outcomes)
            }
            Err(error) => Err(error),
        }
    }
}
