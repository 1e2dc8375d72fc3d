//! The artifact store's contract, checked against the local store and a real
//! S3-compatible server (SeaweedFS) alike: streamed round trips, ranges, a
//! file large enough for a multipart upload, `contains`, idempotent puts,
//! names that are not digests; and source trees kept in a shared store.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use wheelwright::store::{collect, ArtifactStore, LocalStore, S3Store, SourceTrees, StoreError};

/// Both stores, each empty, with what keeps them alive.
struct Stores {
    all: Vec<(&'static str, Arc<dyn ArtifactStore>)>,
    _dir: tempfile::TempDir,
    _server: Option<common::s3::S3Server>,
}

fn stores() -> Stores {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalStore::open(&dir.path().join("artifacts")).unwrap();
    let (settings, server) = common::s3::s3_store("store-contract");
    let s3 = S3Store::open(&settings).unwrap();
    Stores { all: vec![("local", Arc::new(local)), ("s3", Arc::new(s3))], _dir: dir, _server: server }
}

fn hex_sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Deterministic bytes that do not compress to nothing.
fn pattern(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn file_with(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

async fn read_all(store: &dyn ArtifactStore, sha256: &str, range: Option<std::ops::Range<u64>>) -> (u64, Vec<u8>) {
    let opened = store.open(sha256, range).await.unwrap();
    (opened.size, collect(opened.stream, 64 << 20).await.unwrap())
}

#[tokio::test]
async fn a_file_streams_in_and_out_with_its_digest_and_size() {
    let stores = stores();
    let scratch = tempfile::tempdir().unwrap();
    let bytes = pattern(100_000);
    for (name, store) in &stores.all {
        let file = file_with(scratch.path(), &format!("{name}.whl"), &bytes);
        let (sha256, size) = store.put_file(&file).await.unwrap();
        assert_eq!((sha256.as_str(), size), (hex_sha(&bytes).as_str(), 100_000), "{name}");
        assert_eq!(store.size(&sha256).await.unwrap(), Some(100_000), "{name}");
        assert!(store.contains(&sha256).await.unwrap(), "{name}");
        let (total, back) = read_all(&**store, &sha256, None).await;
        assert_eq!(total, 100_000, "{name}");
        assert!(back == bytes, "{name}: the bytes read back differ");
    }
}

#[tokio::test]
async fn a_range_reads_only_those_bytes_and_reports_the_whole_size() {
    let stores = stores();
    let bytes = pattern(10_000);
    for (name, store) in &stores.all {
        let sha256 = store.put(bytes.clone().into()).await.unwrap();
        let (total, part) = read_all(&**store, &sha256, Some(1000..1500)).await;
        assert_eq!((total, part.as_slice()), (10_000, &bytes[1000..1500]), "{name}");
        let (_, last) = read_all(&**store, &sha256, Some(9_999..10_000)).await;
        assert_eq!(last, &bytes[9_999..], "{name}");
    }
}

#[tokio::test]
async fn a_file_larger_than_a_part_goes_up_in_parts_and_reads_back_whole() {
    let stores = stores();
    let scratch = tempfile::tempdir().unwrap();
    // Two full parts and a short last one.
    let len = 2 * wheelwright::store::PART_SIZE + 12_345;
    let bytes = pattern(len);
    for (name, store) in &stores.all {
        let file = file_with(scratch.path(), &format!("{name}.tar.gz"), &bytes);
        let (sha256, size) = store.put_file(&file).await.unwrap();
        assert_eq!((sha256.as_str(), size), (hex_sha(&bytes).as_str(), len as u64), "{name}");
        let _ = std::fs::remove_file(&file);
        // Hashed as it streams: the whole object is never held here either.
        let opened = store.open(&sha256, None).await.unwrap();
        let mut hasher = Sha256::new();
        let mut stream = opened.stream;
        while let Some(chunk) = stream.next().await {
            hasher.update(chunk.unwrap());
        }
        assert_eq!(hex::encode(hasher.finalize()), sha256, "{name}");
        // Across the first part boundary.
        let at = wheelwright::store::PART_SIZE as u64;
        let (_, across) = read_all(&**store, &sha256, Some(at - 10..at + 10)).await;
        assert_eq!(across, &bytes[at as usize - 10..at as usize + 10], "{name}");
    }
}

#[tokio::test]
async fn storing_the_same_bytes_twice_is_harmless_and_absent_digests_are_absent() {
    let stores = stores();
    let scratch = tempfile::tempdir().unwrap();
    for (name, store) in &stores.all {
        let absent = hex_sha(format!("never stored in {name}").as_bytes());
        assert!(!store.contains(&absent).await.unwrap(), "{name}");
        assert_eq!(store.size(&absent).await.unwrap(), None, "{name}");
        assert!(matches!(store.open(&absent, None).await, Err(StoreError::NotFound(_))), "{name}");
        let first = store.put(b"METADATA".to_vec().into()).await.unwrap();
        let again = store.put(b"METADATA".to_vec().into()).await.unwrap();
        let file = file_with(scratch.path(), name, b"METADATA");
        let (from_file, _) = store.put_file(&file).await.unwrap();
        assert_eq!((&first, &again), (&from_file, &from_file), "{name}");
        assert_eq!(read_all(&**store, &first, None).await.1, b"METADATA", "{name}");
    }
}

#[tokio::test]
async fn names_that_are_not_lowercase_sha256_digests_are_refused() {
    let stores = stores();
    let upper = hex_sha(b"x").to_uppercase();
    for (name, store) in &stores.all {
        for bad in ["../../etc/passwd", "", "abc", upper.as_str(), &format!("{}/", &hex_sha(b"x")[..63])] {
            assert!(matches!(store.open(bad, None).await, Err(StoreError::BadName(_))), "{name}: open {bad:?}");
            assert!(matches!(store.contains(bad).await, Err(StoreError::BadName(_))), "{name}: contains {bad:?}");
        }
    }
}

fn tree() -> Vec<(PathBuf, Vec<u8>)> {
    vec![
        (PathBuf::from("pyproject.toml"), b"[project]\nname = \"pymult\"\n".to_vec()),
        (PathBuf::from("src/mult.asm"), pattern(3000)),
    ]
}

#[tokio::test]
async fn a_shared_store_carries_a_source_tree_to_another_daemon_and_checks_it() {
    let (settings, _server) = common::s3::s3_store("store-sources");
    let store: Arc<dyn ArtifactStore> = Arc::new(S3Store::open(&settings).unwrap());
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let here = SourceTrees::open(a.path(), store.clone()).unwrap();
    let there = SourceTrees::open(b.path(), store.clone()).unwrap();
    let id = uuid::Uuid::now_v7().to_string();
    let hash = here.write(&id, tree()).await.unwrap();
    assert_eq!(hash, wheelwright::store::tree_hash(&tree()));
    // Another daemon's directory has no copy: it comes from the store.
    assert!(!there.path(&id).exists());
    assert_eq!(there.read(&id, &hash).await.unwrap(), tree());
    assert_eq!(std::fs::read_dir(b.path()).unwrap().count(), 1, "only the tree is left, no scratch files");

    // An archive whose files are not the recorded tree is refused, and not unpacked.
    let other = uuid::Uuid::now_v7().to_string();
    let mut changed = tree();
    changed[1].1[0] ^= 1;
    here.write(&other, changed).await.unwrap();
    let c = tempfile::tempdir().unwrap();
    let third = SourceTrees::open(c.path(), store.clone()).unwrap();
    let err = third.materialise(&other, &hash).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("read back from the store"), "{err}");
    assert!(!third.path(&other).exists());
}

#[tokio::test]
async fn the_local_store_keeps_sources_only_on_its_own_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ArtifactStore> = Arc::new(LocalStore::open(&dir.path().join("artifacts")).unwrap());
    let sources = SourceTrees::open(&dir.path().join("sources"), store).unwrap();
    let hash = sources.write("0190-a", tree()).await.unwrap();
    assert_eq!(sources.read("0190-a", &hash).await.unwrap(), tree());
    let entries: Vec<_> =
        std::fs::read_dir(dir.path().join("sources")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("0190-a")], "no archive beside the tree");
    assert!(matches!(sources.materialise("0190-b", &hash).await, Err(StoreError::NotFound(_))));
}
