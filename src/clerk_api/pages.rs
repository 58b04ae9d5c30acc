//! [`UserPages`]: every user, oldest first, one page per request.

use super::{ApiError, ClerkApi};
use crate::clerk::ClerkUser;

/// The largest page `GET /v1/users` serves.
pub const MAX_PAGE_SIZE: u32 = 500;

/// A walk over every user of the instance, in creation order
/// (`order_by=created_at`), made by [`ClerkApi::users`].
///
/// Each request after the first passes `starting_after`, the id of the last
/// user seen, and the walk ends on a short page. A deployment that refuses
/// the cursor with `422` (or ignores it) is walked with `offset` instead,
/// from the same position. Offset paging can skip a user when an older
/// user is deleted during the walk; a later walk picks it up.
///
/// A walk can start after a user seen before ([`resume_after`](Self::resume_after)).
#[derive(Debug)]
pub struct UserPages {
    api: ClerkApi,
    limit: u32,
    last_id: Option<String>,
    position: u64,
    by_offset: bool,
    done: bool,
}

impl UserPages {
    pub(crate) fn new(api: ClerkApi, page_size: u32) -> Self {
        Self {
            api,
            limit: page_size.clamp(1, MAX_PAGE_SIZE),
            last_id: None,
            position: 0,
            by_offset: false,
            done: false,
        }
    }

    /// Starts after the user `last_id`, the `position`-th user of the walk
    /// (needed when the walk falls back to offsets).
    pub fn resume_after(mut self, last_id: impl Into<String>, position: u64) -> Self {
        self.last_id = Some(last_id.into());
        self.position = position;
        self
    }

    /// The next page; `None` once every user was returned.
    pub async fn next_page(&mut self) -> Result<Option<Vec<ClerkUser>>, ApiError> {
        if self.done {
            return Ok(None);
        }
        let mut page = match self.fetch().await {
            Err(error) if error.status() == Some(422) && self.uses_cursor() => {
                self.fall_back_to_offsets("refused");
                self.fetch().await?
            }
            other => other?,
        };
        if self.uses_cursor()
            && page
                .iter()
                .any(|user| Some(&user.id) == self.last_id.as_ref())
        {
            self.fall_back_to_offsets("ignored");
            page = self.fetch().await?;
        }
        if page.len() < self.limit as usize {
            self.done = true;
        }
        let Some(last) = page.last() else {
            return Ok(None);
        };
        self.last_id = Some(last.id.clone());
        self.position += page.len() as u64;
        Ok(Some(page))
    }

    /// How many users the walk has passed (including those skipped by
    /// [`resume_after`](Self::resume_after)).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The id of the last user returned (or resumed after).
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Whether the walk fell back to `offset` paging.
    pub fn uses_offsets(&self) -> bool {
        self.by_offset
    }

    fn uses_cursor(&self) -> bool {
        !self.by_offset && self.last_id.is_some()
    }

    fn fall_back_to_offsets(&mut self, what: &str) {
        tracing::warn!(
            target: "ensure_user",
            position = self.position,
            "the Backend API {what} the `starting_after` cursor; paging by offset instead"
        );
        self.by_offset = true;
    }

    async fn fetch(&self) -> Result<Vec<ClerkUser>, ApiError> {
        let mut query = vec![
            ("limit", self.limit.to_string()),
            ("order_by", "created_at".to_owned()),
        ];
        match &self.last_id {
            _ if self.by_offset && self.position > 0 => {
                query.push(("offset", self.position.to_string()));
            }
            Some(last_id) if !self.by_offset => query.push(("starting_after", last_id.clone())),
            _ => {}
        }
        self.api.list_users(&query).await
    }
}
