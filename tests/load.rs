//! Load: 200 builds queued at once all finish, none lost or run twice, and
//! the API keeps answering meanwhile.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::future::join_all;
use serde_json::Value;

const PYMULT: &str = include_str!("../examples/pymult/src/pymult.asm");
const BUILDS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_builds_all_finish_once_while_the_api_answers() {
    // One client queues all 200 at once: more than the default per-client limit.
    let app = TestApp::spawn_with(|a| {
        a.smoke = Some(false);
        a.max_queued_per_client = Some(BUILDS as u32);
    })
    .await;
    let source = project(&[("pymult.asm", PYMULT)]);
    // Distinct versions make distinct builds (no cache hits).
    let uploads = (0..BUILDS).map(|i| {
        let form = form_of_dir(source.path(), &[("version", &format!("1.0.{i}")), ("targets", "linux-x86_64")]);
        let request = app.post("/api/v1/builds").multipart(form);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
            response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
        }
    });
    let ids: Vec<String> = join_all(uploads).await;
    assert_eq!(ids.iter().collect::<std::collections::HashSet<_>>().len(), BUILDS);

    let deadline = Instant::now() + Duration::from_secs(600);
    let mut slowest_answer = Duration::ZERO;
    loop {
        let asked = Instant::now();
        let health = app.get_json("/healthz").await;
        let one = app.get_json(&format!("/api/v1/builds/{}", ids[BUILDS / 2])).await;
        slowest_answer = slowest_answer.max(asked.elapsed());
        assert_eq!(health["status"], "ok");
        assert!(one["status"].is_string());
        let succeeded = app.get_json("/api/v1/builds?status=succeeded&limit=1").await;
        let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        let done = metrics
            .lines()
            .find_map(|l| l.strip_prefix("wheelwright_builds{status=\"succeeded\"} "))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        if done == BUILDS {
            assert!(succeeded["builds"].as_array().unwrap().len() == 1);
            break;
        }
        assert!(Instant::now() < deadline, "only {done} of {BUILDS} builds finished");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(slowest_answer < Duration::from_secs(2), "the API took {slowest_answer:?} to answer under load");

    // Each build once: succeeded, one wheel and one sdist of its own version.
    let mut seen = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = match &cursor {
            Some(c) => app.get_json(&format!("/api/v1/builds?limit=100&cursor={c}")).await,
            None => app.get_json("/api/v1/builds?limit=100").await,
        };
        for build in page["builds"].as_array().unwrap() {
            assert_eq!(build["status"], "succeeded");
            assert_eq!(build["artifacts"].as_array().unwrap().len(), 2);
            assert!(seen.insert(build["project"]["version"].as_str().unwrap().to_string()), "{build}");
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), BUILDS);
    let health = app.get_json("/healthz").await;
    assert_eq!(health["queue_depth"], 0);
    app.stop().await.unwrap();
}
