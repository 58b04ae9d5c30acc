//! A listener that `LISTEN`s and hears nothing, as behind a transaction-mode
//! pooler: a proxy keeps PostgreSQL's notifications from it. The instance
//! says so (readiness, a metric, an error log), re-checks its cached
//! answers against the database while deaf, and heals when notifications
//! pass again. One test: it owns the process's metrics recorder and logs.

mod common;

use std::time::{Duration, Instant};

use common::{
    instances::{Deployment, PROPAGATION_LIMIT},
    proxy::Link,
    *,
};
use ensure_user::testing::random_id;
use http::StatusCode;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// The deaf instance's silence before a check, and while deaf, between checks.
const HEARTBEAT: Duration = Duration::from_millis(300);
/// How long its check may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// What the configuration promises: deafness reported within the heartbeat
/// and the probe timeout, and cached answers relied on no longer while deaf.
const BOUND: Duration = HEARTBEAT.saturating_add(PROBE_TIMEOUT);
/// Room for a busy machine on top of the bound.
const SLACK: Duration = Duration::from_secs(2);

const DEAF_LOG: &str = "eviction listener is deaf";
const HEALED_LOG: &str = "eviction listener hears its channel again";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deaf_listener_is_reported_relies_on_the_store_and_heals() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let logs = Logs::capture_globally(tracing::Level::INFO);

    let d = Deployment::postgres().await;
    let proxy = postgres_proxy().await;

    // A applies deletions; B's store reaches the database directly, its
    // listener through the proxy.
    let [mut a] = d.instances().await;
    let config = d
        .config()
        .with_eviction_heartbeat(HEARTBEAT)
        .with_eviction_probe_timeout(PROBE_TIMEOUT);
    let mut b = d
        .instance()
        .config(config)
        .listener_through(&proxy)
        .start()
        .await;
    b.listening(SLACK).await;
    assert_eq!(deaf_gauge(&snapshotter), Some(0.0), "reported hearing");

    let user = random_id("user");
    let token = d.token(&user);
    assert_eq!(b.me(&token).await.0, StatusCode::OK);

    // Notifications stop reaching B's listener; its connection still answers.
    proxy.set(Link::Deaf);
    let went_deaf = Instant::now();
    let readiness = b
        .wait_for(|r| r.eviction_listener_deaf, "deaf", BOUND + SLACK)
        .await;
    let took = went_deaf.elapsed();
    println!("deafness reported after {took:?} (bound {BOUND:?})");
    assert!(!readiness.is_ready(), "{readiness:?}");
    assert!(readiness.store_reachable && readiness.keys_held > 0);
    let json = serde_json::to_value(readiness).unwrap();
    assert_eq!(json["eviction_listener_deaf"], true, "{json}");
    assert_eq!(
        json["store_reachable"], true,
        "the other reasons stay: {json}"
    );
    assert!(proxy.notifications_dropped() > 0, "its probes were dropped");
    assert_eq!(deaf_gauge(&snapshotter), Some(1.0));
    let log = logs.text();
    let line = log
        .lines()
        .find(|line| line.contains(DEAF_LOG))
        .unwrap_or_else(|| panic!("no error logged:\n{log}"));
    assert!(line.contains("ERROR"), "{line}");
    for named in [
        "transaction-mode pooler",
        "PgBouncer",
        "listen_for_evictions_on",
    ] {
        assert!(line.contains(named), "the log names {named}: {line}");
    }

    // A deletion applied through A is not heard by B, and refused anyway
    // once B re-checks its cached answer against the store.
    let deleted = Instant::now();
    assert_eq!(a.delete(&user).await, StatusCode::OK);
    let took = b
        .refused(&token, "user_deleted", deleted, BOUND + SLACK)
        .await;
    println!("deleted user refused by the deaf instance after {took:?}");

    // The error is logged once, however many checks fail.
    let dropped = proxy.notifications_dropped();
    wait_until("two more probes dropped", SLACK + 2 * BOUND, || {
        proxy.notifications_dropped() >= dropped + 2
    })
    .await;
    assert!(b.readiness().await.eviction_listener_deaf);
    assert_eq!(logs.text().matches(DEAF_LOG).count(), 1, "{}", logs.text());

    // Notifications pass again: B says so, once, and is ready.
    proxy.set(Link::Up);
    let healed = Instant::now();
    b.wait_for(
        |readiness| readiness.is_ready(),
        "ready again",
        BOUND + SLACK,
    )
    .await;
    println!("hearing reported after {:?}", healed.elapsed());
    assert_eq!(deaf_gauge(&snapshotter), Some(0.0));
    assert_eq!(
        logs.text().matches(HEALED_LOG).count(),
        1,
        "{}",
        logs.text()
    );

    // And deletions are heard again, faster than any re-check.
    let user = random_id("user");
    let token = d.token(&user);
    assert_eq!(b.me(&token).await.0, StatusCode::OK);
    let deleted = Instant::now();
    assert_eq!(a.delete(&user).await, StatusCode::OK);
    b.refused(&token, "user_deleted", deleted, PROPAGATION_LIMIT)
        .await;
    assert_eq!(logs.text().matches(DEAF_LOG).count(), 1, "{}", logs.text());

    b.stop_listening().await;
    a.stop_listening().await;
}

/// Polls `done` until it holds; panics after `limit`.
async fn wait_until(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "not {what} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The deafness gauge's value, if it was ever set.
fn deaf_gauge(snapshotter: &Snapshotter) -> Option<f64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find_map(|(key, _, _, value)| match value {
            DebugValue::Gauge(value)
                if key.key().name() == "ensure_user_eviction_listener_deaf" =>
            {
                Some(value.into_inner())
            }
            _ => None,
        })
}
