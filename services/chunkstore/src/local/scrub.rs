//! Verification: one shard ([`ShardStore::verify`]), every shard at a bandwidth budget
//! ([`ShardStore::scrub`], the scrub scheduler's primitive), and the full consistency check of
//! index against segments ([`ShardStore::check`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::accounts::Accounts;
use super::segments::file_len;
use super::{ShardId, ShardStore, StoreError};

/// What a scrub pass found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScrubReport {
    /// Shards read and verified.
    pub checked: u64,
    /// Data bytes read.
    pub bytes: u64,
    /// Shards whose bytes no longer match their hash (to be healed: delete, then put a good copy).
    pub corrupt: Vec<ShardId>,
    /// Shards deleted while the pass ran.
    pub vanished: u64,
    /// How long the pass took.
    pub elapsed: Duration,
}

/// What `check` found. `is_consistent()` is the verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CheckReport {
    /// Index entries examined.
    pub shards: u64,
    /// Data bytes read and verified.
    pub verified_bytes: u64,
    /// Shards whose record fails verification.
    pub corrupt: Vec<ShardId>,
    /// Structural problems (index entries pointing nowhere, figures that disagree, files the
    /// store does not know).
    pub problems: Vec<String>,
}

impl CheckReport {
    /// No corrupt shard and no structural problem.
    pub fn is_consistent(&self) -> bool {
        self.corrupt.is_empty() && self.problems.is_empty()
    }
}

impl ShardStore {
    /// Re-reads the shard and checks it against its hash.
    pub async fn verify(&self, id: &ShardId) -> Result<(), StoreError> {
        self.get(id).await.map(|_| ())
    }

    /// Verifies every shard, reading at most `budget_bytes_per_s` on average (0 = unlimited),
    /// and returns the corrupt ones. Corrupt shards stay in the index so that the caller can
    /// decide; other errors (I/O) end the pass.
    pub async fn scrub(&self, budget_bytes_per_s: u64) -> Result<ScrubReport, StoreError> {
        let start = Instant::now();
        let mut report = ScrubReport::default();
        for id in self.list() {
            match self.get(&id).await {
                Ok(d) => report.bytes += d.len() as u64,
                Err(StoreError::Corrupt { reason, .. }) => {
                    tracing::warn!(shard = %id, %reason, "scrub: corrupt shard");
                    report.corrupt.push(id);
                }
                Err(StoreError::NotFound(_)) => {
                    report.vanished += 1;
                    continue;
                }
                Err(e) => return Err(e),
            }
            report.checked += 1;
            if budget_bytes_per_s > 0 {
                let due = Duration::from_secs_f64(report.bytes as f64 / budget_bytes_per_s as f64);
                let spent = start.elapsed();
                if due > spent {
                    tokio::time::sleep(due - spent).await;
                }
            }
        }
        report.elapsed = start.elapsed();
        Ok(report)
    }

    /// Full consistency check: every index entry points inside an existing segment, the
    /// in-memory figures equal those recomputed from the index, every segment file is known
    /// and has a watermark within it, and every shard reads back verified.
    pub async fn check(&self) -> Result<CheckReport, StoreError> {
        let shared = self.shared();
        let mut report = CheckReport::default();
        let mut entries = Vec::new();
        {
            let accounts = shared.lock();
            let mut lens = BTreeMap::new();
            for (n, f) in shared.segments.all() {
                lens.insert(n, file_len(&f)?);
            }
            let mut recomputed = Accounts::default();
            shared.index.for_each(|id, loc| {
                match loc {
                    None => report
                        .problems
                        .push(format!("malformed index entry for {id}")),
                    Some(l) => match lens.get(&l.segment) {
                        None => report
                            .problems
                            .push(format!("{id} points at missing segment {}", l.segment)),
                        Some(len) if l.offset + l.record_len() > *len => report
                            .problems
                            .push(format!("{id} points past the end of segment {}", l.segment)),
                        Some(_) => {
                            recomputed.add(&l);
                            entries.push((id, l));
                        }
                    },
                }
                true
            })?;
            report.shards = entries.len() as u64;
            if recomputed.shards != accounts.shards
                || recomputed.live_data_bytes != accounts.live_data_bytes
            {
                report.problems.push(format!(
                    "figures disagree: index has {} shards / {} bytes, memory {} / {}",
                    recomputed.shards,
                    recomputed.live_data_bytes,
                    accounts.shards,
                    accounts.live_data_bytes
                ));
            }
            for (n, s) in &recomputed.segments {
                let mem = accounts.segments.get(n).copied().unwrap_or_default();
                if mem.live_bytes != s.live_bytes || mem.live_records != s.live_records {
                    report
                        .problems
                        .push(format!("segment {n}: live figures disagree with the index"));
                }
            }
            let marks: BTreeMap<u32, u64> = shared.index.watermarks()?.into_iter().collect();
            for (n, len) in &lens {
                if let Some(w) = marks.get(n) {
                    if w > len {
                        report
                            .problems
                            .push(format!("segment {n}: watermark {w} past its end {len}"));
                    }
                }
                if !accounts.segments.contains_key(n) {
                    report
                        .problems
                        .push(format!("segment {n} is not accounted"));
                }
            }
            for n in marks.keys() {
                if !lens.contains_key(n) {
                    report
                        .problems
                        .push(format!("watermark for missing segment {n}"));
                }
            }
            let on_disk: Vec<u32> = std::fs::read_dir(shared.segments.dir())
                .map_err(|e| StoreError::io("listing segments", e))?
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|s| s.strip_suffix(".seg"))
                        .and_then(|s| s.parse().ok())
                })
                .collect();
            for n in on_disk {
                if !lens.contains_key(&n) {
                    report
                        .problems
                        .push(format!("segment file {n} is not open in the store"));
                }
            }
        }
        for (id, _) in entries {
            match self.get(&id).await {
                Ok(d) => report.verified_bytes += d.len() as u64,
                Err(StoreError::Corrupt { .. }) => report.corrupt.push(id),
                Err(StoreError::NotFound(_)) => {} // deleted since
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }
}
