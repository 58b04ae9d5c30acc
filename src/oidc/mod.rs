//! Tokens of any OpenID Connect issuer — Auth0, Keycloak, Supabase,
//! Cognito, Firebase, Entra ID, Okta, Google, or your own — beside Clerk's
//! or instead of them, with the same guarantee: a row on first sight,
//! exactly once, cached, refused at once on every instance when deleted.
//!
//! ```no_run
//! use ensure_user::{Config, EnsureUserLayer, oidc::Issuer, store::SqliteUserStore};
//!
//! # async fn run(store: SqliteUserStore) -> Result<(), Box<dyn std::error::Error>> {
//! // Clerk's sessions and an Auth0 API's access tokens on the same routes,
//! // as while moving from one to the other.
//! let config = Config::from_env()?.with_issuer(
//!     Issuer::auth0("example.eu.auth0.com").with_audience("https://api.example.com"),
//! )?;
//! // Or an issuer alone: `Config::for_issuers([Issuer::new(url).with_audience(api)])`.
//! let layer = EnsureUserLayer::new(config, store);
//! # let _ = layer; Ok(()) }
//! ```
//!
//! # Which issuer verifies a token
//!
//! The token's `iss` picks the issuer; it is read before verification for
//! that alone. Each issuer has its own key store (a key of one issuer never
//! verifies a token claiming another) and its own rules ([`Issuer`]). A JWT
//! naming no configured issuer goes to Clerk's verifier, when Clerk is
//! configured, and is refused `401 invalid_issuer` otherwise.
//!
//! # Rows
//!
//! A user of an issuer is keyed by (issuer, subject), written as one text,
//! `<issuer>#<subject>` ([`user_key`]), in the users table's Clerk id
//! column (or the column an app's own table maps it to): the same
//! statements, caches, tombstones, bans and announcements as Clerk's users,
//! and no migration. An issuer URL has no `#`, and no Clerk id starts with
//! `http`, so keys of different issuers, and Clerk's, never meet.
//!
//! # Lifecycle
//!
//! Providers tell an app of deletions and bans in their own ways (a hook,
//! an event stream). [`Lifecycle`] is what the app calls from there: a
//! deletion tombstones the user and refuses their still-valid tokens on
//! every instance, exactly as a Clerk `user.deleted` does.

mod claims;
mod discovery;
mod issuer;
mod lifecycle;
pub(crate) mod verify;

#[cfg(test)]
mod tests;

pub use claims::OidcClaims;
pub use issuer::{Issuer, TokenUse};
pub use lifecycle::Lifecycle;

/// The key of `subject` at `issuer` in the users table: `<issuer>#<subject>`.
///
/// ```
/// assert_eq!(
///     ensure_user::oidc::user_key("https://example.eu.auth0.com/", "auth0|64f1"),
///     "https://example.eu.auth0.com/#auth0|64f1",
/// );
/// ```
pub fn user_key(issuer: &str, subject: &str) -> String {
    crate::subject_key::of_issuer(issuer, subject)
}
