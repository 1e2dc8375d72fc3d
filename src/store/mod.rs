//! The artifact store: files addressed by the sha256 of their bytes, behind
//! a small trait so that an object store can take the local one's place;
//! and the builds' source trees.

mod backend;
mod local;
mod sources;

pub use backend::{BackendFile, BackendWheel};
pub use local::LocalStore;
pub use sources::{read_tree, SourceTrees};

/// Where built artifacts are kept.
pub trait ArtifactStore: Send + Sync + 'static {
    /// Stores `bytes` and returns their lowercase hex sha256. Storing the same
    /// bytes twice is harmless; a crash never leaves a partial file visible.
    fn put(&self, bytes: &[u8]) -> std::io::Result<String>;
    /// Stores the file at `path`, which the caller gives up (a store may
    /// move it instead of copying it); returns its sha256 and size.
    fn put_file(&self, path: &std::path::Path) -> std::io::Result<(String, u64)> {
        let bytes = std::fs::read(path)?;
        Ok((self.put(&bytes)?, bytes.len() as u64))
    }
    /// The bytes stored under `sha256`.
    fn get(&self, sha256: &str) -> std::io::Result<Vec<u8>>;
    /// Whether `sha256` is stored.
    fn contains(&self, sha256: &str) -> bool;
}
