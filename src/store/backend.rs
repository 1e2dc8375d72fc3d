//! The build backend's wheel (`wheelwright-backend`, which every sdist
//! names), made once from this daemon's own binary and kept under
//! `<data>/backend/`, so that the daemon's index serves what building any of
//! its sdists needs, offline.

use std::path::PathBuf;

use tokio::sync::OnceCell;
use wheelwright_workers::backend;

/// The backend wheel as the index serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendFile {
    /// File name.
    pub filename: String,
    /// Where it is.
    pub path: PathBuf,
    /// Lowercase hex sha256.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// When this daemon made it (ms since 1970): its `upload-time`.
    pub made_at: i64,
}

/// Makes the wheel on first use (it holds the whole binary: a few seconds,
/// not at every start).
#[derive(Debug)]
pub struct BackendWheel {
    binary: PathBuf,
    dir: PathBuf,
    built: OnceCell<BackendFile>,
}

impl BackendWheel {
    /// The wheel of `binary` (a `wheelwright` executable), kept in `dir`.
    pub fn new(binary: PathBuf, dir: PathBuf) -> BackendWheel {
        BackendWheel { binary, dir, built: OnceCell::new() }
    }

    /// The wheel, made now if it is not yet.
    pub async fn get(&self) -> std::io::Result<BackendFile> {
        let made = self
            .built
            .get_or_try_init(|| async {
                let (binary, dir) = (self.binary.clone(), self.dir.clone());
                let artifact = tokio::task::spawn_blocking(move || backend::write_wheel(&binary, &dir))
                    .await
                    .map_err(std::io::Error::other)??;
                Ok::<_, std::io::Error>(BackendFile {
                    filename: artifact.filename,
                    path: artifact.path,
                    sha256: artifact.sha256,
                    size: artifact.size,
                    made_at: crate::db::now_ms(),
                })
            })
            .await?;
        Ok(made.clone())
    }
}
