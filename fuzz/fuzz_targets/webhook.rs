//! Arbitrary svix headers and bodies: verification and event parsing never
//! panic, and nothing verifies without the secret.
#![no_main]

use std::{sync::LazyLock, time::SystemTime};

use ensure_user::webhook::{Event, WebhookVerifier};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

static VERIFIER: LazyLock<WebhookVerifier> = LazyLock::new(|| {
    WebhookVerifier::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".parse().unwrap())
});

fuzz_target!(|input: (&[u8], &[u8], &[u8], &[u8])| {
    let (id, timestamp, signature, body) = input;
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("svix-id", id),
        ("svix-timestamp", timestamp),
        ("svix-signature", signature),
    ] {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.insert(name, value);
        }
    }
    assert!(VERIFIER.verify(&headers, body, SystemTime::now()).is_err());
    let _ = Event::parse(body);
});
