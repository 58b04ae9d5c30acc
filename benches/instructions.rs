//! Instruction counts of the layer's paths, under callgrind: figures that
//! hold from run to run on a noisy machine, where wall-clock times drift.
//!
//! ```sh
//! cargo install gungraun-runner --version 0.17.2   # once; needs valgrind
//! cargo bench --bench instructions --all-features
//! ```
//!
//! Each benchmark sends [`REQUESTS`] requests through one app on a
//! current-thread runtime; the app, its caches and the requests are built
//! by the benchmark's setup, which callgrind does not count, and a teardown
//! (not counted either) fails the benchmark unless every request was
//! answered with a success. Per-request figures are the totals divided by
//! [`REQUESTS`]; what the layer adds is a layered benchmark minus `bare`,
//! and per route part of that is axum's layering of a route, which
//! `passthrough_per_route` measures with a layer that does nothing.
//! Keys are a static PEM and the store is in memory, so no count depends on
//! a socket or a database; the tokens are signed with a fixed key, so every
//! setup leaves the allocator in the same state.
//!
//! The apps are `Router<()>`s called directly, which turn the matched
//! handler into a route on every request (applying the layers of
//! `Router::layer` to it each time); `axum::serve` calls `with_state(())`
//! first, which does it once. The `served_` benchmarks measure the same apps
//! that way.
//!
//! DHAT records every allocation's whole stack (`--num-callers=500`):
//! gungraun counts only the allocations whose recorded stack reaches the
//! benchmark function, and with valgrind's default of 12 frames the deeper
//! ones (most of a request's, inside the runtime) went uncounted.
//!
//! `.ci/instructions` runs these benchmarks and compares them with
//! `benches/instructions.baseline` (see BENCHMARKS.md).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::{
    collections::HashMap,
    convert::Infallible,
    hint::black_box,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Body};
use common::{
    bearer as request,
    clerk_api::{self, FakeClerk},
    svix,
};
use ensure_user::{
    Config, EnsureUserLayer, KeySource, LocalId,
    credential::AcceptedTokens,
    layer::EnsureUser,
    oidc::Issuer,
    store::{
        MembershipClaim, MembershipResolution, OrganizationResolution, OrganizationStore, Profile,
        Resolution, StoreError, SyncOutcome, UserStore, UserSync,
    },
    testing::{SigningKey, random_id, session_claims, svix_signature},
    webhook::WebhookReceiver,
};
use gungraun::{Dhat, LibraryBenchmarkConfig, library_benchmark, library_benchmark_group, main};
use http::{Request, Response};
use support::{
    ISSUER, bare_app, current_thread_runtime as runtime, fixed_signing_key, user_routes,
};
use tokio::runtime::Runtime;
use tower::{Service, ServiceBuilder, ServiceExt, util::MapRequestLayer};

/// Requests per benchmark.
const REQUESTS: usize = 100;

/// An app, the runtime it runs on, and the requests to send it.
struct Input<A> {
    runtime: Runtime,
    app: A,
    requests: Vec<Request<Body>>,
}

impl<A, B> Input<A>
where
    A: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone,
{
    /// Sends every request; returns how many were answered `200`, and the
    /// app and runtime, to be dropped after the measurement.
    fn drive(mut self) -> (usize, Self) {
        let requests = std::mem::take(&mut self.requests);
        let app = &self.app;
        let ok = self.runtime.block_on(async move {
            let mut ok = 0;
            for request in requests {
                let response = app.clone().oneshot(request).await.expect("infallible");
                ok += usize::from(response.status().is_success());
                drop(black_box(response));
            }
            ok
        });
        (ok, self)
    }

    /// Sends one request outside the measurement, to fill the caches.
    fn warmed(self, request: Request<Body>) -> Self {
        let status = self
            .runtime
            .block_on(self.app.clone().oneshot(request))
            .expect("infallible")
            .status();
        assert!(status.is_success(), "warm-up refused: {status}");
        self
    }
}

/// Users in memory: enough for a user-cache miss to cost what the layer
/// does around a store call, and nothing of a database's.
#[derive(Clone, Default)]
struct MemoryStore {
    ids: Arc<Mutex<HashMap<String, i64>>>,
}

impl MemoryStore {
    fn id_of(&self, clerk_id: &str) -> (i64, bool) {
        let mut ids = self.ids.lock().expect("lock");
        let next = i64::try_from(ids.len()).expect("few users") + 1;
        let mut created = false;
        let id = *ids.entry(clerk_id.to_owned()).or_insert_with(|| {
            created = true;
            next
        });
        (id, created)
    }
}

impl UserStore for MemoryStore {
    async fn find_or_create(&self, clerk_id: &str, _: &Profile) -> Result<Resolution, StoreError> {
        Ok(match self.id_of(clerk_id) {
            (id, true) => Resolution::Created(LocalId::Int(id)),
            (id, false) => Resolution::Existing(LocalId::Int(id)),
        })
    }
}

impl UserSync for MemoryStore {
    async fn upsert_profile(
        &self,
        clerk_id: &str,
        _: &Profile,
        _: i64,
    ) -> Result<SyncOutcome, StoreError> {
        Ok(match self.id_of(clerk_id) {
            (id, true) => SyncOutcome::Created(LocalId::Int(id)),
            (id, false) => SyncOutcome::Updated(LocalId::Int(id)),
        })
    }

    async fn delete_user(&self, clerk_id: &str, _: i64) -> Result<SyncOutcome, StoreError> {
        self.ids.lock().expect("lock").remove(clerk_id);
        Ok(SyncOutcome::Deleted)
    }
}

impl OrganizationStore for MemoryStore {
    async fn find_or_create_organization(
        &self,
        clerk_id: &str,
        _: Option<&str>,
    ) -> Result<OrganizationResolution, StoreError> {
        Ok(match self.id_of(clerk_id) {
            (id, true) => OrganizationResolution::Created(LocalId::Int(id)),
            (id, false) => OrganizationResolution::Existing(LocalId::Int(id)),
        })
    }

    async fn ensure_membership(
        &self,
        claim: &MembershipClaim<'_>,
    ) -> Result<MembershipResolution, StoreError> {
        let key = format!("{} {}", claim.organization_clerk_id, claim.user_clerk_id);
        let (id, created) = self.id_of(&key);
        Ok(MembershipResolution::Member {
            id: LocalId::Int(id),
            role: claim.role.to_owned(),
            role_version: claim.issued_at_ms,
            created,
        })
    }
}

fn layer(key: &SigningKey) -> EnsureUserLayer {
    let keys = KeySource::pem(&key.public_key_pem()).expect("PEM");
    EnsureUserLayer::new(Config::new(ISSUER, keys), MemoryStore::default())
}

fn requests(token: &str) -> Vec<Request<Body>> {
    (0..REQUESTS).map(|_| request(token)).collect()
}

/// The same route with nothing in front of it: what the layer is measured against.
fn bare() -> Input<Router> {
    let key = fixed_signing_key();
    let token = key.session_token(ISSUER, &random_id("user"), 3600);
    Input {
        runtime: runtime(),
        app: bare_app(),
        requests: requests(&token),
    }
}

/// The bare route behind a pass-through layer (`Router::layer` with a
/// `MapRequestLayer` that hands the request on untouched): what axum's
/// layering of a route costs, whatever the layer.
fn passthrough_per_route() -> Input<Router> {
    let key = fixed_signing_key();
    let token = key.session_token(ISSUER, &random_id("user"), 3600);
    Input {
        runtime: runtime(),
        app: bare_app().layer(MapRequestLayer::new(|request: Request<Body>| request)),
        requests: requests(&token),
    }
}

/// A repeat request, the layer on the route (`Router::layer`).
fn repeat_per_route() -> Input<Router> {
    let key = fixed_signing_key();
    let token = key.session_token(ISSUER, &random_id("user"), 3600);
    Input {
        runtime: runtime(),
        app: user_routes().layer(layer(&key)),
        requests: requests(&token),
    }
    .warmed(request(&token))
}

/// A repeat request, the layer wrapped once around the whole `Router`.
fn repeat_wrapped() -> Input<EnsureUser<Router>> {
    wrapped_around(user_routes())
}

/// The same, the `Router` as `axum::serve` runs it.
fn repeat_wrapped_served() -> Input<EnsureUser<Router>> {
    wrapped_around(user_routes().with_state(()))
}

fn wrapped_around(routes: Router) -> Input<EnsureUser<Router>> {
    let key = fixed_signing_key();
    let token = key.session_token(ISSUER, &random_id("user"), 3600);
    Input {
        runtime: runtime(),
        app: ServiceBuilder::new().layer(layer(&key)).service(routes),
        requests: requests(&token),
    }
    .warmed(request(&token))
}

/// `input`'s app as `axum::serve` runs a `Router`: `with_state(())` turns
/// every handler into a route once, with the layers of `Router::layer`
/// applied, instead of on every request.
fn served(input: Input<Router>) -> Input<Router> {
    Input {
        app: input.app.with_state(()),
        ..input
    }
}

/// A repeat request whose token names an active organization (version 2
/// claims: role, permissions), the layer resolving organizations, wrapped
/// around the `Router`: what `wrapped::repeat` costs with an organization.
fn repeat_with_organization() -> Input<EnsureUser<Router>> {
    let key = fixed_signing_key();
    let mut claims = session_claims(ISSUER, &random_id("user"), 3600);
    claims["o"] = serde_json::json!({
        "id": random_id("org"),
        "slg": "acme",
        "rol": "admin",
        "per": "manage,read",
        "fpm": "3",
    });
    claims["fea"] = "o:billing".into();
    let token = key.sign(&claims);
    Input {
        runtime: runtime(),
        app: ServiceBuilder::new()
            .layer(layer(&key).with_organizations(MemoryStore::default()))
            .service(user_routes()),
        requests: requests(&token),
    }
    .warmed(request(&token))
}

/// A repeat request with a user's API key, remembered since the warm-up
/// verified it through a Backend API on loopback: what `wrapped::repeat`
/// costs for an opaque machine credential.
fn repeat_api_key() -> Input<EnsureUser<Router>> {
    let key = fixed_signing_key();
    let runtime = runtime();
    let api = runtime.block_on(FakeClerk::start(Vec::new()));
    let secret = format!("ak_{}", "7".repeat(40));
    api.add_api_key(&secret, &random_id("user"), &["reports:read"], "bench");
    let config = Config::new(ISSUER, KeySource::pem(&key.public_key_pem()).expect("PEM"))
        .with_accepted_tokens(AcceptedTokens::ANY)
        .with_secret_key(clerk_api::SECRET)
        .with_api_url(api.url())
        // Remembered for the whole measurement, however slow under valgrind.
        .with_credential_cache_interval(Duration::from_secs(3600));
    Input {
        runtime,
        app: ServiceBuilder::new()
            .layer(EnsureUserLayer::new(config, MemoryStore::default()))
            .service(user_routes()),
        requests: requests(&secret),
    }
    .warmed(request(&secret))
}

/// The issuer of the OpenID Connect tokens, beside Clerk's.
const OIDC_ISSUER: &str = "https://id.bench.example";
/// The API those tokens are issued for.
const OIDC_AUDIENCE: &str = "https://api.bench.example";

/// A repeat request with an OpenID Connect access token (RFC 9068: `typ:
/// at+jwt`, RS256 with the fixed key, an audience), the layer accepting
/// that issuer beside Clerk, remembered since the warm-up verified it: what
/// `wrapped::repeat` costs for another issuer's token. The repeat path does
/// not verify again, so the algorithm does not count here.
fn repeat_oidc() -> Input<EnsureUser<Router>> {
    let key = fixed_signing_key();
    let keys = || KeySource::pem(&key.public_key_pem()).expect("PEM");
    let issuer = Issuer::new(OIDC_ISSUER)
        .with_keys(keys())
        .with_audience(OIDC_AUDIENCE);
    let config = Config::new(ISSUER, keys())
        .with_issuer(issuer)
        .expect("an https issuer, named once");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let header = serde_json::json!({ "alg": "RS256", "typ": "at+jwt", "kid": key.kid() });
    let claims = serde_json::json!({
        "iss": OIDC_ISSUER,
        "sub": random_id("person"),
        "aud": OIDC_AUDIENCE,
        "iat": now,
        "exp": now + 3600,
    });
    let token = key.sign_raw(header.to_string().as_bytes(), claims.to_string().as_bytes());
    Input {
        runtime: runtime(),
        app: ServiceBuilder::new()
            .layer(EnsureUserLayer::new(config, MemoryStore::default()))
            .service(user_routes()),
        requests: requests(&token),
    }
    .warmed(request(&token))
}

/// First sight of each token (an RS256 check), its user cached.
fn first_sight() -> Input<EnsureUser<Router>> {
    let key = fixed_signing_key();
    let user = random_id("user");
    // Each with another lifetime (within the default cap of an hour), so
    // that every token is a new one.
    let requests = (1..=REQUESTS)
        .map(|n| request(&key.session_token(ISSUER, &user, 3000 + n as i64)))
        .collect();
    Input {
        runtime: runtime(),
        app: ServiceBuilder::new()
            .layer(layer(&key))
            .service(user_routes()),
        requests,
    }
    .warmed(request(&key.session_token(ISSUER, &user, 3600)))
}

/// A user-cache miss for an existing user: each token verified before, each
/// user forgotten since, so every request is one in-memory store call.
fn user_cache_miss() -> Input<EnsureUser<Router>> {
    let key = fixed_signing_key();
    let layer = layer(&key);
    let tokens: Vec<String> = (0..REQUESTS)
        .map(|_| key.session_token(ISSUER, &random_id("user"), 3600))
        .collect();
    let mut input = Input {
        runtime: runtime(),
        app: ServiceBuilder::new()
            .layer(layer.clone())
            .service(user_routes()),
        requests: Vec::new(),
    };
    for token in &tokens {
        input = input.warmed(request(token));
    }
    layer.forget_all_users();
    input.requests = tokens.iter().map(|token| request(token)).collect();
    input
}

/// `user.updated` deliveries, each for another user, signed as svix signs.
fn webhook_deliveries() -> Input<WebhookReceiver> {
    let key = fixed_signing_key();
    let store = MemoryStore::default();
    let layer = EnsureUserLayer::new(
        Config::new(ISSUER, KeySource::pem(&key.public_key_pem()).expect("PEM")),
        store.clone(),
    );
    let receiver = WebhookReceiver::new(svix::verifier(), store, layer.evictor());
    let now = svix::now();
    let requests = (0..REQUESTS)
        .map(|n| {
            let body = serde_json::json!({
                "type": "user.updated",
                "object": "event",
                "data": {
                    "id": random_id("user"),
                    "object": "user",
                    "first_name": "Ada",
                    "last_name": "Lovelace",
                    "primary_email_address_id": "idn_1",
                    "email_addresses": [{"id": "idn_1", "email_address": "ada@example.com"}],
                    "updated_at": 1_700_000_000_000_i64 + i64::try_from(n).expect("small"),
                }
            })
            .to_string();
            let id = format!("msg_{n}");
            let signature = svix_signature(svix::SECRET, &id, now, body.as_bytes());
            Request::post(svix::PATH)
                .header("svix-id", id)
                .header("svix-timestamp", now.to_string())
                .header("svix-signature", signature)
                .body(Body::from(body))
                .expect("request")
        })
        .collect();
    Input {
        runtime: runtime(),
        app: receiver,
        requests,
    }
}

/// Fails the benchmark unless every request was answered with a success.
fn all_answered<A>((ok, input): (usize, A)) {
    assert_eq!(ok, REQUESTS, "requests answered with a success");
    drop(input);
}

#[library_benchmark(teardown = all_answered)]
#[bench::bare(bare())]
#[bench::passthrough_per_route(passthrough_per_route())]
#[bench::repeat_per_route(repeat_per_route())]
#[bench::served_bare(served(bare()))]
#[bench::served_passthrough_per_route(served(passthrough_per_route()))]
#[bench::served_repeat_per_route(served(repeat_per_route()))]
fn route(input: Input<Router>) -> (usize, Input<Router>) {
    input.drive()
}

#[library_benchmark(teardown = all_answered)]
#[bench::repeat(repeat_wrapped())]
#[bench::served_repeat(repeat_wrapped_served())]
#[bench::repeat_with_organization(repeat_with_organization())]
#[bench::repeat_api_key(repeat_api_key())]
#[bench::repeat_oidc(repeat_oidc())]
#[bench::first_sight(first_sight())]
#[bench::user_cache_miss(user_cache_miss())]
fn wrapped(input: Input<EnsureUser<Router>>) -> (usize, Input<EnsureUser<Router>>) {
    input.drive()
}

#[library_benchmark(teardown = all_answered)]
#[bench::user_updated(webhook_deliveries())]
fn webhook(input: Input<WebhookReceiver>) -> (usize, Input<WebhookReceiver>) {
    input.drive()
}

library_benchmark_group!(name = requests, benchmarks = [route, wrapped, webhook]);

main!(
    config = LibraryBenchmarkConfig::default().tool(Dhat::with_args(["--num-callers=500"]));
    library_benchmark_groups = requests
);
