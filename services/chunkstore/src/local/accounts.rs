//! In-memory bookkeeping derived from the index: per segment, how many bytes were appended and
//! how many are still live. It drives compaction and `stats()`; `check()` recomputes it from
//! the index and compares.

use std::collections::BTreeMap;

use super::index::Location;

/// One segment's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentAccount {
    /// Bytes appended (the end of the last record).
    pub end: u64,
    /// Bytes of records the index points at.
    pub live_bytes: u64,
    /// Records the index points at.
    pub live_records: u64,
}

impl SegmentAccount {
    /// Fraction of the segment still live (1 for an empty segment: nothing to reclaim).
    pub fn live_ratio(&self) -> f64 {
        if self.end == 0 {
            1.0
        } else {
            self.live_bytes as f64 / self.end as f64
        }
    }
}

/// Every segment's figures plus totals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Accounts {
    /// Per segment number.
    pub segments: BTreeMap<u32, SegmentAccount>,
    /// Shards in the index.
    pub shards: u64,
    /// Sum of the data lengths of those shards.
    pub live_data_bytes: u64,
}

impl Accounts {
    /// A shard now lives at `loc`.
    pub fn add(&mut self, loc: &Location) {
        let s = self.segments.entry(loc.segment).or_default();
        s.live_bytes += loc.record_len();
        s.live_records += 1;
        s.end = s.end.max(loc.offset + loc.record_len());
        self.shards += 1;
        self.live_data_bytes += loc.len;
    }

    /// The shard at `loc` is gone (deleted or moved).
    pub fn remove(&mut self, loc: &Location) {
        if let Some(s) = self.segments.get_mut(&loc.segment) {
            s.live_bytes = s.live_bytes.saturating_sub(loc.record_len());
            s.live_records = s.live_records.saturating_sub(1);
        }
        self.shards = self.shards.saturating_sub(1);
        self.live_data_bytes = self.live_data_bytes.saturating_sub(loc.len);
    }

    /// Segment `n` now ends at `end` (at least).
    pub fn extend(&mut self, n: u32, end: u64) {
        let s = self.segments.entry(n).or_default();
        s.end = s.end.max(end);
    }

    /// Bytes appended across segments.
    pub fn on_disk_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.end).sum()
    }
}
