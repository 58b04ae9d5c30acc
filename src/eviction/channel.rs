//! The PostgreSQL channel what ends access travels on — deletions of users,
//! organizations and memberships, membership changes, ended sessions and
//! bans — named and worded the same way by the store that publishes and the
//! listener that hears.

#[cfg(feature = "postgres")]
use crate::{
    clerk_id::{is_credential_id, is_organization_id, is_session_id, is_user_id},
    store::{Bind, Statement},
};

/// The channel: `ensure_user_evict_` followed by the MD5 of the
/// connection's current schema (50 bytes in all, within PostgreSQL's
/// 63-byte limit for any schema name, and distinct per schema). An SQL
/// expression, so that publisher and listener name it alike.
#[cfg(feature = "postgres")]
macro_rules! channel {
    () => {
        "'ensure_user_evict_' || md5(coalesce(current_schema(), ''))"
    };
}

/// Selects the channel name, for the listener.
#[cfg(feature = "postgres")]
pub(super) const SELECT_CHANNEL: &str = concat!("SELECT ", channel!());

/// Sends `$1` on the channel, named by the sending connection's schema.
#[cfg(feature = "postgres")]
pub(super) const NOTIFY: &str = concat!("SELECT pg_notify(", channel!(), ", $1)");

/// What a listener's probe of its own channel starts with.
#[cfg(feature = "postgres")]
const PROBE: &str = "probe:";

/// What one notification tells the other instances. The bundled stores
/// name what they change with it on either database; only PostgreSQL sends
/// it, and only its listener reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[doc(hidden)]
#[cfg_attr(
    not(feature = "postgres"),
    allow(dead_code, reason = "read by the PostgreSQL listener only")
)]
pub enum Announcement<'a> {
    /// A user was deleted or changed: forget what is cached of them.
    User(&'a str),
    /// An organization was deleted.
    Organization(&'a str),
    /// A membership was deleted or changed.
    Membership {
        organization: &'a str,
        user: &'a str,
    },
    /// A session ended; its tokens are refused until `until_ms`.
    SessionEnded { session: &'a str, until_ms: i64 },
    /// A user is (or is no longer) blocked, as of `version`.
    Blocked {
        user: &'a str,
        blocked: bool,
        version: i64,
    },
}

/// Publishes `announcement` on the channel; run in the transaction that
/// records the change, so that it is sent when (and only if) that
/// transaction commits.
#[cfg(feature = "postgres")]
pub(crate) fn announcement(announcement: Announcement<'_>) -> Statement<'static> {
    Statement::new(NOTIFY).bind(Bind::Owned(payload(announcement)))
}

/// The words of a new probe: `probe:` and a nonce of 32 hex digits, which
/// only the listener that chose it looks for. Every version of the
/// listener reads no announcement in it (`probe` is no kind it knows, and
/// the whole is no Clerk id), so other instances ignore it.
#[cfg(feature = "postgres")]
pub(super) fn probe() -> String {
    format!("{PROBE}{}", uuid::Uuid::new_v4().simple())
}

/// Whether a payload is some listener's probe.
#[cfg(feature = "postgres")]
pub(super) fn is_probe(payload: &str) -> bool {
    payload.starts_with(PROBE)
}

/// The words of an announcement: a user's bare id (as versions before
/// organizations sent a deletion), `org:<id>`, `membership:<org>:<user>`,
/// `session:<id>:<until ms>`, `blocked:<user>:<0|1>:<version>`.
#[cfg(feature = "postgres")]
fn payload(announcement: Announcement<'_>) -> String {
    match announcement {
        // A Clerk id bare, as every version reads it; another issuer's key
        // (which may hold `:`) after `user:`.
        Announcement::User(user) if is_user_id(user) => user.to_owned(),
        Announcement::User(user) => format!("user:{user}"),
        Announcement::Organization(organization) => format!("org:{organization}"),
        Announcement::Membership { organization, user } => {
            format!("membership:{organization}:{user}")
        }
        Announcement::SessionEnded { session, until_ms } => format!("session:{session}:{until_ms}"),
        Announcement::Blocked {
            user,
            blocked,
            version,
        } => format!("blocked:{user}:{}:{version}", u8::from(blocked)),
    }
}

/// What a payload announces; `None` for anything this version did not send.
#[cfg(feature = "postgres")]
pub(super) fn parse(payload: &str) -> Option<Announcement<'_>> {
    let (kind, rest) = payload.split_once(':').unwrap_or(("", payload));
    // A bare payload is a Clerk id; `user:` is there for every other key.
    if kind.is_empty() && !is_user_id(rest) {
        return None;
    }
    let announcement = match kind {
        "" | "user" => Announcement::User(rest),
        "org" => Announcement::Organization(rest),
        "membership" => {
            let (organization, user) = rest.rsplit_once(':')?;
            Announcement::Membership { organization, user }
        }
        "session" => {
            let (session, until) = rest.rsplit_once(':')?;
            Announcement::SessionEnded {
                session,
                until_ms: until.parse().ok()?,
            }
        }
        "blocked" => {
            let (rest, version) = rest.rsplit_once(':')?;
            let (user, blocked) = rest.rsplit_once(':')?;
            Announcement::Blocked {
                user,
                blocked: match blocked {
                    "1" => true,
                    "0" => false,
                    _ => return None,
                },
                version: version.parse().ok()?,
            }
        }
        _ => return None,
    };
    well_formed(announcement).then_some(announcement)
}

/// Whether every id an announcement names is a valid Clerk id of its kind.
#[cfg(feature = "postgres")]
fn well_formed(announcement: Announcement<'_>) -> bool {
    match announcement {
        // A Clerk user id, or an issuer's key (`<issuer>#<subject>`, or a
        // subject alone where the issuer is so configured).
        Announcement::User(user) | Announcement::Blocked { user, .. } => is_visible_id(user),
        Announcement::Organization(organization) => is_organization_id(organization),
        Announcement::Membership { organization, user } => {
            is_organization_id(organization) && is_user_id(user)
        }
        // A session, or a machine credential revoked the same way.
        // A session or a machine credential revoked the same way, or an
        // issuer's session (`sid`) or token (`jti`).
        Announcement::SessionEnded { session, .. } => {
            is_session_id(session) || is_credential_id(session) || is_visible_id(session)
        }
    }
}

/// Text that can be an id: 1 to 512 bytes, no control characters.
#[cfg(feature = "postgres")]
fn is_visible_id(id: &str) -> bool {
    (1..=512).contains(&id.len()) && !id.chars().any(char::is_control)
}

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use super::*;

    #[test]
    fn every_announcement_reads_back_as_it_was_written() {
        for announcement in [
            Announcement::User("user_1"),
            Announcement::Organization("org_1"),
            Announcement::Membership {
                organization: "org_1",
                user: "user_1",
            },
            Announcement::SessionEnded {
                session: "sess_1",
                until_ms: 1_700_000_000_000,
            },
            Announcement::Blocked {
                user: "user_1",
                blocked: true,
                version: 42,
            },
            Announcement::Blocked {
                user: "user_1",
                blocked: false,
                version: 43,
            },
            Announcement::User("https://id.example.com:8443/realms/a#9b1d:x"),
            Announcement::User("auth0|64f1"),
            Announcement::Blocked {
                user: "https://id.example.com/#auth0|1",
                blocked: true,
                version: 44,
            },
            Announcement::SessionEnded {
                session: "9b1d-sid",
                until_ms: 1_700_000_000_000,
            },
        ] {
            assert_eq!(parse(&payload(announcement)), Some(announcement));
        }
        for noise in [
            "",
            "user_",
            "org:user_1",
            "membership:org_1",
            "membership:org_1:org_2",
            "sess_1",
            "session:sess_1",
            "blocked:user_1:1",
            "blocked:user_1:1:soon",
            "blocked:user_1:2:5",
            "other:thing",
        ] {
            assert_eq!(parse(noise), None, "{noise}");
        }
    }

    #[test]
    fn probes_announce_nothing_and_differ() {
        let (one, other) = (probe(), probe());
        assert_ne!(one, other);
        for payload in [&one, &other] {
            assert!(is_probe(payload), "{payload}");
            assert_eq!(parse(payload), None, "{payload}");
            assert!(!is_user_id(payload), "read as a user by older listeners");
        }
        assert!(!is_probe("user_1"));
    }
}
