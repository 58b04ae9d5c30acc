//! Clerk session tokens: where they are read from, their claims, their keys,
//! and their verification.

mod cache;
mod claims;
pub(crate) mod extract;
pub(crate) mod keys;
pub(crate) mod verify;

pub use claims::{Actor, Organization, SessionClaims};
pub use keys::KeySource;
