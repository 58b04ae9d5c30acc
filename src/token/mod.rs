//! Clerk session tokens: where a request carries one, its claims, the keys
//! that sign it, its verification, and the cache of verified tokens.

pub(crate) mod cache;
mod claims;
pub(crate) mod entry;
pub(crate) mod find;
mod footprint;
pub(crate) mod keys;
pub(crate) mod kind;
mod organization;
pub(crate) mod scope;
pub(crate) mod verify;

pub use claims::{Actor, SessionClaims};
pub use keys::KeySource;
pub use kind::{AcceptedTokens, TokenType};
pub use organization::{ActiveOrganization, Permissions};
