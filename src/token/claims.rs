//! The claims of a Clerk session token, for token versions 1 and 2.

use serde::Deserialize;
use serde_json::{Map, Value};

/// The verified claims of a Clerk session token.
///
/// Known claims are typed; anything Clerk adds later, or that the app adds
/// through a session-token template, is kept in [`extra`](Self::extra).
#[derive(Clone, Deserialize)]
#[non_exhaustive]
pub struct SessionClaims {
    /// The Clerk user id (`user_…`).
    pub sub: String,
    /// The Clerk session id (`sess_…`).
    #[serde(default)]
    pub sid: String,
    /// The issuer: the instance's Frontend API URL.
    #[serde(default)]
    pub iss: String,
    /// The authorized party: the origin the token was requested from, if any.
    #[serde(default)]
    pub azp: Option<String>,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at, Unix seconds.
    #[serde(default)]
    pub iat: Option<i64>,
    /// Not before, Unix seconds.
    #[serde(default)]
    pub nbf: Option<i64>,
    /// Token version: `Some(2)` for version 2 tokens, absent for version 1.
    #[serde(default)]
    pub v: Option<u32>,
    /// Session status (`active` or `pending`), when the instance reports it.
    #[serde(default)]
    pub sts: Option<String>,
    /// Factor verification age in minutes: `[first factor, second factor]`, `-1` if never.
    #[serde(default)]
    pub fva: Option<[i64; 2]>,
    /// The active plan (`u:free`, `o:pro`), version 2 only.
    #[serde(default)]
    pub pla: Option<String>,
    /// Enabled features, comma-separated `scope:feature`, version 2 only.
    #[serde(default)]
    pub fea: Option<String>,
    /// The actor, present while someone impersonates the user.
    #[serde(default)]
    pub act: Option<Actor>,
    #[serde(default)]
    o: Option<OrgClaimV2>,
    #[serde(default)]
    org_id: Option<String>,
    #[serde(default)]
    org_slug: Option<String>,
    #[serde(default)]
    org_role: Option<String>,
    #[serde(default)]
    org_permissions: Option<Vec<String>>,
    /// Every other claim, untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Who is acting on the user's behalf during impersonation.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct Actor {
    /// The impersonator's user id.
    pub sub: String,
    /// Where the actor token came from, e.g. `https://dashboard.clerk.com`.
    #[serde(default)]
    pub iss: Option<String>,
    /// The impersonation session id.
    #[serde(default)]
    pub sid: Option<String>,
    /// Other actor fields (for example `type: "agent"`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
struct OrgClaimV2 {
    id: String,
    #[serde(default)]
    slg: Option<String>,
    #[serde(default)]
    rol: Option<String>,
    #[serde(default)]
    per: Option<String>,
    #[serde(default)]
    fpm: Option<String>,
}

/// The user's active organization, the same shape for version 1 and 2 tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Organization {
    /// The organization id (`org_…`).
    pub id: String,
    /// The organization slug.
    pub slug: Option<String>,
    /// The role, always with its `org:` prefix (`org:admin`).
    pub role: Option<String>,
    /// Permissions in `org:feature:permission` form.
    pub permissions: Vec<String>,
}

/// Shows the ids and times; other claims by name only, since they may carry
/// personal data.
impl std::fmt::Debug for SessionClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionClaims")
            .field("sub", &self.sub)
            .field("sid", &self.sid)
            .field("iss", &self.iss)
            .field("azp", &self.azp)
            .field("exp", &self.exp)
            .field("v", &self.v)
            .field("sts", &self.sts)
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl SessionClaims {
    /// Whether Clerk marked the session `pending` (signed up, not yet fully signed in).
    pub fn is_pending(&self) -> bool {
        self.sts.as_deref() == Some("pending")
    }

    /// The active organization, if any, decoded from either token version.
    pub fn organization(&self) -> Option<Organization> {
        if let Some(o) = &self.o {
            return Some(Organization {
                id: o.id.clone(),
                slug: o.slg.clone(),
                role: o.rol.as_deref().map(|role| format!("org:{role}")),
                permissions: v2_permissions(self.fea.as_deref(), o),
            });
        }
        let id = self.org_id.clone()?;
        Some(Organization {
            id,
            slug: self.org_slug.clone(),
            role: self.org_role.clone(),
            permissions: self.org_permissions.clone().unwrap_or_default(),
        })
    }

    /// A claim by name, typed or not, as JSON (for claims the app added itself).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.extra.get(name)
    }
}

/// Expands version 2's compact permissions: the i-th number in `fpm` is a
/// bitmask over `per` (least significant bit first) for the i-th org feature.
fn v2_permissions(features: Option<&str>, org: &OrgClaimV2) -> Vec<String> {
    let (Some(features), Some(per), Some(fpm)) = (features, &org.per, &org.fpm) else {
        return Vec::new();
    };
    let names: Vec<&str> = per.split(',').filter(|p| !p.is_empty()).collect();
    let org_features = features.split(',').filter_map(|entry| {
        let (scope, feature) = entry.split_once(':')?;
        scope.contains('o').then_some(feature)
    });
    let mut permissions = Vec::new();
    for (feature, mask) in org_features.zip(fpm.split(',')) {
        let Ok(mask) = mask.trim().parse::<u64>() else {
            continue;
        };
        for (bit, name) in names.iter().enumerate().take(64) {
            if mask & (1 << bit) != 0 {
                permissions.push(format!("org:{feature}:{name}"));
            }
        }
    }
    permissions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> SessionClaims {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn v2_organization_is_expanded() {
        let claims = parse(
            r#"{"sub":"user_1","sid":"sess_1","exp":1,"v":2,"fea":"o:dashboard,o:teams",
                "o":{"id":"org_1","slg":"acme","rol":"admin","per":"manage,read","fpm":"3,2"}}"#,
        );
        let org = claims.organization().unwrap();
        assert_eq!(org.id, "org_1");
        assert_eq!(org.slug.as_deref(), Some("acme"));
        assert_eq!(org.role.as_deref(), Some("org:admin"));
        assert_eq!(
            org.permissions,
            [
                "org:dashboard:manage",
                "org:dashboard:read",
                "org:teams:read"
            ]
        );
    }

    #[test]
    fn v1_organization_is_read_flat() {
        let claims = parse(
            r#"{"sub":"user_1","sid":"sess_1","exp":1,"org_id":"org_9","org_slug":"s",
                "org_role":"org:member","org_permissions":["org:a:b"]}"#,
        );
        let org = claims.organization().unwrap();
        assert_eq!(org.role.as_deref(), Some("org:member"));
        assert_eq!(org.permissions, ["org:a:b"]);
    }

    #[test]
    fn unknown_claims_and_actor_are_kept() {
        let claims = parse(
            r#"{"sub":"user_1","sid":"sess_1","exp":1,"email":"a@b.c",
                "act":{"sub":"user_2","iss":"https://dashboard.clerk.com","type":"agent"}}"#,
        );
        assert_eq!(claims.get("email").unwrap(), "a@b.c");
        assert!(claims.organization().is_none());
        let actor = claims.act.unwrap();
        assert_eq!(actor.sub, "user_2");
        assert_eq!(actor.extra["type"], "agent");
    }

    #[test]
    fn malformed_fpm_entries_are_skipped() {
        let claims = parse(
            r#"{"sub":"user_1","sid":"s","exp":1,"fea":"o:a,u:b,o:c",
                "o":{"id":"org_1","per":"x,y","fpm":"zz,2"}}"#,
        );
        assert_eq!(claims.organization().unwrap().permissions, ["org:c:y"]);
    }
}
