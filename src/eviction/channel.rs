//! The PostgreSQL channel what ends access travels on — deletions of users,
//! organizations and memberships, and role changes — named and worded the
//! same way by the store that publishes and the listener that hears.

use super::Subject;
use crate::{
    clerk_id::{is_organization_id, is_user_id},
    store::{Bind, Statement},
};

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

/// Publishes `subject` on the channel; run in the transaction that records
/// the change, so that it is sent when (and only if) that transaction commits.
pub(crate) fn announcement(subject: Subject<'_>) -> Statement<'static> {
    Statement::new(concat!("SELECT pg_notify(", channel!(), ", $1)"))
        .bind(Bind::Owned(payload(subject)))
}

/// The words for `subject`: a user's bare id (as versions before
/// organizations sent it), `org:<organization id>`, or
/// `membership:<organization id>:<user id>`.
fn payload(subject: Subject<'_>) -> String {
    match subject {
        Subject::User(user) => user.to_owned(),
        Subject::Organization(organization) => format!("org:{organization}"),
        Subject::Membership { organization, user } => format!("membership:{organization}:{user}"),
    }
}

/// What a payload names; `None` for anything this version did not send.
pub(super) fn subject(payload: &str) -> Option<Subject<'_>> {
    if let Some(organization) = payload.strip_prefix("org:") {
        return is_organization_id(organization).then_some(Subject::Organization(organization));
    }
    if let Some(pair) = payload.strip_prefix("membership:") {
        let (organization, user) = pair.rsplit_once(':')?;
        return (is_organization_id(organization) && is_user_id(user))
            .then_some(Subject::Membership { organization, user });
    }
    is_user_id(payload).then_some(Subject::User(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subject_reads_back_as_it_was_written() {
        for subject in [
            Subject::User("user_1"),
            Subject::Organization("org_1"),
            Subject::Membership {
                organization: "org_1",
                user: "user_1",
            },
        ] {
            assert_eq!(super::subject(&payload(subject)), Some(subject));
        }
        for noise in [
            "",
            "user_",
            "org:user_1",
            "membership:org_1",
            "membership:org_1:org_2",
            "sess_1",
        ] {
            assert_eq!(super::subject(noise), None, "{noise}");
        }
    }
}
