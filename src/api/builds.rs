//! `/api/v1/builds`: submit, list, show, follow the log, cancel, download.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Multipart, Path, Query, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use wheelwright_workers::project::{Overrides, Project};
use wheelwright_workers::report::{StepReport, TestRun};
use wheelwright_workers::wheel::sha256_hex;
use wheelwright_workers::wheel::tags;

use super::error::{ApiError, ApiResult};
use crate::builds::repo::{self, CancelOutcome, Inserted, NewBuild};
use crate::builds::{published, ArtifactRecord, BuildRecord, BuildStatus, Submitter, UploadOverrides};
use crate::config::Ownership;
use crate::logs::LogEvent;
use crate::state::AppState;
use crate::upload;

/// Largest size an uploaded archive may unpack to.
pub const MAX_EXPANDED: u64 = 64 << 20;

/// An artifact as the API shows it.
#[derive(Debug, Serialize)]
pub struct ArtifactView {
    /// File name.
    pub filename: String,
    /// Size in bytes.
    pub size: i64,
    /// Lowercase hex sha256.
    pub sha256: String,
    /// Download URL (path).
    pub url: String,
    /// Target of a wheel; absent for the sdist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// One target of a build.
#[derive(Debug, Serialize)]
pub struct TargetView {
    /// Target name.
    pub target: String,
    /// queued, running, succeeded, failed, skipped or cancelled.
    pub status: String,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether its wheel is abi3.
    pub abi3: bool,
    /// Steps in order.
    pub steps: Vec<StepReport>,
    /// Smoke-test results per interpreter.
    pub tests: Vec<TestRun>,
    /// Its wheels.
    pub artifacts: Vec<ArtifactView>,
}

/// A build as the API shows it.
#[derive(Debug, Serialize)]
pub struct BuildView {
    /// Id.
    pub id: String,
    /// Status.
    pub status: BuildStatus,
    /// RFC 3339 timestamps.
    pub created_at: String,
    /// Started.
    pub started_at: Option<String>,
    /// Finished.
    pub finished_at: Option<String>,
    /// Name and version.
    pub project: Value,
    /// Debug build.
    pub debug: bool,
    /// The build whose results were reused, when served from the cache.
    pub cached_from: Option<String>,
    /// Why the build failed outside its targets, or was cancelled.
    pub error: Option<String>,
    /// The git push it came from: repository, ref and commit.
    pub source: Option<crate::builds::GitOrigin>,
    /// Per target.
    pub targets: Vec<TargetView>,
    /// Every artifact, the sdist included.
    pub artifacts: Vec<ArtifactView>,
    /// Related URLs.
    pub links: Value,
}

fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)).to_string()
}

fn artifact_url(build_id: &str, filename: &str) -> String {
    format!("/api/v1/builds/{build_id}/artifacts/{filename}")
}

impl BuildView {
    /// Combines a build row with its artifacts.
    pub fn new(build: &BuildRecord, artifacts: &[ArtifactRecord]) -> BuildView {
        let view = |a: &ArtifactRecord| ArtifactView {
            filename: a.filename.clone(),
            size: a.size,
            sha256: a.sha256.clone(),
            url: artifact_url(&build.id, &a.filename),
            target: a.target.clone(),
        };
        let targets = match &build.report {
            Some(report) => report
                .targets
                .iter()
                .map(|t| TargetView {
                    target: t.target.name().to_string(),
                    status: t.status.as_str().to_string(),
                    reason: t.reason.clone(),
                    abi3: t.abi3,
                    steps: t.steps.clone(),
                    tests: t.tests.clone(),
                    artifacts: artifacts
                        .iter()
                        .filter(|a| a.target.as_deref() == Some(t.target.name()))
                        .map(view)
                        .collect(),
                })
                .collect(),
            None => build
                .targets
                .iter()
                .map(|t| TargetView {
                    target: t.name().to_string(),
                    status: build.status.as_str().to_string(),
                    reason: None,
                    abi3: false,
                    steps: Vec::new(),
                    tests: Vec::new(),
                    artifacts: Vec::new(),
                })
                .collect(),
        };
        let id = &build.id;
        BuildView {
            id: id.clone(),
            status: build.status,
            created_at: rfc3339(build.created_at),
            started_at: build.started_at.map(rfc3339),
            finished_at: build.finished_at.map(rfc3339),
            project: serde_json::json!({ "name": build.project_name, "version": build.project_version }),
            debug: build.debug,
            cached_from: build.cached_from.clone(),
            error: build.error.clone(),
            source: build.origin.clone(),
            targets,
            artifacts: artifacts.iter().map(view).collect(),
            links: serde_json::json!({
                "self": format!("/api/v1/builds/{id}"),
                "log": format!("/api/v1/builds/{id}/log"),
                "cancel": format!("/api/v1/builds/{id}/cancel"),
                "index": format!("/simple/{}/", build.normalized_name),
            }),
        }
    }
}

/// One build as the API shows it; 404 when there is none.
pub async fn load_view(state: &AppState, id: &str) -> ApiResult<BuildView> {
    let build = repo::get(&state.db, id).await?.ok_or_else(|| ApiError::not_found(format!("no build `{id}`")))?;
    let artifacts = repo::artifacts(&state.db, id).await?;
    Ok(BuildView::new(&build, &artifacts))
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
    let upload = upload::read(form?, MAX_EXPANDED, upload::Mode::Api, &[], None).await?;
    let submitter = api_submitter(&state, &headers, client);
    accepted(submit(&state, upload, &submitter).await)
}

/// How long a client refused for having too many builds queued is asked to
/// wait before trying again.
const RETRY_AFTER_SECS: u64 = 30;

/// `202 Accepted` with the build and its `Location`; or the error, with
/// `Retry-After` when it is the queue limit.
fn accepted(result: ApiResult<BuildView>) -> ApiResult<Response> {
    let view = match result {
        Ok(view) => view,
        Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => {
            return Ok(([(header::RETRY_AFTER, RETRY_AFTER_SECS.to_string())], e).into_response())
        }
        Err(e) => return Err(e),
    };
    let location = HeaderValue::from_str(&format!("/api/v1/builds/{}", view.id)).map_err(ApiError::internal)?;
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(view)).into_response())
}

/// Who sends an API write: the bearer token's holder (the token middleware
/// has checked it), or the client's address on a tokenless daemon.
fn api_submitter(state: &AppState, headers: &HeaderMap, client: SocketAddr) -> Submitter {
    Submitter::of_request(!state.config.tokens.is_empty(), super::bearer_token(headers), client.ip())
}

/// Stores an upload, checks the project and who sends it, and queues it (or
/// answers from an identical earlier build). Shared by the API, the web form
/// and the webhook, which say who `submitter` is.
pub async fn submit(state: &AppState, upload: upload::Upload, submitter: &Submitter) -> ApiResult<BuildView> {
    let id = uuid::Uuid::now_v7().to_string();
    let source = state.sources_dir.join(&id);
    // Until a row refers to the files, every way out removes them.
    let mut kept = SourceDir(Some(source.clone()));
    let overrides = Overrides { name: upload.name.clone(), version: upload.version.clone(), debug: upload.debug };
    let files = upload.files;
    let checked = {
        let source = source.clone();
        tokio::task::spawn_blocking(move || {
            let hash = upload::write_tree(&source, &files)?;
            Ok::<_, std::io::Error>((hash, Project::load(&source, &overrides)))
        })
        .await
        .map_err(ApiError::internal)??
    };
    let (source_hash, project) = checked;
    let project = match project {
        Ok(p) => p,
        Err(e) => {
            return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_project", e.to_string()));
        }
    };
    let normalized_name = tags::normalize(&project.metadata.name);
    let enforce_ownership = state.config.index_ownership == Ownership::FirstPublisher;
    if enforce_ownership {
        // Refused before it takes a worker; the worker checks again when it
        // publishes (the first publisher may still be building).
        let owner = published::owner_of(&mut *state.db.acquire().await?, &normalized_name).await?;
        if let Some(owner) = owner.filter(|o| *o != submitter.owner) {
            let message = published::project_owned_message(&normalized_name, &owner);
            return Err(ApiError::new(StatusCode::FORBIDDEN, "project_owned", message));
        }
    }
    let targets = upload.targets.unwrap_or_else(|| project.settings.targets.clone());
    let overrides = UploadOverrides { name: upload.name, version: upload.version };
    let cache_key = {
        let key =
            serde_json::json!([source_hash, targets, project.settings.debug, overrides, state.engine.fingerprint]);
        sha256_hex(key.to_string().as_bytes())
    };
    let build = NewBuild {
        id: id.clone(),
        project_name: project.metadata.name.clone(),
        normalized_name,
        project_version: project.metadata.version.clone(),
        requires_python: project.metadata.requires_python.as_str().to_string(),
        targets,
        debug: project.settings.debug,
        overrides,
        source_hash,
        cache_key,
        origin: upload.origin,
        delivery: upload.delivery,
        submitter: submitter.clone(),
    };
    let cached = if upload.rebuild { None } else { repo::find_cached(&state.db, &build.cache_key).await? };
    let queue =
        |build| repo::insert_queued(&state.db, build, state.config.max_attempts, state.config.max_queued_per_client);
    let inserted = match cached {
        Some(earlier) => match repo::insert_cached(&state.db, &build, &earlier, enforce_ownership).await {
            Ok(Inserted::NotFromCache) => queue(&build).await,
            other => other,
        },
        None => queue(&build).await,
    };
    let inserted = match inserted {
        Ok(inserted) => inserted,
        Err(e) => {
            return Err(e.into());
        }
    };
    match inserted {
        Inserted::Recorded => {
            kept.keep();
            state.wake.notify_one();
            load_view(state, &id).await
        }
        Inserted::DeliveryTaken(first) => load_view(state, &first).await,
        Inserted::TooManyQueued(queued) => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_queued",
            format!(
                "{queued} of your builds are already waiting, the most this server queues for one client; \
                     try again when some have started"
            ),
        )),
        // insert_cached's answer, handled above.
        Inserted::NotFromCache => Err(ApiError::internal("a queued build came back as not from the cache")),
    }
}

/// A submitted source tree, removed when dropped unless a build row keeps it.
struct SourceDir(Option<std::path::PathBuf>);

impl SourceDir {
    fn keep(&mut self) {
        self.0 = None;
    }
}

impl Drop for SourceDir {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `POST /api/v1/builds/{id}/rebuild`: the same source and options again,
/// built afresh (never from the cache).
pub async fn rebuild(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    accepted(rebuild_of(&state, &id, &api_submitter(&state, &headers, client)).await)
}

/// Submits build `id`'s stored source again with its options, asked for by
/// `requester`: it counts against the requester's queue, and publishes for
/// the original build's owner (the same source is not a takeover).
pub async fn rebuild_of(state: &AppState, id: &str, requester: &Submitter) -> ApiResult<BuildView> {
    let build = repo::get(&state.db, id).await?.ok_or_else(|| ApiError::not_found(format!("no build `{id}`")))?;
    let submitter = Submitter {
        owner: build.owner.clone().unwrap_or_else(|| requester.owner.clone()),
        client: requester.client.clone(),
    };
    let source = state.sources_dir.join(&build.id);
    let files = tokio::task::spawn_blocking(move || upload::read_tree(&source)).await.map_err(ApiError::internal)??;
    let upload = upload::Upload {
        files,
        targets: Some(build.targets.clone()),
        name: build.overrides.name.clone(),
        version: build.overrides.version.clone(),
        debug: build.debug,
        rebuild: true,
        token: None,
        origin: build.origin.clone(),
        delivery: None,
    };
    submit(state, upload, &submitter).await
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
    let builds = repo::list(&state.db, limit + 1, cursor, project.as_deref(), status).await?;
    let more = builds.len() as i64 > limit;
    let mut views = Vec::new();
    for build in builds.iter().take(limit as usize) {
        views.push(BuildView::new(build, &repo::artifacts(&state.db, &build.id).await?));
    }
    let next = if more { views.last().map(|v| v.id.clone()) } else { None };
    Ok(Json(serde_json::json!({ "builds": views, "next_cursor": next })))
}

/// `GET /api/v1/builds/{id}`.
pub async fn show(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<BuildView>> {
    Ok(Json(load_view(&state, &id).await?))
}

/// `POST /api/v1/builds/{id}/cancel`.
pub async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<BuildView>> {
    cancel_build(&state, &id).await?;
    Ok(Json(load_view(&state, &id).await?))
}

/// Cancels a queued build, or stops a running one; shared by the API and the
/// build page.
pub async fn cancel_build(state: &AppState, id: &str) -> ApiResult<()> {
    match repo::cancel(&state.db, id).await? {
        CancelOutcome::NotFound => return Err(ApiError::not_found(format!("no build `{id}`"))),
        CancelOutcome::AlreadyFinished(status) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_finished",
                format!("build `{id}` already {}", status.as_str()),
            ))
        }
        CancelOutcome::Cancelled => state.logs.finish(id, "cancelled"),
        CancelOutcome::Requested => {
            // Running here: stop it now rather than at the watcher's next look.
            if let Some(token) = state.running.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
                token.cancel();
            }
        }
    }
    Ok(())
}

/// `GET /api/v1/builds/{id}/log`: plain text, or a live event stream with
/// `Accept: text/event-stream` that ends when the build does.
pub async fn log(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> ApiResult<Response> {
    let build = repo::get(&state.db, &id).await?.ok_or_else(|| ApiError::not_found(format!("no build `{id}`")))?;
    let wants_stream =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/event-stream"));
    if !wants_stream {
        let lines = repo::logs(&state.db, &id, -1).await?;
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
    let mut live = state.logs.subscribe(&id);
    let mut last = -1;
    let line = |seq: i64, text: &str| Ok(SseEvent::default().event("log").id(seq.to_string()).data(text));
    let end = |status: &str| Ok(SseEvent::default().event("end").data(status));
    loop {
        // Catch up from the database: everything written since `last`.
        match repo::logs(&state.db, &id, last).await {
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
        match repo::get(&state.db, &id).await {
            Ok(Some(build)) if build.status.is_final() => {
                let _ = out.send(end(build.status.as_str())).await;
                return;
            }
            Ok(Some(_)) => {}
            _ => return,
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
            live = state.logs.subscribe(&id);
        }
    }
}

/// `GET /api/v1/builds/{id}/artifacts/{filename}`, with the sha256 as ETag.
pub async fn artifact(
    State(state): State<AppState>,
    Path((id, filename)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let artifacts = repo::artifacts(&state.db, &id).await?;
    let Some(artifact) = artifacts.into_iter().find(|a| a.filename == filename) else {
        return Err(ApiError::not_found(format!("build `{id}` has no artifact `{filename}`")));
    };
    let etag = format!("\"{}\"", artifact.sha256);
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let store = state.store.clone();
    let sha256 = artifact.sha256.clone();
    let bytes = tokio::task::spawn_blocking(move || store.get(&sha256)).await.map_err(ApiError::internal)??;
    let content_type = if filename.ends_with(".whl") { "application/zip" } else { "application/gzip" };
    let disposition = format!("attachment; filename=\"{filename}\"");
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::ETAG, etag),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable".to_string()),
        ],
        bytes,
    )
        .into_response())
}
