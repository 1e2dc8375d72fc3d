//! `/api/v1/builds`: submit, list, show, follow the log, cancel, yank, download.
//! Handlers parse, authorise, call the build service and render its answer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Multipart, Path, Query, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use wheelwright_workers::wheel::tags;

use super::range;
use crate::builds::ServiceError;
use crate::dto::BuildView;
use crate::error::{ApiError, ApiResult};
use crate::logs::LogEvent;
use crate::model::{BuildStatus, ListFilter, Submitter};
use crate::state::AppState;
use crate::store::{ArtifactStore, Opened};
use crate::upload;

/// One build as the API shows it; 404 when there is none.
pub async fn load_view(state: &AppState, id: &str) -> ApiResult<BuildView> {
    Ok(BuildView::from(&state.builds.get(id).await?))
}

/// `POST /api/v1/builds`: store the upload, check the project, and queue it
/// (or answer from an identical earlier build).
pub async fn create(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<Response> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.config.max_upload + 64 * 1024) {
        return Err(ApiError::too_large(format!("uploads are limited to {} bytes", state.config.max_upload)));
    }
    // The bearer token was checked before the body was read (`require_token`).
    let upload = upload::read(form?, upload::MAX_EXPANDED, upload::Mode::Api, &[], None).await?;
    let submitter = api_submitter(&state, &headers, client);
    accepted(state.builds.submit(upload.build, &submitter).await)
}

/// `202 Accepted` with the build and its `Location`; or the error, with
/// `Retry-After` when it is the queue limit.
fn accepted(result: Result<crate::model::BuildDetails, ServiceError>) -> ApiResult<Response> {
    match result {
        Ok(details) => crate::dto::accepted(&details),
        Err(e) => Ok(crate::dto::refusal(e.into())),
    }
}

/// Who sends an API write: the bearer token's holder (the token middleware
/// has checked it), or the client's address on a tokenless daemon.
fn api_submitter(state: &AppState, headers: &HeaderMap, client: SocketAddr) -> Submitter {
    Submitter::of_request(!state.config.tokens.is_empty(), crate::auth::bearer_token(headers), client.ip())
}

/// `POST /api/v1/builds/{id}/rebuild`: the same source and options again,
/// built afresh (never from the cache).
pub async fn rebuild(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    accepted(state.builds.rebuild(&id, &api_submitter(&state, &headers, client)).await)
}

/// Query of `GET /api/v1/builds`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    project: Option<String>,
    status: Option<String>,
}

/// `GET /api/v1/builds`: newest first, `limit` and `cursor`, filters.
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request("bad_query", "limit must be between 1 and 100"));
    }
    // An empty `status=` is refused like any other value outside the
    // document's enum, rather than read as "any status".
    let status = match query.status.as_deref() {
        Some(s) => Some(BuildStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "bad_query",
                format!("unknown status `{s}` (expected queued, running, succeeded, failed or cancelled)"),
            )
        })?),
        None => None,
    };
    let project = query.project.as_deref().filter(|p| !p.is_empty()).map(tags::normalize);
    let cursor = query.cursor.as_deref().filter(|c| !c.is_empty());
    let filter = ListFilter { limit: limit as u32, before: cursor.map(str::to_string), project, status };
    let listing = state.builds.list(&filter).await?;
    let views: Vec<BuildView> = listing.builds.iter().map(BuildView::from).collect();
    Ok(Json(serde_json::json!({ "builds": views, "next_cursor": listing.next_cursor })))
}

/// `GET /api/v1/builds/{id}`.
pub async fn show(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<BuildView>> {
    Ok(Json(load_view(&state, &id).await?))
}

/// `POST /api/v1/builds/{id}/cancel`.
pub async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<BuildView>> {
    state.builds.cancel(&id).await?;
    Ok(Json(load_view(&state, &id).await?))
}

/// Body of `POST /api/v1/builds/{id}/yank`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YankRequest {
    /// Shown by installers; absent or empty: no reason.
    reason: Option<String>,
}

/// The yank state of a build's files, as yank and unyank answer it.
fn yank_answer(id: &str, reason: Option<String>) -> Json<Value> {
    Json(serde_json::json!({ "id": id, "yanked": reason.is_some(), "reason": reason }))
}

/// `POST /api/v1/builds/{id}/yank` (PEP 592): installers skip the build's
/// files on the index unless a requirement pins their exact version.
pub async fn yank(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<YankRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(body) = body.map_err(|e| ApiError::bad_request("bad_json", e.body_text()))?;
    let reason = state.builds.set_yanked(&id, true, body.reason.as_deref()).await?;
    Ok(yank_answer(&id, reason))
}

/// `POST /api/v1/builds/{id}/unyank`.
pub async fn unyank(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let reason = state.builds.set_yanked(&id, false, None).await?;
    Ok(yank_answer(&id, reason))
}

/// `GET /api/v1/builds/{id}/log`: plain text, or a live event stream with
/// `Accept: text/event-stream` that ends when the build does.
pub async fn log(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> ApiResult<Response> {
    let build = state.builds.record(&id).await?;
    let wants_stream =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/event-stream"));
    if !wants_stream {
        let lines = state.builds.log(&id, -1).await?;
        let mut text: String = lines.into_iter().map(|(_, l)| l + "\n").collect();
        if build.status.is_final() {
            text.push_str(&format!("build {}\n", build.status.as_str()));
        }
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response());
    }
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<SseEvent, Infallible>>(256);
    tokio::spawn(follow(state, id, sender));
    let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// Feeds one follower: the lines so far, then live lines, then `end`.
async fn follow(state: AppState, id: String, out: tokio::sync::mpsc::Sender<Result<SseEvent, Infallible>>) {
    let mut live = state.builds.follow(&id);
    let mut last = -1;
    let line = |seq: i64, text: &str| Ok(SseEvent::default().event("log").id(seq.to_string()).data(text));
    let end = |status: &str| Ok(SseEvent::default().event("end").data(status));
    loop {
        // Catch up from the database: everything written since `last`.
        match state.builds.log(&id, last).await {
            Ok(lines) => {
                for (seq, text) in lines {
                    last = seq;
                    if out.send(line(seq, &text)).await.is_err() {
                        return;
                    }
                }
            }
            Err(_) => return,
        }
        match state.builds.record(&id).await {
            Ok(build) if build.status.is_final() => {
                let _ = out.send(end(build.status.as_str())).await;
                return;
            }
            Ok(_) => {}
            Err(_) => return,
        }
        // Then live, until the build ends; look at the database again now
        // and then in case the build ended elsewhere.
        let deadline = tokio::time::sleep(Duration::from_secs(5));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                event = live.recv() => match event {
                    Ok(LogEvent::Line(seq, text)) if seq > last => {
                        last = seq;
                        if out.send(line(seq, &text)).await.is_err() {
                            return;
                        }
                    }
                    Ok(LogEvent::Line(..)) => {}
                    Ok(LogEvent::Finished(_)) | Err(RecvError::Closed) | Err(RecvError::Lagged(_)) => break,
                },
                _ = &mut deadline => break,
                _ = state.shutdown.cancelled() => return,
            }
        }
        if live.is_closed() {
            live = state.builds.follow(&id);
        }
    }
}

/// `GET /api/v1/builds/{id}/artifacts/{filename}`, with the sha256 as ETag
/// and one byte range when asked; `{filename}.metadata` is a wheel's
/// `METADATA` (PEP 658).
pub async fn artifact(
    State(state): State<AppState>,
    Path((id, filename)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let artifacts = state.builds.artifacts(&id).await?;
    let missing = || ApiError::not_found(format!("build `{id}` has no artifact `{}`", upload::shown(&filename)));
    let (sha256, content_type, attachment) = match artifacts.iter().find(|a| a.filename == filename) {
        Some(a) => {
            let content_type = if filename.ends_with(".whl") { "application/zip" } else { "application/gzip" };
            (a.sha256.clone(), content_type, true)
        }
        None => {
            let wheel = filename.strip_suffix(".metadata").ok_or_else(missing)?;
            let a = artifacts.iter().find(|a| a.filename == wheel).ok_or_else(missing)?;
            (a.metadata_sha256.clone().ok_or_else(missing)?, "text/plain; charset=utf-8", false)
        }
    };
    let from = Stored::Store { store: state.store.clone(), redirect: state.config.store.redirect_expiry() };
    serve(&headers, &sha256, content_type, attachment.then_some(filename.as_str()), from).await
}

/// Where the bytes of a download are.
pub enum Stored {
    /// In the artifact store, under the sha256.
    Store {
        /// The store.
        store: Arc<dyn ArtifactStore>,
        /// Answer with a redirect to a URL presigned for this long, rather
        /// than stream the bytes through the daemon.
        redirect: Option<Duration>,
    },
    /// A file of the daemon's own (the backend wheel).
    File(PathBuf),
}

impl Stored {
    async fn size(&self, sha256: &str) -> ApiResult<u64> {
        match self {
            Stored::Store { store, .. } => {
                store.size(sha256).await?.ok_or_else(|| ApiError::internal(format!("{sha256} is not in the store")))
            }
            Stored::File(path) => Ok(tokio::fs::metadata(path).await?.len()),
        }
    }

    async fn open(&self, sha256: &str, range: Option<Range<u64>>) -> ApiResult<Opened> {
        match self {
            Stored::Store { store, .. } => Ok(store.open(sha256, range).await?),
            Stored::File(path) => Ok(crate::store::open_file(path, range).await?),
        }
    }
}

/// Answers a download of the bytes `from` holds (opened only when they are
/// sent, and streamed): ETag `sha256`, `If-None-Match`, one `Range` (a
/// ranged read of the store), immutable caching; or a `302` to a presigned
/// URL when the store is set to redirect.
pub async fn serve(
    headers: &HeaderMap,
    sha256: &str,
    content_type: &'static str,
    attachment: Option<&str>,
    from: Stored,
) -> ApiResult<Response> {
    let etag = format!("\"{sha256}\"");
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let value = |s: String| HeaderValue::from_str(&s).map_err(ApiError::internal);
    if let Stored::Store { store, redirect: Some(expiry) } = &from {
        if let Some(url) = store.presigned_get(sha256, *expiry).await? {
            // Short-lived, so not cached: a later request gets a fresh one.
            let redirect =
                [(header::LOCATION, value(url)?), (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
            return Ok((StatusCode::FOUND, redirect).into_response());
        }
    }
    let mut response_headers = HeaderMap::new();
    response_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response_headers.insert(header::ETAG, value(etag.clone())?);
    response_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    if let Some(filename) = attachment {
        response_headers.insert(header::CONTENT_DISPOSITION, value(format!("attachment; filename=\"{filename}\""))?);
    }
    // A range is honoured only for these very bytes (`If-Range` names them).
    let if_range = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok());
    let asked = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).filter(|_| if_range.is_none_or(|t| t == etag));
    if asked.is_none() {
        let opened = from.open(sha256, None).await?;
        response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(opened.size));
        return Ok((response_headers, Body::from_stream(opened.stream)).into_response());
    }
    // The answer depends on the size: one look before the ranged read.
    let len = from.size(sha256).await?;
    match range::answer(asked, len) {
        range::Answer::Full => {
            let opened = from.open(sha256, None).await?;
            response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(opened.size));
            Ok((response_headers, Body::from_stream(opened.stream)).into_response())
        }
        range::Answer::Partial { start, end } => {
            let opened = from.open(sha256, Some(start..end + 1)).await?;
            response_headers.insert(header::CONTENT_RANGE, value(format!("bytes {start}-{end}/{}", opened.size))?);
            response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end + 1 - start));
            Ok((StatusCode::PARTIAL_CONTENT, response_headers, Body::from_stream(opened.stream)).into_response())
        }
        range::Answer::Unsatisfiable => {
            response_headers.insert(header::CONTENT_RANGE, value(format!("bytes */{len}"))?);
            Ok((StatusCode::RANGE_NOT_SATISFIABLE, response_headers).into_response())
        }
    }
}

/// `GET /backend/{filename}`: the build backend's wheel, which the index
/// lists under `wheelwright-backend`.
pub async fn backend(
    State(state): State<AppState>,
    Path(filename): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let wheel = state.builds.backend_wheel().await?;
    if wheel.filename != filename {
        return Err(ApiError::not_found(format!("no backend file `{}`", upload::shown(&filename))));
    }
    serve(&headers, &wheel.sha256, "application/zip", Some(&wheel.filename), Stored::File(wheel.path.clone())).await
}
