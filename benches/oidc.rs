//! What a token of another OpenID Connect issuer costs the layer on the
//! wall clock, beside a Clerk session token's: its first sight (a new
//! token, its user cached) signed with ES256 and with RS256, and its repeat
//! request.
//!
//! One layer serves every case: Clerk's issuer, its RSA-2048 key served by
//! a JWKS endpoint on 127.0.0.1, and beside it an issuer at
//! `http://127.0.0.1:<port>` (`oidc::Issuer::new`, RFC 9068 access tokens
//! for one audience) whose JWKS endpoint, on loopback too, serves an ES256
//! (P-256) and an RS256 (RSA-2048) key. Both key sets are fetched once,
//! before anything is timed; tokens are signed beforehand, never inside a
//! timed section. Every measurement is an in-process
//! `tower::ServiceExt::oneshot` on an axum `Router` with the layer on the
//! route (as `request/first_sight` and `request/repeat` in
//! `benches/layer.rs`), on a current-thread runtime, the status checked to
//! be `200`.
//!
//! Criterion times each benchmark in turn (`first_sight/…`, `repeat/…`);
//! since the machine's speed drifts from one minute to the next, the run
//! then alternates short batches of every kind, round after round in a
//! rotating order, and prints the medians and the median of each round's
//! ratios (`interleaved`). See BENCHMARKS.md, "Other issuers (OpenID
//! Connect)".
//!
//! ```sh
//! cargo bench --bench oidc --all-features
//! ```
//!
//! No database: the store hands out ids and keeps nothing.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::{
    convert::Infallible,
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{Router, body::Body, extract::Request, http::StatusCode};
use common::{JwksReply, JwksServer, bearer as request};
use criterion::{Criterion, SamplingMode};
use ensure_user::{
    Config, EnsureUserLayer, KeySource, LocalId,
    oidc::Issuer,
    store::{Profile, Resolution, StoreError, UserStore},
    testing::{JwsKey, SigningKey, random_id, session_claims},
};
use serde_json::json;
use support::{ISSUER, bare_app, current_thread_runtime, user_routes};
use tokio::runtime::Runtime;
use tower::{Service, ServiceExt};

/// The API the OpenID Connect tokens are issued for.
const AUDIENCE: &str = "https://api.bench.example";
/// Requests per batch of the interleaved measurement: repeat requests and
/// the bare route are cheap, first sights are not.
const CHEAP: usize = 200;
const COSTLY: usize = 20;
/// Rounds of the interleaved measurement.
const ROUNDS: usize = 300;

/// Holds no rows: every call "creates" the next integer id.
#[derive(Clone, Default)]
struct CountingIds {
    next: Arc<AtomicI64>,
}

impl UserStore for CountingIds {
    async fn find_or_create(&self, _: &str, _: &Profile) -> Result<Resolution, StoreError> {
        Ok(Resolution::Created(LocalId::Int(
            self.next.fetch_add(1, Ordering::Relaxed),
        )))
    }
}

/// A JWKS endpoint answering `body`, on a thread and a runtime of its own
/// for the life of the process (the run's runtime only runs while it
/// measures).
fn jwks_server(body: String) -> JwksServer {
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
    jwks.reply_with(JwksReply::Keys(body));
    jwks
}

fn now() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from(since.as_secs()).expect("seconds")
}

/// The kinds of token a first sight is measured for.
#[derive(Clone, Copy)]
enum Kind {
    /// A Clerk session token (RS256, RSA-2048).
    Clerk,
    /// An RFC 9068 access token of the other issuer, signed with ES256.
    OidcEs256,
    /// The same, signed with RS256 (RSA-2048).
    OidcRs256,
}

/// The keys, their endpoints, and the one subject of each issuer whose
/// user is cached.
struct Keys {
    clerk: SigningKey,
    es256: JwsKey,
    rs256: JwsKey,
    clerk_jwks: JwksServer,
    oidc_jwks: JwksServer,
    issuer: String,
    clerk_user: String,
    subject: String,
}

impl Keys {
    fn new() -> Self {
        let clerk = SigningKey::generate("ins_bench");
        let es256 = JwsKey::generate("ES256", "bench-es256");
        let rs256 = JwsKey::generate("RS256", "bench-rs256");
        let clerk_jwks = jwks_server(SigningKey::jwks(&[&clerk]).to_string());
        let oidc_jwks = jwks_server(JwsKey::jwks(&[&es256, &rs256]).to_string());
        let issuer = format!("http://{}", oidc_jwks.addr);
        Self {
            clerk,
            es256,
            rs256,
            clerk_jwks,
            oidc_jwks,
            issuer,
            clerk_user: random_id("user"),
            subject: random_id("person"),
        }
    }

    /// Clerk's issuer and, beside it, the other one, both trusting their
    /// local endpoints; key sets refreshed hourly, so that no refresh falls
    /// inside a run.
    fn config(&self) -> Config {
        let issuer = Issuer::new(self.issuer.clone())
            .with_jwks_url(self.oidc_jwks.url())
            .with_audience(AUDIENCE);
        Config::new(ISSUER, KeySource::jwks_url(self.clerk_jwks.url()))
            .with_key_refresh_interval(Duration::from_secs(3600))
            .with_issuer(issuer)
            .expect("a loopback issuer, named once")
    }

    /// A new token of `kind`, valid for an hour, for the cached user of its
    /// issuer: a session id (Clerk) or a `jti` of its own, so that no two
    /// tokens are alike.
    fn token(&self, kind: Kind) -> String {
        let oidc = |key: &JwsKey| {
            let now = now();
            let claims = json!({
                "iss": self.issuer,
                "sub": self.subject,
                "aud": AUDIENCE,
                "iat": now,
                "exp": now + 3600,
                "jti": random_id("jti"),
            });
            key.sign(&json!({ "typ": "at+jwt" }), &claims)
        };
        match kind {
            Kind::Clerk => {
                let mut claims = session_claims(ISSUER, &self.clerk_user, 3600);
                claims["sid"] = json!(random_id("sess"));
                self.clerk.sign(&claims)
            }
            Kind::OidcEs256 => oidc(&self.es256),
            Kind::OidcRs256 => oidc(&self.rs256),
        }
    }

    /// `count` new tokens of `kind`, signed on every core.
    fn mint(&self, kind: Kind, count: usize) -> Vec<String> {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let per_thread = count.div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..count)
                .step_by(per_thread)
                .map(|start| {
                    let end = (start + per_thread).min(count);
                    scope.spawn(move || (start..end).map(|_| self.token(kind)).collect::<Vec<_>>())
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|worker| worker.join().expect("signing thread"))
                .collect()
        })
    }
}

/// Sends one request and checks that it got through.
async fn send<A, B>(app: &A, request: Request<Body>)
where
    A: Service<Request<Body>, Response = http::Response<B>, Error = Infallible> + Clone,
{
    let response = app.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK, "request refused");
    drop(black_box(response));
}

/// Time for as many requests as `tokens`, built before the clock starts.
fn time_requests(runtime: &Runtime, app: &Router, tokens: &[String]) -> Duration {
    runtime.block_on(async {
        let requests: Vec<_> = tokens.iter().map(|token| request(token)).collect();
        let start = Instant::now();
        for request in requests {
            send(app, request).await;
        }
        start.elapsed()
    })
}

/// Time for `count` requests with the same token.
fn time_repeats(runtime: &Runtime, app: &Router, token: &str, count: usize) -> Duration {
    runtime.block_on(async {
        let requests: Vec<_> = (0..count).map(|_| request(token)).collect();
        let start = Instant::now();
        for request in requests {
            send(app, request).await;
        }
        start.elapsed()
    })
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

const FIRST_SIGHTS: [(&str, Kind); 3] = [
    ("clerk_session_rs256", Kind::Clerk),
    ("oidc_es256", Kind::OidcEs256),
    ("oidc_rs256", Kind::OidcRs256),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|arg| arg == name);
    // As criterion decides: without `--bench` (`cargo test --benches`), or
    // with `--test`, each benchmark runs once; the run is then kept small.
    let quick = !flag("--bench") || flag("--test") || flag("--list");
    let filter = args.iter().find(|arg| !arg.starts_with('-')).cloned();
    let wants = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));

    let mut criterion = Criterion::default().configure_from_args();
    let runtime = current_thread_runtime();
    let keys = Keys::new();
    let layer = EnsureUserLayer::new(keys.config(), CountingIds::default());
    let app = user_routes().layer(layer);
    let bare = bare_app();
    // Both key sets fetched, both users cached.
    let clerk_hot = keys.token(Kind::Clerk);
    let oidc_hot = keys.token(Kind::OidcEs256);
    runtime.block_on(async {
        for token in [&clerk_hot, &oidc_hot, &keys.token(Kind::OidcRs256)] {
            send(&app, request(token)).await;
        }
    });

    // First sight: signed in the benchmark's closure but outside the clock,
    // so criterion, which sizes its samples by the wall time of its
    // warm-up, runs fewer of them instead of signing ahead a pool sized for
    // the fastest case.
    let mut group = criterion.benchmark_group("first_sight");
    group
        .sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for (name, kind) in FIRST_SIGHTS {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let tokens = keys.mint(kind, usize::try_from(iters).expect("iters"));
                time_requests(&runtime, &app, &tokens)
            });
        });
    }
    group.finish();

    let mut group = criterion.benchmark_group("repeat");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, app, token) in [
        ("bare", &bare, &clerk_hot),
        ("clerk_session", &app, &clerk_hot),
        ("oidc", &app, &oidc_hot),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = usize::try_from(iters).expect("iters");
                while left > 0 {
                    let count = left.min(1024);
                    total += time_repeats(&runtime, app, token, count);
                    left -= count;
                }
                total
            });
        });
    }
    group.finish();
    criterion.final_summary();

    if wants("interleaved") {
        interleave(&keys, &runtime, &app, &bare, [&clerk_hot, &oidc_hot], quick);
    }
}

/// Every kind measured in alternation: each round times a short batch of
/// each, in a rotating order, so that a change in the machine's load hits
/// all of them alike; ratios are taken within each round, then their
/// median over the rounds.
fn interleave(
    keys: &Keys,
    runtime: &Runtime,
    app: &Router,
    bare: &Router,
    [clerk_hot, oidc_hot]: [&String; 2],
    quick: bool,
) {
    const KINDS: usize = 6;
    let rounds = if quick { 2 } else { ROUNDS };
    let pools: Vec<Vec<String>> = FIRST_SIGHTS
        .iter()
        .map(|&(_, kind)| keys.mint(kind, rounds * COSTLY))
        .collect();
    let per_request = |total: Duration, count: usize| total.as_secs_f64() * 1e9 / count as f64;
    let mut figures: Vec<[f64; KINDS]> = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let mut row = [0.0; KINDS];
        for kind in (0..KINDS).map(|k| (k + round) % KINDS) {
            row[kind] = match kind {
                0 => per_request(time_repeats(runtime, bare, clerk_hot, CHEAP), CHEAP),
                1 => per_request(time_repeats(runtime, app, clerk_hot, CHEAP), CHEAP),
                2 => per_request(time_repeats(runtime, app, oidc_hot, CHEAP), CHEAP),
                first => {
                    let pool = &pools[first - 3][round * COSTLY..(round + 1) * COSTLY];
                    per_request(time_requests(runtime, app, pool), COSTLY)
                }
            };
        }
        figures.push(row);
    }
    let column = |f: &dyn Fn(&[f64; KINDS]) -> f64| median_of(figures.iter().map(f).collect());
    let micros = |ns: f64| format!("{:.2} µs", ns / 1000.0);
    println!(
        "\ninterleaved ({rounds} rounds of {CHEAP} cheap and {COSTLY} costly requests), medians:"
    );
    let names = [
        "repeat/bare",
        "repeat/clerk_session",
        "repeat/oidc",
        "first_sight/clerk_session_rs256",
        "first_sight/oidc_es256",
        "first_sight/oidc_rs256",
    ];
    for (i, name) in names.iter().enumerate() {
        println!("  {name:<34} {}", micros(column(&|r| r[i])));
    }
    println!("medians of each round's own figures:");
    println!(
        "  repeat/clerk_session - bare      {}",
        micros(column(&|r| r[1] - r[0]))
    );
    println!(
        "  repeat/oidc - bare               {}",
        micros(column(&|r| r[2] - r[0]))
    );
    println!(
        "  repeat/oidc / clerk_session      {:.3}",
        column(&|r| r[2] / r[1])
    );
    println!(
        "  first_sight oidc_es256 / clerk   {:.3}",
        column(&|r| r[4] / r[3])
    );
    println!(
        "  first_sight oidc_rs256 / clerk   {:.3}",
        column(&|r| r[5] / r[3])
    );
    println!(
        "  first_sight oidc_es256 / rs256   {:.3}",
        column(&|r| r[4] / r[5])
    );
}
