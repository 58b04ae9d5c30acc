//! What `EnsureUserLayer` costs per request, against a bare handler and
//! against verifying the token on every request.
//!
//! Every measurement is an in-process `tower::ServiceExt::oneshot` on an axum
//! `Router`: no socket is involved in the request itself. The signing keys are
//! served by a JWKS endpoint on 127.0.0.1 and fetched once, before anything is
//! timed. Tokens are signed ahead of time and never inside a timed section.
//!
//! Besides criterion's timings the run prints allocations per request (from a
//! counting global allocator in this binary), bytes per cached user and per
//! cached token at 100,000 entries, and a summary against the project's
//! targets. See BENCHMARKS.md for how to read it.
//!
//! Needs PostgreSQL at `ENSURE_USER_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); the run works in a schema of
//! its own and drops it at the end. The JWKS endpoint, the pools and the
//! schema come from the tests' support.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::{
    convert::Infallible,
    hint::black_box,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Extension, Router,
    body::Body,
    extract::Request,
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use common::{
    JwksServer, bearer as request, postgres_pool_in, postgres_schema, postgres_url, sqlite_path,
    sqlite_pool_at,
};
use criterion::{BenchmarkGroup, Criterion, SamplingMode, measurement::WallTime};
use ensure_user::{
    Config, EnsureUserLayer, KeySource, LocalId,
    clerk::SessionClaims,
    layer::EnsureUser,
    store::{
        MembershipClaim, MembershipResolution, OrganizationResolution, OrganizationStore,
        PgUserStore, Profile, Resolution, SqliteUserStore, StoreError, UserStore,
    },
    testing::{SigningKey, random_id, session_claims},
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::Jwk};
use serde_json::{Value, json};
use support::{
    ISSUER,
    allocations::{CountingAllocator, allocator_in_use, counting_start, counting_stop},
    bare_app, current_thread_runtime, user_routes,
};
use tokio::runtime::Runtime;
use tower::{Service, ServiceBuilder, ServiceExt};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Requests built ahead of a timed loop at a time.
const BATCH: u64 = 1024;
/// Concurrent first requests for one new user (case 7).
const CONCURRENT: usize = 1000;

// ---------------------------------------------------------------------------
// Keys, tokens and the JWKS endpoint.

/// A JWKS endpoint serving `key`, on a thread and a runtime of its own for
/// the life of the process: the run's runtimes only run while they measure,
/// and whichever of them fetches the keys must get an answer.
fn jwks_server(key: &SigningKey) -> JwksServer {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        current_thread_runtime().block_on(async move {
            sender
                .send(JwksServer::start(&[]).await)
                .expect("report the endpoint");
            std::future::pending::<()>().await;
        });
    });
    let jwks = receiver.recv().expect("JWKS endpoint");
    jwks.serve(&[key]);
    jwks
}

struct Keys {
    key: SigningKey,
    jwks: JwksServer,
}

impl Keys {
    fn new() -> Self {
        let key = SigningKey::generate("ins_bench");
        let jwks = jwks_server(&key);
        Self { key, jwks }
    }

    /// The default configuration, trusting the local endpoint. The key set is
    /// refreshed hourly so that no refresh falls inside a run.
    fn config(&self) -> Config {
        Config::new(ISSUER, KeySource::jwks_url(self.jwks.url()))
            .with_key_refresh_interval(Duration::from_secs(3600))
    }

    /// A token for `user`, valid for an hour, with a session id of its own,
    /// so that no two tokens are alike.
    fn token(&self, user: &str) -> String {
        let mut claims = session_claims(ISSUER, user, 3600);
        claims["sid"] = json!(random_id("sess"));
        self.key.sign(&claims)
    }

    /// A token for `user` naming an active organization (version 2 claims:
    /// slug, role, permissions of one feature), valid for an hour.
    fn organization_token(&self, user: &str) -> String {
        let mut claims = session_claims(ISSUER, user, 3600);
        claims["o"] = json!({
            "id": random_id("org"),
            "slg": "acme",
            "rol": "admin",
            "per": "manage,read",
            "fpm": "3",
        });
        claims["fea"] = json!("o:billing");
        self.key.sign(&claims)
    }

    /// A token for `user` with every default claim of a Clerk version 2
    /// session token (`azp`, `fva`, `jti` besides those of [`Self::token`]),
    /// valid for an hour.
    fn full_token(&self, user: &str) -> String {
        let mut claims = session_claims(ISSUER, user, 3600);
        claims["sid"] = json!(random_id("sess"));
        claims["azp"] = json!("https://app.bench.example");
        claims["fva"] = json!([0, -1]);
        claims["jti"] = json!(random_id("jti")[4..24]);
        self.key.sign(&claims)
    }

    /// `count` tokens, signed on every core; `user(i)` names the subject of the i-th.
    fn mint(&self, count: usize, user: impl Fn(usize) -> String + Sync) -> Vec<String> {
        self.mint_with(count, Self::token, user)
    }

    /// `count` tokens made by `sign`, on every core; `user(i)` names the
    /// subject of the i-th.
    fn mint_with(
        &self,
        count: usize,
        sign: Sign,
        user: impl Fn(usize) -> String + Sync,
    ) -> Vec<String> {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let per_thread = count.div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..count)
                .step_by(per_thread)
                .map(|start| {
                    let (user, end) = (&user, (start + per_thread).min(count));
                    scope.spawn(move || {
                        (start..end)
                            .map(|i| sign(self, &user(i)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|worker| worker.join().expect("signing thread"))
                .collect::<Vec<String>>()
        })
    }

    /// The key as any JWT library would build it from the JWKS.
    fn decoding_key(&self) -> DecodingKey {
        let jwk: Jwk = serde_json::from_value(self.key.jwk()).expect("JWK");
        DecodingKey::from_jwk(&jwk).expect("RSA decoding key")
    }
}

/// Validation as a verify-every-request middleware sets it up: RS256, the
/// issuer, `exp` and `nbf` with a 5 s leeway.
fn validation() -> Validation {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[ISSUER]);
    validation.leeway = 5;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation
}

/// Single-use tokens for one user, handed out in order, signed in bulk
/// whenever more are needed (never inside a timed section).
struct TokenPool {
    user: String,
    tokens: Vec<String>,
    next: usize,
}

impl TokenPool {
    fn new(user: String) -> Self {
        Self {
            user,
            tokens: Vec::new(),
            next: 0,
        }
    }

    /// Makes sure that `count` unused tokens are ready.
    fn reserve(&mut self, keys: &Keys, count: usize) {
        let missing = (self.next + count).saturating_sub(self.tokens.len());
        if missing > 0 {
            let user = self.user.clone();
            // Sign ahead a little, so that small calls do not sign one at a time.
            self.tokens
                .extend(keys.mint(missing.max(1024), |_| user.clone()));
        }
    }

    /// The next `count` unused tokens.
    fn take(&mut self, keys: &Keys, count: usize) -> &[String] {
        self.reserve(keys, count);
        let taken = &self.tokens[self.next..self.next + count];
        self.next += count;
        taken
    }
}

// ---------------------------------------------------------------------------
// Apps and stores.

/// The route behind the layer; the handler takes the `LocalUser`.
fn layered_app(layer: EnsureUserLayer) -> Router {
    user_routes().layer(layer)
}

/// The same routes with the layer wrapped once around the whole `Router`
/// rather than applied to each route.
fn wrapped_app(layer: EnsureUserLayer) -> EnsureUser<Router> {
    ServiceBuilder::new().layer(layer).service(user_routes())
}

/// The usual alternative: a middleware that decodes and validates the token
/// with jsonwebtoken on every request and hands the claims on.
fn verify_every_request_app(key: DecodingKey) -> Router {
    #[derive(Clone)]
    struct Verify {
        key: Arc<DecodingKey>,
        validation: Arc<Validation>,
    }
    async fn verify(
        axum::extract::State(state): axum::extract::State<Verify>,
        mut request: Request,
        next: Next,
    ) -> Response {
        let token = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let Some(token) = token else {
            return StatusCode::UNAUTHORIZED.into_response();
        };
        match jsonwebtoken::decode::<SessionClaims>(token, &state.key, &state.validation) {
            Ok(data) => {
                request.extensions_mut().insert(Arc::new(data.claims));
                next.run(request).await
            }
            Err(_) => StatusCode::UNAUTHORIZED.into_response(),
        }
    }
    let state = Verify {
        key: Arc::new(key),
        validation: Arc::new(validation()),
    };
    Router::new()
        .route(
            "/me",
            get(
                |Extension(claims): Extension<Arc<SessionClaims>>| async move {
                    black_box(claims);
                    "ok"
                },
            ),
        )
        .layer(middleware::from_fn_with_state(state, verify))
}

/// Holds no rows: every call "creates" the next integer id. It allocates
/// nothing, so that memory figures show the layer's caches alone.
#[derive(Clone, Default)]
struct CountingIds {
    next: Arc<AtomicI64>,
}

impl UserStore for CountingIds {
    async fn find_or_create(
        &self,
        _clerk_id: &str,
        _profile: &Profile,
    ) -> Result<Resolution, StoreError> {
        Ok(Resolution::Created(LocalId::Int(
            self.next.fetch_add(1, Ordering::Relaxed),
        )))
    }
}

impl OrganizationStore for CountingIds {
    async fn find_or_create_organization(
        &self,
        _clerk_id: &str,
        _slug: Option<&str>,
    ) -> Result<OrganizationResolution, StoreError> {
        Ok(OrganizationResolution::Created(LocalId::Int(
            self.next.fetch_add(1, Ordering::Relaxed),
        )))
    }

    async fn ensure_membership(
        &self,
        claim: &MembershipClaim<'_>,
    ) -> Result<MembershipResolution, StoreError> {
        Ok(MembershipResolution::Member {
            id: LocalId::Int(self.next.fetch_add(1, Ordering::Relaxed)),
            role: claim.role.to_owned(),
            role_version: claim.issued_at_ms,
            created: true,
        })
    }
}

/// A real store behind a switch. While `warming`, calls are answered with a
/// placeholder id without touching the database: that lets a run put tokens
/// in the token cache and then forget the users, so that timed requests hit
/// the token cache and miss the user cache. Counts the calls that reach the
/// database.
#[derive(Clone)]
struct Switched<S> {
    inner: S,
    warming: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

impl<S> Switched<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            warming: Arc::new(AtomicBool::new(false)),
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl<S: UserStore> UserStore for Switched<S> {
    async fn find_or_create(
        &self,
        clerk_id: &str,
        profile: &Profile,
    ) -> Result<Resolution, StoreError> {
        if self.warming.load(Ordering::Relaxed) {
            return Ok(Resolution::Existing(LocalId::Int(0)));
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.find_or_create(clerk_id, profile).await
    }
}

/// A schema of the run's own in PostgreSQL and a SQLite file in the temp dir,
/// both migrated; removed by `drop_all`.
struct Databases {
    schema: String,
    sqlite_path: PathBuf,
}

impl Databases {
    async fn create() -> Self {
        let databases = Self {
            schema: postgres_schema().await,
            sqlite_path: sqlite_path(),
        };
        databases.postgres().await.migrate().await.expect("migrate");
        databases.sqlite().await.migrate().await.expect("migrate");
        databases
    }

    /// A store on a new pool; pools belong to the runtime they are made in.
    async fn postgres(&self) -> PgUserStore {
        PgUserStore::new(postgres_pool_in(&self.schema, 4).await)
    }

    /// A store on a new pool over the same file.
    async fn sqlite(&self) -> SqliteUserStore {
        SqliteUserStore::new(sqlite_pool_at(&self.sqlite_path, 4).await)
    }

    async fn drop_all(&self) {
        if let Ok(admin) = sqlx::PgPool::connect(&postgres_url()).await {
            let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                .execute(&admin)
                .await;
            admin.close().await;
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.sqlite_path.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

// ---------------------------------------------------------------------------
// Timing loops.

/// Sends one request and checks that it got through.
async fn send<A>(app: &A, request: Request<Body>)
where
    A: Service<Request<Body>, Error = Infallible> + Clone,
    A::Response: HasStatus,
{
    let response = app.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK, "request refused");
}

/// A response of any body type, for `send`.
trait HasStatus {
    fn status(&self) -> StatusCode;
}

impl<B> HasStatus for http::Response<B> {
    fn status(&self) -> StatusCode {
        self.status()
    }
}

/// Time for `iters` requests, built `BATCH` at a time outside the timed loop.
fn time_requests<A>(
    runtime: &Runtime,
    app: &A,
    iters: u64,
    mut make: impl FnMut(u64) -> Request<Body>,
) -> Duration
where
    A: Service<Request<Body>, Error = Infallible> + Clone,
    A::Response: HasStatus,
{
    runtime.block_on(async {
        let mut total = Duration::ZERO;
        let mut done = 0;
        while done < iters {
            let count = (iters - done).min(BATCH);
            let requests: Vec<_> = (done..done + count).map(&mut make).collect();
            let start = Instant::now();
            for request in requests {
                send(app, request).await;
            }
            total += start.elapsed();
            done += count;
        }
        total
    })
}

/// Allocations per request (and bytes allocated per request) over `count`
/// requests, after as many untimed ones to settle the caches.
fn allocations_per_request<A>(
    runtime: &Runtime,
    app: &A,
    count: u64,
    mut make: impl FnMut(u64) -> Request<Body>,
) -> (f64, f64)
where
    A: Service<Request<Body>, Error = Infallible> + Clone,
    A::Response: HasStatus,
{
    runtime.block_on(async {
        for i in 0..count {
            send(app, make(i)).await;
        }
        let requests: Vec<_> = (count..2 * count).map(&mut make).collect();
        counting_start();
        for request in requests {
            send(app, request).await;
        }
        let counted = counting_stop();
        (
            counted.allocations as f64 / count as f64,
            counted.allocated_bytes as f64 / count as f64,
        )
    })
}

// ---------------------------------------------------------------------------
// The run.

struct Run {
    quick: bool,
    filter: Option<String>,
    keys: Keys,
    runtime: Runtime,
    hot_token: String,
    hot_user: String,
    allocations: Vec<(&'static str, f64, f64)>,
    interleaved: Option<Interleaved>,
    memory: Option<Memory>,
}

/// The apps of the request group.
struct Apps {
    bare: Router,
    layered: Router,
    baseline: Router,
}

/// Medians of the alternating measurement, in nanoseconds, and the medians
/// of the per-round ratios.
struct Interleaved {
    rounds: usize,
    bare: f64,
    repeat: f64,
    baseline: f64,
    first_sight: f64,
    raw_verify: f64,
    repeat_extra: f64,
    speedup: f64,
    first_sight_ratio: f64,
}

fn median_of(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    }
}

struct Memory {
    entries: usize,
    per_user: f64,
    per_user_held: Option<f64>,
    /// Bytes per cached token, for each shape of token.
    tokens: Vec<TokenMemory>,
    /// Users of a sample of 1,000 that had to be loaded again.
    evicted: i64,
}

/// Bytes per cached token of one shape.
struct TokenMemory {
    shape: &'static str,
    /// Characters, on average.
    len: f64,
    requested: f64,
    held: Option<f64>,
}

/// Signs a token of one shape for a user.
type Sign = fn(&Keys, &str) -> String;

/// The shapes of token the memory figures are taken for.
const TOKEN_SHAPES: [(&str, Sign); 3] = [
    ("lean (iss, sub, sid, iat, nbf, exp, v, sts)", Keys::token),
    ("every default claim (azp, fva, jti too)", Keys::full_token),
    ("an active organization", Keys::organization_token),
];

impl Run {
    fn new(quick: bool, filter: Option<String>) -> Self {
        let keys = Keys::new();
        let hot_user = random_id("user");
        let hot_token = keys.token(&hot_user);
        Self {
            quick,
            filter,
            keys,
            runtime: current_thread_runtime(),
            hot_token,
            hot_user,
            allocations: Vec::new(),
            interleaved: None,
            memory: None,
        }
    }

    /// Whether the extra report `name` is wanted: criterion's filter, if
    /// any, must be part of its name.
    fn wants(&self, name: &str) -> bool {
        self.filter
            .as_deref()
            .is_none_or(|filter| name.contains(filter))
    }

    /// A layer with the keys fetched and the hot user cached.
    fn warm_layer(&self, config: Config, store: impl UserStore) -> EnsureUserLayer {
        let layer = EnsureUserLayer::new(config, store);
        self.runtime.block_on(async {
            layer
                .prefetch_keys()
                .await
                .expect("keys from the JWKS endpoint");
            send(&layered_app(layer.clone()), request(&self.hot_token)).await;
        });
        layer
    }

    /// Cases 1–4 and the raw verify.
    fn requests(&mut self, c: &mut Criterion) {
        let mut group = c.benchmark_group("request");
        group
            .sample_size(50)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));

        let bare = bare_app();
        let token = self.hot_token.clone();
        group.bench_function("bare", |b| {
            b.iter_custom(|iters| time_requests(&self.runtime, &bare, iters, |_| request(&token)));
        });

        let layer = self.warm_layer(self.keys.config(), CountingIds::default());
        let layered = layered_app(layer.clone());
        group.bench_function("repeat", |b| {
            b.iter_custom(|iters| {
                time_requests(&self.runtime, &layered, iters, |_| request(&token))
            });
        });
        let wrapped = wrapped_app(layer);
        group.bench_function("repeat_router_wrapped", |b| {
            b.iter_custom(|iters| {
                time_requests(&self.runtime, &wrapped, iters, |_| request(&token))
            });
        });
        let organizations = CountingIds::default();
        let layer = EnsureUserLayer::new(self.keys.config(), organizations.clone())
            .with_organizations(organizations);
        let organization_token = self.keys.organization_token(&self.hot_user);
        self.runtime.block_on(async {
            layer
                .prefetch_keys()
                .await
                .expect("keys from the JWKS endpoint");
            send(&layered_app(layer.clone()), request(&organization_token)).await;
        });
        let with_organization = wrapped_app(layer);
        group.bench_function("repeat_router_wrapped_organization", |b| {
            b.iter_custom(|iters| {
                time_requests(&self.runtime, &with_organization, iters, |_| {
                    request(&organization_token)
                })
            });
        });
        if self.wants("request/allocations") {
            let count = if self.quick { 10 } else { 10_000 };
            let (allocations, bytes) =
                allocations_per_request(&self.runtime, &wrapped, count, |_| request(&token));
            println!(
                "allocations per request, repeat_router_wrapped: {allocations:.2} ({bytes:.0} bytes)"
            );
        }

        let baseline = verify_every_request_app(self.keys.decoding_key());
        group.bench_function("verify_every_request", |b| {
            b.iter_custom(|iters| {
                time_requests(&self.runtime, &baseline, iters, |_| request(&token))
            });
        });

        // The layer with its token cache off: every request verifies, nothing
        // is inserted. Shows the layer's own verification against jsonwebtoken's.
        let uncached = layered_app(self.warm_layer(
            self.keys.config().with_token_cache_bytes(0),
            CountingIds::default(),
        ));
        group.bench_function("token_cache_off", |b| {
            b.iter_custom(|iters| {
                time_requests(&self.runtime, &uncached, iters, |_| request(&token))
            });
        });

        // Every request brings a token never seen before, for the cached user.
        // The pool is signed beforehand: criterion sizes its samples by the
        // wall time of its warm-up, signing included.
        let mut pool = TokenPool::new(self.hot_user.clone());
        if self.wants("request/first_sight") {
            pool.reserve(&self.keys, if self.quick { 16 } else { 75_000 });
        }
        group
            .sample_size(20)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1));
        group.bench_function("first_sight", |b| {
            b.iter_custom(|iters| {
                let tokens = pool.take(&self.keys, usize::try_from(iters).expect("iters"));
                time_requests(&self.runtime, &layered, iters, |i| {
                    request(&tokens[usize::try_from(i).expect("index")])
                })
            });
        });
        group.finish();

        let mut group = c.benchmark_group("verify");
        group
            .sample_size(50)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(2));
        let key = self.keys.decoding_key();
        let validation = validation();
        group.bench_function("jsonwebtoken_decode", |b| {
            b.iter(|| {
                jsonwebtoken::decode::<SessionClaims>(black_box(&token), &key, &validation)
                    .expect("valid token")
            });
        });
        let (signed, signature) = token.rsplit_once('.').expect("three segments");
        group.bench_function("signature_only", |b| {
            b.iter(|| {
                jsonwebtoken::crypto::verify(
                    black_box(signature),
                    black_box(signed.as_bytes()),
                    &key,
                    Algorithm::RS256,
                )
                .expect("verifies")
            });
        });
        group.finish();

        let apps = Apps {
            bare,
            layered,
            baseline,
        };
        if self.wants("request/allocations") {
            self.count_allocations(&apps, &mut pool);
        }
        if self.wants("request/interleaved") {
            self.interleave(&apps, &mut pool);
        }
    }

    /// Allocations per request, counted outside of any timing.
    fn count_allocations(&mut self, apps: &Apps, pool: &mut TokenPool) {
        let count = if self.quick { 10 } else { 10_000 };
        let token = &self.hot_token;
        let tokens = pool.take(&self.keys, 2 * count as usize).to_vec();
        let rows = [
            ("bare", &apps.bare, None),
            ("repeat", &apps.layered, None),
            ("first_sight", &apps.layered, Some(&tokens)),
            ("verify_every_request", &apps.baseline, None),
        ];
        self.allocations = rows
            .into_iter()
            .map(|(name, app, fresh)| {
                let (allocations, bytes) =
                    allocations_per_request(&self.runtime, app, count, |i| match fresh {
                        Some(tokens) => request(&tokens[i as usize]),
                        None => request(token),
                    });
                println!("allocations per request, {name}: {allocations:.2} ({bytes:.0} bytes)");
                (name, allocations, bytes)
            })
            .collect();
    }

    /// The figures the targets compare, measured in alternation: each round
    /// times a short batch of each kind, in a rotating order, so that a
    /// change in the machine's load hits all of them alike. Ratios are
    /// taken within each round, then their median over the rounds.
    fn interleave(&mut self, apps: &Apps, pool: &mut TokenPool) {
        const CHEAP: u64 = 200;
        const COSTLY: u64 = 20;
        let rounds = if self.quick { 2 } else { 500 };
        pool.reserve(&self.keys, rounds * COSTLY as usize);
        let key = self.keys.decoding_key();
        let validation = validation();
        let token = self.hot_token.clone();
        let mut figures: Vec<[f64; 5]> = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let mut row = [0.0; 5];
            for kind in (0..5).map(|k| (k + round) % 5) {
                let per_request =
                    |total: Duration, count: u64| total.as_secs_f64() * 1e9 / count as f64;
                row[kind] = match kind {
                    0 => per_request(
                        time_requests(&self.runtime, &apps.bare, CHEAP, |_| request(&token)),
                        CHEAP,
                    ),
                    1 => per_request(
                        time_requests(&self.runtime, &apps.layered, CHEAP, |_| request(&token)),
                        CHEAP,
                    ),
                    2 => per_request(
                        time_requests(&self.runtime, &apps.baseline, COSTLY, |_| request(&token)),
                        COSTLY,
                    ),
                    3 => {
                        let tokens = pool.take(&self.keys, COSTLY as usize);
                        per_request(
                            time_requests(&self.runtime, &apps.layered, COSTLY, |i| {
                                request(&tokens[i as usize])
                            }),
                            COSTLY,
                        )
                    }
                    _ => {
                        let start = Instant::now();
                        for _ in 0..COSTLY {
                            black_box(
                                jsonwebtoken::decode::<SessionClaims>(
                                    black_box(&token),
                                    &key,
                                    &validation,
                                )
                                .expect("valid token"),
                            );
                        }
                        per_request(start.elapsed(), COSTLY)
                    }
                };
            }
            figures.push(row);
        }
        let column = |f: &dyn Fn(&[f64; 5]) -> f64| median_of(figures.iter().map(f).collect());
        let result = Interleaved {
            rounds,
            bare: column(&|r| r[0]),
            repeat: column(&|r| r[1]),
            baseline: column(&|r| r[2]),
            first_sight: column(&|r| r[3]),
            raw_verify: column(&|r| r[4]),
            repeat_extra: column(&|r| r[1] - r[0]),
            speedup: column(&|r| r[2] / r[1]),
            first_sight_ratio: column(&|r| r[3] / (r[4] + r[0])),
        };
        println!(
            "interleaved ({} rounds), medians: bare {:.0} ns, repeat {:.0} ns, \
             verify_every_request {:.0} ns, first_sight {:.0} ns, jsonwebtoken_decode {:.0} ns",
            result.rounds,
            result.bare,
            result.repeat,
            result.baseline,
            result.first_sight,
            result.raw_verify
        );
        self.interleaved = Some(result);
    }

    /// Cases 5 and 6: the token cache hits, the user cache misses.
    fn user_misses(&self, c: &mut Criterion, databases: &Databases) {
        let mut group = c.benchmark_group("user_miss");
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        let postgres = self.runtime.block_on(databases.postgres());
        self.bench_user_misses(&mut group, "postgres", Switched::new(postgres));
        let sqlite = self.runtime.block_on(databases.sqlite());
        self.bench_user_misses(&mut group, "sqlite", Switched::new(sqlite));
        group.finish();
    }

    fn bench_user_misses<S: UserStore + Clone>(
        &self,
        group: &mut BenchmarkGroup<'_, WallTime>,
        database: &str,
        store: Switched<S>,
    ) {
        // The hot user's row is created here, by a real store call.
        let layer = self.warm_layer(self.keys.config(), store.clone());
        let app = layered_app(layer.clone());

        // Case 5: the row exists; each request follows a `forget_all_users`.
        group.bench_function(format!("{database}_existing"), |b| {
            b.iter_custom(|iters| {
                self.runtime.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        layer.forget_all_users();
                        let request = request(&self.hot_token);
                        let start = Instant::now();
                        send(&app, request).await;
                        total += start.elapsed();
                    }
                    total
                })
            });
        });

        // Case 6: a user the database has never seen, whose token is cached:
        // each token goes through once while the store is switched off, the
        // users are forgotten, and the store is switched back on.
        group.bench_function(format!("{database}_new"), |b| {
            b.iter_custom(|iters| {
                let tokens = self.keys.mint(usize::try_from(iters).expect("iters"), |_| {
                    random_id("user")
                });
                self.runtime.block_on(async {
                    store.warming.store(true, Ordering::SeqCst);
                    for token in &tokens {
                        send(&app, request(token)).await;
                    }
                    layer.forget_all_users();
                    store.warming.store(false, Ordering::SeqCst);
                    let requests: Vec<_> = tokens.iter().map(|token| request(token)).collect();
                    let start = Instant::now();
                    for request in requests {
                        send(&app, request).await;
                    }
                    start.elapsed()
                })
            });
        });
    }

    /// Case 7: `CONCURRENT` simultaneous first requests for one new user, on
    /// a two-worker runtime.
    fn concurrent_first(&self, c: &mut Criterion, databases: &Databases) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mut group = c.benchmark_group("concurrent_first");
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        let postgres = runtime.block_on(databases.postgres());
        self.bench_concurrent(&mut group, &runtime, "postgres", Switched::new(postgres));
        let sqlite = runtime.block_on(databases.sqlite());
        self.bench_concurrent(&mut group, &runtime, "sqlite", Switched::new(sqlite));
        group.finish();
    }

    fn bench_concurrent<S: UserStore + Clone>(
        &self,
        group: &mut BenchmarkGroup<'_, WallTime>,
        runtime: &Runtime,
        database: &str,
        store: Switched<S>,
    ) {
        let layer = EnsureUserLayer::new(self.keys.config(), store.clone());
        runtime
            .block_on(layer.prefetch_keys())
            .expect("keys from the JWKS endpoint");
        let app = layered_app(layer);
        let mut users = 0;
        group.bench_function(format!("{database}_{CONCURRENT}"), |b| {
            b.iter_custom(|iters| {
                let tokens = self.keys.mint(usize::try_from(iters).expect("iters"), |_| {
                    random_id("user")
                });
                users += tokens.len();
                runtime.block_on(async {
                    let mut total = Duration::ZERO;
                    for token in &tokens {
                        let requests: Vec<_> = (0..CONCURRENT).map(|_| request(token)).collect();
                        let start = Instant::now();
                        let tasks: Vec<_> = requests
                            .into_iter()
                            .map(|request| {
                                let app = app.clone();
                                tokio::spawn(async move { send(&app, request).await })
                            })
                            .collect();
                        for task in tasks {
                            task.await.expect("request task");
                        }
                        total += start.elapsed();
                    }
                    total
                })
            });
        });
        let calls = store.calls.load(Ordering::SeqCst);
        println!(
            "concurrent_first/{database}: {users} new users, {} requests, {calls} store calls",
            users * CONCURRENT
        );
        assert_eq!(calls, users, "one store call per new user");
    }

    /// Bytes per cached user and per cached token across the first requests
    /// of `entries` distinct users: the bytes requested (allocated minus
    /// freed), and what the C allocator holds for them (its headers and
    /// rounding included). `ENSURE_USER_MEMORY_ENTRIES` sets how many
    /// (default 100,000).
    fn memory(&mut self) {
        let entries = if self.quick {
            1_000
        } else {
            std::env::var("ENSURE_USER_MEMORY_ENTRIES")
                .ok()
                .and_then(|entries| entries.parse().ok())
                .unwrap_or(100_000)
        };
        let user = |i: usize| format!("user_{i:027}");
        let fill = |config: Config, tokens: &[String]| {
            let store = CountingIds::default();
            let layer = EnsureUserLayer::new(config, store.clone());
            let app = layered_app(layer.clone());
            self.runtime.block_on(async {
                layer.prefetch_keys().await.expect("keys");
                let held_before = allocator_in_use();
                counting_start();
                for token in tokens {
                    send(&app, request(token)).await;
                }
                // Let any task the runtime deferred run, then settle.
                tokio::time::sleep(Duration::from_millis(600)).await;
                send(&app, request(&tokens[0])).await;
                let requested = counting_stop().net_bytes;
                let held = allocator_in_use()
                    .zip(held_before)
                    .map(|(after, before)| after as i64 - before as i64);
                // Were the users kept? A sample of them must not reach the store again.
                let before = store.next.load(Ordering::SeqCst);
                for token in tokens.iter().step_by((entries / 1000).max(1)) {
                    send(&app, request(token)).await;
                }
                let reloaded = store.next.load(Ordering::SeqCst) - before;
                (Bytes { requested, held }, reloaded)
            })
        };
        // Users alone (the token cache is off), then users and tokens, the
        // token cache given room for every token.
        let users = |token_cache_bytes: u64| {
            self.keys
                .config()
                .with_token_cache_bytes(token_cache_bytes)
                .with_user_cache(entries as u64, Duration::from_secs(600))
        };
        let lean = self.keys.mint(entries, user);
        let (users_only, evicted) = fill(users(0), &lean);
        drop(lean);
        let per = |bytes: i64| bytes as f64 / entries as f64;
        let tokens = TOKEN_SHAPES
            .iter()
            .map(|&(shape, sign)| {
                let tokens = self.keys.mint_with(entries, sign, user);
                let (both, _) = fill(users(entries as u64 * 4096), &tokens);
                TokenMemory {
                    shape,
                    len: tokens.iter().map(String::len).sum::<usize>() as f64 / entries as f64,
                    requested: per(both.requested - users_only.requested),
                    held: both.held.zip(users_only.held).map(|(b, u)| per(b - u)),
                }
            })
            .collect();
        self.memory = Some(Memory {
            entries,
            per_user: per(users_only.requested),
            per_user_held: users_only.held.map(per),
            tokens,
            evicted,
        });
    }
}

/// Memory a fill took.
struct Bytes {
    /// Allocated minus freed, as requested.
    requested: i64,
    /// The C allocator's own count, where it gives one.
    held: Option<i64>,
}

// ---------------------------------------------------------------------------
// Summary.

fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    target.join("criterion")
}

/// The median of a benchmark in this run, in nanoseconds.
fn median(id: &str) -> Option<f64> {
    let path = criterion_dir().join(id).join("new/estimates.json");
    let estimates: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}

fn micros(ns: f64) -> String {
    if ns >= 100_000.0 {
        format!("{:.0} µs", ns / 1000.0)
    } else {
        format!("{:.2} µs", ns / 1000.0)
    }
}

fn verdict(pass: bool) -> &'static str {
    if pass { "met" } else { "MISSED" }
}

fn summary(run: &Run) {
    println!("\nSummary of this run (criterion medians)\n");
    println!("| benchmark | median |\n|---|---:|");
    let ids = [
        "request/bare",
        "request/repeat",
        "request/first_sight",
        "request/verify_every_request",
        "request/token_cache_off",
        "verify/jsonwebtoken_decode",
        "verify/signature_only",
        "user_miss/postgres_existing",
        "user_miss/sqlite_existing",
        "user_miss/postgres_new",
        "user_miss/sqlite_new",
        "concurrent_first/postgres_1000",
        "concurrent_first/sqlite_1000",
    ];
    for id in ids {
        if let Some(ns) = median(id) {
            println!("| {id} | {} |", micros(ns));
        }
    }

    println!(
        "\n| target | criterion medians | verdict | interleaved | verdict |\n\
         |---|---|---|---|---|"
    );
    let bare = median("request/bare");
    let repeat = median("request/repeat");
    let baseline = median("request/verify_every_request");
    let first = median("request/first_sight");
    let raw = median("verify/jsonwebtoken_decode");
    let paired = run.interleaved.as_ref();
    let row = |target: &str, figure: Option<(String, bool)>, alternate: Option<(String, bool)>| {
        let cell = |f: Option<(String, bool)>| {
            f.map_or_else(
                || "n/a | n/a".to_owned(),
                |(text, pass)| format!("{text} | {}", verdict(pass)),
            )
        };
        println!("| {target} | {} | {} |", cell(figure), cell(alternate));
    };
    let extra = |extra: f64| (format!("bare + {}", micros(extra)), extra <= 1000.0);
    row(
        "repeat ≤ bare + 1 µs",
        bare.zip(repeat).map(|(bare, repeat)| extra(repeat - bare)),
        paired.map(|p| extra(p.repeat_extra)),
    );
    let speedup = |ratio: f64| (format!("{ratio:.1}×"), ratio >= 20.0);
    row(
        "repeat ≥ 20× faster than verify-every-request",
        repeat
            .zip(baseline)
            .map(|(repeat, baseline)| speedup(baseline / repeat)),
        paired.map(|p| speedup(p.speedup)),
    );
    let first_ratio = |ratio: f64| (format!("{ratio:.3}"), ratio <= 1.15);
    row(
        "first sight ≤ 1.15 × (raw verify + bare)",
        first
            .zip(raw)
            .zip(bare)
            .map(|((first, raw), bare)| first_ratio(first / (raw + bare))),
        paired.map(|p| first_ratio(p.first_sight_ratio)),
    );
    if let Some(memory) = &run.memory {
        println!(
            "| cached user ≤ 512 bytes at {} users | {:.0} bytes | {} | | |",
            memory.entries,
            memory.per_user,
            verdict(memory.per_user <= 512.0)
        );
    }
    if let Some(p) = paired {
        println!(
            "\nInterleaved medians over {} rounds: bare {}, repeat {}, verify every request {}, \
             first sight {}, jsonwebtoken decode {}.",
            p.rounds,
            micros(p.bare),
            micros(p.repeat),
            micros(p.baseline),
            micros(p.first_sight),
            micros(p.raw_verify)
        );
    }

    println!("\n| allocations per request | count | bytes |\n|---|---:|---:|");
    for (name, allocations, bytes) in &run.allocations {
        println!("| {name} | {allocations:.2} | {bytes:.0} |");
    }
    if let Some(memory) = &run.memory {
        print_memory(memory);
    }
}

fn print_memory(memory: &Memory) {
    let held = |bytes: Option<f64>| bytes.map_or_else(|| "n/a".to_owned(), |b| format!("{b:.0}"));
    println!(
        "\nMemory at {} entries, bytes per entry, requested / held by the allocator; \
         {} of the sampled users had been evicted.\n\n| entry | characters | bytes |\n|---|---:|---:|\n\
         | cached user | | {:.0} / {} |",
        memory.entries,
        memory.evicted,
        memory.per_user,
        held(memory.per_user_held),
    );
    for token in &memory.tokens {
        println!(
            "| cached token, {} | {:.0} | {:.0} / {} |",
            token.shape,
            token.len,
            token.requested,
            held(token.held)
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|arg| arg == name);
    // As criterion decides: without `--bench` (`cargo test --benches`), or
    // with `--test`, each benchmark runs once; the run is then kept small.
    let quick = !flag("--bench") || flag("--test") || flag("--list");
    let filter = args.iter().find(|arg| !arg.starts_with('-')).cloned();

    let mut criterion = Criterion::default().configure_from_args();
    let mut run = Run::new(quick, filter.clone());
    let databases = run.runtime.block_on(Databases::create());
    run.requests(&mut criterion);
    run.user_misses(&mut criterion, &databases);
    run.concurrent_first(&mut criterion, &databases);
    criterion.final_summary();
    if run.wants("memory") {
        run.memory();
        if filter.is_some()
            && let Some(memory) = &run.memory
        {
            print_memory(memory);
        }
    }
    run.runtime.block_on(databases.drop_all());
    if !quick && filter.is_none() {
        summary(&run);
    }
}
