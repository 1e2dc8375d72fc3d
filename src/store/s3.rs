//! An S3-compatible object store (AWS S3, SeaweedFS, MinIO, …) through
//! `object_store`: artifacts under `<prefix>/ab/cdef…`, build sources under
//! `<prefix>/sources/<build id>.tar`. Uploads stream from the file (one PUT
//! up to [`PART_SIZE`], a multipart upload above it: at most a couple of
//! parts in memory), downloads stream from a (ranged) GET. S3 makes an
//! object visible only when its PUT or multipart upload completes, so a
//! failure never leaves a partial object behind a name.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::signer::Signer;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    WriteMultipart,
};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::{digest_key, ArtifactStore, Opened, S3Settings, StoreError};

/// Files up to this size go up in one PUT; larger ones in parts of this size
/// (S3's smallest part, except the last, is 5 MiB).
pub const PART_SIZE: usize = 5 << 20;

/// Parts of one upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;

/// The store in one bucket, under one prefix.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Arc<AmazonS3>,
    prefix: String,
}

impl S3Store {
    /// A client for `settings`; what they leave unset comes from the `AWS_*`
    /// variables. Nothing is sent until the store is used.
    pub fn open(settings: &S3Settings) -> Result<S3Store, StoreError> {
        // The HTTP client speaks TLS to real S3 endpoints.
        crate::install_crypto_provider();
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&settings.bucket);
        let endpoint = settings
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT").ok());
        if let Some(endpoint) = &endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &settings.region {
            builder = builder.with_region(region);
        } else if let Ok(region) = std::env::var("AWS_REGION") {
            builder = builder.with_region(region);
        }
        if let Some(key) = &settings.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        // An unreachable store answers within seconds (uploads get 503 and
        // a worker's attempt fails), rather than after the client's default
        // of ten retries over three minutes.
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
                base: 2.0,
            },
            max_retries: 2,
            retry_timeout: Duration::from_secs(10),
        };
        // The whole-request timeout bounds a download streamed to a slow client too.
        // (These replace all client options: `allow_http` must be among them.)
        let options = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(600))
            // A server of one's own on plain HTTP (loopback, a private network).
            .with_allow_http(endpoint.as_deref().is_some_and(|e| e.starts_with("http://")));
        let client = builder
            .with_retry(retry)
            .with_client_options(options)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(S3Store { client: Arc::new(client), prefix: settings.prefix.clone() })
    }

    fn key(&self, name: &str) -> Key {
        if self.prefix.is_empty() {
            Key::from(name)
        } else {
            Key::from(format!("{}/{name}", self.prefix))
        }
    }

    fn source_key(&self, build_id: &str) -> Result<Key, StoreError> {
        let valid = !build_id.is_empty()
            && build_id.len() <= 64
            && build_id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        if !valid {
            return Err(StoreError::BadName(crate::upload::shown(build_id)));
        }
        Ok(self.key(&format!("sources/{build_id}.tar")))
    }

    /// Uploads the file at `path` to `key`, hashing what it sends; refuses
    /// (and sends nothing visible) when `expect` is given and the bytes are
    /// not those. Returns the sha256 and size sent.
    async fn upload_file(&self, key: &Key, path: &Path, expect: Option<&str>) -> Result<(String, u64), StoreError> {
        let mut file = tokio::fs::File::open(path).await?;
        let size = file.metadata().await?.len();
        let mismatch = |sha256: &str| match expect {
            Some(expected) if expected != sha256 => Some(StoreError::Corrupt(format!(
                "{} changed while it was stored (sha256 {sha256}, expected {expected})",
                path.display()
            ))),
            _ => None,
        };
        if size <= PART_SIZE as u64 {
            let mut bytes = Vec::with_capacity(size as usize);
            file.read_to_end(&mut bytes).await?;
            let sha256 = hex::encode(Sha256::digest(&bytes));
            if let Some(e) = mismatch(&sha256) {
                return Err(e);
            }
            let len = bytes.len() as u64;
            self.client.put(key, PutPayload::from(bytes)).await.map_err(unavailable)?;
            return Ok((sha256, len));
        }
        let upload = self.client.put_multipart(key).await.map_err(unavailable)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut hasher = Sha256::new();
        let mut sent = 0u64;
        let mut buffer = vec![0u8; 256 * 1024];
        let streamed: Result<(), StoreError> = async {
            loop {
                let n = file.read(&mut buffer).await?;
                if n == 0 {
                    return Ok(());
                }
                hasher.update(&buffer[..n]);
                sent += n as u64;
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(unavailable)?;
                writer.write(&buffer[..n]);
            }
        }
        .await;
        let sha256 = hex::encode(hasher.finalize());
        let refused = streamed.err().or_else(|| mismatch(&sha256));
        if let Some(e) = refused {
            // The parts sent so far are dropped; the name never appears.
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.finish().await.map_err(unavailable)?;
        Ok((sha256, sent))
    }

    async fn get(&self, key: &Key, name: &str, range: Option<Range<u64>>) -> Result<Opened, StoreError> {
        let options = GetOptions { range: range.map(GetRange::Bounded), ..GetOptions::default() };
        let result = self.client.get_opts(key, options).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound(name.to_string()),
            e => unavailable(e),
        })?;
        let size = result.meta.size;
        let stream = result.into_stream().map_err(unavailable).boxed();
        Ok(Opened { size, stream })
    }
}

/// Any failure of the object store but "not found": the daemon answers 503.
fn unavailable(e: object_store::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

#[async_trait::async_trait]
impl ArtifactStore for S3Store {
    #[tracing::instrument(skip_all, err)]
    async fn put(&self, bytes: Bytes) -> Result<String, StoreError> {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let key = self.key(&digest_key(&sha256)?);
        // Same name, same bytes: writing it again is harmless.
        self.client.put(&key, PutPayload::from(bytes)).await.map_err(unavailable)?;
        Ok(sha256)
    }

    #[tracing::instrument(skip_all, err)]
    async fn put_file(&self, path: &Path) -> Result<(String, u64), StoreError> {
        // The name is the digest, so the file is read twice: once to name it,
        // once (checked again) to send it, unless it is stored already.
        let owned = path.to_path_buf();
        let (sha256, size) = tokio::task::spawn_blocking(move || super::local::hash_file(&owned))
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e)))??;
        if self.size(&sha256).await? == Some(size) {
            return Ok((sha256, size));
        }
        let key = self.key(&digest_key(&sha256)?);
        self.upload_file(&key, path, Some(&sha256)).await
    }

    async fn size(&self, sha256: &str) -> Result<Option<u64>, StoreError> {
        let key = self.key(&digest_key(sha256)?);
        match self.client.head(&key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    #[tracing::instrument(skip(self), err)]
    async fn open(&self, sha256: &str, range: Option<Range<u64>>) -> Result<Opened, StoreError> {
        let key = self.key(&digest_key(sha256)?);
        if let Some(range) = &range {
            if range.start >= range.end {
                return Err(StoreError::Corrupt(format!("empty range {range:?}")));
            }
        }
        self.get(&key, sha256, range).await
    }

    async fn presigned_get(&self, sha256: &str, expires_in: Duration) -> Result<Option<String>, StoreError> {
        let key = self.key(&digest_key(sha256)?);
        let url = self.client.signed_url(object_store::signer::Method::GET, &key, expires_in).await;
        Ok(Some(url.map_err(unavailable)?.to_string()))
    }

    fn is_shared(&self) -> bool {
        true
    }

    #[tracing::instrument(skip(self, tar), err)]
    async fn put_source(&self, build_id: &str, tar: &Path) -> Result<(), StoreError> {
        let key = self.source_key(build_id)?;
        self.upload_file(&key, tar, None).await.map(|_| ())
    }

    #[tracing::instrument(skip(self), err)]
    async fn open_source(&self, build_id: &str) -> Result<Opened, StoreError> {
        let key = self.source_key(build_id)?;
        self.get(&key, &format!("sources/{build_id}.tar"), None).await
    }

    async fn remove_source(&self, build_id: &str) -> Result<(), StoreError> {
        let key = self.source_key(build_id)?;
        match self.client.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }
}
