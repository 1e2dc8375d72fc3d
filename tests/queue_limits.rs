//! The limit on queued builds per submitter: a token (or, without tokens, a
//! client address) with `max-queued-per-client` builds waiting gets 429
//! `too_many_queued` with `Retry-After`, others do not, and once one of its
//! builds leaves the queue (cancelled, or taken by a worker) it may queue again.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

const PYMULT: &str = include_str!("../examples/pymult/src/pymult.asm");

/// A build that keeps the only worker busy for 50 s, until cancelled.
fn sleeper() -> tempfile::TempDir {
    project(&[
        ("src/pymult.asm", PYMULT),
        ("tests/test_sleep.py", "import time\n\ndef test_sleep():\n    time.sleep(50)\n"),
    ])
}

/// A multipart upload of a small project of its own version (no cache hits).
fn version_form(version: &str) -> reqwest::multipart::Form {
    let dir = project(&[("pymult.asm", PYMULT)]);
    form_of_dir(dir.path(), &[("version", version), ("targets", "linux-x86_64")])
}

/// The id of an accepted upload, asserting 202.
async fn accepted(response: reqwest::Response) -> String {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "queued", "{body}");
    body["id"].as_str().unwrap().to_string()
}

/// Asserts the queue-limit refusal, exactly.
async fn assert_too_many_queued(response: reqwest::Response, queued: usize) {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "30");
    let body: Value = response.json().await.unwrap();
    let message = format!(
        "{queued} of your builds are already waiting, the most this server queues for one client; try again when \
         some have started"
    );
    assert_eq!(body, serde_json::json!({ "error": { "code": "too_many_queued", "message": message } }));
}

async fn cancel(app: &TestApp, id: &str) {
    let response = app.post(&format!("/api/v1/builds/{id}/cancel")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_with_its_limit_of_queued_builds_gets_429_until_one_leaves_the_queue() {
    let app = TestApp::spawn_with(|a| {
        a.workers = Some(1);
        a.max_queued_per_client = Some(2);
        a.tokens = Some(vec!["alice-token".into(), "bob-token".into()]);
    })
    .await;
    let busy = app.submit(sleeper().path(), &[("targets", "linux-x86_64")]).await;
    let busy = busy["id"].as_str().unwrap().to_string();
    app.wait_for_status(&busy, "running").await;

    let alice = |version: &str| app.post("/api/v1/builds").multipart(version_form(version)).send();
    let first = accepted(alice("1").await.unwrap()).await;
    let second = accepted(alice("2").await.unwrap()).await;
    assert_too_many_queued(alice("3").await.unwrap(), 2).await;
    // Running builds do not count, and nor do other tokens' builds.
    let bob = app.client.post(app.url("/api/v1/builds")).bearer_auth("bob-token").multipart(version_form("4"));
    accepted(bob.send().await.unwrap()).await;
    // Refused uploads left nothing behind.
    let listed = app.get_json("/api/v1/builds?status=queued").await;
    assert_eq!(listed["builds"].as_array().unwrap().len(), 3, "{listed}");

    // A cancelled build leaves the queue: Alice may queue one more.
    cancel(&app, &first).await;
    accepted(alice("3").await.unwrap()).await;
    assert_too_many_queued(alice("5").await.unwrap(), 2).await;

    // A build a worker takes leaves it too.
    cancel(&app, &busy).await;
    let taken = app.wait(&second).await;
    assert_eq!(taken["status"], "succeeded", "{taken}");
    accepted(alice("5").await.unwrap()).await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tokens_queued_builds_are_counted_per_client_address() {
    let app = TestApp::spawn_with(|a| {
        a.workers = Some(1);
        a.max_queued_per_client = Some(1);
    })
    .await;
    let busy = app.submit(sleeper().path(), &[("targets", "linux-x86_64")]).await;
    let busy = busy["id"].as_str().unwrap().to_string();
    app.wait_for_status(&busy, "running").await;

    let from_here = |version: &str| app.post("/api/v1/builds").multipart(version_form(version)).send();
    let queued = accepted(from_here("1").await.unwrap()).await;
    assert_too_many_queued(from_here("2").await.unwrap(), 1).await;
    // Another loopback address is another client.
    let elsewhere = reqwest::Client::builder().local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))).build().unwrap();
    let other = elsewhere.post(app.url("/api/v1/builds")).multipart(version_form("3")).send().await.unwrap();
    let other = accepted(other).await;
    assert_too_many_queued(from_here("2").await.unwrap(), 1).await;

    cancel(&app, &queued).await;
    let again = accepted(from_here("2").await.unwrap()).await;
    for id in [&again, &other, &busy] {
        cancel(&app, id).await;
    }
    app.stop().await.unwrap();
}
