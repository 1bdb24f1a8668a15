//! Mesh files through this node's chunkstore socket (`<run>/chunkstore.sock`, `/files/...`).

use std::path::{Path, PathBuf};

use hyphae_core::ipc::{self, Method};
use hyphae_core::mesh_path::route_uri;

/// Why a mesh file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// No such file.
    #[error("mesh file {0} does not exist")]
    Missing(String),
    /// The chunkstore could not be reached or refused.
    #[error("chunkstore: {0}")]
    Store(String),
}

/// The client of one node's chunkstore socket.
#[derive(Debug, Clone)]
pub struct MeshFiles {
    socket: PathBuf,
}

impl MeshFiles {
    /// Talks to the chunkstore at `socket`.
    pub fn new(socket: &Path) -> MeshFiles {
        MeshFiles {
            socket: socket.to_path_buf(),
        }
    }

    /// The whole file.
    pub async fn get(&self, path: &str) -> Result<Vec<u8>, FileError> {
        let (status, body) =
            ipc::request(&self.socket, Method::GET, &route_uri("/files", path), None)
                .await
                .map_err(|e| FileError::Store(e.to_string()))?;
        match status.as_u16() {
            200 => Ok(body.to_vec()),
            404 => Err(FileError::Missing(path.to_string())),
            s => Err(FileError::Store(format!(
                "{s}: {}",
                String::from_utf8_lossy(&body)
            ))),
        }
    }

    /// Writes (replaces) the file.
    pub async fn put(&self, path: &str, bytes: Vec<u8>) -> Result<(), FileError> {
        let (status, body) = ipc::request(
            &self.socket,
            Method::PUT,
            &route_uri("/files", path),
            Some(bytes),
        )
        .await
        .map_err(|e| FileError::Store(e.to_string()))?;
        if status.is_success() {
            Ok(())
        } else {
            Err(FileError::Store(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body)
            )))
        }
    }

    /// Removes the file (no error when absent).
    pub async fn delete(&self, path: &str) -> Result<(), FileError> {
        let (status, body) = ipc::request(
            &self.socket,
            Method::DELETE,
            &route_uri("/files", path),
            None,
        )
        .await
        .map_err(|e| FileError::Store(e.to_string()))?;
        if status.is_success() || status.as_u16() == 404 {
            Ok(())
        } else {
            Err(FileError::Store(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body)
            )))
        }
    }
}
