//! The web pages in a real headless Chromium (driven over WebDriver):
//! upload through the form, watch the live log reach the end, check a
//! download against the API, see failures and refusals explained, and use
//! the pages without JavaScript. Screenshots of every page go to
//! `target/tmp/screenshots/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// A chromedriver process and a browser session on it.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(javascript: bool) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        // chromedriver takes no port 0: pick a free one and retry if taken.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let mut driver = Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver is installed (scripts/setup.sh)");
            let mut args = vec![
                "--headless".to_string(),
                "--no-sandbox".into(),
                "--disable-gpu".into(),
                "--disable-dev-shm-usage".into(),
                "--disable-background-networking".into(),
                "--disable-component-update".into(),
                "--disable-sync".into(),
                "--no-first-run".into(),
                "--window-size=1200,1000".into(),
                format!("--user-data-dir={}", profile.path().display()),
            ];
            if !javascript {
                args.push("--blink-settings=scriptEnabled=false".into());
            }
            let capabilities = json!({
                "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args }
            });
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                let connector = hyper_util::client::legacy::connect::HttpConnector::new();
                let mut builder = ClientBuilder::new(connector);
                builder.capabilities(capabilities.as_object().unwrap().clone());
                if let Ok(client) = builder.connect(&format!("http://127.0.0.1:{port}")).await {
                    return Browser { client, driver, _profile: profile };
                }
                if driver.try_wait().unwrap().is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = driver.kill();
            let _ = driver.wait();
        }
        panic!("could not start chromedriver and chromium");
    }

    async fn close(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }

    async fn text(&self, css: &str) -> String {
        self.client.find(Locator::Css(css)).await.unwrap().text().await.unwrap()
    }

    /// Waits until `css` exists and its text satisfies `ok`.
    async fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                if let Ok(text) = element.text().await {
                    if ok(&text) {
                        return text;
                    }
                }
            }
            assert!(Instant::now() < deadline, "{css} never got the expected text");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the server has rendered the build's final page.
    async fn wait_final_page(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(build) = self.client.find(Locator::Css("#build")).await {
                if build.attr("data-final").await.ok().flatten().as_deref() == Some("true") {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "the build page never showed a finished build");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_url(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let url = self.client.current_url().await.unwrap().to_string();
            if url.contains(prefix) {
                return url;
            }
            assert!(Instant::now() < deadline, "never reached {prefix}: at {url}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, name: &str) {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn pick(&self, input: &str, files: &[PathBuf]) {
        let paths: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        self.client.find(Locator::Css(input)).await.unwrap().send_keys(&paths.join("\n")).await.unwrap();
    }
}

fn pymult_files() -> Vec<PathBuf> {
    ["pyproject.toml", "README.md", "src/pymult.asm", "tests/test_pymult.py"]
        .iter()
        .map(|p| example("pymult").join(p))
        .collect()
}

fn build_id(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploading_through_the_form_shows_the_live_build_and_its_downloads() {
    let app = TestApp::spawn().await;
    let browser = Browser::start(true).await;
    browser.client.goto(&app.url("/")).await.unwrap();
    browser.screenshot("upload").await;
    browser.pick("#files", &pymult_files()).await;
    browser.client.find(Locator::Css("#submit")).await.unwrap().click().await.unwrap();
    let url = browser.wait_url("/builds/").await;
    let id = build_id(&url);

    // The live log streams in while it runs, then the page shows the result.
    browser.wait_text("#log-view", |t| t.contains("linux-x86_64 · smoke")).await;
    browser.wait_final_page().await;
    assert_eq!(browser.text("#status").await, "succeeded");
    let grid = browser.text("table.grid").await;
    assert!(grid.contains("linux-x86_64") && grid.contains("windows-x86_64"), "{grid}");
    let tests = browser.text("table.testruns").await;
    assert!(tests.contains("cpython-3."), "{tests}");
    browser.screenshot("build").await;

    // The download link and the sha256 shown agree with the API and the bytes.
    let api = app.get_json(&format!("/api/v1/builds/{id}")).await;
    let wheel = api["artifacts"].as_array().unwrap().iter().find(|a| a["target"] == "linux-x86_64").unwrap().clone();
    let link = browser
        .client
        .find(Locator::XPath(&format!(
            "//a[contains(@class,'download') and text()='{}']",
            wheel["filename"].as_str().unwrap()
        )))
        .await
        .unwrap();
    let href = link.attr("href").await.unwrap().unwrap();
    let row_sha =
        link.find(Locator::XPath("ancestor::tr//code[contains(@class,'sha')]")).await.unwrap().text().await.unwrap();
    assert_eq!(row_sha, wheel["sha256"].as_str().unwrap());
    let bytes = app.client.get(app.url(&href)).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(sha256(&bytes), wheel["sha256"].as_str().unwrap());
    let pip = browser.client.find(Locator::Css("#pip")).await.unwrap().prop("value").await.unwrap().unwrap();
    assert_eq!(pip, format!("pip install --index-url http://{}/simple/ pymult==1.0.0", app.addr));

    // The other pages.
    browser.client.goto(&app.url("/builds")).await.unwrap();
    let list = browser.text("table.list").await;
    assert!(list.contains("pymult") && list.contains("succeeded"), "{list}");
    browser.screenshot("builds").await;
    browser.client.goto(&app.url("/projects/pymult")).await.unwrap();
    let matrix = browser.text("table.matrix").await;
    assert!(matrix.contains("1.0.0") && matrix.contains("succeeded"), "{matrix}");
    browser.screenshot("project").await;
    browser.close().await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_build_shows_its_reason() {
    let app = TestApp::spawn().await;
    let dir = project(&[("broken.asm", "section .text\n    mov rax,\n")]);
    let browser = Browser::start(true).await;
    browser.client.goto(&app.url("/")).await.unwrap();
    browser.pick("#files", &[dir.path().join("broken.asm")]).await;
    browser.client.find(Locator::Css("#submit")).await.unwrap().click().await.unwrap();
    browser.wait_url("/builds/").await;
    browser.wait_final_page().await;
    assert_eq!(browser.text("#status").await, "failed");
    let reasons = browser.text("section[aria-labelledby=grid-title]").await;
    assert!(reasons.contains("linux-x86_64 · assemble"), "{reasons}");
    assert!(reasons.contains("broken.asm:2: error:"), "{reasons}");
    browser.screenshot("build-failed").await;
    browser.close().await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_uploads_show_the_message_in_place() {
    let app = TestApp::spawn().await;
    let dir = project(&[("my-mod.asm", "; nothing\n"), ("helper.py", "X = 1\n")]);
    let browser = Browser::start(true).await;
    browser.client.goto(&app.url("/")).await.unwrap();

    // Caught in the browser: no assembly at all.
    browser.pick("#files", &[dir.path().join("helper.py")]).await;
    browser.client.find(Locator::Css("#submit")).await.unwrap().click().await.unwrap();
    let message = browser.wait_text("#form-error", |t| !t.is_empty()).await;
    assert_eq!(message, "There is no .asm file: a project needs at least one assembly source.");

    // Refused by the server: its JSON message is shown as it is.
    browser.client.refresh().await.unwrap();
    browser.pick("#files", &[dir.path().join("my-mod.asm")]).await;
    browser.client.find(Locator::Css("#submit")).await.unwrap().click().await.unwrap();
    let message = browser.wait_text("#form-error", |t| t.contains("module name")).await;
    assert_eq!(message, "my-mod.asm: `my-mod` is not a valid Python module name");
    assert!(browser.client.current_url().await.unwrap().path() == "/");
    browser.screenshot("upload-refused").await;
    browser.close().await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_work_without_javascript() {
    let app = TestApp::spawn_with(|a| a.smoke = Some(false)).await;
    let browser = Browser::start(false).await;
    browser.client.goto(&app.url("/")).await.unwrap();
    browser.pick("#files", &pymult_files()).await;
    browser.client.find(Locator::Css("#submit")).await.unwrap().click().await.unwrap();
    let url = browser.wait_url("/builds/").await;
    let id = build_id(&url);
    // Without script the page refreshes itself until the build is done.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = browser.text("#status").await;
        if status == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "status stayed {status}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        browser.client.refresh().await.unwrap();
    }
    let log = browser.text("#log").await;
    assert!(log.contains("[linux-x86_64] ==> assemble"), "{log}");
    let api: Value = app.get_json(&format!("/api/v1/builds/{id}")).await;
    assert_eq!(api["status"], "succeeded");

    // A server refusal comes back as the form with the message.
    let dir = project(&[("my-mod.asm", "; nothing\n")]);
    browser.client.goto(&app.url("/")).await.unwrap();
    browser.pick("#files", &[dir.path().join("my-mod.asm")]).await;
    browser.client.find(Locator::Css("#submit")).await.unwrap().click().await.unwrap();
    let message = browser.wait_text("#form-error", |t| !t.is_empty()).await;
    assert_eq!(message, "my-mod.asm: `my-mod` is not a valid Python module name");
    browser.close().await;
    app.stop().await.unwrap();
}

/// Parses `html` with html5lib in strict mode; returns its complaint, if any.
fn html_errors(html: &str) -> Option<String> {
    let mut child = Command::new(venv_python())
        .args([
            "-c",
            "import sys, html5lib\ntry:\n    html5lib.HTMLParser(strict=True).parse(sys.stdin.read())\nexcept Exception as e:\n    print(repr(e)); sys.exit(1)\n",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), html.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (!out.status.success()).then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_valid_html_fit_a_phone_and_show_crashes_readably() {
    let app = TestApp::spawn().await;
    let segfault = repo().join("workers/tests/fixtures/segfault");
    let build = app.submit(&segfault, &[]).await;
    let id = build["id"].as_str().unwrap().to_string();
    assert_eq!(app.wait(&id).await["status"], "failed");

    let pages = ["/".to_string(), "/builds".into(), format!("/builds/{id}"), "/projects/segfault".into()];
    for page in &pages {
        let html = app.client.get(app.url(page)).send().await.unwrap().text().await.unwrap();
        assert_eq!(html_errors(&html), None, "{page} is not valid HTML");
    }

    let browser = Browser::start(true).await;
    browser.client.goto(&app.url(&format!("/builds/{id}"))).await.unwrap();
    let crash = browser.text(".crash").await;
    assert!(crash.contains("Crash: SIGSEGV"), "{crash}");
    assert!(crash.contains("src/segfault.asm:20: mov rax, [rax]"), "{crash}");
    assert!(crash.contains("rip"), "{crash}");
    browser.screenshot("build-crash").await;

    // A phone: nothing wider than the screen.
    browser.client.set_window_size(390, 844).await.unwrap();
    for page in &pages {
        browser.client.goto(&app.url(page)).await.unwrap();
        let fits = browser
            .client
            .execute("return document.documentElement.scrollWidth <= window.innerWidth + 1;", vec![])
            .await
            .unwrap();
        assert_eq!(fits, Value::Bool(true), "{page} is wider than a phone");
    }
    browser.client.goto(&app.url("/")).await.unwrap();
    browser.screenshot("upload-phone").await;

    // Rebuild from the page makes a new build of the same source.
    browser.client.set_window_size(1200, 1000).await.unwrap();
    browser.client.goto(&app.url(&format!("/builds/{id}"))).await.unwrap();
    browser.client.find(Locator::Css("#rebuild button")).await.unwrap().click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let url = browser.client.current_url().await.unwrap();
        if url.path().starts_with("/builds/") && !url.path().ends_with(&id) {
            break;
        }
        assert!(Instant::now() < deadline, "the rebuild did not open a new build");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.close().await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_build_cancels_from_its_page() {
    let app = TestApp::spawn().await;
    let sleeper = project(&[
        ("src/pymult.asm", include_str!("../examples/pymult/src/pymult.asm")),
        ("tests/test_sleep.py", "import time\n\ndef test_sleep():\n    time.sleep(50)\n"),
    ]);
    let build = app.submit(sleeper.path(), &[("targets", "linux-x86_64")]).await;
    let id = build["id"].as_str().unwrap().to_string();
    app.wait_for_status(&id, "running").await;
    let browser = Browser::start(true).await;
    browser.client.goto(&app.url(&format!("/builds/{id}"))).await.unwrap();
    browser.client.find(Locator::Css("#cancel button")).await.unwrap().click().await.unwrap();
    browser.wait_final_page().await;
    assert_eq!(browser.text("#status").await, "cancelled");
    assert_eq!(app.get_json(&format!("/api/v1/builds/{id}")).await["status"], "cancelled");
    browser.close().await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_is_yanked_from_its_page_and_shows_the_banner() {
    let app = TestApp::spawn_with(|a| a.tokens = Some(vec!["yank-token".into()])).await;
    let build = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    let id = build["id"].as_str().unwrap().to_string();
    assert_eq!(app.wait(&id).await["status"], "succeeded");
    let browser = Browser::start(true).await;
    browser.client.goto(&app.url(&format!("/builds/{id}"))).await.unwrap();
    assert!(browser.client.find(Locator::Css("#yanked")).await.is_err(), "no banner before the yank");
    browser.client.find(Locator::Css("#token")).await.unwrap().send_keys("yank-token").await.unwrap();
    let reason = browser.client.find(Locator::Css("#yank-reason")).await.unwrap();
    reason.send_keys("overflows on 2**63").await.unwrap();
    browser.client.find(Locator::Css("#yank button")).await.unwrap().click().await.unwrap();
    let banner = browser.wait_text("#yanked", |t| t.starts_with("Yanked")).await;
    assert!(banner.starts_with("Yanked: overflows on 2**63"), "{banner}");
    browser.screenshot("build-yanked").await;
    // The index says so too, and the page now offers the way back.
    let html = app.client.get(app.url("/simple/pymult/")).send().await.unwrap().text().await.unwrap();
    assert_eq!(html.matches("data-yanked=\"overflows on 2**63\"").count(), 2, "{html}");
    browser.client.find(Locator::Css("#unyank button")).await.unwrap().click().await.unwrap();
    browser.wait_url(&format!("/builds/{id}")).await;
    browser.wait_text("#yank button", |t| t.contains("Yank")).await;
    assert!(browser.client.find(Locator::Css("#yanked")).await.is_err(), "the banner is gone after unyanking");
    let html = app.client.get(app.url("/simple/pymult/")).send().await.unwrap().text().await.unwrap();
    assert!(!html.contains("data-yanked"), "{html}");
    browser.close().await;
    app.stop().await.unwrap();
}
