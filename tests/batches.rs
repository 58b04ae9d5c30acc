//! Batched syncs on both stores: `apply_batch` follows versions and
//! tombstones, `preview_batch` writes nothing, checkpoints round-trip.

mod common;

use common::*;
use ensure_user::{
    store::{BackfillStore, BatchOutcome, Checkpoint, Profile, ProfileUpdate, UserSync},
    testing::random_id,
};

on_both_stores!(
    batches_follow_versions_and_tombstones,
    batch_respects_a_tombstone_committed_during_the_write,
    batches_on_a_mapped_uuid_table,
    large_batches_keep_their_outcomes,
    preview_writes_nothing,
    checkpoints_round_trip,
);

fn update(clerk_id: &str, version: i64) -> ProfileUpdate {
    ProfileUpdate::new(
        clerk_id,
        Profile::new()
            .with_email(format!("v{version}@example.com"))
            .with_names(Some(format!("First{version}")), None),
        version,
    )
}

fn row(clerk_id: &str, version: i64) -> Row {
    (
        clerk_id.to_owned(),
        Some(format!("v{version}@example.com")),
        Some(format!("First{version}")),
        None,
        None,
        Some(version),
    )
}

async fn batches_follow_versions_and_tombstones(backend: Backend) {
    use BatchOutcome::*;
    let store = Store::new(backend).await;
    let [a, b, c, gone] = ["user_a", "user_b", "user_c", "user_gone"];
    store.tombstone(gone).await;
    let outcomes = store
        .apply_batch(&[update(a, 10), update(b, 10), update(gone, 10)])
        .await
        .unwrap();
    assert_eq!(outcomes, [Created, Created, Tombstoned]);
    assert_eq!(store.rows().await, [row(a, 10), row(b, 10)]);

    // The same data again writes nothing; newer wins, older and equal do not.
    let again = [update(a, 10), update(b, 10)];
    assert_eq!(store.apply_batch(&again).await.unwrap(), [Unchanged; 2]);
    let mixed = [update(a, 11), update(b, 9), update(c, 1), update(c, 2)];
    assert_eq!(
        store.apply_batch(&mixed).await.unwrap(),
        [Updated, Unchanged, Unchanged, Created]
    );
    assert_eq!(
        store.rows().await,
        [row(a, 11), row(b, 10), row(c, 2)],
        "the newest of duplicate ids is the one kept"
    );

    // A row the layer created (no version yet) takes any profile.
    store
        .execute("INSERT INTO users (clerk_id) VALUES ('user_layer')")
        .await;
    assert_eq!(
        store.apply_batch(&[update("user_layer", 1)]).await.unwrap(),
        [Updated]
    );

    // The single-row path agrees with the batch.
    let sync = store.upsert_profile(a, &update(a, 12).profile, 12).await;
    assert_eq!(sync.unwrap().code(), "updated");
    assert_eq!(
        store.apply_batch(&[update(a, 12)]).await.unwrap(),
        [Unchanged]
    );
    assert_eq!(store.apply_batch(&[]).await.unwrap(), []);
}

async fn large_batches_keep_their_outcomes(backend: Backend) {
    use BatchOutcome::*;
    let store = Store::new(backend).await;
    let long = |n: usize| {
        ProfileUpdate::new(
            format!("user_{n:027}"),
            Profile::new()
                .with_image_url(format!("https://img.example.com/{}", "x".repeat(300 + n))),
            1,
        )
    };
    // Long rows, so that PostgreSQL cuts the batch into many statements;
    // the last user repeats the first with a newer version.
    let mut batch: Vec<ProfileUpdate> = (0..999).map(long).collect();
    let mut newer = long(0);
    newer.updated_at_ms = 2;
    batch.push(newer);
    let outcomes = store.apply_batch(&batch).await.unwrap();
    assert_eq!(outcomes[..999], [Created; 999]);
    assert_eq!(
        outcomes[999], Updated,
        "the newer duplicate wins, in a later statement"
    );
    let rows = store.rows().await;
    assert_eq!(rows.len(), 999);
    assert_eq!(rows[0].5, Some(2));
    assert_eq!(rows[998].4.as_ref().map(String::len), Some(24 + 300 + 998));
    assert_eq!(store.apply_batch(&batch).await.unwrap(), [Unchanged; 1000]);
}

async fn batch_respects_a_tombstone_committed_during_the_write(backend: Backend) {
    let store = Store::new(backend).await;
    store.tombstone_on_insert().await;
    let outcomes = store
        .apply_batch(&[update("user_race1", 1), update("user_fine", 1)])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [BatchOutcome::Tombstoned, BatchOutcome::Created],
        "the raced row is removed again"
    );
    assert_eq!(store.rows().await, [row("user_fine", 1)]);
}

async fn batches_on_a_mapped_uuid_table(backend: Backend) {
    let store = Store::new(backend).await.with_accounts_table().await;
    let users = [update("user_a", 1), update("user_b", 1)];
    use BatchOutcome::*;
    assert_eq!(store.apply_batch(&users).await.unwrap(), [Created, Created]);
    // Without a version column, an existing row is always overwritten.
    assert_eq!(store.apply_batch(&users).await.unwrap(), [Updated, Updated]);
    assert_eq!(
        store.preview_batch(&users).await.unwrap(),
        [Updated, Updated]
    );
}

async fn preview_writes_nothing(backend: Backend) {
    use BatchOutcome::*;
    let store = Store::new(backend).await;
    store.apply_batch(&[update("user_a", 5)]).await.unwrap();
    store.tombstone("user_gone").await;
    let batch = [
        update("user_a", 5),
        update("user_a", 6),
        update("user_new", 1),
        update("user_gone", 1),
    ];
    assert_eq!(
        store.preview_batch(&batch).await.unwrap(),
        [Unchanged, Updated, Created, Tombstoned]
    );
    assert_eq!(store.rows().await, [row("user_a", 5)]);
}

async fn checkpoints_round_trip(backend: Backend) {
    let store = Store::new(backend).await;
    assert_eq!(store.load_checkpoint().await.unwrap(), None);
    let first = Checkpoint::new(random_id("user"), 500);
    store.save_checkpoint(&first).await.unwrap();
    assert_eq!(store.load_checkpoint().await.unwrap(), Some(first));
    let second = Checkpoint::new("user_b", 1000);
    store.save_checkpoint(&second).await.unwrap();
    assert_eq!(store.load_checkpoint().await.unwrap(), Some(second));
    store.clear_checkpoint().await.unwrap();
    assert_eq!(store.load_checkpoint().await.unwrap(), None);
    store.clear_checkpoint().await.unwrap();
}
