//! One verification call to Clerk's Backend API, and what its answer means.

use std::time::Duration;

use reqwest::{
    StatusCode,
    header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue},
};

use super::{Alarm, MachineCredential, MachineError, MachineRules, credential};
use crate::{backend_api, token::TokenType};

/// The Backend API version whose answers [`credential::parse`] reads.
const API_VERSION: &str = "2026-05-12";

/// Largest answer read: a credential's answer is well under a kilobyte,
/// claims included.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The longest `Retry-After` believed; a longer one is not passed on.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How often one kind of trouble is logged at most.
const ALARM_EVERY: Duration = Duration::from_secs(60);

/// Where each kind of credential is verified, and the body's one member.
struct Endpoint {
    /// The path under the API URL. As Clerk's own SDK calls them: without
    /// `/v1`.
    path: &'static str,
    /// The body's member holding the credential.
    field: &'static str,
}

impl Endpoint {
    const fn of(kind: TokenType) -> Option<Self> {
        match kind {
            TokenType::ApiKey => Some(Self {
                path: "api_keys/verify",
                field: "secret",
            }),
            TokenType::M2mToken => Some(Self {
                path: "m2m_tokens/verify",
                field: "token",
            }),
            TokenType::OauthToken => Some(Self {
                path: "oauth_applications/access_tokens/verify",
                field: "access_token",
            }),
            TokenType::SessionToken | TokenType::OidcToken => None,
        }
    }
}

/// Calls the verification endpoints with the configured keys.
pub(super) struct Backend {
    /// `None` when the HTTP client could not be built: every call is then
    /// refused as misconfigured.
    http: Option<reqwest::Client>,
    /// The API URL without a trailing slash; `None` when unusable.
    base: Option<String>,
    /// `Bearer <secret key>`, for API keys, OAuth tokens, and M2M tokens
    /// when no machine secret key is configured.
    secret_key: Option<HeaderValue>,
    /// `Bearer <machine secret key>`, for M2M tokens.
    machine_secret_key: Option<HeaderValue>,
    misconfigured: Alarm,
    failing: Alarm,
}

impl Backend {
    pub(super) fn new(rules: &MachineRules) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(rules.call_timeout)
            .connect_timeout(rules.call_timeout)
            .user_agent(concat!("ensure-user/", env!("CARGO_PKG_VERSION")))
            .build()
            .inspect_err(|error| {
                tracing::error!(
                    target: "ensure_user::machine",
                    %error,
                    "the Backend API's HTTP client cannot be built; \
                     API keys, M2M and OAuth tokens will be refused"
                );
            })
            .ok();
        Self {
            http,
            base: api_base(&rules.api_url),
            secret_key: bearer(rules.secret_key.as_deref(), "CLERK_SECRET_KEY"),
            machine_secret_key: bearer(
                rules.machine_secret_key.as_deref(),
                "CLERK_MACHINE_SECRET_KEY",
            ),
            misconfigured: Alarm::default(),
            failing: Alarm::default(),
        }
    }

    /// What the Backend API says of `token`, a credential of kind `kind`:
    ///
    /// - `200`: the credential ([`credential::parse`] says when it is
    ///   refused all the same);
    /// - `404`, and `400`/`422` (a credential Clerk cannot even read):
    ///   [`MachineError::NotFound`];
    /// - `401`/`403`: [`MachineError::Misconfigured`], the server's key is
    ///   refused, never the client's credential; logged at `ERROR`;
    /// - `429`: [`MachineError::Unavailable`] with its `Retry-After`;
    /// - anything else, and no answer in time: [`MachineError::Unavailable`].
    pub(super) async fn verify(
        &self,
        kind: TokenType,
        token: &str,
    ) -> Result<MachineCredential, MachineError> {
        let Some(endpoint) = Endpoint::of(kind) else {
            return Err(MachineError::NotFound);
        };
        let (Some(http), Some(base), Some(authorization)) =
            (&self.http, &self.base, self.authorization(kind))
        else {
            self.refuse_misconfigured(kind, None);
            return Err(MachineError::Misconfigured);
        };
        let mut body = serde_json::Map::new();
        body.insert(endpoint.field.to_owned(), token.into());
        let request = http
            .post(format!("{base}/{}", endpoint.path))
            .header(AUTHORIZATION, authorization.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .header("clerk-api-version", HeaderValue::from_static(API_VERSION))
            .body(serde_json::Value::Object(body).to_string());
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Err(self.unavailable(kind, &describe(&error))),
        };
        match response.status() {
            StatusCode::OK => {
                let body = match read_body(response).await {
                    Ok(body) => body,
                    Err(reason) => return Err(self.unavailable(kind, &reason)),
                };
                let parsed = credential::parse(kind, &body);
                if let Err(MachineError::Unavailable { .. }) = parsed {
                    self.unavailable(kind, "the answer is not a credential this crate reads");
                }
                parsed
            }
            StatusCode::NOT_FOUND => Err(MachineError::NotFound),
            status @ (StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY) => {
                if self.failing.due(ALARM_EVERY) {
                    tracing::warn!(
                        target: "ensure_user::machine",
                        token_type = kind.as_str(),
                        status = status.as_u16(),
                        "the Backend API refused a credential as malformed"
                    );
                }
                Err(MachineError::NotFound)
            }
            status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                self.refuse_misconfigured(kind, Some(status));
                Err(MachineError::Misconfigured)
            }
            StatusCode::TOO_MANY_REQUESTS => {
                let retry_after = retry_after(response.headers());
                self.unavailable(kind, "rate limited (429)");
                Err(MachineError::Unavailable { retry_after })
            }
            status => Err(self.unavailable(kind, &format!("answered {status}"))),
        }
    }

    /// The `Authorization` value for `kind`: the machine secret key for M2M
    /// tokens when there is one, else the secret key.
    fn authorization(&self, kind: TokenType) -> Option<&HeaderValue> {
        match kind {
            TokenType::M2mToken => self
                .machine_secret_key
                .as_ref()
                .or(self.secret_key.as_ref()),
            _ => self.secret_key.as_ref(),
        }
    }

    /// Logs, at most once a minute, that `kind` cannot be verified with
    /// this configuration: the Backend API refused the key with `status`,
    /// or (`None`) there is no usable key, URL or client.
    fn refuse_misconfigured(&self, kind: TokenType, status: Option<StatusCode>) {
        if !self.misconfigured.due(ALARM_EVERY) {
            return;
        }
        let variables = match kind {
            TokenType::M2mToken => "CLERK_MACHINE_SECRET_KEY or CLERK_SECRET_KEY",
            _ => "CLERK_SECRET_KEY",
        };
        match status {
            Some(status) => tracing::error!(
                target: "ensure_user::machine",
                token_type = kind.as_str(),
                status = status.as_u16(),
                "the Backend API refused this server's key: every {kind} is refused \
                 until {variables} holds a valid key of this Clerk instance"
            ),
            None => tracing::error!(
                target: "ensure_user::machine",
                token_type = kind.as_str(),
                "no usable key or API URL to verify a {kind}: every {kind} is refused \
                 until {variables} (and CLERK_API_URL, when set) are valid"
            ),
        }
    }

    /// [`MachineError::Unavailable`], logged at most once a minute.
    fn unavailable(&self, kind: TokenType, reason: &str) -> MachineError {
        if self.failing.due(ALARM_EVERY) {
            tracing::warn!(
                target: "ensure_user::machine",
                token_type = kind.as_str(),
                reason,
                "the Backend API cannot verify credentials right now"
            );
        }
        MachineError::Unavailable { retry_after: None }
    }
}

/// The API URL without its trailing slash, if it is an `http(s)` URL with
/// a host.
fn api_base(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url.trim()).ok()?;
    let usable = matches!(parsed.scheme(), "http" | "https")
        && parsed.has_host()
        && parsed.query().is_none()
        && parsed.fragment().is_none();
    if !usable {
        tracing::error!(
            target: "ensure_user::machine",
            url,
            "the Backend API URL is not an http(s) URL"
        );
        return None;
    }
    Some(parsed.as_str().trim_end_matches('/').to_owned())
}

/// `Bearer <key>`, marked sensitive; `None` when there is no key, or one a
/// header cannot carry (logged, naming `variable`, never the key).
fn bearer(key: Option<&str>, variable: &str) -> Option<HeaderValue> {
    let key = key.map(str::trim).filter(|key| !key.is_empty())?;
    match HeaderValue::from_str(&format!("Bearer {key}")) {
        Ok(mut value) => {
            value.set_sensitive(true);
            Some(value)
        }
        Err(_) => {
            tracing::error!(
                target: "ensure_user::machine",
                "{variable} holds characters a header cannot carry; it is not used"
            );
            None
        }
    }
}

/// The body, up to [`MAX_BODY_BYTES`].
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| describe(&error))? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!("the answer is over {MAX_BODY_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `Retry-After` in seconds, up to [`MAX_RETRY_AFTER`]; an HTTP date, or a
/// longer wait, is not believed.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    backend_api::retry_after(headers).filter(|wait| *wait <= MAX_RETRY_AFTER)
}

/// What went wrong with a call, from reqwest's error and its causes but
/// not its URL; it never holds a header or the body.
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "no answer within the call timeout".to_owned();
    }
    backend_api::failure(error)
}
