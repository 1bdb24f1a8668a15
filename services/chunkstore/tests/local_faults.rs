//! The local shard store under damage: flipped bytes, torn tails, a lost or stale index, a
//! full filesystem. Never wrong data; acknowledged shards survive; the store stays consistent.

mod local_common;

use std::os::unix::fs::FileExt;

use hyphae_chunkstore::local::record::{RecordHeader, HEADER_LEN};
use hyphae_chunkstore::local::{ShardStore, StoreError, StoreOptions};
use local_common::{data, err, find_record, flip, id, options, tempdir};

async fn fill(
    store: &ShardStore,
    range: std::ops::Range<u64>,
    len: usize,
) -> Result<(), StoreError> {
    for n in range {
        store.put(id(n), data(n, len)).await?;
    }
    Ok(())
}

async fn corruption_is_detected(force_pread: bool) -> Result<(), StoreError> {
    let dir = tempdir()?;
    let store = ShardStore::open(dir.path(), options(force_pread, 64 << 10))?;
    fill(&store, 0..40, 5000).await?;
    // Flip one data byte of shard 7 and one header byte of shard 21 under a running store.
    let (p7, off7, len7) = find_record(dir.path(), &id(7)).ok_or_else(|| err("no record 7"))?;
    flip(&p7, off7 + HEADER_LEN as u64 + len7 / 2, 0x01).map_err(err)?;
    let (p21, off21, _) = find_record(dir.path(), &id(21)).ok_or_else(|| err("no record 21"))?;
    flip(&p21, off21 + 20, 0x80).map_err(err)?;

    for bad in [7, 21] {
        assert!(
            matches!(store.get(&id(bad)).await, Err(StoreError::Corrupt { .. })),
            "shard {bad} must read as corrupt"
        );
        assert!(matches!(
            store.verify(&id(bad)).await,
            Err(StoreError::Corrupt { .. })
        ));
    }
    for n in (0..40).filter(|n| *n != 7 && *n != 21) {
        assert_eq!(store.get(&id(n)).await?, data(n, 5000));
    }
    let scrub = store.scrub(0).await?;
    let mut corrupt = scrub.corrupt.clone();
    corrupt.sort();
    let mut expected = vec![id(7), id(21)];
    expected.sort();
    assert_eq!(corrupt, expected);
    assert_eq!(scrub.checked, 40);
    let check = store.check().await?;
    assert!(!check.is_consistent());
    let mut corrupt = check.corrupt.clone();
    corrupt.sort();
    assert_eq!(corrupt, expected);

    // Still corrupt (never silently "repaired" into wrong data) after a reopen.
    store.close().await;
    let store = ShardStore::open(dir.path(), options(force_pread, 64 << 10))?;
    assert!(matches!(
        store.get(&id(7)).await,
        Err(StoreError::Corrupt { .. })
    ));
    // Healing: delete, then put a good copy.
    assert!(store.delete(&id(7)).await?);
    assert!(store.delete(&id(21)).await?);
    store.put(id(7), data(7, 5000)).await?;
    store.put(id(21), data(21, 5000)).await?;
    assert_eq!(store.get(&id(7)).await?, data(7, 5000));
    let check = store.check().await?;
    assert!(check.is_consistent(), "{check:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bytes_read_as_corrupt_io_uring() -> Result<(), StoreError> {
    corruption_is_detected(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bytes_read_as_corrupt_pread() -> Result<(), StoreError> {
    corruption_is_detected(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_respects_its_bandwidth_budget() -> Result<(), StoreError> {
    let dir = tempdir()?;
    let store = ShardStore::open(dir.path(), options(false, 1 << 20))?;
    fill(&store, 0..20, 10_000).await?;
    // 200 kB at 400 kB/s: at least ~0.5 s (a lower bound only; never an upper one).
    let r = store.scrub(400_000).await?;
    assert_eq!(r.checked, 20);
    assert_eq!(r.bytes, 200_000);
    assert!(r.elapsed.as_secs_f64() >= 0.45, "{:?}", r.elapsed);
    Ok(())
}

/// The last segment of a store.
fn last_segment(dir: &std::path::Path) -> Result<std::path::PathBuf, StoreError> {
    let mut segs: Vec<_> = std::fs::read_dir(dir.join("segments"))
        .map_err(err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    segs.sort();
    segs.pop().ok_or_else(|| err("no segment"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_is_dropped_and_acknowledged_shards_survive() -> Result<(), StoreError> {
    let dir = tempdir()?;
    let store = ShardStore::open(dir.path(), options(false, 1 << 20))?;
    fill(&store, 0..30, 3000).await?;
    store.close().await;

    // A put in flight when the process died: its header and half its data made it to disk.
    let seg = last_segment(dir.path())?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg)
        .map_err(err)?;
    let end = f.metadata().map_err(err)?.len();
    let torn = data(1000, 4000);
    let h = RecordHeader::for_data(1 << 40, id(1000), &torn);
    f.write_all_at(&h.encode(), end).map_err(err)?;
    f.write_all_at(&torn[..2000], end + HEADER_LEN as u64)
        .map_err(err)?;
    drop(f);

    let store = ShardStore::open(dir.path(), options(false, 1 << 20))?;
    assert_eq!(
        store.stats().recovery.truncated_bytes,
        HEADER_LEN as u64 + 2000
    );
    assert!(!store.contains(&id(1000)));
    for n in 0..30 {
        assert_eq!(store.get(&id(n)).await?, data(n, 3000));
    }
    // Appends continue where the valid records end.
    store.put(id(31), data(31, 3000)).await?;
    assert!(store.check().await?.is_consistent());
    store.close().await;
    let store = ShardStore::open(dir.path(), options(false, 1 << 20))?;
    assert_eq!(store.get(&id(31)).await?, data(31, 3000));
    assert!(store.check().await?.is_consistent());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_mid_record_drops_only_the_cut_record() -> Result<(), StoreError> {
    let dir = tempdir()?;
    let store = ShardStore::open(dir.path(), options(false, 1 << 20))?;
    fill(&store, 0..10, 3000).await?;
    store.close().await;
    // Cut the last record in half (damage after the fact: its index entry now points past the
    // end of the segment).
    let seg = last_segment(dir.path())?;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .map_err(err)?;
    let end = f.metadata().map_err(err)?.len();
    f.set_len(end - 1500).map_err(err)?;
    drop(f);

    let store = ShardStore::open(dir.path(), options(false, 1 << 20))?;
    let rec = store.stats().recovery;
    assert_eq!(rec.dropped_entries, 1, "{rec:?}");
    assert_eq!(
        rec.truncated_bytes,
        HEADER_LEN as u64 + 3000 - 1500,
        "{rec:?}"
    );
    assert!(!store.contains(&id(9)));
    for n in 0..9 {
        assert_eq!(store.get(&id(n)).await?, data(n, 3000));
    }
    store.put(id(9), data(9, 3000)).await?;
    let check = store.check().await?;
    assert!(check.is_consistent(), "{check:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_index_is_rebuilt_from_segments() -> Result<(), StoreError> {
    let dir = tempdir()?;
    let store = ShardStore::open(dir.path(), options(true, 32 << 10))?;
    fill(&store, 0..50, 2500).await?;
    store.close().await;
    std::fs::remove_dir_all(dir.path().join("index")).map_err(err)?;
    let store = ShardStore::open(dir.path(), options(true, 32 << 10))?;
    assert_eq!(store.stats().recovery.reindexed, 50);
    for n in 0..50 {
        assert_eq!(store.get(&id(n)).await?, data(n, 2500));
    }
    assert!(store.check().await?.is_consistent());

    // An index RocksDB cannot open is set aside and rebuilt the same way.
    store.close().await;
    let current = dir.path().join("index").join("CURRENT");
    std::fs::write(&current, b"garbage-manifest-name\n").map_err(err)?;
    let store = ShardStore::open(dir.path(), options(true, 32 << 10))?;
    let rec = store.stats().recovery;
    assert!(rec.index_rebuilt, "{rec:?}");
    for n in 0..50 {
        assert_eq!(store.get(&id(n)).await?, data(n, 2500));
    }
    assert!(store.check().await?.is_consistent());
    Ok(())
}

/// A tmpfs of `bytes` mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(bytes: u64) -> Result<Tmpfs, StoreError> {
        let dir = tempdir()?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .map_err(err)?;
        if !status.success() {
            return Err(err(format!("mounting a tmpfs failed: {status}")));
        }
        Ok(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_filesystem_refuses_puts_cleanly() -> Result<(), StoreError> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return Ok(());
    }
    let fs = Tmpfs::mount(24 << 20)?;
    let store_dir = fs.dir.path().join("store");
    let opts = StoreOptions {
        reserve_bytes: Some(4 << 20),
        ..options(false, 2 << 20)
    };
    let store = ShardStore::open(&store_dir, opts.clone())?;
    let len = 200_000;
    let mut acked = Vec::new();
    let mut full = None;
    for n in 0..1000u64 {
        match store.put(id(n), data(n, len)).await {
            Ok(()) => acked.push(n),
            Err(e @ StoreError::Full { .. }) => {
                full = Some((n, e));
                break;
            }
            Err(e) => return Err(e),
        }
    }
    let (refused, e) = full.ok_or_else(|| err("the filesystem never filled"))?;
    assert_eq!(e.code(), "full");
    assert!(acked.len() > 10, "only {} puts fit", acked.len());
    assert!(!store.contains(&id(refused)));
    let stats = store.stats();
    assert!(
        stats.fs_available_bytes + 1 >= (4 << 20) - len as u64 - 96,
        "the reserve was eaten into: {stats:?}"
    );
    for n in &acked {
        assert_eq!(store.get(&id(*n)).await?, data(*n, len));
    }
    assert!(store.check().await?.is_consistent());

    // Freeing space (delete + compaction) makes room again. The deletes start a compaction in
    // the background, which may or may not be done before ours: what counts is the space given
    // back once `compact` returns (it waits for a pass in progress, then makes its own), not
    // which pass did it.
    let full_on_disk = store.stats().on_disk_bytes;
    let full_available = store.stats().fs_available_bytes;
    for n in acked.iter().take(acked.len() / 2 + 5) {
        assert!(store.delete(&id(*n)).await?);
    }
    store.compact().await?;
    let freed = store.stats();
    assert!(
        freed.on_disk_bytes + 4 * len as u64 <= full_on_disk,
        "deleting half the shards reclaimed too little: {full_on_disk} bytes before, {freed:?}"
    );
    assert!(
        freed.fs_available_bytes >= full_available + 4 * len as u64,
        "the filesystem got too little back: {full_available} available before, {freed:?}"
    );
    store.put(id(refused), data(refused, len)).await?;
    store.close().await;

    let store = ShardStore::open(&store_dir, opts)?;
    assert_eq!(store.get(&id(refused)).await?, data(refused, len));
    for n in acked.iter().skip(acked.len() / 2 + 5) {
        assert_eq!(store.get(&id(*n)).await?, data(*n, len));
    }
    let check = store.check().await?;
    assert!(check.is_consistent(), "{check:?}");
    store.close().await;
    drop(fs);
    Ok(())
}
