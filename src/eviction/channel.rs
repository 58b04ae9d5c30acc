//! The PostgreSQL channel deletions travel on, named the same way by the
//! store that publishes them and the listener that hears them.

use crate::store::{Bind, Statement};

/// The channel: `ensure_user_evict_` followed by the MD5 of the
/// connection's current schema (50 bytes in all, within PostgreSQL's
/// 63-byte limit for any schema name, and distinct per schema). An SQL
/// expression, so that publisher and listener name it alike.
macro_rules! channel {
    () => {
        "'ensure_user_evict_' || md5(coalesce(current_schema(), ''))"
    };
}

/// Selects the channel name, for the listener.
pub(super) const SELECT_CHANNEL: &str = concat!("SELECT ", channel!());

/// Publishes `clerk_id` on the channel; run in the transaction that records
/// the deletion's tombstone, so that it is sent when (and only if) that
/// transaction commits.
pub(crate) fn announcement(clerk_id: &str) -> Statement<'_> {
    Statement::new(concat!("SELECT pg_notify(", channel!(), ", $1)")).bind(Bind::Text(clerk_id))
}
