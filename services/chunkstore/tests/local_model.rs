//! The local shard store against a model (a map): random sequences of put, delete, get,
//! compact and reopen on both backends (proptest), and compaction under concurrent traffic.

mod local_common;

use std::collections::HashMap;

use hyphae_chunkstore::local::{ShardStore, StoreError, StoreOptions};
use local_common::{data, err, id, options, tempdir};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put(u64, usize),
    Delete(u64),
    Get(u64),
    Compact,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..24u64, 0..9000usize).prop_map(|(n, len)| Op::Put(n, len)),
        3 => (0..24u64).prop_map(Op::Delete),
        3 => (0..24u64).prop_map(Op::Get),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

fn model_options(force_pread: bool) -> StoreOptions {
    StoreOptions {
        auto_compact: false, // compaction only where the sequence says, to keep runs reproducible
        ..options(force_pread, 16 << 10)
    }
}

async fn run(ops: Vec<Op>, force_pread: bool) -> Result<(), StoreError> {
    let dir = tempdir()?;
    let mut store = ShardStore::open(dir.path(), model_options(force_pread))?;
    // id -> length of the data (data is a function of id and length).
    let mut model: HashMap<u64, usize> = HashMap::new();
    for op in ops {
        match op {
            Op::Put(n, len) => {
                store.put(id(n), data(n, len)).await?;
                // A put of a stored id keeps the first bytes.
                model.entry(n).or_insert(len);
            }
            Op::Delete(n) => {
                let was = store.delete(&id(n)).await?;
                assert_eq!(was, model.remove(&n).is_some());
            }
            Op::Get(n) => match (store.get(&id(n)).await, model.get(&n)) {
                (Ok(d), Some(len)) => assert_eq!(d, data(n, *len)),
                (Err(StoreError::NotFound(_)), None) => {}
                (r, m) => panic!("get {n}: store {:?}, model {m:?}", r.map(|d| d.len())),
            },
            Op::Compact => {
                store.compact().await?;
            }
            Op::Reopen => {
                store.close().await;
                store = ShardStore::open(dir.path(), model_options(force_pread))?;
            }
        }
        assert_eq!(store.stats().shards, model.len() as u64);
    }
    let mut listed = store.list();
    listed.sort();
    let mut expected: Vec<_> = model.keys().map(|n| id(*n)).collect();
    expected.sort();
    assert_eq!(listed, expected);
    let check = store.check().await?;
    assert!(check.is_consistent(), "{check:?}");
    assert_eq!(
        store.stats().live_bytes,
        model.values().map(|l| *l as u64).sum::<u64>()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn behaves_like_a_map(ops in proptest::collection::vec(op(), 1..60), force_pread in any::<bool>()) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        rt.block_on(run(ops, force_pread)).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_every_live_shard_under_traffic() -> Result<(), StoreError> {
    let dir = tempdir()?;
    let opts = StoreOptions {
        auto_compact: false,
        ..options(false, 64 << 10)
    };
    let store = ShardStore::open(dir.path(), opts.clone())?;
    for n in 0..300u64 {
        store.put(id(n), data(n, 3000)).await?;
    }
    let before = store.stats();
    // Delete two thirds.
    for n in (0..300u64).filter(|n| !n.is_multiple_of(3)) {
        assert!(store.delete(&id(n)).await?);
    }
    // Readers and writers run while compaction moves records.
    let mut traffic = Vec::new();
    for t in 0..3u64 {
        let s = store.clone();
        traffic.push(tokio::spawn(async move {
            for round in 0..5u64 {
                for n in (0..300u64).filter(|n| n.is_multiple_of(3)) {
                    assert_eq!(s.get(&id(n)).await?, data(n, 3000));
                }
                let n = 1000 + t * 100 + round;
                s.put(id(n), data(n, 3000)).await?;
            }
            Ok::<(), StoreError>(())
        }));
    }
    let report = store.compact().await?;
    for t in traffic {
        t.await.map_err(err)??;
    }
    assert!(report.segments_compacted > 0, "{report:?}");
    assert!(report.records_moved > 0, "{report:?}");
    let after = store.stats();
    assert!(
        after.on_disk_bytes < before.on_disk_bytes,
        "{before:?} -> {after:?}"
    );
    assert_eq!(after.shards, 100 + 15);
    for n in (0..300u64).filter(|n| n.is_multiple_of(3)) {
        assert_eq!(store.get(&id(n)).await?, data(n, 3000));
    }
    let check = store.check().await?;
    assert!(check.is_consistent(), "{check:?}");
    store.close().await;

    let store = ShardStore::open(dir.path(), opts)?;
    for n in (0..300u64).filter(|n| n.is_multiple_of(3)) {
        assert_eq!(store.get(&id(n)).await?, data(n, 3000));
    }
    for n in (0..300u64).filter(|n| !n.is_multiple_of(3)) {
        assert!(!store.contains(&id(n)), "deleted shard {n} came back");
    }
    let check = store.check().await?;
    assert!(check.is_consistent(), "{check:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_trigger_automatic_compaction() -> Result<(), StoreError> {
    let dir = tempdir()?;
    let store = ShardStore::open(dir.path(), options(true, 32 << 10))?;
    for n in 0..100u64 {
        store.put(id(n), data(n, 2000)).await?;
    }
    let before = store.stats();
    for n in 0..90u64 {
        store.delete(&id(n)).await?;
    }
    // The background pass runs on its own; wait (generously) for the files to go.
    let start = std::time::Instant::now();
    while store.stats().segments >= before.segments
        && start.elapsed() < std::time::Duration::from_secs(60)
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let after = store.stats();
    assert!(after.segments < before.segments, "{before:?} -> {after:?}");
    for n in 90..100u64 {
        assert_eq!(store.get(&id(n)).await?, data(n, 2000));
    }
    let check = store.check().await?;
    assert!(check.is_consistent(), "{check:?}");
    Ok(())
}
