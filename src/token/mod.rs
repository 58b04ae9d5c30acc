//! Clerk session tokens: where they are read from, their claims, their keys,
//! and their verification.

mod cache;
mod claims;
pub(crate) mod extract;
pub(crate) mod keys;
mod organization;
pub(crate) mod scope;
pub(crate) mod verify;

pub use claims::{Actor, SessionClaims};
pub use keys::KeySource;
pub use organization::{ActiveOrganization, Permissions};
