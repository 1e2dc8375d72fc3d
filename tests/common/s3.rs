//! S3-compatible stores for tests: the one `scripts/test.sh` starts
//! (`WHEELWRIGHT_TEST_S3` and the `AWS_*` variables), or a dedicated
//! SeaweedFS of the test's own through `scripts/services/s3.sh`, which the
//! test may stop to see an outage.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use wheelwright::store::{Downloads, S3Settings, StoreConfig};

/// A `weed mini` of one test, stopped (and its data removed) when dropped.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Its bucket.
    pub bucket: String,
    /// Access key and secret.
    pub credentials: (String, String),
    state: tempfile::TempDir,
}

fn script() -> PathBuf {
    super::repo().join("scripts/services/s3.sh")
}

impl S3Server {
    /// Starts one (about a second).
    pub fn start() -> S3Server {
        let state = tempfile::tempdir().unwrap();
        let out = Command::new(script())
            .arg("start")
            .env("WHEELWRIGHT_S3_DIR", state.path().join("s3"))
            .output()
            .expect("scripts/services/s3.sh runs");
        assert!(out.status.success(), "s3.sh start failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let var = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .unwrap_or_else(|| panic!("s3.sh printed no {name}: {text}"))
                .to_string()
        };
        let bucket = var("WHEELWRIGHT_TEST_S3").trim_start_matches("s3://").split('/').next().unwrap().to_string();
        S3Server {
            endpoint: var("AWS_ENDPOINT_URL"),
            bucket,
            credentials: (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")),
            state,
        }
    }

    /// The store under a fresh `prefix/<uuid>` of this server's bucket.
    pub fn settings(&self, prefix: &str) -> S3Settings {
        S3Settings {
            bucket: self.bucket.clone(),
            prefix: format!("{prefix}/{}", uuid::Uuid::now_v7()),
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            access_key_id: Some(self.credentials.0.clone()),
            secret_access_key: Some(self.credentials.1.clone()),
            downloads: Downloads::Proxy,
            redirect_expiry: Duration::from_secs(60),
        }
    }

    /// Stops it (an outage); its data goes too.
    pub fn stop(&self) {
        let out = Command::new(script())
            .arg("stop")
            .env("WHEELWRIGHT_S3_DIR", self.state.path().join("s3"))
            .output()
            .expect("scripts/services/s3.sh runs");
        assert!(out.status.success(), "s3.sh stop failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").env("WHEELWRIGHT_S3_DIR", self.state.path().join("s3")).output();
    }
}

/// An S3 store for a test: a fresh prefix of the suite's server when
/// `WHEELWRIGHT_TEST_S3` is set, else of a server of the test's own (kept
/// alive by the returned guard).
pub fn s3_store(prefix: &str) -> (S3Settings, Option<S3Server>) {
    if let Some(url) = super::test_store() {
        let StoreConfig::S3(settings) =
            StoreConfig::resolve(Some(url), None, None).expect("a valid WHEELWRIGHT_TEST_S3")
        else {
            panic!("WHEELWRIGHT_TEST_S3 is not an s3:// URL")
        };
        return (settings, None);
    }
    let server = S3Server::start();
    (server.settings(prefix), Some(server))
}
