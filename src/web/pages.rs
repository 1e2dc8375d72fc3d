//! The page handlers. Forms post to these routes (not to the API) so that
//! everything works without JavaScript; they share the API's logic.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{ConnectInfo, Multipart, Path, Query, State};
use axum::http::header::{HeaderMap, HOST};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use wheelwright_workers::platform::Target;
use wheelwright_workers::wheel::tags;

use super::views::{self, BuildPage, BuildRow, BuildsPage, ProjectPage, UploadPage};
use crate::error::ApiError;
use crate::model::{rfc3339, BuildStatus, ListFilter, Submitter};
use crate::state::AppState;
use crate::upload;

fn render(template: impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

fn host(state: &AppState, headers: &HeaderMap) -> String {
    headers.get(HOST).and_then(|h| h.to_str().ok()).map(str::to_string).unwrap_or_else(|| state.config.bind.to_string())
}

fn token_ok(state: &AppState, given: Option<&str>) -> bool {
    crate::auth::token_allowed(&state.config.tokens, given.map(str::trim))
}

/// A small page for an error that has no better home.
fn error_page(error: ApiError, back: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error</title>\
         <link rel=\"stylesheet\" href=\"/static/style.css\"></head><body><main><div class=\"error\" role=\"alert\">{}</div>\
         <p><a href=\"{}\">Back</a></p></main></body></html>",
        escape(&error.message),
        escape(back)
    );
    (error.status, Html(body)).into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn upload_page(state: &AppState, error: Option<String>) -> UploadPage {
    UploadPage {
        version: views::VERSION,
        error,
        targets: Target::ALL.iter().map(|t| t.name()).collect(),
        max_upload: state.config.max_upload,
        needs_token: !state.config.tokens.is_empty(),
    }
}

/// `GET /`.
pub async fn upload(State(state): State<AppState>) -> Response {
    render(upload_page(&state, None))
}

/// `POST /builds`: the upload form without JavaScript.
pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<std::net::SocketAddr>,
    request: axum::extract::Request,
) -> Response {
    // A REST client posting here asks for JSON: it gets the API's answer,
    // not a redirect to a page.
    let wants_json = wants_json(request.headers());
    let result = async {
        // The token is the form's first field, checked before any other is
        // read; until then the body is held to a few KiB.
        let tokens = &state.config.tokens;
        let gate = upload::TokenGate::default();
        let (parts, body) = request.into_parts();
        let body = if tokens.is_empty() { body } else { gate.guard(body) };
        let request = axum::extract::Request::from_parts(parts, body);
        let form = <Multipart as axum::extract::FromRequest<()>>::from_request(request, &()).await?;
        let upload = upload::read(form, upload::MAX_EXPANDED, upload::Mode::Form, tokens, Some(&gate)).await?;
        let submitter = Submitter::of_request(!state.config.tokens.is_empty(), upload.token.as_deref(), client.ip());
        Ok::<_, ApiError>(state.builds.submit(upload.build, &submitter).await?)
    }
    .await;
    match result {
        Ok(details) if wants_json => crate::dto::accepted(&details).unwrap_or_else(IntoResponse::into_response),
        Ok(details) => Redirect::to(&format!("/builds/{}", details.build.id)).into_response(),
        Err(error) if wants_json => crate::dto::refusal(error),
        Err(error) => {
            let status = error.status;
            let mut response = render(upload_page(&state, Some(error.message)));
            *response.status_mut() = status;
            if status == axum::http::StatusCode::TOO_MANY_REQUESTS {
                let wait = axum::http::HeaderValue::from(crate::dto::RETRY_AFTER_SECS);
                response.headers_mut().insert(axum::http::header::RETRY_AFTER, wait);
            }
            response
        }
    }
}

/// Whether a request asks for JSON rather than a page (a browser's
/// `Accept` names `text/html`).
fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    accept.contains("application/json") && !accept.contains("text/html")
}

/// Builds per page of `/builds`.
const PAGE_SIZE: u32 = 25;

/// `GET /builds?project=&status=&cursor=`.
pub async fn builds(State(state): State<AppState>, Query(query): Query<HashMap<String, String>>) -> Response {
    let project = query.get("project").cloned().unwrap_or_default();
    let status = query.get("status").cloned().unwrap_or_default();
    let cursor = query.get("cursor").filter(|c| !c.is_empty()).cloned();
    let result = async {
        let status_filter = match status.as_str() {
            "" => None,
            s => Some(
                BuildStatus::parse(s)
                    .ok_or_else(|| ApiError::bad_request("bad_query", format!("unknown status `{s}`")))?,
            ),
        };
        let normalized = (!project.is_empty()).then(|| tags::normalize(&project));
        let filter =
            ListFilter { limit: PAGE_SIZE, before: cursor.clone(), project: normalized, status: status_filter };
        Ok::<_, ApiError>(state.builds.list(&filter).await?)
    }
    .await;
    let listing = match result {
        Ok(r) => r,
        Err(e) => return error_page(e, "/builds"),
    };
    let rows: Vec<BuildRow> = listing
        .builds
        .iter()
        .map(|d| &d.build)
        .map(|b| BuildRow {
            id: b.id.clone(),
            short_id: views::short(&b.id),
            name: b.project_name.clone(),
            normalized: b.normalized_name.clone(),
            version: b.project_version.clone(),
            status: b.status.as_str().to_string(),
            targets: b.targets.iter().map(|t| t.name()).collect::<Vec<_>>().join(", "),
            created: rfc3339(b.created_at),
        })
        .collect();
    let query_string = |cursor: Option<&str>| {
        let mut parts = Vec::new();
        if !project.is_empty() {
            parts.push(format!("project={}", urlencode(&project)));
        }
        if !status.is_empty() {
            parts.push(format!("status={}", urlencode(&status)));
        }
        if let Some(c) = cursor {
            parts.push(format!("cursor={}", urlencode(c)));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    };
    let next = listing.next_cursor.as_deref().map(|c| format!("/builds{}", query_string(Some(c))));
    render(BuildsPage {
        version: views::VERSION,
        api_url: format!("/api/v1/builds{}", query_string(cursor.as_deref())),
        rows,
        statuses: vec!["", "queued", "running", "succeeded", "failed", "cancelled"],
        project,
        status,
        next,
    })
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /builds/{id}`.
pub async fn build(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let result = async {
        let details = state.builds.get(&id).await?;
        let log: String = state.builds.log(&id, -1).await?.into_iter().map(|(_, l)| l + "\n").collect();
        let mut page = BuildPage::new(&details, log, &host(&state, &headers), !state.config.tokens.is_empty());
        let yank = state.builds.yank_state(&id).await?;
        page.published = yank.is_some();
        page.yanked = yank.flatten();
        Ok::<_, ApiError>(page)
    }
    .await;
    match result {
        Ok(page) => render(page),
        Err(e) => error_page(e, "/builds"),
    }
}

/// The form's token, checked like a bearer token: an error page when wrong.
fn refuse_bad_token(state: &AppState, form: &HashMap<String, String>, back: &str) -> Option<Response> {
    if token_ok(state, form.get("token").map(String::as_str)) {
        None
    } else {
        let error = ApiError::unauthorized(super::INVALID_TOKEN);
        Some(error_page(error, back))
    }
}

/// `POST /builds/{id}/cancel` (form).
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let back = format!("/builds/{id}");
    if let Some(page) = refuse_bad_token(&state, &form, &back) {
        return page;
    }
    match state.builds.cancel(&id).await {
        Ok(()) => Redirect::to(&back).into_response(),
        Err(e) => error_page(e.into(), &back),
    }
}

/// `POST /builds/{id}/rebuild` (form).
pub async fn rebuild(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<std::net::SocketAddr>,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let back = format!("/builds/{id}");
    if let Some(page) = refuse_bad_token(&state, &form, &back) {
        return page;
    }
    let requester =
        Submitter::of_request(!state.config.tokens.is_empty(), form.get("token").map(String::as_str), client.ip());
    match state.builds.rebuild(&id, &requester).await {
        Ok(details) => Redirect::to(&format!("/builds/{}", details.build.id)).into_response(),
        Err(e) => error_page(e.into(), &back),
    }
}

/// `POST /builds/{id}/yank` and `/unyank` (forms): the `reason` field, and
/// the token like cancel's.
pub async fn yank(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    set_yanked(&state, &id, &form, true).await
}

/// `POST /builds/{id}/unyank` (form).
pub async fn unyank(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    set_yanked(&state, &id, &form, false).await
}

async fn set_yanked(state: &AppState, id: &str, form: &HashMap<String, String>, yank: bool) -> Response {
    let back = format!("/builds/{id}");
    if let Some(page) = refuse_bad_token(state, form, &back) {
        return page;
    }
    match state.builds.set_yanked(id, yank, form.get("reason").map(String::as_str)).await {
        Ok(_) => Redirect::to(&back).into_response(),
        Err(e) => error_page(e.into(), &back),
    }
}

/// `GET /projects/{name}`.
pub async fn project(State(state): State<AppState>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    match state.builds.project(&name).await {
        Ok(project) => render(ProjectPage::new(&project, &host(&state, &headers))),
        Err(e) => error_page(e.into(), "/builds"),
    }
}
