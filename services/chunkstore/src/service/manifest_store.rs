//! Reading and writing manifests in the coordinator, whole or split (see
//! [`crate::manifest_split`]): a reader always gets the whole [`Manifest`], whichever form is
//! stored; a writer commits segments first and the root last; a delete or a replacement drops
//! the segments after the root.

use rand::RngCore;

use super::errors::FilesError;
use super::state::Shared;
use super::tables::{FILES, FILE_SEGMENTS};
use crate::coordinator_client::CoordError;
use crate::manifest::Manifest;
use crate::manifest_split::{needs_split, split, ManifestSegment, StoredManifest};

/// A file's manifest as read: the whole chunk list, the root's version (for compare-and-set)
/// and the keys of its segments (empty when stored whole).
#[derive(Debug, Clone)]
pub struct LoadedManifest {
    /// Every chunk of the file.
    pub manifest: Manifest,
    /// Version of `files/<path>`.
    pub version: u64,
    /// Keys in `file_segments` (a split manifest's).
    pub segment_keys: Vec<String>,
}

/// Reads a key: linearizable (a put acknowledged anywhere is seen) when the coordinator has a
/// quorum, else this node's applied state, so files stay readable while it cannot commit.
async fn read_key(
    store: &Shared,
    table: &str,
    key: &str,
) -> Result<Option<(String, u64)>, FilesError> {
    match store.coord.get(table, key, true).await {
        Ok(v) => Ok(v),
        Err(e) => {
            tracing::warn!(table, key, error = %e, "linearizable read failed; using this node's state");
            Ok(store.coord.get(table, key, false).await?)
        }
    }
}

/// Decodes a `files` value and, for a split manifest, reads and joins its segments.
pub async fn resolve(store: &Shared, path: &str, text: &str) -> Result<Manifest, FilesError> {
    let bad = |e: crate::manifest::ManifestError| FilesError::Internal(format!("{path}: {e}"));
    match StoredManifest::from_json(text).map_err(bad)? {
        StoredManifest::Inline(m) => Ok(m),
        StoredManifest::Split(root) => {
            let mut segments = Vec::with_capacity(root.segments.len());
            for r in &root.segments {
                let Some((text, _)) = read_key(store, FILE_SEGMENTS, &r.key).await? else {
                    return Err(FilesError::Internal(format!(
                        "{path}: manifest segment {} is missing",
                        r.key
                    )));
                };
                segments.push(ManifestSegment::from_json(&text).map_err(bad)?);
            }
            root.join(segments).map_err(bad)
        }
    }
}

/// Reads a file's whole manifest; `NotFound` when there is none.
#[tracing::instrument(level = "debug", skip(store))]
pub async fn load(store: &Shared, path: &str) -> Result<LoadedManifest, FilesError> {
    let Some((text, version)) = read_key(store, FILES, path).await? else {
        return Err(FilesError::NotFound(path.to_string()));
    };
    let segment_keys = StoredManifest::from_json(&text)
        .map(|s| s.segment_keys())
        .unwrap_or_default();
    let manifest = resolve(store, path, &text).await?;
    Ok(LoadedManifest {
        manifest,
        version,
        segment_keys,
    })
}

/// Removes segments (best effort: a leftover segment is unreferenced metadata, never data).
pub async fn delete_segments(store: &Shared, keys: &[String]) {
    for key in keys {
        if let Err(e) = store.coord.delete(FILE_SEGMENTS, key).await {
            tracing::warn!(key, error = %e, "could not remove a manifest segment");
        }
    }
}

/// Commits `manifest` at `files/<path>` if that key is still at `expect` (0 = absent). A
/// manifest over `[storage] manifest_value_bytes` is split: its segments are written first
/// (under a fresh put id), then the root; if the root cannot be committed the segments are
/// removed again.
#[tracing::instrument(level = "debug", skip(store, manifest), fields(path = %manifest.path, chunks = manifest.chunks.len()))]
pub async fn commit(store: &Shared, manifest: &Manifest, expect: u64) -> Result<(), FilesError> {
    let max = usize::try_from(store.config.manifest_value_bytes).unwrap_or(usize::MAX);
    let path = &manifest.path;
    let conflict = |e: CoordError| match e {
        CoordError::Conflict => FilesError::Conflict,
        other => other.into(),
    };
    if !needs_split(manifest, max) {
        store
            .coord
            .put_settled(FILES, path, &manifest.to_json(), Some(expect))
            .await
            .map_err(conflict)?;
        return Ok(());
    }
    let mut id = [0u8; 16];
    rand::rng().fill_bytes(&mut id);
    let put_id = data_encoding::HEXLOWER.encode(&id);
    let (root, segments) = split(manifest, &put_id, max);
    let mut written: Vec<String> = Vec::with_capacity(segments.len());
    for (seg, r) in segments.iter().zip(&root.segments) {
        if let Err(e) = store
            .coord
            .put_settled(FILE_SEGMENTS, &r.key, &seg.to_json(), Some(0))
            .await
        {
            delete_segments(store, &written).await;
            return Err(e.into());
        }
        written.push(r.key.clone());
    }
    if let Err(e) = store
        .coord
        .put_settled(FILES, path, &root.to_json(), Some(expect))
        .await
    {
        delete_segments(store, &written).await;
        return Err(conflict(e));
    }
    tracing::info!(path, segments = written.len(), "split manifest committed");
    Ok(())
}
