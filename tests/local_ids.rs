//! A local id is never handed out twice: not after its user is deleted, on
//! PostgreSQL and SQLite alike.

mod common;

use std::collections::BTreeSet;

use common::*;
use ensure_user::{
    LocalId,
    store::{Profile, Resolution, SyncOutcome, UserStore, UserSync},
    testing::random_id,
};

/// Creates a user through the layer's path and returns their integer id.
async fn create(store: &impl UserStore) -> i64 {
    match store
        .find_or_create(&random_id("user"), &Profile::new())
        .await
        .unwrap()
    {
        Resolution::Created(LocalId::Int(id)) => id,
        other => panic!("expected a new integer id, got {other:?}"),
    }
}

/// Creates a user through the webhooks' path (`user.created`) and returns their id.
async fn create_by_sync(store: &impl UserSync) -> i64 {
    match store
        .upsert_profile(&random_id("user"), &Profile::new(), 1_000)
        .await
        .unwrap()
    {
        SyncOutcome::Created(LocalId::Int(id)) => id,
        other => panic!("expected a new integer id, got {other:?}"),
    }
}

/// Users 1, 2 and 3; the newest is deleted as `user.deleted` does; every
/// user created afterwards gets an id never used before.
async fn deleted_ids_are_not_reused(store: impl UserStore + UserSync) {
    let mut clerk_ids = Vec::new();
    let mut used = BTreeSet::new();
    for expected in 1..=3 {
        let clerk_id = random_id("user");
        let resolution = store.find_or_create(&clerk_id, &Profile::new()).await;
        assert_eq!(
            resolution.unwrap(),
            Resolution::Created(LocalId::Int(expected))
        );
        clerk_ids.push(clerk_id);
        used.insert(expected);
    }

    let deleted = store.delete_user(&clerk_ids[2], 1_000).await.unwrap();
    assert!(matches!(deleted, SyncOutcome::Deleted), "{deleted:?}");
    let next = create(&store).await;
    assert!(next > 3, "user 3's id was handed out again: {next}");
    used.insert(next);

    // Again after deleting a user in the middle and the newest one, for a
    // user created through the sync path.
    store.delete_user(&clerk_ids[1], 2_000).await.unwrap();
    let newest = random_id("user");
    let resolution = store.find_or_create(&newest, &Profile::new()).await;
    let Resolution::Created(LocalId::Int(newest_id)) = resolution.unwrap() else {
        panic!("expected a new user");
    };
    used.insert(newest_id);
    store.delete_user(&newest, 3_000).await.unwrap();
    let after = create_by_sync(&store).await;
    assert!(
        after > *used.last().unwrap(),
        "id {after} is not above every id used before ({used:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_never_reuses_a_deleted_users_id() {
    deleted_ids_are_not_reused(postgres_store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_never_reuses_a_deleted_users_id() {
    deleted_ids_are_not_reused(sqlite_store().await).await;
}
