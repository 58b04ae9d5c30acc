//! What Clerk sends: the users, organizations and memberships its webhooks
//! deliver and its Backend API returns, the claims of its session tokens,
//! and what it says of an API key, OAuth access token or machine token.

mod organization;
mod user;

pub use organization::{ClerkMembership, ClerkOrganization, MemberUser};
pub use user::{ClerkUser, EmailAddress};

pub use crate::{
    machine::{MachineCredential, SubjectKind},
    token::{ActiveOrganization, Actor, Permissions, SessionClaims},
};
