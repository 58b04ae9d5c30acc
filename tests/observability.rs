//! What operators see: metrics, logs without secrets, readiness.

mod common;

use common::{app::app, *};
use ensure_user::{
    Config, EnsureUserLayer, KeySource,
    testing::{SigningKey, random_id, svix_signature},
    webhook::WebhookReceiver,
};
use http::StatusCode;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde_json::json;
use tower::ServiceExt;

/// A counter's name, labels and value.
type Counter = (String, Vec<(String, String)>, u64);

/// One test owns the process-wide metrics recorder; the rest of this binary
/// runs inside it, in sequence.
#[tokio::test(flavor = "current_thread")]
async fn operators_see_metrics_and_logs_without_secrets_and_readiness() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let logs = Logs::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber(tracing::Level::TRACE));

    // Keys from the "Backend API" with a secret key that must never be logged.
    const SECRET: &str = "sk_test_TOPSECRETvalue123";
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let config = Config::new(
        ISSUER,
        KeySource::backend_api(format!("http://{}", jwks.addr), SECRET),
    )
    .with_key_refetch_cooldown(std::time::Duration::ZERO);
    let store = sqlite_store().await;
    let pool = store.pool().clone();
    let layer = EnsureUserLayer::new(config.clone(), store.clone());
    let app = app(layer.clone());
    let token = key.session_token(ISSUER, &random_id("user"), 60);

    let readiness = layer.readiness().await;
    assert!(readiness.is_ready(), "{readiness:?}");
    assert_eq!(readiness.keys_held, 1);

    assert_eq!(
        app.clone().oneshot(bearer(&token)).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        app.clone().oneshot(bearer(&token)).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        app.clone().oneshot(bearer("bad")).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    jwks.fail_with(500);
    let rotated = SigningKey::generate("ins_rotated").session_token(ISSUER, &random_id("user"), 60);
    assert_eq!(
        app.clone()
            .oneshot(bearer(&rotated))
            .await
            .unwrap()
            .status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    // Webhook deliveries: one applied, one refused for its signature.
    let receiver = WebhookReceiver::new(svix::verifier(), store, layer.evictor());
    let body = json!({"type": "user.deleted", "object": "event",
        "data": {"id": random_id("user"), "object": "user", "deleted": true}})
    .to_string();
    let now = svix::now();
    let signature = svix_signature(svix::SECRET, "msg_1", now, body.as_bytes());
    for (signature, status) in [
        (signature.as_str(), StatusCode::OK),
        (
            "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let delivery = svix::request("msg_1", &now.to_string(), signature, body.clone());
        assert_eq!(
            receiver.clone().oneshot(delivery).await.unwrap().status(),
            status
        );
    }

    let counters: Vec<Counter> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| match value {
            DebugValue::Counter(n) => Some((
                key.key().name().to_owned(),
                key.key()
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect(),
                n,
            )),
            _ => None,
        })
        .collect();
    let count = |name: &str, label: (&str, &str)| {
        counters
            .iter()
            .filter(|(n, labels, _)| {
                n == name && labels.iter().any(|(k, v)| k == label.0 && v == label.1)
            })
            .map(|(_, _, n)| *n)
            .sum::<u64>()
    };
    assert_eq!(count("ensure_user_token_cache_total", ("result", "hit")), 1);
    assert_eq!(
        count("ensure_user_token_cache_total", ("result", "miss")),
        3
    );
    assert_eq!(count("ensure_user_user_cache_total", ("result", "miss")), 1);
    assert_eq!(count("ensure_user_user_cache_total", ("result", "hit")), 1);
    assert_eq!(
        count("ensure_user_store_calls_total", ("outcome", "created")),
        1
    );
    assert_eq!(
        count("ensure_user_rejections_total", ("code", "malformed_token")),
        1
    );
    assert_eq!(
        count("ensure_user_rejections_total", ("code", "keys_unavailable")),
        1
    );
    assert_eq!(count("ensure_user_key_fetches_total", ("result", "ok")), 1);
    assert_eq!(
        count(
            "ensure_user_webhook_deliveries_total",
            ("outcome", "applied")
        ),
        1
    );
    assert_eq!(
        count(
            "ensure_user_webhook_deliveries_total",
            ("outcome", "invalid_signature")
        ),
        1
    );
    assert_eq!(
        count("ensure_user_key_fetches_total", ("result", "error")),
        1
    );

    // Logs: the reasons are there, the secrets and tokens are not.
    let text = logs.text();
    assert!(text.contains("malformed_token"), "{text}");
    assert!(text.contains("keys_unavailable"), "{text}");
    assert!(text.contains("signing key fetch failed"), "{text}");
    assert!(text.contains("created local user"), "{text}");
    for secret in [SECRET, token.as_str(), rotated.as_str()] {
        assert!(!text.contains(secret), "a secret leaked into the logs");
    }
    let signature = token.rsplit('.').next().unwrap();
    assert!(!text.contains(signature));

    // Debug output of what an app might log is redacted.
    let shown = format!("{config:?} {layer:?} {key:?}");
    assert!(
        !shown.contains(SECRET) && !shown.contains("TOPSECRET"),
        "{shown}"
    );
    assert!(shown.contains("<redacted>"), "{shown}");

    // Readiness follows the store.
    pool.close().await;
    let readiness = layer.readiness().await;
    assert!(!readiness.store_reachable);
    assert!(readiness.key_endpoint_failing);
    assert!(!readiness.is_ready());

    // And a layer whose key endpoint never answered is not ready.
    let down = JwksServer::start(&[&key]).await;
    down.fail_with(503);
    let cold = EnsureUserLayer::new(down.config(), sqlite_store().await);
    let readiness = cold.readiness().await;
    assert_eq!((readiness.keys_held, readiness.is_ready()), (0, false));
    assert!(!logs.text().contains(SECRET));
}
