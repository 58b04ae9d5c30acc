//! What the benchmarks share beside the tests' support (`tests/common`):
//! the issuer of their tokens, the routes they measure, the runtime a
//! single request runs on, and an allocator that counts.
#![allow(dead_code)]

pub mod allocations;

use std::hint::black_box;

use axum::{Router, routing::get};
use ensure_user::LocalUser;
use tokio::runtime::Runtime;

/// The issuer of the benchmarks' tokens.
pub const ISSUER: &str = "https://clerk.bench.example";

/// The route with nothing in front of it: the floor.
pub fn bare_app() -> Router {
    Router::new().route("/me", get(|| async { "ok" }))
}

/// The route a layer goes in front of: the handler takes the `LocalUser`.
pub fn user_routes() -> Router {
    Router::new().route(
        "/me",
        get(|user: LocalUser| async move {
            black_box(user);
            "ok"
        }),
    )
}

pub fn current_thread_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}
