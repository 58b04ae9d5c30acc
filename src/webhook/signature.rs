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
///
/// Each error reads as a sentence naming the variable and what to put in
/// it, in `Display` and in `Debug` alike (an app that returns it from `main`
/// prints the `Debug` form); `Debug` adds the variant's name.
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidSecret {
    /// [`SECRET_ENV`] is not set (or holds no secret).
    #[error(
        "CLERK_WEBHOOK_SECRET is not set: copy the endpoint's signing secret (whsec_…) \
         from Clerk's Dashboard → Webhooks → your endpoint into CLERK_WEBHOOK_SECRET"
    )]
    NotSet,
    /// The secret (after removing the `whsec_` prefix) holds no key bytes.
    #[error(
        "the webhook signing secret (CLERK_WEBHOOK_SECRET) holds no key after whsec_: \
         copy the whole signing secret from Clerk's Dashboard → Webhooks → your endpoint"
    )]
    Empty,
    /// The secret is not valid standard base64.
    #[error(
        "the webhook signing secret (CLERK_WEBHOOK_SECRET) is not whsec_ followed by \
         base64: copy it again from Clerk's Dashboard → Webhooks → your endpoint, and \
         separate several secrets with spaces or commas"
    )]
    Encoding,
}

/// The sentence, then the variant it came from: what `main` prints when it
/// returns this error.
impl fmt::Debug for InvalidSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let variant = match self {
            Self::NotSet => "NotSet",
            Self::Empty => "Empty",
            Self::Encoding => "Encoding",
        };
        write!(f, "{self} (InvalidSecret::{variant})")
    }
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
        self.check_headers(headers, now)?.verify(body)
    }

    /// The first half of [`verify`](Self::verify): reads the headers and
    /// checks the timestamp's freshness, so that a request that can never
    /// pass is refused before its body is read.
    pub(crate) fn check_headers<'a>(
        &'a self,
        headers: &'a HeaderMap,
        now: SystemTime,
    ) -> Result<SignedHeaders<'a>, SignatureError> {
        let id = header(headers, ID_HEADERS, MAX_ID_HEADER_LEN)?;
        let timestamp_text = header(headers, TIMESTAMP_HEADERS, MAX_TIMESTAMP_HEADER_LEN)?;
        let signatures = header(headers, SIGNATURE_HEADERS, MAX_SIGNATURE_HEADER_LEN)?;

        let timestamp: i64 = timestamp_text
            .parse()
            .map_err(|_| SignatureError::InvalidTimestamp)?;
        self.check_freshness(timestamp, now)?;
        Ok(SignedHeaders {
            secrets: &self.secrets,
            id,
            timestamp_text,
            timestamp,
            signatures,
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

/// A delivery's svix headers, read and fresh: what is left to check is
/// that one of its signatures signs the body.
pub(crate) struct SignedHeaders<'a> {
    secrets: &'a [WebhookSecret],
    id: &'a str,
    timestamp_text: &'a str,
    timestamp: i64,
    signatures: &'a str,
}

impl SignedHeaders<'_> {
    /// Checks the signatures over `body`, the raw request body.
    pub(crate) fn verify(&self, body: &[u8]) -> Result<VerifiedDelivery, SignatureError> {
        let tags: Vec<hmac::Tag> = self
            .secrets
            .iter()
            .map(|secret| secret.tag(self.id, self.timestamp_text, body))
            .collect();
        let matches = |candidate: [u8; TAG_LEN]| {
            tags.iter()
                .any(|tag| constant_time::verify_slices_are_equal(tag.as_ref(), &candidate).is_ok())
        };
        let verified = self
            .signatures
            .split_ascii_whitespace()
            .take(MAX_SIGNATURE_ENTRIES)
            .filter_map(decode_candidate)
            .any(matches);
        if !verified {
            return Err(SignatureError::InvalidSignature);
        }
        Ok(VerifiedDelivery {
            id: self.id.to_owned(),
            timestamp: self.timestamp,
        })
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
mod tests;
