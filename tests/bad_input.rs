//! Bad requests get a clear status and JSON message, write nothing outside
//! their own folder, and leave the daemon serving.

mod common;

use std::io::Write;

use common::*;
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::Value;

const PYMULT: &str = include_str!("../examples/pymult/src/pymult.asm");

async fn error_of(response: reqwest::Response) -> (StatusCode, String, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    (status, body["error"]["code"].as_str().unwrap().into(), body["error"]["message"].as_str().unwrap().into())
}

fn pymult_part() -> Part {
    Part::bytes(PYMULT.as_bytes().to_vec()).file_name("src/pymult.asm")
}

async fn assert_still_serving(app: &TestApp) {
    let build = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    assert_eq!(app.wait(build["id"].as_str().unwrap()).await["status"], "succeeded");
}

/// Nothing was stored for refused uploads.
fn assert_no_sources(app: &TestApp) {
    let left: Vec<_> = std::fs::read_dir(app.data.join("sources")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_unknown_form_data_is_refused() {
    let app = TestApp::spawn_with(|a| a.smoke = Some(false)).await;
    let response = app
        .post("/api/v1/builds")
        .header("Content-Type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.asm\"\r\n\r\nunterminated")
        .send()
        .await
        .unwrap();
    let (status, code, _) = error_of(response).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "bad_multipart"));

    let response = app.post("/api/v1/builds").json(&serde_json::json!({"files": []})).send().await.unwrap();
    let (status, code, _) = error_of(response).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "bad_multipart"));

    let form = Form::new().part("files", pymult_part()).text("colour", "blue");
    let (status, code, message) = error_of(app.post("/api/v1/builds").multipart(form).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "unknown_field"));
    assert_eq!(
        message,
        "unknown form field `colour` (expected files, archive, targets, name, version, debug, rebuild)"
    );

    let form = Form::new().part("files", pymult_part()).text("targets", "linux-x86_64,linux-arm64");
    let (status, code, message) = error_of(app.post("/api/v1/builds").multipart(form).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "unknown_target"));
    assert_eq!(message, "unknown target `linux-arm64` (expected linux-x86_64, macos-x86_64, windows-x86_64 or all)");

    let form = Form::new().part("files", pymult_part()).text("debug", "maybe");
    let (_, _, message) = error_of(app.post("/api/v1/builds").multipart(form).send().await.unwrap()).await;
    assert_eq!(message, "`debug` must be true or false, not `maybe`");

    let (status, code, _) =
        error_of(app.post("/api/v1/builds").multipart(Form::new().text("targets", "all")).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "no_files"));

    let form = Form::new().part("files", Part::bytes(b"x".to_vec()).file_name("src/util.py"));
    let (status, code, message) = error_of(app.post("/api/v1/builds").multipart(form).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_project"));
    assert!(message.starts_with("no assembly sources"), "{message}");
    assert_no_sources(&app);
    assert_still_serving(&app).await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_outside_the_project_are_refused() {
    let app = TestApp::spawn_with(|a| a.smoke = Some(false)).await;
    for (name, expected) in [
        ("../evil.asm", "`../evil.asm` leaves the project (`..`)"),
        ("src/../../evil.asm", "`src/../../evil.asm` leaves the project (`..`)"),
        ("/etc/evil.asm", "`/etc/evil.asm` is an absolute path; paths must be relative to the project"),
    ] {
        let form = Form::new().part("files", Part::bytes(b"x".to_vec()).file_name(name));
        let (status, code, message) = error_of(app.post("/api/v1/builds").multipart(form).send().await.unwrap()).await;
        assert_eq!((status, code.as_str(), message.as_str()), (StatusCode::BAD_REQUEST, "bad_path", expected));
    }
    assert!(!app.data.join("evil.asm").exists() && !std::path::Path::new("/etc/evil.asm").exists());
    assert_no_sources(&app);
    app.stop().await.unwrap();
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn tar_gz(build: impl FnOnce(&mut tar::Builder<flate2::write::GzEncoder<Vec<u8>>>)) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()));
    build(&mut tar);
    tar.into_inner().unwrap().finish().unwrap()
}

async fn upload_archive(app: &TestApp, filename: &str, bytes: Vec<u8>) -> (StatusCode, String, String) {
    let form = Form::new().part("archive", Part::bytes(bytes).file_name(filename.to_string()));
    error_of(app.post("/api/v1/builds").multipart(form).send().await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_archives_are_refused_before_anything_is_written() {
    let app = TestApp::spawn_with(|a| a.smoke = Some(false)).await;

    let escape = zip_of(&[("src/pymult.asm", PYMULT.as_bytes()), ("../../escaped.asm", b"x")]);
    let (status, _, message) = upload_archive(&app, "p.zip", escape).await;
    assert_eq!((status, message.as_str()), (StatusCode::BAD_REQUEST, "`../../escaped.asm` leaves the project (`..`)"));

    let absolute = tar_gz(|tar| {
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        // Bypass the builder's own path checks, as an attacker would.
        let name = b"/tmp/absolute.asm";
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
        header.set_cksum();
        tar.append(&header, &b"x"[..]).unwrap();
    });
    let (status, _, message) = upload_archive(&app, "p.tar.gz", absolute).await;
    assert_eq!(
        (status, message.as_str()),
        (StatusCode::BAD_REQUEST, "`/tmp/absolute.asm` is an absolute path; paths must be relative to the project")
    );

    let symlink = tar_gz(|tar| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        tar.append_link(&mut header, "src/pymult.asm", "/etc/passwd").unwrap();
    });
    let (status, _, message) = upload_archive(&app, "p.tar.gz", symlink).await;
    assert_eq!((status, message.as_str()), (StatusCode::BAD_REQUEST, "archive entry `src/pymult.asm` is a link"));

    let names: Vec<String> = (0..2001).map(|i| format!("src/m{i}.inc")).collect();
    let many: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b";"[..])).collect();
    let (status, _, message) = upload_archive(&app, "many.zip", zip_of(&many)).await;
    assert_eq!((status, message.as_str()), (StatusCode::BAD_REQUEST, "the archive has more than 2000 entries"));

    // 100 MiB of zeros packs into a few hundred KiB.
    let zeros = vec![0u8; 100 << 20];
    let bomb = zip_of(&[("src/pymult.asm", PYMULT.as_bytes()), ("src/zeros.inc", &zeros)]);
    assert!(bomb.len() < 1 << 20);
    let (status, _, message) = upload_archive(&app, "bomb.zip", bomb).await;
    assert_eq!(
        (status, message.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "the archive unpacks to more than 67108864 bytes")
    );

    let (status, _, message) = upload_archive(&app, "p.rar", b"Rar!\x1a\x07".to_vec()).await;
    assert_eq!((status, message.as_str()), (StatusCode::BAD_REQUEST, "`p.rar` is not a .zip or .tar.gz archive"));

    assert!(!std::path::Path::new("/tmp/absolute.asm").exists());
    assert_no_sources(&app);
    assert_still_serving(&app).await;
    app.stop().await.unwrap();
}

/// Sends the head of a request and at most `send` bytes of its body, then
/// reads the answer: the server must answer without waiting for the rest.
async fn raw_upload(app: &TestApp, headers: &str, body: &[u8]) -> String {
    raw_request(app.addr, headers, body).await
}

/// [`raw_upload`] to any address.
async fn raw_request(addr: std::net::SocketAddr, headers: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(headers.as_bytes()).await.unwrap();
    // The server may stop reading (and close) once it has seen enough.
    let _ = stream.write_all(body).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server waited for the whole body");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_over_the_limit_are_refused_with_413() {
    let app = TestApp::spawn_with(|a| {
        a.max_upload = Some(64 * 1024);
        a.smoke = Some(false);
    })
    .await;
    // A declared length over the limit is refused before the body is read:
    // only 1 KiB of the announced 10 MiB is ever sent.
    let head = format!(
        "POST /api/v1/builds HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; boundary=B\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        app.addr,
        10 << 20
    );
    let answer = raw_upload(&app, &head, &[b'x'; 1024]).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"code\":\"too_large\""), "{answer}");

    // Without a Content-Length (chunked), the limit applies while streaming.
    let head = format!(
        "POST /api/v1/builds HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; boundary=B\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.addr
    );
    let mut body = Vec::new();
    let part_head = b"--B\r\nContent-Disposition: form-data; name=\"files\"; filename=\"src/big.inc\"\r\n\r\n";
    body.extend(format!("{:x}\r\n", part_head.len()).as_bytes());
    body.extend(part_head);
    body.extend(b"\r\n");
    for _ in 0..16 {
        let chunk = vec![b';'; 16 * 1024];
        body.extend(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend(&chunk);
        body.extend(b"\r\n");
    }
    let answer = raw_upload(&app, &head, &body).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"code\":\"too_large\""), "{answer}");
    assert_no_sources(&app);
    assert_still_serving(&app).await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_builds_and_artifacts_are_404() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/v1/builds/nope",
        "/api/v1/builds/nope/log",
        "/api/v1/builds/nope/artifacts/x.whl",
        "/simple/nope/",
        "/nowhere",
    ] {
        let (status, code, _) = error_of(app.client.get(app.url(path)).send().await.unwrap()).await;
        assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "not_found"), "{path}");
    }
    // No project can have a non-ASCII name: a 404, not a redirect whose
    // `Location` cannot be written (it was a 500).
    let (status, code, message) = error_of(app.client.get(app.url("/simple/I%C3%82%11/")).send().await.unwrap()).await;
    assert_eq!(
        (status, code.as_str(), message.as_str()),
        (StatusCode::NOT_FOUND, "not_found", "no project `I\u{c2}\\u{11}`")
    );
    let (status, _, message) = error_of(app.post("/api/v1/builds/nope/cancel").send().await.unwrap()).await;
    assert_eq!((status, message.as_str()), (StatusCode::NOT_FOUND, "no build `nope`"));
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_a_valid_token_when_tokens_are_configured() {
    let app = TestApp::spawn_with(|a| {
        a.tokens = Some(vec!["right-token".into()]);
        a.smoke = Some(false);
    })
    .await;
    let form = || Form::new().part("files", pymult_part()).text("targets", "linux-x86_64");
    let none = app.client.post(app.url("/api/v1/builds")).multipart(form()).send().await.unwrap();
    let (status, code, message) = error_of(none).await;
    assert_eq!((status, code.as_str()), (StatusCode::UNAUTHORIZED, "unauthorized"));
    assert_eq!(message, "this server needs `Authorization: Bearer <token>` to accept builds");
    let wrong = app.client.post(app.url("/api/v1/builds")).bearer_auth("wrong-token").multipart(form());
    let (status, _, message) = error_of(wrong.send().await.unwrap()).await;
    assert_eq!((status, message.as_str()), (StatusCode::UNAUTHORIZED, "the token is not valid"));
    let cancel = app.client.post(app.url("/api/v1/builds/x/cancel")).send().await.unwrap();
    assert_eq!(cancel.status(), StatusCode::UNAUTHORIZED);
    // Reads stay open; the right token writes.
    assert_eq!(app.client.get(app.url("/api/v1/builds")).send().await.unwrap().status(), StatusCode::OK);
    let right = app.post("/api/v1/builds").multipart(form()).send().await.unwrap();
    assert_eq!(right.status(), StatusCode::ACCEPTED);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_is_a_clear_503_and_nothing_is_lost() {
    let app = TestApp::spawn_with(|a| {
        a.db_busy_timeout_ms = Some(300);
        a.smoke = Some(false);
    })
    .await;
    let before = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    app.wait(before["id"].as_str().unwrap()).await;

    // Another process holds the write lock.
    let db = app.data.join("wheelwright.db");
    let mut locker = std::process::Command::new("python3")
        .args(["-c", "import sqlite3, sys, time\nc = sqlite3.connect(sys.argv[1], isolation_level=None)\nc.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\ntime.sleep(60)\n"])
        .arg(&db)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(locker.stdout.as_mut().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    let form = Form::new().part("files", pymult_part()).text("version", "9").text("targets", "linux-x86_64");
    let (status, code, message) = error_of(app.post("/api/v1/builds").multipart(form).send().await.unwrap()).await;
    locker.kill().unwrap();
    let _ = locker.wait();
    assert_eq!((status, code.as_str()), (StatusCode::SERVICE_UNAVAILABLE, "busy"));
    assert_eq!(message, "the database is busy; try again shortly");

    // Afterwards: the earlier build is intact and new ones work.
    let earlier = app.get_json(&format!("/api/v1/builds/{}", before["id"].as_str().unwrap())).await;
    assert_eq!(earlier["status"], "succeeded");
    assert_still_serving(&app).await;
    app.stop().await.unwrap();
}

/// A small tmpfs mounted for the test, unmounted on drop.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(SmallDisk(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_clear_503_and_nothing_is_corrupted() {
    let Some(disk) = SmallDisk::mount("4m") else {
        eprintln!("cannot mount a tmpfs here (not root?): the full-disk case is not exercised");
        return;
    };
    let data = disk.0.path().join("data");
    let mut args = test_args(&data);
    args.smoke = Some(false);
    let app = TestApp::start(config(args), None, None).await;
    let before = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    app.wait(before["id"].as_str().unwrap()).await;

    // Fill the disk to the last byte.
    let filler = disk.0.path().join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let _ = file.write_all(&[0u8; 1]);
    drop(file);

    let form = Form::new().part("files", pymult_part()).text("version", "3").text("targets", "linux-x86_64");
    let (status, code, message) = error_of(app.post("/api/v1/builds").multipart(form).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (StatusCode::SERVICE_UNAVAILABLE, "disk_full"), "{message}");
    assert_eq!(message, "the server's disk is full");

    std::fs::remove_file(&filler).unwrap();
    let earlier = app.get_json(&format!("/api/v1/builds/{}", before["id"].as_str().unwrap())).await;
    assert_eq!(earlier["status"], "succeeded");
    let check = app.client.get(app.url(earlier["artifacts"][0]["url"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(sha256(&check.bytes().await.unwrap()), earlier["artifacts"][0]["sha256"].as_str().unwrap());
    assert_still_serving(&app).await;
    app.stop().await.unwrap();
    drop(disk);
}

/// A 1.5 MB .tar.gz whose GNU long-name record claims a 1.5 GB name of `a`s
/// (the tar reader reads such records whole). Written once per target
/// directory, streaming: compressing it takes a while in a debug build.
fn long_name_bomb() -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("long-name-bomb.tar.gz");
    if path.exists() {
        return path;
    }
    const NAME: u64 = 1500 << 20;
    let partial = path.with_extension("partial");
    let file = std::io::BufWriter::new(std::fs::File::create(&partial).unwrap());
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::best());
    let mut header = tar::Header::new_gnu();
    header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    header.set_entry_type(tar::EntryType::GNULongName);
    header.set_size(NAME);
    header.set_mode(0o644);
    header.set_cksum();
    gz.write_all(header.as_bytes()).unwrap();
    let block = vec![b'a'; 1 << 20];
    for _ in 0..NAME >> 20 {
        gz.write_all(&block).unwrap();
    }
    // The entry the name belongs to, then the end of the archive.
    let mut file_header = tar::Header::new_gnu();
    file_header.set_path("x.asm").unwrap();
    file_header.set_size(0);
    file_header.set_mode(0o644);
    file_header.set_cksum();
    gz.write_all(file_header.as_bytes()).unwrap();
    gz.write_all(&[0u8; 1024]).unwrap();
    gz.finish().unwrap().into_inner().unwrap().sync_all().unwrap();
    std::fs::rename(&partial, &path).unwrap();
    path
}

/// `VmHWM` (peak resident set) of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// The daemon binary as a child process with a token, so that its memory is
/// its own (the in-process test servers share the test's).
struct ChildDaemon {
    child: std::process::Child,
    base: String,
    client: reqwest::Client,
    token: String,
    data: std::path::PathBuf,
}

impl ChildDaemon {
    async fn start(data: &std::path::Path, token: &str) -> ChildDaemon {
        let args = ["--workers", "1", "--pythons", "python3", "--smoke", "false"];
        let (child, base) = spawn_daemon(&args, data, &[("WHEELWRIGHT_TOKENS", token)]);
        wheelwright::install_crypto_provider();
        let daemon = ChildDaemon {
            child,
            base,
            client: reqwest::Client::new(),
            token: token.to_string(),
            data: data.to_path_buf(),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !daemon.client.get(daemon.url("/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
            assert!(std::time::Instant::now() < deadline, "the daemon did not become healthy");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        daemon
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(&self.token)
    }

    /// pymult still builds.
    async fn assert_still_serving(&self) {
        let form = form_of_dir(&example("pymult"), &[("targets", "linux-x86_64")]);
        let response = self.post("/api/v1/builds").multipart(form).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
        loop {
            let build: Value =
                self.client.get(self.url(&format!("/api/v1/builds/{id}"))).send().await.unwrap().json().await.unwrap();
            match build["status"].as_str().unwrap() {
                "queued" | "running" => {}
                status => return assert_eq!(status, "succeeded", "{build}"),
            }
            assert!(std::time::Instant::now() < deadline, "build {id} did not finish");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ChildDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_name_tar_bomb_is_refused_in_little_memory_with_or_without_a_token() {
    let bomb_path = tokio::task::spawn_blocking(long_name_bomb).await.unwrap();
    let bomb = std::fs::read(&bomb_path).unwrap();
    assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());
    let data = tempfile::tempdir().unwrap();
    let daemon = ChildDaemon::start(data.path(), "bomb-token").await;
    let app = &daemon;
    // Forget the start-up peak: from here VmHWM is what the bombs cost.
    std::fs::write(format!("/proc/{}/clear_refs", daemon.child.id()), "5").unwrap();
    let before = peak_rss(daemon.child.id());

    // Refused before the archive is read: the server may answer and close
    // while the body is still being sent, so these go over a raw connection.
    let addr: std::net::SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let refused = |path: &str, token_field: Option<&str>, token_after: bool| {
        let mut body = Vec::new();
        let token =
            token_field.map(|t| format!("--B\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\n{t}\r\n"));
        if let (Some(token), false) = (&token, token_after) {
            body.extend(token.as_bytes());
        }
        body.extend(b"--B\r\nContent-Disposition: form-data; name=\"archive\"; filename=\"bomb.tar.gz\"\r\n\r\n");
        body.extend(&bomb);
        body.extend(b"\r\n");
        if let (Some(token), true) = (&token, token_after) {
            body.extend(token.as_bytes());
        }
        body.extend(b"--B--\r\n");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary=B\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        async move { raw_request(addr, &head, &body).await }
    };
    // The API without a token.
    let answer = refused("/api/v1/builds", None, false).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("this server needs `Authorization: Bearer <token>` to accept builds"), "{answer}");
    // The form: the token must come first, and be right.
    let answer = refused("/builds", None, false).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("this server needs a token: the form&#39;s first field must be `token`"), "{answer}");
    let answer = refused("/builds", Some("bomb-token"), true).await;
    assert!(answer.starts_with("HTTP/1.1 401") && answer.contains("first field must be `token`"), "{answer}");
    let answer = refused("/builds", Some("wrong"), false).await;
    assert!(answer.starts_with("HTTP/1.1 401") && answer.contains("the token is missing or not valid"), "{answer}");

    // With the token, the archive is unpacked up to the cap and refused with
    // a short message, by the API and by the form.
    let archive = || Part::bytes(bomb.clone()).file_name("bomb.tar.gz");
    let (status, code, message) =
        error_of(app.post("/api/v1/builds").multipart(Form::new().part("archive", archive())).send().await.unwrap())
            .await;
    assert_eq!(
        (status, code.as_str(), message.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large", "the archive unpacks to more than 67108864 bytes")
    );
    let form = Form::new().text("token", "bomb-token").part("archive", archive());
    let page = app.client.post(app.url("/builds")).multipart(form).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let html = page.text().await.unwrap();
    assert!(html.contains("the archive unpacks to more than 67108864 bytes") && html.len() < 32 << 10, "{html}");

    let grown = peak_rss(daemon.child.id()).saturating_sub(before);
    assert!(grown < 200 << 20, "the daemon's peak memory grew by {} MiB", grown >> 20);
    let left: Vec<_> = std::fs::read_dir(app.data.join("sources")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "{left:?}");
    app.assert_still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokenless_upload_is_refused_before_its_body_is_read() {
    let app = TestApp::spawn_with(|a| {
        a.tokens = Some(vec!["right-token".into()]);
        a.smoke = Some(false);
    })
    .await;
    // 30 MiB announced (under the limit), 1 KiB sent: the answer comes anyway.
    for (path, first_part) in
        [("/api/v1/builds", "files\"; filename=\"src/a.asm"), ("/builds", "archive\"; filename=\"a.tgz")]
    {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; boundary=B\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n--B\r\nContent-Disposition: form-data; name=\"{first_part}\"\r\n\r\n",
            app.addr,
            30 << 20
        );
        let answer = raw_upload(&app, &head, &[b'x'; 1024]).await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{path}: {answer}");
    }
    // No boundary at all: the form's parser would buffer (and rescan) the
    // whole announced body looking for one; it stops at 1 MiB instead.
    let head = format!(
        "POST /builds HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; boundary=B\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        app.addr,
        30 << 20
    );
    let answer = raw_upload(&app, &head, &vec![b'x'; 3 << 20]).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("this server needs a token: the form&#39;s first field must be `token`"), "{answer}");
    app.stop().await.unwrap();
}
