//! What the benchmarks share beside the tests' support (`tests/common`):
//! the issuer of their tokens, the routes they measure, the runtime a
//! single request runs on, and an allocator that counts.
#![allow(dead_code)]

pub mod allocations;

use std::hint::black_box;

use axum::{Router, routing::get};
use base64::{Engine, engine::general_purpose::STANDARD};
use ensure_user::{LocalUser, testing::SigningKey};
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

/// The same signing key in every run ("ins_bench"), so that a benchmark's
/// setup allocates the same way each time: a fresh key's generation leaves
/// the allocator in a state of its own, and about one run in five then paid
/// a consolidation of glibc's free chunks during the measured requests.
pub fn fixed_signing_key() -> SigningKey {
    let pem = include_str!("instructions-key.pem");
    let body: String = pem
        .lines()
        .skip_while(|line| !line.starts_with("-----BEGIN PRIVATE KEY-----"))
        .skip(1)
        .take_while(|line| !line.starts_with("-----END"))
        .collect();
    let der = STANDARD.decode(body).expect("base64 of the PEM");
    SigningKey::from_pkcs8("ins_bench", &der)
}

pub fn current_thread_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}
