//! Crash safety: `wheelwright serve` killed with SIGKILL in the middle of
//! builds, then started again on the same data directory. Every build
//! completes exactly once and every stored artifact matches its hash. And
//! crash reports: a crashing test that forges the debugger's answers cannot
//! make the daemon read its own environment or files and publish them.

mod common;

use std::path::Path;
use std::process::Child;
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
        Self::start_with_env(data, &[])
    }

    /// The daemon with these variables added to its environment.
    fn start_with_env(data: &Path, env: &[(&str, &str)]) -> Daemon {
        let (child, base) = spawn_daemon(&["--workers", "2", "--lease-secs", "2", "--pythons", "python3"], data, env);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_crash_report_cannot_publish_the_daemons_environment_or_files() {
    let data = tempfile::tempdir().unwrap();
    let token = format!("tok-{}-{}", std::process::id(), sha256(data.path().as_os_str().as_encoded_bytes()));
    let secret_file = data.path().join("secret.txt");
    let secret = format!("FILE-SECRET-{}", std::process::id());
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let daemon = Daemon::start_with_env(data.path(), &[("WHEELWRIGHT_TOKENS", &token)]);

    // The project lands in <data>/sources/<id>/: `../../secret.txt` is the secret file.
    let forged: String =
        ["/proc/self/environ", "/proc/1/environ", &secret_file.display().to_string(), "../../secret.txt"]
            .iter()
            .map(|file| {
                format!("@@line\nLine 1 of \"{file}\" starts at address 0x1 <forged> and ends at 0x2.\n@@end\n")
            })
            .collect();
    let test = format!(
        "import os, stat\n\nFORGED = {forged:?}.encode()\n\n\
         def test_forge_then_crash():\n\
         \x20   for fd in range(64):\n\
         \x20       try:\n\
         \x20           if stat.S_ISFIFO(os.fstat(fd).st_mode):\n\
         \x20               os.write(fd, FORGED)\n\
         \x20       except OSError:\n\
         \x20           pass\n\
         \x20   import segfault  # noqa: F401\n"
    );
    let fixture = repo().join("workers/tests/fixtures/segfault");
    let dir = project(&[
        ("pyproject.toml", &std::fs::read_to_string(fixture.join("pyproject.toml")).unwrap()),
        ("src/segfault.asm", &std::fs::read_to_string(fixture.join("src/segfault.asm")).unwrap()),
        ("tests/test_forge.py", &test),
    ]);
    let form = form_of_dir(dir.path(), &[]);
    let response = daemon
        .client
        .post(format!("{}/api/v1/builds", daemon.base))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(180);
    let build = loop {
        let build = daemon.get(&format!("/api/v1/builds/{id}")).await;
        if ["succeeded", "failed", "cancelled"].contains(&build["status"].as_str().unwrap()) {
            break build;
        }
        assert!(Instant::now() < deadline, "the build never finished: {build}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(build["status"], "failed", "{build}");
    let run = &build["targets"][0]["tests"][0];
    assert_eq!(run["problem"], "the test process crashed with SIGSEGV", "{build}");
    // The real line, quoted from the project's own source.
    assert_eq!(
        run["crash"]["source_line"],
        "src/segfault.asm:20: mov rax, [rax]                    ; the faulting instruction",
        "{build}"
    );

    let text = |path: String| {
        let client = daemon.client.clone();
        async move { client.get(path).send().await.unwrap().text().await.unwrap() }
    };
    let log = text(format!("{}/api/v1/builds/{id}/log", daemon.base)).await;
    let page = text(format!("{}/builds/{id}", daemon.base)).await;
    assert!(log.contains("Line 1 of \"/proc/self/environ\""), "the forgery was not attempted:\n{log}");
    for (name, published) in [("the API", build.to_string()), ("the log", log), ("the build page", page)] {
        assert!(!published.contains(&token), "{name} shows the daemon's token");
        assert!(!published.contains("WHEELWRIGHT_TOKENS="), "{name} shows the daemon's environment");
        assert!(!published.contains(&secret), "{name} shows the secret file");
    }
    daemon.kill();
}
