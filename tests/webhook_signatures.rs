//! What the webhook receiver accepts and refuses before an event is
//! applied: svix's signature lists and rotated secrets pass; tampered,
//! re-dated, replayed, mis-signed, malformed and oversized deliveries are
//! refused with their code and change nothing, on both stores.

mod common;

use axum::body::Body;
use common::{
    svix::{PATH, SECRET, UNKNOWN_SECRET, now, request, signed, signed_with},
    webhook_app::{Harness, created, profile, updated},
    *,
};
use ensure_user::{
    testing::{self, random_id, svix_signature},
    webhook::{WebhookSecret, WebhookVerifier},
};
use http::{Request, StatusCode};
use tower::ServiceExt;

/// The secret a rotation moves to.
const NEW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

on_both_stores!(
    hostile_deliveries_change_nothing,
    signature_lists_and_rotated_secrets,
    deliveries_built_for_an_apps_tests,
);

/// A verifier accepting each of `secrets`.
fn verifier(secrets: &[&str]) -> WebhookVerifier {
    let mut secrets = secrets.iter().map(|s| s.parse::<WebhookSecret>().unwrap());
    let first = WebhookVerifier::new(secrets.next().unwrap());
    secrets.fold(first, WebhookVerifier::with_secret)
}

/// What `testing::webhook_delivery` builds for an app's tests is what the
/// receiver accepts from svix; signed with another secret, it is refused
/// and changes nothing.
async fn deliveries_built_for_an_apps_tests(backend: Backend) {
    let h = Harness::new(backend).await;
    let user = random_id("user");
    let event = created(&user, 1_000);

    let forged = testing::webhook_delivery(PATH, UNKNOWN_SECRET, &event);
    let (status, body) = h.send(forged.map(Body::from)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_signature");
    assert_eq!(h.db.rows_of(&user).await, 0);

    let delivery = testing::webhook_delivery(PATH, SECRET, &event);
    assert!(
        delivery.headers()["svix-id"]
            .to_str()
            .unwrap()
            .starts_with("msg_")
    );
    let (status, body) = h.send(delivery.map(Body::from)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "created");
    assert_eq!(
        h.db.profile(&user).await,
        profile("ada@example.com", "Ada", 1_000)
    );
}

async fn hostile_deliveries_change_nothing(backend: Backend) {
    let h = Harness::new(backend).await;
    let user = random_id("user");
    let gone = random_id("user");
    h.outcome(&created(&user, 1_000)).await;
    h.outcome(&user_deleted_event(&gone)).await;
    let before = h.db.dump().await;

    let update = updated(&user, 9_000, "Mallory").to_string();
    let update = update.as_bytes();
    let delete = user_deleted_event(&user).to_string();
    let delete = delete.as_bytes();
    let t = now();
    let valid = svix_signature(SECRET, "msg_1", t, update);
    let mut oversized = br#"{"type":"user.deleted","pad":""#.to_vec();
    oversized.resize(1024 * 1024 + 1, b' ');

    let cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        (
            "tampered body",
            request("msg_1", &t.to_string(), &valid, delete.to_vec()),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "wrong secret",
            signed_with(UNKNOWN_SECRET, t, delete),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "signature of another message id",
            request("msg_2", &t.to_string(), &valid, update.to_vec()),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "stale timestamp (replay)",
            signed_with(SECRET, t - 301, delete),
            StatusCode::UNAUTHORIZED,
            "timestamp_too_old",
        ),
        (
            "future timestamp",
            // A minute past the tolerance: the clock moves on while the
            // cases run (the exact boundary is a unit test with a fixed clock).
            signed_with(SECRET, t + 360, delete),
            StatusCode::UNAUTHORIZED,
            "timestamp_in_future",
        ),
        (
            "re-dated: fresh timestamp, old signature",
            {
                let old = svix_signature(SECRET, "msg_3", t - 400, delete);
                request("msg_3", &t.to_string(), &old, delete.to_vec())
            },
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "empty signature list",
            request("msg_1", &t.to_string(), "v1,", update.to_vec()),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "non-integer timestamp",
            request("msg_1", "soon", &valid, update.to_vec()),
            StatusCode::BAD_REQUEST,
            "invalid_timestamp",
        ),
        (
            "malformed JSON, validly signed",
            signed(b"{\"type\":\"user.deleted\","),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "deletion without a user id, validly signed",
            signed(br#"{"type":"user.deleted","data":{"deleted":true}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_event",
        ),
        (
            "an id no token could carry, validly signed",
            signed(
                updated("user_with space", 9_000, "Mallory")
                    .to_string()
                    .as_bytes(),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_event",
        ),
        (
            "a deletion of a non-ASCII id, validly signed",
            signed(
                user_deleted_event("user_\u{e9}t\u{e9}")
                    .to_string()
                    .as_bytes(),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_event",
        ),
        (
            "update without updated_at, validly signed",
            signed(format!(r#"{{"type":"user.updated","data":{{"id":"{user}"}}}}"#).as_bytes()),
            StatusCode::BAD_REQUEST,
            "invalid_event",
        ),
        (
            "body over 1 MiB, validly signed",
            signed(&oversized),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            "GET",
            Request::get(PATH).body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "",
        ),
    ];
    let missing = ["svix-id", "svix-timestamp", "svix-signature"].map(|name| {
        let mut request = signed_with(SECRET, t, delete);
        request.headers_mut().remove(name);
        (name, request, StatusCode::BAD_REQUEST, "missing_header")
    });
    for (name, request, status, code) in cases.into_iter().chain(missing) {
        let response = h.app.clone().oneshot(request).await.unwrap();
        let (got, body) = read(response).await;
        assert_eq!(got, status, "{name}: {body}");
        if !code.is_empty() {
            assert_eq!(body["error"], code, "{name}");
            let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["error", "message"], "{name}");
        }
        assert_eq!(h.db.dump().await, before, "{name} changed the database");
    }
}

async fn signature_lists_and_rotated_secrets(backend: Backend) {
    let h = Harness::build(backend, verifier(&[SECRET, NEW_SECRET]), |r| r).await;
    let user = random_id("user");
    let t = now();

    // Several signatures in one header: unknown versions, garbage, then the real one.
    let body = created(&user, 1_000).to_string();
    let real = svix_signature(SECRET, "msg_list", t, body.as_bytes());
    let list = format!(
        "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v2,{} v1a,xyz v1,AAAA {real}",
        &real[3..]
    );
    let (status, reply) = h
        .send(request("msg_list", &t.to_string(), &list, body))
        .await;
    assert_eq!(
        (status, reply["outcome"].as_str()),
        (StatusCode::OK, Some("created"))
    );

    // During a rotation svix signs with both secrets; either one alone passes too.
    let body = updated(&user, 2_000, "Both").to_string();
    let both = format!(
        "{} {}",
        svix_signature(SECRET, "msg_both", t, body.as_bytes()),
        svix_signature(NEW_SECRET, "msg_both", t, body.as_bytes())
    );
    let (status, _) = h
        .send(request("msg_both", &t.to_string(), &both, body))
        .await;
    assert_eq!(status, StatusCode::OK);
    let only_new = updated(&user, 3_000, "New").to_string();
    let (status, reply) = h
        .send(signed_with(NEW_SECRET, t, only_new.as_bytes()))
        .await;
    assert_eq!(
        (status, reply["outcome"].as_str()),
        (StatusCode::OK, Some("updated"))
    );
    assert_eq!(
        h.db.profile(&user).await,
        profile("new@example.com", "New", 3_000)
    );

    let before = h.db.dump().await;
    let (status, reply) = h
        .send(signed_with(
            UNKNOWN_SECRET,
            t,
            user_deleted_event(&user).to_string().as_bytes(),
        ))
        .await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_signature"))
    );
    assert_eq!(h.db.dump().await, before);
}

/// A body that records whether anyone asked it for data.
struct WatchedBody {
    read: std::sync::Arc<std::sync::atomic::AtomicBool>,
    data: Option<bytes::Bytes>,
}

impl http_body::Body for WatchedBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.read.store(true, std::sync::atomic::Ordering::SeqCst);
        std::task::Poll::Ready(
            self.data
                .take()
                .map(|data| Ok(http_body::Frame::data(data))),
        )
    }
}

/// A request that cannot pass on its headers alone (none, a stale or a
/// malformed timestamp) is refused before a byte of its body is read; one
/// whose headers pass has its body read and checked.
#[tokio::test]
async fn headers_are_checked_before_the_body_is_read() {
    let h = Harness::new(Backend::Sqlite).await;
    let body = user_deleted_event(&random_id("user")).to_string();
    let signed_now = signed_with(SECRET, now(), body.as_bytes());
    let stale = signed_with(SECRET, now() - 3_600, body.as_bytes());
    let mut malformed = signed_with(SECRET, now(), body.as_bytes());
    malformed
        .headers_mut()
        .insert("svix-timestamp", "soon".parse().unwrap());
    let bare = Request::post(PATH).body(Body::empty()).unwrap();
    let cases = [
        (
            "no svix headers",
            bare,
            StatusCode::BAD_REQUEST,
            "missing_header",
            false,
        ),
        (
            "stale timestamp",
            stale,
            StatusCode::UNAUTHORIZED,
            "timestamp_too_old",
            false,
        ),
        (
            "malformed timestamp",
            malformed,
            StatusCode::BAD_REQUEST,
            "invalid_timestamp",
            false,
        ),
        (
            "fresh headers",
            signed_now,
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            true,
        ),
    ];
    for (name, request, status, code, body_read) in cases {
        let read_flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (parts, _) = request.into_parts();
        let request = Request::from_parts(
            parts,
            WatchedBody {
                read: read_flag.clone(),
                data: Some(bytes::Bytes::from(vec![b' '; 64 * 1024])),
            },
        );
        let response = h.receiver.clone().oneshot(request).await.unwrap();
        let (got, reply) = read(response).await;
        assert_eq!(
            (got, reply["error"].as_str()),
            (status, Some(code)),
            "{name}"
        );
        assert_eq!(
            read_flag.load(std::sync::atomic::Ordering::SeqCst),
            body_read,
            "{name}: whether the body was read"
        );
    }
}
