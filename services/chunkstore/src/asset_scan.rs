//! Scanning `[share] dirs`: every regular file under them (symlinks are not followed), hashed
//! with BLAKE3. Blocking; the service runs it on the blocking pool.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::assets::{AssetRecord, ScannedAsset};

/// Files deeper than this under a shared directory are not scanned (a loop guard).
const MAX_DEPTH: usize = 32;

/// BLAKE3 of a file's bytes (hex), read in 1 MiB pieces.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hasher.finalize().to_hex().to_string(), size))
}

fn walk(root: &Path, dir: &Path, depth: usize, out: &mut Vec<ScannedAsset>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "shared directory not readable");
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() && depth < MAX_DEPTH {
            walk(root, &path, depth + 1, out);
        } else if meta.is_file() {
            let Some(name) = path
                .strip_prefix(root)
                .ok()
                .and_then(|p| p.to_str())
                .map(|s| s.replace(std::path::MAIN_SEPARATOR, "/"))
            else {
                continue;
            };
            match hash_file(&path) {
                Ok((hash, size)) => out.push(ScannedAsset {
                    hash,
                    record: AssetRecord { name, size },
                    path,
                }),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "shared file not readable")
                }
            }
        }
    }
}

/// Every regular file under `dirs`, hashed, in path order. Unreadable entries are skipped
/// (logged), so one bad file does not hide the others.
pub fn scan(dirs: &[PathBuf]) -> Vec<ScannedAsset> {
    let mut out = Vec::new();
    for dir in dirs {
        walk(dir, dir, 0, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_nested_files_with_relative_names_and_hashes() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("sub/deeper")).unwrap();
        std::fs::write(tmp.path().join("a.txt"), b"hello").unwrap();
        std::fs::write(tmp.path().join("sub/deeper/b.bin"), vec![1u8; 3 << 20]).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(tmp.path().join("a.txt"), tmp.path().join("link")).unwrap();
        let got = scan(&[tmp.path().to_path_buf()]);
        let names: Vec<&str> = got.iter().map(|a| a.record.name.as_str()).collect();
        assert_eq!(names, vec!["a.txt", "sub/deeper/b.bin"]);
        assert_eq!(got[0].hash, blake3::hash(b"hello").to_hex().to_string());
        assert_eq!(got[1].record.size, 3 << 20);
        assert_eq!(
            got[1].hash,
            blake3::hash(&vec![1u8; 3 << 20]).to_hex().to_string()
        );
        // A missing directory is skipped, not fatal.
        assert!(scan(&[tmp.path().join("missing")]).is_empty());
    }
}
