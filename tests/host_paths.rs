//! A build's public log and report name the host's places (`$JOB`,
//! `$DATA`, `~`, …), never show them: not in the tools' command lines, not
//! in what the project's tests print about the sandbox they run in.

mod common;

use common::*;

/// A copy of examples/pymult with one more test, which prints what the
/// sandbox shows of the host (its mounts, the module's and test's paths)
/// and fails with those paths in its message.
fn nosy_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for rel in files_of(&example("pymult")) {
        let to = dir.path().join(&rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(example("pymult").join(&rel), to).unwrap();
    }
    std::fs::write(
        dir.path().join("tests/test_where.py"),
        "import os, sys\nimport pymult\n\n\ndef test_where():\n    \
         print(open('/proc/self/mountinfo').read())\n    \
         print(sys.executable, sys.prefix, os.getcwd())\n    \
         assert False, f'{pymult.__file__} {os.path.abspath(__file__)} {sys.base_prefix}'\n",
    )
    .unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_reports_show_no_host_paths() {
    let app = TestApp::spawn().await;
    let project = nosy_project();
    let queued = app.submit(project.path(), &[("targets", "linux-x86_64")]).await;
    let id = queued["id"].as_str().unwrap();
    let build = app.wait(id).await;
    assert_eq!(build["status"], "failed", "{build}");
    let log = app.client.get(app.url(&format!("/api/v1/builds/{id}/log"))).send().await.unwrap().text().await.unwrap();
    let report = build.to_string();
    // The test did print its surroundings, under their names.
    assert!(log.contains("$JOB/work/linux-x86_64/smoke/"), "{log}");
    assert!(log.contains("$JOB/work/include/") && log.contains(" $PYTHON"), "{log}");
    let data = app.data.display().to_string();
    let canonical_data = std::fs::canonicalize(&app.data).unwrap().display().to_string();
    let home = std::env::var("HOME").unwrap_or_default();
    for (what, text) in [("log", &log), ("report", &report)] {
        for host in [&data, &canonical_data] {
            assert!(!text.contains(host.as_str()), "the {what} shows the data directory {host}:\n{text}");
        }
        if home.trim_matches('/').len() > 1 {
            assert!(!text.contains(&format!("{home}/")), "the {what} shows the home directory {home}:\n{text}");
        }
    }
    app.stop().await.unwrap();
}
