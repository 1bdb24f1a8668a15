//! Round trips through the local shard store on both backends: many sizes, reopen, delete,
//! idempotent puts, stats.

use hyphae_chunkstore::local::{Backend, ShardId, ShardStore, StoreError, StoreOptions};

mod local_common;
use local_common::{data, id};

fn options(force_pread: bool) -> StoreOptions {
    local_common::options(force_pread, 1 << 20)
}

const SIZES: &[usize] = &[
    0,
    1,
    95,
    96,
    97,
    4095,
    4096,
    4097,
    65_536,
    100_000,
    262_143,
    262_145,
    1 << 20,
    3 << 20,
];

async fn round_trip(force_pread: bool) -> Result<(), StoreError> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::io("tempdir", e))?;
    let store = ShardStore::open(dir.path(), options(force_pread))?;
    if force_pread {
        assert_eq!(store.backend().backend, Backend::Pread);
        assert!(store.backend().fallback_reason.is_some());
    }
    // Concurrent puts (they share group commits) of every size.
    let mut tasks = Vec::new();
    for (i, len) in SIZES.iter().enumerate() {
        let s = store.clone();
        let (i, len) = (i as u64, *len);
        tasks.push(tokio::spawn(
            async move { s.put(id(i), data(i, len)).await },
        ));
    }
    for t in tasks {
        t.await.map_err(|e| StoreError::Index(e.to_string()))??;
    }
    for (i, len) in SIZES.iter().enumerate() {
        let got = store.get(&id(i as u64)).await?;
        assert_eq!(got.len(), *len);
        assert_eq!(got, data(i as u64, *len));
        store.verify(&id(i as u64)).await?;
    }
    assert!(matches!(
        store.get(&id(999)).await,
        Err(StoreError::NotFound(_))
    ));
    let stats = store.stats();
    assert_eq!(stats.shards, SIZES.len() as u64);
    assert_eq!(stats.live_bytes, SIZES.iter().sum::<usize>() as u64);
    assert!(stats.segments >= 2, "1 MiB segments must have rolled over");
    assert!(store.check().await?.is_consistent());

    // Idempotent put, delete.
    store.put(id(0), data(0, SIZES[0])).await?;
    assert_eq!(store.stats().shards, SIZES.len() as u64);
    assert!(store.delete(&id(1)).await?);
    assert!(!store.delete(&id(1)).await?);
    assert!(!store.contains(&id(1)));
    assert!(matches!(
        store.get(&id(1)).await,
        Err(StoreError::NotFound(_))
    ));
    let mut listed = store.list();
    listed.sort();
    let mut expected: Vec<ShardId> = (0..SIZES.len() as u64)
        .filter(|i| *i != 1)
        .map(id)
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
    store.close().await;

    // Everything survives a reopen.
    let store = ShardStore::open(dir.path(), options(force_pread))?;
    for (i, len) in SIZES.iter().enumerate() {
        let r = store.get(&id(i as u64)).await;
        if i == 1 {
            assert!(matches!(r, Err(StoreError::NotFound(_))));
        } else {
            assert_eq!(r?, data(i as u64, *len));
        }
    }
    let report = store.check().await?;
    assert!(report.is_consistent(), "{report:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_io_uring_or_fallback() -> Result<(), StoreError> {
    round_trip(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_pread() -> Result<(), StoreError> {
    round_trip(true).await
}

#[tokio::test]
async fn too_large_is_refused() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::io("tempdir", e))?;
    let store = ShardStore::open(
        dir.path(),
        StoreOptions {
            max_shard_bytes: 1000,
            ..options(false)
        },
    )?;
    assert!(matches!(
        store.put(id(1), data(1, 1001)).await,
        Err(StoreError::TooLarge { .. })
    ));
    assert!(!store.contains(&id(1)));
    Ok(())
}

#[test]
fn io_uring_probe_agrees_with_the_store() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::io("tempdir", e))?;
    let store = ShardStore::open(dir.path(), options(false))?;
    let probe = hyphae_chunkstore::local::probe_io_uring();
    assert_eq!(store.backend().backend == Backend::IoUring, probe.is_ok());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_share_fdatasyncs() -> Result<(), StoreError> {
    let dir = local_common::tempdir()?;
    let store = ShardStore::open(dir.path(), options(false))?;
    let mut tasks = Vec::new();
    for n in 0..64u64 {
        let s = store.clone();
        tasks.push(tokio::spawn(
            async move { s.put(id(n), data(n, 20_000)).await },
        ));
    }
    for t in tasks {
        t.await.map_err(local_common::err)??;
    }
    let stats = store.stats();
    assert_eq!(stats.records_appended, 64);
    // 64 puts queued at once cannot all have waited for a sync of their own.
    assert!(stats.syncs < 64, "{stats:?}");
    for n in 0..64u64 {
        assert_eq!(store.get(&id(n)).await?, data(n, 20_000));
    }
    assert_eq!(store.stats().reads, 64);
    Ok(())
}

#[test]
fn a_second_opener_is_refused_and_changes_nothing() -> Result<(), StoreError> {
    let dir = local_common::tempdir()?;
    let store = ShardStore::open(dir.path(), options(true))?;
    let second = ShardStore::open(dir.path(), options(true));
    assert!(second.is_err(), "two openers of one directory");
    drop(second);
    assert!(std::fs::read_dir(dir.path())
        .map_err(local_common::err)?
        .filter_map(|e| e.ok())
        .all(|e| !e.file_name().to_string_lossy().starts_with("index.broken")));
    drop(store);
    ShardStore::open(dir.path(), options(true))?;
    Ok(())
}
