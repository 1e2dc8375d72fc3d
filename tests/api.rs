//! The daemon end to end over HTTP: uploads as files and archives, builds,
//! downloads, the package index with pip, logs, cancellation and the cache.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

const PYMULT: &str = include_str!("../examples/pymult/src/pymult.asm");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_upload_builds_downloads_and_installs_from_the_index() {
    let app = TestApp::spawn().await;
    let response = app.upload_dir(&example("pymult"), &[("targets", "all")]).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let queued: Value = response.json().await.unwrap();
    let id = queued["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/api/v1/builds/{id}"));
    assert_eq!(queued["project"], serde_json::json!({"name": "pymult", "version": "1.0.0"}));

    let build = app.wait(&id).await;
    assert_eq!(build["status"], "succeeded", "{build}");
    let targets: Vec<&str> =
        build["targets"].as_array().unwrap().iter().map(|t| t["target"].as_str().unwrap()).collect();
    assert_eq!(targets, ["linux-x86_64", "macos-x86_64", "windows-x86_64"]);
    let linux = &build["targets"][0];
    assert_eq!(linux["status"], "succeeded");
    let steps: Vec<&str> = linux["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(steps, ["assemble", "check", "abi", "link", "verify", "package", "smoke"]);
    assert_eq!(linux["tests"][0]["passed"], 7);
    assert_eq!(build["targets"][1]["steps"][5]["status"], "succeeded", "the macOS smoke step runs under its ABI model");
    // Labelled as what they are: a native Linux run, and the other two under a model on this host.
    assert_eq!(linux["tests"][0].get("model"), None, "a Linux run is native");
    let windows = &build["targets"][2];
    assert_eq!(windows["tests"][0]["passed"], 7);
    assert_eq!(windows["tests"][0]["model"], "tests run on the Linux host under the Windows x64 ABI model");
    // A sandbox with Landlock (as on this host) runs the tests warm, and says so.
    assert_eq!(windows["tests"][0]["runner"], "warm", "{windows}");
    assert_eq!(
        build["targets"][1]["tests"][0]["model"],
        "tests run on the Linux host under the macOS x86-64 ABI model"
    );
    let page = app.client.get(app.url(&format!("/builds/{id}"))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("tests run on the Linux host under the Windows x64 ABI model"), "the build page says so too");

    // Every artifact downloads with its sha256, as body and as ETag.
    let artifacts = build["artifacts"].as_array().unwrap();
    let names: Vec<&str> = artifacts.iter().map(|a| a["filename"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "pymult-1.0.0-cp38-abi3-manylinux_2_5_x86_64.manylinux1_x86_64.whl",
            "pymult-1.0.0-cp38-abi3-macosx_10_9_x86_64.whl",
            "pymult-1.0.0-cp38-abi3-win_amd64.whl",
            "pymult-1.0.0.tar.gz"
        ]
    );
    for artifact in artifacts {
        let response = app.client.get(app.url(artifact["url"].as_str().unwrap())).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let etag = response.headers()["etag"].to_str().unwrap().to_string();
        assert_eq!(etag, format!("\"{}\"", artifact["sha256"].as_str().unwrap()));
        let bytes = response.bytes().await.unwrap();
        assert_eq!(sha256(&bytes), artifact["sha256"].as_str().unwrap());
        assert_eq!(bytes.len() as u64, artifact["size"].as_u64().unwrap());
        let again = app.client.get(app.url(artifact["url"].as_str().unwrap())).header("If-None-Match", &etag);
        assert_eq!(again.send().await.unwrap().status(), StatusCode::NOT_MODIFIED);
    }

    // pip installs the newest build from /simple/ into a fresh environment.
    let venv = tempfile::tempdir().unwrap();
    let made = std::process::Command::new("python3").args(["-m", "venv", "--without-pip"]).arg(venv.path()).status();
    assert!(made.unwrap().success());
    let fresh = venv.path().join("bin/python");
    let pip = std::process::Command::new(venv_python())
        .args(["-m", "pip", "--disable-pip-version-check", "--python"])
        .arg(&fresh)
        .args(["install", "--index-url", &app.url("/simple/"), "pymult"])
        .output()
        .unwrap();
    assert!(pip.status.success(), "{}", String::from_utf8_lossy(&pip.stderr));
    let out =
        std::process::Command::new(&fresh).args(["-c", "import pymult; print(pymult.multiply(2**40, 3))"]).output();
    assert_eq!(String::from_utf8_lossy(&out.unwrap().stdout).trim(), "3298534883328");
    app.stop().await.unwrap();
}

fn tar_gz_of(dir: &Path, top: &str) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for rel in files_of(dir) {
        tar.append_path_with_name(dir.join(&rel), Path::new(top).join(&rel)).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

fn zip_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn archive_form(filename: &str, bytes: Vec<u8>) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .part("archive", reqwest::multipart::Part::bytes(bytes).file_name(filename.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_upload_as_tar_gz_and_zip() {
    let app = TestApp::spawn().await;
    let tarball = tar_gz_of(&example("vecstats"), "vecstats-0.2.0");
    let form = archive_form("vecstats-0.2.0.tar.gz", tarball).text("targets", "linux-x86_64");
    let response = app.post("/api/v1/builds").multipart(form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "succeeded", "{build}");
    assert_eq!(build["targets"][0]["tests"][0]["passed"], 8);

    let entries = files_of(&example("pymult"))
        .into_iter()
        .map(|rel| (rel.display().to_string(), std::fs::read(example("pymult").join(&rel)).unwrap()))
        .collect::<Vec<_>>();
    let entries: Vec<(&str, Vec<u8>)> = entries.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    let form = archive_form("pymult.zip", zip_of(&entries)).text("targets", "windows-x86_64");
    let response = app.post("/api/v1/builds").multipart(form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "succeeded", "{build}");
    assert_eq!(build["artifacts"][0]["filename"], "pymult-1.0.0-cp38-abi3-win_amd64.whl");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_asm_file_with_a_name_and_version_is_a_project() {
    let app = TestApp::spawn().await;
    let form = reqwest::multipart::Form::new()
        .part("files", reqwest::multipart::Part::bytes(PYMULT.as_bytes().to_vec()).file_name("pymult.asm"))
        .text("name", "my-mult")
        .text("version", "2.1")
        .text("targets", "linux-x86_64");
    let response = app.post("/api/v1/builds").multipart(form).send().await.unwrap();
    let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "succeeded", "{build}");
    assert_eq!(build["project"], serde_json::json!({"name": "my-mult", "version": "2.1"}));
    assert_eq!(build["artifacts"][0]["filename"], "my_mult-2.1-cp38-abi3-manylinux_2_5_x86_64.manylinux1_x86_64.whl");
    // The index knows it by its normalised name, and redirects the others.
    let index = app.get_json_accept("/simple/my-mult/", "application/vnd.pypi.simple.v1+json").await;
    assert_eq!(index["name"], "my-mult");
    assert_eq!(index["files"][0]["hashes"]["sha256"], build["artifacts"][0]["sha256"]);
    let no_redirects = {
        wheelwright::install_crypto_provider();
        reqwest::Client::builder()
    }
    .redirect(reqwest::redirect::Policy::none())
    .build()
    .unwrap();
    let response = no_redirects.get(app.url("/simple/My_Mult/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(response.headers()["location"], "/simple/my-mult/");
    app.stop().await.unwrap();
}

trait AcceptJson {
    async fn get_json_accept(&self, path: &str, accept: &str) -> Value;
}

impl AcceptJson for TestApp {
    async fn get_json_accept(&self, path: &str, accept: &str) -> Value {
        let response = self.client.get(self.url(path)).header("Accept", accept).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["content-type"], accept);
        response.json().await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_uploads_are_served_from_the_cache_unless_rebuilt() {
    let app = TestApp::spawn().await;
    let first = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    let first = app.wait(first["id"].as_str().unwrap()).await;
    assert_eq!(first["status"], "succeeded");

    let started = std::time::Instant::now();
    let second = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(second["cached_from"], first["id"]);
    assert_eq!(second["artifacts"][0]["sha256"], first["artifacts"][0]["sha256"]);
    assert_eq!(second["targets"][0]["tests"][0]["passed"], 7);

    let third = app.submit(&example("pymult"), &[("targets", "linux-x86_64"), ("rebuild", "true")]).await;
    // Not from the cache: a worker may have claimed it already.
    assert!(["queued", "running"].contains(&third["status"].as_str().unwrap()), "{third}");
    let third = app.wait(third["id"].as_str().unwrap()).await;
    assert_eq!(third["cached_from"], Value::Null);
    // Reproducible: the rebuild has the same bytes.
    assert_eq!(third["artifacts"][0]["sha256"], first["artifacts"][0]["sha256"]);

    // Different options are a different build.
    let debug = app.submit(&example("pymult"), &[("targets", "linux-x86_64"), ("debug", "true")]).await;
    assert!(["queued", "running"].contains(&debug["status"].as_str().unwrap()), "{debug}");
    assert_eq!(debug["cached_from"], Value::Null);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_are_listed_newest_first_with_a_cursor_and_filters() {
    let app = TestApp::spawn_with(|a| a.smoke = Some(false)).await;
    let mut ids = Vec::new();
    for version in ["1", "2", "3"] {
        let dir = project(&[("pymult.asm", PYMULT)]);
        let build = app.submit(dir.path(), &[("version", version), ("targets", "linux-x86_64")]).await;
        ids.push(build["id"].as_str().unwrap().to_string());
    }
    let bad = project(&[("src/bad.asm", "nonsense here\n")]);
    let failed = app.submit(bad.path(), &[("targets", "linux-x86_64")]).await;
    for id in ids.iter().chain([&failed["id"].as_str().unwrap().to_string()]) {
        app.wait(id).await;
    }
    let page = app.get_json("/api/v1/builds?limit=2").await;
    let got: Vec<&str> = page["builds"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(got, [failed["id"].as_str().unwrap(), ids[2].as_str()]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let page = app.get_json(&format!("/api/v1/builds?limit=2&cursor={cursor}")).await;
    let got: Vec<&str> = page["builds"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(got, [ids[1].as_str(), ids[0].as_str()]);
    assert_eq!(page["next_cursor"], Value::Null);

    let failed_only = app.get_json("/api/v1/builds?status=failed").await;
    assert_eq!(failed_only["builds"].as_array().unwrap().len(), 1);
    let by_project = app.get_json("/api/v1/builds?project=PyMult").await;
    assert_eq!(by_project["builds"].as_array().unwrap().len(), 3);
    let bad = app.client.get(app.url("/api/v1/builds?status=done")).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    // The document's enum has no empty status: `status=` is refused too.
    let empty = app.client.get(app.url("/api/v1/builds?status=")).send().await.unwrap();
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
    let error: Value = empty.json().await.unwrap();
    assert_eq!(
        error["error"]["message"],
        "unknown status `` (expected queued, running, succeeded, failed or cancelled)"
    );
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_text_or_a_live_stream_that_ends_with_the_build() {
    let app = TestApp::spawn().await;
    let slow = project(&[
        ("src/pymult.asm", PYMULT),
        ("tests/test_slow.py", "import time\n\ndef test_slow():\n    time.sleep(2)\n"),
    ]);
    let build = app.submit(slow.path(), &[("targets", "linux-x86_64")]).await;
    let id = build["id"].as_str().unwrap();
    let response =
        app.client.get(app.url(&format!("/api/v1/builds/{id}/log"))).header("Accept", "text/event-stream").send().await;
    let response = response.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = tokio::time::timeout(Duration::from_secs(120), response.text()).await.expect("the stream ends").unwrap();
    assert!(body.contains("event: log\n"), "{body}");
    assert!(body.contains("data: [linux-x86_64] ==> assemble"), "{body}");
    assert!(body.contains("data: [linux-x86_64] <== smoke succeeded"), "{body}");
    assert!(body.trim_end().ends_with("event: end\ndata: succeeded"), "{body}");
    assert!(!body.contains(&app.data.display().to_string()), "the data directory shows in the log");

    let text = app.client.get(app.url(&format!("/api/v1/builds/{id}/log"))).send().await.unwrap().text().await.unwrap();
    assert!(text.starts_with(&format!("attempt 1 of build {id} (pymult 0.1.0)\n")), "{text}");
    assert!(text.ends_with("build succeeded\n"), "{text}");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_and_running_builds_cancel_and_finished_ones_conflict() {
    let app = TestApp::spawn_with(|a| a.workers = Some(1)).await;
    let sleeper = project(&[
        ("src/pymult.asm", PYMULT),
        ("tests/test_sleep.py", "import time\n\ndef test_sleep():\n    time.sleep(50)\n"),
    ]);
    let running = app.submit(sleeper.path(), &[("targets", "linux-x86_64")]).await;
    let running_id = running["id"].as_str().unwrap().to_string();
    let queued = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    let queued_id = queued["id"].as_str().unwrap().to_string();
    app.wait_for_status(&running_id, "running").await;

    let response = app.post(&format!("/api/v1/builds/{queued_id}/cancel")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "cancelled");

    // Wait until the sleeping test runs, then cancel: its processes are killed.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let log = app.client.get(app.url(&format!("/api/v1/builds/{running_id}/log"))).send().await.unwrap();
        if log.text().await.unwrap().contains("==> smoke") {
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = std::time::Instant::now();
    let response = app.post(&format!("/api/v1/builds/{running_id}/cancel")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let done = app.wait(&running_id).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(started.elapsed() < Duration::from_secs(10));

    let response = app.post(&format!("/api/v1/builds/{running_id}/cancel")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "already_finished");
    assert_eq!(error["error"]["message"], format!("build `{running_id}` already cancelled"));
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_openapi_answer() {
    let app = TestApp::spawn_with(|a| a.smoke = Some(false)).await;
    let build = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    app.wait(build["id"].as_str().unwrap()).await;
    let health = app.get_json("/healthz").await;
    assert_eq!(health["status"], "ok");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for line in [
        "wheelwright_queue_depth 0",
        "wheelwright_builds{status=\"succeeded\"} 1",
        "wheelwright_workers 2",
        "wheelwright_step_duration_seconds_count{step=\"assemble\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} missing in\n{metrics}");
    }
    assert!(metrics.contains("wheelwright_worker_utilization "));
    let openapi = app.get_json("/api/v1/openapi.json").await;
    assert_eq!(openapi["openapi"], "3.1.0");
    for path in [
        "/api/v1/builds",
        "/api/v1/builds/{id}/log",
        "/api/v1/builds/{id}/rebuild",
        "/api/v1/projects/{name}",
        "/simple/{project}/",
        "/webhooks/github",
        "/metrics",
    ] {
        assert!(openapi["paths"].get(path).is_some(), "{path} is not documented");
    }
    let projects = app.get_json_accept("/simple/", "application/vnd.pypi.simple.v1+json").await;
    // The build backend that every sdist names is always on the index.
    assert_eq!(projects["projects"], serde_json::json!([{"name": "pymult"}, {"name": "wheelwright-backend"}]));
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_run_in_a_work_directory_on_a_tmpfs_and_leave_nothing_there() {
    // `--work-dir` on /dev/shm: every target built and tested (warm) there,
    // and the build's folder gone when it ends; the data stays in the data
    // directory.
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let work = shm.path().join("wheelwright");
    let app = TestApp::spawn_with(|args| args.work_dir = Some(work.clone())).await;
    let build = app.submit(&example("pymult"), &[("targets", "all")]).await;
    let build = app.wait(build["id"].as_str().unwrap()).await;
    assert_eq!(build["status"], "succeeded", "{build}");
    for target in build["targets"].as_array().unwrap() {
        assert_eq!(
            (target["tests"][0]["passed"].as_u64(), target["tests"][0]["runner"].as_str()),
            (Some(7), Some("warm"))
        );
    }
    // Removed by the worker once the build's end is recorded: shortly after
    // the status reads "succeeded".
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&work).unwrap().count() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(std::fs::read_dir(&work).unwrap().count(), 0, "the build's work directory is removed");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&work).unwrap().permissions().mode() & 0o777, 0o700);
    app.stop().await.unwrap();
}
