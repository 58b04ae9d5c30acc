//! The store of the explored system: one user's row in memory, with the
//! bundled stores' rules (a tombstone forever, the newest `updated_at`
//! wins, a ban kept where the table has a column for it), each call one
//! step, as one SQL statement is.

use std::sync::{Arc, Mutex, PoisonError};

use crate::{
    interleave::point,
    local_id::LocalId,
    store::{Profile, Resolution, StoreError, SyncOutcome, UserStore, UserSync},
};

/// What the store holds for the user.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Row {
    Absent,
    Live { banned: bool, version: i64 },
    Tombstone,
}

/// The user's local id, whenever there is a row.
const ID: LocalId = LocalId::Int(1);

#[derive(Clone)]
pub(super) struct ModelStore {
    row: Arc<Mutex<Row>>,
    /// Whether the table records bans (an app's own table may not).
    records_bans: bool,
    /// Whether writes fail, as with the database unreachable.
    writes_fail: bool,
}

impl ModelStore {
    pub(super) fn new(row: Row, records_bans: bool, writes_fail: bool) -> Self {
        Self {
            row: Arc::new(Mutex::new(row)),
            records_bans,
            writes_fail,
        }
    }

    fn with_row<T>(&self, change: impl FnOnce(&mut Row) -> T) -> T {
        change(&mut self.row.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn unavailable(&self) -> Result<(), StoreError> {
        if self.writes_fail {
            Err(StoreError::Other("the database is unreachable".into()))
        } else {
            Ok(())
        }
    }
}

impl UserStore for ModelStore {
    async fn find_or_create(&self, _: &str, _: &Profile) -> Result<Resolution, StoreError> {
        point("store: find_or_create").await;
        Ok(self.with_row(|row| match *row {
            Row::Tombstone => Resolution::Deleted,
            Row::Live { banned: true, .. } => Resolution::Banned(ID),
            Row::Live { .. } => Resolution::Existing(ID),
            Row::Absent => {
                *row = Row::Live {
                    banned: false,
                    version: 0,
                };
                Resolution::Created(ID)
            }
        }))
    }
}

impl UserSync for ModelStore {
    async fn upsert_profile(
        &self,
        _: &str,
        profile: &Profile,
        updated_at_ms: i64,
    ) -> Result<SyncOutcome, StoreError> {
        point("store: upsert_profile").await;
        self.unavailable()?;
        let banned = profile.banned && self.records_bans;
        Ok(self.with_row(|row| match *row {
            Row::Tombstone => SyncOutcome::Tombstoned,
            Row::Live { version, .. } if version > updated_at_ms => SyncOutcome::Stale,
            Row::Live { .. } | Row::Absent => {
                *row = Row::Live {
                    banned,
                    version: updated_at_ms,
                };
                SyncOutcome::Updated(ID)
            }
        }))
    }

    async fn delete_user(&self, _: &str, _: i64) -> Result<SyncOutcome, StoreError> {
        point("store: delete_user").await;
        self.unavailable()?;
        Ok(self.with_row(|row| {
            let was = std::mem::replace(row, Row::Tombstone);
            match was {
                Row::Tombstone => SyncOutcome::Tombstoned,
                Row::Absent => SyncOutcome::NotFound,
                Row::Live { .. } => SyncOutcome::Deleted,
            }
        }))
    }
}
