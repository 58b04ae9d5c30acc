//! The backfill end to end on both stores: every user of a fake Backend API
//! on loopback written once, then nothing; interrupted runs resume from
//! their checkpoint; tombstoned users, refused rows, invalid ids and dry runs;
//! then organizations and their memberships, walked the same way.

mod common;

use common::{
    clerk_api::{FakeClerk, FakeUser, Faults, fake_organizations, fake_users},
    *,
};
use ensure_user::{
    backfill::{Backfill, BackfillError, Progress, Summary},
    store::{BackfillStore, Checkpoint, OrganizationBackfillStore, Walk},
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
    organizations_and_memberships_written_then_nothing,
    interrupted_organization_walks_resume,
    tombstoned_organizations_are_not_brought_back,
    chosen_walks_only,
    organization_dry_run_writes_nothing,
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

/// A fake with 7 users and 12 organizations of 3 members each.
async fn fake_with_organizations() -> FakeClerk {
    let users = fake_users(7);
    let fake = FakeClerk::start(users.clone()).await;
    fake.set_organizations(fake_organizations(12, 3, &users));
    fake
}

/// Runs the `walks` of `backfill`: each walk's summary, or the error, and
/// every progress report.
async fn run_walks(
    backfill: &Backfill<Store>,
    walks: &[Walk],
) -> (Result<Vec<(Walk, Summary)>, BackfillError>, Vec<Progress>) {
    let mut reports = Vec::new();
    let result = backfill
        .run_walks(walks, |progress| reports.push(*progress))
        .await;
    (result, reports)
}

/// Rows in `organizations` and in `organization_memberships`.
async fn organization_rows(store: &Store) -> [i64; 2] {
    [
        store.number("SELECT COUNT(*) FROM organizations").await,
        store
            .number("SELECT COUNT(*) FROM organization_memberships")
            .await,
    ]
}

async fn organizations_and_memberships_written_then_nothing(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = fake_with_organizations().await;
    fake.set_faults(Faults {
        rate_limit_every: Some(5),
        fail_every: Some(7),
        ..Faults::default()
    });

    let (result, reports) = run_walks(&backfill(&store, &fake, 5), &Walk::ALL).await;
    let summaries: Vec<(Walk, [u64; 5])> = result
        .unwrap()
        .into_iter()
        .map(|(walk, summary)| (walk, counts(summary)))
        .collect();
    assert_eq!(
        summaries,
        [
            (Walk::Users, [7, 0, 0, 0, 0]),
            (Walk::Organizations, [12, 0, 0, 0, 0]),
            (Walk::Memberships, [36, 0, 0, 0, 0]),
        ]
    );
    assert_eq!(organization_rows(&store).await, [12, 36]);
    assert_eq!(
        store.rows().await,
        fake.rows(),
        "users untouched by memberships"
    );
    let admins = store
        .number("SELECT COUNT(*) FROM organization_memberships WHERE role = 'org:admin'")
        .await;
    assert_eq!(admins, 12);
    let names = store
        .number("SELECT COUNT(*) FROM organizations WHERE name LIKE 'Org %' AND slug LIKE 'org-%'")
        .await;
    assert_eq!(names, 12);

    // Progress: organizations in pages of 5, memberships per organization.
    let of = |walk| -> Vec<(u64, Option<u64>)> {
        reports
            .iter()
            .filter(|progress| progress.walk == walk)
            .map(|progress| (progress.position, progress.total))
            .collect()
    };
    assert_eq!(
        of(Walk::Organizations),
        [(0, None), (5, Some(12)), (10, Some(12)), (12, Some(12))]
    );
    let memberships = of(Walk::Memberships);
    assert_eq!(
        memberships.len(),
        13,
        "one report at the start, one per organization"
    );
    assert_eq!(memberships.last(), Some(&(12, Some(12))));
    for walk in Walk::ALL {
        assert_eq!(
            store.load_walk_checkpoint(walk).await.unwrap(),
            None,
            "{walk}"
        );
    }

    // A second run writes nothing.
    let writes_before = organization_rows(&store).await;
    let (result, _) = run_walks(&backfill(&store, &fake, 5), &Walk::ALL).await;
    let summaries: Vec<[u64; 5]> = result
        .unwrap()
        .into_iter()
        .map(|(_, summary)| counts(summary))
        .collect();
    assert_eq!(
        summaries,
        [[0, 0, 7, 0, 0], [0, 0, 12, 0, 0], [0, 0, 36, 0, 0]]
    );
    assert_eq!(organization_rows(&store).await, writes_before);

    // A newer organization and role are taken; an older one is not.
    let mut organizations = fake.organizations();
    organizations[4].name = "Renamed".into();
    organizations[4].updated_at += 1;
    organizations[5].name = "Older".into();
    organizations[5].updated_at -= 1;
    organizations[6].members[1].1 = "org:admin".into();
    organizations[6].members[1].2 += 1;
    fake.set_organizations(organizations);
    let (result, _) = run_walks(
        &backfill(&store, &fake, 5),
        &[Walk::Organizations, Walk::Memberships],
    )
    .await;
    let summaries: Vec<[u64; 5]> = result
        .unwrap()
        .into_iter()
        .map(|(_, summary)| counts(summary))
        .collect();
    assert_eq!(summaries, [[0, 1, 11, 0, 0], [0, 1, 35, 0, 0]]);
    assert_eq!(
        store
            .number("SELECT COUNT(*) FROM organizations WHERE name IN ('Renamed', 'Older')")
            .await,
        1
    );
    assert_eq!(
        store
            .number("SELECT COUNT(*) FROM organization_memberships WHERE role = 'org:admin'")
            .await,
        13
    );
}

async fn interrupted_organization_walks_resume(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = fake_with_organizations().await;
    let ids: Vec<String> = fake.organizations().into_iter().map(|o| o.id).collect();
    let stop_after = |pages| Faults {
        fail_after_pages: Some(pages),
        ..Faults::default()
    };
    let walks = [Walk::Organizations, Walk::Memberships];

    // Two pages of organizations are served, then the API fails.
    fake.set_faults(stop_after(2));
    let (result, _) = run_walks(&backfill(&store, &fake, 5), &walks).await;
    let error = result.unwrap_err();
    assert!(matches!(error, BackfillError::Api { .. }), "{error}");
    assert_eq!(counts(error.summary()), [10, 0, 0, 0, 0]);
    assert_eq!(organization_rows(&store).await, [10, 0]);
    assert_eq!(
        store
            .load_walk_checkpoint(Walk::Organizations)
            .await
            .unwrap(),
        Some(Checkpoint::new(ids[9].clone(), 10))
    );

    // The organizations resume at the 11th; the memberships of three
    // organizations are written (one list page, three membership pages),
    // then the API fails again.
    fake.set_faults(stop_after(5));
    let (result, reports) = run_walks(&backfill(&store, &fake, 5), &walks).await;
    let error = result.unwrap_err();
    assert_eq!(counts(error.summary()), [9, 0, 0, 0, 0]);
    assert_eq!(reports[0].resumed_from, 10);
    assert!(
        reports
            .iter()
            .any(|progress| progress.walk == Walk::Organizations
                && progress.position == 12
                && progress.summary.created == 2)
    );
    assert_eq!(organization_rows(&store).await, [12, 9]);
    assert_eq!(
        store
            .load_walk_checkpoint(Walk::Organizations)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.load_walk_checkpoint(Walk::Memberships).await.unwrap(),
        Some(Checkpoint::new(ids[2].clone(), 3))
    );

    // The memberships resume after the third organization.
    fake.set_faults(Faults::default());
    let (result, reports) = run_walks(&backfill(&store, &fake, 5), &walks).await;
    let summaries: Vec<[u64; 5]> = result
        .unwrap()
        .into_iter()
        .map(|(_, summary)| counts(summary))
        .collect();
    assert_eq!(summaries, [[0, 0, 12, 0, 0], [27, 0, 0, 0, 0]]);
    let resumed = reports
        .iter()
        .find(|progress| progress.walk == Walk::Memberships)
        .unwrap();
    assert_eq!(resumed.resumed_from, 3);
    assert_eq!(organization_rows(&store).await, [12, 36]);
    assert_eq!(
        store.load_walk_checkpoint(Walk::Memberships).await.unwrap(),
        None
    );
}

async fn tombstoned_organizations_are_not_brought_back(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = fake_with_organizations().await;
    let gone = fake.organizations()[3].id.clone();
    store
        .execute(&format!(
            "INSERT INTO clerk_organization_tombstones (clerk_id, deleted_at) VALUES ('{gone}', 1)"
        ))
        .await;

    let (result, _) = run_walks(&backfill(&store, &fake, 5), &Walk::ALL).await;
    let summaries: Vec<[u64; 5]> = result
        .unwrap()
        .into_iter()
        .map(|(_, summary)| counts(summary))
        .collect();
    assert_eq!(
        summaries,
        [[7, 0, 0, 0, 0], [11, 0, 0, 1, 0], [33, 0, 0, 3, 0]]
    );
    assert_eq!(organization_rows(&store).await, [11, 33]);
    assert_eq!(
        store
            .number(&format!(
                "SELECT COUNT(*) FROM organizations WHERE clerk_id = '{gone}'"
            ))
            .await,
        0
    );
}

async fn chosen_walks_only(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = fake_with_organizations().await;

    // Organizations alone: no user, no membership.
    let (result, _) = run_walks(&backfill(&store, &fake, 5), &[Walk::Organizations]).await;
    let summaries = result.unwrap();
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].0, Walk::Organizations);
    assert_eq!(organization_rows(&store).await, [12, 0]);
    assert_eq!(store.number("SELECT COUNT(*) FROM users").await, 0);
    assert!(
        fake.list_queries()
            .iter()
            .all(|query| query.starts_with("organizations?")),
        "{:?}",
        fake.list_queries()
    );

    // Users alone (given twice, in any order, each walk runs once).
    let (result, _) = run_walks(&backfill(&store, &fake, 5), &[Walk::Users, Walk::Users]).await;
    let summaries = result.unwrap();
    assert_eq!(summaries.len(), 1);
    assert_eq!(counts(summaries[0].1), [7, 0, 0, 0, 0]);
    assert_eq!(organization_rows(&store).await, [12, 0]);

    // Memberships alone.
    let (result, _) = run_walks(&backfill(&store, &fake, 5), &[Walk::Memberships]).await;
    let summaries = result.unwrap();
    assert_eq!(summaries.len(), 1);
    assert_eq!(counts(summaries[0].1), [36, 0, 0, 0, 0]);
    assert_eq!(organization_rows(&store).await, [12, 36]);
}

async fn organization_dry_run_writes_nothing(backend: Backend) {
    let store = Store::new(backend).await;
    let fake = fake_with_organizations().await;
    let walks = [Walk::Organizations, Walk::Memberships];
    let (result, _) = run_walks(&backfill(&store, &fake, 5).dry_run(true), &walks).await;
    let summaries: Vec<[u64; 5]> = result
        .unwrap()
        .into_iter()
        .map(|(_, summary)| counts(summary))
        .collect();
    assert_eq!(summaries, [[12, 0, 0, 0, 0], [36, 0, 0, 0, 0]]);
    assert_eq!(organization_rows(&store).await, [0, 0]);
    assert_eq!(store.number("SELECT COUNT(*) FROM users").await, 0);
    for walk in walks {
        assert_eq!(store.load_walk_checkpoint(walk).await.unwrap(), None);
    }
}
