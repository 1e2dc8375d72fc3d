//! Crash safety: `wheelwright serve` killed with SIGKILL in the middle of
//! builds, then started again on the same data directory. Every build
//! completes exactly once and every stored artifact matches its hash.

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const PYMULT: &str = include_str!("../examples/pymult/src/pymult.asm");

/// The daemon as a child process.
struct Daemon {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Daemon {
    fn start(data: &Path) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wheelwright"))
            .args(["serve", "--bind", "127.0.0.1:0", "--workers", "2", "--lease-secs", "2", "--pythons", "python3"])
            .arg("--data-dir")
            .arg(data)
            .env("WHEELWRIGHT_LOG", "info")
            .stderr(Stdio::piped())
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
        Daemon {
            child,
            base,
            client: {
                wheelwright::install_crypto_provider();
                reqwest::Client::new()
            },
        }
    }

    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    /// Queues `n` builds (distinct versions) whose test sleeps `seconds`.
    async fn submit_slow_builds(&self, n: usize, seconds: f64) -> Vec<String> {
        let slow_test = format!("import time\n\ndef test_slow():\n    time.sleep({seconds})\n");
        let mut ids = Vec::new();
        for version in 1..=n {
            let dir = project(&[("pymult.asm", PYMULT), ("tests/test_slow.py", &slow_test)]);
            let form = form_of_dir(dir.path(), &[("version", &version.to_string()), ("targets", "linux-x86_64")]);
            let response = self.client.post(format!("{}/api/v1/builds", self.base)).multipart(form).send().await;
            let build: Value = response.unwrap().json().await.unwrap();
            ids.push(build["id"].as_str().unwrap().to_string());
        }
        ids
    }

    async fn get(&self, path: &str) -> Value {
        self.client.get(format!("{}{path}", self.base)).send().await.unwrap().json().await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_daemon_loses_no_build_and_runs_none_twice() {
    let data = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(data.path());
    let ids = daemon.submit_slow_builds(4, 1.5).await;
    // Kill it while builds are running.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let running = daemon.get("/api/v1/builds?status=running").await;
        if !running["builds"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no build started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    daemon.kill();

    let daemon = Daemon::start(data.path());
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut finished = Vec::new();
    for id in &ids {
        loop {
            let build = daemon.get(&format!("/api/v1/builds/{id}")).await;
            if ["succeeded", "failed", "cancelled"].contains(&build["status"].as_str().unwrap()) {
                finished.push(build);
                break;
            }
            assert!(Instant::now() < deadline, "build {id} never finished after the restart: {build}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let mut retried = 0;
    for build in &finished {
        assert_eq!(build["status"], "succeeded", "{build}");
        let id = build["id"].as_str().unwrap();
        let log = daemon.client.get(format!("{}/api/v1/builds/{id}/log", daemon.base)).send().await.unwrap();
        let log = log.text().await.unwrap();
        if log.contains("attempt 2 of build") {
            retried += 1;
        }
        assert_eq!(log.matches("<== package succeeded").count(), if log.contains("attempt 2") { 2 } else { 1 });
        // One artifact per file name, and its bytes match its hash.
        let names: Vec<&str> =
            build["artifacts"].as_array().unwrap().iter().map(|a| a["filename"].as_str().unwrap()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        for artifact in build["artifacts"].as_array().unwrap() {
            let url = format!("{}{}", daemon.base, artifact["url"].as_str().unwrap());
            let bytes = daemon.client.get(url).send().await.unwrap().bytes().await.unwrap();
            assert_eq!(sha256(&bytes), artifact["sha256"].as_str().unwrap());
        }
    }
    assert!(retried >= 1, "no build was interrupted and taken over");
    let metrics = daemon.client.get(format!("{}/metrics", daemon.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "wheelwright_builds{status=\"succeeded\"} 4"), "{metrics}");

    // Every stored blob is named by its own hash: no half-written file.
    let store = data.path().join("artifacts");
    for shard in std::fs::read_dir(&store).unwrap().flatten().filter(|e| e.file_name() != "tmp") {
        for blob in std::fs::read_dir(shard.path()).unwrap().flatten() {
            let name = format!("{}{}", shard.file_name().to_string_lossy(), blob.file_name().to_string_lossy());
            assert_eq!(sha256(&std::fs::read(blob.path()).unwrap()), name);
        }
    }
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_running_builds_finish_and_claims_nothing_new() {
    let data = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(data.path());
    // Two workers: two builds run, the other two wait.
    let ids = daemon.submit_slow_builds(4, 2.0).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while daemon.get("/api/v1/builds?status=running").await["builds"].as_array().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "builds did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut daemon = daemon;
    let pid = daemon.child.id() as i32;
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let status = daemon.child.wait().unwrap();
    assert!(status.success(), "{status}");

    // The two running builds finished before the daemon exited; the others wait.
    let daemon = Daemon::start(data.path());
    let mut statuses = Vec::new();
    for id in &ids {
        statuses.push(daemon.get(&format!("/api/v1/builds/{id}")).await["status"].as_str().unwrap().to_string());
    }
    assert_eq!(statuses.iter().filter(|s| *s == "succeeded").count(), 2, "{statuses:?}");
    assert!(statuses.iter().filter(|s| *s != "succeeded").all(|s| s == "queued" || s == "running"), "{statuses:?}");
    daemon.kill();
}
