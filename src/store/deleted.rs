//! What a deletion's announcement carries to other processes: which user,
//! organization or membership was deleted, as one line of text.

use std::borrow::Cow;

/// A deletion, as announced to other processes (on PostgreSQL, the payload
/// of the `pg_notify` sent when the tombstone commits).
///
/// The payload is typed by its prefix; Clerk ids never contain a space:
///
/// | deleted | payload |
/// |---|---|
/// | a user | `user_…` (the bare id, as before organizations existed) |
/// | an organization | `org:org_…` |
/// | a membership | `membership:org_… user_…` (organization, one space, user) |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deleted<'a> {
    /// The user with this Clerk id.
    User(&'a str),
    /// The organization with this Clerk id, and with it its memberships.
    Organization(&'a str),
    /// The membership of `user` in `organization` (Clerk ids).
    Membership {
        organization: &'a str,
        user: &'a str,
    },
}

impl<'a> Deleted<'a> {
    /// The announcement's text.
    pub(crate) fn payload(self) -> Cow<'a, str> {
        match self {
            Self::User(clerk_id) => Cow::Borrowed(clerk_id),
            Self::Organization(clerk_id) => Cow::Owned(format!("org:{clerk_id}")),
            Self::Membership { organization, user } => {
                Cow::Owned(format!("membership:{organization} {user}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_say_what_was_deleted() {
        assert_eq!(Deleted::User("user_1").payload(), "user_1");
        assert_eq!(Deleted::Organization("org_1").payload(), "org:org_1");
        let membership = Deleted::Membership {
            organization: "org_1",
            user: "user_2",
        };
        assert_eq!(membership.payload(), "membership:org_1 user_2");
    }
}
