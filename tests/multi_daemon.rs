//! Two daemons on one PostgreSQL database: any daemon serves any build
//! (its live log, its cancel, its downloads), a build whose daemon is
//! killed is finished by the other once its lease expires, and a burst of
//! builds spread over both is built exactly once each.
//!
//! On S3 (`WHEELWRIGHT_TEST_S3`, as the suite's second pass runs), the
//! daemons share one store prefix and the database, and nothing else: each
//! has a data directory of its own. Without it they share one data
//! directory for the local artifact store and the source trees. The tests need a PostgreSQL server (`WHEELWRIGHT_TEST_POSTGRES`,
//! which scripts/test.sh sets after starting one), so they are ignored in
//! the SQLite pass and run with `--include-ignored` in the PostgreSQL one.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::scripted::{Script, Scripted};
use common::{config, example, form_of_dir, test_args, TestApp, TestDatabase};
use futures_util::StreamExt;
use serde_json::Value;
use sha2::Digest;
use wheelwright::db::DatabaseUrl;

const NEEDS_POSTGRES: &str = "these tests need WHEELWRIGHT_TEST_POSTGRES (scripts/test.sh starts a server)";

/// What the daemons of a test share: one database, and one store (an S3
/// prefix, or the local store of one shared data directory).
struct Cluster {
    db: TestDatabase,
    store: Option<String>,
    /// A dedicated S3 server's store (in place of `store`), for an outage.
    own_s3: Option<wheelwright::store::S3Settings>,
    data: std::sync::Mutex<Vec<tempfile::TempDir>>,
}

impl Cluster {
    async fn new() -> Cluster {
        let db = TestDatabase::create().await.expect(NEEDS_POSTGRES);
        let data = std::sync::Mutex::new(vec![tempfile::tempdir().unwrap()]);
        Cluster { db, store: common::test_store(), own_s3: None, data }
    }

    /// On `server`'s bucket (a SeaweedFS of the test's own) instead of the
    /// suite's store.
    async fn on(server: &common::s3::S3Server) -> Cluster {
        let mut cluster = Cluster::new().await;
        cluster.store = None;
        cluster.own_s3 = Some(server.settings("cluster"));
        cluster
    }

    /// A data directory for one more daemon: its own on S3, else the shared one.
    fn data_dir(&self) -> std::path::PathBuf {
        let mut dirs = self.data.lock().unwrap();
        if self.store.is_some() || self.own_s3.is_some() {
            dirs.push(tempfile::tempdir().unwrap());
        }
        dirs.last().unwrap().path().to_path_buf()
    }
}

/// A daemon in this process on the cluster's database and store.
async fn daemon(
    cluster: &Cluster,
    executor: Arc<Scripted>,
    adjust: impl FnOnce(&mut wheelwright::config::ServeArgs),
) -> TestApp {
    let db = &cluster.db;
    let mut args = test_args(&cluster.data_dir());
    args.store = cluster.store.clone();
    adjust(&mut args);
    let mut config = config(args);
    config.database.url = DatabaseUrl::Postgres(db.url.clone());
    if let Some(s3) = &cluster.own_s3 {
        config.store = wheelwright::store::StoreConfig::S3(s3.clone());
    }
    TestApp::start_with(config, None, None, Some(executor)).await
}

/// A project of `files` (relative path, contents) beside pymult's pyproject.
fn project(version: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let pyproject = std::fs::read_to_string(example("pymult").join("pyproject.toml"))
        .unwrap()
        .replace("version = \"1.0.0\"", &format!("version = \"{version}\""));
    std::fs::write(dir.path().join("pyproject.toml"), pyproject).unwrap();
    std::fs::write(dir.path().join("README.md"), "pymult\n").unwrap();
    for (path, contents) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    dir
}

fn pymult(version: &str) -> tempfile::TempDir {
    project(version, &[("src/pymult.asm", include_str!("../examples/pymult/src/pymult.asm"))])
}

/// The job row of a build: (state, attempt, errors).
async fn job_of(db: &TestDatabase, build_id: &str) -> (String, i64, String) {
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let row: (String, i64, String) = sqlx::query_as("SELECT state, attempt, errors FROM jobs WHERE build_id = $1")
        .bind(build_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    row
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: scripts/test.sh runs it with --include-ignored"]
async fn a_build_submitted_through_a_is_followed_cancelled_and_downloaded_through_b() {
    let cluster = Cluster::new().await;
    let on_a = Arc::new(Scripted::new(Script::UntilCancelled));
    let a = daemon(&cluster, on_a.clone(), |_| {}).await;
    let first = pymult("1.0.0");
    let running = a.submit(first.path(), &[("targets", "linux-x86_64")]).await;
    let id = running["id"].as_str().unwrap().to_string();
    a.wait_for_status(&id, "running").await;
    // Only now does B start: the build is A's.
    let on_b = Arc::new(Scripted::new(Script::Succeed));
    let b = daemon(&cluster, on_b.clone(), |_| {}).await;

    // B follows the live log of A's build.
    let response = b
        .client
        .get(b.url(&format!("/api/v1/builds/{id}/log")))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.contains("scripted: UntilCancelled") {
        let chunk = tokio::time::timeout_at(deadline.into(), stream.next()).await.expect("the log's first lines");
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
    }

    // Cancelled through B, stopped on A, and B's follower hears the end.
    let cancelled_at = Instant::now();
    let response = b.post(&format!("/api/v1/builds/{id}/cancel")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    while !seen.contains("event: end") {
        let chunk = tokio::time::timeout_at(deadline.into(), stream.next()).await.expect("the end of the log");
        match chunk {
            Some(chunk) => seen.push_str(&String::from_utf8_lossy(&chunk.unwrap())),
            None => break,
        }
    }
    assert!(seen.contains("event: end\ndata: cancelled"), "{seen}");
    assert!(seen.contains("data: cancelled\n"), "A's own line about the cancel reached B: {seen}");
    assert!(cancelled_at.elapsed() < Duration::from_secs(10));
    assert_eq!(on_a.cancels.load(Ordering::SeqCst), 1, "A stopped the build");
    assert_eq!(on_b.runs.load(Ordering::SeqCst), 0, "B never ran it");
    assert_eq!(b.wait(&id).await["status"], "cancelled");

    // A build submitted through A is downloaded through B, whoever built it.
    on_a.set(Script::Succeed);
    let second = pymult("1.0.1");
    let built = a.submit(second.path(), &[("targets", "linux-x86_64")]).await;
    let built_id = built["id"].as_str().unwrap();
    let done = b.wait(built_id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let artifact = &done["artifacts"][0];
    let filename = artifact["filename"].as_str().unwrap();
    let bytes = b
        .client
        .get(b.url(&format!("/api/v1/builds/{built_id}/artifacts/{filename}")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), artifact["sha256"].as_str().unwrap());
    assert_eq!(
        on_a.runs.load(Ordering::SeqCst) + on_b.runs.load(Ordering::SeqCst),
        2,
        "each build ran once, on one daemon"
    );
    b.stop().await.unwrap();
    a.stop().await.unwrap();
}

/// The write token of the subprocess daemons (the shared `WHEELWRIGHT_TOKENS`).
const TOKEN: &str = "cluster-token";

/// A `wheelwright serve` subprocess on the cluster's database and store,
/// and the address it listens on. Its settings are docker/cluster.yaml's
/// daemon environment, with this machine's servers in place of the compose
/// services (tests/common/compose.rs); the flags only shorten the lease and
/// pick the interpreter and data directory, as a test needs.
fn serve(cluster: &Cluster) -> (Child, String) {
    let compose = common::compose::Compose::load();
    let local = common::compose::Local {
        database_url: &cluster.db.url,
        store: cluster.store.as_deref(),
        token: TOKEN,
        github_secret: "cluster-github-secret",
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_wheelwright"));
    command.args(["serve", "--workers", "1", "--lease-secs", "3", "--pythons", "python3"]);
    for (name, value) in common::compose::local_daemon_environment(&compose, &local) {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    let mut child = command
        .arg("--data-dir")
        .arg(cluster.data_dir())
        .env("WHEELWRIGHT_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sender = Some(sender);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.find("listening on http://") {
                if let Some(sender) = sender.take() {
                    let _ = sender.send(line[at + "listening on ".len()..].trim().to_string());
                }
            }
        }
    });
    let base = receiver.recv_timeout(Duration::from_secs(60)).expect("the daemon says where it listens");
    (child, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: scripts/test.sh runs it with --include-ignored"]
async fn a_build_whose_daemon_is_killed_is_finished_by_the_other_after_its_lease() {
    let cluster = Cluster::new().await;
    let db = &cluster.db;
    let (mut a, a_base) = serve(&cluster);
    wheelwright::install_crypto_provider();
    let client = reqwest::Client::new();
    // A slow build: its test sleeps, so A is mid-build when it dies.
    let slow = project(
        "2.0.0",
        &[
            ("src/pymult.asm", include_str!("../examples/pymult/src/pymult.asm")),
            ("tests/test_sleep.py", "import time\n\ndef test_sleep():\n    time.sleep(6)\n"),
        ],
    );
    let response = client
        .post(format!("{a_base}/api/v1/builds"))
        .bearer_auth(TOKEN)
        .multipart(form_of_dir(slow.path(), &[("targets", "linux-x86_64")]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let log = client.get(format!("{a_base}/api/v1/builds/{id}/log")).send().await.unwrap().text().await.unwrap();
        if log.contains("==> smoke") {
            break;
        }
        assert!(Instant::now() < deadline, "A never reached the smoke test:\n{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.kill().unwrap(); // SIGKILL: no shutdown, no hand-back.
    a.wait().unwrap();
    let (state, attempt, _) = job_of(db, &id).await;
    assert_eq!((state.as_str(), attempt), ("running", 1), "A died holding the claim");

    // B, with the engine, takes the build once A's lease runs out.
    let mut args = test_args(&cluster.data_dir());
    args.store = cluster.store.clone();
    args.lease_secs = Some(3);
    let mut b_config = config(args);
    b_config.database.url = DatabaseUrl::Postgres(db.url.clone());
    let b = TestApp::start_with(b_config, None, None, None).await;
    let done = b.wait(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (state, attempt, errors) = job_of(db, &id).await;
    assert_eq!((state.as_str(), attempt), ("completed", 2));
    let errors: Value = serde_json::from_str(&errors).unwrap();
    assert_eq!(errors.as_array().unwrap().len(), 1, "{errors}");
    assert_eq!(errors[0]["attempt"], 1);
    assert!(errors[0]["error"].as_str().unwrap().contains("lease expired"), "{errors}");
    // One build, one wheel and its sdist, published once; the log tells both attempts.
    let listing = b.get_json("/api/v1/builds").await;
    assert_eq!(listing["builds"].as_array().unwrap().len(), 1);
    let files: Vec<&str> =
        done["artifacts"].as_array().unwrap().iter().map(|a| a["filename"].as_str().unwrap()).collect();
    assert_eq!(files.iter().filter(|f| f.ends_with(".whl")).count(), 1, "{files:?}");
    assert_eq!(files.iter().filter(|f| f.ends_with(".tar.gz")).count(), 1, "{files:?}");
    let log = b.client.get(b.url(&format!("/api/v1/builds/{id}/log"))).send().await.unwrap().text().await.unwrap();
    assert!(log.contains(&format!("attempt 1 of build {id}")) && log.contains(&format!("attempt 2 of build {id}")));
    let simple = b.client.get(b.url("/simple/pymult/")).send().await.unwrap().text().await.unwrap();
    assert_eq!(simple.matches(">pymult-2.0.0-").count(), 1, "one wheel on the index: {simple}");
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: scripts/test.sh runs it with --include-ignored"]
async fn five_hundred_builds_over_two_daemons_are_each_built_once() {
    const BUILDS: usize = 500;
    let cluster = Cluster::new().await;
    let db = &cluster.db;
    let (on_a, on_b) = (Arc::new(Scripted::new(Script::Succeed)), Arc::new(Scripted::new(Script::Succeed)));
    let queue = |a: &mut wheelwright::config::ServeArgs| a.max_queued_per_client = Some(BUILDS as u32);
    let a = Arc::new(daemon(&cluster, on_a.clone(), queue).await);
    let b = Arc::new(daemon(&cluster, on_b.clone(), queue).await);
    let started = Instant::now();
    let mut ids = Vec::new();
    let mut uploads = tokio::task::JoinSet::new();
    for n in 0..BUILDS {
        let through = if n % 2 == 0 { a.clone() } else { b.clone() };
        uploads.spawn(async move {
            let dir = pymult(&format!("3.0.{n}"));
            through.submit(dir.path(), &[("targets", "linux-x86_64")]).await["id"].as_str().unwrap().to_string()
        });
        // A few uploads at once, not 500.
        while uploads.len() >= 8 {
            ids.push(uploads.join_next().await.unwrap().unwrap());
        }
    }
    while let Some(id) = uploads.join_next().await {
        ids.push(id.unwrap());
    }
    for id in &ids {
        let done = a.wait(id).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    eprintln!("{BUILDS} builds over two daemons in {:?}", started.elapsed());
    let (ran_a, ran_b) = (on_a.runs.load(Ordering::SeqCst), on_b.runs.load(Ordering::SeqCst));
    assert_eq!(ran_a + ran_b, BUILDS, "every build ran exactly once");
    assert!(ran_a > 0 && ran_b > 0, "both daemons built: {ran_a} and {ran_b}");
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let attempts: Vec<(i64, i64)> =
        sqlx::query_as("SELECT attempt, COUNT(*) FROM jobs GROUP BY attempt").fetch_all(&pool).await.unwrap();
    assert_eq!(attempts, [(1, BUILDS as i64)], "one attempt each");
    pool.close().await;
    // Each daemon's /metrics: the shared counts, and its own steps.
    for (app, ran) in [(&a, ran_a), (&b, ran_b)] {
        let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        for line in [
            format!("wheelwright_builds{{status=\"succeeded\"}} {BUILDS}"),
            "wheelwright_queue_depth 0".to_string(),
            format!("wheelwright_step_duration_seconds_count{{step=\"assemble\"}} {ran}"),
        ] {
            assert!(metrics.lines().any(|l| l == line), "{line} missing in\n{metrics}");
        }
    }
    for app in [a, b] {
        Arc::into_inner(app).unwrap().stop().await.unwrap();
    }
}

/// `/simple/<project>/` in PEP 691 JSON.
async fn simple_json(app: &TestApp, project: &str) -> Value {
    let response = app
        .client
        .get(app.url(&format!("/simple/{project}/")))
        .header("accept", "application/vnd.pypi.simple.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "/simple/{project}/");
    response.json().await.unwrap()
}

/// The bytes at `path` on `app`, and their sha256.
async fn fetched(app: &TestApp, path: &str) -> String {
    let response = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path} on {}", app.base);
    hex::encode(sha2::Sha256::digest(response.bytes().await.unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: scripts/test.sh runs it with --include-ignored"]
async fn a_project_built_by_a_is_a_cache_hit_on_b_and_both_indexes_serve_the_same_files() {
    let cluster = Cluster::new().await;
    let (on_a, on_b) = (Arc::new(Scripted::new(Script::Succeed)), Arc::new(Scripted::new(Script::Succeed)));
    let a = daemon(&cluster, on_a.clone(), |_| {}).await;
    let b = daemon(&cluster, on_b.clone(), |_| {}).await;
    let source = pymult("4.0.0");
    let first = a.submit(source.path(), &[("targets", "linux-x86_64")]).await;
    let first = a.wait(first["id"].as_str().unwrap()).await;
    assert_eq!(first["status"], "succeeded", "{first}");

    // The same project through B: answered from the cache at once, not built.
    let again = b.submit(source.path(), &[("targets", "linux-x86_64")]).await;
    assert_eq!(again["status"], "succeeded", "{again}");
    assert_eq!(again["cached_from"], first["id"]);
    let files_of = |build: &Value| -> Vec<(String, String)> {
        let artifacts = build["artifacts"].as_array().unwrap().iter();
        artifacts.map(|x| (x["filename"].as_str().unwrap().into(), x["sha256"].as_str().unwrap().into())).collect()
    };
    assert_eq!(files_of(&again), files_of(&first), "the very files of A's build");
    assert_eq!(on_a.runs.load(Ordering::SeqCst) + on_b.runs.load(Ordering::SeqCst), 1, "built once");

    // Both indexes: the same files with the same hashes, and the bytes (the
    // wheel, the sdist and the wheel's .metadata) fetched from either match them.
    let (index_a, index_b) = (simple_json(&a, "pymult").await, simple_json(&b, "pymult").await);
    assert_eq!(index_a["files"], index_b["files"]);
    let files = index_a["files"].as_array().unwrap();
    let mut names: Vec<String> = files.iter().map(|f| f["filename"].as_str().unwrap().to_string()).collect();
    names.sort();
    let mut built_names: Vec<String> = files_of(&first).into_iter().map(|(name, _)| name).collect();
    built_names.sort();
    assert_eq!(names, built_names, "the index lists the build's files");
    for file in files {
        let url = file["url"].as_str().unwrap();
        let path = url.split_once("://").map_or(url, |(_, rest)| &rest[rest.find('/').unwrap()..]);
        let path = path.split('#').next().unwrap();
        for app in [&a, &b] {
            assert_eq!(fetched(app, path).await, file["hashes"]["sha256"].as_str().unwrap(), "{path}");
        }
        let built = first["artifacts"].as_array().unwrap().iter().find(|x| x["filename"] == file["filename"]);
        assert_eq!(file["hashes"]["sha256"], built.unwrap()["sha256"], "the index names the build's bytes");
        if let Some(metadata) = file.get("core-metadata") {
            for app in [&a, &b] {
                assert_eq!(fetched(app, &format!("{path}.metadata")).await, metadata["sha256"].as_str().unwrap());
            }
        }
    }
    assert!(files.iter().any(|f| f.get("core-metadata").is_some()), "the wheel's .metadata is listed: {files:?}");
    // The HTML pages say the same.
    let html_a = a.client.get(a.url("/simple/pymult/")).send().await.unwrap().text().await.unwrap();
    let html_b = b.client.get(b.url("/simple/pymult/")).send().await.unwrap().text().await.unwrap();
    for file in files {
        let hash = format!("sha256={}", file["hashes"]["sha256"].as_str().unwrap());
        assert!(html_a.contains(&hash) && html_b.contains(&hash), "{hash} on both pages:\n{html_a}\n{html_b}");
    }
    b.stop().await.unwrap();
    a.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: scripts/test.sh runs it with --include-ignored"]
async fn a_store_outage_under_two_daemons_gives_503s_and_leaves_no_half_written_record() {
    let server = common::s3::S3Server::start();
    let cluster = Cluster::on(&server).await;
    let (on_a, on_b) = (Arc::new(Scripted::new(Script::Succeed)), Arc::new(Scripted::new(Script::Succeed)));
    let a = daemon(&cluster, on_a.clone(), |_| {}).await;
    let b = daemon(&cluster, on_b.clone(), |_| {}).await;
    let source = pymult("5.0.0");
    let built = a.submit(source.path(), &[("targets", "linux-x86_64")]).await;
    let built = a.wait(built["id"].as_str().unwrap()).await;
    assert_eq!(built["status"], "succeeded", "{built}");
    let download = built["artifacts"][0]["url"].as_str().unwrap().to_string();
    let rows = |app: &TestApp| {
        let url = app.url("/api/v1/builds?limit=100");
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap().json::<Value>().await.unwrap()["builds"].clone() }
    };
    let before = rows(&a).await;
    assert_eq!(before.as_array().unwrap().len(), 1);

    server.stop();
    // Uploads through either daemon: 503 store_unavailable, retry later.
    for app in [&a, &b] {
        let fresh = pymult("5.0.1");
        let refused = app.upload_dir(fresh.path(), &[("targets", "linux-x86_64")]).await;
        assert_eq!(refused.status(), 503, "through {}", app.base);
        assert_eq!(refused.headers()["retry-after"], "10");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    }
    // Downloads through either: 503 too.
    for app in [&a, &b] {
        let response = app.client.get(app.url(&download)).send().await.unwrap();
        assert_eq!(response.status(), 503, "download through {}", app.base);
    }
    // Nothing recorded on the shared database: the same single build on both,
    // no job queued for the refused uploads, nothing built.
    assert_eq!(rows(&a).await, before);
    assert_eq!(rows(&b).await, before);
    let pool = sqlx::PgPool::connect(&cluster.db.url).await.unwrap();
    let (jobs, artifacts): (i64, i64) =
        sqlx::query_as("SELECT (SELECT COUNT(*) FROM jobs), (SELECT COUNT(*) FROM artifacts)")
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert_eq!(jobs, 1, "one job: the first build's");
    assert_eq!(artifacts, built["artifacts"].as_array().unwrap().len() as i64);
    assert_eq!(on_a.runs.load(Ordering::SeqCst) + on_b.runs.load(Ordering::SeqCst), 1);
    b.stop().await.unwrap();
    a.stop().await.unwrap();
}
