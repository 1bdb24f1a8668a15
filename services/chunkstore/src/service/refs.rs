//! Reference counts on the `chunks` table: compare-and-set loops on the coordinator's versioned
//! keys, so concurrent writers on different nodes never lose an increment.

use super::errors::FilesError;
use super::state::Chunkstore;
use super::tables::CHUNKS;
use crate::coordinator_client::CoordError;
use crate::ids::ChunkId;
use crate::manifest::{ChunkLayout, ChunkRecord, ChunkState};

/// Seconds since the epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

const ATTEMPTS: usize = 50;

/// How long a put waits for the collector to finish reclaiming a chunk it wants again.
async fn wait_reclaim() {
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
}

impl Chunkstore {
    /// The current record of a chunk and its version.
    pub async fn chunk_record(
        &self,
        id: &ChunkId,
    ) -> Result<Option<(ChunkRecord, u64)>, FilesError> {
        let Some((text, version)) = self.coord.get(CHUNKS, &id.to_hex(), false).await? else {
            return Ok(None);
        };
        let record = serde_json::from_str(&text)
            .map_err(|e| FilesError::Internal(format!("chunk record {id}: {e}")))?;
        Ok(Some((record, version)))
    }

    /// Writes a chunk record if it is still at `version` (0 = absent). `Ok(false)`: lost a race.
    pub async fn cas_chunk(
        &self,
        id: &ChunkId,
        record: &ChunkRecord,
        version: u64,
    ) -> Result<bool, FilesError> {
        let text =
            serde_json::to_string(record).map_err(|e| FilesError::Internal(e.to_string()))?;
        match self
            .coord
            .put_settled(CHUNKS, &id.to_hex(), &text, Some(version))
            .await
        {
            Ok(_) => Ok(true),
            Err(CoordError::Conflict) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Dedup: if the chunk is stored already, adds `count` references and returns its record;
    /// `None` when it is not stored (the caller uploads it).
    pub async fn reuse_chunk(
        &self,
        id: &ChunkId,
        count: u64,
    ) -> Result<Option<ChunkRecord>, FilesError> {
        for _ in 0..ATTEMPTS {
            let Some((mut record, version)) = self.chunk_record(id).await? else {
                return Ok(None);
            };
            match record.state {
                ChunkState::Live => {}
                ChunkState::Reclaiming => {
                    wait_reclaim().await;
                    continue;
                }
                ChunkState::Reclaimed => return Ok(None),
            }
            record.refs += count;
            record.orphaned_unix = None;
            if self.cas_chunk(id, &record, version).await? {
                return Ok(Some(record));
            }
        }
        Err(FilesError::Conflict)
    }

    /// Records a freshly uploaded chunk with `count` references (or adds them, if another
    /// writer recorded it meanwhile). Returns the record now in force.
    pub async fn record_chunk(
        &self,
        id: &ChunkId,
        layout: ChunkLayout,
        count: u64,
    ) -> Result<ChunkRecord, FilesError> {
        for _ in 0..ATTEMPTS {
            let fresh = ChunkRecord {
                state: ChunkState::Live,
                layout: layout.clone(),
                refs: count,
                orphaned_unix: None,
            };
            let (record, version) = match self.chunk_record(id).await? {
                Some((mut r, v)) if r.state == ChunkState::Live => {
                    r.refs += count;
                    r.orphaned_unix = None;
                    (r, v)
                }
                Some((r, v)) if r.state == ChunkState::Reclaimed => (fresh, v),
                Some(_) => {
                    wait_reclaim().await;
                    continue;
                }
                None => (fresh, 0),
            };
            if self.cas_chunk(id, &record, version).await? {
                return Ok(record);
            }
        }
        Err(FilesError::Conflict)
    }

    /// Drops `count` references; at zero the chunk becomes garbage after the grace period.
    pub async fn release_chunk(&self, id: &ChunkId, count: u64) -> Result<(), FilesError> {
        for _ in 0..ATTEMPTS {
            let Some((mut record, version)) = self.chunk_record(id).await? else {
                return Ok(());
            };
            if record.state != ChunkState::Live {
                return Ok(());
            }
            record.refs = record.refs.saturating_sub(count);
            if record.refs == 0 {
                record.orphaned_unix = Some(now_unix());
            }
            if self.cas_chunk(id, &record, version).await? {
                return Ok(());
            }
        }
        Err(FilesError::Conflict)
    }
}
