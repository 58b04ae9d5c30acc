//! Clerk session tokens: where a request carries one, its claims, the keys
//! that sign it, and its verification under the rules handed down
//! (`rules.rs`). A leaf: it knows nothing of the layer above it.

pub(crate) mod algorithm;
mod claims;
pub(crate) mod find;
pub(crate) mod footprint;
pub(crate) mod jws;
pub(crate) mod keys;
pub(crate) mod kind;
mod organization;
pub(crate) mod rules;
pub(crate) mod scope;
pub(crate) mod verify;

pub use claims::{Actor, SessionClaims};
pub use keys::KeySource;
pub use kind::{AcceptedTokens, ParseTokenTypeError, TokenType};
pub use organization::{ActiveOrganization, Permissions};
pub use rules::InvalidKey;
