//! Compact JWS verification: the form, the header, the key the header names
//! and the signature, for every asymmetric algorithm the crate accepts.
//! Claims are left to the caller.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;

use super::keys::{KeyError, KeyStore, VerifyingKey};
use crate::rejection::Rejection;

/// A JWS signature algorithm the crate verifies. `none` and the symmetric
/// (`HS*`) algorithms are deliberately absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA on P-256 with SHA-256, the signature as fixed-size `r || s`.
    Es256,
    /// ECDSA on P-384 with SHA-384, the signature as fixed-size `r || s`.
    Es384,
    /// EdDSA with Ed25519.
    EdDsa,
}

impl Algorithm {
    /// Every algorithm, in the order of [`Algorithm`]'s variants.
    pub(crate) const ALL: [Algorithm; 9] = [
        Self::Rs256,
        Self::Rs384,
        Self::Rs512,
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
        Self::Es256,
        Self::Es384,
        Self::EdDsa,
    ];

    /// The algorithm of a JWS `alg` name (case-sensitive, as RFC 7515
    /// says); `None` for `none`, the `HS*` algorithms and any other name.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }

    /// The JWS `alg` name.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
        }
    }

    /// This algorithm's bit in [`Algorithms`].
    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// A set of algorithms (a small bitset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Algorithms(u16);

impl Algorithms {
    /// The set of `alg` alone.
    pub(crate) const fn only(alg: Algorithm) -> Self {
        Self(alg.bit())
    }

    /// Every algorithm in [`Algorithm::ALL`].
    pub(crate) const fn all() -> Self {
        let mut set = Self(0);
        let mut i = 0;
        while i < Algorithm::ALL.len() {
            set = set.with(Algorithm::ALL[i]);
            i += 1;
        }
        set
    }

    /// This set and `alg`.
    pub(crate) const fn with(self, alg: Algorithm) -> Self {
        Self(self.0 | alg.bit())
    }

    /// Whether `alg` is in this set.
    pub(crate) const fn contains(self, alg: Algorithm) -> bool {
        self.0 & alg.bit() != 0
    }
}

// Each algorithm in `ALL` once, each with its own bit of the set.
const _: () = assert!(Algorithms::all().0 == (1 << Algorithm::ALL.len()) - 1);

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
