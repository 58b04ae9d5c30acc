//! Writing many users at once, and remembering how far a walk got: the
//! [`BackfillStore`] trait.

#[cfg(any(feature = "postgres", feature = "sqlite"))]
use std::collections::HashMap;
use std::future::Future;

use super::{Profile, StoreError};
use crate::ClerkUser;

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

/// How far a walk over Clerk's users got: the last user whose batch was
/// written, and how many users the walk had passed by then.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Checkpoint {
    /// The id of the last user written.
    pub last_clerk_id: String,
    /// Users passed up to and including it, in Clerk's `created_at` order.
    pub position: u64,
}

impl Checkpoint {
    /// A checkpoint after `last_clerk_id`, the `position`-th user.
    pub fn new(last_clerk_id: impl Into<String>, position: u64) -> Self {
        Self {
            last_clerk_id: last_clerk_id.into(),
            position,
        }
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
    // The newest update per id (the first of equals); the others change nothing.
    let mut newest: HashMap<&str, usize> = HashMap::with_capacity(users.len());
    for (index, user) in users.iter().enumerate() {
        newest
            .entry(&user.clerk_id)
            .and_modify(|best| {
                if user.updated_at_ms > users[*best].updated_at_ms {
                    *best = index;
                }
            })
            .or_insert(index);
    }
    let mut writes = Vec::new();
    let outcomes = users
        .iter()
        .enumerate()
        .map(|(index, user)| {
            let current = stored.get(&user.clerk_id).copied().unwrap_or_default();
            if current.tombstoned {
                return BatchOutcome::Tombstoned;
            }
            if newest[user.clerk_id.as_str()] != index {
                return BatchOutcome::Unchanged;
            }
            let outcome = match (current.exists, current.version) {
                (false, _) => BatchOutcome::Created,
                (true, Some(version)) if versioned && version >= user.updated_at_ms => {
                    BatchOutcome::Unchanged
                }
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
