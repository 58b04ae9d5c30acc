//! The kinds of credential Clerk issues, which of them a layer accepts, and
//! which kind a presented token is, decided as Clerk's SDK decides it.

use std::{borrow::Cow, fmt, str::FromStr};

use base64::{
    Engine,
    alphabet::URL_SAFE,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use serde::{
    Deserialize, Serialize,
    de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor},
};

/// A kind of credential Clerk issues, named as Clerk names it
/// (`session_token`, `api_key`, `m2m_token`, `oauth_token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TokenType {
    /// A session token: the JWT Clerk's frontend gives a signed-in user.
    SessionToken,
    /// An API key (`ak_…`), issued to a user, an organization or a machine.
    ApiKey,
    /// A machine-to-machine token: opaque (`mt_…`) or a JWT whose subject
    /// is a machine (`mch_…`).
    M2mToken,
    /// An OAuth access token that Clerk, as an OAuth provider, issued to an
    /// application: opaque (`oat_…`) or a JWT of type `at+jwt`.
    OauthToken,
    /// A token of a configured OpenID Connect issuer (see
    /// [`oidc`](crate::oidc)): accepted wherever its issuer is configured,
    /// whatever [`AcceptedTokens`] says of Clerk's kinds.
    OidcToken,
}

impl TokenType {
    /// Every kind, in the order of their bits in [`AcceptedTokens`].
    const ALL: [Self; 4] = [
        Self::SessionToken,
        Self::ApiKey,
        Self::M2mToken,
        Self::OauthToken,
    ];

    /// Clerk's name for this kind, e.g. `api_key`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SessionToken => "session_token",
            Self::ApiKey => "api_key",
            Self::M2mToken => "m2m_token",
            Self::OauthToken => "oauth_token",
            Self::OidcToken => "oidc_token",
        }
    }

    /// This kind's bit in [`AcceptedTokens`].
    const fn bit(self) -> u8 {
        match self {
            Self::SessionToken => 1,
            Self::ApiKey => 1 << 1,
            Self::M2mToken => 1 << 2,
            Self::OauthToken => 1 << 3,
            Self::OidcToken => 1 << 4,
        }
    }
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TokenType {
    type Err = ParseTokenTypeError;

    /// One of Clerk's names, exactly: `session_token`, `api_key`,
    /// `m2m_token` or `oauth_token`.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| ParseTokenTypeError::new(name, false))
    }
}

/// A name that is not a [`TokenType`] (or, for [`AcceptedTokens`], not
/// `any` either); its message names the word and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseTokenTypeError {
    word: String,
    any_accepted: bool,
}

impl ParseTokenTypeError {
    fn new(word: &str, any_accepted: bool) -> Self {
        Self {
            word: word.to_owned(),
            any_accepted,
        }
    }
}

impl fmt::Display for ParseTokenTypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.word.is_empty() {
            f.write_str("an empty token type")?;
        } else {
            write!(f, "unknown token type `{}`", self.word)?;
        }
        f.write_str("; expected session_token, api_key, m2m_token or oauth_token")?;
        if self.any_accepted {
            f.write_str(" (comma-separated), or any")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseTokenTypeError {}

/// The kinds of credential a layer accepts: a small set of [`TokenType`]s,
/// written in code (`AcceptedTokens::SESSION.with(TokenType::ApiKey)`, or
/// collected from kinds) or parsed from text (`"session_token, api_key"`,
/// `"any"`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AcceptedTokens(u8);

impl AcceptedTokens {
    /// Session tokens only: the default, as in Clerk's SDKs.
    pub const SESSION: Self = Self(TokenType::SessionToken.bit());

    /// Every kind of credential.
    pub const ANY: Self = Self(
        TokenType::SessionToken.bit()
            | TokenType::ApiKey.bit()
            | TokenType::M2mToken.bit()
            | TokenType::OauthToken.bit(),
    );

    /// This set and `kind`.
    #[must_use]
    pub const fn with(self, kind: TokenType) -> Self {
        Self(self.0 | kind.bit())
    }

    /// Whether `kind` is accepted.
    pub const fn contains(self, kind: TokenType) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Whether no kind at all is accepted (an empty set refuses every
    /// credential).
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether some accepted kind is verified with the instance's secret
    /// key: API keys and opaque OAuth tokens always are; M2M tokens may use
    /// a machine secret key instead.
    pub const fn needs_secret_key(self) -> bool {
        self.contains(TokenType::ApiKey) || self.contains(TokenType::OauthToken)
    }

    /// The accepted kinds, in a fixed order.
    pub fn iter(self) -> impl Iterator<Item = TokenType> {
        TokenType::ALL
            .into_iter()
            .filter(move |kind| self.contains(*kind))
    }
}

impl Default for AcceptedTokens {
    /// [`AcceptedTokens::SESSION`].
    fn default() -> Self {
        Self::SESSION
    }
}

impl FromIterator<TokenType> for AcceptedTokens {
    fn from_iter<I: IntoIterator<Item = TokenType>>(kinds: I) -> Self {
        kinds.into_iter().fold(Self(0), Self::with)
    }
}

impl FromStr for AcceptedTokens {
    type Err = ParseTokenTypeError;

    /// `any`, or a comma-separated list of Clerk's names, each trimmed of
    /// whitespace, such as `session_token, api_key`. An empty list or an
    /// empty entry is refused.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim() == "any" {
            return Ok(Self::ANY);
        }
        text.split(',')
            .map(|word| {
                let word = word.trim();
                word.parse()
                    .map_err(|_| ParseTokenTypeError::new(word, true))
            })
            .collect()
    }
}

/// `any`, or the accepted names joined by commas (nothing for an empty set).
impl fmt::Display for AcceptedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::ANY {
            return f.write_str("any");
        }
        for (n, kind) in self.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            f.write_str(kind.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for AcceptedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// What a presented token is, by its form alone (nothing is verified yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Classified {
    /// Not a machine credential: a session token, or something no
    /// verifier will accept (the session verifier then refuses it).
    Session,
    /// An opaque machine credential (`ak_…`, `mt_…`, `oat_…`), which only
    /// Clerk's Backend API can verify.
    Opaque(TokenType),
    /// A machine credential in JWT form, verified with the instance's keys.
    Jwt(TokenType),
}

impl Classified {
    /// The kind of credential.
    pub(crate) const fn token_type(self) -> TokenType {
        match self {
            Self::Session => TokenType::SessionToken,
            Self::Opaque(kind) | Self::Jwt(kind) => kind,
        }
    }
}

/// The prefix of an opaque M2M token.
const M2M_PREFIX: &[u8] = b"mt_";
/// The prefix of an opaque OAuth access token.
const OAUTH_PREFIX: &[u8] = b"oat_";
/// The prefix of an API key.
const API_KEY_PREFIX: &[u8] = b"ak_";
/// The subject prefix that makes a JWT an M2M token.
const MACHINE_SUBJECT_PREFIX: &str = "mch_";
/// The `typ` header values of an OAuth access token in JWT form (RFC 9068).
const OAUTH_JWT_TYPES: [&str; 2] = ["at+jwt", "application/at+jwt"];

/// The kind of `token`, in the order Clerk's SDK decides it: `mt_` or a
/// JWT whose `sub` starts with `mch_` is an M2M token; then `oat_` or a
/// JWT whose header `typ` is `at+jwt` (or `application/at+jwt`) is an
/// OAuth access token; then `ak_` is an API key; anything else is taken
/// for a session token.
///
/// A JWT here is three non-empty base64url segments whose first two decode
/// to JSON objects; nothing is verified. Cheap: the header is parsed, the payload
/// decoded (on the stack for a usual size) and scanned for `sub` alone,
/// without building either. Meant for a token already bounded in size.
pub(crate) fn classify(token: &[u8]) -> Classified {
    if token.starts_with(M2M_PREFIX) {
        return Classified::Opaque(TokenType::M2mToken);
    }
    let jwt = JwtForm::parse(token);
    if jwt.as_ref().is_some_and(|jwt| jwt.machine_subject) {
        return Classified::Jwt(TokenType::M2mToken);
    }
    if token.starts_with(OAUTH_PREFIX) {
        return Classified::Opaque(TokenType::OauthToken);
    }
    if jwt.as_ref().is_some_and(|jwt| jwt.oauth_type) {
        return Classified::Jwt(TokenType::OauthToken);
    }
    if token.starts_with(API_KEY_PREFIX) {
        return Classified::Opaque(TokenType::ApiKey);
    }
    Classified::Session
}

/// What classification reads of a token in JWT form.
struct JwtForm {
    /// The header's `typ` is an OAuth access token's.
    oauth_type: bool,
    /// The payload's `sub` is a string starting with `mch_`.
    machine_subject: bool,
}

impl JwtForm {
    /// `None` unless `token` has the shape of a JWT and its header and
    /// payload decode to JSON objects.
    fn parse(token: &[u8]) -> Option<Self> {
        let segment = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_');
        let mut parts = token.split(|b| *b == b'.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        if [header, payload, signature]
            .iter()
            .any(|part| part.is_empty() || !part.iter().all(segment))
        {
            return None;
        }
        let oauth_type = with_decoded(header, |json| {
            string_field(json, "typ", |typ| OAUTH_JWT_TYPES.contains(&typ))
        })??;
        let machine_subject = with_decoded(payload, |json| {
            string_field(json, "sub", |sub| sub.starts_with(MACHINE_SUBJECT_PREFIX))
        })??;
        Some(Self {
            oauth_type,
            machine_subject,
        })
    }
}

/// Base64url as JWT libraries read it leniently: padding optional, unused
/// trailing bits ignored.
const LENIENT_BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Bytes decoded on the stack; a larger segment is decoded on the heap.
const STACK_DECODE_BYTES: usize = 2048;

/// `read` applied to the base64url-decoded `segment`; `None` when it does
/// not decode.
fn with_decoded<R>(segment: &[u8], read: impl FnOnce(&[u8]) -> R) -> Option<R> {
    if base64::decoded_len_estimate(segment.len()) <= STACK_DECODE_BYTES {
        let mut buffer = [0u8; STACK_DECODE_BYTES];
        let len = LENIENT_BASE64URL.decode_slice(segment, &mut buffer).ok()?;
        buffer.get(..len).map(read)
    } else {
        LENIENT_BASE64URL
            .decode(segment)
            .ok()
            .map(|bytes| read(&bytes))
    }
}

/// Whether the JSON object `json` has a member `name` that is a string
/// passing `test` (the last such member, as JavaScript reads duplicates);
/// `None` when `json` is not a JSON object. Nothing is built: the other
/// members are skipped as they are read.
fn string_field(json: &[u8], name: &str, test: fn(&str) -> bool) -> Option<bool> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let found = deserializer
        .deserialize_map(FieldProbe { name, test })
        .ok()?;
    deserializer.end().ok()?;
    Some(found)
}

/// Reads a JSON object, checking its member `name` with `test`.
struct FieldProbe<'n> {
    name: &'n str,
    test: fn(&str) -> bool,
}

impl<'de> Visitor<'de> for FieldProbe<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(is_name) = map.next_key_seed(KeyIs(self.name))? {
            if is_name {
                found = match map.next_value()? {
                    Member::Text(text) => (self.test)(&text),
                    Member::Other(_) => false,
                };
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// A member's value: a string (borrowed unless it has escapes), or
/// anything else, skipped.
#[derive(Deserialize)]
#[serde(untagged)]
enum Member<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Other(IgnoredAny),
}

/// Whether a key is `.0`, read without copying it.
struct KeyIs<'n>(&'n str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

#[cfg(test)]
mod tests;
