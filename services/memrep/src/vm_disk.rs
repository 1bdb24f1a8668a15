//! A VM's disk: where its image comes from (a local file or a file of the mesh store), the
//! checks it must pass (present, raw, a whole number of 4 KiB pages, within the tmpfs budget),
//! and its copy into the VM's raw disk file in /dev/shm, beside the RAM file. memrep maps that
//! file like the RAM and sends its changed pages in the same epochs (docs/memrep.md, "Disks").
//! A failed preparation removes the half-made file: nothing is left in /dev/shm.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

/// Disk files are scanned and replicated in pages of this size.
pub const PAGE: u64 = 4096;

/// The prefix naming a file of the mesh store (`hyphae put` paths).
pub const MESH_PREFIX: &str = "mesh:";

/// Where a VM's disk image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskSource {
    /// A file on this node (absolute path).
    Local(PathBuf),
    /// A file of the mesh store, fetched through the node's chunkstore socket.
    Mesh(String),
}

/// Why a disk could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The source is not a usable name.
    #[error("disk {0}")]
    BadSource(String),
    /// The image does not exist.
    #[error("disk image {0}: not found")]
    Missing(String),
    /// The image is in a format other than raw.
    #[error(
        "disk image {path} is {format}, not raw: convert it first (qemu-img convert -O raw IN OUT)"
    )]
    NotRaw {
        /// The image.
        path: String,
        /// What it looks like.
        format: &'static str,
    },
    /// The image's size cannot be a disk here.
    #[error("disk image {path}: {why}")]
    Size {
        /// The image.
        path: String,
        /// Why.
        why: String,
    },
    /// The disk would not fit the tmpfs budget.
    #[error("disk image {path} is {size} bytes; this node's /dev/shm budget for it is {budget} bytes (half the free tmpfs, less the VM's RAM)")]
    TooBig {
        /// The image.
        path: String,
        /// Its size.
        size: u64,
        /// The budget.
        budget: u64,
    },
    /// The mesh store failed.
    #[error("disk image {path} from the mesh store: {message}")]
    Store {
        /// The mesh path.
        path: String,
        /// What the chunkstore said.
        message: String,
    },
    /// Local file I/O.
    #[error("disk {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DiskError + '_ {
    move |source| DiskError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl DiskSource {
    /// Parses `mesh:/PATH` or an absolute local path.
    pub fn parse(s: &str) -> Result<DiskSource, DiskError> {
        if s.contains(|c: char| c.is_control()) {
            return Err(DiskError::BadSource(format!(
                "{s:?}: control characters in the name"
            )));
        }
        if let Some(p) = s.strip_prefix(MESH_PREFIX) {
            let p = p.trim_start_matches('/');
            if p.is_empty() || p.split('/').any(|seg| seg.is_empty() || seg == "..") {
                return Err(DiskError::BadSource(format!(
                    "{s:?}: not a mesh file path (mesh:/DIR/FILE)"
                )));
            }
            return Ok(DiskSource::Mesh(format!("/{p}")));
        }
        let path = PathBuf::from(s);
        if !path.is_absolute() {
            return Err(DiskError::BadSource(format!(
                "{s:?}: give an absolute path or mesh:/PATH"
            )));
        }
        Ok(DiskSource::Local(path))
    }

    /// How status and errors name it.
    pub fn display(&self) -> String {
        match self {
            DiskSource::Local(p) => p.display().to_string(),
            DiskSource::Mesh(p) => format!("{MESH_PREFIX}{p}"),
        }
    }
}

/// The format an image's first bytes announce, if it is a known non-raw format (raw images
/// have no header, so anything else is taken as raw).
pub fn sniff_format(head: &[u8]) -> Option<&'static str> {
    let at = |off: usize, magic: &[u8]| head.get(off..off + magic.len()) == Some(magic);
    if at(0, b"QFI\xfb") {
        Some("qcow2")
    } else if at(0, b"QFI\x00") || at(0, b"QEVM") {
        Some("qcow")
    } else if at(0, b"QED\x00") {
        Some("qed")
    } else if at(0, b"KDMV") || at(0, b"# Disk DescriptorFile") {
        Some("vmdk")
    } else if at(0, b"vhdxfile") {
        Some("vhdx")
    } else if at(0, b"conectix") {
        Some("vpc (vhd)")
    } else if at(0x40, &[0x7f, 0x10, 0xda, 0xbe]) {
        Some("vdi")
    } else {
        None
    }
}

/// Checks a disk size: not empty, whole pages, within `budget`.
pub fn check_size(name: &str, size: u64, budget: u64) -> Result<(), DiskError> {
    if size == 0 {
        return Err(DiskError::Size {
            path: name.into(),
            why: "empty".into(),
        });
    }
    if !size.is_multiple_of(PAGE) {
        return Err(DiskError::Size {
            path: name.into(),
            why: format!("{size} bytes is not a multiple of 4096 (pad it: truncate -s %4K)"),
        });
    }
    if size > budget {
        return Err(DiskError::TooBig {
            path: name.into(),
            size,
            budget,
        });
    }
    Ok(())
}

/// The most disk a VM with `ram_bytes` of RAM may have on this node: half of the free space of
/// the tmpfs holding `shm_dir` (replicas of other VMs live there too), less the VM's RAM file.
pub fn tmpfs_budget(shm_dir: &Path, ram_bytes: u64) -> u64 {
    let probe = if shm_dir.exists() {
        shm_dir
    } else {
        shm_dir.parent().unwrap_or(Path::new("/dev/shm"))
    };
    (free_bytes(probe) / 2).saturating_sub(ram_bytes)
}

/// Free bytes (for unprivileged use) of the file system holding `path`; 0 if unknown.
fn free_bytes(path: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return 0;
    };
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: a valid C string and a buffer of the right type; the result is read only on success.
    if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return 0;
    }
    // SAFETY: statvfs returned 0, so it filled the buffer.
    let st = unsafe { st.assume_init() };
    st.f_bavail.saturating_mul(st.f_frsize)
}

/// Copies the image `source` into the raw disk file `dest` (created; replaced if present),
/// fetching mesh files through the chunkstore at `chunkstore_socket`. Returns the disk size.
/// On any error `dest` is removed.
pub async fn prepare(
    source: &DiskSource,
    dest: &Path,
    budget: u64,
    chunkstore_socket: &Path,
) -> Result<u64, DiskError> {
    let _ = std::fs::remove_file(dest);
    let result = match source {
        DiskSource::Local(p) => copy_local(p, dest, budget).await,
        DiskSource::Mesh(p) => fetch_mesh(p, dest, budget, chunkstore_socket).await,
    };
    if result.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    result
}

fn check_head(name: &str, file: &Path) -> Result<(), DiskError> {
    use std::io::Read;
    let mut head = Vec::with_capacity(512);
    std::fs::File::open(file)
        .map_err(io(file))?
        .take(512)
        .read_to_end(&mut head)
        .map_err(io(file))?;
    match sniff_format(&head) {
        Some(format) => Err(DiskError::NotRaw {
            path: name.into(),
            format,
        }),
        None => Ok(()),
    }
}

async fn copy_local(src: &Path, dest: &Path, budget: u64) -> Result<u64, DiskError> {
    let name = src.display().to_string();
    let meta = match std::fs::metadata(src) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(DiskError::Missing(name)),
        Err(e) => return Err(io(src)(e)),
    };
    if !meta.is_file() {
        return Err(DiskError::Size {
            path: name,
            why: "not a regular file".into(),
        });
    }
    // The format first: a qcow2 image is "not raw", whatever its size.
    check_head(&name, src)?;
    check_size(&name, meta.len(), budget)?;
    let (s, d) = (src.to_path_buf(), dest.to_path_buf());
    tokio::task::spawn_blocking(move || std::fs::copy(&s, &d))
        .await
        .map_err(|e| DiskError::Io {
            path: dest.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?
        .map_err(io(dest))?;
    Ok(meta.len())
}

async fn fetch_mesh(path: &str, dest: &Path, budget: u64, socket: &Path) -> Result<u64, DiskError> {
    let name = format!("{MESH_PREFIX}{path}");
    let store = |message: String| DiskError::Store {
        path: path.to_string(),
        message,
    };
    let stream = tokio::net::UnixStream::connect(socket).await.map_err(|e| {
        store(format!(
            "chunkstore not reachable at {}: {e}",
            socket.display()
        ))
    })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| store(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let uri = hyphae_core::mesh_path::route_uri("/files", path);
    let req = hyper::Request::get(uri)
        .header(hyper::header::HOST, "localhost")
        .body(Empty::<Bytes>::new())
        .map_err(|e| store(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| store(e.to_string()))?;
    let status = resp.status();
    if status == hyper::StatusCode::NOT_FOUND {
        return Err(DiskError::Missing(name));
    }
    if !status.is_success() {
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        return Err(store(format!("{status}: {}", body.trim())));
    }
    let announced = resp
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(size) = announced.filter(|&s| s > budget) {
        return Err(DiskError::TooBig {
            path: name,
            size,
            budget,
        });
    }
    let mut file = tokio::fs::File::create(dest).await.map_err(io(dest))?;
    let mut body = resp.into_body();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| store(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if total > budget {
                return Err(DiskError::TooBig {
                    path: name,
                    size: announced.unwrap_or(total),
                    budget,
                });
            }
            file.write_all(&data).await.map_err(io(dest))?;
        }
    }
    file.flush().await.map_err(io(dest))?;
    drop(file);
    if announced.is_some_and(|a| a != total) {
        return Err(store(format!(
            "transfer ended after {total} of {} bytes",
            announced.unwrap_or(0)
        )));
    }
    check_head(&name, dest)?;
    check_size(&name, total, budget)?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        assert_eq!(
            DiskSource::parse("mesh:/vm/disk.raw").unwrap(),
            DiskSource::Mesh("/vm/disk.raw".into())
        );
        assert_eq!(
            DiskSource::parse("mesh:vm/disk.raw").unwrap(),
            DiskSource::Mesh("/vm/disk.raw".into())
        );
        assert_eq!(
            DiskSource::parse("/srv/img.raw").unwrap(),
            DiskSource::Local("/srv/img.raw".into())
        );
        for bad in [
            "mesh:",
            "mesh:/",
            "mesh:/a//b",
            "mesh:/a/../b",
            "img.raw",
            "/a\nb",
        ] {
            assert!(DiskSource::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            DiskSource::parse("mesh:/a b").unwrap().display(),
            "mesh:/a b"
        );
    }

    #[test]
    fn formats_are_recognised() {
        assert_eq!(sniff_format(b"QFI\xfb\0\0\0\x03"), Some("qcow2"));
        assert_eq!(sniff_format(b"KDMV...."), Some("vmdk"));
        assert_eq!(sniff_format(b"vhdxfile"), Some("vhdx"));
        let mut vdi = vec![0u8; 0x48];
        vdi[0x40..0x44].copy_from_slice(&[0x7f, 0x10, 0xda, 0xbe]);
        assert_eq!(sniff_format(&vdi), Some("vdi"));
        assert_eq!(sniff_format(&[0u8; 512]), None);
        assert_eq!(sniff_format(b""), None);
    }

    #[test]
    fn sizes_are_checked() {
        check_size("d", 8192, 8192).unwrap();
        assert!(matches!(
            check_size("d", 0, 1 << 20),
            Err(DiskError::Size { .. })
        ));
        assert!(matches!(
            check_size("d", 4097, 1 << 20),
            Err(DiskError::Size { .. })
        ));
        assert!(matches!(
            check_size("d", 1 << 21, 1 << 20),
            Err(DiskError::TooBig { .. })
        ));
    }

    #[tokio::test]
    async fn a_local_image_is_copied_and_bad_ones_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("vm.disk");
        let sock = dir.path().join("none.sock");
        let good = dir.path().join("good.raw");
        std::fs::write(&good, vec![7u8; 3 * PAGE as usize]).unwrap();
        let src = DiskSource::Local(good);
        assert_eq!(
            prepare(&src, &dest, 1 << 20, &sock).await.unwrap(),
            3 * PAGE
        );
        assert_eq!(std::fs::read(&dest).unwrap(), vec![7u8; 3 * PAGE as usize]);
        let qcow = dir.path().join("img.qcow2");
        let mut q = b"QFI\xfb".to_vec();
        q.resize(PAGE as usize, 0);
        std::fs::write(&qcow, q).unwrap();
        let err = prepare(&DiskSource::Local(qcow), &dest, 1 << 20, &sock)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("qcow2"), "{err}");
        assert!(!dest.exists());
        let err = prepare(
            &DiskSource::Local(dir.path().join("nope.raw")),
            &dest,
            1 << 20,
            &sock,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, DiskError::Missing(_)), "{err}");
        let err = prepare(&src, &dest, PAGE, &sock).await.unwrap_err();
        assert!(matches!(err, DiskError::TooBig { .. }), "{err}");
        assert!(!dest.exists());
        let err = prepare(&DiskSource::Mesh("/x.raw".into()), &dest, 1 << 20, &sock)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("chunkstore not reachable"),
            "{err}"
        );
        assert!(!dest.exists());
    }
}
