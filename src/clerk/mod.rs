//! What Clerk sends: the users, organizations and memberships its webhooks
//! deliver and its Backend API returns, and what the crate accepts as a
//! Clerk id.

pub(crate) mod id;
mod organization;
mod user;

pub use organization::{ClerkMembership, ClerkOrganization, MemberUser};
pub use user::{ClerkUser, EmailAddress};
