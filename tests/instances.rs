//! Several instances of one app on one PostgreSQL schema, each with its own
//! pools, caches and eviction listener: a deletion applied through one
//! instance's webhook receiver reaches the caches of the others. The last
//! test runs two quickstart processes.

mod common;

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use axum::Router;
use common::{
    app::app,
    instances::{Deployment, PROPAGATION_LIMIT, Served},
    proxy::Link,
    svix::{self, PATH},
    *,
};
use ensure_user::{
    EnsureUserLayer,
    testing::{SigningKey, random_id},
    webhook::WebhookReceiver,
};
use http::StatusCode;
use tokio::io::{AsyncBufReadExt, BufReader};
use tower::ServiceExt;

/// The refusal of a deleted user.
const DELETED: &str = "user_deleted";

/// The status of `GET /me` with `token`, and the error code of a refusal.
async fn me(app: &Router, token: &str) -> (StatusCode, String) {
    let response = app.clone().oneshot(bearer(token)).await.unwrap();
    let (status, body) = read(response).await;
    let code = body["error"].as_str().unwrap_or_default().to_owned();
    (status, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_reach_every_instance_within_a_second() {
    let d = Deployment::postgres().await;
    let [a, b, c] = d.instances().await;
    let mut times = Vec::new();
    for _ in 0..100 {
        let Served { user, token, .. } = d.served_by(&[&a, &b, &c]).await;
        let started = Instant::now();
        let (status, seen) = tokio::join!(a.delete(&user), async {
            let b_seen = b.refused(&token, DELETED, started, PROPAGATION_LIMIT).await;
            let c_seen = c.refused(&token, DELETED, started, PROPAGATION_LIMIT).await;
            b_seen.max(c_seen)
        });
        assert_eq!(status, StatusCode::OK);
        times.push(seen);
    }
    times.sort();
    let (median, worst) = (times[times.len() / 2], times[times.len() - 1]);
    println!(
        "propagation over {} deletions: median {median:?}, worst {worst:?}",
        times.len()
    );
    assert!(worst < PROPAGATION_LIMIT);
}

/// PostgreSQL limits channel names to 63 bytes: a schema whose name is long
/// in bytes (Cyrillic letters take two) still gets a channel, distinct from
/// a sibling schema sharing its first 45 characters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_non_ascii_schema_names_have_channels_of_their_own() {
    let tail = random_id("s")[2..10].to_lowercase();
    let d = Deployment::on_schema(&format!("пользователи_приложения_ю_{tail}")).await;
    let sibling = Deployment::on_schema(&format!("пользователи_приложения_я_{tail}")).await;
    let [a, b] = d.instances().await;
    let [other] = sibling.instances().await;
    let Served { user, token, .. } = d.served_by(&[&a, &b]).await;
    let other_token = sibling.token(&user);
    assert_eq!(other.me(&other_token).await.0, StatusCode::OK);

    let started = Instant::now();
    assert_eq!(a.delete(&user).await, StatusCode::OK);
    b.refused(&token, DELETED, started, PROPAGATION_LIMIT).await;
    assert_eq!(
        other.me(&other_token).await.0,
        StatusCode::OK,
        "another schema's deletion"
    );
    assert_eq!(
        other.user_lookups(),
        1,
        "nothing evicted on the sibling schema"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_listener_connection_is_made_again_and_the_cache_cleared() {
    let d = Deployment::postgres().await;
    let proxy = postgres_proxy().await;
    let [a, witness] = d.instances().await;
    let b = d.instance().listener_through(&proxy).start().await;
    let gone = d.served_by(&[&b, &witness]).await;
    let (gone, gone_token) = (gone.user, gone.token);
    let kept_token = d.served_by(&[&b]).await.token;
    let calls = b.user_lookups();

    proxy.set(Link::Down);
    assert_eq!(a.delete(&gone).await, StatusCode::OK);
    // The deletion was announced: an instance listening directly heard it.
    witness
        .refused(
            &gone_token,
            DELETED,
            Instant::now(),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(
        b.me(&gone_token).await.0,
        StatusCode::OK,
        "deaf: the deletion was not heard, and the cached user is still served"
    );
    assert!(b.listener_running(), "it keeps trying");

    proxy.set(Link::Up);
    let restored = Instant::now();
    let took = b
        .refused(&gone_token, DELETED, restored, Duration::from_secs(15))
        .await;
    println!("refused {took:?} after the link came back");
    assert_eq!(b.me(&kept_token).await.0, StatusCode::OK);
    assert_eq!(
        b.user_lookups(),
        calls + 2,
        "the whole cache was cleared: both users were read again"
    );

    // And deletions are heard again.
    let next = d.served_by(&[&b]).await;
    let started = Instant::now();
    assert_eq!(a.delete(&next.user).await, StatusCode::OK);
    b.refused(&next.token, DELETED, started, PROPAGATION_LIMIT)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_listener_connection_is_replaced_after_the_heartbeat() {
    let d = Deployment::postgres().await;
    let proxy = postgres_proxy().await;
    let [a] = d.instances().await;
    let config = d
        .config()
        .with_eviction_heartbeat(Duration::from_millis(300));
    let b = d
        .instance()
        .config(config)
        .listener_through(&proxy)
        .start()
        .await;
    let Served {
        user: gone,
        token: gone_token,
        ..
    } = d.served_by(&[&b]).await;

    // The listener's connection stays open but carries nothing: no error
    // will ever come from it. New connections pass.
    proxy.set(Link::Frozen);
    let started = Instant::now();
    assert_eq!(a.delete(&gone).await, StatusCode::OK);
    let took = b
        .refused(&gone_token, DELETED, started, Duration::from_secs(10))
        .await;
    println!("refused {took:?} after the deletion, over a frozen connection");
}

/// A transaction-mode pooler lets `LISTEN` through and then keeps every
/// notification from it, as the proxy does here. The store's pool may go
/// through it when the listener has a direct connection of its own; a
/// listener connecting like the pool is found deaf.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_on_a_direct_connection_hears_while_the_store_goes_through_a_pooler() {
    let d = Deployment::postgres().await;
    let pooler = postgres_proxy().await;
    pooler.set(Link::Deaf);
    // The default heartbeat: only a notification heard makes a cached user
    // go within the test.
    const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
    let config = || d.config().with_eviction_probe_timeout(PROBE_TIMEOUT);
    let [a] = d.instances().await;
    let through_pooler = || d.instance().config(config()).store_through(&pooler);
    let mut deaf = through_pooler().through_setup().start().await;
    let direct_started = Instant::now();
    let mut direct = through_pooler()
        .listener_direct()
        .through_setup()
        .start()
        .await;

    deaf.wait_for(
        |readiness| readiness.eviction_listener_deaf,
        "found deaf behind the pooler",
        Duration::from_secs(5),
    )
    .await;
    // Each listener checks itself when it starts; the check is over within
    // the probe timeout, the verdict recorded at once.
    tokio::time::sleep_until((direct_started + PROBE_TIMEOUT * 2).into()).await;
    let readiness = direct.readiness().await;
    assert!(readiness.is_ready(), "{readiness:?}");

    let user = random_id("user");
    let token = d.token(&user);
    for instance in [&deaf, &direct] {
        assert_eq!(instance.me(&token).await.0, StatusCode::OK);
    }
    let started = Instant::now();
    assert_eq!(a.delete(&user).await, StatusCode::OK);
    direct
        .refused(&token, DELETED, started, PROPAGATION_LIMIT)
        .await;
    assert_eq!(
        deaf.me(&token).await.0,
        StatusCode::OK,
        "not heard through the pooler: served from the cache until the next check"
    );
    assert!(direct.readiness().await.is_ready());
    deaf.stop_listening().await;
    direct.stop_listening().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_for_unknown_ids_are_harmless() {
    let d = Deployment::postgres().await;
    let [a, b] = d.instances().await;
    let token = d.served_by(&[&b]).await.token;
    let marker = d.served_by(&[&b]).await;

    let long = "x".repeat(7_000);
    for payload in [&random_id("user"), "", "not a clerk id \u{1F980}", &long] {
        // On the channel the instances listen on, named as the store names it.
        let channel = "'ensure_user_evict_' || md5(coalesce(current_schema(), ''))";
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT pg_notify({channel}, $1)"
        )))
        .bind(payload)
        .execute(d.db.postgres_pool())
        .await
        .unwrap();
    }
    // A deletion of a user no instance ever saw is announced as well.
    assert_eq!(a.delete(&random_id("user")).await, StatusCode::OK);
    // Notifications arrive in the order their transactions committed: once
    // the marker's deletion is heard, so was everything sent before it.
    let started = Instant::now();
    assert_eq!(a.delete(&marker.user).await, StatusCode::OK);
    b.refused(&marker.token, DELETED, started, PROPAGATION_LIMIT)
        .await;
    let calls = b.user_lookups();
    assert_eq!(b.me(&token).await.0, StatusCode::OK);
    assert_eq!(b.user_lookups(), calls, "the cached user stayed cached");
    assert!(b.listener_running());
}

/// Fails, at commit, the transaction recording a `user_doomed…` tombstone.
const FAIL_AT_COMMIT: &str = "
    CREATE FUNCTION refuse_doomed() RETURNS trigger AS $$
        BEGIN RAISE EXCEPTION 'refused at commit'; END $$ LANGUAGE plpgsql;
    CREATE CONSTRAINT TRIGGER doomed AFTER INSERT ON clerk_user_tombstones
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
        WHEN (NEW.clerk_id LIKE 'user_doomed%') EXECUTE FUNCTION refuse_doomed();";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_deletion_is_not_announced() {
    let d = Deployment::postgres().await;
    d.db.execute(FAIL_AT_COMMIT).await;
    let [a, b] = d.instances().await;
    let doomed = random_id("user_doomed");
    let token = d.token(&doomed);
    assert_eq!(b.me(&token).await.0, StatusCode::OK);
    let marker = d.served_by(&[&b]).await;

    // The notification was queued before the commit failed, and dropped with it.
    assert_eq!(a.delete(&doomed).await, StatusCode::SERVICE_UNAVAILABLE);
    // Heard in commit order: once the marker's deletion is heard, anything
    // the failed one sent would have been too.
    let started = Instant::now();
    assert_eq!(a.delete(&marker.user).await, StatusCode::OK);
    b.refused(&marker.token, DELETED, started, PROPAGATION_LIMIT)
        .await;
    let calls = b.user_lookups();
    assert_eq!(b.me(&token).await.0, StatusCode::OK);
    assert_eq!(b.user_lookups(), calls, "nothing was evicted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shut_down_listener_hears_nothing() {
    let d = Deployment::postgres().await;
    let [a, mut b, witness] = d.instances().await;
    let Served { user, token, .. } = d.served_by(&[&b, &witness]).await;
    assert!(b.listener_running());
    b.stop_listening().await;

    let started = Instant::now();
    assert_eq!(a.delete(&user).await, StatusCode::OK);
    // The deletion was announced: an instance still listening heard it.
    witness
        .refused(&token, DELETED, started, PROPAGATION_LIMIT)
        .await;
    assert_eq!(
        b.me(&token).await.0,
        StatusCode::OK,
        "served from the cache until it expires"
    );
}

/// SQLite takes the same calls; there is nothing to listen to, and the
/// instance applying a deletion evicts the user itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_listener_is_in_process_only() {
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let store = sqlite_store().await;
    let layer = EnsureUserLayer::new(jwks.config(), store.clone());
    let listener = layer.listen_for_evictions(store.pool()).await.unwrap();
    assert!(!listener.is_running());
    let receiver = WebhookReceiver::new(svix::verifier(), store, layer.evictor());
    let app = app(layer.clone()).merge(receiver.into_router(PATH));

    let user = random_id("user");
    let token = key.session_token(ISSUER, &user, 600);
    assert_eq!(me(&app, &token).await.0, StatusCode::OK);
    let delivery = svix::delivery(&user_deleted_event(&user));
    let status = app.clone().oneshot(delivery).await.unwrap().status();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me(&app, &token).await,
        (StatusCode::UNAUTHORIZED, "user_deleted".to_owned())
    );
    listener.shutdown().await;
}

/// Two quickstart processes on one schema: a deletion delivered to one is
/// refused by the other within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_quickstart_processes_share_deletions() {
    let binary = common::examples::example_binary("quickstart").await;
    let d = Deployment::postgres().await;
    let schema: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(d.db.postgres_pool())
        .await
        .unwrap();
    let url = postgres_url();
    let separator = if url.contains('?') { '&' } else { '?' };
    let database_url = format!("{url}{separator}options=-c%20search_path%3D{schema}");
    let (a, b) = tokio::join!(
        Quickstart::start(&binary, &database_url, &d.jwks),
        Quickstart::start(&binary, &database_url, &d.jwks),
    );
    let client = reqwest::Client::new();
    let user = random_id("user");
    let token = d.token(&user);
    for process in [&a, &b] {
        assert_eq!(process.me(&client, &token).await.0, StatusCode::OK);
    }

    let body = user_deleted_event(&user).to_string().into_bytes();
    let signed = svix::signed(&body);
    let delivery = client
        .post(format!("{}{PATH}", a.url))
        .headers(signed.headers().clone())
        .body(body);
    let started = Instant::now();
    let response = delivery.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    loop {
        match b.me(&client, &token).await {
            (StatusCode::UNAUTHORIZED, code) if code == "user_deleted" => break,
            (StatusCode::OK, _) => {}
            other => panic!("unexpected answer: {other:?}"),
        }
        assert!(
            started.elapsed() < PROPAGATION_LIMIT,
            "the other process still serves the user"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "the other process refused the user {:?} after the deletion was sent",
        started.elapsed()
    );
}

/// A running quickstart process, killed when dropped.
struct Quickstart {
    _process: tokio::process::Child,
    url: String,
}

impl Quickstart {
    async fn start(binary: &Path, database_url: &str, jwks: &JwksServer) -> Self {
        let mut process = tokio::process::Command::new(binary)
            .env_remove("CLERK_PUBLISHABLE_KEY")
            .env_remove("CLERK_JWT_KEY")
            .env_remove("CLERK_SECRET_KEY")
            .env_remove("CLERK_AUTHORIZED_PARTIES")
            .env("DATABASE_URL", database_url)
            .env("CLERK_JWKS_URL", jwks.url())
            .env("CLERK_ISSUER", ISSUER)
            .env("CLERK_WEBHOOK_SECRET", svix::SECRET)
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "ensure_user=info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(process.stdout.take().unwrap()).lines();
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some((_, rest)) = line.split_once("listening on ") {
                    return rest.split_whitespace().next().unwrap().to_owned();
                }
            }
            panic!("the quickstart exited before listening");
        })
        .await
        .expect("the quickstart listens within 30 s");
        // Keep reading, so that its logs never fill the pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("quickstart: {line}");
            }
        });
        Self {
            _process: process,
            url,
        }
    }

    async fn me(&self, client: &reqwest::Client, token: &str) -> (StatusCode, String) {
        let response = client
            .get(format!("{}/me", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: serde_json::Value =
            serde_json::from_str(&response.text().await.unwrap()).unwrap_or_default();
        (
            status,
            body["error"].as_str().unwrap_or_default().to_owned(),
        )
    }
}
