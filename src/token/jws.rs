//! Compact JWS verification: the form, the header, the key the header names
//! and the signature, for every asymmetric algorithm the crate accepts.
//! Claims are left to the caller.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;

pub(crate) use super::algorithm::{Algorithm, Algorithms};
use super::keys::{KeyError, KeyStore, VerifyingKey};
use crate::rejection::Rejection;

/// The header fields the crate reads.
pub(crate) struct Header {
    /// `alg`, one the crate verifies.
    pub(crate) alg: Algorithm,
    /// `typ`, if any.
    pub(crate) typ: Option<String>,
    /// `kid`, if any.
    pub(crate) kid: Option<String>,
    /// `cat`, Clerk's token category, if any.
    pub(crate) cat: Option<String>,
}

/// The header as it is decoded, before its `alg` is judged.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    cat: Option<String>,
}

/// The base64url payload of `token` once its compact form, its header (alg
/// among `allowed`, then `header_rule`, both judged before any key is
/// fetched), the key for its kid in `keys` (bound to the header's alg) and
/// the signature check out. `max_bytes` bounds the token.
///
/// A key bound to another algorithm than the header's is refused as
/// [`Rejection::InvalidSignature`]: the token carries no signature that key
/// makes, and no key ever verifies under an algorithm it is not bound to.
pub(crate) async fn verified_payload<'t>(
    token: &'t [u8],
    max_bytes: usize,
    keys: &Arc<KeyStore>,
    allowed: Algorithms,
    header_rule: impl FnOnce(&Header) -> Result<(), Rejection>,
) -> Result<&'t str, Rejection> {
    // A compact JWS: three base64url segments joined by dots, nothing else.
    let alphabet = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if token.len() > max_bytes || !token.iter().all(alphabet) {
        return Err(Rejection::MalformedToken);
    }
    let token = std::str::from_utf8(token).map_err(|_| Rejection::MalformedToken)?;
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::MalformedToken);
    };
    if header_b64.is_empty() || payload_b64.is_empty() || signature_b64.is_empty() {
        return Err(Rejection::MalformedToken);
    }
    let raw: RawHeader = decode_json(header_b64)?;
    let alg = Algorithm::from_name(&raw.alg)
        .filter(|alg| allowed.contains(*alg))
        .ok_or(Rejection::UnsupportedAlgorithm)?;
    let header = Header {
        alg,
        typ: raw.typ,
        kid: raw.kid,
        cat: raw.cat,
    };
    header_rule(&header)?;
    let key = keys
        .key_for(header.kid.as_deref())
        .await
        .map_err(|error| match error {
            KeyError::Unknown => Rejection::UnknownKey,
            KeyError::Unavailable => Rejection::KeysUnavailable,
        })?;
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    if key.algorithm() != header.alg
        || !signature_verifies(&key, signing_input.as_bytes(), signature_b64)
    {
        return Err(Rejection::InvalidSignature);
    }
    Ok(payload_b64)
}

/// The largest signature of any key accepted: RSA with 8192 bits (ECDSA
/// P-384 needs 96 bytes, Ed25519 64).
const MAX_SIGNATURE_BYTES: usize = 8192 / 8;

/// Whether the base64url `signature` is `key`'s signature of `signing_input`,
/// decoded on the stack.
fn signature_verifies(key: &VerifyingKey, signing_input: &[u8], signature: &str) -> bool {
    let mut decoded = [0; MAX_SIGNATURE_BYTES];
    match URL_SAFE_NO_PAD.decode_slice(signature, &mut decoded) {
        Ok(length) => key.verifies(signing_input, &decoded[..length]),
        Err(_) => false,
    }
}

/// The JSON value of a base64url (unpadded) segment; anything else is a
/// [`Rejection::MalformedToken`].
pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(segment: &str) -> Result<T, Rejection> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| Rejection::MalformedToken)?;
    serde_json::from_slice(&bytes).map_err(|_| Rejection::MalformedToken)
}

#[cfg(test)]
mod tests;
