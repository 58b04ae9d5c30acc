//! A fake Clerk Backend API on loopback: `GET /v1/users` (paged by `limit`,
//! `offset`, `starting_after`, `order_by`), `/v1/users/count` and
//! `/v1/users/{id}`, `GET /v1/organizations` and
//! `/v1/organizations/{id}/memberships` (paged by `limit`, `offset`,
//! `order_by`, with `total_count`), behind the secret key, with rate limits
//! and failures a test can switch on; and the verification of API keys,
//! M2M and OAuth tokens (`POST /api_keys/verify`, `/m2m_tokens/verify`,
//! `/oauth_applications/access_tokens/verify`, without `/v1` as Clerk's SDK
//! calls them) against credentials a test adds, with failures of their own.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, Query, RawQuery, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

/// The secret key the fake accepts.
pub const SECRET: &str = "sk_test_FAKEsecret0That0Must0Never0Be0Shown";

/// The machine secret key the fake accepts for M2M tokens: that of
/// [`MACHINE_ID`].
pub const MACHINE_SECRET: &str = "ak_FAKEmachine0secret0That0Must0Never0Be0Shown";

/// The machine whose secret key is [`MACHINE_SECRET`]. With that key, only
/// M2M tokens that list it in their scopes are found.
pub const MACHINE_ID: &str = "mch_2xhFjEI5X2qWRvtV13BzSj8H6Dk";

/// One user as the fake serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeUser {
    pub id: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub image_url: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl FakeUser {
    /// The user object, shaped (and about as large) as Clerk's.
    pub fn to_json(&self) -> Value {
        let email_id = format!("idn_{}", &self.id[5..]);
        let emails: Vec<Value> = self
            .email
            .iter()
            .map(|address| {
                json!({
                    "id": email_id, "object": "email_address", "email_address": address,
                    "reserved": false,
                    "verification": {"status": "verified", "strategy": "email_code",
                                     "attempts": null, "expire_at": null},
                    "linked_to": [], "matches_sso_connection": false,
                    "created_at": self.created_at, "updated_at": self.created_at
                })
            })
            .collect();
        json!({
            "id": self.id, "object": "user", "username": null,
            "first_name": self.first_name, "last_name": self.last_name,
            "image_url": self.image_url, "has_image": self.image_url.is_some(),
            "primary_email_address_id": self.email.as_ref().map(|_| &email_id),
            "primary_phone_number_id": null, "primary_web3_wallet_id": null,
            "password_enabled": true, "two_factor_enabled": false, "totp_enabled": false,
            "backup_code_enabled": false, "email_addresses": emails, "phone_numbers": [],
            "web3_wallets": [], "passkeys": [], "external_accounts": [], "saml_accounts": [],
            "enterprise_accounts": [], "public_metadata": {"plan": "free"},
            "private_metadata": {}, "unsafe_metadata": {}, "external_id": null,
            "last_sign_in_at": self.updated_at, "banned": false, "locked": false,
            "lockout_expires_in_seconds": null, "verification_attempts_remaining": 100,
            "created_at": self.created_at, "updated_at": self.updated_at,
            "delete_self_enabled": true, "create_organization_enabled": true,
            "last_active_at": self.updated_at, "mfa_enabled_at": null,
            "mfa_disabled_at": null, "legal_accepted_at": null
        })
    }
}

#[cfg(all(feature = "postgres", feature = "sqlite"))]
impl FakeUser {
    /// The row a store holds for this user once synced.
    pub fn row(&self) -> super::Row {
        (
            self.id.clone(),
            self.email.clone(),
            self.first_name.clone(),
            self.last_name.clone(),
            self.image_url.clone(),
            Some(self.updated_at),
        )
    }
}

/// `count` users created one second apart, every fifth without an email
/// and every seventh without names.
pub fn fake_users(count: usize) -> Vec<FakeUser> {
    (0..count)
        .map(|n| {
            let named = n % 7 != 3;
            let created_at = 1_700_000_000_000 + n as i64 * 1000;
            FakeUser {
                id: format!("user_{n:027}"),
                email: (n % 5 != 4).then(|| format!("person{n}@example.com")),
                first_name: named.then(|| format!("First{n}")),
                last_name: named.then(|| format!("Last{n}")),
                image_url: Some(format!("https://img.example.com/{n}.png")),
                created_at,
                updated_at: created_at + 500,
            }
        })
        .collect()
}

/// One organization as the fake serves it, with its members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeOrganization {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Its members: user id, role, and the membership's `updated_at`.
    pub members: Vec<(String, String, i64)>,
}

impl FakeOrganization {
    /// The organization object, shaped as Clerk's.
    pub fn to_json(&self) -> Value {
        json!({
            "object": "organization", "id": self.id, "name": self.name, "slug": self.slug,
            "image_url": "https://img.clerk.com/org", "has_image": false,
            "members_count": self.members.len(), "max_allowed_memberships": 5,
            "admin_delete_enabled": true, "public_metadata": {}, "private_metadata": {},
            "created_by": "", "created_at": self.created_at, "updated_at": self.updated_at
        })
    }

    /// Its memberships, oldest first, shaped as Clerk's.
    pub fn memberships_json(&self) -> Vec<Value> {
        self.members
            .iter()
            .enumerate()
            .map(|(n, (user_id, role, updated_at))| {
                json!({
                    "object": "organization_membership",
                    "id": format!("orgmem_{n}_{}", self.id), "role": role, "role_name": role,
                    "permissions": [], "public_metadata": {}, "private_metadata": {},
                    "organization": self.to_json(),
                    "public_user_data": {"user_id": user_id, "first_name": null,
                        "last_name": null, "image_url": "", "has_image": false,
                        "identifier": format!("{user_id}@example.com")},
                    "created_at": self.created_at + n as i64, "updated_at": updated_at
                })
            })
            .collect()
    }
}

/// `count` organizations, oldest first, each with `members` of `users` as
/// members (the first an admin), cycling through them.
pub fn fake_organizations(
    count: usize,
    members: usize,
    users: &[FakeUser],
) -> Vec<FakeOrganization> {
    (0..count)
        .map(|n| {
            let created_at = 1_700_000_000_000 + n as i64 * 1000;
            FakeOrganization {
                id: format!("org_{n:027}"),
                name: format!("Org {n}"),
                slug: format!("org-{n}"),
                created_at,
                updated_at: created_at + 500,
                members: (0..members)
                    .map(|m| {
                        let user = &users[(n + m) % users.len()];
                        let role = if m == 0 { "org:admin" } else { "org:member" };
                        (user.id.clone(), role.to_owned(), created_at + 600)
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Failures the fake can be told to serve.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Every n-th request answers `429` with `Retry-After: retry_after_secs`.
    pub rate_limit_every: Option<usize>,
    pub retry_after_secs: u64,
    /// Every n-th request (not rate limited) answers a `5xx`.
    pub fail_every: Option<usize>,
    /// Once this many list pages were served, every request answers `503`.
    pub fail_after_pages: Option<usize>,
    /// Every request answers `500`.
    pub down: bool,
    /// `starting_after` is refused with `422`.
    pub no_cursor: bool,
    /// `GET /v1/users/{id}` answers this much later.
    pub user_delay: Option<std::time::Duration>,
    /// Once this many list pages were served, `GET /v1/users` never answers.
    pub hang_after_pages: Option<usize>,
    /// `GET /v1/organizations` answers this status and Clerk error code.
    pub organizations_error: Option<(StatusCode, &'static str)>,
}

/// The kinds of machine credential the fake verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    ApiKey,
    M2mToken,
    OauthToken,
}

/// One machine credential the fake knows, by its secret.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeCredential {
    pub kind: CredentialKind,
    /// `ak_…`, `mt_…` or `oat_…` and 32 hex digits.
    pub id: String,
    /// `user_…`, `org_…` or `mch_…`.
    pub subject: String,
    pub scopes: Vec<String>,
    /// An API key's name.
    pub name: Option<String>,
    /// An OAuth token's application.
    pub client_id: Option<String>,
    /// An API key's or M2M token's custom claims.
    pub claims: Option<Value>,
    /// Unix milliseconds; `None`: never expires.
    pub expiration: Option<i64>,
    pub revoked: bool,
}

impl FakeCredential {
    /// Whether it has expired at `now_ms`.
    fn expired(&self, now_ms: i64) -> bool {
        self.expiration.is_some_and(|at| at <= now_ms)
    }

    /// The verification endpoint's `200` body, shaped as Clerk's.
    pub fn to_json(&self, now_ms: i64) -> Value {
        let created_at = 1_700_000_000_000_i64;
        let common = json!({
            "id": self.id, "subject": self.subject, "scopes": self.scopes,
            "revoked": self.revoked,
            "revocation_reason": self.revoked.then_some("revoked by a test"),
            "expired": self.expired(now_ms), "expiration": self.expiration,
            "created_at": created_at, "updated_at": created_at
        });
        let specific = match self.kind {
            CredentialKind::ApiKey => json!({
                "object": "api_key", "type": "api_key", "name": self.name,
                "description": null, "claims": self.claims,
                "created_by": self.subject.starts_with("user_").then_some(&self.subject),
                "last_used_at": null
            }),
            CredentialKind::M2mToken => json!({
                "object": "machine_to_machine_token", "claims": self.claims,
                "last_used_at": null
            }),
            CredentialKind::OauthToken => json!({
                "object": "clerk_idp_oauth_access_token", "client_id": self.client_id
            }),
        };
        let (Value::Object(mut body), Value::Object(more)) = (common, specific) else {
            unreachable!("both are objects")
        };
        body.extend(more);
        Value::Object(body)
    }
}

/// Failures of the verification endpoints, whatever the credential.
#[derive(Clone, Debug, Default)]
pub struct VerifyFaults {
    /// Every verification answers this status with a Clerk error body
    /// (`401`, `403`, `500`, …).
    pub status: Option<StatusCode>,
    /// Every verification answers `429` with `Retry-After` of these seconds.
    pub rate_limited_for: Option<u64>,
    /// Every verification answers this much later.
    pub delay: Option<Duration>,
    /// A revoked or expired credential answers `200` with `revoked` or
    /// `expired` set (an expired OAuth token `{"active": false}`), as the
    /// schema allows, instead of the `404` Clerk documents.
    pub flags_in_body: bool,
}

struct Fake {
    users: Mutex<Vec<FakeUser>>,
    organizations: Mutex<Vec<FakeOrganization>>,
    faults: Mutex<Faults>,
    requests: AtomicUsize,
    pages: AtomicUsize,
    queries: Mutex<Vec<String>>,
    credentials: Mutex<HashMap<String, FakeCredential>>,
    verify_faults: Mutex<VerifyFaults>,
    verify_calls: AtomicUsize,
}

/// A running fake Backend API.
#[derive(Clone)]
pub struct FakeClerk {
    pub addr: SocketAddr,
    fake: Arc<Fake>,
}

impl FakeClerk {
    pub async fn start(users: Vec<FakeUser>) -> Self {
        let fake = Arc::new(Fake {
            users: Mutex::new(users),
            organizations: Mutex::new(Vec::new()),
            faults: Mutex::new(Faults::default()),
            requests: AtomicUsize::new(0),
            pages: AtomicUsize::new(0),
            queries: Mutex::new(Vec::new()),
            credentials: Mutex::new(HashMap::new()),
            verify_faults: Mutex::new(VerifyFaults::default()),
            verify_calls: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/v1/users", get(list))
            .route("/v1/users/count", get(count))
            .route("/v1/users/{id}", get(one))
            .route("/v1/organizations", get(list_organizations))
            .route("/v1/organizations/{id}/memberships", get(list_memberships))
            .route("/api_keys/verify", post(verify_api_key))
            .route("/m2m_tokens/verify", post(verify_m2m_token))
            .route(
                "/oauth_applications/access_tokens/verify",
                post(verify_oauth_token),
            )
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, fake }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.fake.faults.lock().unwrap() = faults;
        self.fake.pages.store(0, Ordering::SeqCst);
    }

    pub fn users(&self) -> Vec<FakeUser> {
        self.fake.users.lock().unwrap().clone()
    }

    /// The users' ids, in creation order.
    pub fn ids(&self) -> Vec<String> {
        self.users().into_iter().map(|user| user.id).collect()
    }

    /// The rows a store holds once every user is synced, by clerk id.
    #[cfg(all(feature = "postgres", feature = "sqlite"))]
    pub fn rows(&self) -> Vec<super::Row> {
        let mut rows: Vec<super::Row> = self.users().iter().map(FakeUser::row).collect();
        rows.sort();
        rows
    }

    /// A client for this fake that retries quickly.
    #[cfg(feature = "clerk-api")]
    pub fn client(&self) -> ensure_user::clerk_api::ClerkApi {
        use ensure_user::clerk_api::{ClerkApi, RetryPolicy};
        use std::time::Duration;
        ClerkApi::new(SECRET)
            .unwrap()
            .with_api_url(&self.url())
            .unwrap()
            .with_retry(
                RetryPolicy::new(5)
                    .with_backoff(Duration::from_millis(5), Duration::from_millis(20)),
            )
    }

    /// The organizations served (kept in the order given: oldest first).
    pub fn set_organizations(&self, organizations: Vec<FakeOrganization>) {
        *self.fake.organizations.lock().unwrap() = organizations;
    }

    pub fn organizations(&self) -> Vec<FakeOrganization> {
        self.fake.organizations.lock().unwrap().clone()
    }

    /// Changes the users (kept in creation order).
    pub fn edit(&self, change: impl FnOnce(&mut Vec<FakeUser>)) {
        let mut users = self.fake.users.lock().unwrap();
        change(&mut users);
        users.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    }

    /// Requests answered, whatever the answer.
    pub fn requests(&self) -> usize {
        self.fake.requests.load(Ordering::SeqCst)
    }

    /// The query strings of every `GET /v1/users`, in order.
    pub fn list_queries(&self) -> Vec<String> {
        self.fake.queries.lock().unwrap().clone()
    }

    /// An API key with this secret (`ak_…`) for `subject` (`user_…`,
    /// `org_…` or `mch_…`); its id.
    pub fn add_api_key(&self, secret: &str, subject: &str, scopes: &[&str], name: &str) -> String {
        self.add_credential(
            secret,
            CredentialKind::ApiKey,
            subject,
            scopes,
            |credential| {
                credential.name = Some(name.to_owned());
            },
        )
    }

    /// An opaque OAuth access token (`oat_…`) issued to `client_id` for
    /// `user_id`; its id.
    pub fn add_oauth_token(
        &self,
        token: &str,
        user_id: &str,
        client_id: &str,
        scopes: &[&str],
    ) -> String {
        self.add_credential(
            token,
            CredentialKind::OauthToken,
            user_id,
            scopes,
            |credential| {
                credential.client_id = Some(client_id.to_owned());
                credential.expiration = Some(now_ms() + 86_400_000);
            },
        )
    }

    /// An opaque M2M token (`mt_…`) of `machine_id`, allowed to call the
    /// machines in `scopes` (list [`MACHINE_ID`] for it to be found with
    /// [`MACHINE_SECRET`]); its id.
    pub fn add_m2m_token(&self, token: &str, machine_id: &str, scopes: &[&str]) -> String {
        self.add_credential(
            token,
            CredentialKind::M2mToken,
            machine_id,
            scopes,
            |credential| {
                credential.expiration = Some(now_ms() + 3_600_000);
            },
        )
    }

    fn add_credential(
        &self,
        secret: &str,
        kind: CredentialKind,
        subject: &str,
        scopes: &[&str],
        finish: impl FnOnce(&mut FakeCredential),
    ) -> String {
        let mut credentials = self.fake.credentials.lock().unwrap();
        let prefix = match kind {
            CredentialKind::ApiKey => "ak",
            CredentialKind::M2mToken => "mt",
            CredentialKind::OauthToken => "oat",
        };
        let mut credential = FakeCredential {
            kind,
            id: format!("{prefix}_{:032x}", credentials.len() + 1),
            subject: subject.to_owned(),
            scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
            name: None,
            client_id: None,
            claims: None,
            expiration: None,
            revoked: false,
        };
        finish(&mut credential);
        let id = credential.id.clone();
        credentials.insert(secret.to_owned(), credential);
        id
    }

    /// Changes the credential with this secret (claims, expiration, …).
    pub fn edit_credential(&self, secret: &str, change: impl FnOnce(&mut FakeCredential)) {
        let mut credentials = self.fake.credentials.lock().unwrap();
        change(
            credentials
                .get_mut(secret)
                .expect("a credential the test added"),
        );
    }

    /// Revokes the credential with this secret: verifying it answers `404`
    /// (or `revoked: true`, see [`VerifyFaults::flags_in_body`]).
    pub fn revoke(&self, secret: &str) {
        self.edit_credential(secret, |credential| credential.revoked = true);
    }

    pub fn set_verify_faults(&self, faults: VerifyFaults) {
        *self.fake.verify_faults.lock().unwrap() = faults;
    }

    /// Verification requests answered, whatever the answer.
    pub fn verify_calls(&self) -> usize {
        self.fake.verify_calls.load(Ordering::SeqCst)
    }
}

fn now_ms() -> i64 {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(elapsed.as_millis()).unwrap()
}

fn clerk_error(status: StatusCode, code: &str, message: &str) -> Response {
    clerk_error_with(status, code, message, message)
}

fn clerk_error_with(status: StatusCode, code: &str, message: &str, long_message: &str) -> Response {
    let body = json!({
        "errors": [{"message": message, "long_message": long_message, "code": code, "meta": {}}],
        "clerk_trace_id": "trace_fake"
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Authentication, then the faults in force; `Some` answers instead of the endpoint.
fn refuse(fake: &Fake, headers: &HeaderMap) -> Option<Response> {
    let n = fake.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let expected = format!("Bearer {SECRET}");
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(&expected)
    {
        return Some(clerk_error(
            StatusCode::UNAUTHORIZED,
            "clerk_key_invalid",
            "The provided Clerk Secret Key is invalid.",
        ));
    }
    let faults = fake.faults.lock().unwrap().clone();
    let server_error = |status| Some(clerk_error(status, "internal_error", "try again"));
    if faults.down {
        return server_error(StatusCode::INTERNAL_SERVER_ERROR);
    }
    if faults
        .fail_after_pages
        .is_some_and(|pages| fake.pages.load(Ordering::SeqCst) >= pages)
    {
        return server_error(StatusCode::SERVICE_UNAVAILABLE);
    }
    if faults
        .rate_limit_every
        .is_some_and(|every| n.is_multiple_of(every))
    {
        let mut response = clerk_error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "Too many requests",
        );
        response.headers_mut().insert(
            header::RETRY_AFTER,
            faults.retry_after_secs.to_string().parse().unwrap(),
        );
        return Some(response);
    }
    if faults
        .fail_every
        .is_some_and(|every| n.is_multiple_of(every))
    {
        let status = [StatusCode::BAD_GATEWAY, StatusCode::INTERNAL_SERVER_ERROR][n % 2];
        return server_error(status);
    }
    None
}

async fn list(
    State(fake): State<Arc<Fake>>,
    RawQuery(raw): RawQuery,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = refuse(&fake, &headers) {
        return refusal;
    }
    let hang_after = fake.faults.lock().unwrap().hang_after_pages;
    if hang_after.is_some_and(|pages| fake.pages.load(Ordering::SeqCst) >= pages) {
        std::future::pending::<()>().await;
    }
    let raw = raw.unwrap_or_default();
    fake.queries.lock().unwrap().push(raw.clone());
    let mut limit = 10;
    let mut offset = 0;
    let mut starting_after = None;
    let mut ascending = false;
    for (key, value) in params {
        let invalid = || {
            clerk_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "form_param_format_invalid",
                &key,
            )
        };
        match key.as_str() {
            "limit" => match value.parse() {
                Ok(n @ 1..=500) => limit = n,
                _ => return invalid(),
            },
            "offset" => match value.parse() {
                Ok(n) => offset = n,
                Err(_) => return invalid(),
            },
            "starting_after" => starting_after = Some(value),
            "order_by" => match value.as_str() {
                "created_at" | "+created_at" => ascending = true,
                "-created_at" => ascending = false,
                _ => return invalid(),
            },
            _ => {}
        }
    }
    let no_cursor = fake.faults.lock().unwrap().no_cursor;
    let mut users = fake.users.lock().unwrap().clone();
    if !ascending {
        users.reverse();
    }
    let start = match starting_after {
        Some(_) if no_cursor || offset > 0 => {
            return clerk_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "form_param_format_invalid",
                "starting_after",
            );
        }
        Some(id) => match users.iter().position(|user| user.id == id) {
            Some(index) => index + 1,
            None => {
                return clerk_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "form_param_value_invalid",
                    "starting_after",
                );
            }
        },
        None => offset,
    };
    let page: Vec<Value> = users
        .iter()
        .skip(start)
        .take(limit)
        .map(FakeUser::to_json)
        .collect();
    fake.pages.fetch_add(1, Ordering::SeqCst);
    (
        [(header::CONTENT_TYPE, "application/json")],
        Value::Array(page).to_string(),
    )
        .into_response()
}

async fn count(State(fake): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refuse(&fake, &headers) {
        return refusal;
    }
    let total = fake.users.lock().unwrap().len();
    axum::Json(json!({"object": "total_count", "total_count": total})).into_response()
}

async fn one(
    State(fake): State<Arc<Fake>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = refuse(&fake, &headers) {
        return refusal;
    }
    let delay = fake.faults.lock().unwrap().user_delay;
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let user = fake
        .users
        .lock()
        .unwrap()
        .iter()
        .find(|user| user.id == id)
        .cloned();
    match user {
        Some(user) => axum::Json(user.to_json()).into_response(),
        None => clerk_error(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            &format!("No user was found with id {id}"),
        ),
    }
}

/// `limit`, `offset` and ascending order from a list query, or the name
/// of the parameter to refuse.
fn offset_query(params: &[(String, String)]) -> Result<(usize, usize, bool), String> {
    let (mut limit, mut offset, mut ascending) = (10, 0, false);
    for (key, value) in params {
        let invalid = || key.clone();
        match key.as_str() {
            "limit" => match value.parse() {
                Ok(n @ 1..=500) => limit = n,
                _ => return Err(invalid()),
            },
            "offset" => offset = value.parse().map_err(|_| invalid())?,
            "order_by" => match value.as_str() {
                "created_at" | "+created_at" => ascending = true,
                "-created_at" => ascending = false,
                _ => return Err(invalid()),
            },
            _ => {}
        }
    }
    Ok((limit, offset, ascending))
}

/// `{"data": […], "total_count": n}` for one page of `all` (oldest first).
fn list_page(fake: &Fake, mut all: Vec<Value>, params: &[(String, String)]) -> Response {
    let (limit, offset, ascending) = match offset_query(params) {
        Ok(query) => query,
        Err(key) => {
            return clerk_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "form_param_format_invalid",
                &key,
            );
        }
    };
    if !ascending {
        all.reverse();
    }
    let total = all.len();
    let data: Vec<Value> = all.into_iter().skip(offset).take(limit).collect();
    fake.pages.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({"data": data, "total_count": total})).into_response()
}

async fn list_organizations(
    State(fake): State<Arc<Fake>>,
    RawQuery(raw): RawQuery,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = refuse(&fake, &headers) {
        return refusal;
    }
    let refused = fake.faults.lock().unwrap().organizations_error;
    if let Some((status, code)) = refused {
        return match code {
            // What Clerk answers on an instance without organizations.
            "organization_not_enabled_in_instance" => clerk_error_with(
                status,
                code,
                "access denied",
                "The organizations feature is not enabled for this instance.",
            ),
            _ => clerk_error(status, code, "refused"),
        };
    }
    let raw = raw.unwrap_or_default();
    fake.queries
        .lock()
        .unwrap()
        .push(format!("organizations?{raw}"));
    let all = fake
        .organizations
        .lock()
        .unwrap()
        .iter()
        .map(FakeOrganization::to_json)
        .collect();
    list_page(&fake, all, &params)
}

async fn list_memberships(
    State(fake): State<Arc<Fake>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = refuse(&fake, &headers) {
        return refusal;
    }
    let raw = raw.unwrap_or_default();
    fake.queries
        .lock()
        .unwrap()
        .push(format!("{id}/memberships?{raw}"));
    let organization = fake
        .organizations
        .lock()
        .unwrap()
        .iter()
        .find(|organization| organization.id == id)
        .cloned();
    match organization {
        Some(organization) => list_page(&fake, organization.memberships_json(), &params),
        None => clerk_error(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            &format!("No organization was found with id {id}"),
        ),
    }
}

async fn verify_api_key(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    verify(&fake, CredentialKind::ApiKey, "secret", &headers, &body).await
}

async fn verify_m2m_token(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    verify(&fake, CredentialKind::M2mToken, "token", &headers, &body).await
}

async fn verify_oauth_token(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    verify(
        &fake,
        CredentialKind::OauthToken,
        "access_token",
        &headers,
        &body,
    )
    .await
}

/// A verification as Clerk answers it: the faults in force, then the key
/// (M2M tokens also take [`MACHINE_SECRET`], then see only tokens scoped to
/// [`MACHINE_ID`]), then the credential in `field` of a JSON body: `200`
/// with it, or `404` for one unknown, of another kind, revoked or expired.
async fn verify(
    fake: &Fake,
    kind: CredentialKind,
    field: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    fake.requests.fetch_add(1, Ordering::SeqCst);
    fake.verify_calls.fetch_add(1, Ordering::SeqCst);
    let faults = fake.verify_faults.lock().unwrap().clone();
    if let Some(delay) = faults.delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(status) = faults.status {
        return clerk_error(status, "internal_error", "fault switched on by the test");
    }
    if let Some(seconds) = faults.rate_limited_for {
        let mut response = clerk_error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "Too many requests",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, seconds.to_string().parse().unwrap());
        return response;
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let machine_key = match bearer {
        Some(SECRET) => false,
        Some(MACHINE_SECRET) if kind == CredentialKind::M2mToken => true,
        _ => {
            return clerk_error(
                StatusCode::UNAUTHORIZED,
                "clerk_key_invalid",
                "The provided Clerk Secret Key is invalid.",
            );
        }
    };
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let secret = serde_json::from_slice::<Value>(body)
        .ok()
        .filter(|_| json_body)
        .and_then(|body| body.get(field)?.as_str().map(str::to_owned));
    let Some(secret) = secret else {
        return clerk_error(
            StatusCode::BAD_REQUEST,
            "form_param_missing",
            &format!("{field} is missing"),
        );
    };
    let now = now_ms();
    let credential = fake
        .credentials
        .lock()
        .unwrap()
        .get(&secret)
        .filter(|credential| credential.kind == kind)
        .filter(|credential| !machine_key || credential.scopes.iter().any(|s| s == MACHINE_ID))
        .cloned();
    let not_found = || {
        let what = match kind {
            CredentialKind::ApiKey => "API key",
            CredentialKind::M2mToken => "Machine token",
            CredentialKind::OauthToken => "OAuth token",
        };
        clerk_error(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            &format!("{what} not found"),
        )
    };
    match credential {
        None => not_found(),
        Some(credential) if credential.revoked || credential.expired(now) => {
            if !faults.flags_in_body {
                not_found()
            } else if kind == CredentialKind::OauthToken && !credential.revoked {
                axum::Json(json!({"active": false})).into_response()
            } else {
                axum::Json(credential.to_json(now)).into_response()
            }
        }
        Some(credential) => axum::Json(credential.to_json(now)).into_response(),
    }
}
