//! An acknowledged delete stays deleted even when recovery scans a segment from its start.
//!
//! Recovery indexes every valid record past a segment's watermark that the index lacks. A
//! segment is scanned from its start when it has no watermark; compaction used to forget a
//! segment's watermark before unlinking the file, so a kill -9 in between left exactly that,
//! and recovery brought the segment's deleted shards back (seen once in ~30 runs of
//! `kill9_at_random_moments_loses_no_acknowledged_put`). These tests build that state
//! deterministically (the watermarks removed through the index) and check that tombstones keep
//! deleted shards deleted, that a later put of the same id still wins, and that a compacted
//! segment's tombstones go with it.

mod local_common;

use std::path::Path;

use hyphae_chunkstore::local::index::{Index, IndexBatch};
use hyphae_chunkstore::local::{ShardStore, StoreError, StoreOptions};
use local_common::{data, err, id, options, tempdir};

fn opts(segment_bytes: u64) -> StoreOptions {
    StoreOptions {
        auto_compact: false,
        ..options(false, segment_bytes)
    }
}

/// What a crash between "forget the watermark" and "unlink the file" (or damage) leaves: every
/// segment without a watermark, so recovery scans each from its start.
fn forget_every_watermark(store_dir: &Path) -> Result<(), StoreError> {
    let index = Index::open(&store_dir.join("index"))?;
    let mut batch = IndexBatch::default();
    for (segment, _) in index.watermarks()? {
        // Only the watermark: a real `forget_segment` would drop the tombstones as well, which
        // is what a compaction does once the file is gone.
        batch.watermark(segment, 0);
    }
    index.write(batch, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_shard_stays_deleted_when_its_segment_is_rescanned() -> Result<(), StoreError> {
    let dir = tempdir()?;
    let store = ShardStore::open(dir.path(), opts(1 << 20))?;
    for n in 0..10 {
        store.put(id(n), data(n, 3000)).await?;
    }
    assert!(store.delete(&id(3)).await?);
    assert!(store.delete(&id(7)).await?);
    store.close().await;

    forget_every_watermark(dir.path())?;
    let store = ShardStore::open(dir.path(), opts(1 << 20))?;
    for n in [3, 7] {
        match store.get(&id(n)).await {
            Err(StoreError::NotFound(_)) => {}
            other => panic!("deleted shard {n} is back: {:?}", other.map(|d| d.len())),
        }
    }
    for n in (0..10).filter(|n| *n != 3 && *n != 7) {
        assert_eq!(store.get(&id(n)).await?, data(n, 3000));
    }
    let check = store.check().await?;
    assert!(check.is_consistent(), "{check:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_after_a_delete_wins_over_the_tombstone() -> Result<(), StoreError> {
    let dir = tempdir()?;
    let store = ShardStore::open(dir.path(), opts(1 << 20))?;
    for n in 0..4 {
        store.put(id(n), data(n, 2000)).await?;
    }
    assert!(store.delete(&id(1)).await?);
    store.put(id(1), data(1, 2000)).await?;
    assert!(store.delete(&id(2)).await?);
    store.put(id(2), data(2, 2000)).await?;
    assert!(store.delete(&id(2)).await?);
    store.close().await;

    forget_every_watermark(dir.path())?;
    let store = ShardStore::open(dir.path(), opts(1 << 20))?;
    assert_eq!(store.get(&id(1)).await?, data(1, 2000));
    assert!(!store.contains(&id(2)), "put, delete, put, delete: deleted");
    assert_eq!(store.get(&id(3)).await?, data(3, 2000));
    let check = store.check().await?;
    assert!(check.is_consistent(), "{check:?}");

    // A put after the rescan still gets a sequence number above every tombstone.
    store.put(id(2), data(2, 2000)).await?;
    store.close().await;
    forget_every_watermark(dir.path())?;
    let store = ShardStore::open(dir.path(), opts(1 << 20))?;
    assert_eq!(store.get(&id(2)).await?, data(2, 2000));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_removes_the_tombstones_of_the_segments_it_removes() -> Result<(), StoreError> {
    let dir = tempdir()?;
    let store = ShardStore::open(dir.path(), opts(32 << 10))?;
    for n in 0..40 {
        store.put(id(n), data(n, 2500)).await?;
    }
    for n in (0..40).filter(|n| n % 4 != 0) {
        assert!(store.delete(&id(n)).await?);
    }
    store.close().await;
    let before = Index::open(&dir.path().join("index"))?.tombstones()?.len();
    assert_eq!(before, 30);

    let store = ShardStore::open(dir.path(), opts(32 << 10))?;
    let report = store.compact().await?;
    assert!(report.segments_compacted > 0, "{report:?}");
    store.close().await;
    let left = Index::open(&dir.path().join("index"))?.tombstones()?;
    let segments: Vec<u32> = std::fs::read_dir(dir.path().join("segments"))
        .map_err(err)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
        .collect();
    assert!(
        left.iter().all(|(seg, _, _)| segments.contains(seg)),
        "tombstones of removed segments remain: {left:?} (segments {segments:?})"
    );
    assert!(left.len() < before, "{} tombstones left", left.len());

    // The kept segments rescanned from their start: still nothing deleted comes back.
    forget_every_watermark(dir.path())?;
    let store = ShardStore::open(dir.path(), opts(32 << 10))?;
    for n in 0..40 {
        assert_eq!(store.contains(&id(n)), n % 4 == 0, "shard {n}");
    }
    for n in (0..40).filter(|n| n % 4 == 0) {
        assert_eq!(store.get(&id(n)).await?, data(n, 2500));
    }
    let check = store.check().await?;
    assert!(check.is_consistent(), "{check:?}");
    Ok(())
}
