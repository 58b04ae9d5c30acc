//! Where local users, organizations and memberships live: the
//! [`UserStore`], [`UserSync`], [`BackfillStore`], [`OrganizationStore`],
//! [`OrganizationSync`] and [`OrganizationBackfillStore`] traits, and their
//! SQL implementations.
//!
//! # Organizations and memberships
//!
//! The bundled stores keep them in four tables (migration `0003`, run by
//! `migrate`):
//!
//! | table | what it holds |
//! |---|---|
//! | `organizations` | one row per Clerk organization: `clerk_id` (unique), `name`, `slug`, `image_url`, and `clerk_updated_at`, the version of the last state written |
//! | `organization_memberships` | one row per member: `organization_id` (→ `organizations.id`) and `user_id` (→ `users.id`), unique together, both `ON DELETE CASCADE`; `role`, normalised (`org:admin`); `role_version`, when the role was true (Unix ms); `clerk_updated_at` of the last event written |
//! | `clerk_organization_tombstones` | deleted organizations, by Clerk id |
//! | `clerk_membership_tombstones` | deleted memberships, by organization and user Clerk ids, with the time of the latest deletion |
//!
//! Local ids are never handed out twice (identity columns; `AUTOINCREMENT`
//! on SQLite). The rules are the users':
//!
//! - An organization or membership that exists costs reads and no write;
//!   concurrent creations, from any number of processes, end with one row,
//!   and an insert re-checks the tombstones after writing, removing its row
//!   when a deletion committed meanwhile.
//! - A role is as new as its `role_version`: a session token's `iat` or an
//!   event's `updated_at`. A token takes the row when it is newer and names
//!   another role (one `UPDATE … WHERE role_version < iat`); an event when
//!   it is at least as new (the backfill: newer); whichever is newer wins.
//! - A deletion commits its tombstone, and announces it, before removing
//!   the row. An organization's tombstone is final. A membership's is
//!   dated: tokens issued and events updated at or before it do not bring
//!   the membership back, a newer one does (the user was invited back),
//!   and it only ever moves forward.
//! - Deleting an organization or a user deletes their memberships, by the
//!   foreign keys' cascades. On SQLite they need `PRAGMA foreign_keys = ON`,
//!   which sqlx sets on every connection unless its options turn it off.
//! - An event for a membership also writes the organization from the
//!   snapshot it carries (by the same last-write-wins rule) and, when the
//!   user has no row, an empty one; nothing at all for a tombstoned user or
//!   organization.
//! - Every Clerk id is checked (`org_…`, `user_…`, as tokens' are), and a
//!   role must name one in text that can be stored: anything else is
//!   refused with an error before a statement runs. Names, slugs and image
//!   URLs follow [`Profile`]'s rule: empty text, or text with a NUL, is
//!   stored as absent.
//! - PostgreSQL announces deletions on the users' channel (see
//!   [`eviction`](crate::eviction)): the bare id for a user,
//!   `org:<organization id>` for an organization and
//!   `membership:<organization id>:<user id>` for a membership.
//!
//! With a mapped users table ([`UserTable`]) the statements join that table,
//! and `migrate` creates the four tables with `user_id` of its key's type,
//! referencing it (tables the app made itself are left as they are).
//!
//! An app with its own organizations and memberships tables maps them
//! ([`OrganizationTable`], [`MembershipTable`], handed to
//! `SqlUserStore::with_organization_tables`): every statement, the
//! backfill's batches included, reads and writes the mapped tables and
//! columns, by the same rules. Keys may be 64-bit integers or UUIDs (which
//! the store generates); the name, slug, image URL and version columns of
//! an organization are optional (without a version, the newest event does
//! not win over a late older one: each overwrites the row), and a
//! membership needs its role and `role_version` and a unique constraint on
//! (organization, user). The tombstones stay in the crate's own two
//! tables, and `migrate` creates those and never a mapped table. The store
//! deletes a deleted organization's or user's memberships itself, so the
//! app's foreign keys need not cascade.
//!
//! # The schema, checked at the start
//!
//! [`UserStore::check_schema`] and [`OrganizationStore::check_organization_schema`]
//! compare what the store needs with the database's catalog and answer
//! [`StoreError::Schema`] for the first table, column or unique constraint
//! missing; `Setup::start` runs them, and so does
//! every readiness check. A statement that fails at run time for the
//! same reason is a [`StoreError::is_schema_mismatch`], which the layer
//! and the webhook receiver refuse `500 store_misconfigured`.

use std::{future::Future, pin::Pin};

use crate::local_id::LocalId;

mod batch;
mod organization;
mod organization_batch;
mod organization_table;
mod profile;
mod schema;
mod sync;
mod table;
pub use batch::{BackfillStore, BatchOutcome, Checkpoint, ProfileUpdate, Walk};
pub(crate) use organization::DynOrganizationStore;
#[cfg(feature = "webhooks")]
pub(crate) use organization::DynOrganizationSync;
pub use organization::{
    MembershipClaim, MembershipResolution, OrganizationResolution, OrganizationStore,
    OrganizationSync,
};
pub use organization_batch::OrganizationBackfillStore;
pub use organization_table::{MembershipTable, OrganizationTable};
pub use profile::Profile;
pub use schema::SchemaError;
#[cfg(any(feature = "webhooks", feature = "clerk-api"))]
pub(crate) use sync::DynUserSync;
pub use sync::{SyncOutcome, UserSync};
pub use table::{IdKind, InvalidIdentifier, UserTable};

#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod sql;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) use sql::Dialect;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use sql::PgUserStore;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
pub use sql::SqlUserStore;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sql::SqliteUserStore;
#[cfg(feature = "postgres")]
pub(crate) use sql::{Bind, Statement};

/// What the store found (or made) for a Clerk user id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The row already existed; nothing was written.
    Existing(LocalId),
    /// The row was created by this call.
    Created(LocalId),
    /// The user was deleted in Clerk; no row exists and none was created.
    Deleted,
    /// The row exists and records that Clerk bans the user; nothing was
    /// written.
    Banned(LocalId),
}

impl Resolution {
    /// `existing`, `created` or `deleted`, for the metrics.
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            Self::Existing(_) => "existing",
            Self::Created(_) => "created",
            Self::Deleted => "deleted",
            Self::Banned(_) => "banned",
        }
    }

    /// The local id, unless the user was deleted.
    pub fn id(self) -> Option<LocalId> {
        match self {
            Self::Existing(id) | Self::Created(id) | Self::Banned(id) => Some(id),
            Self::Deleted => None,
        }
    }

    /// Whether the row records that the user is banned.
    pub(crate) fn is_banned(&self) -> bool {
        matches!(self, Self::Banned(_))
    }
}

/// A store failure. Shown to no client: the layer answers `503
/// store_unavailable`, or `500 store_misconfigured` when the failure is the
/// schema's ([`StoreError::is_schema_mismatch`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The call did not finish within the configured store timeout.
    #[error("store call timed out after {0:?}")]
    TimedOut(std::time::Duration),
    /// Any other failure: of a custom store, or a bundled store's upgrade
    /// refusing to change the database.
    #[error("store error: {0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database lacks a table, column or unique constraint the store
    /// needs ([`UserStore::check_schema`]).
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

/// PostgreSQL's SQLSTATEs for a statement the schema cannot run: an
/// undefined column, an undefined table, and no unique constraint matching
/// an `ON CONFLICT` target.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
const SCHEMA_SQLSTATES: [&str; 3] = ["42703", "42P01", "42P10"];

/// How SQLite words the same failures (its code is the generic
/// `SQLITE_ERROR`).
#[cfg(any(feature = "postgres", feature = "sqlite"))]
const SCHEMA_MESSAGES: [&str; 4] = [
    "no such column",
    "has no column named",
    "no such table",
    "ON CONFLICT clause does not match",
];

impl StoreError {
    /// Whether the failure is the schema's, so that retrying cannot help:
    /// a [`SchemaError`], or the database refusing a statement for a
    /// missing table or column, or for a missing unique constraint.
    pub fn is_schema_mismatch(&self) -> bool {
        match self {
            Self::Schema(_) => true,
            #[cfg(any(feature = "postgres", feature = "sqlite"))]
            Self::Database(sqlx::Error::Database(error)) => {
                error
                    .code()
                    .is_some_and(|code| SCHEMA_SQLSTATES.contains(&code.as_ref()))
                    || SCHEMA_MESSAGES
                        .iter()
                        .any(|wording| error.message().contains(wording))
            }
            _ => false,
        }
    }

    /// Whether the database refused the data (a constraint, a value a
    /// column cannot hold) rather than being unavailable.
    #[cfg(feature = "clerk-api")]
    pub(crate) fn is_about_the_data(&self) -> bool {
        match self {
            #[cfg(any(feature = "postgres", feature = "sqlite"))]
            Self::Database(sqlx::Error::Database(_)) => true,
            _ => false,
        }
    }
}

/// Finds or creates the app's user row for a Clerk user.
///
/// Implement it for a schema the bundled stores cannot map. The contract:
///
/// - a user who already has a row costs a read and no write;
/// - concurrent calls for one new user, from any number of processes, end
///   with exactly one row, and all of them return its id;
/// - a user with a deletion tombstone is never (re)created: return
///   [`Resolution::Deleted`].
///
/// ```
/// use ensure_user::{LocalId, store::{Profile, Resolution, StoreError, UserStore}};
///
/// /// Every Clerk user maps to the same row: enough for a demo.
/// struct Fixed;
///
/// impl UserStore for Fixed {
///     async fn find_or_create(&self, _clerk_id: &str, _profile: &Profile) -> Result<Resolution, StoreError> {
///         Ok(Resolution::Existing(LocalId::Int(1)))
///     }
/// }
/// ```
pub trait UserStore: Send + Sync + 'static {
    /// Returns the row for `clerk_id`, creating it with `profile` when absent.
    fn find_or_create(
        &self,
        clerk_id: &str,
        profile: &Profile,
    ) -> impl Future<Output = Result<Resolution, StoreError>> + Send;

    /// Whether the store can be reached, for readiness checks. Default: always.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }

    /// Whether the database has every table, column and unique constraint
    /// the store reads or writes users with; [`StoreError::Schema`] names
    /// the first one missing and the fix. Run by
    /// `Setup::start`, which fails on it, and by
    /// every readiness check. Default: nothing to check.
    fn check_schema(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`UserStore`] made object-safe, so the layer has no store type parameter.
pub(crate) trait DynUserStore: Send + Sync + 'static {
    fn find_or_create_dyn<'a>(
        &'a self,
        clerk_id: &'a str,
        profile: &'a Profile,
    ) -> BoxFuture<'a, Result<Resolution, StoreError>>;

    fn ping_dyn(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    fn check_schema_dyn(&self) -> BoxFuture<'_, Result<(), StoreError>>;
}

impl<S: UserStore> DynUserStore for S {
    fn find_or_create_dyn<'a>(
        &'a self,
        clerk_id: &'a str,
        profile: &'a Profile,
    ) -> BoxFuture<'a, Result<Resolution, StoreError>> {
        Box::pin(self.find_or_create(clerk_id, profile))
    }

    fn ping_dyn(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.ping())
    }

    fn check_schema_dyn(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.check_schema())
    }
}
