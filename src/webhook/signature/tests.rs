//! Tests of svix signature verification: the official vectors, tolerance
//! bounds, header limits, rotation and hostile inputs.

use super::*;
use http::HeaderValue;
use proptest::prelude::*;

const SECRET_A: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const ID_A: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
const TS_A: i64 = 1_649_367_553;
const BODY_A: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
const SIG_A: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

const SECRET_B: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID_B: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TS_B: i64 = 1_614_265_330;
const BODY_B: &[u8] = br#"{"test": 2432232314}"#;
const SIG_B: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

const ID_C: &str = "msg_2g7np7Hrk0SN6kj5EDMLDaKNL0S";
const TS_C: i64 = 1_716_883_200;
const BODY_C: &[u8] = br#"{"data":{"deleted":true,"id":"user_2g7np7Hrk0SN6kj5EDMLDaKNL0S","object":"user"},"event_attributes":{"http_request":{"client_ip":"","user_agent":""}},"instance_id":"ins_2g7np7Hrk0SN6kj5EDMLDaKNL0S","object":"event","timestamp":1716883200000,"type":"user.deleted"}"#;
const SIG_C: &str = "v1,rT4rOS4xnEieTsmDOgi//kQdxDu7TOXn6JsIeBZS88Y=";

fn at(seconds: i64) -> SystemTime {
    if seconds >= 0 {
        UNIX_EPOCH + Duration::from_secs(seconds.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
    }
}

fn secret(text: &str) -> WebhookSecret {
    WebhookSecret::new(text).expect("valid test secret")
}

fn verifier(text: &str) -> WebhookVerifier {
    WebhookVerifier::new(secret(text))
}

fn headers(id: &str, ts: &str, sig: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert("svix-id", HeaderValue::from_str(id).unwrap());
    map.insert("svix-timestamp", HeaderValue::from_str(ts).unwrap());
    map.insert("svix-signature", HeaderValue::from_str(sig).unwrap());
    map
}

fn check(
    v: &WebhookVerifier,
    id: &str,
    ts: i64,
    sig: &str,
    body: &[u8],
) -> Result<VerifiedDelivery, SignatureError> {
    v.verify(&headers(id, &ts.to_string(), sig), body, at(ts))
}

#[test]
fn vector_a_signs_and_verifies() {
    assert_eq!(sign(&secret(SECRET_A), ID_A, TS_A, BODY_A), SIG_A);
    let ok = check(&verifier(SECRET_A), ID_A, TS_A, SIG_A, BODY_A).unwrap();
    assert_eq!(
        ok,
        VerifiedDelivery {
            id: ID_A.to_owned(),
            timestamp: TS_A
        }
    );
}

#[test]
fn vector_a_wrong_signature_fails() {
    let bad = "v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU=";
    assert_eq!(
        check(&verifier(SECRET_A), ID_A, TS_A, bad, BODY_A),
        Err(SignatureError::InvalidSignature)
    );
}

#[test]
fn vector_a_tampered_inputs_fail() {
    let v = verifier(SECRET_A);
    let tampered = br#"{"email":"test@example.com","username":"test_user" }"#;
    assert!(check(&v, ID_A, TS_A, SIG_A, tampered).is_err());
    assert!(check(&v, "msg_other", TS_A, SIG_A, BODY_A).is_err());
    assert!(check(&v, ID_A, TS_A + 1, SIG_A, BODY_A).is_err());
    assert!(check(&verifier(SECRET_B), ID_A, TS_A, SIG_A, BODY_A).is_err());
}

#[test]
fn vector_b_signs_and_verifies() {
    assert_eq!(sign(&secret(SECRET_B), ID_B, TS_B, BODY_B), SIG_B);
    assert!(check(&verifier(SECRET_B), ID_B, TS_B, SIG_B, BODY_B).is_ok());
}

#[test]
fn vector_b_last_char_changed_fails() {
    let bad = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=";
    assert_eq!(
        check(&verifier(SECRET_B), ID_B, TS_B, bad, BODY_B),
        Err(SignatureError::InvalidSignature)
    );
}

#[test]
fn vector_c_clerk_deletion() {
    assert_eq!(sign(&secret(SECRET_A), ID_C, TS_C, BODY_C), SIG_C);
    assert!(check(&verifier(SECRET_A), ID_C, TS_C, SIG_C, BODY_C).is_ok());
    let flipped = SIG_C.replace("88Y=", "88Z=");
    assert_eq!(
        check(&verifier(SECRET_A), ID_C, TS_C, &flipped, BODY_C),
        Err(SignatureError::InvalidSignature)
    );
}

#[test]
fn multi_signature_header() {
    let others = [
        "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ=",
        "v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q=",
        "v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE=",
    ];
    let with_valid = format!("{} {} {SIG_A} {}", others[0], others[1], others[2]);
    let without_valid = others.join(" ");
    let v = verifier(SECRET_A);
    assert!(check(&v, ID_A, TS_A, &with_valid, BODY_A).is_ok());
    assert_eq!(
        check(&v, ID_A, TS_A, &without_valid, BODY_A),
        Err(SignatureError::InvalidSignature)
    );
}

#[test]
fn non_v1_entries_are_ignored() {
    let v = verifier(SECRET_B);
    let decoy = "Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
    let header = format!("v1,{decoy} v2,{decoy} {SIG_B} v1,{decoy}");
    assert!(check(&v, ID_B, TS_B, &header, BODY_B).is_ok());

    // The right bytes under another version label do not count.
    let relabelled = SIG_B.replacen("v1,", "v2,", 1);
    let only_other_versions = format!("{relabelled} v1a,{} v1", &SIG_B[3..]);
    assert_eq!(
        check(&v, ID_B, TS_B, &only_other_versions, BODY_B),
        Err(SignatureError::InvalidSignature)
    );
}

#[test]
fn partial_signatures_fail() {
    let v = verifier(SECRET_A);
    for partial in ["v1,", &SIG_A[..8], &SIG_A[..SIG_A.len() - 1], "v1", ","] {
        assert_eq!(
            check(&v, ID_A, TS_A, partial, BODY_A),
            Err(SignatureError::InvalidSignature),
            "{partial:?}"
        );
    }
}

#[test]
fn unpadded_signature_is_rejected() {
    let v = verifier(SECRET_A);
    let unpadded = SIG_A.trim_end_matches('=');
    assert!(check(&v, ID_A, TS_A, unpadded, BODY_A).is_err());
}

#[test]
fn secret_prefix_is_optional() {
    let bare = SECRET_B.strip_prefix("whsec_").unwrap();
    assert_eq!(sign(&secret(bare), ID_B, TS_B, BODY_B), SIG_B);
    assert!(check(&verifier(bare), ID_B, TS_B, SIG_B, BODY_B).is_ok());
    // Whitespace around the secret, e.g. from an env file, is ignored.
    let spaced = format!("  {SECRET_B}\n");
    assert_eq!(sign(&secret(&spaced), ID_B, TS_B, BODY_B), SIG_B);
}

#[test]
fn unpadded_secret_is_accepted() {
    // 32 key bytes encode to 43 characters plus one `=`.
    let key = [7_u8; 32];
    let padded = STANDARD.encode(key);
    assert!(padded.ends_with('='));
    let unpadded = padded.trim_end_matches('=');
    let a = sign(&secret(&format!("whsec_{padded}")), "msg_1", 10, b"{}");
    let b = sign(&secret(&format!("whsec_{unpadded}")), "msg_1", 10, b"{}");
    let c = sign(&secret(unpadded), "msg_1", 10, b"{}");
    assert_eq!(a, b);
    assert_eq!(a, c);
    // Truncated or extended secrets as other libraries accept them.
    assert!(WebhookSecret::new("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS").is_ok());
    assert!(WebhookSecret::new("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr").is_ok());
}

#[test]
fn bad_secrets_are_rejected() {
    assert_eq!(WebhookSecret::new("").unwrap_err(), InvalidSecret::Empty);
    assert_eq!(
        WebhookSecret::new("whsec_").unwrap_err(),
        InvalidSecret::Empty
    );
    assert_eq!(WebhookSecret::new("  ").unwrap_err(), InvalidSecret::Empty);
    assert_eq!(
        WebhookSecret::new("=").unwrap_err(),
        InvalidSecret::Encoding
    );
    assert_eq!(
        WebhookSecret::new("whsec_not*base64!").unwrap_err(),
        InvalidSecret::Encoding
    );
    assert_eq!(
        WebhookSecret::new("whsec_abc-_def").unwrap_err(),
        InvalidSecret::Encoding
    );
    assert!(
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
            .parse::<WebhookSecret>()
            .is_ok()
    );
}

/// Each error names the variable and what to put in it, in `Display` and
/// in `Debug` (what `main` prints), and never echoes the secret.
#[test]
fn secret_errors_say_what_to_set() {
    let cases = [
        (
            WebhookVerifier::from_list(" , ").unwrap_err(),
            "CLERK_WEBHOOK_SECRET is not set: copy the endpoint's signing secret (whsec_…) from \
             Clerk's Dashboard → Webhooks → your endpoint into CLERK_WEBHOOK_SECRET",
            "NotSet",
        ),
        (
            WebhookSecret::new("whsec_").unwrap_err(),
            "the webhook signing secret (CLERK_WEBHOOK_SECRET) holds no key after whsec_: copy \
             the whole signing secret from Clerk's Dashboard → Webhooks → your endpoint",
            "Empty",
        ),
        (
            WebhookSecret::new("whsec_sEcReT*value!").unwrap_err(),
            "the webhook signing secret (CLERK_WEBHOOK_SECRET) is not whsec_ followed by base64: \
             copy it again from Clerk's Dashboard → Webhooks → your endpoint, and separate \
             several secrets with spaces or commas",
            "Encoding",
        ),
    ];
    for (error, sentence, variant) in cases {
        assert_eq!(error.to_string(), sentence);
        let debug = format!("{error:?}");
        assert_eq!(debug, format!("{sentence} (InvalidSecret::{variant})"));
        assert!(!debug.contains("sEcReT"), "{debug}");
    }
}

#[test]
fn secret_lists_for_rotation() {
    let v = WebhookVerifier::from_list(&format!(" {SECRET_A},{SECRET_B}\n")).unwrap();
    assert!(check(&v, ID_A, TS_A, SIG_A, BODY_A).is_ok());
    assert!(check(&v, ID_B, TS_B, SIG_B, BODY_B).is_ok());
    let spaced = WebhookVerifier::from_list(&format!("{SECRET_B} {SECRET_A}")).unwrap();
    assert!(check(&spaced, ID_A, TS_A, SIG_A, BODY_A).is_ok());
    for empty in ["", " ", " , \n"] {
        assert_eq!(
            WebhookVerifier::from_list(empty).unwrap_err(),
            InvalidSecret::NotSet
        );
    }
    assert_eq!(
        WebhookVerifier::from_list(&format!("{SECRET_A} whsec_!!")).unwrap_err(),
        InvalidSecret::Encoding
    );
}

#[test]
fn unverified_id_is_read_like_the_verifier_reads_it() {
    let h = headers(&format!(" {ID_A} "), "1", "v1,x");
    assert_eq!(unverified_id(&h), Some(ID_A));
    let mut h = HeaderMap::new();
    assert_eq!(unverified_id(&h), None);
    h.insert("webhook-id", HeaderValue::from_static("msg_1"));
    assert_eq!(unverified_id(&h), Some("msg_1"));
    h.insert("svix-id", HeaderValue::from_bytes(b"msg_\xff").unwrap());
    assert_eq!(unverified_id(&h), None);
}

#[test]
fn secret_debug_is_redacted() {
    let v = verifier(SECRET_A);
    for text in [format!("{:?}", secret(SECRET_A)), format!("{v:?}")] {
        assert!(text.contains("redacted"), "{text}");
        assert!(!text.contains("C2FV"), "{text}");
        assert!(!text.contains("11, 97"), "{text}"); // first key bytes
    }
}

#[test]
fn rotation_accepts_any_secret() {
    let v = verifier(SECRET_B).with_secret(secret(SECRET_A));
    assert!(check(&v, ID_A, TS_A, SIG_A, BODY_A).is_ok());
    assert!(check(&v, ID_B, TS_B, SIG_B, BODY_B).is_ok());
    // Both old and new signatures in one header, as svix sends them.
    let header = format!("{} {SIG_A}", sign(&secret(SECRET_B), ID_A, TS_A, BODY_A));
    assert!(check(&verifier(SECRET_A), ID_A, TS_A, &header, BODY_A).is_ok());
    assert!(check(&verifier(SECRET_B), ID_A, TS_A, &header, BODY_A).is_ok());
}

#[test]
fn timestamp_tolerance_window() {
    let v = verifier(SECRET_A);
    let h = headers(ID_A, &TS_A.to_string(), SIG_A);
    assert!(v.verify(&h, BODY_A, at(TS_A + 300)).is_ok());
    assert!(v.verify(&h, BODY_A, at(TS_A - 300)).is_ok());
    assert_eq!(
        v.verify(&h, BODY_A, at(TS_A + 301)),
        Err(SignatureError::TimestampTooOld)
    );
    assert_eq!(
        v.verify(&h, BODY_A, at(TS_A - 301)),
        Err(SignatureError::TimestampInFuture)
    );
    // A stale timestamp is rejected even when the signature is wrong too.
    let bad = headers(ID_A, &TS_A.to_string(), "v1,AAAA");
    assert_eq!(
        v.verify(&bad, BODY_A, at(TS_A + 10_000)),
        Err(SignatureError::TimestampTooOld)
    );
}

#[test]
fn custom_tolerance() {
    let v = verifier(SECRET_A).with_tolerance(Duration::from_secs(10));
    assert_eq!(v.tolerance(), Duration::from_secs(10));
    let h = headers(ID_A, &TS_A.to_string(), SIG_A);
    assert!(v.verify(&h, BODY_A, at(TS_A + 10)).is_ok());
    assert!(v.verify(&h, BODY_A, at(TS_A + 11)).is_err());
    assert_eq!(verifier(SECRET_A).tolerance(), DEFAULT_TOLERANCE);
}

#[test]
fn extreme_timestamps_do_not_overflow() {
    let v = verifier(SECRET_A);
    for (ts, now) in [
        (i64::MAX, 0),
        (i64::MIN, 0),
        (i64::MAX, i64::MIN),
        (i64::MIN, TS_A),
    ] {
        let h = headers(ID_A, &ts.to_string(), SIG_A);
        let err = v.verify(&h, BODY_A, at(now)).unwrap_err();
        assert!(matches!(
            err,
            SignatureError::TimestampTooOld | SignatureError::TimestampInFuture
        ));
    }
    let huge = verifier(SECRET_A).with_tolerance(Duration::MAX);
    let h = headers(ID_A, &TS_A.to_string(), SIG_A);
    assert!(huge.verify(&h, BODY_A, at(0)).is_ok());
}

#[test]
fn missing_each_header() {
    let v = verifier(SECRET_A);
    for name in ["svix-id", "svix-timestamp", "svix-signature"] {
        let mut h = headers(ID_A, &TS_A.to_string(), SIG_A);
        h.remove(name);
        let err = v.verify(&h, BODY_A, at(TS_A)).unwrap_err();
        assert_eq!(err, SignatureError::MissingHeader(name));
        assert_eq!(err.code(), "missing_header");
    }
    assert_eq!(
        v.verify(&HeaderMap::new(), BODY_A, at(TS_A)),
        Err(SignatureError::MissingHeader("svix-id"))
    );
}

#[test]
fn webhook_prefixed_headers_are_a_fallback() {
    let v = verifier(SECRET_A);
    let mut h = HeaderMap::new();
    h.insert("webhook-id", HeaderValue::from_static(ID_A));
    h.insert("webhook-timestamp", HeaderValue::from_static("1649367553"));
    h.insert("webhook-signature", HeaderValue::from_static(SIG_A));
    assert!(v.verify(&h, BODY_A, at(TS_A)).is_ok());

    // Mixed: the svix name wins where both exist, per header.
    h.insert("svix-id", HeaderValue::from_static(ID_A));
    h.insert("webhook-id", HeaderValue::from_static("msg_wrong"));
    assert!(v.verify(&h, BODY_A, at(TS_A)).is_ok());
    h.insert("svix-signature", HeaderValue::from_static("v1,nope"));
    assert_eq!(
        v.verify(&h, BODY_A, at(TS_A)),
        Err(SignatureError::InvalidSignature)
    );
}

#[test]
fn non_numeric_timestamps() {
    let v = verifier(SECRET_A);
    for ts in [
        "abc",
        "1649367553.0",
        "1649367553abc",
        "0x10",
        "1e9",
        "--1",
        "99999999999999999999",
    ] {
        let h = headers(ID_A, ts, SIG_A);
        assert_eq!(
            v.verify(&h, BODY_A, at(TS_A)),
            Err(SignatureError::InvalidTimestamp),
            "{ts}"
        );
    }
    let long = "1".repeat(64);
    let h = headers(ID_A, &long, SIG_A);
    assert_eq!(
        v.verify(&h, BODY_A, at(TS_A)),
        Err(SignatureError::InvalidHeader("svix-timestamp"))
    );
}

#[test]
fn surrounding_whitespace_is_trimmed() {
    let v = verifier(SECRET_A);
    let h = headers(
        &format!(" {ID_A}\t"),
        &format!(" {TS_A} "),
        &format!("  {SIG_A}  "),
    );
    let ok = v.verify(&h, BODY_A, at(TS_A)).unwrap();
    assert_eq!(ok.id, ID_A);
}

#[test]
fn garbage_header_bytes() {
    let v = verifier(SECRET_A);
    let raw = |bytes: &[u8]| HeaderValue::from_bytes(bytes).unwrap();
    for name in ["svix-id", "svix-timestamp", "svix-signature"] {
        for bytes in [&b"\xff\xfe"[..], b"v1,\x80abc", b"caf\xc3\xa9", b"   ", b""] {
            let mut h = headers(ID_A, &TS_A.to_string(), SIG_A);
            h.insert(name, raw(bytes));
            let err = v.verify(&h, BODY_A, at(TS_A)).unwrap_err();
            assert_eq!(err, SignatureError::InvalidHeader(name), "{name} {bytes:?}");
            assert_eq!(err.code(), "invalid_header");
        }
    }
    let mut h = headers(ID_A, &TS_A.to_string(), SIG_A);
    h.insert("webhook-id", raw(b"msg_\xe2\x82\xac"));
    h.remove("svix-id");
    assert_eq!(
        v.verify(&h, BODY_A, at(TS_A)),
        Err(SignatureError::InvalidHeader("webhook-id"))
    );
}

#[test]
fn oversized_headers_are_rejected() {
    let v = verifier(SECRET_A);
    let long_sig = format!("{} {SIG_A}", "v2,x".repeat(2000));
    let h = headers(ID_A, &TS_A.to_string(), &long_sig);
    assert_eq!(
        v.verify(&h, BODY_A, at(TS_A)),
        Err(SignatureError::InvalidHeader("svix-signature"))
    );
    let h = headers(&"m".repeat(1000), &TS_A.to_string(), SIG_A);
    assert_eq!(
        v.verify(&h, BODY_A, at(TS_A)),
        Err(SignatureError::InvalidHeader("svix-id"))
    );
}

#[test]
fn only_the_first_entries_are_examined() {
    let v = verifier(SECRET_A);
    let filler = vec!["v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ="; MAX_SIGNATURE_ENTRIES];
    let late = format!("{} {SIG_A}", filler.join(" "));
    assert_eq!(
        check(&v, ID_A, TS_A, &late, BODY_A),
        Err(SignatureError::InvalidSignature)
    );
    let in_time = format!("{} {SIG_A}", filler[1..].join(" "));
    assert!(check(&v, ID_A, TS_A, &in_time, BODY_A).is_ok());
}

#[test]
fn error_codes_and_messages() {
    let all = [
        (SignatureError::MissingHeader("svix-id"), "missing_header"),
        (SignatureError::InvalidHeader("svix-id"), "invalid_header"),
        (SignatureError::InvalidTimestamp, "invalid_timestamp"),
        (SignatureError::TimestampTooOld, "timestamp_too_old"),
        (SignatureError::TimestampInFuture, "timestamp_in_future"),
        (SignatureError::InvalidSignature, "invalid_signature"),
    ];
    for (err, code) in all {
        assert_eq!(err.code(), code);
        assert!(!err.to_string().is_empty());
    }
    assert_eq!(
        SignatureError::MissingHeader("svix-id").to_string(),
        "missing webhook header `svix-id`"
    );
}

#[test]
fn sign_round_trips_through_verify() {
    let s = secret(SECRET_A);
    let v = WebhookVerifier::new(s.clone());
    let body = b"\x00\xffnot even json";
    let sig = sign(&s, "msg_x", -5, body);
    assert!(v.verify(&headers("msg_x", "-5", &sig), body, at(0)).is_ok());
}

proptest! {
    #[test]
    fn hostile_input_never_panics_or_verifies(
        id in proptest::collection::vec(any::<u8>(), 0..64),
        ts in proptest::collection::vec(any::<u8>(), 0..24),
        sig in proptest::collection::vec(any::<u8>(), 0..300),
        sig_text in "(v[0-9a-z]{0,2},[A-Za-z0-9+/=]{0,48} ?){0,20}",
        body in proptest::collection::vec(any::<u8>(), 0..256),
        now in any::<i64>(),
        use_fallback in any::<bool>(),
    ) {
        let v = verifier(SECRET_A).with_secret(secret(SECRET_B));
        let names = if use_fallback {
            ["webhook-id", "webhook-timestamp", "webhook-signature"]
        } else {
            ["svix-id", "svix-timestamp", "svix-signature"]
        };
        for sig_bytes in [&sig[..], sig_text.as_bytes()] {
            let mut h = HeaderMap::new();
            for (name, value) in names.into_iter().zip([&id[..], &ts[..], sig_bytes]) {
                if let Ok(value) = HeaderValue::from_bytes(value) {
                    h.insert(name, value);
                }
            }
            prop_assert!(v.verify(&h, &body, at(now)).is_err());
        }
    }

    #[test]
    fn random_signatures_never_verify_at_the_right_time(
        sig_text in "(v1,[A-Za-z0-9+/]{43}= ?){1,20}",
        body in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        let v = verifier(SECRET_A);
        let h = headers(ID_A, &TS_A.to_string(), &sig_text);
        prop_assert_eq!(
            v.verify(&h, &body, at(TS_A)),
            Err(SignatureError::InvalidSignature)
        );
    }
}
