//! The backfill end to end: 50,000 users read from a fake Backend API on
//! loopback (500 per page) and written to PostgreSQL and to SQLite.
//!
//! Each sample starts from an empty users table, so every user is created.
//! PostgreSQL is measured twice: with the pool's defaults, and with
//! `synchronous_commit = off`, as `ensure-user backfill` connects. Run with
//! `cargo bench --all-features --bench backfill`; PostgreSQL must be
//! reachable as for the tests.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::clerk_api::{FakeClerk, SECRET, fake_users};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use ensure_user::{
    backfill::Backfill,
    clerk_api::ClerkApi,
    store::{BackfillStore, PgUserStore},
};
use sqlx::postgres::PgPoolOptions;
use tokio::runtime::Runtime;

const USERS: usize = 50_000;

/// Times `iterations` full backfills into `store`, emptied by `reset` before each.
async fn timed<S, R>(api: &ClerkApi, store: &S, reset: R, iterations: u64) -> Duration
where
    S: BackfillStore + Clone,
    R: AsyncFn(),
{
    let mut total = Duration::ZERO;
    for _ in 0..iterations {
        reset().await;
        let started = Instant::now();
        let summary = Backfill::new(api.clone(), store.clone())
            .run(|_| {})
            .await
            .expect("backfill");
        total += started.elapsed();
        assert_eq!(summary.created, USERS as u64);
    }
    total
}

fn backfill(c: &mut Criterion) {
    let runtime = Runtime::new().expect("runtime");
    let fake = runtime.block_on(FakeClerk::start(fake_users(USERS)));
    let api = ClerkApi::new(SECRET)
        .and_then(|api| api.with_api_url(&fake.url()))
        .expect("client");
    let postgres = runtime.block_on(common::postgres_store());
    let options = postgres.pool().connect_options().as_ref().clone();
    let async_commit = PgUserStore::new(
        runtime
            .block_on(
                PgPoolOptions::new()
                    .max_connections(4)
                    .connect_with(options.options([("synchronous_commit", "off")])),
            )
            .expect("pool"),
    );
    let sqlite = runtime.block_on(common::sqlite_store());

    let mut group = c.benchmark_group("backfill");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(USERS as u64));
    for (name, store) in [
        ("postgres_50k_users", &postgres),
        ("postgres_50k_users_async_commit", &async_commit),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let reset = async || {
                    sqlx::raw_sql("TRUNCATE users; DELETE FROM ensure_user_backfill_state")
                        .execute(store.pool())
                        .await
                        .expect("reset");
                };
                runtime.block_on(timed(&api, store, reset, iterations))
            });
        });
    }
    group.bench_function("sqlite_50k_users", |b| {
        b.iter_custom(|iterations| {
            let reset = async || {
                sqlx::raw_sql("DELETE FROM users; DELETE FROM ensure_user_backfill_state")
                    .execute(sqlite.pool())
                    .await
                    .expect("reset");
            };
            runtime.block_on(timed(&api, &sqlite, reset, iterations))
        });
    });
    group.finish();
}

criterion_group!(benches, backfill);
criterion_main!(benches);
