//! What `open` does before serving: make the index agree with the segments.
//!
//! 1. Index entries that cannot be right (malformed, pointing at a missing segment or past the
//!    end of one) are dropped.
//! 2. Every segment is scanned from its watermark (0 when the index has none, e.g. after the
//!    index was lost) to its end: each valid record whose id is unindexed, or indexed with an
//!    older sequence number, and that no tombstone of the segment covers (a deleted shard, a
//!    dead copy), is indexed. This is how puts that were acknowledged (the segment
//!    was synced) but whose index write had not reached the disk come back.
//! 3. The scan stops at the first record that is not whole and valid (a torn tail: a group that
//!    was being written when the process died); the last segment is truncated there. A record
//!    whose header is valid but whose data does not match its hash is skipped (bit rot in a
//!    record that was never acknowledged to the index; nothing to return for it).

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

use super::accounts::Accounts;
use super::index::{Index, IndexBatch, Location};
use super::reader::pread_exact;
use super::record::{RecordHeader, HEADER_LEN};
use super::segments::{file_len, Segments};
use super::writer::ActiveSegment;
use super::{ShardId, StoreError, StoreOptions};

/// What recovery found and did, reported by `open` in the log and in `stats()`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecoveryReport {
    /// Records found past a watermark and indexed.
    pub reindexed: u64,
    /// Index entries dropped because they pointed at nothing valid.
    pub dropped_entries: u64,
    /// Bytes cut off torn segment tails.
    pub truncated_bytes: u64,
    /// Records skipped because their data did not match their header.
    pub corrupt_records: u64,
    /// The index could not be opened and was rebuilt from the segments.
    pub index_rebuilt: bool,
}

/// The state the store starts from.
pub struct Recovered {
    /// Figures per segment.
    pub accounts: Accounts,
    /// The next sequence number to hand out.
    pub next_seq: u64,
    /// Where appends continue.
    pub active: ActiveSegment,
    /// What was done.
    pub report: RecoveryReport,
}

/// Brings `index` in line with `segments` (see the module documentation).
pub fn recover(
    index: &Index,
    segments: &Segments,
    opts: &StoreOptions,
) -> Result<Recovered, StoreError> {
    let mut report = RecoveryReport::default();
    report.dropped_entries += index.drop_malformed_keys()? as u64;

    let mut lens: HashMap<u32, u64> = HashMap::new();
    for (n, f) in segments.all() {
        lens.insert(n, file_len(&f)?);
    }

    // 1. Entries that point at nothing.
    let mut accounts = Accounts::default();
    let mut max_seq = 0u64;
    let mut batch = IndexBatch::default();
    index.for_each(|id, loc| {
        let valid = loc.filter(|l| {
            lens.get(&l.segment)
                .is_some_and(|len| l.offset.saturating_add(l.record_len()) <= *len)
        });
        match valid {
            Some(l) => {
                accounts.add(&l);
                max_seq = max_seq.max(l.seq);
            }
            None => {
                tracing::warn!(shard = %id, "index entry points past its segment; dropped");
                batch.delete(id);
                report.dropped_entries += 1;
            }
        }
        true
    })?;
    let watermarks: HashMap<u32, u64> = index.watermarks()?.into_iter().collect();
    for seg in watermarks.keys() {
        if !lens.contains_key(seg) {
            batch.forget_segment(*seg);
        }
    }
    // Tombstones of segments that are gone (a compaction cut short after the unlink) go too;
    // their sequence numbers still count, so that a new record never reuses one.
    let mut orphaned_tombstones = std::collections::BTreeSet::new();
    for (seg, _, seq) in index.tombstones()? {
        max_seq = max_seq.max(seq);
        if !lens.contains_key(&seg) && !watermarks.contains_key(&seg) {
            orphaned_tombstones.insert(seg);
        }
    }
    for seg in orphaned_tombstones {
        batch.forget_segment(seg);
    }
    index.write(batch, true)?;

    // 2 and 3. Scan past the watermarks.
    let numbers = segments.numbers();
    let last = numbers.last().copied();
    let mut batch = IndexBatch::default();
    let mut fresh: HashMap<ShardId, Location> = HashMap::new();
    for (n, file) in segments.all() {
        let len = lens.get(&n).copied().unwrap_or(0);
        // A watermark past the end means the file lost bytes it once had (damage, not a
        // crash: records are synced before they are indexed): walk it from the start to find
        // where its valid records end.
        let from = match watermarks.get(&n).copied() {
            Some(w) if w <= len => w,
            _ => 0,
        };
        accounts.extend(n, len);
        if from >= len {
            continue;
        }
        let stop = scan(
            &file,
            n,
            from,
            len,
            |h, offset| {
                let loc = Location {
                    segment: n,
                    offset,
                    len: h.len,
                    seq: h.seq,
                    hash: h.hash,
                };
                max_seq = max_seq.max(h.seq);
                if index.tombstone(n, &h.id)?.is_some_and(|dead| dead >= h.seq) {
                    // Deleted (or a dead copy): never indexed again.
                    return Ok(());
                }
                let current = match fresh.get(&h.id) {
                    Some(l) => Some(*l),
                    None => index.get(&h.id)?,
                };
                if current.is_none_or(|c| c.seq < h.seq) {
                    if let Some(old) = current {
                        accounts.remove(&old);
                    }
                    accounts.add(&loc);
                    batch.put(h.id, loc);
                    fresh.insert(h.id, loc);
                    report.reindexed += 1;
                }
                Ok(())
            },
            &mut report.corrupt_records,
        )?;
        if stop < len {
            if Some(n) == last {
                tracing::warn!(
                    segment = n,
                    at = stop,
                    dropped = len - stop,
                    "torn tail dropped"
                );
                file.set_len(stop)
                    .and_then(|_| file.sync_all())
                    .map_err(|e| StoreError::io("truncating a torn tail", e))?;
                report.truncated_bytes += len - stop;
                if let Some(a) = accounts.segments.get_mut(&n) {
                    a.end = stop;
                }
            } else {
                tracing::warn!(
                    segment = n,
                    at = stop,
                    "unreadable bytes in a sealed segment"
                );
            }
        }
        batch.watermark(n, stop);
    }
    index.write(batch, true)?;

    // Where appends continue.
    let active = match last {
        Some(n) if accounts.segments.get(&n).map_or(0, |a| a.end) < opts.segment_bytes => {
            let file = segments
                .get(n)
                .ok_or_else(|| StoreError::Index(format!("segment {n} vanished")))?;
            ActiveSegment {
                number: n,
                end: accounts.segments.get(&n).map_or(0, |a| a.end),
                file,
            }
        }
        other => {
            let n = other.map_or(1, |n| n + 1);
            let file = segments.create(n, 0)?;
            accounts.extend(n, 0);
            ActiveSegment {
                number: n,
                file,
                end: 0,
            }
        }
    };
    if report != RecoveryReport::default() {
        tracing::info!(?report, "shard store recovered");
    }
    Ok(Recovered {
        accounts,
        next_seq: max_seq + 1,
        active,
        report,
    })
}

/// Walks the records of `file` from `from` to `len`, calling `found` on each valid one;
/// returns where the valid records end.
fn scan(
    file: &File,
    segment: u32,
    from: u64,
    len: u64,
    mut found: impl FnMut(&RecordHeader, u64) -> Result<(), StoreError>,
    corrupt_records: &mut u64,
) -> Result<u64, StoreError> {
    let mut pos = from;
    let mut hb = [0u8; HEADER_LEN];
    while pos + HEADER_LEN as u64 <= len {
        if file.read_exact_at(&mut hb, pos).is_err() {
            break;
        }
        let Ok(h) = RecordHeader::decode(&hb) else {
            break;
        };
        let end = pos + h.record_len();
        if end > len {
            break;
        }
        let data = pread_exact(file, pos + HEADER_LEN as u64, h.len as usize)
            .map_err(|e| StoreError::io(format!("reading segment {segment}"), e))?;
        if h.matches(&data) {
            found(&h, pos)?;
        } else {
            tracing::warn!(segment, offset = pos, shard = %h.id, "record data does not match its hash; skipped");
            *corrupt_records += 1;
        }
        pos = end;
    }
    Ok(pos)
}
