//! Object copy from a local store to another store (S3): every artifact and
//! core-metadata file the records name, each read, hashed and checked
//! against its name before it is sent and again as the destination returns
//! it; and every build's source tree, checked against its recorded hash.
//! An object the destination already holds is read back and checked, never
//! trusted by its name alone.

use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;
use tokio::io::AsyncWriteExt;

use super::MigrateError;
use crate::store::{ArtifactStore, LocalStore, SourceTrees, StoreError};

/// What happened to the objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectCopy {
    /// Artifacts and metadata files the records name.
    pub objects: u64,
    /// Objects this run sent.
    pub copied: u64,
    /// Objects the destination already held, read back and equal.
    pub already_there: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Source trees sent (or already there and equal).
    pub sources: u64,
    /// Builds whose source tree is not in the local install (they cannot
    /// be rebuilt from either side).
    pub sources_missing: Vec<String>,
}

/// Copies the objects the SQLite records at `records` name from the local
/// install at `data_dir` (`artifacts/`, `sources/`) into `to`.
pub async fn copy_objects(
    records: &SqlitePool,
    data_dir: &Path,
    to: Arc<dyn ArtifactStore>,
) -> Result<ObjectCopy, MigrateError> {
    let from = LocalStore::open(&data_dir.join("artifacts")).map_err(StoreError::from)?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT sha256 FROM artifacts UNION SELECT metadata_sha256 FROM artifacts \
         WHERE metadata_sha256 IS NOT NULL ORDER BY 1",
    )
    .fetch_all(records)
    .await?;
    let scratch = tempfile::tempdir().map_err(StoreError::from)?;
    let mut copy = ObjectCopy { objects: names.len() as u64, ..ObjectCopy::default() };
    for sha256 in &names {
        if to.contains(sha256).await? {
            check(&*to, sha256).await?;
            copy.already_there += 1;
            continue;
        }
        let file = scratch.path().join(sha256);
        let size = download(&from, sha256, &file).await?;
        let (stored, _) = to.put_file(&file).await?;
        if stored != *sha256 {
            return Err(StoreError::Corrupt(format!("the destination named {sha256} {stored}")).into());
        }
        check(&*to, sha256).await?;
        let _ = std::fs::remove_file(&file);
        copy.copied += 1;
        copy.bytes += size;
    }
    if to.is_shared() {
        copy_sources(records, data_dir, to, &mut copy).await?;
    }
    Ok(copy)
}

/// Every build's tree into the shared store, then fetched back through a
/// scratch directory and checked against the recorded hash.
async fn copy_sources(
    records: &SqlitePool,
    data_dir: &Path,
    to: Arc<dyn ArtifactStore>,
    copy: &mut ObjectCopy,
) -> Result<(), MigrateError> {
    let builds: Vec<(String, String)> =
        sqlx::query_as("SELECT id, source_hash FROM builds ORDER BY id").fetch_all(records).await?;
    let local = SourceTrees::open(
        &data_dir.join("sources"),
        Arc::new(LocalStore::open(&data_dir.join("artifacts")).map_err(StoreError::from)?),
    )
    .map_err(StoreError::from)?;
    let scratch = tempfile::tempdir().map_err(StoreError::from)?;
    let shared = SourceTrees::open(scratch.path(), to.clone()).map_err(StoreError::from)?;
    for (id, hash) in builds {
        if !local.path(&id).is_dir() {
            copy.sources_missing.push(id);
            continue;
        }
        // Already there and whole: fetched back and checked, not sent again.
        if shared.materialise(&id, &hash).await.is_ok() {
            copy.sources += 1;
            continue;
        }
        let files = local.read(&id, &hash).await?;
        let got = crate::store::tree_hash(&files);
        if got != hash {
            return Err(StoreError::Corrupt(format!(
                "the local source tree of build {id} has sha256 {got}, not the recorded {hash}"
            ))
            .into());
        }
        shared.write(&id, files).await?;
        let _ = std::fs::remove_dir_all(shared.path(&id));
        shared.materialise(&id, &hash).await?;
        copy.sources += 1;
    }
    Ok(())
}

/// Streams object `sha256` of `from` into `file`, checking its hash.
async fn download(from: &LocalStore, sha256: &str, file: &Path) -> Result<u64, MigrateError> {
    let opened = from.open(sha256, None).await?;
    let mut out = tokio::fs::File::create(file).await.map_err(StoreError::from)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut stream = opened.stream;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        out.write_all(&chunk).await.map_err(StoreError::from)?;
    }
    out.flush().await.map_err(StoreError::from)?;
    let got = hex::encode(hasher.finalize());
    if got != sha256 {
        return Err(StoreError::Corrupt(format!("the local object {sha256} has sha256 {got}")).into());
    }
    Ok(size)
}

/// Reads object `sha256` back from `store` and checks its hash.
async fn check(store: &dyn ArtifactStore, sha256: &str) -> Result<(), MigrateError> {
    let mut stream = store.open(sha256, None).await?.stream;
    let mut hasher = Sha256::new();
    while let Some(chunk) = stream.next().await {
        hasher.update(&chunk?);
    }
    let got = hex::encode(hasher.finalize());
    if got != sha256 {
        return Err(StoreError::Corrupt(format!("the destination's object {sha256} has sha256 {got}")).into());
    }
    Ok(())
}
