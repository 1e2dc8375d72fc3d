//! The GitHub webhook against a local bare repository standing in for
//! GitHub, with a local recording server standing in for the statuses API.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::routing::post;
use axum::{Json, Router};
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use wheelwright::config::ServeArgs;
use wheelwright::db::Database;
use wheelwright::github::signature::sign;
use wheelwright::model::{GitOrigin, PendingPush};

const SECRET: &str = "test-webhook-secret";

/// A bare repository `<base>/acme/pymult.git` holding examples/pymult.
struct Remote {
    base: tempfile::TempDir,
    commit: String,
}

impl Remote {
    fn new() -> Remote {
        // A hook in the repository must never run on the server.
        let hook = ("post-checkout", "#!/bin/sh\ntouch /tmp/wheelwright-hook-ran\n");
        let (base, commit) = bare_pymult_repo(&[hook]);
        Remote { base, commit }
    }

    fn clone_base(&self) -> String {
        format!("{}/", self.base.path().display())
    }

    fn clone_url(&self) -> String {
        format!("{}/acme/pymult.git", self.base.path().display())
    }
}

/// Statuses received: `owner/repo@sha` and the JSON body.
type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// Records every status posted to it.
async fn recording_server() -> (String, Seen) {
    let seen: Seen = Arc::default();
    async fn record(
        State(seen): State<Seen>,
        UrlPath((owner, repo, sha)): UrlPath<(String, String, String)>,
        Json(body): Json<Value>,
    ) -> (axum::http::StatusCode, Json<Value>) {
        seen.lock().unwrap().push((format!("{owner}/{repo}@{sha}"), body));
        (axum::http::StatusCode::CREATED, Json(json!({})))
    }
    let app = Router::new().route("/repos/{owner}/{repo}/statuses/{sha}", post(record)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn push_payload(remote: &Remote, repository: &str, clone_url: &str) -> Value {
    json!({
        "ref": "refs/heads/main",
        "before": "0000000000000000000000000000000000000000",
        "after": remote.commit,
        "created": true,
        "deleted": false,
        "forced": false,
        "repository": { "full_name": repository, "name": "pymult", "clone_url": clone_url },
        "pusher": { "name": "octocat" },
        "head_commit": { "id": remote.commit, "message": "pymult" }
    })
}

async fn deliver(
    app: &TestApp,
    event: &str,
    delivery: &str,
    body: &[u8],
    signature: Option<String>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/webhooks/github"))
        .header("X-GitHub-Event", event)
        .header("X-GitHub-Delivery", delivery)
        .header("Content-Type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("X-Hub-Signature-256", signature);
    }
    request.send().await.unwrap()
}

/// The webhook turned on for `acme/pymult` at `remote`, statuses to `api`.
fn enable_github(args: &mut ServeArgs, remote: &Remote, api: &str) {
    args.github_secret = Some(SECRET.into());
    args.github_repos = Some(vec!["acme/pymult".into()]);
    args.github_clone_base = Some(remote.clone_base());
    args.github_api = Some(api.to_string());
    args.github_token = Some("gh-test-token".into());
}

async fn app_for(remote: &Remote, api: &str) -> TestApp {
    TestApp::spawn_with(|a| {
        enable_github(a, remote, api);
        a.public_url = Some("https://wheelwright.example".into());
    })
    .await
}

/// The id of the first build to appear (the webhook made it in the background).
async fn first_build(app: &TestApp) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let builds = app.get_json("/api/v1/builds").await;
        if let Some(build) = builds["builds"].as_array().unwrap().first() {
            return build["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "the build never appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The states of the first `count` commit statuses posted.
async fn statuses_posted(statuses: &Seen, count: usize) -> Vec<(String, Value)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while statuses.lock().unwrap().len() < count {
        assert!(Instant::now() < deadline, "statuses were not posted: {:?}", statuses.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    statuses.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_push_builds_the_commit_and_reports_statuses_in_order() {
    let remote = Remote::new();
    let (api, statuses) = recording_server().await;
    let app = app_for(&remote, &api).await;
    let _ = std::fs::remove_file("/tmp/wheelwright-hook-ran");

    let body = serde_json::to_vec(&push_payload(&remote, "acme/pymult", &remote.clone_url())).unwrap();
    let response = deliver(&app, "push", "delivery-1", &body, Some(sign(SECRET, &body))).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let build: Value = response.json().await.unwrap();
    assert_eq!(
        build["source"],
        json!({ "repository": "acme/pymult", "ref": "refs/heads/main", "commit": remote.commit })
    );
    let id = build["id"].as_str().unwrap().to_string();
    let done = app.wait(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["project"]["name"], "pymult");
    assert!(!Path::new("/tmp/wheelwright-hook-ran").exists(), "a repository hook ran");
    let page = app.client.get(app.url(&format!("/builds/{id}"))).send().await.unwrap().text().await.unwrap();
    let short: String = remote.commit.chars().take(12).collect();
    assert!(page.contains(&format!("from <code>acme/pymult refs/heads/main @ {short}</code>")), "{page}");

    // Redelivery: the same build, not a second one.
    let again = deliver(&app, "push", "delivery-1", &body, Some(sign(SECRET, &body))).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], id.as_str());
    assert_eq!(app.get_json("/api/v1/builds").await["builds"].as_array().unwrap().len(), 1);

    // Statuses: pending, then success, both linking to the build page.
    let seen = statuses_posted(&statuses, 2).await;
    let states: Vec<&str> = seen.iter().map(|(_, b)| b["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["pending", "success"]);
    for (target, body) in &seen {
        assert_eq!(target, &format!("acme/pymult@{}", remote.commit));
        assert_eq!(body["target_url"], format!("https://wheelwright.example/builds/{id}"));
        assert_eq!(body["context"], "wheelwright");
    }
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_foreign_or_odd_deliveries_are_refused_or_ignored() {
    let remote = Remote::new();
    let (api, statuses) = recording_server().await;
    let app = app_for(&remote, &api).await;
    let body = serde_json::to_vec(&push_payload(&remote, "acme/pymult", &remote.clone_url())).unwrap();

    let missing = deliver(&app, "push", "d-1", &body, None).await;
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let wrong = deliver(&app, "push", "d-2", &body, Some(sign("not-the-secret", &body))).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let error: Value = wrong.json().await.unwrap();
    assert_eq!(error["error"]["message"], "X-Hub-Signature-256 is missing or does not match the body");

    let foreign = serde_json::to_vec(&push_payload(&remote, "evil/pymult", &remote.clone_url())).unwrap();
    let response = deliver(&app, "push", "d-3", &foreign, Some(sign(SECRET, &foreign))).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["message"],
        "`evil/pymult` is not on this server's list of repositories"
    );

    let outside =
        serde_json::to_vec(&push_payload(&remote, "acme/pymult", "https://elsewhere.example/acme/pymult.git")).unwrap();
    let response = deliver(&app, "push", "d-4", &outside, Some(sign(SECRET, &outside))).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let message = response.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.starts_with("the clone URL `https://elsewhere.example/acme/pymult.git` is not below"), "{message}");
    // Below the base only by its spelling.
    let base = remote.clone_base();
    for sneaky in [
        format!("{base}acme/../../elsewhere/pymult.git"),
        format!("{}-other/acme/pymult.git", base.trim_end_matches('/')),
    ] {
        let body = serde_json::to_vec(&push_payload(&remote, "acme/pymult", &sneaky)).unwrap();
        let response = deliver(&app, "push", &format!("d-{sneaky}"), &body, Some(sign(SECRET, &body))).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{sneaky}");
        assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "clone_url_refused");
    }
    // Below the base, but another repository than the allowed `full_name`
    // (whose signed payload it rides on).
    for other in [format!("{base}acme/other.git"), format!("{base}evil/pymult"), format!("{base}acme/pymult/x.git")] {
        let body = serde_json::to_vec(&push_payload(&remote, "acme/pymult", &other)).unwrap();
        let response = deliver(&app, "push", &format!("d-{other}"), &body, Some(sign(SECRET, &body))).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{other}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "clone_url_refused");
        assert_eq!(
            error["error"]["message"],
            format!("the clone URL `{other}` is not the repository `acme/pymult` (expected `{base}acme/pymult.git`)")
        );
    }
    // A ref that git would take for an option.
    let mut payload = push_payload(&remote, "acme/pymult", &remote.clone_url());
    payload["ref"] = json!("--upload-pack=touch /tmp/wheelwright-upload-pack");
    let body = serde_json::to_vec(&payload).unwrap();
    let response = deliver(&app, "push", "d-ref", &body, Some(sign(SECRET, &body))).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["message"],
        "`--upload-pack=touch /tmp/wheelwright-upload-pack` is not a ref"
    );

    let ping = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let response = deliver(&app, "ping", "d-5", ping, Some(sign(SECRET, ping))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let issues = br#"{"action":"opened"}"#;
    let response = deliver(&app, "issues", "d-6", issues, Some(sign(SECRET, issues))).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.json::<Value>().await.unwrap()["ignored"], "`issues` events are not built");

    let mut deletion = push_payload(&remote, "acme/pymult", &remote.clone_url());
    deletion["deleted"] = json!(true);
    deletion["after"] = json!("0000000000000000000000000000000000000000");
    let deletion = serde_json::to_vec(&deletion).unwrap();
    let response = deliver(&app, "push", "d-7", &deletion, Some(sign(SECRET, &deletion))).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.json::<Value>().await.unwrap()["ignored"], "refs/heads/main was deleted");

    assert!(app.get_json("/api/v1/builds").await["builds"].as_array().unwrap().is_empty());
    assert!(statuses.lock().unwrap().is_empty());
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secret_the_webhook_does_not_exist() {
    let app = TestApp::spawn().await;
    let response = deliver(&app, "ping", "d", b"{}", Some(sign("x", b"{}"))).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_fetch_is_answered_at_once_and_built_in_the_background() {
    let remote = Remote::new();
    let (api, statuses) = recording_server().await;
    let data = tempfile::tempdir().unwrap();
    let mut args = test_args(data.path());
    enable_github(&mut args, &remote, &api);
    args.github_repos = Some(vec!["acme/pymult".into(), "acme/missing".into()]);
    let mut config = config(args);
    // Answer before any fetch can finish.
    config.github.answer_within = Duration::ZERO;
    let app = TestApp::start(config, None, Some(data)).await;

    let body = serde_json::to_vec(&push_payload(&remote, "acme/pymult", &remote.clone_url())).unwrap();
    let response = deliver(&app, "push", "slow-1", &body, Some(sign(SECRET, &body))).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"accepted": true, "delivery": "slow-1", "status": "fetching"})
    );
    let id = first_build(&app).await;
    let done = app.wait(&id).await;
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["source"]["commit"], remote.commit.as_str());
    let again = deliver(&app, "push", "slow-1", &body, Some(sign(SECRET, &body))).await;
    assert_eq!(again.json::<Value>().await.unwrap()["id"], id.as_str());

    // A commit that cannot be fetched after the answer: an `error` status.
    let missing = format!("{}/acme/missing.git", remote.base.path().display());
    let body = serde_json::to_vec(&push_payload(&remote, "acme/missing", &missing)).unwrap();
    let response = deliver(&app, "push", "slow-2", &body, Some(sign(SECRET, &body))).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = statuses.lock().unwrap().clone();
        if let Some((target, status)) = seen.iter().find(|(t, _)| t.starts_with("acme/missing@")) {
            assert_eq!(target, &format!("acme/missing@{}", remote.commit));
            assert_eq!(status["state"], "error");
            assert!(status["description"].as_str().unwrap().starts_with("could not fetch"), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "no error status: {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_accepted_before_a_restart_is_fetched_and_built_after_it() {
    let remote = Remote::new();
    let (api, statuses) = recording_server().await;
    let data = tempfile::tempdir().unwrap();
    let args = || {
        let mut args = test_args(data.path());
        enable_github(&mut args, &remote, &api);
        args
    };
    // A daemon that accepted a push and stopped before fetching it leaves
    // exactly this behind: the pending push.
    TestApp::start(config(args()), None, None).await.stop().await.unwrap();
    let db = Database::open_sqlite(&data.path().join("wheelwright.db"), Duration::from_secs(5)).await.unwrap();
    let push = PendingPush {
        delivery: "restart-1".into(),
        origin: GitOrigin {
            repository: "acme/pymult".into(),
            git_ref: "refs/heads/main".into(),
            commit: remote.commit.clone(),
        },
        clone_url: remote.clone_url(),
    };
    assert!(db.github.remember(&push).await.unwrap());
    assert!(!db.github.remember(&push).await.unwrap(), "one pending push per delivery");
    db.close().await;

    let app = TestApp::start(config(args()), None, None).await;
    let id = first_build(&app).await;
    let done = app.wait(&id).await;
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["source"]["commit"], remote.commit.as_str());

    // GitHub redelivering the same push: the same build, and no second one.
    let body = serde_json::to_vec(&push_payload(&remote, "acme/pymult", &remote.clone_url())).unwrap();
    let again = deliver(&app, "push", "restart-1", &body, Some(sign(SECRET, &body))).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], id.as_str());
    assert_eq!(app.get_json("/api/v1/builds").await["builds"].as_array().unwrap().len(), 1);
    let states: Vec<String> =
        statuses_posted(&statuses, 2).await.iter().map(|(_, b)| b["state"].as_str().unwrap().to_string()).collect();
    assert_eq!(states, ["pending", "success"]);
    let data_dir = app.data.clone();
    app.stop().await.unwrap();

    let db = Database::open_sqlite(&data_dir.join("wheelwright.db"), Duration::from_secs(5)).await.unwrap();
    assert!(db.github.pending().await.unwrap().is_empty(), "the push ended with its build");
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_reads_no_body_unsigned_or_over_25_mib() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let remote = Remote::new();
    let (api, _) = recording_server().await;
    let app = app_for(&remote, &api).await;
    // Announced, never sent: the answer must come without the body.
    for (signature, length, expected) in
        [("", 1 << 20, "HTTP/1.1 401"), ("X-Hub-Signature-256: sha256=00\r\n", 26 << 20, "HTTP/1.1 413")]
    {
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let head = format!(
            "POST /webhooks/github HTTP/1.1\r\nHost: {}\r\nX-GitHub-Event: push\r\n{signature}\
             Content-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n{{",
            app.addr
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "the webhook waited for the body");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with(expected), "{answer}");
    }
    app.stop().await.unwrap();
}
