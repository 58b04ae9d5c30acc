//! The backfill end to end on both stores: every user of a fake Backend API
//! on loopback written once, then nothing; interrupted runs resume from
//! their checkpoint; tombstoned users, refused rows, invalid ids and dry runs.

mod common;

use common::{
    clerk_api::{FakeClerk, FakeUser, Faults, fake_users},
    *,
};
use ensure_user::{
    backfill::{Backfill, BackfillError, Progress, Summary},
    store::{BackfillStore, Checkpoint},
};

on_both_stores!(
    backfill_writes_every_user_then_nothing,
    interrupted_backfill_resumes,
    failing_api_changes_no_row,
    tombstoned_users_are_skipped,
    dry_run_counts_and_writes_nothing,
    a_refused_user_fails_alone,
    users_with_invalid_ids_are_not_written,
    nul_in_profile_text_is_left_out,
);

fn backfill(store: &Store, fake: &FakeClerk, page_size: u32) -> Backfill<Store> {
    Backfill::new(fake.client(), store.clone()).with_page_size(page_size)
}

/// Runs `backfill` and returns its result with every progress report.
async fn run(backfill: &Backfill<Store>) -> (Result<Summary, BackfillError>, Vec<Progress>) {
    let mut reports = Vec::new();
    let result = backfill.run(|progress| reports.push(*progress)).await;
    (result, reports)
}

fn counts(summary: Summary) -> [u64; 5] {
    [
        summary.created,
        summary.updated,
        summary.unchanged,
        summary.skipped,
        summary.failed,
    ]
}

async fn backfill_writes_every_user_then_nothing(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = FakeClerk::start(fake_users(2600)).await;
    fake.set_faults(Faults {
        rate_limit_every: Some(5),
        fail_every: Some(7),
        ..Faults::default()
    });
    // A row the layer created before the backfill, without a profile.
    let early = fake.users()[10].id.clone();
    store
        .execute(&format!("INSERT INTO users (clerk_id) VALUES ('{early}')"))
        .await;

    let (result, reports) = run(&backfill(&store, &fake, 500)).await;
    assert_eq!(counts(result.unwrap()), [2599, 1, 0, 0, 0]);
    assert_eq!(store.rows().await, fake.rows(), "rows match Clerk exactly");
    let last = reports.last().unwrap();
    assert_eq!(
        (last.position, last.total, last.resumed_from),
        (2600, Some(2600), 0)
    );
    assert_eq!(reports.len(), 7, "one report at the start and one per page");
    assert_eq!(
        store.load_checkpoint().await.unwrap(),
        None,
        "a complete run clears it"
    );

    // A second run over the same data writes nothing.
    let (result, _) = run(&backfill(&store, &fake, 500)).await;
    assert_eq!(counts(result.unwrap()), [0, 0, 2600, 0, 0]);

    // Newer profiles are taken; an older one is not.
    fake.edit(|users| {
        for user in &mut users[100..103] {
            user.email = Some(format!("changed-{}", user.id));
            user.updated_at += 1;
        }
        users[200].first_name = Some("Older".into());
        users[200].updated_at -= 1;
    });
    let (result, _) = run(&backfill(&store, &fake, 500)).await;
    assert_eq!(counts(result.unwrap()), [0, 3, 2597, 0, 0]);
    let rows = store.rows().await;
    assert_eq!(
        rows[100].1.as_deref(),
        Some(format!("changed-{}", rows[100].0).as_str())
    );
    assert_ne!(rows[200].2.as_deref(), Some("Older"));
}

async fn interrupted_backfill_resumes(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = FakeClerk::start(fake_users(2000)).await;
    let ids = fake.ids();
    let stop_after = |pages| Faults {
        fail_after_pages: Some(pages),
        ..Faults::default()
    };

    // Three pages are served, then the API fails for good.
    fake.set_faults(stop_after(3));
    let (result, _) = run(&backfill(&store, &fake, 250)).await;
    let error = result.unwrap_err();
    assert!(matches!(error, BackfillError::Api { .. }), "{error}");
    assert_eq!(counts(error.summary()), [750, 0, 0, 0, 0]);
    assert_eq!(store.rows().await.len(), 750);
    assert_eq!(
        store.load_checkpoint().await.unwrap(),
        Some(Checkpoint::new(ids[749].clone(), 750))
    );

    // The next run resumes after the last user written, with the cursor...
    fake.set_faults(stop_after(2));
    let queries_before = fake.list_queries().len();
    let (result, reports) = run(&backfill(&store, &fake, 250)).await;
    assert_eq!(counts(result.unwrap_err().summary()), [500, 0, 0, 0, 0]);
    assert_eq!(reports[0].resumed_from, 750);
    assert_eq!(
        fake.list_queries()[queries_before],
        format!("limit=250&order_by=created_at&starting_after={}", ids[749])
    );

    // ...or, where the cursor is refused, by offset from the same place.
    fake.set_faults(Faults {
        no_cursor: true,
        ..Faults::default()
    });
    let queries_before = fake.list_queries().len();
    let (result, _) = run(&backfill(&store, &fake, 250)).await;
    assert_eq!(counts(result.unwrap()), [750, 0, 0, 0, 0]);
    let offsets: Vec<String> = fake.list_queries()[queries_before + 1..]
        .iter()
        .map(|query| query.rsplit('&').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        offsets,
        ["offset=1250", "offset=1500", "offset=1750", "offset=2000"]
    );
    assert_eq!(store.rows().await, fake.rows());
    assert_eq!(store.load_checkpoint().await.unwrap(), None);

    // --restart ignores a saved checkpoint.
    store
        .save_checkpoint(&Checkpoint::new(ids[1899].clone(), 1900))
        .await
        .unwrap();
    fake.set_faults(Faults::default());
    let (result, _) = run(&backfill(&store, &fake, 250).restart(true)).await;
    assert_eq!(counts(result.unwrap()), [0, 0, 2000, 0, 0]);
}

async fn failing_api_changes_no_row(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = FakeClerk::start(fake_users(600)).await;
    run(&backfill(&store, &fake, 200)).await.0.unwrap();
    let before = store.rows().await;

    fake.edit(|users| {
        for user in users.iter_mut() {
            user.email = None;
            user.updated_at += 10;
        }
    });
    for faults in [
        Faults {
            down: true,
            ..Faults::default()
        },
        Faults {
            rate_limit_every: Some(1),
            retry_after_secs: 0,
            ..Faults::default()
        },
    ] {
        fake.set_faults(faults);
        let (result, _) = run(&backfill(&store, &fake, 200)).await;
        let error = result.unwrap_err();
        assert!(matches!(error, BackfillError::Api { .. }), "{error}");
        assert_eq!(error.summary().total(), 0);
        assert_eq!(store.rows().await, before);
    }
}

async fn tombstoned_users_are_skipped(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = FakeClerk::start(fake_users(700)).await;
    let deleted: Vec<String> = fake.ids().into_iter().step_by(100).collect();
    for clerk_id in &deleted {
        store.tombstone(clerk_id).await;
    }
    let (result, _) = run(&backfill(&store, &fake, 300)).await;
    assert_eq!(counts(result.unwrap()), [693, 0, 0, 7, 0]);
    let mut expected = fake.rows();
    expected.retain(|row| !deleted.contains(&row.0));
    assert_eq!(store.rows().await, expected);
}

async fn dry_run_counts_and_writes_nothing(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = FakeClerk::start(fake_users(450)).await;
    let (result, _) = run(&backfill(&store, &fake, 200).dry_run(true)).await;
    assert_eq!(counts(result.unwrap()), [450, 0, 0, 0, 0]);
    assert_eq!(store.rows().await, []);

    run(&backfill(&store, &fake, 200)).await.0.unwrap();
    fake.edit(|users| {
        for user in &mut users[..10] {
            user.updated_at += 1;
            user.last_name = None;
        }
    });
    store.tombstone(&fake.users()[20].id).await;
    store
        .save_checkpoint(&Checkpoint::new("user_kept", 42))
        .await
        .unwrap();
    let before = store.rows().await;
    let (result, _) = run(&backfill(&store, &fake, 200).dry_run(true)).await;
    assert_eq!(counts(result.unwrap()), [0, 10, 439, 1, 0]);
    assert_eq!(store.rows().await, before);
    assert_eq!(
        store.load_checkpoint().await.unwrap(),
        Some(Checkpoint::new("user_kept", 42)),
        "a dry run neither reads nor moves the checkpoint"
    );
}

async fn a_refused_user_fails_alone(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = FakeClerk::start(fake_users(300)).await;
    fake.edit(|users| users[123].email = Some("refused@example.com".into()));
    store
        .execute(match backend {
            Backend::Postgres => {
                "CREATE FUNCTION refuse() RETURNS trigger AS $$
                    BEGIN RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql;
                 CREATE TRIGGER refuse BEFORE INSERT ON users FOR EACH ROW
                    WHEN (NEW.email = 'refused@example.com') EXECUTE FUNCTION refuse();"
            }
            Backend::Sqlite => {
                "CREATE TRIGGER refuse BEFORE INSERT ON users
                    WHEN NEW.email = 'refused@example.com'
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;"
            }
        })
        .await;
    let (result, _) = run(&backfill(&store, &fake, 100)).await;
    assert_eq!(counts(result.unwrap()), [299, 0, 0, 0, 1]);
    assert_eq!(store.rows().await.len(), 299);

    store
        .execute(match backend {
            Backend::Postgres => "DROP TRIGGER refuse ON users",
            Backend::Sqlite => "DROP TRIGGER refuse",
        })
        .await;
    let (result, _) = run(&backfill(&store, &fake, 100)).await;
    assert_eq!(counts(result.unwrap()), [1, 0, 299, 0, 0]);
}

/// Text PostgreSQL cannot hold (a NUL) is stored as absent by the backfill,
/// with the rest of the profile.
async fn nul_in_profile_text_is_left_out(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = FakeClerk::start(fake_users(200)).await;
    fake.edit(|users| {
        users[50].first_name = Some("Bad\u{0}Name".into());
        users[60].email = Some("x\u{0}@example.com".into());
    });
    let (result, _) = run(&backfill(&store, &fake, 100)).await;
    assert_eq!(counts(result.unwrap()), [200, 0, 0, 0, 0]);
    let expected: Vec<Row> = {
        let mut users = fake.users();
        users[50].first_name = None;
        users[60].email = None;
        let mut rows: Vec<Row> = users.iter().map(FakeUser::row).collect();
        rows.sort();
        rows
    };
    assert_eq!(store.rows().await, expected);
}

/// Ids no token or webhook could ever carry are not written: one rule for
/// every way an id enters.
async fn users_with_invalid_ids_are_not_written(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = FakeClerk::start(fake_users(300)).await;
    let long = format!("user_{}", "x".repeat(200));
    fake.edit(|users| {
        users[100].id = "user_with space".into();
        users[200].id = long.clone();
    });
    let (result, _) = run(&backfill(&store, &fake, 100)).await;
    assert_eq!(counts(result.unwrap()), [298, 0, 0, 0, 2]);
    let rows = store.rows().await;
    assert_eq!(rows.len(), 298);
    assert!(
        rows.iter()
            .all(|row| row.0 != "user_with space" && row.0 != long)
    );
}
