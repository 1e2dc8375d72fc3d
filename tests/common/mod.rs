//! A real daemon on `127.0.0.1:0` with a temporary data directory, and
//! helpers to upload projects and wait for builds.

#![allow(dead_code)]

pub mod compose;
pub mod s3;
pub mod scripted;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use wheelwright::config::{Config, ServeArgs};
use wheelwright::dispatch::executor::BuildExecutor;
use wheelwright_workers::sandbox::Helper;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `examples/<name>`.
pub fn example(name: &str) -> PathBuf {
    repo().join("examples").join(name)
}

/// The host's python3.
pub fn python3() -> PathBuf {
    PathBuf::from("python3")
}

/// A running daemon.
pub struct TestApp {
    /// Its address.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client.
    pub client: reqwest::Client,
    /// Token sent with writes, if any.
    pub token: Option<String>,
    /// The data directory.
    pub data: PathBuf,
    _data_guard: Option<tempfile::TempDir>,
    /// Its own PostgreSQL database, when the suite runs on PostgreSQL.
    pub postgres: Option<TestDatabase>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Settings most tests want: python3 only, short leases.
pub fn test_args(data: &Path) -> ServeArgs {
    ServeArgs {
        data_dir: Some(data.to_path_buf()),
        pythons: Some(vec![python3()]),
        workers: Some(2),
        lease_secs: Some(5),
        shutdown_grace_secs: Some(5),
        store: test_store(),
        ..ServeArgs::default()
    }
}

/// With `WHEELWRIGHT_TEST_S3=s3://bucket/prefix` (scripts/test.sh sets it,
/// with the `AWS_*` variables of the server it starts), a fresh prefix of
/// that store for each daemon; else the local store.
pub fn test_store() -> Option<String> {
    let base = std::env::var("WHEELWRIGHT_TEST_S3").ok().filter(|s| !s.is_empty())?;
    Some(format!("{}/{}", base.trim_end_matches('/'), uuid::Uuid::now_v7()))
}

/// The configuration for `args`, with this workspace's binary as the Landlock helper.
pub fn config(args: ServeArgs) -> Config {
    let mut config = Config::load(args).expect("valid test configuration");
    config.helper =
        Some(Helper { program: env!("CARGO_BIN_EXE_wheelwright").into(), args: vec!["__sandbox-exec".into()] });
    config
}

impl TestApp {
    /// A daemon with the test defaults.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// A daemon whose arguments `adjust` may change.
    pub async fn spawn_with(adjust: impl FnOnce(&mut ServeArgs)) -> TestApp {
        let data = tempfile::tempdir().unwrap();
        let path = data.path().to_path_buf();
        let mut args = test_args(&path);
        adjust(&mut args);
        let token = args.tokens.as_ref().and_then(|t| t.first().cloned());
        Self::start(config(args), token, Some(data)).await
    }

    /// Starts a daemon on `config`.
    pub async fn start(config: Config, token: Option<String>, guard: Option<tempfile::TempDir>) -> TestApp {
        Self::start_with(config, token, guard, None).await
    }

    /// A daemon with the test defaults whose builds `executor` runs instead
    /// of the engine (for tests whose subject is the daemon).
    pub async fn spawn_with_executor(
        adjust: impl FnOnce(&mut ServeArgs),
        executor: std::sync::Arc<dyn BuildExecutor>,
    ) -> TestApp {
        let data = tempfile::tempdir().unwrap();
        let mut args = test_args(data.path());
        adjust(&mut args);
        let token = args.tokens.as_ref().and_then(|t| t.first().cloned());
        Self::start_with(config(args), token, Some(data), Some(executor)).await
    }

    /// Starts a daemon on `config`, its builds run by `executor` (the engine
    /// when `None`).
    pub async fn start_with(
        config: Config,
        token: Option<String>,
        guard: Option<tempfile::TempDir>,
        executor: Option<std::sync::Arc<dyn BuildExecutor>>,
    ) -> TestApp {
        let mut config = config;
        let postgres = match config.database.url {
            // The default database: on PostgreSQL when the suite runs there.
            wheelwright::db::DatabaseUrl::Sqlite(None) => TestDatabase::create().await,
            _ => None,
        };
        if let Some(db) = &postgres {
            config.database.url = wheelwright::db::DatabaseUrl::Postgres(db.url.clone());
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let data = config.data_dir.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(wheelwright::run_with(
            config,
            listener,
            async {
                let _ = rx.await;
            },
            executor,
        ));
        let app = TestApp {
            addr,
            base: format!("http://{addr}"),
            client: {
                wheelwright::install_crypto_provider();
                reqwest::Client::new()
            },
            token,
            data,
            _data_guard: guard,
            postgres,
            shutdown: Some(tx),
            handle: Some(handle),
        };
        app.wait_until_healthy().await;
        app
    }

    async fn wait_until_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = self.client.get(format!("{}/healthz", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if self.handle.as_ref().is_some_and(|h| h.is_finished()) {
                panic!("the daemon stopped while starting");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the daemon did not become healthy");
    }

    /// Stops the daemon and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.handle.take().unwrap().await.unwrap()
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A POST with the token, if any.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.post(self.url(path));
        match &self.token {
            Some(t) => request.bearer_auth(t),
            None => request,
        }
    }

    /// GET `path` as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        assert!(response.status().is_success(), "GET {path}: {}", response.status());
        response.json().await.unwrap()
    }

    /// Uploads every file of `dir` (paths relative to it) with extra form fields.
    pub async fn upload_dir(&self, dir: &Path, fields: &[(&str, &str)]) -> reqwest::Response {
        self.post("/api/v1/builds").multipart(form_of_dir(dir, fields)).send().await.unwrap()
    }

    /// Uploads `dir` and returns the build JSON, asserting 202.
    pub async fn submit(&self, dir: &Path, fields: &[(&str, &str)]) -> Value {
        let response = self.upload_dir(dir, fields).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
        body
    }

    /// Polls until the build is final.
    pub async fn wait(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let build = self.get_json(&format!("/api/v1/builds/{id}")).await;
            if ["succeeded", "failed", "cancelled"].contains(&build["status"].as_str().unwrap()) {
                return build;
            }
            assert!(Instant::now() < deadline, "build {id} did not finish: {build}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls until the build has the given status.
    pub async fn wait_for_status(&self, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let build = self.get_json(&format!("/api/v1/builds/{id}")).await;
            if build["status"] == status {
                return build;
            }
            assert!(Instant::now() < deadline, "build {id} never became {status}: {build}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Every regular file under `dir`, relative to it, sorted.
pub fn files_of(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && name != "__pycache__" {
                    stack.push(path);
                }
            } else {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// A multipart form with every file of `dir` as a `files` part.
pub fn form_of_dir(dir: &Path, fields: &[(&str, &str)]) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new();
    for rel in files_of(dir) {
        let data = std::fs::read(dir.join(&rel)).unwrap();
        form = form.part("files", reqwest::multipart::Part::bytes(data).file_name(rel.display().to_string()));
    }
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    form
}

/// A project directory made of `(path, contents)` pairs.
pub fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, contents) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, contents).unwrap();
    }
    dir
}

/// Lowercase hex sha256.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The repository's `.venv` python (made by scripts/setup.sh), which has pip.
pub fn venv_python() -> PathBuf {
    let venv = repo().join(".venv/bin/python");
    assert!(venv.exists(), "run scripts/setup.sh first: {} is missing", venv.display());
    venv
}

/// The daemon binary as a child process: `serve --bind 127.0.0.1:0 --data-dir
/// DATA ARGS...` with `env` added; returns it and its `http://` address once
/// it says it listens. For tests that kill it, or measure its own memory.
pub fn spawn_daemon(args: &[&str], data: &Path, env: &[(&str, &str)]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wheelwright"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("WHEELWRIGHT_LOG", "info")
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(address) = line.split("listening on ").nth(1) {
                let _ = tx.send(address.trim().to_string());
            }
        }
    });
    let base = rx.recv_timeout(Duration::from_secs(60)).expect("the daemon starts listening");
    (child, base)
}

/// `git ARGS` in `dir` with a test identity; its trimmed standard output.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.invalid", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A stand-in for GitHub: a bare repository `<base>/acme/pymult.git` whose
/// `main` holds examples/pymult plus `extra` files; the base and the commit.
pub fn bare_pymult_repo(extra: &[(&str, &str)]) -> (tempfile::TempDir, String) {
    let base = tempfile::tempdir().unwrap();
    let bare = base.path().join("acme/pymult.git");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "--quiet", "--bare"]);
    let work = tempfile::tempdir().unwrap();
    git(work.path(), &["init", "--quiet"]);
    for rel in files_of(&example("pymult")) {
        let dest = work.path().join(&rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(example("pymult").join(&rel), dest).unwrap();
    }
    for (rel, contents) in extra {
        std::fs::write(work.path().join(rel), contents).unwrap();
    }
    git(work.path(), &["add", "."]);
    git(work.path(), &["commit", "--quiet", "-m", "pymult"]);
    git(work.path(), &["push", "--quiet", bare.to_str().unwrap(), "HEAD:refs/heads/main"]);
    let commit = git(work.path(), &["rev-parse", "HEAD"]);
    (base, commit)
}

/// The admin URL of the PostgreSQL server the suite runs on, when it does
/// (`WHEELWRIGHT_TEST_POSTGRES`, set by scripts/test.sh).
pub fn test_postgres() -> Option<String> {
    std::env::var("WHEELWRIGHT_TEST_POSTGRES").ok().filter(|u| !u.is_empty())
}

/// A fresh PostgreSQL database (`ww_<uuid>`) on the test server, dropped
/// with this value.
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    admin: String,
    name: String,
}

impl TestDatabase {
    /// A new database, or `None` when the suite does not run on PostgreSQL.
    pub async fn create() -> Option<TestDatabase> {
        let admin = test_postgres()?;
        let name = format!("ww_{}", uuid::Uuid::now_v7().simple());
        let mut conn =
            <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await.expect("the test PostgreSQL server");
        let create = format!("CREATE DATABASE {name}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(create)).execute(&mut conn).await.unwrap();
        let _ = sqlx::Connection::close(conn).await;
        let base = admin.rsplit_once('/').map(|(base, _)| base).expect("an admin URL with a database");
        Some(TestDatabase { url: format!("{base}/{name}"), admin, name })
    }
}

impl Drop for TestDatabase {
    /// Drops the database (and any connection still open to it) on a thread
    /// of its own: a drop may run inside the test's runtime.
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await?;
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&mut conn).await?;
                sqlx::Connection::close(conn).await
            })
        });
        if let Ok(Err(e)) = dropped.join() {
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
    }
}
