//! The API against its own OpenAPI document: schemathesis (pinned in
//! scripts/setup.sh, installed in `.venv/schemathesis`) generates requests from
//! `/api/v1/openapi.json` and checks every answer against it — no server
//! errors, only documented statuses, headers and bodies, invalid input refused
//! and valid input accepted. Bounded in examples and time; zero failures.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_matches_its_openapi_document() {
    let st = repo().join(".venv/schemathesis/bin/st");
    assert!(st.exists(), "run scripts/setup.sh first: {} is missing", st.display());
    // Tokens and the webhook on: every documented door is open to a caller
    // with the right credentials, and refuses the others.
    let app = TestApp::spawn_with(|a| {
        a.tokens = Some(vec!["schemathesis-token".into()]);
        a.smoke = Some(false);
        a.github_secret = Some("schemathesis-secret".into());
        a.github_repos = Some(vec!["octo/app".into()]);
    })
    .await;
    // The build backend's wheel is made on first use (it holds the whole
    // binary: seconds for a debug build); made here, so that schemathesis's
    // requests to /backend/{filename} are answered within its timeout.
    let backend = app.client.get(app.url("/simple/wheelwright-backend/")).send().await.unwrap();
    assert_eq!(backend.status(), reqwest::StatusCode::OK);
    let reports = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(&st)
        .arg("--config-file")
        .arg(repo().join("tests/schemathesis/schemathesis.toml"))
        .arg("run")
        .arg(app.url("/api/v1/openapi.json"))
        .args(["--header", "Authorization: Bearer schemathesis-token"])
        .args(["--max-examples", "15", "--max-time", "60", "--workers", "2", "--seed", "10"])
        .args(["--no-color", "--generation-database", "none"])
        .arg("--report-dir")
        .arg(reports.path())
        .current_dir(reports.path())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("schemathesis ran past its 60 s budget by minutes")
        .expect("schemathesis starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "schemathesis found mismatches ({}):\n{stdout}\n{stderr}", output.status);
    assert!(stdout.contains("Tested: 16"), "not every operation was tested:\n{stdout}");
    // The daemon still builds afterwards.
    let build = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    assert_eq!(app.wait(build["id"].as_str().unwrap()).await["status"], "succeeded");
    app.stop().await.unwrap();
}
