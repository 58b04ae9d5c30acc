//! Ended sessions and banned users, end to end: deliveries signed as svix
//! signs them, on real PostgreSQL and SQLite, through `Setup` (layer,
//! receiver and listener), with several instances on one database.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::{Json, Router, routing::get};
use common::{
    instances::{Deployment, Instance, PROPAGATION_LIMIT, Served},
    svix::{self, PATH, SECRET, delivery, verifier},
    *,
};
use ensure_user::{
    LocalUser,
    store::{SqliteUserStore, UserSync, UserTable},
    testing::{SigningKey, random_id, session_claims},
};
use http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

/// An instance as an app wires one: through `Setup`, with webhooks.
async fn instance(d: &Deployment) -> Instance {
    d.instance().through_setup().start().await
}

/// The user's `banned` column, if they have a row.
async fn banned_in_row(db: &Store, user: &str) -> Option<bool> {
    match db {
        Store::Postgres(store) => {
            sqlx::query_scalar("SELECT banned FROM users WHERE clerk_id = $1")
                .bind(user)
                .fetch_optional(store.pool())
                .await
        }
        Store::Sqlite(store) => {
            sqlx::query_scalar("SELECT banned FROM users WHERE clerk_id = ?1")
                .bind(user)
                .fetch_optional(store.pool())
                .await
        }
    }
    .unwrap()
}

/// Every ended session recorded: `(session, user, until_ms)`.
async fn ended_rows(db: &Store) -> Vec<(String, String, i64)> {
    let sql = "SELECT session_id, clerk_id, until_ms FROM ensure_user_ended_sessions \
               ORDER BY session_id";
    match db {
        Store::Postgres(store) => sqlx::query_as(sql).fetch_all(store.pool()).await,
        Store::Sqlite(store) => sqlx::query_as(sql).fetch_all(store.pool()).await,
    }
    .unwrap()
}

/// Records an ended session directly, as another instance would have.
async fn insert_ended(db: &Store, session: &str, user: &str, until_ms: i64) {
    let sql = "INSERT INTO ensure_user_ended_sessions (session_id, clerk_id, until_ms) \
               VALUES ($1, $2, $3)";
    match db {
        Store::Postgres(store) => sqlx::query(sql)
            .bind(session)
            .bind(user)
            .bind(until_ms)
            .execute(store.pool())
            .await
            .map(drop),
        Store::Sqlite(store) => sqlx::query(sql)
            .bind(session)
            .bind(user)
            .bind(until_ms)
            .execute(store.pool())
            .await
            .map(drop),
    }
    .unwrap();
}

fn now_ms() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(now.as_millis()).unwrap()
}

/// A `session.<kind>` event for `user`'s `session`.
fn session_event(kind: &str, session: &str, user: &str) -> Value {
    json!({
        "type": format!("session.{kind}"),
        "object": "event",
        "data": {
            "object": "session",
            "id": session,
            "user_id": user,
            "client_id": "client_test",
            "status": kind,
            "created_at": 1_716_883_200_000_i64,
            "updated_at": now_ms(),
            "expire_at": now_ms() + 7 * 24 * 3_600_000,
            "abandon_at": now_ms() + 30 * 24 * 3_600_000,
            "last_active_at": now_ms(),
        }
    })
}

/// A `user.updated` event for `user` as of `updated_at`, banned or not.
fn user_updated(user: &str, updated_at: i64, banned: bool) -> Value {
    json!({
        "type": "user.updated",
        "object": "event",
        "data": {
            "object": "user",
            "id": user,
            "first_name": "Ada",
            "email_addresses": [],
            "banned": banned,
            "locked": false,
            "created_at": 1_654_012_591_514_i64,
            "updated_at": updated_at,
        }
    })
}

/// `event` signed with `secret` at `timestamp` (Unix s).
fn signed_with(event: &Value, secret: &str, timestamp: i64) -> Request<axum::body::Body> {
    svix::signed_with(secret, timestamp, event.to_string().as_bytes())
}

on_both_stores!(
    each_session_event_ends_only_that_session,
    ended_sessions_outlive_a_restart_until_no_token_can_be_valid,
    bans_follow_the_newest_state_whatever_the_order,
    bans_outlive_a_restart,
    forged_and_replayed_events_write_nothing,
);

async fn each_session_event_ends_only_that_session(backend: Backend) {
    let d = Deployment::new(backend).await;
    let a = instance(&d).await;
    for kind in ["revoked", "ended", "removed"] {
        let user = random_id("user");
        let (ended, other) = (random_id("sess"), random_id("sess"));
        let cached = d.session_token(&user, &ended);
        let other_token = d.session_token(&user, &other);
        assert_eq!(a.me(&cached).await.0, StatusCode::OK, "{kind}");
        assert_eq!(a.me(&other_token).await.0, StatusCode::OK, "{kind}");

        let before = now_ms();
        assert_eq!(
            a.deliver(&session_event(kind, &ended, &user)).await,
            (StatusCode::OK, "ended".to_owned()),
            "{kind}"
        );
        assert_eq!(
            a.me(&cached).await,
            (StatusCode::UNAUTHORIZED, "session_ended".to_owned()),
            "{kind}: the token cached before the event"
        );
        assert_eq!(
            a.me(&d.session_token(&user, &ended)).await,
            (StatusCode::UNAUTHORIZED, "session_ended".to_owned()),
            "{kind}: a new token of the session"
        );
        assert_eq!(
            a.me(&other_token).await.0,
            StatusCode::OK,
            "{kind}: the user's other session"
        );
        let rows = ended_rows(&d.db).await;
        let row = rows.iter().find(|(session, ..)| *session == ended).unwrap();
        assert_eq!(row.1, user, "{kind}");
        // Refused for the longest token lifetime (1 h) and the skew, at least.
        assert!(row.2 >= before + 3_600_000, "{kind}: until {}", row.2);
    }
}

async fn ended_sessions_outlive_a_restart_until_no_token_can_be_valid(backend: Backend) {
    let d = Deployment::new(backend).await;
    let mut a = instance(&d).await;
    let user = random_id("user");
    let (ended, other) = (random_id("sess"), random_id("sess"));
    assert_eq!(
        a.deliver(&session_event("revoked", &ended, &user)).await.1,
        "ended"
    );
    // Another instance recorded these: one in force, one no longer.
    let (recorded, expired) = (random_id("sess"), random_id("sess"));
    insert_ended(&d.db, &recorded, &user, now_ms() + 60_000).await;
    insert_ended(&d.db, &expired, &user, now_ms() - 1).await;

    // A process started afterwards: a new layer on the same database.
    a.stop_listening().await;
    let b = instance(&d).await;
    for session in [&ended, &recorded] {
        assert_eq!(
            b.me(&d.session_token(&user, session)).await,
            (StatusCode::UNAUTHORIZED, "session_ended".to_owned()),
        );
    }
    for session in [&expired, &other] {
        assert_eq!(
            b.me(&d.session_token(&user, session)).await.0,
            StatusCode::OK
        );
    }

    // Ending a session again keeps the later end, and prunes expired rows.
    let until = |rows: &[(String, String, i64)], session: &str| {
        rows.iter().find(|row| row.0 == session).map(|row| row.2)
    };
    let first = until(&ended_rows(&d.db).await, &ended).unwrap();
    assert_eq!(
        b.deliver(&session_event("ended", &recorded, &user)).await.1,
        "ended"
    );
    let rows = ended_rows(&d.db).await;
    assert_eq!(until(&rows, &ended), Some(first), "untouched");
    assert!(
        until(&rows, &recorded).unwrap() > now_ms() + 3_000_000,
        "later end kept"
    );
    assert_eq!(until(&rows, &expired), None, "pruned");
}

async fn bans_follow_the_newest_state_whatever_the_order(backend: Backend) {
    let d = Deployment::new(backend).await;
    let a = instance(&d).await;
    let user = random_id("user");
    let token = d.session_token(&user, &random_id("sess"));
    assert_eq!(a.me(&token).await.0, StatusCode::OK);
    assert_eq!(banned_in_row(&d.db, &user).await, Some(false));

    assert_eq!(
        a.deliver(&user_updated(&user, 2_000, true)).await,
        (StatusCode::OK, "updated".to_owned())
    );
    let banned = (StatusCode::UNAUTHORIZED, "user_banned".to_owned());
    assert_eq!(a.me(&token).await, banned, "the cached token");
    assert_eq!(banned_in_row(&d.db, &user).await, Some(true));

    // An older unban, delivered late: changes nothing.
    assert_eq!(
        a.deliver(&user_updated(&user, 1_000, false)).await.1,
        "stale"
    );
    assert_eq!(a.me(&token).await, banned);
    assert_eq!(banned_in_row(&d.db, &user).await, Some(true));

    // The newer unban lifts it.
    assert_eq!(
        a.deliver(&user_updated(&user, 3_000, false)).await.1,
        "updated"
    );
    assert_eq!(a.me(&token).await.0, StatusCode::OK);
    assert_eq!(banned_in_row(&d.db, &user).await, Some(false));

    // An older ban after it: changes nothing.
    assert_eq!(
        a.deliver(&user_updated(&user, 2_500, true)).await.1,
        "stale"
    );
    assert_eq!(a.me(&token).await.0, StatusCode::OK);
    assert_eq!(banned_in_row(&d.db, &user).await, Some(false));

    // A ban of a user never seen makes a banned row; their first request is refused.
    let newcomer = random_id("user");
    assert_eq!(
        a.deliver(&user_updated(&newcomer, 1_000, true)).await.1,
        "created"
    );
    assert_eq!(banned_in_row(&d.db, &newcomer).await, Some(true));
    let token = d.session_token(&newcomer, &random_id("sess"));
    assert_eq!(a.me(&token).await, banned);
}

async fn bans_outlive_a_restart(backend: Backend) {
    let d = Deployment::new(backend).await;
    let mut a = instance(&d).await;
    let user = random_id("user");
    let token = d.session_token(&user, &random_id("sess"));
    assert_eq!(a.me(&token).await.0, StatusCode::OK);
    assert_eq!(
        a.deliver(&user_updated(&user, 2_000, true)).await.1,
        "updated"
    );
    a.stop_listening().await;

    let b = instance(&d).await;
    let banned = (StatusCode::UNAUTHORIZED, "user_banned".to_owned());
    assert_eq!(b.me(&token).await, banned, "read from the row");
    assert_eq!(
        b.me(&d.session_token(&user, &random_id("sess"))).await,
        banned,
        "any session"
    );
    // And unbanned through the restarted instance.
    assert_eq!(
        b.deliver(&user_updated(&user, 3_000, false)).await.1,
        "updated"
    );
    assert_eq!(b.me(&token).await.0, StatusCode::OK);
}

async fn forged_and_replayed_events_write_nothing(backend: Backend) {
    let d = Deployment::new(backend).await;
    let a = instance(&d).await;
    let user = random_id("user");
    let session = random_id("sess");
    let token = d.session_token(&user, &session);
    assert_eq!(a.me(&token).await.0, StatusCode::OK);
    let now = now_ms() / 1000;
    let forged = "whsec_dW5rbm93bi1zZWNyZXQtb2YtMjQtYnl0ZXM=";
    for event in [
        session_event("revoked", &session, &user),
        user_updated(&user, now_ms(), true),
    ] {
        assert_eq!(
            a.send(signed_with(&event, forged, now)).await,
            (StatusCode::UNAUTHORIZED, "invalid_signature".to_owned()),
            "forged"
        );
        // A real delivery, sent again ten minutes later.
        assert_eq!(
            a.send(signed_with(&event, SECRET, now - 600)).await,
            (StatusCode::UNAUTHORIZED, "timestamp_too_old".to_owned()),
            "replayed"
        );
    }
    assert_eq!(ended_rows(&d.db).await, []);
    assert_eq!(banned_in_row(&d.db, &user).await, Some(false));
    assert_eq!(a.me(&token).await.0, StatusCode::OK, "nothing refused");
}

fn summary(what: &str, mut times: Vec<Duration>) {
    times.sort();
    let (median, worst) = (times[times.len() / 2], times[times.len() - 1]);
    println!(
        "{what} over {} events: median {median:?}, worst {worst:?}",
        times.len()
    );
    assert!(worst < PROPAGATION_LIMIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_and_bans_reach_every_postgres_instance_within_a_second() {
    let d = Deployment::new(Backend::Postgres).await;
    let (a, b, c) = (instance(&d).await, instance(&d).await, instance(&d).await);
    let mut revocations = Vec::new();
    let mut bans = Vec::new();
    let mut unbans = Vec::new();
    for _ in 0..30 {
        let Served {
            user,
            session,
            token,
        } = d.served_by(&[&a, &b, &c]).await;
        let revoked = session_event("revoked", &session, &user);
        let started = Instant::now();
        let (answer, seen) = tokio::join!(a.deliver(&revoked), async {
            let b_seen = b.refused(&token, "session_ended", started, PROPAGATION_LIMIT);
            let c_seen = c.refused(&token, "session_ended", started, PROPAGATION_LIMIT);
            let (b_seen, c_seen) = tokio::join!(b_seen, c_seen);
            b_seen.max(c_seen)
        });
        assert_eq!(answer.1, "ended");
        revocations.push(seen);

        let Served { user, token, .. } = d.served_by(&[&a, &b, &c]).await;
        for (banned, version, code, times) in [
            (true, 2_000, "user_banned", &mut bans),
            (false, 3_000, "", &mut unbans),
        ] {
            let event = user_updated(&user, version, banned);
            let started = Instant::now();
            let (answer, seen) = tokio::join!(a.deliver(&event), async {
                if banned {
                    let b_seen = b.refused(&token, code, started, PROPAGATION_LIMIT);
                    let c_seen = c.refused(&token, code, started, PROPAGATION_LIMIT);
                    let (b_seen, c_seen) = tokio::join!(b_seen, c_seen);
                    b_seen.max(c_seen)
                } else {
                    served_again(&[&b, &c], &token, started).await
                }
            });
            assert_eq!(answer.1, "updated");
            times.push(seen);
        }
    }
    summary("session revocation", revocations);
    summary("ban", bans);
    summary("unban", unbans);

    // An instance started after a revocation refuses the session.
    let Served {
        user,
        session,
        token,
    } = d.served_by(&[&a]).await;
    assert_eq!(
        a.deliver(&session_event("revoked", &session, &user))
            .await
            .1,
        "ended"
    );
    let late = instance(&d).await;
    assert_eq!(
        late.me(&token).await,
        (StatusCode::UNAUTHORIZED, "session_ended".to_owned())
    );
}

/// Waits until every instance serves `token` again; the time since `since`.
async fn served_again(instances: &[&Instance], token: &str, since: Instant) -> Duration {
    for instance in instances {
        loop {
            match instance.me(token).await {
                (StatusCode::OK, _) => break,
                (StatusCode::UNAUTHORIZED, code) if code == "user_banned" => {}
                other => panic!("unexpected answer: {other:?}"),
            }
            assert!(since.elapsed() < PROPAGATION_LIMIT, "still refused");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    since.elapsed()
}

/// Two processes on one SQLite file hear nothing of each other: a ban
/// written in the row reaches the other at its next lookup of the user, an
/// ended session only when it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sqlite_process_sees_bans_in_the_row_and_ended_sessions_at_start() {
    let d = Deployment::new(Backend::Sqlite).await;
    let (a, b) = (instance(&d).await, instance(&d).await);
    let user = random_id("user");
    let (ended, other) = (random_id("sess"), random_id("sess"));
    let token = d.session_token(&user, &ended);
    assert_eq!(b.me(&token).await.0, StatusCode::OK);

    assert_eq!(
        a.deliver(&session_event("revoked", &ended, &user)).await.1,
        "ended"
    );
    assert_eq!(b.me(&token).await.0, StatusCode::OK, "not heard by b");
    let c = instance(&d).await;
    assert_eq!(
        c.me(&token).await,
        (StatusCode::UNAUTHORIZED, "session_ended".to_owned()),
        "read by a process started afterwards"
    );

    let banned_user = random_id("user");
    assert_eq!(
        a.deliver(&user_updated(&banned_user, 2_000, true)).await.1,
        "created"
    );
    assert_eq!(
        b.me(&d.session_token(&banned_user, &other)).await,
        (StatusCode::UNAUTHORIZED, "user_banned".to_owned()),
        "b's first lookup of the user reads the row"
    );
}

/// A listener that was deaf while a session ended and a ban was lifted
/// catches up when it listens again: it reads the ended sessions, and drops
/// the ban it held in memory for the row's word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_deaf_during_a_revocation_and_an_unban_catches_up() {
    let d = Deployment::new(Backend::Postgres).await;
    let proxy = postgres_proxy().await;
    let a = instance(&d).await;
    let b = d
        .instance()
        .store_through(&proxy)
        .through_setup()
        .start()
        .await;
    let Served {
        user,
        session,
        token,
    } = d.served_by(&[&a, &b]).await;
    let Served {
        user: banned_user,
        token: banned_token,
        ..
    } = d.served_by(&[&a, &b]).await;
    assert_eq!(
        a.deliver(&user_updated(&banned_user, 2_000, true)).await.1,
        "updated"
    );
    b.refused(
        &banned_token,
        "user_banned",
        Instant::now(),
        PROPAGATION_LIMIT,
    )
    .await;

    proxy.set(proxy::Link::Down);
    assert_eq!(
        a.deliver(&session_event("revoked", &session, &user))
            .await
            .1,
        "ended"
    );
    assert_eq!(
        a.deliver(&user_updated(&banned_user, 3_000, false)).await.1,
        "updated"
    );
    proxy.set(proxy::Link::Up);

    let back = Instant::now();
    let ended = (StatusCode::UNAUTHORIZED, "session_ended".to_owned());
    let took = until(&b, &token, ended, back).await;
    println!("ended session refused {took:?} after the link came back");
    until(&b, &banned_token, (StatusCode::OK, String::new()), back).await;
}

/// Waits until `token` gets `wanted` from `instance`, through the
/// answers of a link coming back (the cached answer, a refusal, or a
/// `503` while the pool's cut connections are made again); the time since
/// `since`. Panics after 15 s.
async fn until(
    instance: &Instance,
    token: &str,
    wanted: (StatusCode, String),
    since: Instant,
) -> Duration {
    loop {
        let answer = instance.me(token).await;
        if answer == wanted {
            return since.elapsed();
        }
        assert!(
            matches!(
                answer.0,
                StatusCode::OK | StatusCode::UNAUTHORIZED | StatusCode::SERVICE_UNAVAILABLE
            ),
            "{answer:?}"
        );
        assert!(
            since.elapsed() < Duration::from_secs(15),
            "still {answer:?}, not {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Without a `banned` column a ban lives in memory, and still reaches every
/// PostgreSQL instance: bans and unbans are announced whatever the mapping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_reach_every_instance_without_a_banned_column() {
    let d = Deployment::new(Backend::Postgres).await;
    let table = UserTable::default().with_banned_column(None).unwrap();
    let (a, b) = (
        d.instance().table(&table).through_setup().start().await,
        d.instance().table(&table).through_setup().start().await,
    );
    let Served { user, token, .. } = d.served_by(&[&a, &b]).await;

    let started = Instant::now();
    assert_eq!(
        a.deliver(&user_updated(&user, 2_000, true)).await.1,
        "updated"
    );
    b.refused(&token, "user_banned", started, PROPAGATION_LIMIT)
        .await;
    assert_eq!(
        banned_in_row(&d.db, &user).await,
        Some(false),
        "the column is not the store's to write"
    );

    let started = Instant::now();
    assert_eq!(
        a.deliver(&user_updated(&user, 3_000, false)).await.1,
        "updated"
    );
    served_again(&[&b], &token, started).await;
}

/// A ban the store could not record (the database was unreachable: `503`,
/// svix will deliver it again) is refused from memory, and stays refused
/// when the listener reconnects and reads the store again; svix's retry
/// then records it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_the_store_never_got_outlives_a_listener_reconnect() {
    let d = Deployment::new(Backend::Postgres).await;
    let proxy = postgres_proxy().await;
    let b = d
        .instance()
        .store_through(&proxy)
        .through_setup()
        .start()
        .await;
    let Served { user, token, .. } = d.served_by(&[&b]).await;
    // A witness of the reconnect: a session ended while the link is down,
    // which the listener reads when it listens again.
    let Served {
        user: witness_user,
        session: witness_session,
        token: witness_token,
    } = d.served_by(&[&b]).await;

    proxy.set(proxy::Link::Down);
    let ban = user_updated(&user, 2_000, true);
    let (status, code) = b.deliver(&ban).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
    );
    let banned = (StatusCode::UNAUTHORIZED, "user_banned".to_owned());
    assert_eq!(b.me(&token).await, banned, "refused from memory");
    insert_ended(&d.db, &witness_session, &witness_user, now_ms() + 600_000).await;
    proxy.set(proxy::Link::Up);

    let back = Instant::now();
    let ended = (StatusCode::UNAUTHORIZED, "session_ended".to_owned());
    until(&b, &witness_token, ended, back).await;
    assert_eq!(b.me(&token).await, banned, "kept through the reconnect");
    assert_eq!(banned_in_row(&d.db, &user).await, Some(false));

    // svix's retry: recorded in the row, and still refused.
    assert_eq!(b.deliver(&ban).await.1, "updated");
    assert_eq!(banned_in_row(&d.db, &user).await, Some(true));
    assert_eq!(b.me(&token).await, banned);
}

/// A store that keeps users but no ended sessions: `end_session` is the
/// trait's own, which records nothing.
#[derive(Clone)]
struct KeepsNoSessions(SqliteUserStore);

impl UserSync for KeepsNoSessions {
    async fn upsert_profile(
        &self,
        clerk_id: &str,
        profile: &ensure_user::store::Profile,
        updated_at_ms: i64,
    ) -> Result<ensure_user::store::SyncOutcome, ensure_user::store::StoreError> {
        self.0
            .upsert_profile(clerk_id, profile, updated_at_ms)
            .await
    }

    async fn delete_user(
        &self,
        clerk_id: &str,
        deleted_at_ms: i64,
    ) -> Result<ensure_user::store::SyncOutcome, ensure_user::store::StoreError> {
        self.0.delete_user(clerk_id, deleted_at_ms).await
    }
}

/// A receiver whose store keeps no ended sessions acknowledges a session's
/// end `200 not_kept`: the process that received it refuses the session
/// (and only it: the user's other sessions go on), nothing is written, and
/// another process on the same database still serves it.
#[tokio::test]
async fn a_session_end_the_store_does_not_keep_is_not_kept() {
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let store = sqlite_store().await;
    let layer = ensure_user::EnsureUserLayer::new(jwks.config(), store.clone());
    let receiver = ensure_user::webhook::WebhookReceiver::new(
        verifier(),
        KeepsNoSessions(store.clone()),
        layer.evictor(),
    );
    let me = |user: LocalUser| async move { Json(json!({ "id": user.id() })) };
    let app = Router::new()
        .route("/me", get(me))
        .layer(layer)
        .merge(receiver.into_router(PATH));
    let other_process =
        Router::new()
            .route("/me", get(me))
            .layer(ensure_user::EnsureUserLayer::new(
                jwks.config(),
                store.clone(),
            ));
    let status_of = async |app: &Router, token: &str| {
        let (status, body) = read(app.clone().oneshot(bearer(token)).await.unwrap()).await;
        (
            status,
            body["error"].as_str().unwrap_or_default().to_owned(),
        )
    };

    let user = random_id("user");
    let (ended, kept) = (random_id("sess"), random_id("sess"));
    let token = |session: &str| {
        let mut claims = session_claims(ISSUER, &user, 600);
        claims["sid"] = json!(session);
        key.sign(&claims)
    };
    let (ended_token, kept_token) = (token(&ended), token(&kept));
    for session in [&ended_token, &kept_token] {
        assert_eq!(status_of(&app, session).await.0, StatusCode::OK);
        assert_eq!(status_of(&other_process, session).await.0, StatusCode::OK);
    }

    let delivery = delivery(&session_event("revoked", &ended, &user));
    let (status, body) = read(app.clone().oneshot(delivery).await.unwrap()).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("not_kept")),
        "{body}"
    );
    assert_eq!(
        status_of(&app, &ended_token).await,
        (StatusCode::UNAUTHORIZED, "session_ended".to_owned())
    );
    assert_eq!(status_of(&app, &kept_token).await.0, StatusCode::OK);
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ensure_user_ended_sessions")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(rows, 0, "nothing is kept");
    assert_eq!(
        status_of(&other_process, &ended_token).await.0,
        StatusCode::OK,
        "another process was not told"
    );
}
