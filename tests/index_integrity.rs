//! The package index against a second uploader: a published file name keeps
//! its first bytes (pip's hash pins keep working), a reproducible rebuild
//! still succeeds, debug builds publish nothing, and a project belongs to
//! whoever first published it.

mod common;

use std::path::Path;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

const LINUX_WHEEL: &str = "pymult-1.0.0-cp38-abi3-manylinux_2_5_x86_64.manylinux1_x86_64.whl";

/// examples/pymult with one more line in its README: the wheel's METADATA
/// (and so its bytes) change, its name does not.
fn pymult_with_another_readme() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for rel in files_of(&example("pymult")) {
        let dest = dir.path().join(&rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(example("pymult").join(&rel), &dest).unwrap();
    }
    let readme = dir.path().join("README.md");
    let mut text = std::fs::read_to_string(&readme).unwrap();
    text.push_str("\nOne more line, and other bytes.\n");
    std::fs::write(readme, text).unwrap();
    dir
}

fn linux_wheel(build: &Value) -> &Value {
    build["artifacts"].as_array().unwrap().iter().find(|a| a["filename"] == LINUX_WHEEL).expect("the linux wheel")
}

/// The index's JSON entry for the linux wheel, and its HTML page.
async fn index_entry(app: &TestApp) -> (Value, String) {
    index_entry_files(app, "pymult", 2).await
}

/// The same for `project`, which has `count` files.
async fn index_entry_files(app: &TestApp, project: &str, count: usize) -> (Value, String) {
    let json: Value = app
        .client
        .get(app.url(&format!("/simple/{project}/")))
        .header("Accept", "application/vnd.pypi.simple.v1+json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let files = json["files"].as_array().unwrap();
    assert_eq!(files.len(), count, "{json}");
    let wheel = files.iter().find(|f| f["filename"] == LINUX_WHEEL).unwrap().clone();
    let html = app.client.get(app.url(&format!("/simple/{project}/"))).send().await.unwrap().text().await.unwrap();
    (wheel, html)
}

/// pip, with a requirements file pinning the wheel's sha256, installs from
/// the daemon's index into a fresh environment; its output when it fails.
fn pip_install_pinned(app: &TestApp, sha256: &str) -> Result<(), String> {
    let venv = tempfile::tempdir().unwrap();
    let made = std::process::Command::new("python3").args(["-m", "venv", "--without-pip"]).arg(venv.path()).status();
    assert!(made.unwrap().success());
    let requirements = venv.path().join("requirements.txt");
    std::fs::write(&requirements, format!("pymult==1.0.0 --hash=sha256:{sha256}\n")).unwrap();
    let fresh = venv.path().join("bin/python");
    let pip = std::process::Command::new(venv_python())
        .args(["-m", "pip", "--disable-pip-version-check", "--no-cache-dir", "--python"])
        .arg(&fresh)
        .args(["install", "--only-binary", ":all:", "--require-hashes", "--index-url", &app.url("/simple/"), "-r"])
        .arg(&requirements)
        .output()
        .unwrap();
    if !pip.status.success() {
        return Err(String::from_utf8_lossy(&pip.stderr).into_owned());
    }
    let out = std::process::Command::new(&fresh).args(["-c", "import pymult; print(pymult.multiply(6, 7))"]).output();
    assert_eq!(String::from_utf8_lossy(&out.unwrap().stdout).trim(), "42");
    Ok(())
}

async fn log_of(app: &TestApp, id: &str) -> String {
    app.client.get(app.url(&format!("/api/v1/builds/{id}/log"))).send().await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_file_name_keeps_its_first_bytes() {
    let app = TestApp::spawn_with(|a| a.smoke = Some(false)).await;
    let linux = [("targets", "linux-x86_64")];
    let first = app.submit(&example("pymult"), &linux).await;
    let first = app.wait(first["id"].as_str().unwrap()).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let first_id = first["id"].as_str().unwrap();
    let first_sha = linux_wheel(&first)["sha256"].as_str().unwrap().to_string();
    let first_url = format!("/api/v1/builds/{first_id}/artifacts/{LINUX_WHEEL}");

    // The same name and version with other bytes: built, refused, not published.
    let changed = pymult_with_another_readme();
    let second = app.submit(changed.path(), &linux).await;
    let second_id = second["id"].as_str().unwrap().to_string();
    let second = app.wait(&second_id).await;
    assert_eq!(second["status"], "failed", "{second}");
    let second_sha = linux_wheel(&second)["sha256"].as_str().unwrap().to_string();
    assert_ne!(second_sha, first_sha, "the README change must change the wheel's bytes");
    let wheel_reason = format!(
        "{LINUX_WHEEL} was already published with other bytes (sha256 {first_sha}, build {first_id}); this build \
         made sha256 {second_sha}, which is not published: bump the version"
    );
    let target = &second["targets"][0];
    assert_eq!((target["target"].as_str(), target["status"].as_str()), (Some("linux-x86_64"), Some("failed")));
    assert_eq!(target["reason"], wheel_reason.as_str());
    // No step failed (smoke tests are off here): only publishing was refused.
    let steps: Vec<(&str, &str)> = target["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    let worked = [
        ("assemble", "succeeded"),
        ("check", "succeeded"),
        ("abi", "succeeded"),
        ("link", "succeeded"),
        ("verify", "succeeded"),
    ];
    assert_eq!(steps, [&worked[..], &[("package", "succeeded"), ("smoke", "skipped")]].concat());
    let error = second["error"].as_str().unwrap();
    let lines: Vec<&str> = error.lines().collect();
    assert_eq!(lines.len(), 2, "{error}");
    assert_eq!(lines[0], wheel_reason);
    assert!(lines[1].starts_with("pymult-1.0.0.tar.gz was already published with other bytes (sha256 "), "{error}");
    let log = log_of(&app, &second_id).await;
    assert!(log.contains(&format!("\n{wheel_reason}\n")), "{log}");

    // The index still serves the first bytes, as JSON and as HTML.
    let (wheel, html) = index_entry(&app).await;
    assert_eq!(wheel["hashes"]["sha256"], first_sha.as_str());
    assert_eq!(wheel["url"], first_url.as_str());
    assert!(html.contains(&format!("<a href=\"{first_url}#sha256={first_sha}\"")), "{html}");
    assert!(!html.contains(&second_sha) && !html.contains(&second_id), "{html}");
    // The project page shows the refusal, without the refused wheel.
    let project = app.get_json("/api/v1/projects/pymult").await;
    let cell = &project["versions"][0]["targets"][0];
    assert_eq!(
        (cell["target"].as_str(), cell["status"].as_str(), cell["build_id"].as_str()),
        (Some("linux-x86_64"), Some("failed"), Some(second_id.as_str()))
    );
    assert_eq!(cell["artifacts"], serde_json::json!([]));
    // ... which pip, pinned to them, installs.
    pip_install_pinned(&app, &first_sha).unwrap();
    let refused = pip_install_pinned(&app, &second_sha).unwrap_err();
    assert!(refused.contains("THESE PACKAGES DO NOT MATCH THE HASHES"), "{refused}");

    // The first source built again gives the same bytes: that is fine.
    let again = app.submit(&example("pymult"), &[("targets", "linux-x86_64"), ("rebuild", "true")]).await;
    let again = app.wait(again["id"].as_str().unwrap()).await;
    assert_eq!(again["status"], "succeeded", "{again}");
    assert_eq!(again["error"], Value::Null);
    assert_eq!(linux_wheel(&again)["sha256"], first_sha.as_str());

    // A debug build (other bytes, same name) succeeds and publishes nothing.
    let debug = app.submit(&example("pymult"), &[("targets", "linux-x86_64"), ("debug", "true")]).await;
    let debug_id = debug["id"].as_str().unwrap().to_string();
    let debug = app.wait(&debug_id).await;
    assert_eq!(debug["status"], "succeeded", "{debug}");
    assert_ne!(linux_wheel(&debug)["sha256"], first_sha.as_str(), "a debug wheel has other bytes");
    assert!(log_of(&app, &debug_id)
        .await
        .contains("\ndebug build: its files are not published to the package index\n"));
    let (wheel, _) = index_entry(&app).await;
    assert_eq!((wheel["hashes"]["sha256"].as_str(), wheel["url"].as_str()), (Some(&*first_sha), Some(&*first_url)));
    app.stop().await.unwrap();
}

fn form_with_token(token: &str, dir: &Path) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new().text("token", token.to_string());
    for rel in files_of(dir) {
        let data = std::fs::read(dir.join(&rel)).unwrap();
        form = form.part("files", reqwest::multipart::Part::bytes(data).file_name(rel.display().to_string()));
    }
    form.text("targets", "linux-x86_64")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_belongs_to_the_token_that_first_published_it() {
    let app = TestApp::spawn_with(|a| {
        a.smoke = Some(false);
        a.tokens = Some(vec!["alice-token".into(), "bob-token".into()]);
    })
    .await;
    let linux = [("targets", "linux-x86_64")];
    let first = app.submit(&example("pymult"), &linux).await;
    let first = app.wait(first["id"].as_str().unwrap()).await;
    assert_eq!(first["status"], "succeeded", "{first}");

    // Bob may not upload Alice's project, whatever its bytes.
    let message = "project `pymult` belongs to another token, which published it first; only its owner can \
                   publish it (or choose another name)";
    let changed = pymult_with_another_readme();
    for dir in [example("pymult"), changed.path().to_path_buf()] {
        let response = app
            .client
            .post(app.url("/api/v1/builds"))
            .bearer_auth("bob-token")
            .multipart(form_of_dir(&dir, &linux))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, serde_json::json!({ "error": { "code": "project_owned", "message": message } }));
    }
    // Nor through the upload form, which shows why.
    let page = app.client.post(app.url("/builds")).multipart(form_with_token("bob-token", &example("pymult"))).send();
    let page = page.await.unwrap();
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    let html = page.text().await.unwrap();
    assert!(html.contains(message), "{html}");
    // Nothing was recorded for Bob: the only builds are Alice's.
    let listed = app.get_json("/api/v1/builds").await;
    assert_eq!(listed["builds"].as_array().unwrap().len(), 1, "{listed}");

    // Bob's own project is his; Alice may upload hers again.
    let bobs = project(&[("pymult.asm", include_str!("../examples/pymult/src/pymult.asm"))]);
    let response = app
        .client
        .post(app.url("/api/v1/builds"))
        .bearer_auth("bob-token")
        .multipart(form_of_dir(bobs.path(), &[("name", "bobs-mult"), ("targets", "linux-x86_64")]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let bobs_build = response.json::<Value>().await.unwrap();
    assert_eq!(app.wait(bobs_build["id"].as_str().unwrap()).await["status"], "succeeded");
    let again = app.submit(&example("pymult"), &linux).await;
    assert_eq!((again["status"].as_str(), again["cached_from"].as_str()), (Some("succeeded"), first["id"].as_str()));

    // Bob may rebuild Alice's build: the same source, published for Alice.
    let response = app
        .client
        .post(app.url(&format!("/api/v1/builds/{}/rebuild", first["id"].as_str().unwrap())))
        .bearer_auth("bob-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let rebuilt: Value = response.json().await.unwrap();
    let rebuilt = app.wait(rebuilt["id"].as_str().unwrap()).await;
    assert_eq!(rebuilt["status"], "succeeded", "{rebuilt}");
    assert_eq!(linux_wheel(&rebuilt)["sha256"], linux_wheel(&first)["sha256"]);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_open_ownership_another_token_publishes_but_cannot_change_bytes() {
    let app = TestApp::spawn_with(|a| {
        a.smoke = Some(false);
        a.tokens = Some(vec!["alice-token".into(), "bob-token".into()]);
        a.index_ownership = Some(wheelwright::config::Ownership::Open);
    })
    .await;
    let linux = [("targets", "linux-x86_64")];
    let first = app.submit(&example("pymult"), &linux).await;
    let first = app.wait(first["id"].as_str().unwrap()).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let bob = |dir: &Path, fields: &[(&str, &str)]| {
        app.client.post(app.url("/api/v1/builds")).bearer_auth("bob-token").multipart(form_of_dir(dir, fields)).send()
    };
    // Bob's upload of the same project is accepted (here: from the cache) ...
    let same = bob(&example("pymult"), &linux).await.unwrap();
    assert_eq!(same.status(), StatusCode::ACCEPTED);
    assert_eq!(same.json::<Value>().await.unwrap()["cached_from"], first["id"]);
    // ... but other bytes under a published name are still refused.
    let changed = pymult_with_another_readme();
    let other = bob(changed.path(), &linux).await.unwrap();
    assert_eq!(other.status(), StatusCode::ACCEPTED);
    let other = app.wait(other.json::<Value>().await.unwrap()["id"].as_str().unwrap()).await;
    assert_eq!(other["status"], "failed", "{other}");
    let reason = other["targets"][0]["reason"].as_str().unwrap();
    assert!(reason.starts_with(&format!("{LINUX_WHEEL} was already published with other bytes")), "{reason}");
    let (wheel, _) = index_entry(&app).await;
    assert_eq!(wheel["hashes"]["sha256"], linux_wheel(&first)["sha256"]);
    app.stop().await.unwrap();
}

/// A database as the previous release left it: every migration before this
/// one applied, and rows written by the old code.
async fn database_before_the_upgrade(data: &Path) -> sqlx::SqlitePool {
    let earlier = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo().join("migrations")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.as_str() < "20261201000002" {
            std::fs::copy(&path, earlier.path().join(name)).unwrap();
        }
    }
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(data.join("wheelwright.db"))
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::migrate::Migrator::new(earlier.path()).await.unwrap().run(&pool).await.unwrap();
    pool
}

async fn old_build(pool: &sqlx::SqlitePool, id: &str, name: &str, repository: Option<&str>, files: &[(&str, &str)]) {
    sqlx::query(
        "INSERT INTO builds (id, status, project_name, normalized_name, project_version, targets, debug, \
         source_hash, cache_key, created_at, finished_at, source_repository, source_ref, source_commit) \
         VALUES (?, 'succeeded', ?, ?, '1.0.0', 'linux-x86_64', FALSE, ?, ?, 1, 2, ?, ?, ?)",
    )
    .bind(id)
    .bind(name)
    .bind(name)
    .bind(format!("source-{id}"))
    .bind(format!("key-{id}"))
    .bind(repository)
    .bind(repository.map(|_| "refs/heads/main"))
    .bind(repository.map(|_| "0123456789abcdef0123456789abcdef01234567"))
    .execute(pool)
    .await
    .unwrap();
    for (filename, sha256) in files {
        sqlx::query("INSERT INTO artifacts (build_id, filename, target, sha256, size) VALUES (?, ?, NULL, ?, 1)")
            .bind(id)
            .bind(filename)
            .bind(sha256)
            .execute(pool)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_publishes_the_first_bytes_and_keeps_github_projects_with_their_repository() {
    let data = tempfile::tempdir().unwrap();
    let pool = database_before_the_upgrade(data.path()).await;
    let (first, later) = ("a".repeat(64), "b".repeat(64));
    // pymult: first built from GitHub, then replaced by another upload, which
    // the old index served.
    let first_id = "01000000-0000-7000-8000-000000000001";
    old_build(&pool, first_id, "pymult", Some("Acme/PyMult"), &[(LINUX_WHEEL, &first)]).await;
    let later_id = "01000000-0000-7000-8000-000000000002";
    old_build(&pool, later_id, "pymult", None, &[(LINUX_WHEEL, &later)]).await;
    // other: first uploaded without a token (nobody known owns it).
    old_build(&pool, "01000000-0000-7000-8000-000000000003", "other", None, &[("other-1.0.0.tar.gz", &first)]).await;
    pool.close().await;

    let mut args = common::test_args(data.path());
    args.smoke = Some(false);
    args.tokens = Some(vec!["t0ken".into()]);
    let app = TestApp::start(common::config(args), Some("t0ken".into()), Some(data)).await;
    let (wheel, _) = index_entry_files(&app, "pymult", 1).await;
    assert_eq!(wheel["hashes"]["sha256"], first.as_str());
    assert_eq!(wheel["url"], format!("/api/v1/builds/{first_id}/artifacts/{LINUX_WHEEL}").as_str());

    let response = app.upload_dir(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "project `pymult` belongs to the GitHub repository acme/pymult, which published it first; only its owner \
         can publish it (or choose another name)"
    );
    let other = project(&[("pymult.asm", include_str!("../examples/pymult/src/pymult.asm"))]);
    let claimed = app.submit(other.path(), &[("name", "other"), ("version", "2.0"), ("targets", "linux-x86_64")]).await;
    assert_eq!(app.wait(claimed["id"].as_str().unwrap()).await["status"], "succeeded");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_of_a_project_published_by_upload_is_refused_by_the_webhook() {
    let (remote, commit) = bare_pymult_repo(&[]);
    const SECRET: &str = "integrity-secret";
    let app = TestApp::spawn_with(|a| {
        a.smoke = Some(false);
        a.github_secret = Some(SECRET.into());
        a.github_repos = Some(vec!["acme/pymult".into()]);
        a.github_clone_base = Some(format!("{}/", remote.path().display()));
    })
    .await;
    // This tokenless daemon's own upload publishes pymult first.
    let first = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    assert_eq!(app.wait(first["id"].as_str().unwrap()).await["status"], "succeeded");

    let payload = serde_json::json!({
        "ref": "refs/heads/main",
        "after": commit,
        "repository": { "full_name": "acme/pymult", "clone_url": format!("{}/acme/pymult.git", remote.path().display()) },
    });
    let body = serde_json::to_vec(&payload).unwrap();
    let response = app
        .client
        .post(app.url("/webhooks/github"))
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", "delivery-owned")
        .header("X-Hub-Signature-256", wheelwright::github::signature::sign(SECRET, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let error: Value = response.json().await.unwrap();
    let message = "project `pymult` belongs to this server's local uploads, which published it first; only its \
                   owner can publish it (or choose another name)";
    assert_eq!(error, serde_json::json!({ "error": { "code": "project_owned", "message": message } }));
    let listed = app.get_json("/api/v1/builds").await;
    assert_eq!(listed["builds"].as_array().unwrap().len(), 1, "the push made no build: {listed}");
    app.stop().await.unwrap();
}
