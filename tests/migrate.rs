//! `wheelwright migrate`: an SQLite install with a local store moves to
//! PostgreSQL + S3, and a daemon there serves the same builds, files and
//! index; a second run copies nothing and checks everything; a row that
//! differs in the destination stops the run and is not overwritten.
//!
//! Needs PostgreSQL and S3 (`WHEELWRIGHT_TEST_POSTGRES`, `WHEELWRIGHT_TEST_S3`
//! and the `AWS_*` variables, which scripts/test.sh sets for its second
//! pass): ignored in the first.

mod common;

use std::sync::Arc;

use common::scripted::{Script, Scripted};
use common::{config, example, test_args, TestApp, TestDatabase};
use serde_json::Value;
use sha2::Digest;
use wheelwright::db::DatabaseUrl;

fn migrate(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wheelwright"))
        .arg("migrate")
        .args(args)
        .output()
        .expect("wheelwright runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The line of `table` in migrate's report: (rows, copied, already there).
fn counts(report: &str, table: &str) -> (u64, u64, u64) {
    let line = report.lines().find(|l| l.trim_start().starts_with(&format!("{table} "))).unwrap_or_else(|| {
        panic!("no {table} line in:\n{report}");
    });
    let numbers: Vec<u64> = line.split_whitespace().filter_map(|w| w.trim_end_matches(':').parse().ok()).collect();
    (numbers[0], numbers[1], numbers[2])
}

async fn page(app: &TestApp, path: &str) -> String {
    let response = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.unwrap()
}

async fn download_sha(app: &TestApp, url: &str) -> String {
    let response = app.client.get(app.url(url)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    hex::encode(sha2::Sha256::digest(response.bytes().await.unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL and S3: scripts/test.sh runs it with --include-ignored"]
async fn an_sqlite_install_moves_to_postgresql_and_s3_and_serves_the_same() {
    let db = TestDatabase::create().await.expect("WHEELWRIGHT_TEST_POSTGRES");
    let store = common::test_store().expect("WHEELWRIGHT_TEST_S3");
    // The old install: SQLite and the local store, named explicitly (the
    // suite's PostgreSQL would otherwise take its place).
    let old = tempfile::tempdir().unwrap();
    let sqlite = old.path().join("wheelwright.db");
    let executor = Arc::new(Scripted::new(Script::Succeed));
    let app = TestApp::spawn_with_executor(
        |a| {
            *a = test_args(old.path());
            a.database_url = Some(format!("sqlite:{}", sqlite.display()));
            a.store = None;
        },
        executor.clone(),
    )
    .await;
    let first = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    let first = app.wait(first["id"].as_str().unwrap()).await;
    // The same source again: a cache hit, a build that names the first.
    let cached = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    let cached = app.wait(cached["id"].as_str().unwrap()).await;
    assert_eq!(cached["cached_from"], first["id"], "{cached}");
    let other = app.submit(&example("vecstats"), &[("targets", "linux-x86_64")]).await;
    app.wait(other["id"].as_str().unwrap()).await;
    let listing = app.get_json("/api/v1/builds").await;
    let index = page(&app, "/simple/pymult/").await;
    let mut files = Vec::new();
    for build in listing["builds"].as_array().unwrap() {
        for artifact in build["artifacts"].as_array().unwrap() {
            let url = artifact["url"].as_str().unwrap().to_string();
            files.push((url.clone(), download_sha(&app, &url).await));
        }
    }
    assert_eq!(files.len(), 3, "a wheel per build: {files:?}");
    app.stop().await.unwrap();

    let from = format!("sqlite:{}", sqlite.display());
    let args = ["--from", &from, "--to", &db.url, "--to-store", &store];
    let (ok, report) = migrate(&args);
    assert!(ok, "{report}");
    let (rows, copied, there) = counts(&report, "builds");
    assert_eq!((rows, copied, there), (3, 3, 0), "{report}");
    assert!(counts(&report, "build_logs").1 > 0, "{report}");
    assert!(report.contains("3 source trees"), "{report}");

    // Again: nothing to write, everything read back and equal.
    let (ok, again) = migrate(&args);
    assert!(ok, "{again}");
    assert_eq!(counts(&again, "builds"), (3, 0, 3), "{again}");
    assert!(again.contains(" 0 copied (0 bytes)"), "{again}");

    // A daemon on the new install, with an empty data directory of its own:
    // the same builds, the same bytes, the same index, and a rebuild whose
    // sources come from the store.
    let fresh = tempfile::tempdir().unwrap();
    let mut args = test_args(fresh.path());
    args.store = Some(store.clone());
    let mut moved_config = config(args);
    moved_config.database.url = DatabaseUrl::Postgres(db.url.clone());
    let moved = TestApp::start_with(moved_config, None, None, Some(executor.clone())).await;
    assert_eq!(moved.get_json("/api/v1/builds").await, listing);
    assert_eq!(page(&moved, "/simple/pymult/").await, index);
    for (url, sha) in &files {
        assert_eq!(&download_sha(&moved, url).await, sha, "{url}");
    }
    let rebuild =
        moved.post(&format!("/api/v1/builds/{}/rebuild", first["id"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(rebuild.status(), 202);
    let rebuild: Value = rebuild.json().await.unwrap();
    assert_eq!(moved.wait(rebuild["id"].as_str().unwrap()).await["status"], "succeeded");
    moved.stop().await.unwrap();

    // A row that differs in the destination is reported, not overwritten.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let first_id = first["id"].as_str().unwrap();
    sqlx::query("UPDATE builds SET project_version = '9.9.9' WHERE id = $1")
        .bind(first_id)
        .execute(&pool)
        .await
        .unwrap();
    let (ok, refused) = migrate(&["--from", &from, "--to", &db.url]);
    assert!(!ok, "{refused}");
    assert!(refused.contains("differs in the destination") && refused.contains("project_version"), "{refused}");
    let version: String = sqlx::query_scalar("SELECT project_version FROM builds WHERE id = $1")
        .bind(first_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(version, "9.9.9");
    pool.close().await;
}

#[test]
fn migrate_says_what_is_wrong_with_its_arguments() {
    let (ok, text) = migrate(&["--from", "postgres://x@localhost/db", "--to", "postgres://x@localhost/db"]);
    assert!(!ok && text.contains("--from must be an SQLite database"), "{text}");
    let (ok, text) = migrate(&["--from", "sqlite:/nonexistent/wheelwright.db"]);
    assert!(!ok && text.contains("nothing to do"), "{text}");
    let (ok, text) = migrate(&["--from", "sqlite:/nonexistent/wheelwright.db", "--to", "postgres://x@127.0.0.1:1/db"]);
    assert!(!ok && text.contains("no SQLite database at /nonexistent/wheelwright.db"), "{text}");
}
