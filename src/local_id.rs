//! The primary key of an app's own row (a user, an organization, a
//! membership), as the stores hand it out and handlers read it.

use std::fmt;

use serde::{Serialize, Serializer};
use uuid::Uuid;

/// The primary key of the app's own user row.
///
/// The bundled schema uses a 64-bit integer; apps that map their own table
/// may use a UUID instead (see [`IdKind`](crate::store::IdKind)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LocalId {
    /// A 64-bit integer key (`BIGINT` / `INTEGER PRIMARY KEY`).
    Int(i64),
    /// A UUID key.
    Uuid(Uuid),
}

impl LocalId {
    /// The integer key, if this id is one.
    pub fn as_i64(self) -> Option<i64> {
        match self {
            Self::Int(id) => Some(id),
            Self::Uuid(_) => None,
        }
    }

    /// The UUID key, if this id is one.
    pub fn as_uuid(self) -> Option<Uuid> {
        match self {
            Self::Uuid(id) => Some(id),
            Self::Int(_) => None,
        }
    }
}

impl fmt::Display for LocalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(id) => id.fmt(f),
            Self::Uuid(id) => id.fmt(f),
        }
    }
}

/// Serializes as a JSON number for integer ids and a string for UUIDs.
impl Serialize for LocalId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Int(id) => serializer.serialize_i64(*id),
            Self::Uuid(id) => id.serialize(serializer),
        }
    }
}

impl From<i64> for LocalId {
    fn from(id: i64) -> Self {
        Self::Int(id)
    }
}

impl From<Uuid> for LocalId {
    fn from(id: Uuid) -> Self {
        Self::Uuid(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_serialize_as_number_or_string() {
        assert_eq!(serde_json::to_string(&LocalId::Int(7)).unwrap(), "7");
        let uuid = Uuid::nil();
        assert_eq!(
            serde_json::to_string(&LocalId::Uuid(uuid)).unwrap(),
            "\"00000000-0000-0000-0000-000000000000\""
        );
        assert_eq!(LocalId::Int(7).as_i64(), Some(7));
        assert_eq!(LocalId::Int(7).as_uuid(), None);
    }
}
