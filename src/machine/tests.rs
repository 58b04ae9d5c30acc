//! The verifier against a small fake of the Backend API's verification
//! endpoints on loopback, and the parsing of Clerk's answers.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};

use super::*;

const SECRET: &str = "sk_test_machine0tests0secret";
const MACHINE_SECRET: &str = "ak_machine0tests0secret";

const API_KEY: &str = "ak_live0secret0of0an0api0key";
const M2M_TOKEN: &str = "mt_live0opaque0m2m0token";
const OAUTH_TOKEN: &str = "oat_live0opaque0access0token";

/// An API key's answer, with every field the specification lists and one
/// it does not.
fn api_key_answer() -> Value {
    json!({
        "object": "api_key", "id": "ak_0123456789abcdef0123456789abcdef", "type": "api_key",
        "subject": "user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr", "name": "CI deploys",
        "description": null, "claims": {"team": "infra"}, "scopes": ["deploy", "read"],
        "revoked": false, "revocation_reason": null, "expired": false,
        "expiration": 1_900_000_000_000_i64, "created_by": "user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr",
        "last_used_at": null, "created_at": 1_700_000_000_000_i64,
        "updated_at": 1_700_000_000_000_i64, "added_later": {"ignored": true}
    })
}

fn m2m_answer() -> Value {
    json!({
        "object": "machine_to_machine_token", "id": "mt_0123456789abcdef0123456789abcdef",
        "subject": "mch_2xhFjEI5X2qWRvtV13BzSj8H6Dk", "claims": null,
        "scopes": ["mch_2yGkLpFjEI5X2qWRvtV13BzSj8H"], "revoked": false,
        "revocation_reason": null, "expired": false, "expiration": null,
        "last_used_at": 1_700_000_500_000_i64, "created_at": 1_700_000_000_000_i64,
        "updated_at": 1_700_000_000_000_i64
    })
}

fn oauth_answer() -> Value {
    json!({
        "object": "clerk_idp_oauth_access_token", "id": "oat_0123456789abcdef0123456789abcdef",
        "client_id": "client_2xhFjEI5X2qWRvtV13BzSj8H6Dk",
        "subject": "user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr", "scopes": ["profile", "email"],
        "revoked": false, "revocation_reason": null, "expired": false,
        "expiration": 1_700_086_400_000_i64, "created_at": 1_700_000_000_000_i64,
        "updated_at": 1_700_000_000_000_i64
    })
}

/// What the fake answers instead of looking the credential up.
#[derive(Clone, Copy)]
enum Fault {
    Status(StatusCode),
    RateLimited(&'static str),
    NotJson,
}

/// One request as the fake received it.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    authorization: String,
    api_version: String,
    content_type: String,
    body: Value,
}

/// The fake Backend API's state.
#[derive(Default)]
struct Fake {
    /// Answers by credential.
    known: Mutex<HashMap<String, Value>>,
    /// The key expected per endpoint path; the secret key when absent.
    bearers: Mutex<HashMap<String, String>>,
    fault: Mutex<Option<Fault>>,
    delay: Mutex<Duration>,
    calls: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
}

impl Fake {
    fn knows(&self, credential: &str, answer: Value) {
        self.known.lock().unwrap().insert(credential.into(), answer);
    }

    fn fail(&self, fault: Fault) {
        *self.fault.lock().unwrap() = Some(fault);
    }

    fn answer_after(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request")
    }
}

fn clerk_error(status: StatusCode, code: &str) -> Response {
    let body = json!({"errors": [{"message": code, "long_message": code, "code": code}]});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn verify_endpoint(
    State(fake): State<Arc<Fake>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    fake.calls.fetch_add(1, Ordering::SeqCst);
    let text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    let authorization = text(header::AUTHORIZATION.as_str());
    fake.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        authorization: authorization.clone(),
        api_version: text("clerk-api-version"),
        content_type: text(header::CONTENT_TYPE.as_str()),
        body: body.clone(),
    });
    let delay = *fake.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let fault = *fake.fault.lock().unwrap();
    match fault {
        Some(Fault::Status(status)) => return clerk_error(status, "fault"),
        Some(Fault::RateLimited(after)) => {
            let mut response = clerk_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
            let value = after.parse().unwrap();
            response.headers_mut().insert(header::RETRY_AFTER, value);
            return response;
        }
        Some(Fault::NotJson) => return "<html>gateway</html>".into_response(),
        None => {}
    }
    let expected = fake.bearers.lock().unwrap().get(&path).cloned();
    if authorization != format!("Bearer {}", expected.as_deref().unwrap_or(SECRET)) {
        return clerk_error(StatusCode::UNAUTHORIZED, "clerk_key_invalid");
    }
    let field = match path.as_str() {
        "api_keys/verify" => "secret",
        "m2m_tokens/verify" => "token",
        "oauth_applications/access_tokens/verify" => "access_token",
        _ => return clerk_error(StatusCode::NOT_FOUND, "resource_not_found"),
    };
    let credential = body[field].as_str().unwrap_or_default();
    match fake.known.lock().unwrap().get(credential) {
        Some(answer) => axum::Json(answer.clone()).into_response(),
        None => clerk_error(StatusCode::NOT_FOUND, "resource_not_found"),
    }
}

/// A fake on loopback.
async fn fake() -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake::default());
    let app = Router::new()
        .route("/{*path}", post(verify_endpoint))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (fake, url)
}

fn rules(api_url: &str) -> MachineRules {
    MachineRules {
        api_url: api_url.to_owned(),
        secret_key: Some(SECRET.to_owned()),
        machine_secret_key: None,
        call_timeout: Duration::from_secs(5),
        not_found_for: Duration::from_secs(10),
        not_found_capacity: 10_000,
        budget_calls: 100,
        budget_window: Duration::from_secs(10),
    }
}

#[tokio::test]
async fn each_kind_is_verified_at_its_endpoint() {
    let (fake, url) = fake().await;
    fake.knows(API_KEY, api_key_answer());
    fake.knows(M2M_TOKEN, m2m_answer());
    fake.knows(OAUTH_TOKEN, oauth_answer());
    let verifier = MachineVerifier::new(&rules(&url));

    let key = verifier.verify(TokenType::ApiKey, API_KEY).await.unwrap();
    let seen = fake.last();
    assert_eq!(seen.path, "api_keys/verify");
    assert_eq!(seen.body, json!({"secret": API_KEY}));
    assert_eq!(seen.authorization, format!("Bearer {SECRET}"));
    assert_eq!(seen.api_version, "2026-05-12");
    assert_eq!(seen.content_type, "application/json");
    assert_eq!(key.token_type(), TokenType::ApiKey);
    assert_eq!(key.id(), "ak_0123456789abcdef0123456789abcdef");
    assert_eq!(key.subject_kind(), SubjectKind::User);
    assert_eq!(key.user_id(), Some("user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr"));
    assert_eq!(key.organization_id(), None);
    assert_eq!(key.name(), Some("CI deploys"));
    assert_eq!(key.scopes(), ["deploy", "read"]);
    assert!(key.has_scope("deploy") && !key.has_scope("admin"));
    assert_eq!(key.claims(), Some(&json!({"team": "infra"})));
    assert_eq!(key.expires_at_ms(), Some(1_900_000_000_000));

    let m2m = verifier
        .verify(TokenType::M2mToken, M2M_TOKEN)
        .await
        .unwrap();
    let seen = fake.last();
    assert_eq!(seen.path, "m2m_tokens/verify");
    assert_eq!(seen.body, json!({"token": M2M_TOKEN}));
    assert_eq!(m2m.machine_id(), Some("mch_2xhFjEI5X2qWRvtV13BzSj8H6Dk"));
    assert_eq!(
        (m2m.user_id(), m2m.name(), m2m.client_id()),
        (None, None, None)
    );
    assert_eq!(m2m.scopes(), ["mch_2yGkLpFjEI5X2qWRvtV13BzSj8H"]);
    assert_eq!((m2m.claims(), m2m.expires_at_ms()), (None, None));

    let oauth = verifier
        .verify(TokenType::OauthToken, OAUTH_TOKEN)
        .await
        .unwrap();
    let seen = fake.last();
    assert_eq!(seen.path, "oauth_applications/access_tokens/verify");
    assert_eq!(seen.body, json!({"access_token": OAUTH_TOKEN}));
    assert_eq!(oauth.token_type(), TokenType::OauthToken);
    assert_eq!(oauth.id(), "oat_0123456789abcdef0123456789abcdef");
    assert_eq!(
        oauth.client_id(),
        Some("client_2xhFjEI5X2qWRvtV13BzSj8H6Dk")
    );
    assert_eq!(oauth.user_id(), Some("user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr"));
    assert_eq!(oauth.scopes(), ["profile", "email"]);
    assert_eq!(fake.calls(), 3);
}

#[tokio::test]
async fn an_unknown_credential_is_remembered_for_a_while() {
    let (fake, url) = fake().await;
    let verifier = MachineVerifier::new(&MachineRules {
        not_found_for: Duration::from_millis(300),
        ..rules(&url)
    });
    for _ in 0..3 {
        let refused = verifier.verify(TokenType::ApiKey, "ak_unknown").await;
        assert_eq!(refused, Err(MachineError::NotFound));
    }
    assert_eq!(fake.calls(), 1);
    // The same text as another kind is another credential.
    let refused = verifier.verify(TokenType::OauthToken, "ak_unknown").await;
    assert_eq!(refused, Err(MachineError::NotFound));
    assert_eq!(fake.calls(), 2);
    // Clerk may know it later (a credential just issued).
    tokio::time::sleep(Duration::from_millis(350)).await;
    fake.knows("ak_unknown", api_key_answer());
    assert!(
        verifier
            .verify(TokenType::ApiKey, "ak_unknown")
            .await
            .is_ok()
    );
    assert_eq!(fake.calls(), 3);
}

#[tokio::test]
async fn remembered_refusals_are_bounded() {
    let (_fake, url) = fake().await;
    let verifier = MachineVerifier::new(&MachineRules {
        not_found_capacity: 8,
        ..rules(&url)
    });
    for n in 0..40 {
        let token = format!("ak_unknown{n}");
        let refused = verifier.verify(TokenType::ApiKey, &token).await;
        assert_eq!(refused, Err(MachineError::NotFound));
    }
    let held = verifier.refusals.len();
    assert!((1..=8).contains(&held), "{held}");
}

#[tokio::test]
async fn the_secret_is_not_kept() {
    let (_fake, url) = fake().await;
    let verifier = MachineVerifier::new(&rules(&url));
    let secret = "ak_SECRETthatMustNotBeKept";
    assert!(verifier.verify(TokenType::ApiKey, secret).await.is_err());
    let key = refusals::key(TokenType::ApiKey, secret);
    assert!(verifier.refusals.get(&key).is_some());
    assert!(!key.windows(secret.len()).any(|w| w == secret.as_bytes()));
}

#[tokio::test]
async fn concurrent_verifications_share_one_call() {
    let (fake, url) = fake().await;
    fake.knows(API_KEY, api_key_answer());
    fake.answer_after(Duration::from_millis(200));
    let verifier = Arc::new(MachineVerifier::new(&rules(&url)));
    let verify = |token: &'static str| {
        let verifier = verifier.clone();
        tokio::spawn(async move { verifier.verify(TokenType::ApiKey, token).await })
    };
    let tasks: Vec<_> = (0..20).map(|_| verify(API_KEY)).collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().id(), api_key_answer()["id"]);
    }
    assert_eq!(fake.calls(), 1);
    // A failure is shared too.
    fake.fail(Fault::Status(StatusCode::BAD_GATEWAY));
    let tasks: Vec<_> = (0..20).map(|_| verify(API_KEY)).collect();
    for task in tasks {
        let refused = task.await.unwrap();
        assert_eq!(
            refused,
            Err(MachineError::Unavailable { retry_after: None })
        );
    }
    assert_eq!(fake.calls(), 2);
    assert!(verifier.flights().is_empty());
}

#[tokio::test]
async fn a_caller_giving_up_leaves_no_flight_behind() {
    let (fake, url) = fake().await;
    fake.knows(API_KEY, api_key_answer());
    fake.answer_after(Duration::from_millis(200));
    let verifier = MachineVerifier::new(&rules(&url));
    let gave_up = tokio::time::timeout(
        Duration::from_millis(50),
        verifier.verify(TokenType::ApiKey, API_KEY),
    )
    .await;
    assert!(gave_up.is_err());
    assert!(verifier.flights().is_empty());
    fake.answer_after(Duration::ZERO);
    assert!(verifier.verify(TokenType::ApiKey, API_KEY).await.is_ok());
}

#[tokio::test]
async fn a_flood_of_made_up_credentials_costs_the_budget_and_no_more() {
    let (fake, url) = fake().await;
    let verifier = MachineVerifier::new(&MachineRules {
        budget_calls: 5,
        ..rules(&url)
    });
    let mut unavailable = 0;
    for n in 0..50 {
        match verifier
            .verify(TokenType::ApiKey, &format!("ak_madeup{n}"))
            .await
        {
            Err(MachineError::NotFound) => {}
            Err(MachineError::Unavailable {
                retry_after: Some(wait),
            }) => {
                assert!(wait > Duration::ZERO && wait <= Duration::from_secs(10));
                unavailable += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(fake.calls(), 5);
    assert_eq!(unavailable, 45);
    // A credential remembered as unknown needs no budget.
    let refused = verifier.verify(TokenType::ApiKey, "ak_madeup0").await;
    assert_eq!(refused, Err(MachineError::NotFound));
}

#[tokio::test]
async fn a_refused_key_is_the_servers_misconfiguration() {
    let (fake, url) = fake().await;
    fake.knows(API_KEY, api_key_answer());
    let wrong_key = MachineVerifier::new(&MachineRules {
        secret_key: Some("sk_test_wrong".to_owned()),
        ..rules(&url)
    });
    for _ in 0..2 {
        let refused = wrong_key.verify(TokenType::ApiKey, API_KEY).await;
        assert_eq!(refused, Err(MachineError::Misconfigured));
    }
    // Never remembered: a fixed key works at once.
    assert_eq!(fake.calls(), 2);
    fake.fail(Fault::Status(StatusCode::FORBIDDEN));
    let verifier = MachineVerifier::new(&rules(&url));
    let refused = verifier.verify(TokenType::ApiKey, API_KEY).await;
    assert_eq!(refused, Err(MachineError::Misconfigured));
}

#[tokio::test]
async fn without_a_key_nothing_is_called() {
    let (fake, url) = fake().await;
    let verifier = MachineVerifier::new(&MachineRules {
        secret_key: None,
        machine_secret_key: Some(MACHINE_SECRET.to_owned()),
        ..rules(&url)
    });
    for kind in [TokenType::ApiKey, TokenType::OauthToken] {
        let refused = verifier.verify(kind, API_KEY).await;
        assert_eq!(refused, Err(MachineError::Misconfigured), "{kind}");
    }
    let unusable_url = MachineVerifier::new(&rules("not a url"));
    let refused = unusable_url.verify(TokenType::ApiKey, API_KEY).await;
    assert_eq!(refused, Err(MachineError::Misconfigured));
    assert_eq!(fake.calls(), 0);
}

#[tokio::test]
async fn m2m_tokens_use_the_machine_secret_key_when_there_is_one() {
    let (fake, url) = fake().await;
    fake.knows(M2M_TOKEN, m2m_answer());
    fake.knows(API_KEY, api_key_answer());
    let with_machine_key = MachineVerifier::new(&MachineRules {
        machine_secret_key: Some(MACHINE_SECRET.to_owned()),
        ..rules(&url)
    });
    let secret_key_only = MachineVerifier::new(&rules(&url));

    fake.bearers
        .lock()
        .unwrap()
        .insert("m2m_tokens/verify".to_owned(), MACHINE_SECRET.to_owned());
    let verified = with_machine_key
        .verify(TokenType::M2mToken, M2M_TOKEN)
        .await;
    assert!(verified.is_ok(), "{verified:?} {:?}", fake.last());
    assert_eq!(
        fake.last().authorization,
        format!("Bearer {MACHINE_SECRET}")
    );
    let refused = secret_key_only.verify(TokenType::M2mToken, M2M_TOKEN).await;
    assert_eq!(refused, Err(MachineError::Misconfigured));
    // API keys still use the secret key.
    assert!(
        with_machine_key
            .verify(TokenType::ApiKey, API_KEY)
            .await
            .is_ok()
    );
    assert_eq!(fake.last().authorization, format!("Bearer {SECRET}"));

    fake.bearers.lock().unwrap().clear();
    assert!(
        secret_key_only
            .verify(TokenType::M2mToken, M2M_TOKEN)
            .await
            .is_ok()
    );
    assert_eq!(fake.last().authorization, format!("Bearer {SECRET}"));
}

#[tokio::test]
async fn a_rate_limit_passes_its_retry_after_on() {
    let (fake, url) = fake().await;
    let verifier = MachineVerifier::new(&rules(&url));
    for (after, expected) in [
        ("7", Some(Duration::from_secs(7))),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
        ("86400", None),
    ] {
        fake.fail(Fault::RateLimited(after));
        let refused = verifier.verify(TokenType::OauthToken, OAUTH_TOKEN).await;
        assert_eq!(
            refused,
            Err(MachineError::Unavailable {
                retry_after: expected
            }),
            "{after}"
        );
    }
    // Never remembered.
    assert_eq!(fake.calls(), 3);
}

#[tokio::test]
async fn outages_are_unavailable_and_not_remembered() {
    let (fake, url) = fake().await;
    let verifier = MachineVerifier::new(&MachineRules {
        call_timeout: Duration::from_millis(200),
        ..rules(&url)
    });
    let unavailable = Err(MachineError::Unavailable { retry_after: None });
    for fault in [
        Fault::Status(StatusCode::INTERNAL_SERVER_ERROR),
        Fault::Status(StatusCode::SERVICE_UNAVAILABLE),
        Fault::Status(StatusCode::CONFLICT),
        Fault::NotJson,
    ] {
        fake.fail(fault);
        assert_eq!(
            verifier.verify(TokenType::ApiKey, API_KEY).await,
            unavailable
        );
    }
    *fake.fault.lock().unwrap() = None;
    fake.knows(API_KEY, api_key_answer());
    fake.answer_after(Duration::from_millis(1000));
    assert_eq!(
        verifier.verify(TokenType::ApiKey, API_KEY).await,
        unavailable
    );
    assert_eq!(fake.calls(), 5);
    // Nothing listens here.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = MachineVerifier::new(&rules(&closed_url));
    assert_eq!(
        unreachable.verify(TokenType::ApiKey, API_KEY).await,
        unavailable
    );
}

#[tokio::test]
async fn revoked_and_expired_answers_are_refused() {
    let (fake, url) = fake().await;
    let mut revoked = api_key_answer();
    revoked["revoked"] = json!(true);
    revoked["revocation_reason"] = json!("leaked");
    let mut expired = m2m_answer();
    expired["expired"] = json!(true);
    fake.knows("ak_revoked", revoked);
    fake.knows("mt_expired", expired);
    fake.knows("oat_inactive", json!({"active": false}));
    let verifier = MachineVerifier::new(&rules(&url));
    for _ in 0..2 {
        let revoked = verifier.verify(TokenType::ApiKey, "ak_revoked").await;
        assert_eq!(revoked, Err(MachineError::Revoked));
        let expired = verifier.verify(TokenType::M2mToken, "mt_expired").await;
        assert_eq!(expired, Err(MachineError::Expired));
        let inactive = verifier.verify(TokenType::OauthToken, "oat_inactive").await;
        assert_eq!(inactive, Err(MachineError::Expired));
    }
    // Remembered as lasting refusals.
    assert_eq!(fake.calls(), 3);
}

#[tokio::test]
async fn what_cannot_be_a_credential_is_never_sent() {
    let (fake, url) = fake().await;
    let verifier = MachineVerifier::new(&rules(&url));
    for token in ["", "ak_with space", "ak_tab\t", "ak_é", "ak_\u{0}"] {
        let refused = verifier.verify(TokenType::ApiKey, token).await;
        assert_eq!(refused, Err(MachineError::NotFound), "{token:?}");
    }
    let session = verifier
        .verify(TokenType::SessionToken, "eyJ.eyJ.sig")
        .await;
    assert_eq!(session, Err(MachineError::NotFound));
    assert_eq!(fake.calls(), 0);
}

#[test]
fn answers_of_unexpected_shapes_are_unreadable() {
    let unreadable = Err(MachineError::Unavailable { retry_after: None });
    let with = |field: &str, value: Value| {
        let mut answer = api_key_answer();
        answer[field] = value;
        serde_json::to_vec(&answer).unwrap()
    };
    for body in [
        b"not json".to_vec(),
        b"[]".to_vec(),
        b"{}".to_vec(),
        with("subject", json!("app_1")),
        with("subject", json!("user_")),
        with("subject", json!(42)),
        with("id", json!("key_1")),
        with("scopes", json!("deploy")),
        with("expiration", json!("tomorrow")),
    ] {
        let text = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(
            credential::parse(TokenType::ApiKey, &body),
            unreadable,
            "{text}"
        );
    }
    // Absent or null optional fields are fine.
    let minimal = json!({"id": "ak_1", "subject": "org_1", "scopes": null, "claims": null});
    let parsed = credential::parse(TokenType::ApiKey, minimal.to_string().as_bytes()).unwrap();
    assert_eq!(parsed.organization_id(), Some("org_1"));
    assert!(parsed.scopes().is_empty() && parsed.claims().is_none());
}

#[test]
fn a_credential_is_fresh_for_the_interval_and_never_past_its_expiration() {
    let body = api_key_answer().to_string();
    let expiring = credential::parse(TokenType::ApiKey, body.as_bytes()).unwrap();
    let expiration = 1_900_000_000_000;
    let interval = Duration::from_secs(10);
    let now = expiration - 60_000;
    assert_eq!(expiring.fresh_until_ms(now, interval), now + 10_000);
    assert_eq!(
        expiring.fresh_until_ms(expiration - 1_000, interval),
        expiration
    );
    let body = m2m_answer().to_string();
    let lasting = credential::parse(TokenType::M2mToken, body.as_bytes()).unwrap();
    assert_eq!(lasting.fresh_until_ms(now, interval), now + 10_000);
    assert_eq!(lasting.fresh_until_ms(now, Duration::MAX), i64::MAX);
}

#[test]
fn each_error_is_a_rejection() {
    for (error, code) in [
        (MachineError::NotFound, "credential_not_found"),
        (MachineError::Revoked, "credential_revoked"),
        (MachineError::Expired, "token_expired"),
        (
            MachineError::Unavailable {
                retry_after: Some(Duration::from_secs(3)),
            },
            "verification_unavailable",
        ),
        (MachineError::Misconfigured, "verification_misconfigured"),
    ] {
        assert_eq!(Rejection::from(error).code(), code);
    }
}
