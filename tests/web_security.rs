//! Web hardening against a real daemon: security headers on every answer,
//! a `Host` allow-list (DNS rebinding), and no writes from another site's
//! pages (CSRF), while curl-like clients and same-origin pages work as before.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    let app = TestApp::spawn_with(|a| a.smoke = Some(false)).await;
    for path in ["/", "/builds", "/static/app.js", "/api/v1/builds", "/simple/", "/nowhere", "/healthz"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        let headers = response.headers();
        assert_eq!(headers["content-security-policy"], CSP, "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
    }
    // Refusals too.
    let refused = app.client.get(app.url("/")).header("Host", "evil.example").send().await.unwrap();
    assert_eq!(refused.headers()["x-frame-options"], "DENY");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_host_is_refused_and_the_pip_line_names_only_allowed_hosts() {
    let app = TestApp::spawn_with(|a| {
        a.smoke = Some(false);
        a.public_url = Some("https://builds.example.org".into());
    })
    .await;
    let build = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    assert_eq!(app.wait(build["id"].as_str().unwrap()).await["status"], "succeeded");
    let port = app.addr.port();
    for host in ["evil.example", &format!("evil.example:{port}"), &format!("127.0.0.1:{}", port + 1), ""] {
        let response = app.client.get(app.url("/projects/pymult")).header("Host", host).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST, "{host:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unknown_host", "{host:?}");
    }
    let refused = app.post("/api/v1/builds").header("Host", "evil.example").send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::MISDIRECTED_REQUEST);
    for host in [format!("localhost:{port}"), format!("[::1]:{port}"), "builds.example.org".to_string()] {
        let response = app.client.get(app.url("/projects/pymult")).header("Host", &host).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{host}");
        let html = response.text().await.unwrap();
        let pip = format!("pip install --index-url http://{host}/simple/ pymult");
        assert!(html.contains(&pip), "{host}: no `{pip}` in\n{html}");
    }
    app.stop().await.unwrap();
}

/// A write as a browser on `origin` would send it (`None`: no Origin).
fn from_site(request: reqwest::RequestBuilder, origin: Option<&str>, site: Option<&str>) -> reqwest::RequestBuilder {
    let request = match origin {
        Some(o) => request.header("Origin", o),
        None => request,
    };
    match site {
        Some(s) => request.header("Sec-Fetch-Site", s),
        None => request,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_from_other_sites_are_refused_and_same_origin_or_curl_pass() {
    let app = TestApp::spawn_with(|a| a.smoke = Some(false)).await;
    let build = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    let id = build["id"].as_str().unwrap().to_string();
    app.wait(&id).await;
    let own = app.base.clone();
    let other_port = format!("http://127.0.0.1:{}", app.addr.port() + 1);
    let cross: [(Option<&str>, Option<&str>); 6] = [
        (Some("https://evil.example"), None),
        (Some("null"), None),
        (Some(&other_port), Some("same-site")),
        (None, Some("cross-site")),
        (None, Some("same-site")),
        (Some(&own), Some("cross-site")),
    ];
    let upload_form = || form_of_dir(&example("pymult"), &[("targets", "linux-x86_64")]);
    let cancel = format!("/builds/{id}/cancel");
    let rebuild = format!("/builds/{id}/rebuild");
    let api_rebuild = format!("/api/v1/builds/{id}/rebuild");
    let api_cancel = format!("/api/v1/builds/{id}/cancel");
    for (origin, site) in cross {
        let attempts = [
            ("/builds", app.post("/builds").multipart(upload_form())),
            ("/api/v1/builds", app.post("/api/v1/builds").multipart(upload_form())),
            (
                cancel.as_str(),
                app.post(&cancel)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(format!("token={}", "")),
            ),
            (
                rebuild.as_str(),
                app.post(&rebuild)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(format!("token={}", "")),
            ),
            (api_cancel.as_str(), app.post(&api_cancel)),
            (api_rebuild.as_str(), app.post(&api_rebuild)),
        ];
        for (path, request) in attempts {
            let response = from_site(request, origin, site).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path} from {origin:?} {site:?}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "cross_site");
            assert_eq!(body["error"]["message"], "writes from another site's pages are refused");
        }
    }
    // Nothing was built or cancelled by any of them.
    assert_eq!(app.get_json("/api/v1/builds").await["builds"].as_array().unwrap().len(), 1);

    // The server's own pages (as Chromium sends them), and clients without
    // the browser headers, write as before.
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = no_redirects
        .post(app.url(&rebuild))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("token={}", ""));
    let response = from_site(page, Some(&own), Some("same-origin")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let api = from_site(app.post("/api/v1/builds").multipart(upload_form()), Some(&own), Some("same-origin"));
    assert_eq!(api.send().await.unwrap().status(), StatusCode::ACCEPTED);
    let typed = from_site(app.post(&api_rebuild), None, Some("none"));
    assert_eq!(typed.send().await.unwrap().status(), StatusCode::ACCEPTED);
    let curl = app.post(&api_rebuild).send().await.unwrap();
    assert_eq!(curl.status(), StatusCode::ACCEPTED);
    assert_eq!(app.get_json("/api/v1/builds").await["builds"].as_array().unwrap().len(), 5);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_build_page_forms_need_the_right_token() {
    let app = TestApp::spawn_with(|a| {
        a.smoke = Some(false);
        a.tokens = Some(vec!["page-token".into(), "other-token".into()]);
    })
    .await;
    let build = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    let id = build["id"].as_str().unwrap().to_string();
    app.wait(&id).await;
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let rebuild = app.url(&format!("/builds/{id}/rebuild"));
    for wrong in ["", "page-toke", "page-token-", "PAGE-TOKEN"] {
        let response = no_redirects
            .post(&rebuild)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("token={}", wrong))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{wrong:?}");
        assert!(response.text().await.unwrap().contains("the token is missing or not valid"));
    }
    for right in ["page-token", "other-token"] {
        let response = no_redirects
            .post(&rebuild)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("token={}", right))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{right}");
    }
    app.stop().await.unwrap();
}
