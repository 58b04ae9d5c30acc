//! [`ApiError`], and how a failed response becomes one.

use std::time::Duration;

use serde::Deserialize;

/// Longest text kept from an error body.
const MAX_MESSAGE_CHARS: usize = 300;

/// Clerk's error code for a request about organizations on an instance
/// that has them turned off.
const ORGANIZATIONS_NOT_ENABLED: &str = "organization_not_enabled_in_instance";

/// Why a Backend API call failed.
///
/// Neither the message nor `Debug` ever shows the secret key; texts taken
/// from a response body are dropped when they contain it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No secret key was given (`CLERK_SECRET_KEY` unset or empty).
    #[error("no Clerk secret key: set CLERK_SECRET_KEY")]
    MissingSecretKey,
    /// The secret key holds characters an HTTP header cannot carry.
    #[error("the Clerk secret key contains characters an HTTP header cannot carry")]
    InvalidSecretKey,
    /// The base URL is not an absolute `http(s)` URL.
    #[error("invalid Backend API URL `{0}`: expected http(s)://host[:port][/path]")]
    InvalidUrl(String),
    /// `401` or `403`: the secret key was refused.
    #[error("the Backend API refused the secret key ({status}{})", code_suffix(.code.as_deref()))]
    Unauthorized {
        /// The HTTP status.
        status: u16,
        /// Clerk's error code, e.g. `clerk_key_invalid`.
        code: Option<String>,
    },
    /// `403` with Clerk's code `organization_not_enabled_in_instance`: the
    /// instance does not have organizations turned on, so it has none to
    /// list.
    #[error("organizations are not enabled for this Clerk instance")]
    OrganizationsNotEnabled,
    /// `429`, still, after the retries allowed.
    #[error("rate limited by the Backend API{}", wait_suffix(*.retry_after))]
    RateLimited {
        /// The last `Retry-After`, when the answer had one.
        retry_after: Option<Duration>,
    },
    /// Any other status that is not a success (a `5xx` after the retries
    /// allowed, or a `4xx`).
    #[error(
        "the Backend API answered {status}{}{}",
        code_suffix(.code.as_deref()),
        message_suffix(.message.as_deref())
    )]
    Status {
        /// The HTTP status.
        status: u16,
        /// Clerk's error code, e.g. `resource_not_found`.
        code: Option<String>,
        /// Clerk's explanation.
        message: Option<String>,
    },
    /// The connection failed (after the retries allowed).
    #[error("the Backend API could not be reached: {0}")]
    Unreachable(String),
    /// No complete answer within the timeout (after the retries allowed).
    #[error("the Backend API did not answer within {0:?}")]
    TimedOut(Duration),
    /// A success whose body is not what the endpoint returns.
    #[error("unexpected Backend API response: {0}")]
    InvalidResponse(String),
}

impl ApiError {
    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Unauthorized { status, .. } | Self::Status { status, .. } => Some(*status),
            Self::OrganizationsNotEnabled => Some(403),
            Self::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// Whether trying again later may succeed: rate limits, server errors,
    /// timeouts and connection failures.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Unreachable(_) | Self::TimedOut(_) => true,
            Self::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// The error for a failed answer: its status, `Retry-After` and body.
    /// Text from the body is dropped when it contains `secret`.
    pub(crate) fn from_answer(
        status: u16,
        retry_after: Option<Duration>,
        body: &[u8],
        secret: &str,
    ) -> Self {
        #[derive(Deserialize)]
        struct Body {
            errors: Vec<Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            code: Option<String>,
            message: Option<String>,
            long_message: Option<String>,
        }
        let first = serde_json::from_slice::<Body>(body)
            .ok()
            .and_then(|body| body.errors.into_iter().next());
        let clean = |text: Option<String>| {
            text.filter(|text| !text.is_empty() && !text.contains(secret))
                .map(|text| text.chars().take(MAX_MESSAGE_CHARS).collect::<String>())
        };
        let (code, message) = match first {
            Some(entry) => (
                clean(entry.code),
                clean(entry.long_message.or(entry.message)),
            ),
            None => (None, None),
        };
        match status {
            403 if code.as_deref() == Some(ORGANIZATIONS_NOT_ENABLED) => {
                Self::OrganizationsNotEnabled
            }
            401 | 403 => Self::Unauthorized { status, code },
            429 => Self::RateLimited { retry_after },
            _ => Self::Status {
                status,
                code,
                message,
            },
        }
    }
}

fn code_suffix(code: Option<&str>) -> String {
    code.map(|code| format!(", {code}")).unwrap_or_default()
}

fn message_suffix(message: Option<&str>) -> String {
    message.map(|text| format!(": {text}")).unwrap_or_default()
}

fn wait_suffix(wait: Option<Duration>) -> String {
    wait.map(|wait| format!(" (retry after {}s)", wait.as_secs()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "sk_test_0123456789abcdef";

    #[test]
    fn clerk_error_bodies_are_read() {
        let body = br#"{"errors":[{"message":"not found","long_message":"No user was found with id user_1","code":"resource_not_found","meta":{}}],"clerk_trace_id":"t"}"#;
        let error = ApiError::from_answer(404, None, body, SECRET);
        assert_eq!(
            error.to_string(),
            "the Backend API answered 404, resource_not_found: No user was found with id user_1"
        );
        assert_eq!(error.status(), Some(404));
        assert!(!error.is_retryable());

        let refused =
            br#"{"errors":[{"message":"x","long_message":"x","code":"clerk_key_invalid"}]}"#;
        let error = ApiError::from_answer(401, None, refused, SECRET);
        assert_eq!(
            error.to_string(),
            "the Backend API refused the secret key (401, clerk_key_invalid)"
        );
    }

    #[test]
    fn odd_bodies_and_rate_limits() {
        let error = ApiError::from_answer(502, None, b"<html>bad gateway</html>", SECRET);
        assert_eq!(error.to_string(), "the Backend API answered 502");
        assert!(error.is_retryable());
        let limited = ApiError::from_answer(429, Some(Duration::from_secs(7)), b"", SECRET);
        assert_eq!(
            limited.to_string(),
            "rate limited by the Backend API (retry after 7s)"
        );
        assert!(limited.is_retryable());
    }

    #[test]
    fn organizations_not_enabled_is_told_from_a_refused_key() {
        let body = br#"{"errors":[{"message":"access denied","long_message":"The organizations feature is not enabled for this instance.","code":"organization_not_enabled_in_instance","meta":{}}],"clerk_trace_id":"t"}"#;
        let error = ApiError::from_answer(403, None, body, SECRET);
        assert!(
            matches!(error, ApiError::OrganizationsNotEnabled),
            "{error:?}"
        );
        assert_eq!(error.status(), Some(403));
        assert!(!error.is_retryable());

        let other =
            br#"{"errors":[{"message":"denied","code":"authorization_invalid","meta":{}}]}"#;
        let refused = ApiError::from_answer(403, None, other, SECRET);
        assert!(
            matches!(refused, ApiError::Unauthorized { status: 403, .. }),
            "{refused:?}"
        );
    }

    #[test]
    fn an_echoed_secret_is_dropped() {
        let body = format!(
            r#"{{"errors":[{{"code":"bad {SECRET}","message":"Bearer {SECRET}","long_message":"header was Bearer {SECRET}"}}]}}"#
        );
        let error = ApiError::from_answer(400, None, body.as_bytes(), SECRET);
        assert!(!error.to_string().contains(SECRET), "{error}");
        assert!(!format!("{error:?}").contains(SECRET), "{error:?}");
    }
}
