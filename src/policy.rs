//! How one layer serves its routes, beside the engine its clones share:
//! what it does with a request without a token, and the work it does when
//! it creates a user's row.

use std::{future::Future, pin::Pin, sync::Arc};

/// What the layer does with a request that carries no token at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Refuse it with `401 missing_token` (the default).
    #[default]
    Required,
    /// Let it through without a [`LocalUser`](crate::LocalUser). A token that
    /// is present but invalid is still refused.
    Optional,
}

/// One layer's settings, carried by each of its services.
#[derive(Clone, Default)]
pub(crate) struct Policy {
    pub(crate) mode: Mode,
    pub(crate) first_sight: Option<Arc<dyn FirstSight>>,
}

/// Work done once, right after the layer created a user's row from a token
/// without profile claims.
pub(crate) trait FirstSight: Send + Sync + 'static {
    fn created<'a>(&'a self, clerk_id: &'a str) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}
