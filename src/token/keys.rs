//! Where verification keys come from, and the store that keeps them fresh.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ED25519_PUBLIC_KEY_LEN,
    ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA384,
    RSA_PKCS1_2048_8192_SHA512, RSA_PSS_2048_8192_SHA256, RSA_PSS_2048_8192_SHA384,
    RSA_PSS_2048_8192_SHA512, RsaPublicKeyComponents, VerificationAlgorithm,
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use serde::Deserialize;
use serde_json::Value;

use super::{
    algorithm::Algorithm,
    rules::{InvalidKey, KeyRules},
};
use crate::telemetry;

/// Where the layer gets the public keys that sign Clerk session tokens.
#[derive(Clone)]
pub struct KeySource(Source);

#[derive(Clone)]
enum Source {
    Jwks {
        url: String,
        bearer: Option<Arc<str>>,
    },
    Static(Arc<VerifyingKey>),
    /// Keys by `kid`, given as a JWKS document.
    StaticSet(Arc<HashMap<String, Arc<VerifyingKey>>>),
}

impl KeySource {
    /// A JWKS document at `url`, such as the Frontend API's
    /// `https://<frontend-api>/.well-known/jwks.json`.
    pub fn jwks_url(url: impl Into<String>) -> Self {
        Self(Source::Jwks {
            url: url.into(),
            bearer: None,
        })
    }

    /// The Backend API's `GET {api_url}/v1/jwks`, authenticated with the
    /// instance's secret key (`sk_…`).
    pub fn backend_api(api_url: impl AsRef<str>, secret_key: impl Into<String>) -> Self {
        let url = format!("{}/v1/jwks", api_url.as_ref().trim_end_matches('/'));
        Self(Source::Jwks {
            url,
            bearer: Some(secret_key.into().into()),
        })
    }

    /// Networkless verification with the keys of a JWKS document given
    /// here (any algorithm the layer verifies, each key bound to its own),
    /// chosen by the token's `kid`: for an OpenID Connect issuer whose keys
    /// the app ships with itself. Fails when the document holds no usable
    /// signing key.
    pub fn jwks_document(jwks: &str) -> Result<Self, InvalidKey> {
        let keys = parse_jwks(jwks.as_bytes()).map_err(|_| InvalidKey)?;
        Ok(Self(Source::StaticSet(Arc::new(keys))))
    }

    /// Networkless verification with one RSA public key, for RS256: the PEM
    /// from Clerk's Dashboard (`CLERK_JWT_KEY`), with or without the
    /// `BEGIN`/`END` armour.
    /// The token's `kid` is not consulted, as in Clerk's own SDKs.
    pub fn pem(pem: &str) -> Result<Self, InvalidKey> {
        let body: String = pem
            .lines()
            .map(str::trim)
            .filter(|line| !line.starts_with("-----"))
            .collect();
        let der = STANDARD
            .decode(body.replace("\\n", ""))
            .map_err(|_| InvalidKey)?;
        // Parsed once here: a bad key fails at start-up, and requests only
        // check signatures.
        let key = VerifyingKey::from_spki_der(&der).ok_or(InvalidKey)?;
        Ok(Self(Source::Static(Arc::new(key))))
    }
}

/// A public key, parsed once (when configured or fetched), bound to the one
/// algorithm it verifies (RFC 8725 §3.1). RSA keys have 2048 to 8192 bits.
pub(crate) struct VerifyingKey {
    alg: Algorithm,
    key: ParsedPublicKey,
}

/// The DER `AlgorithmIdentifier` of `rsaEncryption` (1.2.840.113549.1.1.1,
/// with the NULL parameters DER requires).
const RSA_ENCRYPTION: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

impl VerifyingKey {
    /// The RS256 key in a DER `SubjectPublicKeyInfo` (what a `PUBLIC KEY`
    /// PEM holds) for `rsaEncryption`; a bare PKCS #1 `RSAPublicKey` is refused.
    fn from_spki_der(der: &[u8]) -> Option<Self> {
        if !is_rsa_spki(der) {
            return None;
        }
        Self::parse(Algorithm::Rs256, &RSA_PKCS1_2048_8192_SHA256, der)
    }

    /// The key of a JWKS entry, bound to the entry's `alg`, or without one
    /// to its type's first algorithm: `RSA` to RS256, `EC` on P-256 to
    /// ES256 and on P-384 to ES384, `OKP` on Ed25519 to EdDSA. `None` for
    /// an entry not for signatures (`use` other than `sig`), whose `alg`
    /// is not one the crate verifies or contradicts `kty` or `crv`, or
    /// whose key material does not parse.
    fn from_jwk(entry: &Value) -> Option<Self> {
        let text = |name: &str| entry.get(name).and_then(Value::as_str);
        let absent_or_text = |name: &str| entry.get(name).map(|value| value.as_str());
        if !matches!(absent_or_text("use"), None | Some(Some("sig"))) {
            return None;
        }
        let named = match absent_or_text("alg") {
            None => None,
            Some(name) => Some(Algorithm::from_name(name?)?),
        };
        let bytes = |name: &str| URL_SAFE_NO_PAD.decode(text(name)?).ok();
        match (text("kty")?, text("crv")) {
            ("RSA", _) => {
                let alg = named.unwrap_or(Algorithm::Rs256);
                let parameters = match alg {
                    Algorithm::Rs256 => &RSA_PKCS1_2048_8192_SHA256,
                    Algorithm::Rs384 => &RSA_PKCS1_2048_8192_SHA384,
                    Algorithm::Rs512 => &RSA_PKCS1_2048_8192_SHA512,
                    Algorithm::Ps256 => &RSA_PSS_2048_8192_SHA256,
                    Algorithm::Ps384 => &RSA_PSS_2048_8192_SHA384,
                    Algorithm::Ps512 => &RSA_PSS_2048_8192_SHA512,
                    _ => return None,
                };
                let components = RsaPublicKeyComponents {
                    n: bytes("n")?,
                    e: bytes("e")?,
                };
                let key = components.to_parsed_public_key(parameters).ok()?;
                Some(Self { alg, key })
            }
            ("EC", Some(crv)) => {
                let (alg, verification, coordinate_len): (
                    _,
                    &'static dyn VerificationAlgorithm,
                    _,
                ) = match crv {
                    "P-256" => (Algorithm::Es256, &ECDSA_P256_SHA256_FIXED, 32),
                    "P-384" => (Algorithm::Es384, &ECDSA_P384_SHA384_FIXED, 48),
                    _ => return None,
                };
                let (x, y) = (bytes("x")?, bytes("y")?);
                if named.is_some_and(|named| named != alg)
                    || x.len() != coordinate_len
                    || y.len() != coordinate_len
                {
                    return None;
                }
                // The uncompressed SEC 1 point: 0x04, x, y.
                let point = [&[0x04][..], &x, &y].concat();
                Self::parse(alg, verification, &point)
            }
            ("OKP", Some("Ed25519")) => {
                let x = bytes("x")?;
                if named.is_some_and(|named| named != Algorithm::EdDsa)
                    || x.len() != ED25519_PUBLIC_KEY_LEN
                {
                    return None;
                }
                Self::parse(Algorithm::EdDsa, &ED25519, &x)
            }
            _ => None,
        }
    }

    /// The key in `bytes`, as aws-lc-rs reads them for `verification`
    /// (which must be `alg`'s), bound to `alg`.
    fn parse(
        alg: Algorithm,
        verification: &'static dyn VerificationAlgorithm,
        bytes: &[u8],
    ) -> Option<Self> {
        let key = ParsedPublicKey::new(verification, bytes).ok()?;
        Some(Self { alg, key })
    }

    /// The one algorithm this key verifies.
    pub(crate) fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Whether `signature` is this key's signature of `message` under its
    /// own algorithm.
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }
}

/// Whether `der` is a SEQUENCE that opens with the `rsaEncryption`
/// algorithm, as a `SubjectPublicKeyInfo` does; the parser checks the rest.
fn is_rsa_spki(der: &[u8]) -> bool {
    let header = match der {
        [0x30, length, ..] if *length < 0x80 => 2,
        [0x30, length, ..] => 2 + usize::from(length & 0x7f),
        _ => return false,
    };
    der.get(header..)
        .is_some_and(|rest| rest.starts_with(&RSA_ENCRYPTION))
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::Jwks { url, bearer } => f
                .debug_struct("Jwks")
                .field("url", url)
                .field("bearer", &bearer.as_ref().map(|_| "<redacted>"))
                .finish(),
            Source::Static(_) => f.write_str("StaticKey"),
            Source::StaticSet(keys) => write!(f, "StaticKeySet({} keys)", keys.len()),
        }
    }
}

/// Why no key could be had for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyError {
    /// The endpoint answered, and no key has that `kid` (or the token has none).
    Unknown,
    /// The endpoint is failing and the key is not among the keys held.
    Unavailable,
}

/// Keys by `kid`. A fetch is due when a token names a `kid` not held, when
/// the set is older than the refresh interval (then it runs in the
/// background), when a readiness check finds no key, and on a prefetch.
/// Whatever asks, one place decides ([`KeyStore::fetch_if_due`]): at most one
/// fetch runs at a time, and none starts within the cooldown after the last
/// one ended, failed or not. Keys already held survive a failing endpoint.
pub(crate) struct KeyStore {
    source: Source,
    /// `None` for a key given directly: nothing to fetch, and no TLS
    /// backend to start.
    client: Option<reqwest::Client>,
    refresh_interval: Duration,
    refetch_cooldown: Duration,
    max_body: usize,
    state: RwLock<KeyState>,
    fetch_lock: tokio::sync::Mutex<()>,
    /// Set while a background refresh is spawned and not yet done.
    refresh_spawned: AtomicBool,
}

#[derive(Default)]
struct KeyState {
    keys: HashMap<String, Arc<VerifyingKey>>,
    /// When the last successful fetch ended.
    fetched_at: Option<Instant>,
    /// When the last fetch ended, whatever its outcome.
    last_attempt: Option<Instant>,
    last_attempt_failed: bool,
}

/// What a caller needs from the key set: it decides whether a fetch is due.
#[derive(Clone, Copy)]
enum Need<'a> {
    /// The key with this `kid`, which a token names.
    Kid(&'a str),
    /// A set no older than the refresh interval.
    Fresh,
    /// Any key at all, for a readiness check.
    AnyKey,
    /// The endpoint's current set, for a prefetch.
    Current,
}

impl KeyStore {
    /// # Panics
    ///
    /// When the HTTP client cannot be built (its TLS backend cannot start):
    /// a client without the timeout, redirect and size settings would be
    /// worse than none.
    pub(crate) fn new(rules: &KeyRules) -> Self {
        let client = matches!(rules.source.0, Source::Jwks { .. })
            .then(|| http_client(rules.fetch_timeout, "the key endpoint's"));
        Self {
            source: rules.source.0.clone(),
            client,
            refresh_interval: rules.refresh_interval,
            refetch_cooldown: rules.refetch_cooldown,
            max_body: rules.max_body,
            state: RwLock::default(),
            fetch_lock: tokio::sync::Mutex::new(()),
            refresh_spawned: AtomicBool::new(false),
        }
    }

    /// The key for a token's `kid`.
    pub(crate) async fn key_for(
        self: &Arc<Self>,
        kid: Option<&str>,
    ) -> Result<Arc<VerifyingKey>, KeyError> {
        let kid = match &self.source {
            Source::Static(key) => return Ok(key.clone()),
            Source::StaticSet(keys) => {
                let key = kid.and_then(|kid| keys.get(kid));
                return key.cloned().ok_or(KeyError::Unknown);
            }
            Source::Jwks { .. } => kid.ok_or(KeyError::Unknown)?,
        };
        let held = self.read_state().keys.get(kid).cloned();
        if let Some(key) = held {
            self.refresh_in_background();
            return Ok(key);
        }
        // Taken in turn with any fetch in flight, whose outcome then counts.
        self.fetch_if_due(Need::Kid(kid)).await;
        let state = self.read_state();
        match state.keys.get(kid) {
            Some(key) => Ok(key.clone()),
            None if state.last_attempt_failed => Err(KeyError::Unavailable),
            None => Err(KeyError::Unknown),
        }
    }

    /// Fetches the key set now, for a warm start, unless a fetch ended
    /// within the cooldown. The keys held, or an error if the last fetch failed.
    pub(crate) async fn prefetch(&self) -> Result<usize, KeyError> {
        self.fetch_if_due(Need::Current).await;
        let state = self.read_state();
        if state.last_attempt_failed {
            return Err(KeyError::Unavailable);
        }
        Ok(self.held(&state))
    }

    /// A snapshot for readiness checks. With no keys held yet, it first tries
    /// one fetch (at most one per cooldown).
    pub(crate) async fn health(&self) -> KeyHealth {
        // Checked before waiting for the lock, so that a probe finding keys
        // held never waits for a fetch.
        if self.fetch_due(Need::AnyKey) {
            self.fetch_if_due(Need::AnyKey).await;
        }
        let state = self.read_state();
        KeyHealth {
            held: self.held(&state),
            age: state.fetched_at.map(|at| at.elapsed()),
            last_fetch_failed: state.last_attempt_failed,
        }
    }

    fn held(&self, state: &KeyState) -> usize {
        match &self.source {
            Source::Static(_) => 1,
            Source::StaticSet(keys) => keys.len(),
            Source::Jwks { .. } => state.keys.len(),
        }
    }

    /// Spawns a refresh when one is due and none is spawned already.
    fn refresh_in_background(self: &Arc<Self>) {
        if !self.fetch_due(Need::Fresh) || self.refresh_spawned.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.refresh_spawned.store(false, Ordering::Release);
            return;
        };
        let store = Arc::clone(self);
        runtime.spawn(async move {
            let _spawned = ClearOnDrop(&store.refresh_spawned);
            store.fetch_if_due(Need::Fresh).await;
        });
    }

    /// The one place that fetches: under the fetch lock, so that one fetch
    /// runs at a time, and only if still due once the lock is held, judged
    /// by what any fetch this caller waited for left behind.
    async fn fetch_if_due(&self, need: Need<'_>) {
        let _guard = self.fetch_lock.lock().await;
        if self.fetch_due(need) {
            self.fetch_and_store().await;
        }
    }

    /// Whether `need` calls for a fetch: never from a static key, nor within
    /// the cooldown after the last fetch ended.
    fn fetch_due(&self, need: Need<'_>) -> bool {
        if matches!(self.source, Source::Static(_) | Source::StaticSet(_)) {
            return false;
        }
        let state = self.read_state();
        let elapsed = |at: Option<Instant>| at.map(|at| at.elapsed());
        if elapsed(state.last_attempt).is_some_and(|since| since < self.refetch_cooldown) {
            return false;
        }
        match need {
            Need::Kid(kid) => !state.keys.contains_key(kid),
            Need::Fresh => elapsed(state.fetched_at).is_none_or(|age| age >= self.refresh_interval),
            Need::AnyKey => state.keys.is_empty(),
            Need::Current => true,
        }
    }

    /// One fetch; on success the new set replaces the old one. Callers hold `fetch_lock`.
    async fn fetch_and_store(&self) {
        let Source::Jwks { url, bearer } = &self.source else {
            return;
        };
        let result = self.fetch(url, bearer.as_deref()).await;
        telemetry::key_fetch(result.is_ok());
        let mut state = self.write_state();
        let now = Instant::now();
        state.last_attempt = Some(now);
        state.last_attempt_failed = result.is_err();
        match result {
            Ok(keys) => {
                tracing::debug!(
                    target: "ensure_user::keys",
                    url,
                    count = keys.len(),
                    "fetched signing keys"
                );
                state.keys = keys;
                state.fetched_at = Some(now);
            }
            Err(reason) => tracing::warn!(
                target: "ensure_user::keys",
                url,
                %reason,
                keys_held = state.keys.len(),
                "signing key fetch failed; keeping the keys held"
            ),
        }
    }

    async fn fetch(
        &self,
        url: &str,
        bearer: Option<&str>,
    ) -> Result<HashMap<String, Arc<VerifyingKey>>, String> {
        let client = self
            .client
            .as_ref()
            .ok_or("no key endpoint to fetch from")?;
        let mut request = client.get(url).header("accept", "application/json");
        if let Some(secret) = bearer {
            request = request.bearer_auth(secret);
        }
        let response = request.send().await.map_err(describe_http_error)?;
        if !response.status().is_success() {
            return Err(format!("key endpoint answered {}", response.status()));
        }
        let body = read_bounded(response, self.max_body, "key set").await?;
        parse_jwks(&body)
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, KeyState> {
        self.state
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, KeyState> {
        self.state
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

#[cfg(test)]
impl KeyStore {
    /// A store holding the keys of the JWKS document `jwks`, parsed as a
    /// fetch parses them, as if fetched just now.
    pub(crate) fn holding(rules: &KeyRules, jwks: &[u8]) -> Self {
        let store = Self::new(rules);
        let mut state = store.write_state();
        state.keys = parse_jwks(jwks).expect("a usable key set");
        state.fetched_at = Some(Instant::now());
        state.last_attempt = state.fetched_at;
        drop(state);
        store
    }
}

/// What a readiness check learns from the key store.
pub(crate) struct KeyHealth {
    pub(crate) held: usize,
    pub(crate) age: Option<Duration>,
    pub(crate) last_fetch_failed: bool,
}

impl KeyHealth {
    /// Two stores' health as one: the keys of both, the older set's age,
    /// and failing if either is.
    pub(crate) fn and(self, other: Self) -> Self {
        Self {
            held: self.held + other.held,
            age: self.age.max(other.age),
            last_fetch_failed: self.last_fetch_failed || other.last_fetch_failed,
        }
    }
}

/// Clears a flag when dropped: when the task holding it ends or is dropped.
struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The client of a fetch from an identity provider (`whose` names it in
/// the panic): no redirects, `timeout` for the whole request and for
/// connecting, and the crate's user agent.
///
/// # Panics
///
/// When the TLS backend cannot start: a client without these settings
/// would be worse than none.
pub(crate) fn http_client(timeout: Duration, whose: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("ensure-user/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|error| panic!("ensure-user: {whose} HTTP client cannot be built: {error}"))
}

/// The body of `response`, refused past `max_body` bytes (`what` names it
/// in the reason).
pub(crate) async fn read_bounded(
    mut response: reqwest::Response,
    max_body: usize,
    what: &str,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(describe_http_error)? {
        if body.len() + chunk.len() > max_body {
            return Err(format!("{what} larger than {max_body} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Keeps reqwest's text (which may include the URL) but never a header.
fn describe_http_error(error: reqwest::Error) -> String {
    if error.is_timeout() {
        "key endpoint timed out".to_owned()
    } else if error.is_connect() {
        "key endpoint unreachable".to_owned()
    } else {
        format!("key fetch failed: {}", error.without_url())
    }
}

/// Parses a JWKS document, keeping each signing key that parses, bound to
/// its algorithm ([`VerifyingKey::from_jwk`]), and skipping the others. A
/// set with no usable key is an error.
pub(crate) fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<VerifyingKey>>, String> {
    #[derive(Deserialize)]
    struct Document {
        keys: Vec<Value>,
    }
    let document: Document =
        serde_json::from_slice(body).map_err(|_| "key set is not a JWKS document".to_owned())?;
    let keys: HashMap<_, _> = document
        .keys
        .iter()
        .filter_map(|entry| {
            let kid = entry.get("kid")?.as_str()?;
            let key = VerifyingKey::from_jwk(entry)?;
            Some((kid.to_owned(), Arc::new(key)))
        })
        .collect();
    if keys.is_empty() {
        return Err("key set holds no usable signing key".to_owned());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_with_and_without_armour() {
        let pem = crate::testing::SigningKey::generate("k").public_key_pem();
        assert!(KeySource::pem(&pem).is_ok());
        let bare: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(KeySource::pem(&bare).is_ok());
        assert!(KeySource::pem("not a key").is_err());
        assert!(KeySource::pem("").is_err());
    }

    #[test]
    fn jwks_skips_entries_that_do_not_parse() {
        let body = br#"{"keys":[
            {"kty":"RSA","kid":"bad","n":"!!!","e":"AQAB"},
            {"kty":"EC","kid":"ec","crv":"P-256","x":"a","y":"b"},
            {"kty":"RSA","kid":"enc","use":"enc","n":"qYy3","e":"AQAB"},
            {"kty":"RSA","kid":"good","alg":"RS256","use":"sig","n":"qYy3MY8fOneEyzNDu9lp6iGXKkNUF-u_dUnrlkadZYyB35efzKFJEr9fftmWv5PUj1uRHTQ3bh6X1cceOYsIjy008dHWZJsKhGOxgdTjeK91rjaklxt7tyFXEiKHIOr1LSgKzopClOfCIjxK_oPUOf38pVh7WnekcSBQmU5fqA-EzKMi6k9VwvbzqKlZM4XQsiFyn28d9VubJWjTU8nNot0n1NE-9k6TxM8nglM4RwkBH4Ni4B0LhKKOOV-AG8tBNiZVil415dpBldmJ_j0wk7Ad4VFi9en3Z17oCKr-K-zuT7vKMKSb1548dk0vnmi0vj2QGXSo-61wM5yQWpk6sQ","e":"AQAB"},
            "not an object"
        ]}"#;
        let keys = parse_jwks(body).unwrap();
        assert!(keys.contains_key("good"));
        assert!(!keys.contains_key("ec"));
        assert!(!keys.contains_key("enc"));
        assert!(parse_jwks(br#"{"keys":[]}"#).is_err());
        assert!(parse_jwks(b"<html>").is_err());
    }

    #[test]
    fn pem_holds_an_rsa_subject_public_key_info_only() {
        let pem = crate::testing::SigningKey::generate("k").public_key_pem();
        let lines: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        // The body on one line with `\n` escapes, as a variable may carry it.
        assert!(KeySource::pem(&lines.join("\\n")).is_ok());
        let body = lines.concat();
        let spki = STANDARD.decode(body).unwrap();
        // The RSAPublicKey inside (after a 24-byte header for 2048 bits) is no SPKI.
        let pkcs1 = STANDARD.encode(&spki[24..]);
        assert!(KeySource::pem(&pkcs1).is_err());
        assert!(
            KeySource::pem(&format!(
                "-----BEGIN RSA PUBLIC KEY-----\n{pkcs1}\n-----END RSA PUBLIC KEY-----"
            ))
            .is_err()
        );
        // An EC P-256 key.
        let ec = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9q9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==";
        assert!(KeySource::pem(ec).is_err());
        assert!(KeySource::pem(&STANDARD.encode(&spki[..spki.len() - 1])).is_err());
    }

    #[test]
    fn jwks_binds_each_rsa_signing_key_to_one_algorithm() {
        let key = crate::testing::SigningKey::generate("k");
        let entry = |change: &dyn Fn(&mut Value)| {
            let mut jwk = key.jwk();
            change(&mut jwk);
            jwk
        };
        let kept = |jwk: Value| {
            parse_jwks(serde_json::json!({ "keys": [jwk] }).to_string().as_bytes()).is_ok()
        };
        let bound_to = |jwk: Value| {
            let keys = parse_jwks(serde_json::json!({ "keys": [jwk] }).to_string().as_bytes());
            keys.ok().map(|keys| keys["k"].algorithm())
        };
        assert_eq!(bound_to(entry(&|_| ())), Some(Algorithm::Rs256));
        assert_eq!(
            bound_to(entry(&|jwk| {
                let jwk = jwk.as_object_mut().unwrap();
                jwk.remove("alg");
                jwk.remove("use");
            })),
            Some(Algorithm::Rs256)
        );
        for alg in ["RS384", "RS512", "PS256", "PS384", "PS512"] {
            let bound = bound_to(entry(&|jwk| jwk["alg"] = alg.into()));
            assert_eq!(bound.map(Algorithm::name), Some(alg));
        }
        for alg in ["ES256", "EdDSA", "HS256", "none", "RSA-OAEP"] {
            assert!(!kept(entry(&|jwk| jwk["alg"] = alg.into())), "{alg}");
        }
        assert!(!kept(entry(&|jwk| jwk["alg"] = 256.into())));
        assert!(!kept(entry(&|jwk| jwk["use"] = "enc".into())));
        assert!(!kept(entry(&|jwk| jwk["use"] = Value::Null)));
        assert!(!kept(entry(&|jwk| jwk["kty"] = "rsa".into())));
        assert!(!kept(entry(&|jwk| jwk["kid"] = 7.into())));
        assert!(!kept(entry(&|jwk| {
            jwk.as_object_mut().unwrap().remove("e");
        })));
        assert!(!kept(entry(&|jwk| {
            jwk["n"] = format!("{}=", jwk["n"].as_str().unwrap()).into();
        })));
    }

    #[test]
    fn jwks_binds_ec_and_okp_keys_by_their_curve() {
        use crate::testing::JwsKey;
        let bound_to = |key: &JwsKey, change: &dyn Fn(&mut serde_json::Map<String, Value>)| {
            let mut jwk = key.jwk();
            change(jwk.as_object_mut().unwrap());
            let keys = parse_jwks(serde_json::json!({ "keys": [jwk] }).to_string().as_bytes());
            keys.ok().map(|keys| keys[key.kid()].algorithm())
        };
        let set = |name: &'static str, value: Value| {
            move |jwk: &mut serde_json::Map<String, Value>| {
                jwk.insert(name.into(), value.clone());
            }
        };
        let no_alg = |jwk: &mut serde_json::Map<String, Value>| {
            jwk.remove("alg");
        };
        let p256 = JwsKey::generate("ES256", "p256");
        let p384 = JwsKey::generate("ES384", "p384");
        let ed25519 = JwsKey::generate("EdDSA", "ed25519");
        for (key, alg) in [
            (&p256, Algorithm::Es256),
            (&p384, Algorithm::Es384),
            (&ed25519, Algorithm::EdDsa),
        ] {
            assert_eq!(bound_to(key, &|_| ()), Some(alg));
            assert_eq!(bound_to(key, &no_alg), Some(alg));
            assert_eq!(bound_to(key, &set("alg", "RS256".into())), None);
            assert_eq!(bound_to(key, &set("use", "enc".into())), None);
            assert_eq!(bound_to(key, &set("x", "AAAA".into())), None);
            assert_eq!(
                bound_to(key, &|jwk| {
                    jwk.remove("crv");
                }),
                None
            );
        }
        assert_eq!(bound_to(&p256, &set("crv", "P-384".into())), None);
        assert_eq!(bound_to(&p256, &set("crv", "P-521".into())), None);
        assert_eq!(bound_to(&p256, &set("alg", "ES384".into())), None);
        assert_eq!(bound_to(&p384, &set("crv", "P-256".into())), None);
        assert_eq!(bound_to(&p384, &set("alg", "ES256".into())), None);
        assert_eq!(bound_to(&ed25519, &set("crv", "Ed448".into())), None);
        assert_eq!(bound_to(&ed25519, &set("kty", "EC".into())), None);
        // Coordinates of the right length, off the curve.
        let off_curve = URL_SAFE_NO_PAD.encode([7; 32]);
        assert_eq!(bound_to(&p256, &set("y", off_curve.into())), None);
    }

    #[test]
    fn parsed_keys_check_their_own_signatures_only() {
        use crate::testing::SigningKey;
        let key = SigningKey::generate("k");
        let other = SigningKey::generate("k");
        let token = key.sign(&serde_json::json!({ "sub": "user_1" }));
        let forged = other.sign(&serde_json::json!({ "sub": "user_1" }));
        let split = |token: &str| {
            let (input, signature) = token.rsplit_once('.').unwrap();
            (input.to_owned(), URL_SAFE_NO_PAD.decode(signature).unwrap())
        };
        let (input, signature) = split(&token);
        let (forged_input, forged_signature) = split(&forged);

        let from_jwks = parse_jwks(SigningKey::jwks(&[&key]).to_string().as_bytes()).unwrap();
        let KeySource(Source::Static(from_pem)) = KeySource::pem(&key.public_key_pem()).unwrap()
        else {
            unreachable!("a PEM is a static key");
        };
        for parsed in [&from_jwks["k"], &from_pem] {
            assert!(parsed.verifies(input.as_bytes(), &signature));
            assert!(!parsed.verifies(forged_input.as_bytes(), &forged_signature));
            assert!(!parsed.verifies(b"another message", &signature));
            assert!(!parsed.verifies(input.as_bytes(), &signature[1..]));
        }
    }
}
