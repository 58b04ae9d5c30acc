//! [`ListPages`]: a list endpoint that pages by `offset` and reports
//! `total_count` (organizations, an organization's memberships).

use serde::{Deserialize, de::DeserializeOwned};

use super::{ApiError, ClerkApi, MAX_PAGE_SIZE};

/// One page of a list endpoint: `{"data": […], "total_count": n}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ListPage<T> {
    pub(crate) data: Vec<T>,
    pub(crate) total_count: u64,
}

/// A walk over a list endpoint in creation order (`order_by=created_at`),
/// paged by `limit` and `offset`, made by [`ClerkApi::organizations`] or
/// [`ClerkApi::memberships`].
///
/// The walk ends on a short page or once `total_count` is reached. Offset
/// paging can skip an object when an older one is deleted during the walk;
/// a later walk picks it up.
#[derive(Debug)]
pub struct ListPages<T> {
    api: ClerkApi,
    path: Vec<String>,
    limit: u32,
    position: u64,
    total: Option<u64>,
    done: bool,
    _item: std::marker::PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> ListPages<T> {
    pub(crate) fn new(api: ClerkApi, path: Vec<String>, page_size: u32) -> Self {
        Self {
            api,
            path,
            limit: page_size.clamp(1, MAX_PAGE_SIZE),
            position: 0,
            total: None,
            done: false,
            _item: std::marker::PhantomData,
        }
    }

    /// Starts after the first `position` objects.
    pub fn resume_at(mut self, position: u64) -> Self {
        self.position = position;
        self
    }

    /// The next page; `None` once every object was returned.
    pub async fn next_page(&mut self) -> Result<Option<Vec<T>>, ApiError> {
        if self.done {
            return Ok(None);
        }
        let mut query = vec![
            ("limit", self.limit.to_string()),
            ("order_by", "created_at".to_owned()),
        ];
        if self.position > 0 {
            query.push(("offset", self.position.to_string()));
        }
        let segments: Vec<&str> = self.path.iter().map(String::as_str).collect();
        let page: ListPage<T> = self.api.list(&segments, &query).await?;
        self.total = Some(page.total_count);
        self.position += page.data.len() as u64;
        if page.data.len() < self.limit as usize || self.position >= page.total_count {
            self.done = true;
        }
        if page.data.is_empty() {
            return Ok(None);
        }
        Ok(Some(page.data))
    }

    /// How many objects the walk has passed (including those skipped by
    /// [`resume_at`](Self::resume_at)).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The `total_count` of the last page fetched.
    pub fn total(&self) -> Option<u64> {
        self.total
    }
}
