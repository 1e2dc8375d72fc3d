//! The artifact store: files addressed by the sha256 of their bytes, behind
//! an async, streaming trait with two implementations — [`LocalStore`] (a
//! directory of the data directory, the default) and [`S3Store`] (an
//! S3-compatible object store several daemons share); and the builds'
//! source trees, which a shared store also keeps.

mod backend;
mod local;
mod s3;
mod settings;
mod sources;

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;

pub use backend::{BackendFile, BackendWheel};
pub use local::{open_file, LocalStore};
pub use s3::{S3Store, PART_SIZE};
pub use settings::{Downloads, S3Settings, StoreConfig, StoreFileConfig};
pub use sources::{read_tree, tree_hash, SourceTrees};

/// What went wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Nothing is stored under this name.
    #[error("no object `{0}` in the store")]
    NotFound(String),
    /// The name is not a lowercase hex sha256 (or not a build id).
    #[error("`{0}` is not a valid store name")]
    BadName(String),
    /// The bytes read back are not the bytes named.
    #[error("{0}")]
    Corrupt(String),
    /// The store cannot be reached or refused to work: try again later.
    #[error("the artifact store is unavailable: {0}")]
    Unavailable(String),
    /// A local file could not be read or written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Bytes read from a store, a chunk at a time.
pub type ByteStream = BoxStream<'static, Result<Bytes, StoreError>>;

/// An object opened for reading.
pub struct Opened {
    /// The whole object's size in bytes.
    pub size: u64,
    /// The bytes asked for (the whole object, or the range).
    pub stream: ByteStream,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened").field("size", &self.size).finish_non_exhaustive()
    }
}

/// Where built artifacts (and, for a shared store, the builds' sources) are kept.
#[async_trait::async_trait]
pub trait ArtifactStore: Send + Sync + 'static {
    /// Stores `bytes` (small things: a wheel's `METADATA`) and returns their
    /// lowercase hex sha256. Storing the same bytes twice is harmless; a
    /// failure never leaves a partial object visible.
    async fn put(&self, bytes: Bytes) -> Result<String, StoreError>;
    /// Stores the file at `path`, read as a stream, which the caller gives up
    /// (a store may move it instead of copying it); returns its sha256 and size.
    async fn put_file(&self, path: &Path) -> Result<(String, u64), StoreError>;
    /// The size of what is stored under `sha256`, `None` when nothing is.
    async fn size(&self, sha256: &str) -> Result<Option<u64>, StoreError>;
    /// Opens what is stored under `sha256`: all of it, or the bytes of `range`
    /// (which must lie within it).
    async fn open(&self, sha256: &str, range: Option<Range<u64>>) -> Result<Opened, StoreError>;
    /// Whether `sha256` is stored.
    async fn contains(&self, sha256: &str) -> Result<bool, StoreError> {
        Ok(self.size(sha256).await?.is_some())
    }
    /// A URL that lets anyone GET `sha256` for `expires_in`, for stores that
    /// can sign one (`None`: downloads go through the daemon).
    async fn presigned_get(&self, sha256: &str, expires_in: Duration) -> Result<Option<String>, StoreError> {
        let _ = (sha256, expires_in);
        Ok(None)
    }
    /// Whether other daemons read this store too: then each build's source
    /// tree is kept in it as well ([`ArtifactStore::put_source`]).
    fn is_shared(&self) -> bool {
        false
    }
    /// Keeps build `build_id`'s source archive (the tar at `tar`). Only a
    /// shared store keeps it; the local store has the tree on its own disk.
    async fn put_source(&self, build_id: &str, tar: &Path) -> Result<(), StoreError> {
        let _ = (build_id, tar);
        Ok(())
    }
    /// Build `build_id`'s source archive, as kept by [`ArtifactStore::put_source`].
    async fn open_source(&self, build_id: &str) -> Result<Opened, StoreError> {
        Err(StoreError::NotFound(format!("sources/{build_id}")))
    }
    /// Removes build `build_id`'s source archive (a build that was never recorded).
    async fn remove_source(&self, build_id: &str) -> Result<(), StoreError> {
        let _ = build_id;
        Ok(())
    }
}

/// Whether `name` is a lowercase hex sha256, the only names a store reads.
pub fn is_digest(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `ab/cdef…` for `abcdef…`, or [`StoreError::BadName`].
fn digest_key(sha256: &str) -> Result<String, StoreError> {
    if !is_digest(sha256) {
        return Err(StoreError::BadName(crate::upload::shown(sha256).to_string()));
    }
    Ok(format!("{}/{}", &sha256[..2], &sha256[2..]))
}

/// Opens the store `config` names, under `data_dir` when it is the local one.
pub fn open(config: &StoreConfig, data_dir: &Path) -> anyhow::Result<Arc<dyn ArtifactStore>> {
    use anyhow::Context;
    Ok(match config {
        StoreConfig::Local => {
            Arc::new(LocalStore::open(&data_dir.join("artifacts")).context("cannot open the artifact store")?)
        }
        StoreConfig::S3(settings) => Arc::new(S3Store::open(settings).context("cannot open the S3 store")?),
    })
}

/// Reads a whole (small) stream into memory: `METADATA` files, tests.
pub async fn collect(mut stream: ByteStream, limit: u64) -> Result<Vec<u8>, StoreError> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
        if out.len() as u64 > limit {
            return Err(StoreError::Corrupt(format!("object larger than {limit} bytes")));
        }
    }
    Ok(out)
}
