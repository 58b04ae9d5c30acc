//! One configuration for the layer, built in code or read from `CLERK_*` variables.

use std::{fmt, time::Duration};

use aws_lc_rs::digest;
use base64::{
    Engine,
    engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD},
};

use crate::{
    machine::MachineRules,
    oidc::Issuer,
    store::Profile,
    token::{
        AcceptedTokens, KeySource, SessionClaims,
        rules::{InvalidKey, KeyRules, VerifierRules},
    },
};

/// Clerk's Backend API: `/v1/jwks` when only a secret key is configured,
/// and the verification of API keys, M2M and OAuth tokens.
pub const DEFAULT_API_URL: &str = "https://api.clerk.com";

/// Claim names to read a new user's profile from, when the app added them to
/// Clerk's session token (Dashboard → Sessions → Customize session token).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProfileClaims {
    /// The claim holding the primary email address. Default `email`.
    pub email: String,
    /// The claim holding the first name. Default `first_name`.
    pub first_name: String,
    /// The claim holding the last name. Default `last_name`.
    pub last_name: String,
    /// The claim holding the profile image URL. Default `image_url`.
    pub image_url: String,
}

impl ProfileClaims {
    /// The profile these claims hold in a token, as the stores keep it.
    pub(crate) fn read(&self, claims: &SessionClaims) -> Profile {
        let extra = claims
            .extra::<serde_json::Map<String, serde_json::Value>>()
            .unwrap_or_default();
        self.read_map(&extra)
    }

    /// The profile these claims hold in a token's claims.
    pub(crate) fn read_map(&self, claims: &serde_json::Map<String, serde_json::Value>) -> Profile {
        let text = |name: &str| claims.get(name).and_then(serde_json::Value::as_str);
        Profile::from_reported(
            text(&self.email),
            text(&self.first_name),
            text(&self.last_name),
            text(&self.image_url),
        )
    }
}

impl Default for ProfileClaims {
    fn default() -> Self {
        Self {
            email: "email".into(),
            first_name: "first_name".into(),
            last_name: "last_name".into(),
            image_url: "image_url".into(),
        }
    }
}

/// Everything the layer needs to verify tokens and cache results.
///
/// ```
/// use ensure_user::{Config, KeySource};
/// use std::time::Duration;
///
/// let config = Config::new("https://clerk.example.com", KeySource::jwks_url("https://clerk.example.com/.well-known/jwks.json"))
///     .with_authorized_parties(["https://example.com"])
///     .with_clock_skew(Duration::from_secs(5));
/// # let _ = config;
/// ```
#[derive(Clone)]
pub struct Config {
    pub(crate) issuer: String,
    pub(crate) keys: KeySource,
    pub(crate) authorized_parties: Vec<String>,
    pub(crate) clock_skew: Duration,
    pub(crate) allow_pending_sessions: bool,
    pub(crate) cookie_suffix: Option<String>,
    pub(crate) max_token_bytes: usize,
    pub(crate) max_token_lifetime: Duration,
    pub(crate) max_cookies: usize,
    pub(crate) user_cache_capacity: u64,
    pub(crate) user_cache_ttl: Duration,
    pub(crate) token_cache_bytes: u64,
    pub(crate) profile_claims: ProfileClaims,
    pub(crate) key_refresh_interval: Duration,
    pub(crate) key_refetch_cooldown: Duration,
    pub(crate) key_fetch_timeout: Duration,
    pub(crate) max_jwks_bytes: usize,
    pub(crate) store_timeout: Duration,
    pub(crate) eviction_heartbeat: Duration,
    pub(crate) eviction_probe_timeout: Duration,
    pub(crate) accepted_tokens: AcceptedTokens,
    pub(crate) api_url: String,
    pub(crate) secret_key: Option<String>,
    pub(crate) machine_secret_key: Option<String>,
    pub(crate) credential_cache_interval: Duration,
    pub(crate) backend_api_budget: (usize, Duration),
    pub(crate) backend_api_timeout: Duration,
    /// Whether Clerk's tokens are accepted; `false` for a configuration of
    /// other issuers alone.
    pub(crate) clerk: bool,
    pub(crate) oidc_issuers: Vec<Issuer>,
}

/// How long the Backend API's answer that it does not know a credential
/// (or that it was revoked or has expired) is remembered.
const CREDENTIAL_REFUSAL_MEMORY: Duration = Duration::from_secs(10);

/// How many such answers are remembered at most.
const CREDENTIAL_REFUSAL_CAPACITY: usize = 10_000;

/// Why a configuration could not be built.
///
/// Each error reads as a sentence naming the variable to set or fix, in
/// `Display` and in `Debug` alike: an app that returns it from `main` with
/// `?` prints the `Debug` form. `Debug` adds the variant's name after the
/// sentence.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A publishable key that is not `pk_test_…`/`pk_live_…` around a Frontend API host.
    #[error(
        "CLERK_PUBLISHABLE_KEY is not a Clerk publishable key: copy the key that starts \
         with pk_test_ or pk_live_ from Clerk's Dashboard (Configure → API keys), whole"
    )]
    InvalidPublishableKey,
    /// `CLERK_JWT_KEY` is not an RSA public key in PEM (or bare base64 SPKI) form.
    #[error(
        "CLERK_JWT_KEY is not an RSA public key: paste the PEM public key from Clerk's \
         Dashboard (Configure → API keys → JWT public key), or unset CLERK_JWT_KEY to \
         fetch keys through CLERK_PUBLISHABLE_KEY instead"
    )]
    InvalidJwtKey,
    /// No way to obtain verification keys was configured.
    #[error(
        "no source of Clerk's signing keys: set CLERK_PUBLISHABLE_KEY (pk_test_… or \
         pk_live_…, from Clerk's Dashboard → API keys), or one of CLERK_JWKS_URL, \
         CLERK_JWT_KEY or CLERK_SECRET_KEY"
    )]
    MissingKeySource,
    /// The issuer could not be derived and was not set.
    #[error(
        "no issuer to check tokens against: set CLERK_PUBLISHABLE_KEY (pk_test_… or \
         pk_live_…, from Clerk's Dashboard → API keys), which gives the issuer and the \
         keys; or set CLERK_ISSUER to the Frontend API URL (https://clerk.your-domain.com) \
         with CLERK_JWKS_URL, CLERK_JWT_KEY or CLERK_SECRET_KEY"
    )]
    MissingIssuer,
    /// An OpenID Connect issuer that cannot be used; the text says why.
    #[error("{0}")]
    InvalidOidcIssuer(String),
}

/// The sentence, then the variant it came from: what `main` prints when it
/// returns this error.
impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let variant = match self {
            Self::InvalidPublishableKey => "InvalidPublishableKey",
            Self::InvalidJwtKey => "InvalidJwtKey",
            Self::MissingKeySource => "MissingKeySource",
            Self::MissingIssuer => "MissingIssuer",
            Self::InvalidOidcIssuer(_) => "InvalidOidcIssuer",
        };
        write!(f, "{self} (ConfigError::{variant})")
    }
}

impl Config {
    /// A configuration for tokens issued by `issuer` (the Frontend API URL, e.g.
    /// `https://clerk.example.com`) and verified with keys from `keys`.
    ///
    /// Defaults: clock skew 5 s, no authorized-party check, pending sessions
    /// refused, tokens up to 8 KiB, up to 64 cookies examined, 100,000 cached
    /// users for 10 minutes, 64 MiB of verified tokens, keys refreshed every
    /// 5 minutes with at most one key fetch per 10 s, fetches bounded by 5 s
    /// and 1 MiB, store calls bounded by 3 s, an eviction
    /// listener's hearing checked after 30 s of silence, with 5 s for its
    /// probe to come back. Session tokens only; no secret key; a verified
    /// API key, M2M or OAuth token served from memory for 10 s, at most 100
    /// Backend API calls per 10 s, each bounded by 5 s.
    pub fn new(issuer: impl Into<String>, keys: KeySource) -> Self {
        Self {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            keys,
            authorized_parties: Vec::new(),
            clock_skew: Duration::from_secs(5),
            allow_pending_sessions: false,
            cookie_suffix: None,
            max_token_bytes: 8 * 1024,
            max_token_lifetime: Duration::from_secs(3600),
            max_cookies: 64,
            user_cache_capacity: 100_000,
            user_cache_ttl: Duration::from_secs(600),
            token_cache_bytes: 64 * 1024 * 1024,
            profile_claims: ProfileClaims::default(),
            key_refresh_interval: Duration::from_secs(300),
            key_refetch_cooldown: Duration::from_secs(10),
            key_fetch_timeout: Duration::from_secs(5),
            max_jwks_bytes: 1024 * 1024,
            store_timeout: Duration::from_secs(3),
            eviction_heartbeat: Duration::from_secs(30),
            eviction_probe_timeout: Duration::from_secs(5),
            accepted_tokens: AcceptedTokens::SESSION,
            api_url: DEFAULT_API_URL.to_owned(),
            secret_key: None,
            machine_secret_key: None,
            credential_cache_interval: Duration::from_secs(10),
            backend_api_budget: (100, Duration::from_secs(10)),
            backend_api_timeout: Duration::from_secs(5),
            clerk: true,
            oidc_issuers: Vec::new(),
        }
    }

    /// A configuration from a publishable key (`pk_test_…` / `pk_live_…`): the
    /// issuer and the public JWKS URL are its Frontend API host, and the
    /// suffixed `__session_<suffix>` cookie is recognised.
    pub fn from_publishable_key(publishable_key: &str) -> Result<Self, ConfigError> {
        let frontend_api = frontend_api_host(publishable_key)?;
        let issuer = format!("https://{frontend_api}");
        let jwks = format!("{issuer}/.well-known/jwks.json");
        Ok(Self::new(issuer, KeySource::jwks_url(jwks))
            .with_cookie_suffix(cookie_suffix(publishable_key)))
    }

    /// Reads the configuration from the environment, with Clerk's own names:
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `CLERK_PUBLISHABLE_KEY` | derives the issuer, the public JWKS URL and the cookie suffix |
    /// | `CLERK_JWKS_URL` | keys from this URL instead |
    /// | `CLERK_JWT_KEY` | networkless: this PEM public key instead |
    /// | `CLERK_SECRET_KEY` | keys from the Backend API `/v1/jwks` when nothing above is set; verifies API keys, M2M and OAuth tokens |
    /// | `CLERK_MACHINE_SECRET_KEY` | verifies M2M tokens instead of the secret key |
    /// | `CLERK_API_URL` | Backend API base URL (default `https://api.clerk.com`) |
    /// | `CLERK_ISSUER` | the expected `iss`, overriding the derived one |
    /// | `CLERK_AUTHORIZED_PARTIES` | comma-separated origins allowed in `azp` |
    ///
    /// Precedence for keys: `CLERK_JWT_KEY`, then `CLERK_JWKS_URL`, then the
    /// publishable key, then the secret key.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    pub(crate) fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let publishable = var("CLERK_PUBLISHABLE_KEY");
        let frontend_api = publishable.as_deref().map(frontend_api_host).transpose()?;
        let derived_issuer = frontend_api.as_ref().map(|host| format!("https://{host}"));
        let issuer = var("CLERK_ISSUER")
            .or(derived_issuer.clone())
            .ok_or(ConfigError::MissingIssuer)?;
        let api = var("CLERK_API_URL").unwrap_or_else(|| DEFAULT_API_URL.to_owned());
        let secret_key = var("CLERK_SECRET_KEY");
        let keys = if let Some(pem) = var("CLERK_JWT_KEY") {
            KeySource::pem(&pem).map_err(|InvalidKey| ConfigError::InvalidJwtKey)?
        } else if let Some(url) = var("CLERK_JWKS_URL") {
            KeySource::jwks_url(url)
        } else if let Some(issuer) = derived_issuer {
            KeySource::jwks_url(format!("{issuer}/.well-known/jwks.json"))
        } else if let Some(secret) = &secret_key {
            KeySource::backend_api(&api, secret.clone())
        } else {
            return Err(ConfigError::MissingKeySource);
        };
        let mut config = Self::new(issuer, keys).with_api_url(api);
        if let Some(secret) = secret_key {
            config = config.with_secret_key(secret);
        }
        if let Some(secret) = var("CLERK_MACHINE_SECRET_KEY") {
            config = config.with_machine_secret_key(secret);
        }
        if let Some(key) = publishable.as_deref() {
            config = config.with_cookie_suffix(cookie_suffix(key));
        }
        if let Some(parties) = var("CLERK_AUTHORIZED_PARTIES") {
            config = config.with_authorized_parties(
                parties.split(',').map(str::trim).filter(|p| !p.is_empty()),
            );
        }
        Ok(config)
    }

    /// Origins allowed in the `azp` claim, matched exactly (scheme, host, port).
    /// When set, a token without `azp` is refused. Default: not checked.
    pub fn with_authorized_parties<I, S>(mut self, parties: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.authorized_parties = parties.into_iter().map(Into::into).collect();
        self
    }

    /// Tolerance for `exp`, `nbf` and `iat` against this server's clock.
    /// Default 5 s (Clerk's SDKs use the same); zero is allowed.
    pub fn with_clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// Accept sessions with `sts: "pending"`. Default: refused with
    /// `session_pending`, as Clerk's own SDKs treat them as signed out.
    pub fn allow_pending_sessions(mut self, allow: bool) -> Self {
        self.allow_pending_sessions = allow;
        self
    }

    /// Also read the `__session_<suffix>` cookie (before `__session`).
    /// [`Config::from_publishable_key`] sets it.
    pub fn with_cookie_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.cookie_suffix = Some(suffix.into());
        self
    }

    /// Largest token accepted, in bytes, checked before any decoding. Default 8 KiB.
    pub fn with_max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// The longest lifetime (`exp` − `iat`) of a session token accepted.
    /// Default 1 hour.
    ///
    /// Clerk's session tokens live 60 seconds; the Backend API can mint
    /// longer ones (up to 10 years). A token of a session that ended is
    /// refused for as long as it could be valid, so ended sessions are
    /// remembered for this long: a longer limit keeps more of them, in
    /// memory and in the database.
    pub fn with_max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_token_lifetime = lifetime;
        self
    }

    /// How many cookies are examined per request at most. Default 64.
    pub fn with_max_cookies(mut self, cookies: usize) -> Self {
        self.max_cookies = cookies;
        self
    }

    /// Bounds of the user cache (and of the organization and membership
    /// caches, each its own): entries and time to live. Default 100,000 and
    /// 10 minutes. A full cache holds about `capacity` entries and lets go of
    /// those least likely to be asked for again.
    pub fn with_user_cache(mut self, capacity: u64, ttl: Duration) -> Self {
        self.user_cache_capacity = capacity;
        self.user_cache_ttl = ttl;
        self
    }

    /// Memory bound of the verified-token cache, in bytes. Each token counts
    /// what its entry takes: its text, its decoded claims, and the cache's
    /// own bookkeeping (about 1.15 KB for a Clerk session token of 760
    /// characters). Default 64 MiB, about 58,000 such tokens.
    /// A new token that finds the cache full of unexpired ones is verified but
    /// not remembered until some expire (within a minute for Clerk's tokens).
    /// Zero disables the cache: every request then pays a signature check.
    pub fn with_token_cache_bytes(mut self, bytes: u64) -> Self {
        self.token_cache_bytes = bytes;
        self
    }

    /// Claim names holding a new user's profile. See [`ProfileClaims`].
    pub fn with_profile_claims(mut self, claims: ProfileClaims) -> Self {
        self.profile_claims = claims;
        self
    }

    /// How often the key set is refreshed in the background. Default 5 minutes.
    /// A refresh that fails is tried again after the
    /// [refetch cooldown](Self::with_key_refetch_cooldown).
    pub fn with_key_refresh_interval(mut self, interval: Duration) -> Self {
        self.key_refresh_interval = interval;
        self
    }

    /// Least time from the end of one key fetch to the start of the next,
    /// whatever asks for it: a token with an unknown `kid`, a due refresh, a
    /// readiness check or [`prefetch_keys`](crate::EnsureUserLayer::prefetch_keys).
    /// A failing endpoint is thus tried at most once per cooldown. Default 10 s.
    pub fn with_key_refetch_cooldown(mut self, cooldown: Duration) -> Self {
        self.key_refetch_cooldown = cooldown;
        self
    }

    /// Time limit of one key fetch. Default 5 s.
    pub fn with_key_fetch_timeout(mut self, timeout: Duration) -> Self {
        self.key_fetch_timeout = timeout;
        self
    }

    /// Time limit of one store call (a cache miss), whatever the pool's own
    /// acquire timeout: past it the request gets `503 store_unavailable`.
    /// Default 3 s.
    pub fn with_store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// How long an [eviction listener](crate::eviction) waits in silence
    /// before checking that it still hears: it asks its connection for
    /// `SELECT 1`, sends a notification of its own on its channel through
    /// the store's pool, and expects it back within the
    /// [probe timeout](Self::with_eviction_probe_timeout). A connection
    /// that does not answer is replaced; a listener that does not hear
    /// its own notification is deaf, and says so. While deaf, it probes
    /// again, and forgets every cached answer, once per `interval`. The
    /// check also keeps the idle connection alive through NAT and
    /// load-balancer idle timeouts; keep it below those. Default 30 s.
    pub fn with_eviction_heartbeat(mut self, interval: Duration) -> Self {
        self.eviction_heartbeat = interval;
        self
    }

    /// How long an [eviction listener](crate::eviction)'s check may take:
    /// its connection must answer, and its own notification come back,
    /// within this time. A listener that stops hearing is thus reported
    /// deaf within the [heartbeat](Self::with_eviction_heartbeat) and this
    /// timeout (35 s by default). Default 5 s.
    pub fn with_eviction_probe_timeout(mut self, timeout: Duration) -> Self {
        self.eviction_probe_timeout = timeout;
        self
    }

    /// A configuration for the tokens of OpenID Connect issuers alone, no
    /// Clerk: a JWT naming none of them is refused `401 invalid_issuer`,
    /// anything else `401 token_type_mismatch`. Defaults as [`Config::new`].
    /// Fails when an issuer cannot be used (see [`Config::with_issuer`]).
    pub fn for_issuers(issuers: impl IntoIterator<Item = Issuer>) -> Result<Self, ConfigError> {
        let mut config = Self::new("", KeySource::jwks_url(""));
        config.clerk = false;
        for issuer in issuers {
            config = config.with_issuer(issuer)?;
        }
        Ok(config)
    }

    /// Accepts the tokens of an OpenID Connect issuer too (see
    /// [`oidc`](crate::oidc)): picked by the token's `iss`, verified with
    /// that issuer's own keys and rules. Fails when the issuer is not an
    /// `https://` URL (`http://` is accepted on loopback), or is named
    /// twice.
    pub fn with_issuer(mut self, issuer: Issuer) -> Result<Self, ConfigError> {
        if let Some(problem) = issuer.problem() {
            return Err(ConfigError::InvalidOidcIssuer(problem));
        }
        let mut names = std::iter::once(&issuer.issuer).chain(&issuer.aliases);
        let taken = |name: &String| {
            (self.clerk && *name == self.issuer)
                || self.oidc_issuers.iter().any(|other| other.names(name))
        };
        if names.any(taken) {
            return Err(ConfigError::InvalidOidcIssuer(format!(
                "the issuer `{}` is configured twice: each issuer, and each of its aliases, \
                 may be named once",
                issuer.issuer
            )));
        }
        if issuer.audiences.is_empty() {
            tracing::warn!(
                target: "ensure_user::oidc",
                issuer = %issuer.issuer,
                "no audience configured: any token of this issuer is accepted, whichever \
                 API it was issued for; set one with Issuer::with_audience"
            );
        }
        self.oidc_issuers.push(issuer);
        Ok(self)
    }

    /// Whether Clerk's tokens are accepted: `false` for a configuration of
    /// [other issuers alone](Self::for_issuers).
    pub fn accepts_clerk(&self) -> bool {
        self.clerk
    }

    /// The OpenID Connect issuers whose tokens are accepted.
    pub fn oidc_issuers(&self) -> impl Iterator<Item = &str> {
        self.oidc_issuers.iter().map(Issuer::issuer)
    }

    /// The kinds of credential the layer accepts. Default: session tokens
    /// only, as Clerk's SDKs. API keys, and M2M and OAuth tokens in their
    /// opaque form, are verified by Clerk's Backend API and need
    /// [a secret key](Self::with_secret_key) (for M2M tokens,
    /// [a machine secret key](Self::with_machine_secret_key) will do).
    pub fn with_accepted_tokens(mut self, accepted: AcceptedTokens) -> Self {
        self.accepted_tokens = accepted;
        self
    }

    /// The instance's secret key (`sk_live_…`/`sk_test_…`, `CLERK_SECRET_KEY`),
    /// with which the Backend API verifies API keys, OAuth tokens and (when
    /// no machine secret key is set) M2M tokens. It does not change where
    /// session tokens' keys come from. Never shown by `Debug`.
    pub fn with_secret_key(mut self, secret_key: impl Into<String>) -> Self {
        self.secret_key = Some(secret_key.into());
        self
    }

    /// A machine's secret key (`CLERK_MACHINE_SECRET_KEY`), with which the
    /// Backend API verifies M2M tokens instead of the secret key: only
    /// tokens granted access to that machine are then accepted. Never shown
    /// by `Debug`.
    pub fn with_machine_secret_key(mut self, secret_key: impl Into<String>) -> Self {
        self.machine_secret_key = Some(secret_key.into());
        self
    }

    /// The Backend API's base URL (`CLERK_API_URL`) for verifying API keys,
    /// M2M and OAuth tokens. Default `https://api.clerk.com`.
    pub fn with_api_url(mut self, url: impl Into<String>) -> Self {
        self.api_url = url.into();
        self
    }

    /// How long a verified API key, M2M or OAuth token (opaque form) is
    /// served from memory without asking Clerk again; never past its own
    /// expiration. Clerk sends no webhook when one is revoked: this is how
    /// long a revoked credential may still be accepted, against one Backend
    /// API call per credential per interval. Default 10 s.
    pub fn with_credential_cache_interval(mut self, interval: Duration) -> Self {
        self.credential_cache_interval = interval;
        self
    }

    /// At most `calls` Backend API verifications within any `per`, in this
    /// process; past it a credential not verified yet is refused
    /// `503 verification_unavailable` at once, without a call, so that a
    /// flood of made-up credentials cannot spend the instance's rate limit
    /// (1,000 calls per 10 s in production, shared by the whole app and
    /// every process). Concurrent verifications of one credential are one
    /// call, and credentials Clerk does not know are remembered for 10 s.
    /// Default 100 per 10 s.
    pub fn with_backend_api_budget(mut self, calls: usize, per: Duration) -> Self {
        self.backend_api_budget = (calls, per);
        self
    }

    /// Time limit of one Backend API verification; past it the request
    /// gets `503 verification_unavailable`. Default 5 s.
    pub fn with_backend_api_timeout(mut self, timeout: Duration) -> Self {
        self.backend_api_timeout = timeout;
        self
    }

    /// The expected `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The kinds of credential the layer accepts.
    pub fn accepted_tokens(&self) -> AcceptedTokens {
        self.accepted_tokens
    }

    /// The Backend API's base URL: opaque credentials are verified there.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// What the verification of opaque machine credentials follows.
    pub(crate) fn machine_rules(&self) -> MachineRules {
        let (budget_calls, budget_window) = self.backend_api_budget;
        MachineRules {
            api_url: self.api_url.clone(),
            secret_key: self.secret_key.clone(),
            machine_secret_key: self.machine_secret_key.clone(),
            call_timeout: self.backend_api_timeout,
            not_found_for: CREDENTIAL_REFUSAL_MEMORY,
            not_found_capacity: CREDENTIAL_REFUSAL_CAPACITY,
            budget_calls,
            budget_window,
        }
    }

    /// What the key store needs: where keys come from, and how they are
    /// fetched and kept fresh.
    pub(crate) fn key_rules(&self) -> KeyRules {
        KeyRules {
            source: self.keys.clone(),
            refresh_interval: self.key_refresh_interval,
            refetch_cooldown: self.key_refetch_cooldown,
            fetch_timeout: self.key_fetch_timeout,
            max_body: self.max_jwks_bytes,
        }
    }

    /// What the session-token verifier needs: Clerk's claim rules as
    /// configured, and the token size bound.
    pub(crate) fn verifier_rules(&self) -> VerifierRules {
        VerifierRules {
            issuer: std::sync::Arc::new(self.issuer.clone()),
            authorized_parties: self.authorized_parties.clone(),
            skew_ms: self.skew_ms(),
            max_lifetime_ms: self.max_token_lifetime_ms(),
            allow_pending: self.allow_pending_sessions,
            max_token_bytes: self.max_token_bytes,
        }
    }

    /// The longest token lifetime accepted, in milliseconds.
    pub(crate) fn max_token_lifetime_ms(&self) -> i64 {
        i64::try_from(self.max_token_lifetime.as_millis()).unwrap_or(i64::MAX / 4)
    }

    /// The clock skew in milliseconds.
    pub(crate) fn skew_ms(&self) -> i64 {
        i64::try_from(self.clock_skew.as_millis()).unwrap_or(i64::MAX / 4)
    }
}

/// Never shows secrets: key material and bearer secrets are redacted.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("issuer", &self.issuer)
            .field("keys", &self.keys)
            .field("authorized_parties", &self.authorized_parties)
            .field("clock_skew", &self.clock_skew)
            .field("allow_pending_sessions", &self.allow_pending_sessions)
            .field("cookie_suffix", &self.cookie_suffix)
            .field(
                "oidc_issuers",
                &self
                    .oidc_issuers
                    .iter()
                    .map(Issuer::issuer)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// The Frontend API host encoded in a publishable key: `pk_(test|live)_` +
/// base64(`<host>$`).
pub(crate) fn frontend_api_host(publishable_key: &str) -> Result<String, ConfigError> {
    let encoded = publishable_key
        .trim()
        .strip_prefix("pk_test_")
        .or_else(|| publishable_key.trim().strip_prefix("pk_live_"))
        .ok_or(ConfigError::InvalidPublishableKey)?;
    let decoded = STANDARD_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .map_err(|_| ConfigError::InvalidPublishableKey)?;
    let text = String::from_utf8(decoded).map_err(|_| ConfigError::InvalidPublishableKey)?;
    let host = text
        .strip_suffix('$')
        .ok_or(ConfigError::InvalidPublishableKey)?;
    let valid = host.contains('.')
        && !host.contains('$')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
    if !valid {
        return Err(ConfigError::InvalidPublishableKey);
    }
    Ok(host.to_owned())
}

/// Clerk's cookie suffix: the first 8 characters of URL-safe base64 of
/// SHA-1 over the publishable key.
pub(crate) fn cookie_suffix(publishable_key: &str) -> String {
    let hash = digest::digest(
        &digest::SHA1_FOR_LEGACY_USE_ONLY,
        publishable_key.trim().as_bytes(),
    );
    let mut suffix = URL_SAFE_NO_PAD.encode(hash.as_ref());
    suffix.truncate(8);
    suffix
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn cookie_suffix_matches_clerk_vectors() {
        let vectors = [
            (
                "pk_live_ZmFrZS1jbGVyay10ZXN0LmNsZXJrLmFjY291bnRzLmRldiQ=",
                "qReyu04C",
            ),
            ("pk_test_Y2xlcmsuY2xlcmsuZGV2JA", "QvfNY2dr"),
            (
                "pk_test_ZW5vdWdoLWFscGFjYS04Mi5jbGVyay5hY2NvdW50cy5sY2xjbGVyay5jb20k",
                "jtYvyt_H",
            ),
            (
                "pk_test_eHh4eHh4LXhhYWFhYS1hYS5jbGVyay5hY2NvdW50cy5sY2xjbGVyay5jb20k",
                "tZJdb-5s",
            ),
        ];
        for (key, suffix) in vectors {
            assert_eq!(cookie_suffix(key), suffix, "{key}");
        }
    }

    #[test]
    fn publishable_key_gives_issuer_and_jwks() {
        let config =
            Config::from_publishable_key("pk_test_Y2xlcmsuaW5zcGlyZWQucHVtYS03NC5sY2wuZGV2JA")
                .unwrap();
        assert_eq!(config.issuer(), "https://clerk.inspired.puma-74.lcl.dev");
        assert!(
            format!("{:?}", config.keys)
                .contains("https://clerk.inspired.puma-74.lcl.dev/.well-known/jwks.json")
        );
        let padded =
            frontend_api_host("pk_live_ZmFrZS1jbGVyay10ZXN0LmNsZXJrLmFjY291bnRzLmRldiQ=").unwrap();
        assert_eq!(padded, "fake-clerk-test.clerk.accounts.dev");
    }

    #[test]
    fn bad_publishable_keys_are_refused() {
        for key in [
            "",
            "pk_test_",
            "sk_test_Y2xlcmsuY2xlcmsuZGV2JA",
            "pk_test_!!!",
            "pk_test_bm9kb2xsYXI", // "nodollar"
            "pk_test_bm9kb3Qk",    // "nodot$"
        ] {
            assert!(Config::from_publishable_key(key).is_err(), "{key}");
        }
    }

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn environment_precedence() {
        let config = Config::from_lookup(lookup(&[
            ("CLERK_PUBLISHABLE_KEY", "pk_test_Y2xlcmsuY2xlcmsuZGV2JA"),
            ("CLERK_JWKS_URL", "http://127.0.0.1:9/jwks"),
            ("CLERK_ISSUER", "https://issuer.example/"),
            (
                "CLERK_AUTHORIZED_PARTIES",
                "https://a.example, https://b.example,",
            ),
        ]))
        .unwrap();
        assert_eq!(config.issuer, "https://issuer.example");
        assert!(format!("{:?}", config.keys).contains("http://127.0.0.1:9/jwks"));
        assert_eq!(
            config.authorized_parties,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(config.cookie_suffix.as_deref(), Some("QvfNY2dr"));
    }

    #[test]
    fn environment_errors_are_explicit() {
        assert!(matches!(
            Config::from_lookup(lookup(&[])),
            Err(ConfigError::MissingIssuer)
        ));
        assert!(matches!(
            Config::from_lookup(lookup(&[("CLERK_ISSUER", "https://x.example")])),
            Err(ConfigError::MissingKeySource)
        ));
        let secret_only = Config::from_lookup(lookup(&[
            ("CLERK_ISSUER", "https://x.example"),
            ("CLERK_SECRET_KEY", "sk_test_supersecret"),
        ]))
        .unwrap();
        let shown = format!("{secret_only:?}");
        assert!(shown.contains("https://api.clerk.com/v1/jwks"));
        assert!(!shown.contains("supersecret"), "{shown}");
    }

    /// Every way `from_lookup` can fail, and what it says: the variable to
    /// set or fix, in `Display` and in `Debug` (what `main` prints).
    #[test]
    fn every_environment_error_says_what_to_set() {
        const MISSING_ISSUER: &str = "no issuer to check tokens against: set \
            CLERK_PUBLISHABLE_KEY (pk_test_… or pk_live_…, from Clerk's Dashboard → API keys), \
            which gives the issuer and the keys; or set CLERK_ISSUER to the Frontend API URL \
            (https://clerk.your-domain.com) with CLERK_JWKS_URL, CLERK_JWT_KEY or CLERK_SECRET_KEY";
        const MISSING_KEY_SOURCE: &str = "no source of Clerk's signing keys: set \
            CLERK_PUBLISHABLE_KEY (pk_test_… or pk_live_…, from Clerk's Dashboard → API keys), \
            or one of CLERK_JWKS_URL, CLERK_JWT_KEY or CLERK_SECRET_KEY";
        const INVALID_PUBLISHABLE_KEY: &str = "CLERK_PUBLISHABLE_KEY is not a Clerk \
            publishable key: copy the key that starts with pk_test_ or pk_live_ from Clerk's \
            Dashboard (Configure → API keys), whole";
        const INVALID_JWT_KEY: &str = "CLERK_JWT_KEY is not an RSA public key: paste the PEM \
            public key from Clerk's Dashboard (Configure → API keys → JWT public key), or unset \
            CLERK_JWT_KEY to fetch keys through CLERK_PUBLISHABLE_KEY instead";
        /// The variables set, the sentence, the variant.
        type Case = (
            &'static [(&'static str, &'static str)],
            &'static str,
            &'static str,
        );
        let cases: [Case; 6] = [
            (&[], MISSING_ISSUER, "MissingIssuer"),
            (
                &[("CLERK_JWKS_URL", "https://x.example/jwks")],
                MISSING_ISSUER,
                "MissingIssuer",
            ),
            (
                &[("CLERK_SECRET_KEY", "sk_test_supersecret")],
                MISSING_ISSUER,
                "MissingIssuer",
            ),
            (
                &[("CLERK_ISSUER", "https://x.example")],
                MISSING_KEY_SOURCE,
                "MissingKeySource",
            ),
            (
                &[("CLERK_PUBLISHABLE_KEY", "sk_test_Y2xlcmsuY2xlcmsuZGV2JA")],
                INVALID_PUBLISHABLE_KEY,
                "InvalidPublishableKey",
            ),
            (
                &[
                    ("CLERK_ISSUER", "https://x.example"),
                    ("CLERK_JWT_KEY", "not a key"),
                ],
                INVALID_JWT_KEY,
                "InvalidJwtKey",
            ),
        ];
        for (vars, sentence, variant) in cases {
            let error = Config::from_lookup(lookup(vars)).unwrap_err();
            assert_eq!(error.to_string(), sentence, "{vars:?}");
            assert_eq!(
                format!("{error:?}"),
                format!("{sentence} (ConfigError::{variant})"),
                "{vars:?}"
            );
        }
        // Set without an issuer, the URL alone is not enough: the error
        // names both ways to give one.
        let jwks_only = Config::from_lookup(lookup(&[("CLERK_JWKS_URL", "https://x.example/j")]))
            .unwrap_err()
            .to_string();
        assert!(
            jwks_only.contains("set CLERK_ISSUER") && jwks_only.contains("CLERK_PUBLISHABLE_KEY"),
            "{jwks_only}"
        );
    }

    #[test]
    fn machine_credentials_from_the_environment() {
        let config = Config::from_lookup(lookup(&[
            ("CLERK_PUBLISHABLE_KEY", "pk_test_Y2xlcmsuY2xlcmsuZGV2JA"),
            ("CLERK_SECRET_KEY", "sk_test_supersecret"),
            ("CLERK_MACHINE_SECRET_KEY", "ak_machinesecret"),
            ("CLERK_API_URL", "http://127.0.0.1:9"),
            ("ENSURE_USER_ACCEPTS_TOKEN", "any"),
        ]))
        .unwrap();
        // The publishable key still decides where session keys come from.
        assert!(format!("{:?}", config.keys).contains("clerk.clerk.dev/.well-known/jwks.json"));
        // The quickstart's variable is not the library's.
        assert_eq!(config.accepted_tokens(), AcceptedTokens::SESSION);
        let rules = config.machine_rules();
        assert_eq!(rules.api_url, "http://127.0.0.1:9");
        assert_eq!(rules.secret_key.as_deref(), Some("sk_test_supersecret"));
        assert_eq!(
            rules.machine_secret_key.as_deref(),
            Some("ak_machinesecret")
        );
        let shown = format!("{config:?}");
        assert!(!shown.contains("supersecret") && !shown.contains("machinesecret"));

        let defaults = Config::from_lookup(lookup(&[(
            "CLERK_PUBLISHABLE_KEY",
            "pk_test_Y2xlcmsuY2xlcmsuZGV2JA",
        )]))
        .unwrap()
        .machine_rules();
        assert_eq!(defaults.api_url, DEFAULT_API_URL);
        assert!(defaults.secret_key.is_none() && defaults.machine_secret_key.is_none());
        assert_eq!(
            (defaults.budget_calls, defaults.budget_window),
            (100, Duration::from_secs(10))
        );
        assert_eq!(defaults.not_found_for, Duration::from_secs(10));
        assert_eq!(defaults.not_found_capacity, 10_000);
    }

    #[test]
    fn machine_credential_setters() {
        let config = Config::new(
            "https://x.example",
            KeySource::jwks_url("https://x.example/j"),
        )
        .with_accepted_tokens(AcceptedTokens::ANY)
        .with_secret_key("sk_test_1")
        .with_credential_cache_interval(Duration::from_secs(30))
        .with_backend_api_budget(5, Duration::from_secs(1))
        .with_backend_api_timeout(Duration::from_millis(250));
        assert_eq!(config.accepted_tokens(), AcceptedTokens::ANY);
        assert_eq!(config.credential_cache_interval, Duration::from_secs(30));
        let rules = config.machine_rules();
        assert_eq!(
            (rules.budget_calls, rules.budget_window),
            (5, Duration::from_secs(1))
        );
        assert_eq!(rules.call_timeout, Duration::from_millis(250));
        assert_eq!(rules.secret_key.as_deref(), Some("sk_test_1"));
    }
}
