//! What a verified machine credential says, read from the Backend API's
//! answer to a verification.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::MachineError;
use crate::{
    clerk_id::{is_credential_id, is_machine_id, is_organization_id, is_user_id},
    token::{TokenType, scope},
};

/// An API key, M2M token or OAuth access token that Clerk verified.
///
/// Clerk's answer, as its verification endpoints give it: what the
/// credential is ([`id`](Self::id)), who it acts for
/// ([`subject`](Self::subject)), and what it was granted
/// ([`scopes`](Self::scopes), [`claims`](Self::claims)). Never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineCredential {
    token_type: TokenType,
    id: String,
    subject: String,
    subject_kind: SubjectKind,
    name: Option<String>,
    client_id: Option<String>,
    scopes: Vec<String>,
    claims: Option<serde_json::Value>,
    expiration_ms: Option<i64>,
}

/// Whom a machine credential acts for, by the prefix of its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SubjectKind {
    /// A user (`user_…`): an OAuth access token, or a user's API key.
    User,
    /// An organization (`org_…`): an organization's API key.
    Organization,
    /// A machine (`mch_…`): an M2M token, or a machine's API key.
    Machine,
}

impl MachineCredential {
    /// The kind of credential: [`TokenType::ApiKey`],
    /// [`TokenType::M2mToken`] or [`TokenType::OauthToken`].
    pub fn token_type(&self) -> TokenType {
        self.token_type
    }

    /// Clerk's id of the credential (`ak_…`, `mt_…`, `oat_…`), not its
    /// secret: what to log, or to revoke it by.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whom the credential acts for: `user_…`, `org_…` or `mch_…`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The kind of [`subject`](Self::subject).
    pub fn subject_kind(&self) -> SubjectKind {
        self.subject_kind
    }

    /// The subject when it is a user (`user_…`), as Clerk's `userId`.
    pub fn user_id(&self) -> Option<&str> {
        (self.subject_kind == SubjectKind::User).then_some(self.subject.as_str())
    }

    /// The subject when it is an organization (`org_…`), as Clerk's `orgId`.
    pub fn organization_id(&self) -> Option<&str> {
        (self.subject_kind == SubjectKind::Organization).then_some(self.subject.as_str())
    }

    /// The subject when it is a machine (`mch_…`), as Clerk's `machineId`.
    pub fn machine_id(&self) -> Option<&str> {
        (self.subject_kind == SubjectKind::Machine).then_some(self.subject.as_str())
    }

    /// An API key's name, as its creator gave it; `None` for other kinds.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The OAuth application an access token was issued to; `None` for
    /// other kinds.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// What the credential was granted: an OAuth token's scopes, an API
    /// key's scopes, or the machines (`mch_…`) an M2M token may call.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Whether [`scopes`](Self::scopes) holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|held| held == scope)
    }

    /// The custom claims an API key or M2M token was created with, if any.
    pub fn claims(&self) -> Option<&serde_json::Value> {
        self.claims.as_ref()
    }

    /// When the credential expires, in Unix milliseconds; `None` when it
    /// does not (an API key by default).
    pub fn expires_at_ms(&self) -> Option<i64> {
        self.expiration_ms
    }

    /// Until when, in Unix milliseconds, this credential may be served from
    /// memory without asking Clerk again: `remember_for` from `now_ms`, and
    /// never past its expiration. A revocation is thus seen within
    /// `remember_for`.
    pub(crate) fn fresh_until_ms(&self, now_ms: i64, remember_for: Duration) -> i64 {
        let remembered =
            now_ms.saturating_add(i64::try_from(remember_for.as_millis()).unwrap_or(i64::MAX));
        self.expiration_ms
            .map_or(remembered, |expiration| remembered.min(expiration))
    }
}

/// A verification endpoint's `200` body. Fields Clerk adds are ignored;
/// fields one kind lacks are absent.
#[derive(Deserialize)]
struct Answer {
    /// `false` in an OAuth endpoint's `{"active": false}`.
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    /// `null` reads as `None`.
    #[serde(default)]
    claims: Option<serde_json::Value>,
    #[serde(default)]
    revoked: bool,
    #[serde(default)]
    expired: bool,
    #[serde(default)]
    expiration: Option<i64>,
}

/// The credential a verification endpoint's `200` body describes.
///
/// Clerk says a revoked or expired credential is refused with a `404`; its
/// answers still carry `revoked` and `expired` flags, and Clerk's own SDK
/// does not look at them. This does: a `200` with either set is refused as
/// [`MachineError::Revoked`] or [`MachineError::Expired`], and so is the
/// OAuth endpoint's `{"active": false}` (an expired token). A body of
/// another shape, or naming a subject of an unknown kind, is
/// [`MachineError::Unavailable`]: an answer this crate cannot read.
pub(super) fn parse(kind: TokenType, body: &[u8]) -> Result<MachineCredential, MachineError> {
    let unreadable = MachineError::Unavailable { retry_after: None };
    let answer: Answer = serde_json::from_slice(body).map_err(|_| unreadable)?;
    if answer.active == Some(false) {
        return Err(MachineError::Expired);
    }
    if answer.revoked {
        return Err(MachineError::Revoked);
    }
    if answer.expired {
        return Err(MachineError::Expired);
    }
    let (Some(id), Some(subject)) = (answer.id, answer.subject) else {
        return Err(unreadable);
    };
    let subject_kind = subject_kind(&subject).ok_or(unreadable)?;
    if !is_credential_id(&id) {
        return Err(unreadable);
    }
    Ok(MachineCredential {
        token_type: kind,
        id,
        subject,
        subject_kind,
        name: answer.name,
        client_id: answer.client_id,
        scopes: answer.scopes.unwrap_or_default(),
        claims: answer.claims,
        expiration_ms: answer.expiration,
    })
}

/// Claims of a machine JWT that describe the token itself; every other
/// claim is one of its custom claims.
const STRUCTURAL_CLAIMS: [&str; 6] = ["iss", "sub", "exp", "nbf", "iat", "jti"];

impl MachineCredential {
    /// The credential a verified JWT's `claims` describe: an OAuth access
    /// token (`sub` a user) or a machine-to-machine token (`sub` a
    /// machine), read as Clerk's SDK reads them — the id from `jti`, an
    /// OAuth token's scopes from `scp` or the space-separated `scope`, an
    /// M2M token's from `scopes` or `aud`, the expiration from `exp`. A
    /// subject of another kind than the token's is refused.
    pub(crate) fn from_jwt(kind: TokenType, mut claims: Map<String, Value>) -> Option<Self> {
        let subject = claims.get("sub")?.as_str()?.to_owned();
        let subject_kind = subject_kind(&subject)?;
        let expected = match kind {
            TokenType::OauthToken => SubjectKind::User,
            TokenType::M2mToken => SubjectKind::Machine,
            _ => return None,
        };
        if subject_kind != expected {
            return None;
        }
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let id = text("jti").unwrap_or_default();
        let client_id = text("client_id");
        let expiration_ms = claims
            .get("exp")
            .and_then(Value::as_i64)
            .map(|exp| exp.saturating_mul(1000));
        let listed = |name: &str| scope::listed(&claims, name);
        let scopes = match kind {
            TokenType::OauthToken => listed("scp").or_else(|| listed("scope")),
            _ => listed("scopes").or_else(|| listed("aud")),
        }
        .unwrap_or_default();
        for name in STRUCTURAL_CLAIMS {
            claims.remove(name);
        }
        Some(Self {
            token_type: kind,
            id,
            subject,
            subject_kind,
            name: None,
            client_id: if kind == TokenType::OauthToken {
                client_id
            } else {
                None
            },
            scopes,
            claims: (!claims.is_empty()).then_some(Value::Object(claims)),
            expiration_ms,
        })
    }

    /// Bytes the credential holds on the heap, for the token cache's budget.
    pub(crate) fn heap_bytes(&self) -> usize {
        let texts = [
            Some(&self.id),
            Some(&self.subject),
            self.name.as_ref(),
            self.client_id.as_ref(),
        ];
        // Custom claims, estimated at twice their JSON text.
        let claims = self
            .claims
            .as_ref()
            .map_or(0, |claims| claims.to_string().len() * 2);
        texts
            .into_iter()
            .flatten()
            .map(String::capacity)
            .sum::<usize>()
            + self
                .scopes
                .iter()
                .map(|scope| scope.capacity() + size_of::<String>())
                .sum::<usize>()
            + claims
    }
}

/// The kind of a subject id, `None` for an unknown prefix or a malformed id.
fn subject_kind(subject: &str) -> Option<SubjectKind> {
    if is_user_id(subject) {
        Some(SubjectKind::User)
    } else if is_organization_id(subject) {
        Some(SubjectKind::Organization)
    } else if is_machine_id(subject) {
        Some(SubjectKind::Machine)
    } else {
        None
    }
}
