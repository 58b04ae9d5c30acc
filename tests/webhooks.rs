//! The webhook receiver applying Clerk's user events end to end, next to
//! the layer, on real PostgreSQL and SQLite: versions, tombstones, retries,
//! races, hooks, an outage of the database, and what is logged.

mod common;

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use bytes::Bytes;
use common::{
    svix::{SECRET, UNKNOWN_SECRET, now, request, signed, signed_with},
    webhook_app::{Harness, created, profile, updated},
    *,
};
use ensure_user::{
    LocalId,
    store::{Profile, Resolution, SyncOutcome, UserStore, UserSync},
    testing::{random_id, svix_signature},
    webhook::{AppliedEvent, BoxError, WebhookHooks},
};
use http::StatusCode;
use serde_json::{Value, json};
use tower::ServiceExt;

on_both_stores!(
    each_user_event_is_applied,
    older_update_after_newer_is_ignored,
    created_after_deleted_makes_no_row,
    deleted_users_tokens_are_refused,
    duplicate_deliveries_are_harmless,
    other_event_types_are_acknowledged,
    database_down_is_503_and_changes_nothing,
    failed_hook_is_500_and_the_retry_converges,
    concurrent_updates_keep_the_newest,
    deletion_racing_creations_leaves_no_row,
    tombstone_committed_mid_insert_removes_the_row,
    mapped_table_without_version_column,
    nul_in_profile_text_is_left_out,
);

async fn each_user_event_is_applied(backend: Backend) {
    let h = Harness::new(backend).await;
    let user = random_id("user");

    assert_eq!(h.outcome(&created(&user, 1_000)).await, "created");
    assert_eq!(
        h.db.profile(&user).await,
        profile("ada@example.com", "Ada", 1_000)
    );

    assert_eq!(
        h.outcome(&updated(&user, 2_000, "Augusta")).await,
        "updated"
    );
    assert_eq!(
        h.db.profile(&user).await,
        profile("augusta@example.com", "Augusta", 2_000)
    );

    // A full user object, not a diff: fields Clerk no longer has are cleared.
    let mut cleared = updated(&user, 3_000, "Augusta");
    cleared["data"]["last_name"] = Value::Null;
    cleared["data"]["image_url"] = json!("");
    cleared["data"]["primary_email_address_id"] = Value::Null;
    assert_eq!(h.outcome(&cleared).await, "updated");
    assert_eq!(
        h.db.profile(&user).await,
        Some((None, Some("Augusta".to_owned()), None, None, Some(3_000)))
    );

    assert_eq!(h.outcome(&user_deleted_event(&user)).await, "deleted");
    assert_eq!(h.db.profile(&user).await, None);
    assert!(h.db.tombstoned(&user).await);
}

/// PostgreSQL text cannot hold NUL: such a field is stored as absent, the
/// rest of the profile is applied, and the delivery is acknowledged (a `503`
/// would have svix retry it for days).
async fn nul_in_profile_text_is_left_out(backend: Backend) {
    let h = Harness::new(backend).await;
    let user = random_id("user");
    let mut event = created(&user, 1_000);
    event["data"]["first_name"] = json!("A\u{0}da");
    event["data"]["email_addresses"][1]["email_address"] = json!("ada\u{0}@example.com");
    let (status, body) = h.deliver(&event).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("created"))
    );
    assert_eq!(
        h.db.profile(&user).await,
        Some((
            None,
            None,
            Some("Lovelace".to_owned()),
            Some("https://img.example.com/ada.png".to_owned()),
            Some(1_000)
        ))
    );
    assert_eq!(h.outcome(&updated(&user, 2_000, "Ada")).await, "updated");
    assert_eq!(
        h.db.profile(&user).await,
        profile("ada@example.com", "Ada", 2_000)
    );
}

async fn older_update_after_newer_is_ignored(backend: Backend) {
    let h = Harness::new(backend).await;
    let user = random_id("user");
    // The update overtook the creation (a retried `user.created` arrives late).
    assert_eq!(
        h.outcome(&updated(&user, 2_000, "Augusta")).await,
        "created"
    );
    let newest = h.db.dump().await;

    assert_eq!(h.outcome(&created(&user, 1_000)).await, "stale");
    assert_eq!(h.outcome(&updated(&user, 1_999, "Older")).await, "stale");
    assert_eq!(h.db.dump().await, newest);

    // The same version again is applied again, and changes nothing.
    assert_eq!(
        h.outcome(&updated(&user, 2_000, "Augusta")).await,
        "updated"
    );
    assert_eq!(h.db.dump().await, newest);

    assert_eq!(h.outcome(&updated(&user, 2_001, "Newer")).await, "updated");
    assert_eq!(
        h.db.profile(&user).await,
        profile("newer@example.com", "Newer", 2_001)
    );
}

async fn created_after_deleted_makes_no_row(backend: Backend) {
    let h = Harness::new(backend).await;
    let user = random_id("user");
    // The deletion overtook the creation: the user never had a row here.
    assert_eq!(h.outcome(&user_deleted_event(&user)).await, "not_found");
    assert!(h.db.tombstoned(&user).await);
    let after_delete = h.db.dump().await;

    assert_eq!(h.outcome(&created(&user, 1_000)).await, "tombstoned");
    assert_eq!(
        h.outcome(&updated(&user, 9_000, "Late")).await,
        "tombstoned"
    );
    assert_eq!(h.outcome(&user_deleted_event(&user)).await, "tombstoned");
    assert_eq!(h.db.profile(&user).await, None);
    assert_eq!(h.db.dump().await, after_delete);
}

async fn deleted_users_tokens_are_refused(backend: Backend) {
    let h = Harness::new(backend).await;
    let user = random_id("user");
    let token = h.key.session_token(ISSUER, &user, 60);
    let (status, first) = h.me(&token).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(h.outcome(&created(&user, 1_000)).await, "updated");

    assert_eq!(h.outcome(&user_deleted_event(&user)).await, "deleted");
    // The same, still unexpired token: refused at once, and no row comes back.
    let (status, body) = h.me(&token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("user_deleted"))
    );
    let fresh = h.key.session_token(ISSUER, &user, 60);
    assert_eq!(h.me(&fresh).await.1["error"], "user_deleted");
    assert_eq!(
        h.outcome(&updated(&user, 2_000, "Late")).await,
        "tombstoned"
    );
    assert_eq!(h.db.profile(&user).await, None);
    assert_eq!(h.me(&token).await.0, StatusCode::UNAUTHORIZED);
}

async fn duplicate_deliveries_are_harmless(backend: Backend) {
    let h = Harness::new(backend).await;
    let user = random_id("user");
    for (event, first, again) in [
        (created(&user, 1_000), "created", "updated"),
        (user_deleted_event(&user), "deleted", "tombstoned"),
    ] {
        // The very same message: id, timestamp, signature and body.
        let body = event.to_string();
        let id = random_id("msg");
        let timestamp = now();
        let signature = svix_signature(SECRET, &id, timestamp, body.as_bytes());
        let send = || request(&id, &timestamp.to_string(), &signature, body.clone());

        let (status, reply) = h.send(send()).await;
        assert_eq!(
            (status, reply["outcome"].as_str()),
            (StatusCode::OK, Some(first))
        );
        let once = h.db.dump().await;
        let (status, reply) = h.send(send()).await;
        assert_eq!(
            (status, reply["outcome"].as_str()),
            (StatusCode::OK, Some(again))
        );
        assert_eq!(h.db.dump().await, once);
    }
}

async fn other_event_types_are_acknowledged(backend: Backend) {
    let h = Harness::new(backend).await;
    h.outcome(&created(&random_id("user"), 1_000)).await;
    let before = h.db.dump().await;
    for event in [
        json!({"type": "session.created", "object": "event",
               "data": {"id": "sess_1", "user_id": random_id("user"), "status": "active"}}),
        json!({"type": "organization.updated", "data": {"id": "org_1", "name": "Acme", "updated_at": 1}}),
        json!({"type": "email.created", "data": "not an object"}),
        json!({"type": "user.banned_someday", "data": [1, 2, 3]}),
    ] {
        assert_eq!(h.outcome(&event).await, "ignored", "{event}");
    }
    assert_eq!(h.db.dump().await, before);
}

async fn database_down_is_503_and_changes_nothing(backend: Backend) {
    let h = Harness::new(backend).await;
    let user = random_id("user");
    h.outcome(&created(&user, 1_000)).await;
    let before = h.db.dump().await;

    h.store.close().await;
    for event in [
        updated(&user, 2_000, "Lost"),
        user_deleted_event(&user),
        created(&random_id("user"), 1),
    ] {
        let response = h
            .app
            .clone()
            .oneshot(signed(event.to_string().as_bytes()))
            .await
            .unwrap();
        assert_eq!(response.headers()["retry-after"], "5");
        let (status, body) = read(response).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("store_unavailable"))
        );
        assert!(!body.to_string().contains("closed"), "{body}");
    }
    assert_eq!(h.db.dump().await, before);
}

/// An event type and the outcome code a hook saw.
type Seen = (String, Option<&'static str>);

/// Records what hooks saw, failing the first `failures` calls.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    failures: Arc<AtomicUsize>,
}

impl WebhookHooks for Recorder {
    async fn after_apply(&self, applied: &AppliedEvent) -> Result<(), BoxError> {
        let outcome = applied.outcome.map(SyncOutcome::code);
        self.seen
            .lock()
            .unwrap()
            .push((applied.event.event_type.clone(), outcome));
        let failing = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() {
            return Err("mail queue unreachable at 10.0.0.7".into());
        }
        Ok(())
    }
}

async fn failed_hook_is_500_and_the_retry_converges(backend: Backend) {
    let hooks = Recorder::default();
    hooks.failures.store(1, Ordering::SeqCst);
    let h = Harness::build(backend, svix::verifier(), |r| r.with_hooks(hooks.clone())).await;
    let user = random_id("user");
    let body = created(&user, 1_000).to_string();
    let id = random_id("msg");
    let timestamp = now();
    let signature = svix_signature(SECRET, &id, timestamp, body.as_bytes());
    let send = || request(&id, &timestamp.to_string(), &signature, body.clone());

    let (status, reply) = h.send(send()).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("hook_failed"))
    );
    assert!(!reply.to_string().contains("10.0.0.7"));
    let applied = h.db.dump().await;

    // Svix retries the same message; applying it again converges.
    let (status, reply) = h.send(send()).await;
    assert_eq!(
        (status, reply["outcome"].as_str()),
        (StatusCode::OK, Some("updated"))
    );
    assert_eq!(h.db.dump().await, applied);
    h.outcome(&json!({"type": "email.created", "data": {}}))
        .await;
    assert_eq!(
        *hooks.seen.lock().unwrap(),
        [
            ("user.created".to_owned(), Some("created")),
            ("user.created".to_owned(), Some("updated")),
            ("email.created".to_owned(), None),
        ]
    );
}

async fn concurrent_updates_keep_the_newest(backend: Backend) {
    let h = Arc::new(Harness::new(backend).await);
    let user = random_id("user");
    // Versions 1..=24 delivered at once, in a scrambled order.
    let tasks: Vec<_> = (1..=24_i64)
        .map(|i| (i * 7) % 25)
        .map(|version| {
            let (h, user) = (h.clone(), user.clone());
            tokio::spawn(async move {
                let event = updated(&user, version, &format!("V{version}"));
                h.deliver(&event).await
            })
        })
        .collect();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(
        h.db.profile(&user).await,
        profile("v24@example.com", "V24", 24)
    );
}

/// Updates and requests race a deletion; more of each start once the
/// deletion is acknowledged, while the others are still in flight. Each
/// kind is held to what it may answer: a request in flight during the
/// deletion may be served, one that started after its acknowledgement
/// never is; an update that started after it finds the tombstone. In the
/// first round the user is served (so cached) before the race; in the
/// others the requests and updates race to create the row.
async fn deletion_racing_creations_leaves_no_row(backend: Backend) {
    /// What one request was, whether it started after the deletion was
    /// acknowledged, and its answer.
    type Answer = (&'static str, bool, (StatusCode, Value));
    let h = Arc::new(Harness::new(backend).await);
    for cached in [true, false, false] {
        let user = random_id("user");
        let token = Arc::new(h.key.session_token(ISSUER, &user, 60));
        if cached {
            assert_eq!(h.me(&token).await.0, StatusCode::OK);
        }
        // Set once the deletion was answered `200`.
        let (acknowledge, acknowledged) = tokio::sync::watch::channel(false);
        let update = |i: i64, after: bool| {
            let (h, user, mut acknowledged) = (h.clone(), user.clone(), acknowledged.clone());
            tokio::spawn(async move {
                if after {
                    acknowledged.wait_for(|done| *done).await.unwrap();
                }
                let after = *acknowledged.borrow();
                (
                    "user.updated",
                    after,
                    h.deliver(&updated(&user, i, "Racer")).await,
                )
            })
        };
        let me = |after: bool| {
            let (h, token, mut acknowledged) = (h.clone(), token.clone(), acknowledged.clone());
            tokio::spawn(async move {
                if after {
                    acknowledged.wait_for(|done| *done).await.unwrap();
                }
                let after = *acknowledged.borrow();
                ("GET /me", after, h.me(&token).await)
            })
        };
        let mut tasks: Vec<tokio::task::JoinHandle<Answer>> = Vec::new();
        for i in 0..12_i64 {
            tasks.push(update(i, false));
            tasks.push(me(false));
            if i == 6 {
                let (h, user) = (h.clone(), user.clone());
                let acknowledge = acknowledge.clone();
                tasks.push(tokio::spawn(async move {
                    let answer = h.deliver(&user_deleted_event(&user)).await;
                    let after = *acknowledge.borrow();
                    if answer.0 == StatusCode::OK {
                        acknowledge.send_replace(true);
                    }
                    ("user.deleted", after, answer)
                }));
            }
        }
        for i in 12..16_i64 {
            tasks.push(update(i, true));
            tasks.push(me(true));
        }
        let mut started_after = 0;
        for task in tasks {
            let (request, after, (status, body)) = task.await.unwrap();
            started_after += usize::from(after);
            let outcome = body["outcome"].as_str().unwrap_or_default();
            let error = body["error"].as_str().unwrap_or_default();
            // A request whose user a delivery forgets during each of its
            // lookups (three, with twelve deliveries racing it) is refused
            // as retryable, by design: it never serves what it could not
            // confirm.
            let retryable =
                status == StatusCode::SERVICE_UNAVAILABLE && error == "store_unavailable";
            let allowed = match (request, after) {
                ("user.deleted", _) => {
                    status == StatusCode::OK && matches!(outcome, "deleted" | "not_found")
                }
                ("user.updated", false) => {
                    status == StatusCode::OK
                        && matches!(outcome, "created" | "updated" | "stale" | "tombstoned")
                }
                ("user.updated", true) => status == StatusCode::OK && outcome == "tombstoned",
                ("GET /me", false) => {
                    status == StatusCode::OK
                        || (status == StatusCode::UNAUTHORIZED && error == "user_deleted")
                        || retryable
                }
                ("GET /me", true) => {
                    (status == StatusCode::UNAUTHORIZED && error == "user_deleted") || retryable
                }
                _ => unreachable!(),
            };
            let when = if after { "after" } else { "before" };
            assert!(
                allowed,
                "{request}, started {when} the deletion was acknowledged: {status} {body}"
            );
        }
        assert!(
            started_after >= 8,
            "the late requests start once the deletion is acknowledged"
        );
        assert_eq!(h.db.profile(&user).await, None, "a deleted user came back");
        assert!(h.db.tombstoned(&user).await);
        assert_eq!(h.me(&token).await.1["error"], "user_deleted");
    }
}

/// The re-check after writing: a tombstone that lands after the insert's
/// guard was evaluated still wins, on the webhook path and the layer's.
async fn tombstone_committed_mid_insert_removes_the_row(backend: Backend) {
    let h = Harness::new(backend).await;
    h.db.tombstone_on_insert().await;
    let user = random_id("user_race");
    assert_eq!(h.outcome(&created(&user, 1_000)).await, "tombstoned");
    assert_eq!(h.db.profile(&user).await, None);

    let other = random_id("user_race");
    let (status, body) = h.me(&h.key.session_token(ISSUER, &other, 60)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("user_deleted"))
    );
    assert_eq!(h.db.profile(&other).await, None);

    // Updates of an existing row are not inserts: untouched by the trigger.
    let plain = random_id("user");
    assert_eq!(h.outcome(&created(&plain, 1_000)).await, "created");
}

/// A mapped table: UUID keys, one profile column, no version column (so no
/// last-write-wins: the latest delivery always overwrites).
async fn mapped_table_without_version_column(backend: Backend) {
    let store = Store::new(backend).await.with_accounts_table().await;
    let user = random_id("user");
    let newer = Profile::new()
        .with_email("new@example.com")
        .with_names(Some("Ada".into()), None);
    let SyncOutcome::Created(id @ LocalId::Uuid(_)) =
        store.upsert_profile(&user, &newer, 2_000).await.unwrap()
    else {
        panic!("expected a created row with a UUID");
    };
    let older = Profile::new().with_email("old@example.com");
    assert_eq!(
        store.upsert_profile(&user, &older, 1_000).await.unwrap(),
        SyncOutcome::Updated(id)
    );
    assert_eq!(
        store.find_or_create(&user, &newer).await.unwrap(),
        Resolution::Existing(id)
    );
    assert_eq!(
        store.delete_user(&user, 5).await.unwrap(),
        SyncOutcome::Deleted
    );
    assert_eq!(
        store.upsert_profile(&user, &newer, 3_000).await.unwrap(),
        SyncOutcome::Tombstoned
    );
    assert_eq!(
        store.find_or_create(&user, &newer).await.unwrap(),
        Resolution::Deleted
    );
}

/// Without axum: the receiver is a plain tower service over any body.
#[tokio::test]
async fn tower_service_takes_any_body() {
    let h = Harness::new(Backend::Sqlite).await;
    let user = random_id("user");
    let body = created(&user, 1_000).to_string();
    let id = random_id("msg");
    let t = now();
    let request = http::Request::post("/anywhere")
        .header("svix-id", &id)
        .header("svix-timestamp", t.to_string())
        .header(
            "svix-signature",
            svix_signature(SECRET, &id, t, body.as_bytes()),
        )
        .body(http_body_util::Full::new(Bytes::from(body)))
        .unwrap();
    let (status, reply) = read(h.receiver.clone().oneshot(request).await.unwrap()).await;
    assert_eq!(
        (status, reply["outcome"].as_str()),
        (StatusCode::OK, Some("created"))
    );

    // A declared length over the limit is refused before the body is read
    // (once the svix headers are checked, which comes first).
    let small = h.receiver.clone().with_body_limit(16);
    let (id, t) = (random_id("msg"), now());
    let request = http::Request::post("/anywhere")
        .header("svix-id", &id)
        .header("svix-timestamp", t.to_string())
        .header("svix-signature", svix_signature(SECRET, &id, t, b"{}"))
        .header("content-length", "17")
        .body(http_body_util::Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let (status, reply) = read(small.oneshot(request).await.unwrap()).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("body_too_large"))
    );
}

/// Every delivery is logged with its id, type, user and outcome; bodies and secrets never.
#[tokio::test]
async fn deliveries_are_logged_without_bodies_or_secrets() {
    let logs = Logs::capture_globally(tracing::Level::INFO);

    let h = Harness::new(Backend::Sqlite).await;
    let user = random_id("user");
    let body = created(&user, 1_000).to_string();
    let request = signed(body.as_bytes());
    let id = request.headers()["svix-id"].to_str().unwrap().to_owned();
    let signature = request.headers()["svix-signature"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(h.send(request).await.0, StatusCode::OK);
    h.outcome(&created(&user, 500)).await;
    let forged = signed_with(UNKNOWN_SECRET, now(), body.as_bytes());
    let forged_id = forged.headers()["svix-id"].to_str().unwrap().to_owned();
    assert_eq!(h.send(forged).await.0, StatusCode::UNAUTHORIZED);
    h.store.close().await;
    assert_eq!(
        h.deliver(&user_deleted_event(&user)).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let text = logs.text();
    let line = |needles: &[&str]| {
        text.lines()
            .find(|line| needles.iter().all(|needle| line.contains(needle)))
            .unwrap_or_else(|| panic!("no log line with {needles:?}:\n{text}"))
    };
    line(&[
        "INFO",
        &id,
        "user.created",
        &user,
        "outcome=\"applied\"",
        "created",
    ]);
    line(&["INFO", "user.created", &user, "ignored_stale"]);
    line(&["WARN", &forged_id, "rejected", "invalid_signature"]);
    line(&["ERROR", "user.deleted", &user, "store_unavailable"]);
    for secret in [
        "ada@example.com",
        "Lovelace",
        "img.example.com",
        &SECRET[6..],
        &UNKNOWN_SECRET[6..],
        &signature[3..],
    ] {
        assert!(!text.contains(secret), "{secret} was logged:\n{text}");
    }
}
