//! Verification of svix-signed deliveries (the scheme Clerk's webhooks use).
//!
//! A delivery carries three headers: a message id, a Unix timestamp in
//! seconds, and a space-separated list of `<version>,<base64>` signatures.
//! Each `v1` signature is HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed
//! with the endpoint's signing secret and encoded as padded standard base64.
//!
//! [`WebhookVerifier::verify`] checks the headers, the timestamp window and
//! the signature, and must be given the body bytes exactly as received:
//! re-serialising the JSON first would break the signature.

use std::{
    fmt,
    str::FromStr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aws_lc_rs::{constant_time, hmac};
use base64::{
    Engine as _,
    engine::{
        DecodePaddingMode,
        general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD},
    },
};
use http::HeaderMap;

use crate::rejection::{Refusal, webhook};

/// The environment variable [`WebhookVerifier::from_env`] reads.
pub const SECRET_ENV: &str = "CLERK_WEBHOOK_SECRET";

/// How far a delivery's timestamp may drift from the local clock by default.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Prefix svix puts in front of the base64 part of a signing secret.
const SECRET_PREFIX: &str = "whsec_";

/// The only signature version understood here (symmetric HMAC).
const SIGNATURE_VERSION: &str = "v1";

/// Length in bytes of an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;

/// Upper bound on the number of signature entries looked at per delivery.
const MAX_SIGNATURE_ENTRIES: usize = 16;

/// Upper bounds on the lengths of the three headers, in bytes.
const MAX_SIGNATURE_HEADER_LEN: usize = 4096;
const MAX_ID_HEADER_LEN: usize = 256;
const MAX_TIMESTAMP_HEADER_LEN: usize = 32;

/// Header names, primary (svix) first and white-label fallback second.
const ID_HEADERS: (&str, &str) = ("svix-id", "webhook-id");
const TIMESTAMP_HEADERS: (&str, &str) = ("svix-timestamp", "webhook-timestamp");
const SIGNATURE_HEADERS: (&str, &str) = ("svix-signature", "webhook-signature");

/// Decoder for secrets: standard alphabet, padding optional, and stray low
/// bits in the final character tolerated (other svix libraries are just as
/// forgiving about how the operator pasted the secret).
const SECRET_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// A webhook signing secret, ready for use as an HMAC-SHA256 key.
///
/// The `Debug` output never shows the key material.
#[derive(Clone)]
pub struct WebhookSecret {
    key: hmac::Key,
}

impl WebhookSecret {
    /// Parses a secret in the `whsec_<base64>` form Clerk's dashboard shows.
    ///
    /// The `whsec_` prefix is optional, surrounding whitespace is ignored,
    /// and the base64 part (standard alphabet) may be padded or not.
    pub fn new(secret: &str) -> Result<Self, InvalidSecret> {
        let trimmed = secret.trim();
        let encoded = trimmed.strip_prefix(SECRET_PREFIX).unwrap_or(trimmed);
        if encoded.is_empty() {
            return Err(InvalidSecret::Empty);
        }
        let bytes = SECRET_ENGINE
            .decode(encoded)
            .map_err(|_| InvalidSecret::Encoding)?;
        if bytes.is_empty() {
            return Err(InvalidSecret::Empty);
        }
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
        })
    }

    /// The HMAC tag of one delivery, fed to HMAC piece by piece (the body is not copied).
    fn tag(&self, id: &str, timestamp: &str, body: &[u8]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        for part in [id.as_bytes(), b".", timestamp.as_bytes(), b".", body] {
            context.update(part);
        }
        context.sign()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl FromStr for WebhookSecret {
    type Err = InvalidSecret;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// Why a signing secret could not be read. The message never echoes the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidSecret {
    /// [`SECRET_ENV`] is not set (or holds no secret).
    #[error("CLERK_WEBHOOK_SECRET is not set")]
    NotSet,
    /// The secret (after removing the `whsec_` prefix) holds no key bytes.
    #[error("webhook signing secret is empty")]
    Empty,
    /// The secret is not valid standard base64.
    #[error("webhook signing secret is not valid base64")]
    Encoding,
}

/// The svix `v1` signature of a delivery, as `v1,<base64>`: exactly what a
/// sender puts into the `svix-signature` header. Handy for tests.
///
/// ```
/// use ensure_user::webhook::{WebhookSecret, sign};
///
/// let secret = WebhookSecret::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")?;
/// let body = br#"{"email":"test@example.com","username":"test_user"}"#;
/// let header = sign(&secret, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body);
/// assert_eq!(header, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
/// # Ok::<(), ensure_user::webhook::InvalidSecret>(())
/// ```
#[must_use]
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = secret.tag(id, &timestamp.to_string(), body);
    format!("{SIGNATURE_VERSION},{}", STANDARD.encode(tag.as_ref()))
}

/// What a successful [`WebhookVerifier::verify`] established.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedDelivery {
    /// The svix message id. It stays the same across retries and replays.
    pub id: String,
    /// The signed send time, in Unix seconds.
    pub timestamp: i64,
}

/// Checks the signature and freshness of incoming deliveries.
///
/// Several secrets may be accepted at once to ride out a rotation: a
/// delivery passes when any of its signatures matches any of the secrets.
///
/// ```
/// use ensure_user::webhook::{WebhookSecret, WebhookVerifier};
///
/// let old: WebhookSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".parse()?;
/// let new: WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse()?;
/// let verifier = WebhookVerifier::new(old).with_secret(new);
/// # let _ = verifier;
/// # Ok::<(), ensure_user::webhook::InvalidSecret>(())
/// ```
#[derive(Debug, Clone)]
pub struct WebhookVerifier {
    secrets: Vec<WebhookSecret>,
    tolerance: Duration,
}

impl WebhookVerifier {
    /// A verifier for one secret, with a tolerance of [`DEFAULT_TOLERANCE`] (five minutes).
    #[must_use]
    pub fn new(secret: WebhookSecret) -> Self {
        Self {
            secrets: vec![secret],
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// A verifier for the secrets in [`SECRET_ENV`] (`CLERK_WEBHOOK_SECRET`):
    /// one secret, or several separated by spaces or commas during a rotation.
    /// `CLERK_WEBHOOK_SIGNING_SECRET`, the name Clerk's own docs use, is read
    /// when `CLERK_WEBHOOK_SECRET` is not set.
    pub fn from_env() -> Result<Self, InvalidSecret> {
        let list = std::env::var(SECRET_ENV)
            .or_else(|_| std::env::var("CLERK_WEBHOOK_SIGNING_SECRET"))
            .unwrap_or_default();
        Self::from_list(&list)
    }

    fn from_list(list: &str) -> Result<Self, InvalidSecret> {
        let mut secrets = list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|secret| !secret.is_empty())
            .map(WebhookSecret::new);
        let first = secrets.next().ok_or(InvalidSecret::NotSet)??;
        secrets.try_fold(Self::new(first), |verifier, secret| {
            Ok(verifier.with_secret(secret?))
        })
    }

    /// Also accepts `extra`, e.g. the new secret during a rotation.
    #[must_use]
    pub fn with_secret(mut self, extra: WebhookSecret) -> Self {
        self.secrets.push(extra);
        self
    }

    /// How far the delivery timestamp may lie from the local clock, either
    /// way (whole seconds; a fraction is dropped).
    #[must_use]
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// The allowed clock drift in either direction.
    #[must_use]
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// Verifies one delivery.
    ///
    /// `body` must be the raw request body, byte for byte; `now` is the
    /// current time. Each `svix-*` header that is absent is looked up under
    /// its `webhook-*` name instead. Header and timestamp problems are
    /// reported before the signature is checked.
    ///
    /// Each secret's tag is computed once, then compared in constant time
    /// with every `v1` candidate in the header.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<VerifiedDelivery, SignatureError> {
        let id = header(headers, ID_HEADERS, MAX_ID_HEADER_LEN)?;
        let timestamp_text = header(headers, TIMESTAMP_HEADERS, MAX_TIMESTAMP_HEADER_LEN)?;
        let signatures = header(headers, SIGNATURE_HEADERS, MAX_SIGNATURE_HEADER_LEN)?;

        let timestamp: i64 = timestamp_text
            .parse()
            .map_err(|_| SignatureError::InvalidTimestamp)?;
        self.check_freshness(timestamp, now)?;

        let tags: Vec<hmac::Tag> = self
            .secrets
            .iter()
            .map(|secret| secret.tag(id, timestamp_text, body))
            .collect();
        let matches = |candidate: [u8; TAG_LEN]| {
            tags.iter()
                .any(|tag| constant_time::verify_slices_are_equal(tag.as_ref(), &candidate).is_ok())
        };
        let verified = signatures
            .split_ascii_whitespace()
            .take(MAX_SIGNATURE_ENTRIES)
            .filter_map(decode_candidate)
            .any(matches);
        if !verified {
            return Err(SignatureError::InvalidSignature);
        }
        Ok(VerifiedDelivery {
            id: id.to_owned(),
            timestamp,
        })
    }

    fn check_freshness(&self, timestamp: i64, now: SystemTime) -> Result<(), SignatureError> {
        let now = unix_seconds(now);
        let tolerance = i128::from(self.tolerance.as_secs());
        let timestamp = i128::from(timestamp);
        if now - timestamp > tolerance {
            Err(SignatureError::TimestampTooOld)
        } else if timestamp - now > tolerance {
            Err(SignatureError::TimestampInFuture)
        } else {
            Ok(())
        }
    }
}

/// The delivery's message id as sent, when it is readable, before (or
/// without) verification: for logs only.
pub(crate) fn unverified_id(headers: &HeaderMap) -> Option<&str> {
    header(headers, ID_HEADERS, MAX_ID_HEADER_LEN).ok()
}

/// Seconds since the Unix epoch, negative for earlier instants.
fn unix_seconds(at: SystemTime) -> i128 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::from(after.as_secs()),
        Err(before) => -i128::from(before.duration().as_secs()),
    }
}

/// Reads one header under its primary name, falling back to the alternate
/// name only when the primary one is absent. Returns the trimmed value.
fn header<'a>(
    headers: &'a HeaderMap,
    (primary, fallback): (&'static str, &'static str),
    max_len: usize,
) -> Result<&'a str, SignatureError> {
    let (name, value) = match headers.get(primary) {
        Some(value) => (primary, value),
        None => match headers.get(fallback) {
            Some(value) => (fallback, value),
            None => return Err(SignatureError::MissingHeader(primary)),
        },
    };
    if value.len() > max_len {
        return Err(SignatureError::InvalidHeader(name));
    }
    // `to_str` only succeeds for visible ASCII (plus space and tab).
    let text = value
        .to_str()
        .map_err(|_| SignatureError::InvalidHeader(name))?
        .trim();
    if text.is_empty() {
        return Err(SignatureError::InvalidHeader(name));
    }
    Ok(text)
}

/// Turns one `<version>,<base64>` entry into tag bytes, or `None` when the
/// entry is not a well-formed `v1` signature.
fn decode_candidate(entry: &str) -> Option<[u8; TAG_LEN]> {
    let (version, encoded) = entry.split_once(',')?;
    // A padded 32-byte value is always 44 characters; anything else can
    // never match, and the check keeps the decode buffer in bounds.
    if version != SIGNATURE_VERSION || encoded.len() != 44 {
        return None;
    }
    let mut tag = [0_u8; TAG_LEN];
    match STANDARD.decode_slice(encoded, &mut tag) {
        Ok(TAG_LEN) => Some(tag),
        _ => None,
    }
}

/// Why a delivery failed verification.
///
/// Messages name at most a header; they never contain secrets, signatures
/// or body content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// A required header is absent under both of its names. Carries the
    /// primary (`svix-*`) name.
    #[error("missing webhook header `{0}`")]
    MissingHeader(&'static str),
    /// A header is empty, too long, or not visible ASCII. Carries the name
    /// of the header that was read.
    #[error("malformed webhook header `{0}`")]
    InvalidHeader(&'static str),
    /// The timestamp header is not an integer number of seconds.
    #[error("webhook timestamp is not an integer")]
    InvalidTimestamp,
    /// The timestamp lies further in the past than the tolerance allows.
    #[error("webhook timestamp is too old")]
    TimestampTooOld,
    /// The timestamp lies further in the future than the tolerance allows.
    #[error("webhook timestamp is in the future")]
    TimestampInFuture,
    /// No `v1` signature matched any accepted secret.
    #[error("no matching webhook signature")]
    InvalidSignature,
}

impl SignatureError {
    /// A stable `snake_case` code for logs and responses.
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.refusal().code()
    }

    /// How the receiver answers a delivery refused for this reason.
    pub(crate) fn refusal(&self) -> Refusal {
        match self {
            Self::MissingHeader(_) => webhook::MISSING_HEADER,
            Self::InvalidHeader(_) => webhook::INVALID_HEADER,
            Self::InvalidTimestamp => webhook::INVALID_TIMESTAMP,
            Self::TimestampTooOld => webhook::TIMESTAMP_TOO_OLD,
            Self::TimestampInFuture => webhook::TIMESTAMP_IN_FUTURE,
            Self::InvalidSignature => webhook::INVALID_SIGNATURE,
        }
    }
}

#[cfg(test)]
mod tests {
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
}
