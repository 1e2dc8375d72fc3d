//! What pip and uv read first on the package index: PEP 700 (`api-version`
//! 1.1, `versions`, `size`, `upload-time`), PEP 658/714 metadata files beside
//! each wheel, and byte ranges on downloads — checked with the real clients
//! through a proxy that records what they ask for.

mod common;

use std::sync::{Arc, Mutex};

use common::{example, sha256, venv_python, TestApp};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TCP proxy on `listener` to `to` that records the path of every GET it forwards.
fn recording_proxy_on(
    listener: std::net::TcpListener,
    to: std::net::SocketAddr,
) -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(to).await else { return };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let down = tokio::spawn(async move { tokio::io::copy(&mut server_read, &mut client_write).await });
                let mut buffer = [0u8; 16384];
                let mut carry = String::new();
                while let Ok(n) = client_read.read(&mut buffer).await {
                    if n == 0 || server_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                    carry.push_str(&String::from_utf8_lossy(&buffer[..n]));
                    while let Some(end) = carry.find("\r\n") {
                        let line: String = carry.drain(..end + 2).collect();
                        if let Some(path) = line.strip_prefix("GET ").and_then(|l| l.split(' ').next()) {
                            log.lock().unwrap().push(path.to_string());
                        }
                    }
                }
                let _ = server_write.shutdown().await;
                let _ = down.await;
            });
        }
    });
    (addr, seen)
}

/// A project's page of the index in PEP 691 JSON.
async fn simple_json(app: &TestApp, project: &str) -> Value {
    let response = app
        .client
        .get(app.url(&format!("/simple/{project}/")))
        .header("Accept", "application/vnd.pypi.simple.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "/simple/{project}/");
    response.json().await.unwrap()
}

fn fresh_venv() -> (tempfile::TempDir, std::path::PathBuf) {
    let venv = tempfile::tempdir().unwrap();
    let made = std::process::Command::new("python3").args(["-m", "venv", "--without-pip"]).arg(venv.path()).status();
    assert!(made.unwrap().success());
    let python = venv.path().join("bin/python");
    (venv, python)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_serves_pep_700_fields_and_pep_658_metadata_that_pip_and_uv_use() {
    // The proxy's port is taken first, so that the daemon can be told to
    // answer to it (the Host allow-list); the proxy then listens there.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_addr = reserved.local_addr().unwrap();
    let app = TestApp::spawn_with(|a| a.allowed_hosts = Some(vec![proxy_addr.to_string()])).await;
    let (proxy, seen) = recording_proxy_on(reserved, app.addr);
    let through = app.client.get(format!("http://{proxy}/simple/")).send().await.unwrap().status();
    assert_eq!(through, StatusCode::OK, "the proxy's Host is answered");
    let build = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    let build = app.wait(build["id"].as_str().unwrap()).await;
    assert_eq!(build["status"], "succeeded", "{build}");
    let wheel = build["artifacts"].as_array().unwrap().iter().find(|a| a["target"] == "linux-x86_64").unwrap().clone();

    // PEP 700 and 714 in JSON.
    let index = simple_json(&app, "pymult").await;
    assert_eq!(index["meta"]["api-version"], "1.1");
    assert_eq!(index["versions"], serde_json::json!(["1.0.0"]));
    let file = index["files"].as_array().unwrap().iter().find(|f| f["filename"] == wheel["filename"]).unwrap();
    assert_eq!(file["size"], wheel["size"]);
    let upload_time = file["upload-time"].as_str().unwrap();
    assert!(humantime::parse_rfc3339(upload_time).is_ok() && upload_time.ends_with('Z'), "{upload_time}");
    let metadata_url = format!("{}.metadata", file["url"].as_str().unwrap());
    let metadata = app.client.get(app.url(&metadata_url)).send().await.unwrap();
    assert_eq!(metadata.status(), StatusCode::OK);
    let metadata = metadata.bytes().await.unwrap();
    assert_eq!(file["core-metadata"]["sha256"], sha256(&metadata).as_str());
    assert_eq!(file["dist-info-metadata"], file["core-metadata"]);
    // The very METADATA inside the wheel.
    let wheel_bytes =
        app.client.get(app.url(file["url"].as_str().unwrap())).send().await.unwrap().bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(wheel_bytes.to_vec())).unwrap();
    let mut inside = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_name("pymult-1.0.0.dist-info/METADATA").unwrap(), &mut inside).unwrap();
    assert_eq!(&metadata[..], &inside[..]);
    // The sdist has no metadata file, and says nothing about one.
    let sdist = index["files"].as_array().unwrap().iter().find(|f| f["filename"] == "pymult-1.0.0.tar.gz").unwrap();
    assert_eq!(sdist.get("core-metadata"), None);
    let html = app.client.get(app.url("/simple/pymult/")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(&format!("data-core-metadata=\"sha256={}\"", sha256(&metadata))), "{html}");
    assert!(html.contains("<meta name=\"pypi:repository-version\" content=\"1.1\">"));

    // Byte ranges: the zip's first header, its end, and past the end.
    let url = app.url(file["url"].as_str().unwrap());
    let first = app.client.get(&url).header("Range", "bytes=0-3").send().await.unwrap();
    assert_eq!(first.status(), StatusCode::PARTIAL_CONTENT);
    let len = wheel_bytes.len();
    assert_eq!(first.headers()["content-range"], format!("bytes 0-3/{len}").as_str());
    assert_eq!(&first.bytes().await.unwrap()[..], b"PK\x03\x04");
    let tail = app.client.get(&url).header("Range", "bytes=-22").send().await.unwrap();
    assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(&tail.bytes().await.unwrap()[..], &wheel_bytes[len - 22..]);
    let past = app.client.get(&url).header("Range", format!("bytes={len}-")).send().await.unwrap();
    assert_eq!(past.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(past.headers()["content-range"], format!("bytes */{len}").as_str());
    let other = app.client.get(&url).header("Range", "bytes=0-3").header("If-Range", "\"0000\"").send().await.unwrap();
    assert_eq!(other.status(), StatusCode::OK, "a range for other bytes gets the whole file");

    // pip and uv, through the recording proxy: each reads the metadata file.
    let index_url = format!("http://{proxy}/simple/");
    let (_pip_venv, pip_python) = fresh_venv();
    let pip = std::process::Command::new(venv_python())
        .args(["-m", "pip", "--disable-pip-version-check", "--no-cache-dir", "--python"])
        .arg(&pip_python)
        .args(["install", "--index-url", &index_url, "pymult"])
        .output()
        .unwrap();
    assert!(pip.status.success(), "{}", String::from_utf8_lossy(&pip.stderr));
    let pip_saw = std::mem::take(&mut *seen.lock().unwrap());
    assert!(pip_saw.iter().any(|p| p.ends_with(".whl.metadata")), "pip asked for {pip_saw:?}");

    let (_uv_venv, uv_python) = fresh_venv();
    let uv_cache = tempfile::tempdir().unwrap();
    let uv = std::process::Command::new(common::repo().join(".venv/bin/uv"))
        .args(["pip", "install", "--no-config", "--python"])
        .arg(&uv_python)
        .args(["--index-url", &index_url, "--exclude-newer", "2100-01-01T00:00:00Z", "pymult"])
        .env("UV_CACHE_DIR", uv_cache.path())
        .output()
        .unwrap();
    assert!(uv.status.success(), "{}", String::from_utf8_lossy(&uv.stderr));
    let uv_saw = std::mem::take(&mut *seen.lock().unwrap());
    assert!(uv_saw.iter().any(|p| p.ends_with(".whl.metadata")), "uv asked for {uv_saw:?}");
    for python in [&pip_python, &uv_python] {
        let out =
            std::process::Command::new(python).args(["-c", "import pymult; print(pymult.multiply(6, 7))"]).output();
        assert_eq!(String::from_utf8_lossy(&out.unwrap().stdout).trim(), "42");
    }
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forms_route_answers_json_to_a_client_that_asks_for_it() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .post(app.url("/builds"))
        .header("Accept", "application/json")
        .multipart(common::form_of_dir(&example("pymult"), &[("targets", "linux-x86_64")]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let body: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/api/v1/builds/{}", body["id"].as_str().unwrap()));
    assert_eq!(body["project"]["name"], "pymult");
    // A browser still gets the page.
    let page = app
        .client
        .post(app.url("/builds"))
        .header("Accept", "text/html,application/xhtml+xml,application/json;q=0.9")
        .multipart(common::form_of_dir(&example("pymult"), &[("targets", "linux-x86_64")]))
        .send()
        .await
        .unwrap();
    assert!(page.url().path().starts_with("/builds/"), "followed the redirect to {}", page.url());
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdist_installs_from_source_through_the_backend_the_daemon_serves() {
    let app = TestApp::spawn().await;
    let build = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    assert_eq!(app.wait(build["id"].as_str().unwrap()).await["status"], "succeeded");
    let backend = simple_json(&app, "wheelwright-backend").await;
    let file = &backend["files"][0];
    assert_eq!(
        file["filename"],
        format!("wheelwright_backend-{}-py3-none-linux_x86_64.whl", env!("CARGO_PKG_VERSION"))
    );
    // From source: pip fetches the sdist, installs the backend it names
    // from the same index into an isolated build environment, and the
    // backend's own engine assembles and links the module.
    let (_venv, python) = fresh_venv();
    let pip = std::process::Command::new(venv_python())
        .args(["-m", "pip", "--disable-pip-version-check", "--no-cache-dir", "--python"])
        .arg(&python)
        .args(["install", "--no-binary", "pymult", "--index-url", &app.url("/simple/"), "pymult"])
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&pip.stdout), String::from_utf8_lossy(&pip.stderr));
    assert!(pip.status.success(), "{said}");
    assert!(said.contains("pymult-1.0.0.tar.gz"), "built from the sdist: {said}");
    let out = std::process::Command::new(&python).args(["-c", "import pymult; print(pymult.multiply(6, 7))"]).output();
    assert_eq!(String::from_utf8_lossy(&out.unwrap().stdout).trim(), "42");
    app.stop().await.unwrap();
}

/// Which pymult file `pip download` picks from the daemon's index for `requirement`.
fn pip_picks(index_url: &str, requirement: &str) -> (bool, String) {
    let dest = tempfile::tempdir().unwrap();
    let pip = std::process::Command::new(venv_python())
        .args(["-m", "pip", "--disable-pip-version-check", "--no-cache-dir", "download", "--no-deps"])
        .args(["--only-binary", ":all:", "--index-url", index_url, "--dest"])
        .arg(dest.path())
        .arg(requirement)
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&pip.stdout), String::from_utf8_lossy(&pip.stderr));
    let files: Vec<String> = std::fs::read_dir(dest.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(pip.status.success() && files.len() == 1, "{requirement}: {files:?} {said}");
    (said.contains("yanked"), files[0].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yanked_build_is_skipped_by_pip_unless_pinned_and_unyanks() {
    let app = TestApp::spawn().await;
    // 1.0.0 and a 1.1.0 of the same source.
    let newer = tempfile::tempdir().unwrap();
    for file in common::files_of(&example("pymult")) {
        let to = newer.path().join(&file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let data = std::fs::read(example("pymult").join(&file)).unwrap();
        let data = if file == std::path::Path::new("pyproject.toml") {
            String::from_utf8(data).unwrap().replace("version = \"1.0.0\"", "version = \"1.1.0\"").into_bytes()
        } else {
            data
        };
        std::fs::write(to, data).unwrap();
    }
    let mut ids = Vec::new();
    for dir in [example("pymult"), newer.path().to_path_buf()] {
        let build = app.submit(&dir, &[("targets", "linux-x86_64")]).await;
        let id = build["id"].as_str().unwrap().to_string();
        assert_eq!(app.wait(&id).await["status"], "succeeded");
        ids.push(id);
    }
    let index_url = app.url("/simple/");
    let newest = tokio::task::spawn_blocking({
        let index_url = index_url.clone();
        move || pip_picks(&index_url, "pymult")
    });
    assert!(newest.await.unwrap().1.starts_with("pymult-1.1.0-"));

    let yank =
        app.post(&format!("/api/v1/builds/{}/yank", ids[1])).json(&serde_json::json!({"reason": "wrong results"}));
    let yanked: Value = yank.send().await.unwrap().json().await.unwrap();
    assert_eq!(yanked, serde_json::json!({"id": ids[1], "yanked": true, "reason": "wrong results"}));
    let index = simple_json(&app, "pymult").await;
    for file in index["files"].as_array().unwrap() {
        let name = file["filename"].as_str().unwrap();
        let expected = if name.starts_with("pymult-1.1.0") { serde_json::json!("wrong results") } else { false.into() };
        assert_eq!(file["yanked"], expected, "{name}");
    }
    let html = app.client.get(app.url("/simple/pymult/")).send().await.unwrap().text().await.unwrap();
    assert_eq!(html.matches(" data-yanked=\"wrong results\"").count(), 2, "{html}");

    // pip: the newest unyanked for a range, the yanked one for an exact pin (with a warning).
    let (unpinned, pinned) =
        tokio::task::spawn_blocking(move || (pip_picks(&index_url, "pymult"), pip_picks(&index_url, "pymult==1.1.0")))
            .await
            .unwrap();
    assert!(unpinned.1.starts_with("pymult-1.0.0-") && !unpinned.0, "{unpinned:?}");
    assert!(pinned.1.starts_with("pymult-1.1.0-") && pinned.0, "pip warns of the yanked pin: {pinned:?}");

    // A reason without text is `true` in JSON; unyanking clears it.
    let bare = app.post(&format!("/api/v1/builds/{}/yank", ids[1])).json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!(bare.status(), StatusCode::OK);
    let index = simple_json(&app, "pymult").await;
    assert!(index["files"].as_array().unwrap().iter().any(|f| f["yanked"] == true));
    let unyank = app.post(&format!("/api/v1/builds/{}/unyank", ids[1])).send().await.unwrap();
    assert_eq!(
        unyank.json::<Value>().await.unwrap(),
        serde_json::json!({"id": ids[1], "yanked": false, "reason": null})
    );
    let index = simple_json(&app, "pymult").await;
    assert!(index["files"].as_array().unwrap().iter().all(|f| f["yanked"] == false), "{index}");

    // Refusals: no such build, a bad reason, unknown fields.
    let missing = app.post("/api/v1/builds/nope/yank").json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    for (body, code) in [
        (serde_json::json!({"reason": "two\nlines"}), "bad_reason"),
        (serde_json::json!({"reason": "x".repeat(501)}), "bad_reason"),
        (serde_json::json!({"why": "x"}), "bad_json"),
    ] {
        let refused = app.post(&format!("/api/v1/builds/{}/yank", ids[0])).json(&body).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert_eq!(refused.json::<Value>().await.unwrap()["error"]["code"], code);
    }
    assert!(simple_json(&app, "pymult").await["files"].as_array().unwrap().iter().all(|f| f["yanked"] == false));
    app.stop().await.unwrap();
}
