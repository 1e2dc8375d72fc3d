//! Each build's project files, kept under `<data>/sources/<build id>/` for
//! its worker and for rebuilds. With a shared store the tree is also kept
//! there, as one tar per build written before the build row is recorded, so
//! that any daemon's worker can build it: the local directory is then a
//! cache, filled from the store by whichever daemon needs it and checked
//! against the tree's recorded sha256.

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{ArtifactStore, StoreError};

/// Largest source archive read back from the store: the upload limit's
/// expanded size, with room for tar's headers.
const MAX_SOURCE_TAR: u64 = 2 * crate::upload::MAX_EXPANDED + (64 << 20);

/// The source trees of every build.
#[derive(Clone)]
pub struct SourceTrees {
    dir: PathBuf,
    store: Arc<dyn ArtifactStore>,
}

impl std::fmt::Debug for SourceTrees {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceTrees").field("dir", &self.dir).field("shared", &self.store.is_shared()).finish()
    }
}

impl SourceTrees {
    /// The trees under `dir` (created if needed), also kept in `store` when it is shared.
    pub fn open(dir: &Path, store: Arc<dyn ArtifactStore>) -> std::io::Result<SourceTrees> {
        std::fs::create_dir_all(dir)?;
        Ok(SourceTrees { dir: dir.to_path_buf(), store })
    }

    /// Where build `id`'s tree is (once [`SourceTrees::materialise`]d).
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Writes build `id`'s files through a temporary sibling renamed into
    /// place, and into a shared store; returns the tree's sha256 (see
    /// [`tree_hash`]). On an error nothing of the tree is left.
    #[tracing::instrument(skip(self, files), err)]
    pub async fn write(&self, id: &str, files: Vec<(PathBuf, Vec<u8>)>) -> Result<String, StoreError> {
        let shared = self.store.is_shared();
        let (dir, tar) = (self.path(id), self.dir.join(format!("{id}.tar")));
        let hash = {
            let (dir, tar) = (dir.clone(), tar.clone());
            tokio::task::spawn_blocking(move || -> std::io::Result<String> {
                let mut sorted = files;
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                write_dir(&dir, &sorted)?;
                if shared {
                    write_tar(&tar, &sorted)?;
                }
                Ok(tree_hash(&sorted))
            })
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
        };
        let hash = match hash {
            Ok(hash) => hash,
            Err(e) => {
                self.remove_local(id);
                return Err(e.into());
            }
        };
        if shared {
            let sent = self.store.put_source(id, &tar).await;
            let _ = std::fs::remove_file(&tar);
            if let Err(e) = sent {
                self.remove_local(id);
                return Err(e);
            }
        }
        Ok(hash)
    }

    /// Makes sure build `id`'s tree is in its local directory: there
    /// already, or fetched from the shared store and checked against
    /// `sha256`, the hash recorded when it was submitted. Returns the directory.
    #[tracing::instrument(skip(self), err)]
    pub async fn materialise(&self, id: &str, sha256: &str) -> Result<PathBuf, StoreError> {
        let dir = self.path(id);
        if dir.is_dir() {
            return Ok(dir);
        }
        if !self.store.is_shared() {
            return Err(StoreError::NotFound(format!("sources/{id}")));
        }
        let opened = self.store.open_source(id).await?;
        if opened.size > MAX_SOURCE_TAR {
            return Err(StoreError::Corrupt(format!("the source archive of build {id} is {} bytes", opened.size)));
        }
        // Unique per caller: two workers (or a worker and a rebuild) may fetch at once.
        let scratch = tempfile::Builder::new().prefix(&format!("{id}.")).suffix(".fetch").tempdir_in(&self.dir)?;
        let tar = scratch.path().join("source.tar");
        let mut out = tokio::fs::File::create(&tar).await?;
        let mut stream = opened.stream;
        let mut received = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            received += chunk.len() as u64;
            if received > MAX_SOURCE_TAR {
                return Err(StoreError::Corrupt(format!("the source archive of build {id} is too large")));
            }
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
        drop(out);
        let (expected, target, id_owned) = (sha256.to_string(), dir.clone(), id.to_string());
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let files = read_tar(&tar)?;
            let got = tree_hash(&files);
            if got != expected {
                return Err(StoreError::Corrupt(format!(
                    "the source tree of build {id_owned} read back from the store has sha256 {got}, not the \
                     recorded {expected}"
                )));
            }
            let unpacked = scratch.path().join("tree");
            write_dir(&unpacked, &files)?;
            match std::fs::rename(&unpacked, &target) {
                Ok(()) => Ok(()),
                // Another fetch of the same tree finished first: same bytes.
                Err(_) if target.is_dir() => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))??;
        Ok(dir)
    }

    /// Reads build `id`'s files back (fetched first if need be), sorted by path.
    pub async fn read(&self, id: &str, sha256: &str) -> Result<Vec<(PathBuf, Vec<u8>)>, StoreError> {
        let dir = self.materialise(id, sha256).await?;
        tokio::task::spawn_blocking(move || read_tree(&dir))
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
            .map_err(StoreError::from)
    }

    /// Removes build `id`'s tree, here and in a shared store (a build that
    /// was never recorded). The store's copy goes in the background: this
    /// runs where nothing can wait (a drop).
    pub fn remove(&self, id: &str) {
        self.remove_local(id);
        if self.store.is_shared() {
            let (store, id) = (self.store.clone(), id.to_string());
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(e) = store.remove_source(&id).await {
                        tracing::warn!(build.id = %id, "removing an unrecorded build's sources failed: {e}");
                    }
                });
            }
        }
    }

    fn remove_local(&self, id: &str) {
        let _ = std::fs::remove_dir_all(self.path(id));
    }
}

/// Writes `files` into a new directory `dir` through a temporary sibling.
fn write_dir(dir: &Path, files: &[(PathBuf, Vec<u8>)]) -> std::io::Result<()> {
    let partial = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial)?;
    for (path, data) in files {
        let full = partial.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&full, data)?;
    }
    std::fs::rename(&partial, dir)
}

/// The tree as one canonical tar: sorted names, fixed modes and times, so
/// that the same files make the same bytes.
fn write_tar(path: &Path, files: &[(PathBuf, Vec<u8>)]) -> std::io::Result<()> {
    let mut builder = tar::Builder::new(std::io::BufWriter::new(std::fs::File::create(path)?));
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, name, data.as_slice())?;
    }
    let mut out = builder.into_inner()?;
    std::io::Write::flush(&mut out)?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()
}

/// The files of a tar this module wrote: regular files at relative, plain
/// paths only (anything else means the object is not ours).
fn read_tar(path: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>, StoreError> {
    let mut archive = tar::Archive::new(std::fs::File::open(path)?);
    let mut files = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.into_owned();
        let plain = name.components().all(|c| matches!(c, Component::Normal(_)));
        if entry.header().entry_type() != tar::EntryType::Regular || !plain {
            return Err(StoreError::Corrupt(format!("the source archive holds `{}`", name.display())));
        }
        let mut data = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut data)?;
        files.push((name, data));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// A tree's sha256: over each file's name and contents, in sorted order,
/// each length-prefixed. `files` must be sorted by path.
pub fn tree_hash(files: &[(PathBuf, Vec<u8>)]) -> String {
    let mut hasher = Sha256::new();
    for (path, data) in files {
        let name = path.to_string_lossy();
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update((data.len() as u64).to_le_bytes());
        hasher.update(data);
    }
    hex::encode(hasher.finalize())
}

/// Every regular file below `dir` with its path relative to it, sorted.
pub fn read_tree(dir: &Path) -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                let rel = entry.path().strip_prefix(dir).expect("below dir").to_path_buf();
                files.push((rel, std::fs::read(entry.path())?));
            }
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}
