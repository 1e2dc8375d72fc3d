//! Content-addressed files on the local disk: `<root>/ab/cdef…` for sha256
//! `abcdef…`, written to a temporary file, fsynced and renamed into place.

use std::io::Write;
use std::path::{Path, PathBuf};

use wheelwright_workers::wheel::sha256_hex;

use super::ArtifactStore;

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

    fn path(&self, sha256: &str) -> Option<PathBuf> {
        let valid = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| self.root.join(&sha256[..2]).join(&sha256[2..]))
    }
}

impl ArtifactStore for LocalStore {
    fn put(&self, bytes: &[u8]) -> std::io::Result<String> {
        let sha256 = sha256_hex(bytes);
        let path = self.path(&sha256).expect("a digest is a valid name");
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

    fn put_file(&self, path: &Path) -> std::io::Result<(String, u64)> {
        let bytes = std::fs::read(path)?;
        let sha256 = sha256_hex(&bytes);
        let size = bytes.len() as u64;
        let target = self.path(&sha256).expect("a digest is a valid name");
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
            Err(e) if e.raw_os_error() == Some(libc_exdev()) => Ok((self.put(&bytes)?, size)),
            Err(e) => Err(e),
        }
    }

    fn get(&self, sha256: &str) -> std::io::Result<Vec<u8>> {
        let path = self.path(sha256).ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "bad digest"))?;
        std::fs::read(path)
    }

    fn contains(&self, sha256: &str) -> bool {
        self.path(sha256).is_some_and(|p| p.is_file())
    }
}

/// EXDEV on Linux: a rename across filesystems.
const fn libc_exdev() -> i32 {
    18
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let hash = store.put(b"wheel").unwrap();
        assert_eq!(hash, sha256_hex(b"wheel"));
        assert_eq!(store.put(b"wheel").unwrap(), hash);
        assert_eq!(store.get(&hash).unwrap(), b"wheel");
        assert!(store.contains(&hash));
        assert!(!store.contains("../../etc/passwd"));
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn stores_a_file_by_moving_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(&dir.path().join("store")).unwrap();
        let built = dir.path().join("pymult.whl");
        std::fs::write(&built, b"wheel bytes").unwrap();
        let (hash, size) = store.put_file(&built).unwrap();
        assert_eq!((hash.as_str(), size), (sha256_hex(b"wheel bytes").as_str(), 11));
        assert_eq!(store.get(&hash).unwrap(), b"wheel bytes");
        assert!(!built.exists(), "moved, not copied");
        // Already stored: the file is left where it is.
        std::fs::write(&built, b"wheel bytes").unwrap();
        assert_eq!(store.put_file(&built).unwrap().0, hash);
        assert_eq!(store.get(&hash).unwrap(), b"wheel bytes");
    }
}
