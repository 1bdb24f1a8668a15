//! Reclaiming the space of deleted shards: a sealed segment whose live bytes fell below
//! `compaction_threshold` has its live records copied (verified, with their sequence numbers)
//! to the active segment through the writer's group commit, the index synced, and then the
//! file removed. A record deleted meanwhile is simply not moved; a record that fails
//! verification keeps its segment alive (the scrubber reports it, healing replaces it).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::index::{IndexBatch, Location};
use super::record::RecordHeader;
use super::writer::Append;
use super::{ShardId, ShardStore, StoreError};

/// What one compaction pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CompactReport {
    /// Segments removed.
    pub segments_compacted: u64,
    /// Records copied to the active segment.
    pub records_moved: u64,
    /// Data bytes copied.
    pub bytes_moved: u64,
    /// Segment bytes given back to the filesystem.
    pub bytes_reclaimed: u64,
    /// Segments kept because a live record in them failed verification.
    pub segments_kept: u64,
}

/// Most data bytes of relocations in flight at once.
const MAX_IN_FLIGHT_BYTES: u64 = 64 << 20;

impl ShardStore {
    /// Compacts every sealed segment that is sparser than the threshold. One pass runs at a
    /// time; a call during a pass waits for it and then does its own.
    pub async fn compact(&self) -> Result<CompactReport, StoreError> {
        let _one_at_a_time = self.inner.compaction_lock.lock().await;
        self.compact_locked().await
    }

    /// A pass, the compaction lock held by the caller.
    async fn compact_locked(&self) -> Result<CompactReport, StoreError> {
        let shared = self.shared();
        let active = shared.active_segment.load(Ordering::Acquire);
        let victims: Vec<u32> = {
            let a = shared.lock();
            a.segments
                .iter()
                .filter(|(n, s)| **n < active && s.live_ratio() < shared.opts.compaction_threshold)
                .map(|(n, _)| *n)
                .collect()
        };
        let mut report = CompactReport::default();
        if victims.is_empty() {
            return Ok(report);
        }
        tracing::info!(segments = ?victims, "compacting sparse segments");
        // The live records of the victims, from the index (the source of what is live).
        let mut live: BTreeMap<u32, Vec<(ShardId, Location)>> =
            victims.iter().map(|n| (*n, Vec::new())).collect();
        shared.index.for_each(|id, loc| {
            if let Some(l) = loc {
                if let Some(v) = live.get_mut(&l.segment) {
                    v.push((id, l));
                }
            }
            true
        })?;
        for (n, records) in live {
            self.compact_segment(n, records, &mut report).await?;
        }
        tracing::info!(?report, "compaction done");
        Ok(report)
    }

    async fn compact_segment(
        &self,
        n: u32,
        mut records: Vec<(ShardId, Location)>,
        report: &mut CompactReport,
    ) -> Result<(), StoreError> {
        let shared = self.shared();
        let Some(file) = shared.segments.get(n) else {
            return Ok(());
        };
        records.sort_by_key(|(_, l)| l.offset);
        let mut waiting: Vec<(u64, oneshot::Receiver<Result<bool, StoreError>>)> = Vec::new();
        let mut in_flight = 0u64;
        let mut keep = false;
        for (id, loc) in records {
            let data = match self.read_record(&id, &loc, file.clone()).await {
                Ok(d) => d,
                Err(StoreError::Corrupt { reason, .. }) => {
                    tracing::warn!(shard = %id, %reason, segment = n, "corrupt record; segment kept");
                    keep = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let header = RecordHeader {
                seq: loc.seq,
                id,
                len: loc.len,
                hash: loc.hash,
            };
            let (done, rx) = oneshot::channel();
            in_flight += loc.len;
            self.send(Append::Relocate {
                header,
                data,
                from: loc,
                done,
            })?;
            waiting.push((loc.len, rx));
            if in_flight > MAX_IN_FLIGHT_BYTES {
                for (len, rx) in waiting.drain(..) {
                    if rx.await.map_err(|_| StoreError::Closed)?? {
                        report.records_moved += 1;
                        report.bytes_moved += len;
                    }
                }
                in_flight = 0;
            }
        }
        for (len, rx) in waiting.drain(..) {
            if rx.await.map_err(|_| StoreError::Closed)?? {
                report.records_moved += 1;
                report.bytes_moved += len;
            }
        }
        let still_live = shared.lock().segments.get(&n).map_or(0, |a| a.live_records);
        if keep || still_live > 0 {
            report.segments_kept += 1;
            return Ok(());
        }
        // The moved entries must be durable before the old copies disappear.
        shared.index.sync()?;
        let reclaimed = {
            // Under the index lock, so that `check()` never sees the segment half removed.
            // The file goes first (unlinked, directory synced), its watermark and tombstones
            // after: a crash in between leaves a watermark of a missing segment, which
            // recovery drops. The other order left, for a moment, a segment without a
            // watermark, which recovery scans from its start, re-indexing its deleted
            // records (the deleted shard that came back after a kill -9).
            let mut a = shared.lock();
            let reclaimed = a.segments.remove(&n).map_or(0, |s| s.end);
            shared.segments.remove(n)?;
            let mut batch = IndexBatch::default();
            batch.forget_segment(n);
            shared.index.write(batch, true)?;
            reclaimed
        };
        report.segments_compacted += 1;
        report.bytes_reclaimed += reclaimed;
        Ok(())
    }

    /// Starts a compaction pass in the background unless one is running. The task holds the
    /// store weakly until the compaction lock is its own, and lets go of it before the lock:
    /// a store whose owners are gone is not kept open by a pass that had not started, and
    /// `close` (which takes the lock) returns only once no pass holds the store.
    pub(crate) fn spawn_compaction(&self) {
        if self.inner.compacting.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.inner.compacting.store(false, Ordering::Release);
            return;
        };
        let store = Arc::downgrade(&self.inner);
        let lock = self.inner.compaction_lock.clone();
        rt.spawn(async move {
            let one_at_a_time = lock.lock_owned().await;
            let Some(inner) = store.upgrade() else {
                return;
            };
            let this = ShardStore { inner };
            if let Err(e) = this.compact_locked().await {
                tracing::warn!(error = %e, "background compaction failed");
            }
            this.inner.compacting.store(false, Ordering::Release);
            drop(this);
            drop(one_at_a_time);
        });
    }
}
