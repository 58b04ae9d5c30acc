//! Writing many users at once, and remembering how far a walk got: the
//! [`BackfillStore`] trait.

use std::future::Future;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use std::{collections::HashMap, hash::Hash};

use super::{Profile, StoreError};
use crate::clerk::ClerkUser;

/// One user as Clerk reports it: the full profile and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProfileUpdate {
    /// The Clerk user id (`user_…`).
    pub clerk_id: String,
    /// The whole profile; absent fields clear the stored ones.
    pub profile: Profile,
    /// Clerk's `updated_at` (Unix ms): the version of this profile.
    pub updated_at_ms: i64,
}

impl ProfileUpdate {
    /// An update of `clerk_id` to `profile`, as of `updated_at_ms`.
    pub fn new(clerk_id: impl Into<String>, profile: Profile, updated_at_ms: i64) -> Self {
        Self {
            clerk_id: clerk_id.into(),
            profile,
            updated_at_ms,
        }
    }
}

impl From<&ClerkUser> for ProfileUpdate {
    fn from(user: &ClerkUser) -> Self {
        Self::new(user.id.clone(), user.profile(), user.updated_at)
    }
}

/// What a batch did (or, previewed, would do) to one user's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BatchOutcome {
    /// A row was created.
    Created,
    /// The row took the newer profile.
    Updated,
    /// The row already holds this version or a newer one; nothing was written.
    Unchanged,
    /// The user is deleted (tombstoned); nothing was written.
    Tombstoned,
}

impl BatchOutcome {
    /// A stable `snake_case` code: `created`, `updated`, `unchanged` or `tombstoned`.
    pub const fn code(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
            Self::Tombstoned => "tombstoned",
        }
    }
}

/// How far a walk over Clerk's users (or organizations, or memberships)
/// got: the last one whose batch was written, and how many the walk had
/// passed by then.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Checkpoint {
    /// The id of the last user (or organization) written; for the
    /// memberships walk, the last organization whose memberships were all
    /// written.
    pub last_clerk_id: String,
    /// Objects passed up to and including it, in Clerk's `created_at` order
    /// (for the memberships walk, organizations).
    pub position: u64,
}

impl Checkpoint {
    /// A checkpoint after `last_clerk_id`, the `position`-th object.
    pub fn new(last_clerk_id: impl Into<String>, position: u64) -> Self {
        Self {
            last_clerk_id: last_clerk_id.into(),
            position,
        }
    }
}

/// What a backfill walks over: each walk keeps a checkpoint of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Walk {
    /// Every user (`GET /v1/users`).
    Users,
    /// Every organization (`GET /v1/organizations`).
    Organizations,
    /// Every organization's memberships
    /// (`GET /v1/organizations/{id}/memberships`, for each organization).
    Memberships,
}

impl Walk {
    /// Every walk, in the order a full backfill runs them: memberships
    /// last, as they need the rows of their organizations and users.
    pub const ALL: [Self; 3] = [Self::Users, Self::Organizations, Self::Memberships];

    /// `users`, `organizations` or `memberships`: also the name its
    /// checkpoint is saved under.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Organizations => "organizations",
            Self::Memberships => "memberships",
        }
    }
}

/// The walk's [`name`](Walk::name).
impl std::fmt::Display for Walk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a backfill needs from a store: batched profile upserts and a
/// checkpoint to resume from. The bundled SQL stores implement it.
///
/// [`apply_batch`](Self::apply_batch) follows the [`UserSync`](super::UserSync)
/// rules (last write wins on `updated_at`, tombstoned users are never
/// written, a tombstone committed during the write removes the row again),
/// with one difference: a profile whose version equals the stored one is
/// not written again, so a second pass over unchanged data writes nothing.
pub trait BackfillStore: Send + Sync + 'static {
    /// Creates or updates the rows of `users`, and returns one outcome per
    /// user, in order. When an id occurs twice, the newer version is the
    /// one applied.
    fn apply_batch(
        &self,
        users: &[ProfileUpdate],
    ) -> impl Future<Output = Result<Vec<BatchOutcome>, StoreError>> + Send;

    /// What [`apply_batch`](Self::apply_batch) would do now, writing nothing.
    fn preview_batch(
        &self,
        users: &[ProfileUpdate],
    ) -> impl Future<Output = Result<Vec<BatchOutcome>, StoreError>> + Send;

    /// The saved checkpoint, if a walk stopped before its end.
    fn load_checkpoint(
        &self,
    ) -> impl Future<Output = Result<Option<Checkpoint>, StoreError>> + Send;

    /// Saves `checkpoint`, replacing the previous one.
    fn save_checkpoint(
        &self,
        checkpoint: &Checkpoint,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets the checkpoint: the next walk starts from the first user.
    fn clear_checkpoint(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What a store holds for one Clerk id, read before a batch.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stored {
    /// A row exists.
    pub(crate) exists: bool,
    /// The row's `clerk_updated_at`, when it has one.
    pub(crate) version: Option<i64>,
    /// A tombstone exists.
    pub(crate) tombstoned: bool,
    /// The row records a ban.
    pub(crate) banned: bool,
}

/// The batch's plan: for each user, what the write should do given what
/// is stored, and which users to write (the newest version of each id).
///
/// `versioned` says whether the store keeps versions at all; without them
/// every existing row is overwritten.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) fn plan(
    users: &[ProfileUpdate],
    stored: &HashMap<String, Stored>,
    versioned: bool,
) -> (Vec<BatchOutcome>, Vec<usize>) {
    let items: Vec<(&str, i64, Stored)> = users
        .iter()
        .map(|user| {
            let current = stored.get(&user.clerk_id).copied().unwrap_or_default();
            (user.clerk_id.as_str(), user.updated_at_ms, current)
        })
        .collect();
    plan_items(&items, versioned)
}

/// [`plan`] for any kind of row: each item is its key, its version and
/// what is stored for it.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) fn plan_items<K: Hash + Eq + Copy>(
    items: &[(K, i64, Stored)],
    versioned: bool,
) -> (Vec<BatchOutcome>, Vec<usize>) {
    // The newest item per key (the first of equals); the others change nothing.
    let mut newest: HashMap<K, usize> = HashMap::with_capacity(items.len());
    for (index, (key, version, _)) in items.iter().enumerate() {
        newest
            .entry(*key)
            .and_modify(|best| {
                if *version > items[*best].1 {
                    *best = index;
                }
            })
            .or_insert(index);
    }
    let mut writes = Vec::new();
    let outcomes = items
        .iter()
        .enumerate()
        .map(|(index, (key, version, current))| {
            if current.tombstoned {
                return BatchOutcome::Tombstoned;
            }
            if newest[key] != index {
                return BatchOutcome::Unchanged;
            }
            let outcome = match (current.exists, current.version) {
                (false, _) => BatchOutcome::Created,
                (true, Some(stored)) if versioned && stored >= *version => BatchOutcome::Unchanged,
                (true, _) => BatchOutcome::Updated,
            };
            if outcome != BatchOutcome::Unchanged {
                writes.push(index);
            }
            outcome
        })
        .collect();
    (outcomes, writes)
}

#[cfg(all(test, any(feature = "postgres", feature = "sqlite")))]
mod tests {
    use super::*;

    fn update(id: &str, version: i64) -> ProfileUpdate {
        ProfileUpdate::new(
            id,
            Profile::new().with_email(format!("{id}@x.test")),
            version,
        )
    }

    #[test]
    fn plan_follows_versions_and_tombstones() {
        let stored = HashMap::from([
            (
                "user_same".to_owned(),
                Stored {
                    exists: true,
                    version: Some(5),
                    tombstoned: false,
                    banned: false,
                },
            ),
            (
                "user_older".to_owned(),
                Stored {
                    exists: true,
                    version: Some(4),
                    tombstoned: false,
                    banned: false,
                },
            ),
            (
                "user_newer".to_owned(),
                Stored {
                    exists: true,
                    version: Some(9),
                    tombstoned: false,
                    banned: false,
                },
            ),
            (
                "user_unversioned".to_owned(),
                Stored {
                    exists: true,
                    version: None,
                    tombstoned: false,
                    banned: false,
                },
            ),
            (
                "user_gone".to_owned(),
                Stored {
                    exists: false,
                    version: None,
                    tombstoned: true,
                    banned: false,
                },
            ),
        ]);
        let users = [
            update("user_same", 5),
            update("user_older", 5),
            update("user_newer", 5),
            update("user_unversioned", 5),
            update("user_gone", 5),
            update("user_new", 5),
        ];
        let (outcomes, writes) = plan(&users, &stored, true);
        use BatchOutcome::*;
        assert_eq!(
            outcomes,
            [Unchanged, Updated, Unchanged, Updated, Tombstoned, Created]
        );
        assert_eq!(writes, [1, 3, 5]);

        // Without versions, every existing row is overwritten.
        let (outcomes, _) = plan(&users[..3], &stored, false);
        assert_eq!(outcomes, [Updated, Updated, Updated]);
    }

    #[test]
    fn duplicate_ids_write_the_newest_once() {
        let users = [
            update("user_a", 1),
            update("user_a", 3),
            update("user_a", 3),
        ];
        let (outcomes, writes) = plan(&users, &HashMap::new(), true);
        use BatchOutcome::*;
        assert_eq!(outcomes, [Unchanged, Created, Unchanged]);
        assert_eq!(writes, [1]);
    }
}
