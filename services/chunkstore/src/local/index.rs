//! The RocksDB index: shard id → where its record is (segment, offset, length, seq, BLAKE3),
//! and per segment the watermark up to which its records have been indexed.
//!
//! Column family `shards`: key = the 32 id bytes, value = [`Location`] (60 bytes).
//! Column family `segments`: key = segment number (u32 big endian), value = watermark (u64 LE).
//! Column family `tombstones`: key = segment number (u32 big endian) + the 32 id bytes, value =
//! the largest sequence number of a dead record of that id in that segment (u64 LE). Recovery
//! never re-indexes a record a tombstone covers, so a segment scanned from its start (no
//! watermark: a compaction cut short, damage) cannot bring back a deleted shard. A segment's
//! tombstones go when the segment does.
//! Writes go through RocksDB's WAL without a sync: the segments are the source of truth and
//! recovery re-indexes every record past a segment's watermark. Deletes (and compaction before
//! it unlinks a segment) sync the WAL, because a lost delete cannot be re-derived.

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, WriteBatch, WriteOptions, DB};

use super::{ShardId, StoreError};

const CF_SHARDS: &str = "shards";
const CF_SEGMENTS: &str = "segments";
const CF_TOMBSTONES: &str = "tombstones";
/// Bytes of an encoded [`Location`].
const LOCATION_LEN: usize = 60;

/// Where a shard's record is and what its data hashes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Segment number.
    pub segment: u32,
    /// Offset of the record header in the segment.
    pub offset: u64,
    /// Length of the data (the record is `HEADER_LEN` longer).
    pub len: u64,
    /// Sequence number of the record.
    pub seq: u64,
    /// BLAKE3 of the data.
    pub hash: [u8; 32],
}

impl Location {
    fn encode(&self) -> [u8; LOCATION_LEN] {
        let mut b = [0u8; LOCATION_LEN];
        b[0..4].copy_from_slice(&self.segment.to_le_bytes());
        b[4..12].copy_from_slice(&self.offset.to_le_bytes());
        b[12..20].copy_from_slice(&self.len.to_le_bytes());
        b[20..28].copy_from_slice(&self.seq.to_le_bytes());
        b[28..60].copy_from_slice(&self.hash);
        b
    }

    fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != LOCATION_LEN {
            return None;
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&b[28..60]);
        Some(Location {
            segment: u32::from_le_bytes(b[0..4].try_into().ok()?),
            offset: u64::from_le_bytes(b[4..12].try_into().ok()?),
            len: u64::from_le_bytes(b[12..20].try_into().ok()?),
            seq: u64::from_le_bytes(b[20..28].try_into().ok()?),
            hash,
        })
    }

    /// Bytes of the whole record on disk.
    pub fn record_len(&self) -> u64 {
        super::record::HEADER_LEN as u64 + self.len
    }
}

/// The opened index.
pub struct Index {
    db: DB,
}

/// A set of index changes applied atomically.
#[derive(Default)]
pub struct IndexBatch {
    batch: WriteBatch,
    shards: Vec<(ShardId, Option<Location>)>,
    watermarks: Vec<(u32, Option<u64>)>,
    tombstones: Vec<(u32, ShardId, u64)>,
}

impl IndexBatch {
    /// Records `id` at `loc`.
    pub fn put(&mut self, id: ShardId, loc: Location) {
        self.shards.push((id, Some(loc)));
    }
    /// Removes `id`.
    pub fn delete(&mut self, id: ShardId) {
        self.shards.push((id, None));
    }
    /// Sets a segment's watermark.
    pub fn watermark(&mut self, segment: u32, upto: u64) {
        self.watermarks.push((segment, Some(upto)));
    }
    /// Forgets a removed segment's watermark and its tombstones.
    pub fn forget_segment(&mut self, segment: u32) {
        self.watermarks.push((segment, None));
    }
    /// Marks the record of `id` with sequence number `seq` (and every older one) in `segment`
    /// as dead: recovery never indexes it again. A larger existing tombstone is kept.
    pub fn tombstone(&mut self, segment: u32, id: ShardId, seq: u64) {
        self.tombstones.push((segment, id, seq));
    }
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty() && self.watermarks.is_empty() && self.tombstones.is_empty()
    }
}

impl Index {
    /// Opens (creating if needed) the index at `path`.
    pub fn open(path: &Path) -> Result<Index, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // Recover to the last consistent point after a crash rather than refusing to open.
        opts.set_wal_recovery_mode(rocksdb::DBRecoveryMode::PointInTime);
        opts.set_keep_log_file_num(4);
        // Entries are ~100 bytes: a small memtable is plenty and keeps memory (and the WAL
        // preallocation) small on small nodes.
        opts.set_write_buffer_size(8 << 20);
        let cfs = [CF_SHARDS, CF_SEGMENTS, CF_TOMBSTONES]
            .into_iter()
            .map(|n| {
                let mut cf = Options::default();
                cf.set_write_buffer_size(8 << 20);
                ColumnFamilyDescriptor::new(n, cf)
            });
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        Ok(Index { db })
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError::Index(format!("column family {name} missing")))
    }

    /// Where `id` is, if indexed. A malformed value reads as an error.
    pub fn get(&self, id: &ShardId) -> Result<Option<Location>, StoreError> {
        match self.db.get_pinned_cf(self.cf(CF_SHARDS)?, id.0)? {
            None => Ok(None),
            Some(v) => Location::decode(&v)
                .map(Some)
                .ok_or_else(|| StoreError::Index(format!("malformed entry for {id}"))),
        }
    }

    /// Applies `batch` atomically; with `sync`, the WAL is synced before returning.
    pub fn write(&self, b: IndexBatch, sync: bool) -> Result<(), StoreError> {
        let shards = self.cf(CF_SHARDS)?;
        let segments = self.cf(CF_SEGMENTS)?;
        let tombstones = self.cf(CF_TOMBSTONES)?;
        let mut batch = b.batch;
        let mut dead: std::collections::HashMap<[u8; 36], u64> = std::collections::HashMap::new();
        for (seg, id, seq) in &b.tombstones {
            let key = tombstone_key(*seg, id);
            let seq = match dead.get(&key) {
                Some(s) => (*s).max(*seq),
                None => self.tombstone(*seg, id)?.map_or(*seq, |s| s.max(*seq)),
            };
            dead.insert(key, seq);
        }
        for (key, seq) in &dead {
            batch.put_cf(tombstones, key, seq.to_le_bytes());
        }
        for (id, loc) in &b.shards {
            match loc {
                Some(l) => batch.put_cf(shards, id.0, l.encode()),
                None => batch.delete_cf(shards, id.0),
            }
        }
        for (seg, w) in &b.watermarks {
            match w {
                Some(w) => batch.put_cf(segments, seg.to_be_bytes(), w.to_le_bytes()),
                None => {
                    batch.delete_cf(segments, seg.to_be_bytes());
                    let (from, to) = tombstone_range(*seg);
                    batch.delete_range_cf(tombstones, from, to);
                }
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(batch, &wo)?;
        Ok(())
    }

    /// Syncs the WAL: every write so far survives a power loss.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.db.flush_wal(true)?;
        Ok(())
    }

    /// Every entry, in id order. Entries whose value does not decode come back as `None`.
    pub fn entries(&self) -> Result<Vec<(ShardId, Option<Location>)>, StoreError> {
        let mut out = Vec::new();
        self.for_each(|id, loc| {
            out.push((id, loc));
            true
        })?;
        Ok(out)
    }

    /// Calls `f` on every entry in id order until it returns false.
    pub fn for_each(
        &self,
        mut f: impl FnMut(ShardId, Option<Location>) -> bool,
    ) -> Result<(), StoreError> {
        for item in self
            .db
            .iterator_cf(self.cf(CF_SHARDS)?, IteratorMode::Start)
        {
            let (k, v) = item?;
            let Ok(key) = <[u8; 32]>::try_from(&k[..]) else {
                continue;
            };
            if !f(ShardId(key), Location::decode(&v)) {
                break;
            }
        }
        Ok(())
    }

    /// Removes malformed keys (not 32 bytes) from the shards family; returns how many.
    pub fn drop_malformed_keys(&self) -> Result<usize, StoreError> {
        let cf = self.cf(CF_SHARDS)?;
        let mut batch = WriteBatch::default();
        let mut n = 0;
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, _) = item?;
            if k.len() != 32 {
                batch.delete_cf(cf, k);
                n += 1;
            }
        }
        if n > 0 {
            self.db.write(batch)?;
        }
        Ok(n)
    }

    /// The tombstone of `id` in `segment`: the largest sequence number of its dead records there.
    pub fn tombstone(&self, segment: u32, id: &ShardId) -> Result<Option<u64>, StoreError> {
        let v = self
            .db
            .get_pinned_cf(self.cf(CF_TOMBSTONES)?, tombstone_key(segment, id))?;
        Ok(v.and_then(|v| <[u8; 8]>::try_from(&v[..]).ok().map(u64::from_le_bytes)))
    }

    /// Every tombstone as (segment, id, seq); malformed ones are skipped.
    pub fn tombstones(&self) -> Result<Vec<(u32, ShardId, u64)>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_TOMBSTONES)?, IteratorMode::Start)
        {
            let (k, v) = item?;
            let (Ok(k), Ok(v)) = (<[u8; 36]>::try_from(&k[..]), <[u8; 8]>::try_from(&v[..])) else {
                continue;
            };
            let mut seg = [0u8; 4];
            seg.copy_from_slice(&k[..4]);
            let mut id = [0u8; 32];
            id.copy_from_slice(&k[4..]);
            out.push((u32::from_be_bytes(seg), ShardId(id), u64::from_le_bytes(v)));
        }
        Ok(out)
    }

    /// Every segment watermark.
    pub fn watermarks(&self) -> Result<Vec<(u32, u64)>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_SEGMENTS)?, IteratorMode::Start)
        {
            let (k, v) = item?;
            let (Ok(k), Ok(v)) = (<[u8; 4]>::try_from(&k[..]), <[u8; 8]>::try_from(&v[..])) else {
                continue;
            };
            out.push((u32::from_be_bytes(k), u64::from_le_bytes(v)));
        }
        Ok(out)
    }
}

fn tombstone_key(segment: u32, id: &ShardId) -> [u8; 36] {
    let mut k = [0u8; 36];
    k[..4].copy_from_slice(&segment.to_be_bytes());
    k[4..].copy_from_slice(&id.0);
    k
}

/// The key range holding every tombstone of `segment` (keys are segment-first, big endian).
fn tombstone_range(segment: u32) -> (Vec<u8>, Vec<u8>) {
    let from = segment.to_be_bytes().to_vec();
    let to = match segment.checked_add(1) {
        Some(next) => next.to_be_bytes().to_vec(),
        None => vec![0xff; 37],
    };
    (from, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_round_trip() {
        let l = Location {
            segment: 9,
            offset: 1 << 40,
            len: 12345,
            seq: 77,
            hash: [5; 32],
        };
        assert_eq!(Location::decode(&l.encode()), Some(l));
        assert_eq!(Location::decode(&[0; 10]), None);
    }

    #[test]
    fn batch_write_and_read_back() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tempdir", e))?;
        let idx = Index::open(dir.path())?;
        let l = Location {
            segment: 1,
            offset: 0,
            len: 3,
            seq: 1,
            hash: [1; 32],
        };
        let mut b = IndexBatch::default();
        b.put(ShardId([1; 32]), l);
        b.watermark(1, 99);
        idx.write(b, true)?;
        assert_eq!(idx.get(&ShardId([1; 32]))?, Some(l));
        assert_eq!(idx.watermarks()?, vec![(1, 99)]);
        let mut b = IndexBatch::default();
        b.delete(ShardId([1; 32]));
        b.forget_segment(1);
        idx.write(b, false)?;
        assert_eq!(idx.get(&ShardId([1; 32]))?, None);
        assert!(idx.watermarks()?.is_empty());
        Ok(())
    }

    #[test]
    fn tombstones_keep_the_largest_seq_and_go_with_their_segment() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tempdir", e))?;
        let idx = Index::open(dir.path())?;
        let (a, b) = (ShardId([1; 32]), ShardId([2; 32]));
        let mut batch = IndexBatch::default();
        batch.tombstone(3, a, 7);
        batch.tombstone(3, a, 5);
        batch.tombstone(4, b, 9);
        batch.tombstone(u32::MAX, b, 1);
        idx.write(batch, true)?;
        let mut batch = IndexBatch::default();
        batch.tombstone(3, a, 6);
        idx.write(batch, true)?;
        assert_eq!(idx.tombstone(3, &a)?, Some(7));
        assert_eq!(idx.tombstone(4, &a)?, None);
        let mut batch = IndexBatch::default();
        batch.forget_segment(3);
        batch.forget_segment(u32::MAX);
        idx.write(batch, true)?;
        assert_eq!(idx.tombstones()?, vec![(4, b, 9)]);
        Ok(())
    }
}
