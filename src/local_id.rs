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
    /// The key as `T`, `i64` or [`Uuid`], or an error naming both kinds
    /// when the id is of the other one:
    ///
    /// ```
    /// use ensure_user::{LocalId, WrongIdKind};
    /// use uuid::Uuid;
    ///
    /// let id = LocalId::Int(7);
    /// assert_eq!(id.get::<i64>()?, 7);
    /// assert!(id.get::<Uuid>().is_err());
    /// # Ok::<(), WrongIdKind>(())
    /// ```
    pub fn get<T>(self) -> Result<T, WrongIdKind>
    where
        T: TryFrom<Self, Error = WrongIdKind>,
    {
        T::try_from(self)
    }

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

/// A [`LocalId`] read as the other kind of key: a UUID asked of an integer
/// id, or an integer of a UUID id. The users table's id column decides the
/// kind ([`IdKind`](crate::store::IdKind)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the local id {id} is {}, not {wanted}", kind_of(*.id))]
pub struct WrongIdKind {
    id: LocalId,
    wanted: &'static str,
}

impl WrongIdKind {
    /// The id that was of the other kind.
    pub fn id(&self) -> LocalId {
        self.id
    }
}

/// The kind of `id`, with its article, for messages.
fn kind_of(id: LocalId) -> &'static str {
    match id {
        LocalId::Int(_) => INTEGER,
        LocalId::Uuid(_) => UUID,
    }
}

const INTEGER: &str = "a 64-bit integer";
const UUID: &str = "a UUID";

impl TryFrom<LocalId> for i64 {
    type Error = WrongIdKind;

    fn try_from(id: LocalId) -> Result<Self, WrongIdKind> {
        id.as_i64().ok_or(WrongIdKind {
            id,
            wanted: INTEGER,
        })
    }
}

impl TryFrom<LocalId> for Uuid {
    type Error = WrongIdKind;

    fn try_from(id: LocalId) -> Result<Self, WrongIdKind> {
        id.as_uuid().ok_or(WrongIdKind { id, wanted: UUID })
    }
}

/// Binds as its key: an integer as `i64` (`BIGINT`, `INTEGER`), a UUID as
/// [`Uuid`] (`UUID` on PostgreSQL, 16 bytes on SQLite, as the bundled
/// stores keep UUID ids). The type announced for an integer id is `i64`'s.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
impl<DB> sqlx::Type<DB> for LocalId
where
    DB: sqlx::Database,
    i64: sqlx::Type<DB>,
    Uuid: sqlx::Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <i64 as sqlx::Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <i64 as sqlx::Type<DB>>::compatible(ty) || <Uuid as sqlx::Type<DB>>::compatible(ty)
    }
}

/// Encodes the key it holds, as `i64` or [`Uuid`] encode it, and announces
/// that key's type (PostgreSQL types each parameter by it).
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
impl<'q, DB> sqlx::Encode<'q, DB> for LocalId
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Uuid: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as sqlx::Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        match self {
            Self::Int(id) => <i64 as sqlx::Encode<'q, DB>>::encode_by_ref(id, buf),
            Self::Uuid(id) => <Uuid as sqlx::Encode<'q, DB>>::encode_by_ref(id, buf),
        }
    }

    fn produces(&self) -> Option<DB::TypeInfo> {
        Some(match self {
            Self::Int(_) => <i64 as sqlx::Type<DB>>::type_info(),
            Self::Uuid(_) => <Uuid as sqlx::Type<DB>>::type_info(),
        })
    }

    fn size_hint(&self) -> usize {
        match self {
            Self::Int(id) => <i64 as sqlx::Encode<'q, DB>>::size_hint(id),
            Self::Uuid(id) => <Uuid as sqlx::Encode<'q, DB>>::size_hint(id),
        }
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

    #[test]
    fn ids_convert_to_their_own_kind_only() {
        let uuid = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(i64::try_from(LocalId::Int(-3)), Ok(-3));
        assert_eq!(Uuid::try_from(LocalId::Uuid(uuid)), Ok(uuid));
        assert_eq!(LocalId::Int(42).get::<i64>(), Ok(42));
        assert_eq!(LocalId::Uuid(uuid).get::<Uuid>(), Ok(uuid));

        let not_uuid = LocalId::Int(42).get::<Uuid>().unwrap_err();
        assert_eq!(not_uuid.id(), LocalId::Int(42));
        assert_eq!(
            not_uuid.to_string(),
            "the local id 42 is a 64-bit integer, not a UUID"
        );
        let not_int = i64::try_from(LocalId::Uuid(uuid)).unwrap_err();
        assert_eq!(not_int.id(), LocalId::Uuid(uuid));
        assert_eq!(
            not_int.to_string(),
            "the local id 01234567-89ab-cdef-0123-456789abcdef is a UUID, not a 64-bit integer"
        );
    }
}
