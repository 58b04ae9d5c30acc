//! Organizations and memberships in the bundled stores, on real PostgreSQL
//! and SQLite: one row however many callers race, no write for what
//! exists, roles by the time they were true, deletions that stay deleted
//! (and cascade), nothing written for what cannot be stored, and the
//! backfill's batches by the same rules.

mod common;

use std::sync::Arc;

use common::{
    Backend, Store, on_both_stores,
    organizations::{self, membership, membership_with, organization},
};
use ensure_user::{
    LocalId,
    store::{
        BatchOutcome, MembershipClaim, MembershipResolution, OrganizationBackfillStore,
        OrganizationResolution, OrganizationStore, OrganizationSync, Profile, Resolution,
        SyncOutcome, UserStore, UserSync,
    },
    testing::random_id,
};

on_both_stores!(
    worker_threads = 4;
    organization_is_created_once_under_concurrency,
    existing_rows_cost_no_write,
    a_deleted_organization_stays_deleted_with_its_memberships,
    concurrent_new_members_get_one_row_each,
    a_token_changes_the_role_only_when_newer,
    webhooks_and_tokens_the_newest_role_wins,
    a_membership_deletion_holds_until_a_newer_state,
    a_user_deletion_takes_their_memberships,
    text_that_cannot_be_stored_is_left_out,
    hostile_ids_and_roles_are_refused,
    creations_racing_a_deletion_leave_no_row,
    a_membership_needs_its_rows,
    migrations_run_again,
    batches_follow_versions_and_respect_a_racing_deletion,
    racing_pools_make_one_row,
);

/// The user's row, made as the layer makes it.
async fn user(store: &Store, clerk_id: &str) -> LocalId {
    store
        .find_or_create(clerk_id, &Profile::new())
        .await
        .unwrap()
        .id()
        .unwrap()
}

/// The organization's row, made as the layer makes it.
async fn org(store: &Store, clerk_id: &str) -> LocalId {
    match store
        .find_or_create_organization(clerk_id, None)
        .await
        .unwrap()
    {
        OrganizationResolution::Existing(id) | OrganizationResolution::Created(id) => id,
        other => panic!("{clerk_id}: {other:?}"),
    }
}

/// What `ensure_membership` answers for a token of `user` in `org` with
/// `role`, issued at `iat_ms`.
async fn token(
    store: &Store,
    (org, org_id): (&str, LocalId),
    (user, user_id): (&str, LocalId),
    role: &str,
    iat_ms: i64,
) -> MembershipResolution {
    let claim = MembershipClaim::new((org_id, org), (user_id, user), role, iat_ms);
    store.ensure_membership(&claim).await.unwrap()
}

/// The role and role version a resolution holds.
fn held(resolution: &MembershipResolution) -> (&str, i64) {
    match resolution {
        MembershipResolution::Member {
            role, role_version, ..
        } => (role, *role_version),
        other => panic!("not a member: {other:?}"),
    }
}

fn row(org: &str, user: &str, role: &str, version: i64) -> organizations::MembershipRow {
    (org.to_owned(), user.to_owned(), role.to_owned(), version)
}

async fn organization_is_created_once_under_concurrency(backend: Backend) {
    let store = Store::new(backend).await;
    let db = &store;
    let clerk_id = random_id("org");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (store, clerk_id) = (store.clone(), clerk_id.clone());
        tasks.push(tokio::spawn(async move {
            store
                .find_or_create_organization(&clerk_id, Some("acme"))
                .await
                .unwrap()
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            OrganizationResolution::Existing(id) | OrganizationResolution::Created(id) => {
                ids.push(id);
            }
            other => panic!("{other:?}"),
        }
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every call has the same id");
    assert_eq!(db.count("organizations").await, 1);
    assert_eq!(
        store
            .find_or_create_organization(&clerk_id, None)
            .await
            .unwrap(),
        OrganizationResolution::Existing(ids[0])
    );
    let rows = db.organizations().await;
    assert_eq!(
        rows[0].2.as_deref(),
        Some("acme"),
        "the slug the token named"
    );
}

async fn existing_rows_cost_no_write(backend: Backend) {
    let store = Store::new(backend).await;
    let db = &store;
    let (o, u) = (random_id("org"), random_id("user"));
    let (org_id, user_id) = (org(&store, &o).await, user(&store, &u).await);
    let first = token(&store, (&o, org_id), (&u, user_id), "org:admin", 1000).await;
    assert!(matches!(
        first,
        MembershipResolution::Member { created: true, .. }
    ));
    db.audit_writes().await;

    assert_eq!(
        store.find_or_create_organization(&o, None).await.unwrap(),
        OrganizationResolution::Existing(org_id)
    );
    assert_eq!(
        store.find_or_create(&u, &Profile::new()).await.unwrap(),
        Resolution::Existing(user_id)
    );
    for (role, iat) in [
        ("org:admin", 1000),
        ("admin", 1000),
        ("org:admin", 5000),
        ("org:member", 999),
        ("org:member", 1000),
    ] {
        let again = token(&store, (&o, org_id), (&u, user_id), role, iat).await;
        assert_eq!(held(&again), ("org:admin", 1000), "{role} at {iat}");
        assert!(matches!(
            again,
            MembershipResolution::Member { created: false, .. }
        ));
    }
    assert_eq!(db.writes().await, 0, "reads only");
}

async fn a_deleted_organization_stays_deleted_with_its_memberships(backend: Backend) {
    let store = Store::new(backend).await;
    let db = &store;
    let (o, u) = (random_id("org"), random_id("user"));
    let (org_id, user_id) = (org(&store, &o).await, user(&store, &u).await);
    token(&store, (&o, org_id), (&u, user_id), "org:member", 1000).await;
    let other = random_id("org");
    store
        .upsert_membership(&membership(&other, &u, "org:admin", 1000))
        .await
        .unwrap();
    assert_eq!(db.count("organization_memberships").await, 2);

    assert_eq!(
        store.delete_organization(&o, 5000).await.unwrap(),
        SyncOutcome::Deleted
    );
    assert_eq!(
        db.memberships().await,
        [row(&other, &u, "org:admin", 1000)],
        "its memberships went with it, and only its"
    );
    assert_eq!(
        store.delete_organization(&o, 6000).await.unwrap(),
        SyncOutcome::Tombstoned,
        "a repeated deletion changes nothing"
    );
    assert_eq!(
        db.number("SELECT deleted_at FROM clerk_organization_tombstones")
            .await,
        5000
    );

    // Nothing brings it back.
    assert_eq!(
        store.find_or_create_organization(&o, None).await.unwrap(),
        OrganizationResolution::Deleted
    );
    assert_eq!(
        store
            .upsert_organization(&organization(&o, "Acme", i64::MAX))
            .await
            .unwrap(),
        SyncOutcome::Tombstoned
    );
    assert_eq!(
        store
            .upsert_membership(&membership(&o, &u, "org:admin", i64::MAX))
            .await
            .unwrap(),
        SyncOutcome::Tombstoned
    );
    assert_eq!(
        token(&store, (&o, org_id), (&u, user_id), "org:member", i64::MAX).await,
        MembershipResolution::Deleted {
            deleted_at_ms: 5000
        }
    );
    assert_eq!(db.count("organizations").await, 1, "only the other one");
    assert_eq!(db.count("organization_memberships").await, 1);

    // An organization deleted before it was ever seen is never created.
    let unseen = random_id("org");
    assert_eq!(
        store.delete_organization(&unseen, 1).await.unwrap(),
        SyncOutcome::NotFound
    );
    assert_eq!(
        store
            .find_or_create_organization(&unseen, None)
            .await
            .unwrap(),
        OrganizationResolution::Deleted
    );
}

async fn concurrent_new_members_get_one_row_each(backend: Backend) {
    let store = Store::new(backend).await;
    let db = &store;
    let o = random_id("org");
    let org_id = org(&store, &o).await;
    let mut members = Vec::new();
    for _ in 0..10 {
        let u = random_id("user");
        members.push((u.clone(), user(&store, &u).await));
    }
    let o = Arc::new(o);
    let mut tasks = Vec::new();
    for (u, user_id) in &members {
        for _ in 0..10 {
            let (store, o, u, user_id) = (store.clone(), o.clone(), u.clone(), *user_id);
            tasks.push(tokio::spawn(async move {
                let resolution =
                    token(&store, (&o, org_id), (&u, user_id), "org:member", 1000).await;
                let MembershipResolution::Member { id, .. } = resolution else {
                    panic!("{resolution:?}");
                };
                (u, id)
            }));
        }
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10, "one id per member: {ids:?}");
    assert_eq!(db.count("organization_memberships").await, 10);
}

async fn a_token_changes_the_role_only_when_newer(backend: Backend) {
    let store = Store::new(backend).await;
    let db = &store;
    let (o, u) = (random_id("org"), random_id("user"));
    let (org_id, user_id) = (org(&store, &o).await, user(&store, &u).await);
    let org = (o.as_str(), org_id);
    let member = (u.as_str(), user_id);
    assert_eq!(
        held(&token(&store, org, member, "admin", 1000).await),
        ("org:admin", 1000),
        "stored normalised"
    );
    // Newer, and another role: taken.
    assert_eq!(
        held(&token(&store, org, member, "org:member", 2000).await),
        ("org:member", 2000)
    );
    // Older: ignored, whatever it says.
    assert_eq!(
        held(&token(&store, org, member, "org:admin", 1500).await),
        ("org:member", 2000)
    );
    // As old: ignored too.
    assert_eq!(
        held(&token(&store, org, member, "org:admin", 2000).await),
        ("org:member", 2000)
    );
    // A duplicate is harmless.
    for _ in 0..3 {
        assert_eq!(
            held(&token(&store, org, member, "org:org:member", 2000).await),
            ("org:member", 2000)
        );
    }
    assert_eq!(db.memberships().await, [row(&o, &u, "org:member", 2000)]);
}

async fn webhooks_and_tokens_the_newest_role_wins(backend: Backend) {
    let store = Store::new(backend).await;
    let db = &store;
    let (o, u) = (random_id("org"), random_id("user"));
    let (org_id, user_id) = (org(&store, &o).await, user(&store, &u).await);
    let (org, member) = ((o.as_str(), org_id), (u.as_str(), user_id));
    let event = |role: &str, updated_at| membership(&o, &u, role, updated_at);
    let MembershipResolution::Member { id, .. } =
        token(&store, org, member, "org:admin", 1000).await
    else {
        panic!()
    };

    // A newer event wins over the token...
    assert_eq!(
        store
            .upsert_membership(&event("org:member", 1500))
            .await
            .unwrap(),
        SyncOutcome::Updated(id)
    );
    assert_eq!(db.memberships().await, [row(&o, &u, "org:member", 1500)]);
    // ...and an older token does not undo it...
    assert_eq!(
        held(&token(&store, org, member, "org:admin", 1200).await),
        ("org:member", 1500)
    );
    // ...while a newer token wins over the event...
    assert_eq!(
        held(&token(&store, org, member, "org:admin", 1600).await),
        ("org:admin", 1600)
    );
    // ...and an older event does not undo that.
    assert_eq!(
        store
            .upsert_membership(&event("org:member", 1550))
            .await
            .unwrap(),
        SyncOutcome::Stale
    );
    assert_eq!(db.memberships().await, [row(&o, &u, "org:admin", 1600)]);
    // An event as new is applied, and again when delivered twice.
    for _ in 0..2 {
        assert_eq!(
            store
                .upsert_membership(&event("basic_member", 1600))
                .await
                .unwrap(),
            SyncOutcome::Updated(id)
        );
    }
    assert_eq!(
        db.memberships().await,
        [row(&o, &u, "org:basic_member", 1600)]
    );
    assert_eq!(
        db.number("SELECT clerk_updated_at FROM organization_memberships")
            .await,
        1600
    );

    // An event for a new member creates their user's row, empty.
    let newcomer = random_id("user");
    let created = store
        .upsert_membership(&membership(&o, &newcomer, "org:member", 10))
        .await
        .unwrap();
    assert_eq!(created.code(), "created");
    assert_eq!(db.count("users").await, 2);
}

async fn a_membership_deletion_holds_until_a_newer_state(backend: Backend) {
    let store = Store::new(backend).await;
    let db = &store;
    let (o, u) = (random_id("org"), random_id("user"));
    store
        .upsert_membership(&membership(&o, &u, "org:admin", 1000))
        .await
        .unwrap();
    let (org_id, user_id) = (org(&store, &o).await, user(&store, &u).await);
    let (org, member) = ((o.as_str(), org_id), (u.as_str(), user_id));
    assert_eq!(
        store.delete_membership(&o, &u, 2000).await.unwrap(),
        SyncOutcome::Deleted
    );
    assert_eq!(db.count("organization_memberships").await, 0);
    assert_eq!(db.count("organizations").await, 1, "the organization stays");

    // Tokens issued up to the deletion do not bring it back; a late event
    // from before it does not either.
    for iat in [1000, 1999, 2000] {
        assert_eq!(
            token(&store, org, member, "org:admin", iat).await,
            MembershipResolution::Deleted {
                deleted_at_ms: 2000
            },
            "issued at {iat}"
        );
    }
    assert_eq!(
        store
            .upsert_membership(&membership(&o, &u, "org:admin", 1999))
            .await
            .unwrap(),
        SyncOutcome::Tombstoned
    );
    assert_eq!(db.count("organization_memberships").await, 0);

    // A token issued after it does: the user was invited back.
    let back = token(&store, org, member, "org:member", 2001).await;
    assert!(
        matches!(back, MembershipResolution::Member { created: true, .. }),
        "{back:?}"
    );
    assert_eq!(db.memberships().await, [row(&o, &u, "org:member", 2001)]);

    // An older deletion delivered late neither moves the tombstone back
    // nor removes the newer row.
    assert_eq!(
        store.delete_membership(&o, &u, 1500).await.unwrap(),
        SyncOutcome::Tombstoned
    );
    let tombstone = "SELECT deleted_at FROM clerk_membership_tombstones";
    assert_eq!(db.number(tombstone).await, 2000);
    assert_eq!(db.count("organization_memberships").await, 1);

    // A newer event updates it; a newer deletion removes it and moves the
    // tombstone forward.
    assert_eq!(
        store
            .upsert_membership(&membership(&o, &u, "org:admin", 2500))
            .await
            .unwrap()
            .code(),
        "updated"
    );
    assert_eq!(
        store.delete_membership(&o, &u, 3000).await.unwrap(),
        SyncOutcome::Deleted
    );
    assert_eq!(db.number(tombstone).await, 3000);
    assert_eq!(
        token(&store, org, member, "org:admin", 2999).await,
        MembershipResolution::Deleted {
            deleted_at_ms: 3000
        }
    );

    // Deleting a membership never seen records its tombstone only.
    let stranger = random_id("user");
    assert_eq!(
        store.delete_membership(&o, &stranger, 10).await.unwrap(),
        SyncOutcome::NotFound
    );
    assert_eq!(db.count("clerk_membership_tombstones").await, 2);
}

async fn a_user_deletion_takes_their_memberships(backend: Backend) {
    let store = Store::new(backend).await;
    let db = &store;
    let (o1, o2) = (random_id("org"), random_id("org"));
    let (gone, stays) = (random_id("user"), random_id("user"));
    for (o, u) in [(&o1, &gone), (&o2, &gone), (&o1, &stays)] {
        store
            .upsert_membership(&membership(o, u, "org:member", 100))
            .await
            .unwrap();
    }
    let gone_id = user(&store, &gone).await;
    let o1_id = org(&store, &o1).await;
    assert_eq!(
        store.delete_user(&gone, 500).await.unwrap(),
        SyncOutcome::Deleted
    );
    assert_eq!(
        db.memberships().await,
        [row(&o1, &stays, "org:member", 100)]
    );

    // Nothing is written for them any more: not even the organization of
    // the event.
    let before = db.everything().await;
    let elsewhere = random_id("org");
    assert_eq!(
        store
            .upsert_membership(&membership(&elsewhere, &gone, "org:admin", 1000))
            .await
            .unwrap(),
        SyncOutcome::Tombstoned
    );
    assert_eq!(
        token(&store, (&o1, o1_id), (&gone, gone_id), "org:admin", 1000).await,
        MembershipResolution::Deleted { deleted_at_ms: 500 }
    );
    assert_eq!(db.everything().await, before);
}

async fn text_that_cannot_be_stored_is_left_out(backend: Backend) {
    let store = Store::new(backend).await;
    let db = &store;
    let o = random_id("org");
    let mut acme = organization(&o, "Ac\0me", 10);
    acme.slug = Some(String::new());
    assert_eq!(
        store.upsert_organization(&acme).await.unwrap().code(),
        "created"
    );
    let image = format!("https://img.example.com/{o}.png");
    assert_eq!(
        db.organizations().await,
        [(o.clone(), None, None, Some(image), Some(10))]
    );

    let other = random_id("org");
    store
        .find_or_create_organization(&other, Some("bad\0slug"))
        .await
        .unwrap();
    let snapshot = serde_json::json!({"id": random_id("org"), "name": "\0", "updated_at": 5});
    store
        .upsert_membership(&membership_with(
            snapshot,
            &random_id("user"),
            "org:member",
            5,
        ))
        .await
        .unwrap();
    let rows = db.organizations().await;
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter().all(|row| row.1.is_none() && row.2.is_none()),
        "{rows:?}"
    );
}

async fn hostile_ids_and_roles_are_refused(backend: Backend) {
    let store = Store::new(backend).await;
    let db = &store;
    let long = format!("org_{}", "a".repeat(129));
    let bad_orgs = [
        "", "org_", "org", "user_1", "orgmem_1", "org_a b", "org_a\0b", "org_é", &long,
    ];
    let bad_users = ["", "user_", "org_1", "user_a\nb", "user_\u{202e}x"];
    let (o, u) = (random_id("org"), random_id("user"));
    let (org_id, user_id) = (org(&store, &o).await, user(&store, &u).await);
    let before = db.everything().await;

    for bad in bad_orgs {
        assert!(store.find_or_create_organization(bad, None).await.is_err());
        assert!(
            store
                .upsert_organization(&organization(bad, "X", 1))
                .await
                .is_err()
        );
        assert!(store.delete_organization(bad, 1).await.is_err());
        assert!(
            store
                .upsert_membership(&membership(bad, &u, "org:admin", 1))
                .await
                .is_err()
        );
        assert!(store.delete_membership(bad, &u, 1).await.is_err());
        let claim = MembershipClaim::new((org_id, bad), (user_id, &u), "org:admin", 1);
        assert!(store.ensure_membership(&claim).await.is_err(), "{bad:?}");
    }
    for bad in bad_users {
        assert!(
            store
                .upsert_membership(&membership(&o, bad, "org:admin", 1))
                .await
                .is_err()
        );
        assert!(store.delete_membership(&o, bad, 1).await.is_err());
        let claim = MembershipClaim::new((org_id, &o), (user_id, bad), "org:admin", 1);
        assert!(store.ensure_membership(&claim).await.is_err(), "{bad:?}");
    }
    for bad in ["", "org:", "org:org:", "org:ad\0min"] {
        assert!(
            store
                .upsert_membership(&membership(&o, &u, bad, 1))
                .await
                .is_err()
        );
        let claim = MembershipClaim::new((org_id, &o), (user_id, &u), bad, 1);
        assert!(store.ensure_membership(&claim).await.is_err(), "{bad:?}");
    }
    let error = store
        .find_or_create_organization("org_\0\u{1b}[31m", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        !error.contains('\0') && !error.contains('\u{1b}'),
        "{error}"
    );
    assert_eq!(db.everything().await, before, "nothing was written");
}

async fn creations_racing_a_deletion_leave_no_row(backend: Backend) {
    let store = Store::new(backend).await;
    let db = &store;
    // Each insert of a `…race…` organization, or of a membership with the
    // role `org:raced`, records the deletion's tombstone as it happens.
    db.tombstone_as_inserted("NEW.clerk_id LIKE 'org_race%'")
        .await;

    assert_eq!(
        store
            .find_or_create_organization("org_race1", None)
            .await
            .unwrap(),
        OrganizationResolution::Deleted
    );
    assert_eq!(
        store
            .upsert_organization(&organization("org_race2", "R", 1))
            .await
            .unwrap(),
        SyncOutcome::Tombstoned
    );
    assert_eq!(db.count("organizations").await, 0);

    let (o, u) = (random_id("org"), random_id("user"));
    let (org_id, user_id) = (org(&store, &o).await, user(&store, &u).await);
    assert_eq!(
        token(&store, (&o, org_id), (&u, user_id), "org:raced", 1000).await,
        MembershipResolution::Deleted {
            deleted_at_ms: 1000
        }
    );
    let other = random_id("user");
    assert_eq!(
        store
            .upsert_membership(&membership(&o, &other, "org:raced", 1000))
            .await
            .unwrap(),
        SyncOutcome::Tombstoned
    );
    assert_eq!(db.count("organization_memberships").await, 0);
}

async fn a_membership_needs_its_rows(backend: Backend) {
    let store = Store::new(backend).await;
    let db = &store;
    let (o, u) = (random_id("org"), random_id("user"));
    let user_id = user(&store, &u).await;
    // A local id with no organization row behind it (and no tombstone).
    let claim = MembershipClaim::new((LocalId::Int(i64::MAX), &o), (user_id, &u), "org:admin", 1);
    assert!(store.ensure_membership(&claim).await.is_err());
    assert_eq!(db.count("organization_memberships").await, 0);
}

async fn migrations_run_again(backend: Backend) {
    let db = Store::new(backend).await;
    db.migrate().await;
    assert_eq!(db.count("clerk_membership_tombstones").await, 0);
}

async fn batches_follow_versions_and_respect_a_racing_deletion(backend: Backend) {
    let store = Store::new(backend).await;
    let db = &store;
    use BatchOutcome::*;
    let (a, b) = (random_id("org"), random_id("org"));
    let outcomes = store
        .apply_organizations(&[
            organization(&a, "A1", 1),
            organization(&a, "A2", 2),
            organization(&b, "B", 1),
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [Unchanged, Created, Created],
        "the newest duplicate is written"
    );
    let again = [organization(&a, "A2", 2), organization(&b, "B0", 0)];
    assert_eq!(
        store.apply_organizations(&again).await.unwrap(),
        [Unchanged, Unchanged]
    );
    assert_eq!(
        store
            .preview_organizations(&[organization(&b, "B", 3)])
            .await
            .unwrap(),
        [Updated]
    );

    let (u, v) = (random_id("user"), random_id("user"));
    let batch = [
        membership(&a, &u, "org:member", 10),
        membership(&a, &u, "admin", 11),
        membership(&b, &v, "org:member", 10),
    ];
    assert_eq!(
        store.apply_memberships(&batch).await.unwrap(),
        [Unchanged, Created, Created]
    );
    assert_eq!(db.count("users").await, 2, "members get a row");
    assert_eq!(
        store.apply_memberships(&batch).await.unwrap(),
        [Unchanged; 3]
    );
    let mut rows = vec![
        (a.clone(), u.clone(), "org:admin".to_owned(), 11),
        (b.clone(), v.clone(), "org:member".to_owned(), 10),
    ];
    rows.sort();
    assert_eq!(db.memberships().await, rows);

    // Deletions committed while the batch writes leave no row.
    db.tombstone_as_inserted("NEW.name = 'Raced'").await;
    let raced = random_id("org");
    let outcomes = store
        .apply_organizations(&[
            organization(&raced, "Raced", 1),
            organization(&random_id("org"), "Fine", 1),
        ])
        .await
        .unwrap();
    assert_eq!(outcomes, [Tombstoned, Created]);
    let outcomes = store
        .apply_memberships(&[
            membership(&b, &u, "org:raced", 20),
            membership(&b, &u, "org:x", 5),
        ])
        .await
        .unwrap();
    assert_eq!(outcomes, [Tombstoned, Unchanged]);
    assert_eq!(db.count("organizations").await, 3);
    assert_eq!(db.count("organization_memberships").await, 2);
}

/// Separate stores on separate pools (as separate processes would have:
/// eight on PostgreSQL, four on SQLite) racing on one new organization and
/// one new membership make one row of each, with the same ids for all.
async fn racing_pools_make_one_row(backend: Backend) {
    let db = Store::new(backend).await;
    let pools = match backend {
        Backend::Postgres => 8,
        Backend::Sqlite => 4,
    };
    let mut stores = Vec::new();
    for _ in 0..pools {
        stores.push(db.reopen(2).await);
    }
    let (o, u) = (random_id("org"), random_id("user"));
    let mut tasks = Vec::new();
    for store in stores {
        for _ in 0..4 {
            let (store, o, u) = (store.clone(), o.clone(), u.clone());
            tasks.push(tokio::spawn(async move {
                let org_id = org(&store, &o).await;
                let user_id = user(&store, &u).await;
                let resolution =
                    token(&store, (&o, org_id), (&u, user_id), "org:admin", 1000).await;
                let MembershipResolution::Member { id, .. } = resolution else {
                    panic!("{resolution:?}");
                };
                (org_id, id)
            }));
        }
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(db.count("organizations").await, 1);
    assert_eq!(db.count("organization_memberships").await, 1);
}

/// Other processes hear of each deletion, typed by what was deleted.
#[tokio::test]
async fn postgres_deletions_are_announced_by_kind() {
    let store = Store::new(Backend::Postgres).await;
    let mut listener = sqlx::postgres::PgListener::connect_with(store.postgres_pool())
        .await
        .unwrap();
    let channel: String =
        sqlx::query_scalar("SELECT 'ensure_user_evict_' || md5(coalesce(current_schema(), ''))")
            .fetch_one(store.postgres_pool())
            .await
            .unwrap();
    listener.listen(&channel).await.unwrap();
    let (o, u) = (random_id("org"), random_id("user"));
    store.delete_membership(&o, &u, 1).await.unwrap();
    store.delete_organization(&o, 2).await.unwrap();
    store.delete_user(&u, 3).await.unwrap();
    let mut heard = Vec::new();
    for _ in 0..3 {
        heard.push(listener.recv().await.unwrap().payload().to_owned());
    }
    assert_eq!(
        heard,
        [format!("membership:{o}:{u}"), format!("org:{o}"), u.clone()]
    );
}

/// A membership's role change, by an event or by a newer token, is
/// announced as the membership (for other processes to forget what they
/// cached), and nothing else is: not its creation, nor a newer state with
/// the same role. A deletion sent last shows that nothing came in between.
#[tokio::test]
async fn postgres_role_changes_are_announced_as_the_membership() {
    let store = Store::new(Backend::Postgres).await;
    let mut listener = sqlx::postgres::PgListener::connect_with(store.postgres_pool())
        .await
        .unwrap();
    let channel: String =
        sqlx::query_scalar("SELECT 'ensure_user_evict_' || md5(coalesce(current_schema(), ''))")
            .fetch_one(store.postgres_pool())
            .await
            .unwrap();
    listener.listen(&channel).await.unwrap();
    let (o, u) = (random_id("org"), random_id("user"));
    let created = store
        .upsert_membership(&membership(&o, &u, "org:member", 10))
        .await
        .unwrap();
    assert!(matches!(created, SyncOutcome::Created(_)));
    let promoted = membership(&o, &u, "org:admin", 20);
    assert!(matches!(
        store.upsert_membership(&promoted).await.unwrap(),
        SyncOutcome::Updated(_)
    ));
    let same_role = membership(&o, &u, "org:admin", 30);
    assert!(matches!(
        store.upsert_membership(&same_role).await.unwrap(),
        SyncOutcome::Updated(_)
    ));
    let (org_id, user_id) = (org(&store, &o).await, user(&store, &u).await);
    let demoted = token(&store, (&o, org_id), (&u, user_id), "org:member", 40).await;
    assert_eq!(held(&demoted), ("org:member", 40));
    let older = token(&store, (&o, org_id), (&u, user_id), "org:viewer", 35).await;
    assert_eq!(
        held(&older),
        ("org:member", 40),
        "an older token changes nothing"
    );
    let sentinel = random_id("user");
    store.delete_user(&sentinel, 1).await.unwrap();
    let mut heard = Vec::new();
    for _ in 0..3 {
        heard.push(listener.recv().await.unwrap().payload().to_owned());
    }
    let change = format!("membership:{o}:{u}");
    assert_eq!(heard, [change.clone(), change, sentinel]);
}
