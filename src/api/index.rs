//! The simple repository API: PEP 503 HTML and PEP 691 JSON, chosen by
//! `Accept`, so that `pip install --index-url http://HOST/simple/ NAME`
//! installs the newest successful build.

use axum::extract::{Path, State};
use axum::http::header::{self, HeaderMap};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;
use wheelwright_workers::backend;
use wheelwright_workers::wheel::tags;

use crate::error::{ApiError, ApiResult};
use crate::model::index::IndexFile;
use crate::state::AppState;

/// The simple API version served: 1.1 adds PEP 700's `versions`, `size`
/// and `upload-time`.
const API_VERSION: &str = "1.1";

const JSON_V1: &str = "application/vnd.pypi.simple.v1+json";
const HTML_V1: &str = "application/vnd.pypi.simple.v1+html";

/// Which representation the client prefers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Html,
    TextHtml,
}

/// Picks the highest-quality type we serve from `Accept` (HTML when absent).
fn negotiate(headers: &HeaderMap) -> Result<Format, ApiError> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(Format::TextHtml);
    };
    let mut best: Option<(f32, Format)> = None;
    for item in accept.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let q = parts.find_map(|p| p.strip_prefix("q=")).and_then(|q| q.parse::<f32>().ok()).unwrap_or(1.0);
        let format = match media {
            JSON_V1 | "application/vnd.pypi.simple.latest+json" => Format::Json,
            HTML_V1 | "application/vnd.pypi.simple.latest+html" => Format::Html,
            "text/html" | "*/*" | "text/*" => Format::TextHtml,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, format));
        }
    }
    best.map(|(_, f)| f).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            format!("this index serves {JSON_V1} and {HTML_V1}"),
        )
    })
}

fn content_type(format: Format) -> &'static str {
    match format {
        Format::Json => JSON_V1,
        Format::Html => HTML_V1,
        Format::TextHtml => "text/html; charset=utf-8",
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `GET /simple/`: every project with a successful build.
pub async fn projects(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let format = negotiate(&headers)?;
    let mut names = state.builds.index_projects().await?;
    names.push(backend::NAME.to_string());
    names.sort();
    names.dedup();
    let body = if format == Format::Json {
        let projects: Vec<_> = names.iter().map(|n| json!({ "name": n })).collect();
        json!({ "meta": { "api-version": API_VERSION }, "projects": projects }).to_string()
    } else {
        let links: String =
            names.iter().map(|n| format!("    <a href=\"/simple/{n}/\">{n}</a>\n", n = escape(n))).collect();
        format!(
            "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"{API_VERSION}\">\n    \
             <title>Simple index</title>\n  </head>\n  <body>\n{links}  </body>\n</html>\n"
        )
    };
    Ok(([(header::CONTENT_TYPE, content_type(format))], body).into_response())
}

/// `GET /simple/{project}/`: the files of a project, each with its sha256 and
/// `requires-python`; names that are not normalised redirect.
pub async fn project(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if !is_project_name(&name) {
        // No build can have such a name (PEP 508 names are ASCII letters,
        // digits and `._-`), and a redirect to it would not even be a valid
        // `Location` header.
        return Err(ApiError::not_found(format!("no project `{}`", crate::upload::shown(&name))));
    }
    let normalized = tags::normalize(&name);
    if normalized != name {
        return Ok(Redirect::permanent(&format!("/simple/{normalized}/")).into_response());
    }
    let format = negotiate(&headers)?;
    let files = if normalized == backend::NAME {
        // The build backend every sdist names: this daemon's own.
        let wheel = state.builds.backend_wheel().await?;
        vec![IndexFile {
            build_id: String::new(),
            url: format!("/backend/{}", wheel.filename),
            filename: wheel.filename,
            sha256: wheel.sha256,
            requires_python: ">=3.8".into(),
            version: backend::VERSION.into(),
            size: wheel.size as i64,
            published_at: wheel.made_at,
            metadata_sha256: None,
            yanked: None,
        }]
    } else {
        state.builds.index_files(&normalized).await?
    };
    if files.is_empty() {
        return Err(ApiError::not_found(format!("no successful build of `{normalized}`")));
    }
    let url = |f: &IndexFile| f.url.clone();
    let body = if format == Format::Json {
        let entries: Vec<_> = files
            .iter()
            .map(|f| {
                let mut file = json!({
                    "filename": f.filename,
                    "url": url(f),
                    "hashes": { "sha256": f.sha256 },
                    "size": f.size,
                    "upload-time": crate::model::rfc3339(f.published_at),
                });
                if !f.requires_python.is_empty() {
                    file["requires-python"] = json!(f.requires_python);
                }
                // PEP 592 in PEP 691's form: the reason, or `true` without one.
                file["yanked"] = match f.yanked.as_deref() {
                    None => json!(false),
                    Some("") => json!(true),
                    Some(reason) => json!(reason),
                };
                if let Some(metadata) = &f.metadata_sha256 {
                    // PEP 714's name, and PEP 658's for the clients that still read it.
                    file["core-metadata"] = json!({ "sha256": metadata });
                    file["dist-info-metadata"] = json!({ "sha256": metadata });
                }
                file
            })
            .collect();
        json!({
            "meta": { "api-version": API_VERSION },
            "name": normalized,
            "versions": versions(&files),
            "files": entries,
        })
        .to_string()
    } else {
        let links: String = files
            .iter()
            .map(|f| {
                let requires = if f.requires_python.is_empty() {
                    String::new()
                } else {
                    format!(" data-requires-python=\"{}\"", escape(&f.requires_python))
                };
                let metadata = f
                    .metadata_sha256
                    .as_ref()
                    .map(|m| format!(" data-core-metadata=\"sha256={m}\" data-dist-info-metadata=\"sha256={m}\""))
                    .unwrap_or_default();
                let yanked =
                    f.yanked.as_ref().map(|reason| format!(" data-yanked=\"{}\"", escape(reason))).unwrap_or_default();
                format!(
                    "    <a href=\"{}#sha256={}\"{requires}{metadata}{yanked}>{}</a><br>\n",
                    escape(&url(f)),
                    f.sha256,
                    escape(&f.filename)
                )
            })
            .collect();
        format!(
            "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"{API_VERSION}\">\n    \
             <title>Links for {n}</title>\n  </head>\n  <body>\n    <h1>Links for {n}</h1>\n{links}  </body>\n</html>\n",
            n = escape(&normalized)
        )
    };
    Ok(([(header::CONTENT_TYPE, content_type(format))], body).into_response())
}

/// Every version with a published file, in the order they were first published.
fn versions(files: &[IndexFile]) -> Vec<&str> {
    let mut by_time: Vec<&IndexFile> = files.iter().collect();
    by_time.sort_by_key(|f| f.published_at);
    let mut versions: Vec<&str> = Vec::new();
    for f in by_time {
        if !versions.contains(&f.version.as_str()) {
            versions.push(&f.version);
        }
    }
    versions
}

/// Whether `name` could name a distribution: ASCII letters, digits and `._-`,
/// starting and ending with a letter or digit (PEP 508).
fn is_project_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    edge(bytes.first())
        && edge(bytes.last())
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pep_508_names_are_project_names() {
        for name in ["pymult", "My_Mult", "a", "a.b-c_d", "9lives"] {
            assert!(is_project_name(name), "{name}");
        }
        for name in ["", "-a", "a-", "I\u{c2}\u{11}", "caf\u{e9}", "a b", "a/b", "%41"] {
            assert!(!is_project_name(name), "{name:?}");
        }
    }

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, value.parse().unwrap());
        headers
    }

    #[test]
    fn negotiates_like_pip_asks() {
        let pip = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";
        assert_eq!(negotiate(&accept(pip)).unwrap(), Format::Json);
        assert_eq!(negotiate(&accept("text/html")).unwrap(), Format::TextHtml);
        assert_eq!(negotiate(&HeaderMap::new()).unwrap(), Format::TextHtml);
        assert_eq!(negotiate(&accept("image/png")).unwrap_err().status, StatusCode::NOT_ACCEPTABLE);
    }
}
