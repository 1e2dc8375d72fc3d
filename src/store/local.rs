//! Content-addressed files on the local disk: `<root>/ab/cdef…` for sha256
//! `abcdef…`, written to a temporary file, fsynced and renamed into place.
//! The blocking file work runs on tokio's blocking pool.

use std::io::{Read, Seek, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio_util::io::ReaderStream;

use super::{digest_key, ArtifactStore, Opened, StoreError};

/// The store under a directory of the data directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `root` (created if needed).
    pub fn open(root: &Path) -> std::io::Result<LocalStore> {
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(LocalStore { root: root.to_path_buf() })
    }

    fn path(&self, sha256: &str) -> Result<PathBuf, StoreError> {
        Ok(self.root.join(digest_key(sha256)?))
    }

    fn put_blocking(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let path = self.path(&sha256)?;
        if path.is_file() {
            return Ok(sha256);
        }
        std::fs::create_dir_all(path.parent().expect("has a parent"))?;
        let mut tmp = tempfile::NamedTempFile::new_in(self.root.join("tmp"))?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&path).map_err(|e| e.error)?;
        // The rename is durable only once its directory is.
        std::fs::File::open(path.parent().expect("has a parent"))?.sync_all()?;
        Ok(sha256)
    }

    fn put_file_blocking(&self, path: &Path) -> Result<(String, u64), StoreError> {
        let (sha256, size) = hash_file(path)?;
        let target = self.path(&sha256)?;
        if target.is_file() {
            return Ok((sha256, size));
        }
        std::fs::create_dir_all(target.parent().expect("has a parent"))?;
        // Moved rather than copied: one file fewer to write. The file is
        // synced first, so the name never points at lost bytes.
        std::fs::File::open(path)?.sync_all()?;
        match std::fs::rename(path, &target) {
            Ok(()) => {
                std::fs::File::open(target.parent().expect("has a parent"))?.sync_all()?;
                Ok((sha256, size))
            }
            // On another filesystem: copy through a temporary file.
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                let mut tmp = tempfile::NamedTempFile::new_in(self.root.join("tmp"))?;
                std::io::copy(&mut std::fs::File::open(path)?, &mut tmp)?;
                tmp.as_file().sync_all()?;
                tmp.persist(&target).map_err(|e| e.error)?;
                std::fs::File::open(target.parent().expect("has a parent"))?.sync_all()?;
                Ok((sha256, size))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The sha256 and size of the file at `path`, read a block at a time.
pub(super) fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Runs `work` on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| StoreError::Io(std::io::Error::other(e)))?
}

#[async_trait::async_trait]
impl ArtifactStore for LocalStore {
    #[tracing::instrument(skip_all, err)]
    async fn put(&self, bytes: Bytes) -> Result<String, StoreError> {
        let store = self.clone();
        blocking(move || store.put_blocking(&bytes)).await
    }

    #[tracing::instrument(skip_all, err)]
    async fn put_file(&self, path: &Path) -> Result<(String, u64), StoreError> {
        let (store, path) = (self.clone(), path.to_path_buf());
        blocking(move || store.put_file_blocking(&path)).await
    }

    async fn size(&self, sha256: &str) -> Result<Option<u64>, StoreError> {
        let path = self.path(sha256)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    #[tracing::instrument(skip(self), err)]
    async fn open(&self, sha256: &str, range: Option<Range<u64>>) -> Result<Opened, StoreError> {
        let path = self.path(sha256)?;
        open_file(&path, range).await.map_err(|e| match e {
            StoreError::Io(e) if e.kind() == std::io::ErrorKind::NotFound => StoreError::NotFound(sha256.to_string()),
            other => other,
        })
    }
}

/// Opens the file at `path` for streaming: all of it, or `range` (which must
/// lie within it).
pub async fn open_file(path: &Path, range: Option<Range<u64>>) -> Result<Opened, StoreError> {
    let (path, asked) = (path.to_path_buf(), range.clone());
    let (file, size) = blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let size = file.metadata()?.len();
        if let Some(range) = &asked {
            if range.start > range.end || range.end > size {
                return Err(StoreError::Corrupt(format!("range {range:?} is outside {size} bytes")));
            }
            file.seek(std::io::SeekFrom::Start(range.start))?;
        }
        Ok((file, size))
    })
    .await?;
    let wanted = range.map_or(size, |r| r.end - r.start);
    let reader = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), wanted);
    let stream = ReaderStream::new(reader).map(|chunk| chunk.map_err(StoreError::from)).boxed();
    Ok(Opened { size, stream })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stores_a_file_by_moving_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(&dir.path().join("store")).unwrap();
        let built = dir.path().join("pymult.whl");
        std::fs::write(&built, b"wheel bytes").unwrap();
        let (hash, size) = store.put_file(&built).await.unwrap();
        assert_eq!((hash.as_str(), size), (hex::encode(Sha256::digest(b"wheel bytes")).as_str(), 11));
        assert!(!built.exists(), "moved, not copied");
        // Already stored: the file is left where it is.
        std::fs::write(&built, b"wheel bytes").unwrap();
        assert_eq!(store.put_file(&built).await.unwrap().0, hash);
        assert!(built.exists());
        assert_eq!(std::fs::read_dir(dir.path().join("store/tmp")).unwrap().count(), 0);
    }
}
