//! Why a request was refused, and how each reason becomes an HTTP response.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

/// Seconds a client is asked to wait before retrying after a `503`.
pub(crate) const RETRY_AFTER_SECONDS: u64 = 5;

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
    /// `exp` has passed (allowing for the configured clock skew).
    TokenExpired,
    /// `nbf` is still in the future (allowing for the configured clock skew).
    TokenNotYetValid,
    /// `iat` is in the future (allowing for the configured clock skew).
    TokenIssuedInFuture,
    /// `iss` is not the configured Clerk instance.
    InvalidIssuer,
    /// `azp` is missing or not one of the configured authorized parties.
    UnauthorizedParty,
    /// The session is `pending` (for example, an organization must be chosen first).
    SessionPending,
    /// The Clerk user was deleted; the token may still be unexpired.
    UserDeleted,
    /// The signing keys cannot be fetched right now; retry later.
    KeysUnavailable,
    /// The user store (database) cannot be reached right now; retry later.
    StoreUnavailable,
}

impl Rejection {
    /// The stable machine code carried in the response body, e.g. `token_expired`.
    pub const fn code(self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::MalformedToken => "malformed_token",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::NotASessionToken => "not_a_session_token",
            Self::UnknownKey => "unknown_key",
            Self::InvalidSignature => "invalid_signature",
            Self::TokenExpired => "token_expired",
            Self::TokenNotYetValid => "token_not_yet_valid",
            Self::TokenIssuedInFuture => "token_issued_in_future",
            Self::InvalidIssuer => "invalid_issuer",
            Self::UnauthorizedParty => "unauthorized_party",
            Self::SessionPending => "session_pending",
            Self::UserDeleted => "user_deleted",
            Self::KeysUnavailable => "keys_unavailable",
            Self::StoreUnavailable => "store_unavailable",
        }
    }

    /// A short human description, written for API clients (never library text).
    pub const fn message(self) -> &'static str {
        match self {
            Self::MissingToken => "no session token was sent",
            Self::MalformedToken => "the session token is malformed",
            Self::UnsupportedAlgorithm => "the session token uses an unsupported algorithm",
            Self::NotASessionToken => "the token is not a Clerk session token",
            Self::UnknownKey => "the session token was signed by an unknown key",
            Self::InvalidSignature => "the session token signature is invalid",
            Self::TokenExpired => "the session token has expired",
            Self::TokenNotYetValid => "the session token is not valid yet",
            Self::TokenIssuedInFuture => "the session token was issued in the future",
            Self::InvalidIssuer => "the session token was issued by another Clerk instance",
            Self::UnauthorizedParty => "the session token was issued for another origin",
            Self::SessionPending => "the session is pending and not signed in yet",
            Self::UserDeleted => "the user has been deleted",
            Self::KeysUnavailable => "authentication is temporarily unavailable",
            Self::StoreUnavailable => "the user store is temporarily unavailable",
        }
    }

    /// `401 Unauthorized` for every token problem, `503 Service Unavailable` for outages.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::KeysUnavailable | Self::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// Whether this rejection is an outage rather than a problem with the request.
    pub const fn is_outage(self) -> bool {
        matches!(self, Self::KeysUnavailable | Self::StoreUnavailable)
    }

    /// The response: status, `WWW-Authenticate` (RFC 6750) on `401`, `Retry-After`
    /// on `503`, and a JSON body `{"error": code, "message": text}`.
    pub fn to_response(self) -> Response<Full<Bytes>> {
        let body = format!(
            r#"{{"error":"{}","message":"{}"}}"#,
            self.code(),
            self.message()
        );
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.is_outage() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        } else {
            headers.insert(header::WWW_AUTHENTICATE, self.www_authenticate());
        }
        response
    }

    fn www_authenticate(self) -> HeaderValue {
        match self {
            // RFC 6750 §3.1: a request without credentials gets no error code.
            Self::MissingToken => HeaderValue::from_static("Bearer"),
            _ => HeaderValue::from_static(r#"Bearer error="invalid_token""#),
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl std::error::Error for Rejection {}

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
        for rejection in [Rejection::KeysUnavailable, Rejection::StoreUnavailable] {
            let response = rejection.to_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()[header::RETRY_AFTER], "5");
            assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
        }
    }

    #[test]
    fn missing_token_challenge_has_no_error_code() {
        let response = Rejection::MissingToken.to_response();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
