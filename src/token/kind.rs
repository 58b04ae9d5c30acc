//! The kinds of credential a request may carry, named as Clerk names them.

use std::fmt;

/// A kind of credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TokenType {
    /// A Clerk session token (a JWT).
    SessionToken,
    /// A Clerk API key (`ak_…`).
    ApiKey,
    /// A Clerk machine-to-machine token (`mt_…`, or a JWT whose `sub` is `mch_…`).
    M2mToken,
    /// A Clerk OAuth access token (`oat_…`, or a JWT typed `at+jwt`).
    OauthToken,
}

impl TokenType {
    /// Clerk's name: `session_token`, `api_key`, `m2m_token`, `oauth_token`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SessionToken => "session_token",
            Self::ApiKey => "api_key",
            Self::M2mToken => "m2m_token",
            Self::OauthToken => "oauth_token",
        }
    }
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
