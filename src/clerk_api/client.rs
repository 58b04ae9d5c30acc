//! [`ClerkApi`]: authenticated, bounded and retried calls to the Backend API.

use std::{fmt, time::Duration};

use reqwest::{
    Url,
    header::{ACCEPT, AUTHORIZATION, HeaderValue},
};
use serde::Deserialize;

use super::{ApiError, ListPages, RetryPolicy, UserPages, list_pages::ListPage};
use crate::{
    backend_api,
    clerk::{ClerkMembership, ClerkOrganization, ClerkUser},
    config::DEFAULT_API_URL,
};

/// Largest body read: a full page of 500 real user objects is about 1.5 MB.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// A client for the users, organizations and memberships endpoints of
/// Clerk's Backend API.
///
/// Cloning is cheap; clones share connections. See the
/// [module docs](super) for an example.
#[derive(Clone)]
pub struct ClerkApi {
    http: reqwest::Client,
    base: Url,
    authorization: HeaderValue,
    timeout: Duration,
    retry: RetryPolicy,
}

impl ClerkApi {
    /// A client authenticated with `secret_key` (`sk_live_…`/`sk_test_…`),
    /// calling `https://api.clerk.com`.
    ///
    /// Defaults: 10 s per attempt (connecting: 5 s), [`RetryPolicy::default`].
    /// Redirects are never followed, so the key goes nowhere else.
    pub fn new(secret_key: &str) -> Result<Self, ApiError> {
        let secret = secret_key.trim();
        if secret.is_empty() {
            return Err(ApiError::MissingSecretKey);
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {secret}"))
            .map_err(|_| ApiError::InvalidSecretKey)?;
        authorization.set_sensitive(true);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("ensure-user/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| ApiError::Unreachable(error.without_url().to_string()))?;
        Ok(Self {
            http,
            base: parse_base(DEFAULT_API_URL)?,
            authorization,
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        })
    }

    /// A client from `CLERK_SECRET_KEY`, calling `CLERK_API_URL` when it is set.
    pub fn from_env() -> Result<Self, ApiError> {
        let var = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let api = Self::new(&var("CLERK_SECRET_KEY").ok_or(ApiError::MissingSecretKey)?)?;
        match var("CLERK_API_URL") {
            Some(url) => api.with_api_url(&url),
            None => Ok(api),
        }
    }

    /// Calls the Backend API at `url` (e.g. a proxy or a local fake)
    /// instead of `https://api.clerk.com`.
    pub fn with_api_url(mut self, url: &str) -> Result<Self, ApiError> {
        self.base = parse_base(url)?;
        Ok(self)
    }

    /// The time limit of one attempt, from connecting to the last byte of
    /// the body. Default 10 s.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// When failed calls are tried again. Default [`RetryPolicy::default`].
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The base URL called.
    pub fn api_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `GET /v1/users/{user_id}`: the user, or `None` when Clerk has no
    /// such user (`404`).
    pub async fn user(&self, user_id: &str) -> Result<Option<ClerkUser>, ApiError> {
        match self.get(self.endpoint(&["users", user_id])?).await {
            Ok(body) => parse(&body).map(Some),
            Err(error) if error.status() == Some(404) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `GET /v1/users/count`: how many users the instance has.
    pub async fn user_count(&self) -> Result<u64, ApiError> {
        #[derive(Deserialize)]
        struct TotalCount {
            total_count: u64,
        }
        let body = self.get(self.endpoint(&["users", "count"])?).await?;
        parse::<TotalCount>(&body).map(|count| count.total_count)
    }

    /// Every user, oldest first, `page_size` (1 to 500) per request. See
    /// [`UserPages`].
    pub fn users(&self, page_size: u32) -> UserPages {
        UserPages::new(self.clone(), page_size)
    }

    /// `GET /v1/users` with `query`: one page.
    pub(crate) async fn list_users(
        &self,
        query: &[(&str, String)],
    ) -> Result<Vec<ClerkUser>, ApiError> {
        let mut url = self.endpoint(&["users"])?;
        url.query_pairs_mut()
            .extend_pairs(query.iter().map(|(key, value)| (key, value)));
        parse(&self.get(url).await?)
    }

    /// Every organization, oldest first, `page_size` (1 to 500) per
    /// request (`GET /v1/organizations`). See [`ListPages`].
    pub fn organizations(&self, page_size: u32) -> ListPages<ClerkOrganization> {
        ListPages::new(self.clone(), vec!["organizations".to_owned()], page_size)
    }

    /// Every membership of the organization `organization_id`, oldest
    /// first, `page_size` (1 to 500) per request
    /// (`GET /v1/organizations/{organization_id}/memberships`).
    pub fn memberships(&self, organization_id: &str, page_size: u32) -> ListPages<ClerkMembership> {
        let path = ["organizations", organization_id, "memberships"].map(str::to_owned);
        ListPages::new(self.clone(), path.to_vec(), page_size)
    }

    /// `GET /v1/{segments…}` with `query`: one page of a list endpoint.
    pub(crate) async fn list<T: serde::de::DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<ListPage<T>, ApiError> {
        let mut url = self.endpoint(segments)?;
        url.query_pairs_mut()
            .extend_pairs(query.iter().map(|(key, value)| (key, value)));
        parse(&self.get(url).await?)
    }

    /// `{base}/v1/{segments…}`, each segment percent-encoded.
    fn endpoint(&self, segments: &[&str]) -> Result<Url, ApiError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| ApiError::InvalidUrl(self.base.to_string()))?
            .pop_if_empty()
            .push("v1")
            .extend(segments);
        Ok(url)
    }

    /// A `GET`, retried as the policy says; the body of the success.
    async fn get(&self, url: Url) -> Result<Vec<u8>, ApiError> {
        let mut retries = 0;
        loop {
            let error = match self.attempt(&url).await {
                Ok(body) => return Ok(body),
                Err(error) => error,
            };
            let Some(delay) = self.retry.delay(retries, &error) else {
                return Err(error);
            };
            retries += 1;
            tracing::warn!(
                target: "ensure_user",
                path = url.path(),
                retry = retries,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                %error,
                "Backend API call failed; trying again"
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(&self, url: &Url) -> Result<Vec<u8>, ApiError> {
        let response = self
            .http
            .get(url.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|error| self.transport_error(&error))?;
        let status = response.status();
        let retry_after = backend_api::retry_after(response.headers());
        let body = self.read_body(response).await;
        if status.is_success() {
            return body;
        }
        let body = body.unwrap_or_default();
        Err(ApiError::from_answer(
            status.as_u16(),
            retry_after,
            &body,
            self.secret(),
        ))
    }

    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, ApiError> {
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| self.transport_error(&error))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(ApiError::InvalidResponse(
                    "the body is over 64 MiB".to_owned(),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// reqwest's text and its causes, without the URL; never a header.
    fn transport_error(&self, error: &reqwest::Error) -> ApiError {
        if error.is_timeout() {
            return ApiError::TimedOut(self.timeout);
        }
        ApiError::Unreachable(backend_api::failure(error).replace(self.secret(), "[redacted]"))
    }

    /// The secret key, for scrubbing texts that may echo it.
    fn secret(&self) -> &str {
        self.authorization
            .to_str()
            .unwrap_or_default()
            .trim_start_matches("Bearer ")
    }
}

/// Shows the base URL and settings; never the secret key.
impl fmt::Debug for ClerkApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClerkApi")
            .field("api_url", &self.api_url())
            .field("secret_key", &"[redacted]")
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

fn parse_base(url: &str) -> Result<Url, ApiError> {
    let invalid = || ApiError::InvalidUrl(url.to_owned());
    let parsed = Url::parse(url.trim()).map_err(|_| invalid())?;
    let usable = matches!(parsed.scheme(), "http" | "https")
        && parsed.has_host()
        && parsed.username().is_empty()
        && parsed.password().is_none()
        && parsed.query().is_none()
        && parsed.fragment().is_none();
    if !usable {
        return Err(invalid());
    }
    Ok(parsed)
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| {
        // serde_json's own message may quote body content: only its kind
        // and position are kept.
        let kind = match error.classify() {
            serde_json::error::Category::Data => "JSON of an unexpected shape",
            _ => "not valid JSON",
        };
        ApiError::InvalidResponse(format!(
            "{kind} at line {}, column {}",
            error.line(),
            error.column()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked() {
        let api = ClerkApi::new("sk_test_x").unwrap();
        assert_eq!(api.api_url(), "https://api.clerk.com");
        let local = api.clone().with_api_url("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            local.endpoint(&["users", "user_1"]).unwrap().as_str(),
            "http://127.0.0.1:8080/v1/users/user_1"
        );
        let prefixed = api
            .clone()
            .with_api_url("https://proxy.example/clerk")
            .unwrap();
        assert_eq!(
            prefixed.endpoint(&["users", "a/b?c"]).unwrap().as_str(),
            "https://proxy.example/clerk/v1/users/a%2Fb%3Fc"
        );
        for bad in [
            "",
            "api.clerk.com",
            "ftp://api.clerk.com",
            "https://user:pw@api.clerk.com",
            "https://api.clerk.com/?x=1",
            "mailto:x@example.com",
        ] {
            assert!(api.clone().with_api_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_keys_are_checked_and_never_shown() {
        assert!(matches!(
            ClerkApi::new("  "),
            Err(ApiError::MissingSecretKey)
        ));
        assert!(matches!(
            ClerkApi::new("sk_test_a\nb"),
            Err(ApiError::InvalidSecretKey)
        ));
        let api = ClerkApi::new("sk_test_verysecret").unwrap();
        assert_eq!(api.secret(), "sk_test_verysecret");
        let shown = format!("{api:?}");
        assert!(!shown.contains("verysecret"), "{shown}");
        assert!(shown.contains("https://api.clerk.com"), "{shown}");
    }
}
