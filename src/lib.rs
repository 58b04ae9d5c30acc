//! Clerk sign-in, with the app's own `users` row guaranteed on every request.
//!
//! [`EnsureUserLayer`] is a tower layer for axum or plain hyper. For each
//! request it verifies the Clerk session token (RS256, Clerk's claim rules,
//! keys from a JWKS endpoint or a PEM), finds the app's user row for that
//! Clerk user, creating it on first sight, and hands the handler a
//! [`LocalUser`]. No webhook has to have arrived first.
//!
//! The layer can accept Clerk's machine credentials on the same routes (API
//! keys, OAuth access tokens, machine tokens; see [`credential`] and
//! [`Config::with_accepted_tokens`]): what a request proved is one
//! [`Principal`], of which [`LocalUser`] and [`LocalOrganization`] are
//! views, so a user's API key gives the same row as the user's session.
//!
//! A repeat request costs one lock-free hash lookup: a verified token is
//! remembered until it expires, together with the local id it resolved to,
//! and users are cached as well. Concurrent first requests for a new user
//! share one store call, and racing processes converge on one row.
//!
//! # Example
//!
//! ```no_run
//! use axum::{Json, Router, routing::get};
//! use ensure_user::{Config, EnsureUserLayer, LocalUser, store::SqliteUserStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = sqlx::SqlitePool::connect("sqlite://app.db?mode=rwc").await?;
//! let store = SqliteUserStore::new(pool);
//! store.migrate().await?;
//!
//! let config = Config::from_env()?; // CLERK_PUBLISHABLE_KEY, …
//! let app: Router = Router::new()
//!     .route("/me", get(|user: LocalUser| async move { Json(user.id()) }))
//!     .layer(EnsureUserLayer::new(config, store));
//! # Ok(()) }
//! ```
//!
//! # Responses
//!
//! A refused request never reaches the handler. Token problems are `401` with
//! `WWW-Authenticate: Bearer error="invalid_token"` and a body such as
//! `{"error":"token_expired","message":"…"}`; outages (keys or database) are
//! `503` with `Retry-After`. The codes are listed on [`Rejection`].
//!
//! # Features
//!
//! Items that need a feature say which in their docs.
//!
//! - `axum` (default): the [`LocalUser`] extractors.
//! - `sqlite` (default): `store::SqliteUserStore`, and `Setup`.
//! - `postgres`: `store::PgUserStore`, and `Setup`.
//! - `metrics`: counters through the [`metrics`](https://docs.rs/metrics)
//!   facade: rejections by code, token and user cache hits and misses, store
//!   calls and their latency, key fetches.
//! - `webhooks`: `webhook::WebhookReceiver`, which keeps the users table
//!   in step with Clerk's `user.*` webhooks.
//! - `clerk-api`: `clerk_api::ClerkApi`, a client for the Backend API's
//!   users endpoints; `ProfileFetch`, which fills a new user's profile in
//!   from it; and the `backfill` module, which writes every existing Clerk
//!   user.
//! - `cli`: the `ensure-user` binary: `migrate` and `backfill`.
//! - `testing`: the `testing` module: RSA signing keys, JWKS documents and
//!   Clerk-shaped session tokens, for an app's tests and local development.
//!
//! # Organizations and authorization
//!
//! [`SessionClaims::organization`](clerk::SessionClaims::organization) is the user's active organization (id,
//! slug, role, permissions) from either version of Clerk's session token,
//! and [`SessionClaims::has`](clerk::SessionClaims::has) checks a [`Requirement`] (role, permission,
//! feature, plan, recent verification) from the token alone, as Clerk's
//! `has()` does. See [`authorization`].
//!
//! # Several instances
//!
//! Caches are per process; the database (rows and tombstones) is shared.
//! With PostgreSQL, the eviction listener (`Setup` starts it, or
//! `EnsureUserLayer::listen_for_evictions`) makes a deletion applied by any
//! instance reach every instance's caches within milliseconds; see
//! [`eviction`].

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod answers;
pub mod authorization;
mod backend_api;
#[cfg(feature = "clerk-api")]
#[cfg_attr(docsrs, doc(cfg(feature = "clerk-api")))]
pub mod backfill;
pub mod clerk;
#[cfg(feature = "clerk-api")]
#[cfg_attr(docsrs, doc(cfg(feature = "clerk-api")))]
pub mod clerk_api;
mod clerk_id;
mod clock;
mod config;
mod engine;
pub mod eviction;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod extract;
pub mod guard;
#[cfg(test)]
mod interleave;
pub mod layer;
mod local_id;
mod machine;
pub mod oidc;
mod policy;
mod principal;
#[cfg(feature = "clerk-api")]
mod profile_fetch;
mod readiness;
mod rejection;
mod service;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod setup;
pub mod store;
mod subject_key;
mod telemetry;
#[cfg(any(test, feature = "testing"))]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
mod token;
#[cfg(feature = "webhooks")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhooks")))]
pub mod webhook;

pub use authorization::Requirement;
pub use config::{Config, ConfigError, ProfileClaims};
pub use guard::Guard;
pub use layer::EnsureUserLayer;
pub use local_id::{LocalId, WrongIdKind};
pub use policy::Mode;
pub use principal::{LocalOrganization, LocalUser, Principal};
#[cfg(feature = "clerk-api")]
#[cfg_attr(docsrs, doc(cfg(feature = "clerk-api")))]
pub use profile_fetch::ProfileFetch;
pub use readiness::Readiness;
pub use rejection::Rejection;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
pub use setup::{Running, Setup};
pub use token::{InvalidKey, KeySource};

/// The kinds of credential a request may carry (Clerk's `acceptsToken`),
/// and whom a credential belongs to. What an API key, OAuth access token
/// or machine token says is [`clerk::MachineCredential`].
pub mod credential {
    pub use crate::{
        principal::Subject,
        token::{AcceptedTokens, ParseTokenTypeError, TokenType},
    };
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
