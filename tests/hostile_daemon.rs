//! Hostile uploads against the real daemon, each ending in a failed build
//! with its reason (never a stuck worker or a bloated daemon), followed by a
//! build that runs normally: a JUnit XML replaced by a FIFO or a link to
//! `/dev/zero`, a test that fills `/tmp`, one that fills the job directory,
//! four children that each touch 800 MiB.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use wheelwright_workers::sandbox::{Hierarchy, Limits};

const PYMULT: &str = include_str!("../examples/pymult/src/pymult.asm");

/// A daemon whose per-build limits are small enough to reach in a test.
async fn small_daemon() -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let mut config = config(test_args(data.path()));
    config.limits =
        Limits { tmp_size: 4 << 20, build_disk: 32 << 20, file_size: 8 << 20, build_memory: 1 << 30, ..config.limits };
    TestApp::start(config, None, Some(data)).await
}

/// pymult with one test (and, optionally, a conftest); returns the finished build.
async fn build_with_test(app: &TestApp, test: &str, conftest: Option<&str>) -> Value {
    let mut files = vec![("src/pymult.asm", PYMULT), ("tests/test_hostile.py", test)];
    if let Some(conftest) = conftest {
        files.push(("tests/conftest.py", conftest));
    }
    let dir = project(&files);
    let queued = app.submit(dir.path(), &[("targets", "linux-x86_64")]).await;
    app.wait(queued["id"].as_str().unwrap()).await
}

/// The reason of the Linux target's failed smoke step.
fn smoke_reason(build: &Value) -> String {
    assert_eq!(build["status"], "failed", "{build}");
    let steps = build["targets"][0]["steps"].as_array().unwrap();
    let smoke = steps.iter().find(|s| s["name"] == "smoke").unwrap_or_else(|| panic!("{build}"));
    assert_eq!(smoke["status"], "failed", "{build}");
    smoke["reason"].as_str().unwrap().to_string()
}

async fn assert_next_build_succeeds(app: &TestApp) {
    let queued = app.submit(&example("pymult"), &[("targets", "linux-x86_64"), ("rebuild", "true")]).await;
    let build = app.wait(queued["id"].as_str().unwrap()).await;
    assert_eq!(build["status"], "succeeded", "{build}");
}

fn junit_replaced_by(replace: &str) -> String {
    format!("import os\n\n\ndef pytest_unconfigure(config):\n    path = config.option.xmlpath\n    os.remove(path)\n    {replace}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_junit_xml_replaced_by_a_fifo_or_dev_zero_fails_the_build_at_once() {
    let app = small_daemon().await;
    let ok = "def test_ok():\n    assert True\n";
    for (replace, why) in [
        ("os.mkfifo(path)", "pytest's JUnit XML is not a regular file but a FIFO"),
        ("os.symlink('/dev/zero', path)", "pytest's JUnit XML is not a regular file but a symbolic link"),
    ] {
        let started = Instant::now();
        let build = build_with_test(&app, ok, Some(&junit_replaced_by(replace))).await;
        assert!(started.elapsed() < Duration::from_secs(30), "the worker waited on {replace}");
        let reason = smoke_reason(&build);
        assert!(reason.ends_with(why), "{reason}");
    }
    assert_next_build_succeeds(&app).await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_filling_tmp_or_the_job_directory_meets_the_build_limits() {
    let app = small_daemon().await;
    // /tmp is a tmpfs of 4 MiB: the fifth MiB does not fit (files may reach 8 MiB).
    let fill_tmp = "def test_fill():\n    with open('/tmp/big', 'wb') as f:\n        for _ in range(16):\n            \
                    f.write(b'x' * (1 << 20))\n            f.flush()\n";
    // A sized tmpfs of its own at /tmp is the cold sandbox's (a warm run's temp folder is in its
    // job directory, under the disk budget tested below: docs/warm-runner.md).
    let cold = "[project]\nname = \"pymult\"\nversion = \"0.1.0\"\n\n[tool.wheelwright]\nwarm-tests = false\n";
    let dir = project(&[("pyproject.toml", cold), ("src/pymult.asm", PYMULT), ("tests/test_hostile.py", fill_tmp)]);
    let queued = app.submit(dir.path(), &[("targets", "linux-x86_64")]).await;
    let build = app.wait(queued["id"].as_str().unwrap()).await;
    let failures = build["targets"][0]["tests"][0]["failures"].to_string();
    assert!(failures.contains("No space left on device"), "{build}");
    // The job directory: files of 4 MiB, 32 MiB in all.
    let fill_job = "import time\n\ndef test_fill():\n    for n in range(64):\n        \
                    with open(f'fill-{n}', 'wb') as f:\n            f.write(b'x' * (4 << 20))\n        time.sleep(0.05)\n";
    let build = build_with_test(&app, fill_job, None).await;
    let reason = smoke_reason(&build);
    assert!(reason.ends_with("the build used more than 32 MiB of disk"), "{reason}");
    assert_next_build_succeeds(&app).await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_children_touching_800_mib_each_meet_the_build_memory_limit() {
    if Hierarchy::detect_memory().is_none() {
        eprintln!("no memory cgroup here: memory is bounded per process only");
        return;
    }
    let app = small_daemon().await;
    let hungry = "import os, time\n\ndef test_hungry():\n    children = []\n    for _ in range(4):\n        \
                  pid = os.fork()\n        if pid == 0:\n            block = b'x' * (800 << 20)\n            \
                  time.sleep(3)\n            os._exit(0)\n        children.append(pid)\n    \
                  killed = [pid for pid in children if os.waitpid(pid, 0)[1] != 0]\n    assert not killed\n";
    let build = build_with_test(&app, hungry, None).await;
    let reason = smoke_reason(&build);
    assert!(reason.ends_with("the build used more than 1 GiB of memory"), "{reason}");
    assert_next_build_succeeds(&app).await;
    app.stop().await.unwrap();
}
