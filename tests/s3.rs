//! The daemon on a real S3-compatible store (SeaweedFS): a build end to end
//! with the real engine (sources and artifacts in the store, downloads by
//! range, the index's `.metadata`), sources fetched back from the store for
//! a rebuild, presigned redirects followed by curl, and an outage of a
//! dedicated server (503s, no rows, no artifact row naming a missing object).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::scripted::{Script, Scripted};
use common::{config, example, sha256, test_args, TestApp};
use reqwest::StatusCode;
use wheelwright::dispatch::executor::{BuildExecutor, BuildJob};
use wheelwright::store::{Downloads, S3Settings, StoreConfig};
use wheelwright_workers::pipeline::Event;
use wheelwright_workers::project::ProjectError;
use wheelwright_workers::report::BuildReport;

/// A daemon on `settings`, its builds run by `executor` (the engine when `None`).
async fn daemon(
    settings: S3Settings,
    executor: Option<Arc<dyn BuildExecutor>>,
    adjust: impl FnOnce(&mut wheelwright::config::ServeArgs),
) -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let mut args = test_args(data.path());
    args.store = None;
    adjust(&mut args);
    let mut config = config(args);
    config.store = StoreConfig::S3(settings);
    TestApp::start_with(config, None, Some(data), executor).await
}

/// Every file below `dir` (none when it does not exist).
fn files_below(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    if dir.exists() {
        common::files_of(dir)
    } else {
        Vec::new()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_on_s3_is_stored_there_and_served_by_range_with_its_metadata() {
    let (settings, _server) = common::s3::s3_store("e2e");
    let app = daemon(settings, None, |_| {}).await;
    let build = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    let build = app.wait(build["id"].as_str().unwrap()).await;
    assert_eq!(build["status"], "succeeded", "{build}");
    // Nothing in the local store: the artifacts are in S3.
    let local = app.data.join("artifacts");
    let kept: Vec<_> = files_below(&local).into_iter().filter(|p| !p.starts_with("tmp")).collect();
    assert!(kept.is_empty(), "local artifacts: {kept:?}");

    let wheel = build["artifacts"].as_array().unwrap().iter().find(|a| a["target"] == "linux-x86_64").unwrap();
    let url = app.url(wheel["url"].as_str().unwrap());
    let whole = app.client.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()["content-length"], wheel["size"].to_string().as_str());
    let bytes = whole.bytes().await.unwrap();
    assert_eq!(sha256(&bytes), wheel["sha256"].as_str().unwrap());
    let len = bytes.len();
    let tail = app.client.get(&url).header("Range", "bytes=-22").send().await.unwrap();
    assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(tail.headers()["content-range"], format!("bytes {}-{}/{len}", len - 22, len - 1).as_str());
    assert_eq!(&tail.bytes().await.unwrap()[..], &bytes[len - 22..]);
    let head = app.client.get(&url).header("Range", "bytes=0-3").send().await.unwrap();
    assert_eq!(&head.bytes().await.unwrap()[..], b"PK\x03\x04");
    let past = app.client.get(&url).header("Range", format!("bytes={len}-")).send().await.unwrap();
    assert_eq!(past.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // The index's metadata file comes from the store too: the wheel's own METADATA.
    let index = app
        .client
        .get(app.url("/simple/pymult/"))
        .header("Accept", "application/vnd.pypi.simple.v1+json")
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let file = index["files"].as_array().unwrap().iter().find(|f| f["filename"] == wheel["filename"]).unwrap();
    let metadata_url = format!("{}.metadata", file["url"].as_str().unwrap());
    let metadata = app.client.get(app.url(&metadata_url)).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(file["core-metadata"]["sha256"], sha256(&metadata).as_str());
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut inside = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_name("pymult-1.0.0.dist-info/METADATA").unwrap(), &mut inside).unwrap();
    assert_eq!(&metadata[..], &inside[..]);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_fetches_the_sources_back_from_the_store_when_the_local_copy_is_gone() {
    let (settings, _server) = common::s3::s3_store("sources");
    let app = daemon(settings, Some(Arc::new(Scripted::new(Script::Succeed))), |_| {}).await;
    let first = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    let id = first["id"].as_str().unwrap().to_string();
    assert_eq!(app.wait(&id).await["status"], "succeeded");
    // As if another daemon (without this directory) served the rebuild.
    std::fs::remove_dir_all(app.data.join("sources").join(&id)).unwrap();
    let again = app.post(&format!("/api/v1/builds/{id}/rebuild")).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    let again: serde_json::Value = again.json().await.unwrap();
    let done = app.wait(again["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        common::files_of(&app.data.join("sources").join(&id)),
        common::files_of(&example("pymult")),
        "fetched back whole"
    );
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirected_downloads_send_clients_to_a_presigned_url_that_curl_follows() {
    let (mut settings, _server) = common::s3::s3_store("redirect");
    settings.downloads = Downloads::Redirect;
    // Set here: the suite's store (second pass) comes with the default expiry.
    settings.redirect_expiry = std::time::Duration::from_secs(60);
    let app = daemon(settings, Some(Arc::new(Scripted::new(Script::Succeed))), |_| {}).await;
    let build = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    let build = app.wait(build["id"].as_str().unwrap()).await;
    let wheel = &build["artifacts"][0];
    let url = app.url(wheel["url"].as_str().unwrap());
    let no_follow = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let answer = no_follow.get(&url).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::FOUND);
    let location = answer.headers()["location"].to_str().unwrap().to_string();
    assert!(location.contains("X-Amz-Signature=") && location.contains("X-Amz-Expires=60"), "{location}");
    // Without the signature the object is not readable.
    let unsigned = location.split('?').next().unwrap();
    assert_eq!(no_follow.get(unsigned).send().await.unwrap().status(), StatusCode::FORBIDDEN);

    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("wheel.whl");
    let curl =
        std::process::Command::new("curl").args(["-sSfL", "-o"]).arg(&file).arg(&url).output().expect("curl runs");
    assert!(curl.status.success(), "curl: {}", String::from_utf8_lossy(&curl.stderr));
    assert_eq!(sha256(&std::fs::read(&file).unwrap()), wheel["sha256"].as_str().unwrap());
    app.stop().await.unwrap();
}

/// Runs builds by script once `open` is set (so that a test can stop the
/// store while a build is running).
struct Gated {
    inner: Scripted,
    open: AtomicBool,
}

impl BuildExecutor for Gated {
    fn execute(&self, job: &BuildJob, events: &(dyn Fn(Event) + Sync)) -> Result<BuildReport, ProjectError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.open.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.inner.execute(job, events)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_of_the_store_gives_503s_and_never_a_row_naming_a_missing_object() {
    let server = common::s3::S3Server::start();
    let gated = Arc::new(Gated { inner: Scripted::new(Script::Succeed), open: AtomicBool::new(true) });
    let app = daemon(server.settings("outage"), Some(gated.clone()), |a| a.max_attempts = Some(1)).await;
    let earlier = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    let earlier = app.wait(earlier["id"].as_str().unwrap()).await;
    assert_eq!(earlier["status"], "succeeded", "{earlier}");

    // A build running when the store goes away.
    gated.open.store(false, Ordering::SeqCst);
    let running = app.submit(&example("pymult"), &[("targets", "linux-x86_64"), ("rebuild", "true")]).await;
    let running_id = running["id"].as_str().unwrap().to_string();
    app.wait_for_status(&running_id, "running").await;
    server.stop();
    gated.open.store(true, Ordering::SeqCst);
    let failed = app.wait(&running_id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["artifacts"], serde_json::json!([]), "no artifact row without its object");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(error.contains("artifact store is unavailable"), "{failed}");

    // An upload: 503 with Retry-After, and no build recorded.
    let before = app.get_json("/api/v1/builds?limit=100").await["builds"].as_array().unwrap().len();
    let refused = app.upload_dir(&example("pymult"), &[("targets", "linux-x86_64"), ("rebuild", "true")]).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "10");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    let after = app.get_json("/api/v1/builds?limit=100").await["builds"].as_array().unwrap().len();
    assert_eq!(before, after, "no build row for a refused upload");
    let sources: Vec<_> = std::fs::read_dir(app.data.join("sources")).unwrap().flatten().collect();
    assert_eq!(sources.len(), 2, "only the two recorded builds' trees are left: {sources:?}");

    // A download: 503 too.
    let url = app.url(earlier["artifacts"][0]["url"].as_str().unwrap());
    let download = app.client.get(&url).send().await.unwrap();
    assert_eq!(download.status(), StatusCode::SERVICE_UNAVAILABLE);
    app.stop().await.unwrap();
}
