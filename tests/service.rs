//! The daemon around the build service with the engine replaced by a
//! scripted executor: submitting, listing, cancelling, retrying, events and
//! damaged rows, each in milliseconds. (The engine's own behaviour is the
//! subject of the end-to-end tests, which keep the real engine.)

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::scripted::{Script, Scripted};
use common::{example, test_args, TestApp};
use reqwest::StatusCode;
use serde_json::Value;
use wheelwright::builds::BuildEvent;
use wheelwright::model::BuildStatus;

async fn app(script: Script) -> (TestApp, Arc<Scripted>) {
    let scripted = Arc::new(Scripted::new(script));
    let app = TestApp::spawn_with_executor(|_| {}, scripted.clone()).await;
    (app, scripted)
}

/// pymult under another name and version, as an upload with overrides
/// cannot do (its pyproject.toml names it).
fn project_named(name: &str, version: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let pymult = example("pymult");
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::copy(pymult.join("src/pymult.asm"), dir.path().join(format!("src/{name}.asm"))).unwrap();
    let pyproject = format!("[project]\nname = \"{name}\"\nversion = \"{version}\"\n");
    std::fs::write(dir.path().join("pyproject.toml"), pyproject).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_is_run_by_the_executor_the_daemon_is_given_and_its_wheel_served() {
    let (app, scripted) = app(Script::Succeed).await;
    let build = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    let done = app.wait(build["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(scripted.runs.load(Ordering::SeqCst), 1);
    let target = &done["targets"][0];
    assert_eq!(target["steps"][0]["name"], "assemble");
    assert_eq!(target["steps"][0]["status"], "succeeded");
    let artifact = &done["artifacts"][0];
    assert_eq!(artifact["filename"], "pymult-1.0.0-linux_x86_64.whl");
    let bytes = app.client.get(app.url(artifact["url"].as_str().unwrap())).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(common::scripted::note_of(&bytes), "wheel of pymult 1.0.0 for linux-x86_64");
    let log = app.client.get(app.url(&format!("/api/v1/builds/{}/log", done["id"].as_str().unwrap())));
    let log = log.send().await.unwrap().text().await.unwrap();
    assert!(log.contains("scripted: Succeed") && log.contains("[linux-x86_64] <== assemble succeeded"), "{log}");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_fails_the_build_with_its_reason_and_publishes_nothing() {
    let (app, _) = app(Script::FailLink).await;
    let build = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    let done = app.wait(build["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["targets"][0]["reason"], "undefined symbol: PyLong_FromLongg");
    assert_eq!(done["targets"][0]["steps"][1]["name"], "link");
    let index = app.client.get(app.url("/simple/pymult/")).send().await.unwrap();
    assert_eq!(index.status(), StatusCode::NOT_FOUND);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_build_reaches_its_executor_through_the_service() {
    let (app, scripted) = app(Script::UntilCancelled).await;
    let build = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    let id = build["id"].as_str().unwrap();
    app.wait_for_status(id, "running").await;
    let cancel = app.post(&format!("/api/v1/builds/{id}/cancel")).send().await.unwrap();
    assert_eq!(cancel.status(), StatusCode::OK);
    let done = app.wait(id).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert_eq!(done["error"], "cancelled");
    assert_eq!(scripted.cancels.load(Ordering::SeqCst), 1);
    let again = app.post(&format!("/api/v1/builds/{id}/cancel")).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"]["code"], "already_finished");
    assert_eq!(body["error"]["message"], format!("build `{id}` already cancelled"));
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_failure_is_retried_then_given_up_with_every_attempts_error() {
    let scripted = Arc::new(Scripted::new(Script::HostFailure));
    let app = TestApp::spawn_with_executor(|a| a.max_attempts = Some(2), scripted.clone()).await;
    let build = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    let done = app.wait(build["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(scripted.runs.load(Ordering::SeqCst), 2);
    let error = done["error"].as_str().unwrap();
    assert!(
        error.starts_with("gave up after 2 attempts: attempt 1: linux-x86_64 toolchain: missing tools: nasm"),
        "{error}"
    );
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_carries_each_builds_own_artifacts_page_by_page() {
    let (app, _) = app(Script::Succeed).await;
    let mut ids = Vec::new();
    for name in ["alpha", "beta", "gamma"] {
        let dir = project_named(name, "1.0");
        let build = app.submit(dir.path(), &[("targets", "linux-x86_64,windows-x86_64")]).await;
        ids.push(app.wait(build["id"].as_str().unwrap()).await["id"].as_str().unwrap().to_string());
    }
    let first = app.get_json("/api/v1/builds?limit=2").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app.get_json(&format!("/api/v1/builds?limit=2&cursor={cursor}")).await;
    assert_eq!(second["next_cursor"], Value::Null);
    let listed: Vec<&Value> =
        first["builds"].as_array().unwrap().iter().chain(second["builds"].as_array().unwrap()).collect();
    let listed_ids: Vec<&str> = listed.iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(listed_ids, ids.iter().rev().map(String::as_str).collect::<Vec<_>>(), "newest first");
    for build in listed {
        let own = app.get_json(&format!("/api/v1/builds/{}", build["id"].as_str().unwrap())).await;
        assert_eq!(build["artifacts"], own["artifacts"]);
        let name = build["project"]["name"].as_str().unwrap();
        let files: Vec<&str> =
            build["artifacts"].as_array().unwrap().iter().map(|a| a["filename"].as_str().unwrap()).collect();
        assert_eq!(files, [format!("{name}-1.0-linux_x86_64.whl"), format!("{name}-1.0-windows_x86_64.whl")]);
    }
    // The project page reads the same listing.
    let project = app.get_json("/api/v1/projects/beta").await;
    assert_eq!(project["versions"][0]["targets"][1]["artifacts"][0]["filename"], "beta-1.0-windows_x86_64.whl");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_row_is_an_error_not_a_silent_default() {
    let (app, _) = app(Script::Succeed).await;
    let build = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    let id = app.wait(build["id"].as_str().unwrap()).await["id"].as_str().unwrap().to_string();
    let db =
        wheelwright::db::sqlite::Sqlite::open(&app.data.join("wheelwright.db"), Duration::from_secs(5)).await.unwrap();
    for (column, value) in [("targets", "linux-x86_64,plan9-sparc"), ("report", "{\"targets\": 3}")] {
        let original: String =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {column} FROM builds WHERE id = ?")))
                .bind(&id)
                .fetch_one(db.pool())
                .await
                .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE builds SET {column} = ? WHERE id = ?")))
            .bind(value)
            .bind(&id)
            .execute(db.pool())
            .await
            .unwrap();
        for path in [format!("/api/v1/builds/{id}"), "/api/v1/builds".to_string()] {
            let response = app.client.get(app.url(&path)).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR, "{column}: {path}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "internal", "{column}: {path}");
        }
        sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE builds SET {column} = ? WHERE id = ?")))
            .bind(&original)
            .bind(&id)
            .execute(db.pool())
            .await
            .unwrap();
        assert_eq!(app.get_json(&format!("/api/v1/builds/{id}")).await["status"], "succeeded");
    }
    app.stop().await.unwrap();
}

/// The service's events, from a daemon started in-process: a build that
/// runs starts and finishes; one served from the cache only finishes; a
/// queued one cancelled finishes cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_announce_their_start_and_their_end_as_events() {
    let data = tempfile::tempdir().unwrap();
    let scripted = Arc::new(Scripted::new(Script::Succeed));
    let mut args = test_args(data.path());
    args.workers = Some(1);
    let state = wheelwright::start(common::config(args), Some(scripted.clone())).await.unwrap();
    let mut events = state.builds.events().subscribe();
    let pool = tokio::spawn(wheelwright::dispatch::run_pool(state.clone()));
    let files = wheelwright::store::read_tree(&example("pymult")).unwrap();
    let submission = || wheelwright::builds::Submission { files: files.clone(), ..Default::default() };
    let local = wheelwright::model::Submitter::local("127.0.0.1".parse().unwrap());
    async fn next(events: &mut tokio::sync::mpsc::UnboundedReceiver<BuildEvent>) -> BuildEvent {
        let event = tokio::time::timeout(Duration::from_secs(30), events.recv()).await;
        event.expect("an event in time").expect("the channel stays open")
    }

    let built = state.builds.submit(submission(), &local).await.unwrap().build.id;
    assert_eq!(next(&mut events).await, BuildEvent::Started { build_id: built.clone() });
    assert_eq!(
        next(&mut events).await,
        BuildEvent::Finished { build_id: built.clone(), status: BuildStatus::Succeeded }
    );

    let cached = state.builds.submit(submission(), &local).await.unwrap();
    assert_eq!(cached.build.cached_from.as_deref(), Some(built.as_str()));
    assert_eq!(
        next(&mut events).await,
        BuildEvent::Finished { build_id: cached.build.id, status: BuildStatus::Succeeded }
    );

    // With the only worker held by a build that runs until cancelled, the
    // next one stays queued, and is cancelled there.
    scripted.set(Script::UntilCancelled);
    let held = state
        .builds
        .submit(wheelwright::builds::Submission { rebuild: true, ..submission() }, &local)
        .await
        .unwrap()
        .build
        .id;
    assert_eq!(next(&mut events).await, BuildEvent::Started { build_id: held.clone() });
    let queued = state
        .builds
        .submit(wheelwright::builds::Submission { rebuild: true, ..submission() }, &local)
        .await
        .unwrap()
        .build
        .id;
    state.builds.cancel(&queued).await.unwrap();
    assert_eq!(next(&mut events).await, BuildEvent::Finished { build_id: queued, status: BuildStatus::Cancelled });
    state.builds.cancel(&held).await.unwrap();
    assert_eq!(next(&mut events).await, BuildEvent::Finished { build_id: held, status: BuildStatus::Cancelled });
    assert_eq!(scripted.runs.load(Ordering::SeqCst), 2, "the cached and the cancelled-while-queued builds never ran");

    state.shutdown.cancel();
    pool.await.unwrap();
    state.db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_targets_findings_reach_the_api_and_the_build_pages_checks() {
    let (app, _) = app(Script::SucceedWithWarning).await;
    let build = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    let id = build["id"].as_str().unwrap().to_string();
    let done = app.wait(&id).await;
    assert_eq!(done["status"], "succeeded", "a warning does not fail the build");
    assert_eq!(
        done["targets"][0]["findings"],
        serde_json::json!([{
            "rule": "truncated-argument",
            "severity": "warning",
            "file": "src/pymult.asm",
            "line": 31,
            "column": 5,
            "instruction": "mov edi, [value]",
            "message": "a 32-bit load into a 64-bit argument"
        }])
    );
    let page = app.client.get(app.url(&format!("/builds/{id}"))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<h2 id=\"checks-title\">Checks</h2>"), "{page}");
    assert!(page
        .contains("<code>src/pymult.asm:31:5</code>: <strong>warning</strong>: a 32-bit load into a 64-bit argument"));
    app.stop().await.unwrap();
}
