//! What a client sees when refused: every refusal the crate answers — by the
//! layer, the extractors or the webhook receiver — declared once here with
//! its status, code, message and headers, and the one response they all
//! become: `{"error": code, "message": text}`, `Content-Type:
//! application/json`, `Cache-Control: no-store`.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

/// Seconds a client is asked to wait before retrying after a `503`.
const RETRY_AFTER_SECONDS: u64 = 5;

/// One refusal as the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: &'static str,
    header: Header,
}

/// The header a refusal carries besides the body's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Header {
    None,
    /// `WWW-Authenticate` (RFC 6750) with this value.
    Challenge(&'static str),
    /// `Retry-After`, for an outage.
    RetryAfter,
    /// `Allow`, with the methods allowed.
    #[cfg(feature = "webhooks")]
    Allow(&'static str),
}

/// RFC 6750 §3.1: a request without credentials gets no error code.
const NO_CREDENTIALS: Header = Header::Challenge("Bearer");
const INVALID_TOKEN: Header = Header::Challenge(r#"Bearer error="invalid_token""#);

impl Refusal {
    const fn new(status: StatusCode, code: &'static str, message: &'static str) -> Self {
        Self {
            status,
            code,
            message,
            header: Header::None,
        }
    }

    const fn with(self, header: Header) -> Self {
        Self { header, ..self }
    }

    /// A `401` for a token problem.
    const fn unauthorized(code: &'static str, message: &'static str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message).with(INVALID_TOKEN)
    }

    /// A `503` for an outage, to retry later.
    const fn unavailable(code: &'static str, message: &'static str) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message).with(Header::RetryAfter)
    }

    pub(crate) const fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) const fn code(&self) -> &'static str {
        self.code
    }

    /// The response: the status, the JSON body and the refusal's headers.
    pub(crate) fn response(&self) -> Response<Full<Bytes>> {
        // Codes and messages are fixed ASCII without quotes or backslashes.
        let body = format!(
            r#"{{"error":"{}","message":"{}"}}"#,
            self.code, self.message
        );
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match self.header {
            Header::None => {}
            Header::Challenge(value) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
            }
            Header::RetryAfter => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            }
            #[cfg(feature = "webhooks")]
            Header::Allow(methods) => {
                headers.insert(header::ALLOW, HeaderValue::from_static(methods));
            }
        }
        response
    }
}

/// The reason a request was refused, each with a stable machine code.
///
/// The code ([`Rejection::code`]) is the only reason a client ever sees; the
/// detailed cause (a key-fetch error, a database error) goes to the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rejection {
    /// No session token in the `Authorization` header or the session cookie.
    MissingToken,
    /// The token is not a well-formed JWT (size, segments, base64, JSON, required claims).
    MalformedToken,
    /// The token's `alg` is not the pinned `RS256`.
    UnsupportedAlgorithm,
    /// The token is not a Clerk session token: a JWT template, a machine or
    /// OAuth token, or a token without `sid` or a `user_` subject.
    NotASessionToken,
    /// No key with the token's `kid` is published by the key endpoint.
    UnknownKey,
    /// The signature does not verify with the key named by the token.
    InvalidSignature,
    /// `exp` has passed (allowing for the configured clock skew), or Clerk
    /// says the API key, M2M token or OAuth access token has expired.
    TokenExpired,
    /// `nbf` is still in the future (allowing for the configured clock skew).
    TokenNotYetValid,
    /// `iat` is in the future (allowing for the configured clock skew).
    TokenIssuedInFuture,
    /// `iss` is not the configured Clerk instance, nor a configured
    /// OpenID Connect issuer.
    InvalidIssuer,
    /// The token names none of the audiences its issuer's rules require
    /// (see [`oidc::Issuer::with_audience`](crate::oidc::Issuer::with_audience)).
    InvalidAudience,
    /// `azp` is missing or not one of the configured authorized parties.
    UnauthorizedParty,
    /// The session is `pending` (for example, an organization must be chosen first).
    SessionPending,
    /// The token lives longer than the configured maximum
    /// ([`Config::with_max_token_lifetime`](crate::Config::with_max_token_lifetime)).
    TokenLifetimeExceeded,
    /// The token's session ended: the user signed out, or it was removed or
    /// revoked.
    SessionEnded,
    /// The Clerk user was deleted; the token may still be unexpired.
    UserDeleted,
    /// The Clerk user is banned.
    UserBanned,
    /// The token's active organization was deleted in Clerk.
    OrganizationDeleted,
    /// The user was removed from the token's active organization after the
    /// token was issued.
    MembershipDeleted,
    /// The signing keys cannot be fetched right now; retry later.
    KeysUnavailable,
    /// The user store (database) cannot be reached right now; retry later.
    StoreUnavailable,
    /// The credential is of a kind this route does not accept (for
    /// example an API key where only session tokens are).
    TokenTypeMismatch,
    /// Clerk does not know the API key, M2M token or OAuth access token
    /// (never issued, deleted, or not granted to this server's machine).
    CredentialNotFound,
    /// The API key, M2M token or OAuth access token was revoked.
    CredentialRevoked,
    /// Clerk's Backend API, which verifies the credential, cannot be
    /// reached or is rate limited right now, or this server's own budget of
    /// calls to it is spent; retry later. The `Retry-After` sent is the
    /// fixed one every outage carries, not the Backend API's own.
    VerificationUnavailable,
    /// This server cannot verify the credential because it is
    /// misconfigured: no secret key for this kind of credential, or a key
    /// the Backend API refuses. A `500`; the cause goes to the logs.
    VerificationMisconfigured,
    /// The user store's database lacks a table, column or unique
    /// constraint the store needs (a mapping naming what the app's table
    /// does not have, say): retrying cannot help. A `500`, without
    /// `Retry-After`; the cause goes to the logs, and readiness fails.
    StoreMisconfigured,
}

impl Rejection {
    /// How the client sees this rejection.
    const fn refusal(self) -> Refusal {
        match self {
            Self::MissingToken => Refusal::new(
                StatusCode::UNAUTHORIZED,
                "missing_token",
                "no session token was sent",
            )
            .with(NO_CREDENTIALS),
            Self::MalformedToken => {
                Refusal::unauthorized("malformed_token", "the session token is malformed")
            }
            Self::UnsupportedAlgorithm => Refusal::unauthorized(
                "unsupported_algorithm",
                "the session token uses an unsupported algorithm",
            ),
            Self::NotASessionToken => Refusal::unauthorized(
                "not_a_session_token",
                "the token is not a Clerk session token",
            ),
            Self::UnknownKey => Refusal::unauthorized(
                "unknown_key",
                "the session token was signed by an unknown key",
            ),
            Self::InvalidSignature => Refusal::unauthorized(
                "invalid_signature",
                "the session token signature is invalid",
            ),
            Self::TokenExpired => Refusal::unauthorized("token_expired", "the token has expired"),
            Self::TokenNotYetValid => {
                Refusal::unauthorized("token_not_yet_valid", "the session token is not valid yet")
            }
            Self::TokenIssuedInFuture => Refusal::unauthorized(
                "token_issued_in_future",
                "the session token was issued in the future",
            ),
            Self::InvalidIssuer => Refusal::unauthorized(
                "invalid_issuer",
                "the token was issued by an issuer this app does not accept",
            ),
            Self::InvalidAudience => Refusal::unauthorized(
                "invalid_audience",
                "the token was issued for another audience",
            ),
            Self::UnauthorizedParty => Refusal::unauthorized(
                "unauthorized_party",
                "the session token was issued for another origin",
            ),
            Self::SessionPending => Refusal::unauthorized(
                "session_pending",
                "the session is pending and not signed in yet",
            ),
            Self::TokenLifetimeExceeded => Refusal::unauthorized(
                "token_lifetime_exceeded",
                "the session token lives longer than this server accepts",
            ),
            Self::SessionEnded => Refusal::unauthorized("session_ended", "the session has ended"),
            Self::UserDeleted => Refusal::unauthorized("user_deleted", "the user has been deleted"),
            Self::UserBanned => Refusal::unauthorized("user_banned", "the user is banned"),
            Self::OrganizationDeleted => Refusal::unauthorized(
                "organization_deleted",
                "the active organization has been deleted",
            ),
            Self::MembershipDeleted => Refusal::unauthorized(
                "membership_deleted",
                "the user is no longer a member of the active organization",
            ),
            Self::KeysUnavailable => Refusal::unavailable(
                "keys_unavailable",
                "authentication is temporarily unavailable",
            ),
            Self::StoreUnavailable => Refusal::unavailable(
                "store_unavailable",
                "the user store is temporarily unavailable",
            ),
            Self::TokenTypeMismatch => Refusal::unauthorized(
                "token_type_mismatch",
                "this kind of credential is not accepted here",
            ),
            Self::CredentialNotFound => {
                Refusal::unauthorized("credential_not_found", "the credential is not known")
            }
            Self::CredentialRevoked => {
                Refusal::unauthorized("credential_revoked", "the credential has been revoked")
            }
            Self::VerificationUnavailable => Refusal::unavailable(
                "verification_unavailable",
                "credential verification is temporarily unavailable",
            ),
            Self::VerificationMisconfigured => Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "verification_misconfigured",
                "the server is misconfigured and cannot verify this credential",
            ),
            Self::StoreMisconfigured => STORE_MISCONFIGURED,
        }
    }

    /// The stable machine code carried in the response body, e.g. `token_expired`.
    pub const fn code(self) -> &'static str {
        self.refusal().code()
    }

    /// A short human description, written for API clients (never library text).
    pub const fn message(self) -> &'static str {
        self.refusal().message
    }

    /// `401 Unauthorized` for every token problem, `503 Service Unavailable`
    /// for outages, `500 Internal Server Error` for a server that cannot
    /// verify a credential it accepts or whose store's schema is wrong.
    pub const fn status(self) -> StatusCode {
        self.refusal().status()
    }

    /// Whether this rejection is an outage rather than a problem with the request.
    pub const fn is_outage(self) -> bool {
        matches!(self.refusal().header, Header::RetryAfter)
    }

    /// The response: status, `WWW-Authenticate` (RFC 6750) on `401`, `Retry-After`
    /// on `503`, and a JSON body `{"error": code, "message": text}`.
    pub fn to_response(self) -> Response<Full<Bytes>> {
        self.refusal().response()
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl std::error::Error for Rejection {}

/// The store's schema lacks what the store needs: for the layer and the
/// webhook receiver alike.
pub(crate) const STORE_MISCONFIGURED: Refusal = Refusal::new(
    StatusCode::INTERNAL_SERVER_ERROR,
    "store_misconfigured",
    "the user store is misconfigured",
);

/// A handler or guard asked for the user on a route without the layer: a
/// server bug.
pub(crate) const MISSING_LAYER: Refusal = Refusal::new(
    StatusCode::INTERNAL_SERVER_ERROR,
    "missing_layer",
    "EnsureUserLayer is not installed on this route",
);

/// RFC 6750 §3.1: the token is good, but not for this.
const INSUFFICIENT_SCOPE: Header = Header::Challenge(r#"Bearer error="insufficient_scope""#);

/// A guard refused: the session lacks the role, permission, feature or
/// plan, or the credential the scope.
pub(crate) const INSUFFICIENT_SCOPE_REFUSAL: Refusal = Refusal::new(
    StatusCode::FORBIDDEN,
    "insufficient_scope",
    "the credential lacks the role, permission, feature, plan or scope this route requires",
)
.with(INSUFFICIENT_SCOPE);

/// A handler asked for the active organization of a token that names none.
#[cfg(feature = "axum")]
pub(crate) const NO_ACTIVE_ORGANIZATION: Refusal = Refusal::new(
    StatusCode::FORBIDDEN,
    "no_active_organization",
    "the session has no active organization",
)
.with(INSUFFICIENT_SCOPE);

/// A handler asked for the user of a credential that is not a user's (an
/// organization's API key, a machine's token).
#[cfg(feature = "axum")]
pub(crate) const NO_USER: Refusal = Refusal::new(
    StatusCode::FORBIDDEN,
    "no_user",
    "this credential does not belong to a user",
)
.with(INSUFFICIENT_SCOPE);

/// A handler asked for the active organization on a layer that does not
/// resolve organizations: a server bug.
#[cfg(feature = "axum")]
pub(crate) const ORGANIZATIONS_NOT_RESOLVED: Refusal = Refusal::new(
    StatusCode::INTERNAL_SERVER_ERROR,
    "organizations_not_resolved",
    "EnsureUserLayer on this route does not resolve organizations",
);

/// What the webhook receiver answers a delivery it does not apply.
#[cfg(feature = "webhooks")]
pub(crate) mod webhook {
    use super::{Header, Refusal, StatusCode};

    pub(crate) use super::STORE_MISCONFIGURED;

    pub(crate) const METHOD_NOT_ALLOWED: Refusal = Refusal::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "webhooks are delivered with POST",
    )
    .with(Header::Allow("POST"));
    pub(crate) const BODY_TOO_LARGE: Refusal = Refusal::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "the body is too large",
    );
    pub(crate) const UNREADABLE_BODY: Refusal = Refusal::new(
        StatusCode::BAD_REQUEST,
        "unreadable_body",
        "the body could not be read",
    );
    pub(crate) const MISSING_HEADER: Refusal = Refusal::new(
        StatusCode::BAD_REQUEST,
        "missing_header",
        "a svix header is missing",
    );
    pub(crate) const INVALID_HEADER: Refusal = Refusal::new(
        StatusCode::BAD_REQUEST,
        "invalid_header",
        "a svix header is malformed",
    );
    pub(crate) const INVALID_TIMESTAMP: Refusal = Refusal::new(
        StatusCode::BAD_REQUEST,
        "invalid_timestamp",
        "the timestamp is not an integer",
    );
    pub(crate) const TIMESTAMP_TOO_OLD: Refusal = Refusal::new(
        StatusCode::UNAUTHORIZED,
        "timestamp_too_old",
        "the timestamp is too old",
    );
    pub(crate) const TIMESTAMP_IN_FUTURE: Refusal = Refusal::new(
        StatusCode::UNAUTHORIZED,
        "timestamp_in_future",
        "the timestamp is in the future",
    );
    pub(crate) const INVALID_SIGNATURE: Refusal = Refusal::new(
        StatusCode::UNAUTHORIZED,
        "invalid_signature",
        "no signature matches",
    );
    pub(crate) const MALFORMED_JSON: Refusal = Refusal::new(
        StatusCode::BAD_REQUEST,
        "malformed_json",
        "the body is not JSON",
    );
    pub(crate) const INVALID_EVENT: Refusal = Refusal::new(
        StatusCode::BAD_REQUEST,
        "invalid_event",
        "the body is not a valid event",
    );
    pub(crate) const STORE_UNAVAILABLE: Refusal = Refusal::unavailable(
        "store_unavailable",
        "the user store is temporarily unavailable",
    );
    pub(crate) const HOOK_FAILED: Refusal = Refusal::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "hook_failed",
        "the event was applied but its follow-up failed",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn unauthorized_carries_code_and_bearer_challenge() {
        let response = Rejection::TokenExpired.to_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token""#
        );
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"], "token_expired");
    }

    #[test]
    fn outage_is_503_with_retry_after() {
        for rejection in [
            Rejection::KeysUnavailable,
            Rejection::StoreUnavailable,
            Rejection::VerificationUnavailable,
        ] {
            let response = rejection.to_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()[header::RETRY_AFTER], "5");
            assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
            assert!(rejection.is_outage());
        }
    }

    #[test]
    fn machine_credential_refusals() {
        for (rejection, code) in [
            (Rejection::TokenTypeMismatch, "token_type_mismatch"),
            (Rejection::CredentialNotFound, "credential_not_found"),
            (Rejection::CredentialRevoked, "credential_revoked"),
        ] {
            let response = rejection.to_response();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(
                response.headers()[header::WWW_AUTHENTICATE],
                r#"Bearer error="invalid_token""#
            );
            assert_eq!(rejection.code(), code);
            assert!(!rejection.is_outage());
        }
        let misconfigured = Rejection::VerificationMisconfigured;
        let response = misconfigured.to_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
        assert_eq!(misconfigured.code(), "verification_misconfigured");
        assert!(misconfigured.message().contains("misconfigured"));
        assert!(!misconfigured.is_outage());
    }

    #[test]
    fn a_misconfigured_store_is_a_500_not_to_be_retried() {
        let rejection = Rejection::StoreMisconfigured;
        let response = rejection.to_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
        assert_eq!(rejection.code(), "store_misconfigured");
        assert!(!rejection.is_outage());
    }

    #[cfg(feature = "axum")]
    #[test]
    fn a_credential_without_a_user_is_forbidden() {
        let response = NO_USER.response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer error="insufficient_scope""#
        );
    }

    #[test]
    fn missing_token_challenge_has_no_error_code() {
        let response = Rejection::MissingToken.to_response();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[tokio::test]
    async fn every_refusal_is_the_same_json_and_never_cached() {
        let mut refusals: Vec<Refusal> = [
            Rejection::MissingToken,
            Rejection::InvalidSignature,
            Rejection::StoreUnavailable,
            Rejection::TokenTypeMismatch,
            Rejection::CredentialNotFound,
            Rejection::CredentialRevoked,
            Rejection::VerificationUnavailable,
            Rejection::VerificationMisconfigured,
            Rejection::StoreMisconfigured,
        ]
        .map(Rejection::refusal)
        .to_vec();
        #[cfg(feature = "axum")]
        refusals.extend([MISSING_LAYER, NO_USER]);
        #[cfg(feature = "webhooks")]
        refusals.extend([
            webhook::METHOD_NOT_ALLOWED,
            webhook::HOOK_FAILED,
            webhook::STORE_MISCONFIGURED,
        ]);
        for refusal in refusals {
            let response = refusal.response();
            assert_eq!(response.status(), refusal.status());
            assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(json["error"], refusal.code());
            assert_eq!(json["message"], refusal.message);
        }
    }
}
