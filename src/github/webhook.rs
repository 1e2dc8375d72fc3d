//! `POST /webhooks/github`: verify the signature before reading anything,
//! answer `ping`, build `push`es of allowed repositories (idempotent on the
//! delivery id), ignore the rest with a reason. An accepted push is kept in
//! the database until its build is recorded, so a restart fetches it again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio_stream::StreamExt;

use super::signature;
use super::statuses::StatusUpdate;
use crate::builds::{ServiceError, Submission};
use crate::dto::BuildView;
use crate::error::{ApiError, ApiResult};
use crate::model::{GitOrigin, PendingPush, Submitter};
use crate::state::AppState;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn too_large() -> ApiError {
    ApiError::too_large(format!("webhook payloads are limited to {MAX_PAYLOAD} bytes"))
}

fn ignored(reason: String) -> Response {
    (StatusCode::ACCEPTED, Json(json!({ "ignored": reason }))).into_response()
}

/// Largest payload read: GitHub caps its deliveries at 25 MB.
const MAX_PAYLOAD: usize = 25 << 20;

/// The webhook endpoint. Nothing of the body is read before the webhook is
/// known to be on and a signature header is there, and never more than
/// 25 MiB (a larger declared length is refused at once).
pub async fn webhook(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let Some(secret) = state.config.github.secret.as_deref() else {
        return Err(ApiError::not_found("the GitHub webhook is not enabled on this server"));
    };
    let unsigned = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "X-Hub-Signature-256 is missing or does not match the body",
        )
    };
    let headers = request.headers().clone();
    let Some(given) = header(&headers, "x-hub-signature-256") else {
        return Err(unsigned());
    };
    let declared = header(&headers, "content-length").and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_PAYLOAD as u64) {
        return Err(too_large());
    }
    let mut chunks = request.into_body().into_data_stream();
    let mut body = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|_| ApiError::bad_request("bad_payload", "the payload could not be read"))?;
        if body.len() + chunk.len() > MAX_PAYLOAD {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    if !signature::verify(secret, &body, Some(given)) {
        return Err(unsigned());
    }
    let event = header(&headers, "x-github-event").unwrap_or("");
    match event {
        "ping" => Ok((StatusCode::OK, Json(json!({ "ok": true }))).into_response()),
        "push" => push(&state, header(&headers, "x-github-delivery"), &body).await,
        "" => Err(ApiError::bad_request("bad_event", "X-GitHub-Event is missing")),
        other => Ok(ignored(format!("`{other}` events are not built"))),
    }
}

async fn push(state: &AppState, delivery: Option<&str>, body: &[u8]) -> ApiResult<Response> {
    let payload: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("bad_payload", format!("the push payload is not JSON: {e}")))?;
    if let Some(delivery) = delivery {
        if let Some(build_id) = state.builds.build_of_delivery(delivery).await? {
            // A redelivery: the same build again, never a second one.
            let view = BuildView::from(&state.builds.get(&build_id).await?);
            return Ok((StatusCode::OK, Json(view)).into_response());
        }
    }
    let text = |pointer: &str| payload.pointer(pointer).and_then(Value::as_str).unwrap_or("").to_string();
    let repository = text("/repository/full_name");
    let clone_url = text("/repository/clone_url");
    let git_ref = text("/ref");
    let commit = text("/after");
    if repository.is_empty() || git_ref.is_empty() || commit.is_empty() {
        return Err(ApiError::bad_request("bad_payload", "the push payload lacks repository.full_name, ref or after"));
    }
    let github = &state.config.github;
    check_repository(state, &repository)?;
    if payload.pointer("/deleted").and_then(Value::as_bool) == Some(true) || commit.chars().all(|c| c == '0') {
        return Ok(ignored(format!("{git_ref} was deleted")));
    }
    if git_ref.starts_with("refs/tags/") && !github.build_tags {
        return Ok(ignored(format!("tag pushes are not built ({git_ref})")));
    }
    let origin = GitOrigin { repository, git_ref, commit };
    check_source(state, &clone_url, &origin)?;
    if let Some(delivery) = delivery {
        let push = PendingPush { delivery: delivery.to_string(), origin: origin.clone(), clone_url: clone_url.clone() };
        if !state.builds.remember_push(&push).await? {
            // The first delivery is still being fetched: one build only.
            return Ok(accepted(delivery));
        }
    }
    // Fetch in the background; answer with the build when it is quick, and
    // before GitHub's 10-second delivery timeout when it is not.
    let detached = Arc::new(AtomicBool::new(false));
    let mut job = tokio::spawn(fetch_and_submit(
        state.clone(),
        delivery.map(str::to_string),
        clone_url,
        origin,
        detached.clone(),
        true,
    ));
    match tokio::time::timeout(state.config.github.answer_within, &mut job).await {
        Ok(joined) => {
            let (status, view) = joined.map_err(ApiError::internal)??;
            Ok((status, Json(view)).into_response())
        }
        Err(_) => {
            detached.store(true, Ordering::SeqCst);
            Ok(accepted(delivery.unwrap_or("")))
        }
    }
}

/// Refuses a repository that is not on the list.
fn check_repository(state: &AppState, repository: &str) -> ApiResult<()> {
    if state.config.github.repos.iter().any(|r| r.eq_ignore_ascii_case(repository)) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "repository_not_allowed",
        format!("`{repository}` is not on this server's list of repositories"),
    ))
}

/// Refuses a clone URL outside `clone-base` (whole path segments, no `..`) or
/// naming another repository than `repository.full_name`, a ref that is not a
/// ref, and a commit that is not a commit id.
fn check_source(state: &AppState, clone_url: &str, origin: &GitOrigin) -> ApiResult<()> {
    let base = &state.config.github.clone_base;
    let escapes = clone_url.split(['/', '\\']).any(|segment| segment == "..");
    if !clone_url.starts_with(base.as_str()) || escapes {
        return Err(ApiError::bad_request(
            "clone_url_refused",
            format!("the clone URL `{clone_url}` is not below `{base}`"),
        ));
    }
    // The URL must name the repository the allow-list let in: a signed
    // payload for an allowed `full_name` must not fetch another repository.
    let repository = &origin.repository;
    if !clone_url_names(base, clone_url, repository) {
        return Err(ApiError::bad_request(
            "clone_url_refused",
            format!(
                "the clone URL `{}` is not the repository `{}` (expected `{base}{}.git`)",
                crate::upload::shown(clone_url),
                crate::upload::shown(repository),
                crate::upload::shown(repository)
            ),
        ));
    }
    if !origin.git_ref.starts_with("refs/") || origin.git_ref.contains("..") {
        return Err(ApiError::bad_request("bad_payload", format!("`{}` is not a ref", origin.git_ref)));
    }
    let commit = &origin.commit;
    if !commit.chars().all(|c| c.is_ascii_hexdigit()) || commit.len() < 7 {
        return Err(ApiError::bad_request("bad_payload", format!("`{commit}` is not a commit id")));
    }
    Ok(())
}

/// Whether `clone_url` is `<base><full_name>.git` or `<base><full_name>`,
/// ignoring ASCII case as GitHub does for owner and repository names.
fn clone_url_names(base: &str, clone_url: &str, full_name: &str) -> bool {
    let Some(path) = clone_url.get(..base.len()).filter(|b| *b == base).map(|_| &clone_url[base.len()..]) else {
        return false;
    };
    let suffix = path.len().checked_sub(4).and_then(|at| Some((at, path.get(at..)?)));
    let path = match suffix {
        Some((at, ext)) if at > 0 && ext.eq_ignore_ascii_case(".git") => &path[..at],
        _ => path,
    };
    path.eq_ignore_ascii_case(full_name)
}

fn accepted(delivery: &str) -> Response {
    (StatusCode::ACCEPTED, Json(json!({ "accepted": true, "delivery": delivery, "status": "fetching" })))
        .into_response()
}

/// Fetches the commit, submits it as a build and records the delivery. When
/// the request has already been answered (`detached`), a fetch failure is
/// reported as an `error` commit status instead. Unless `last_try`, a
/// failure leaves the push pending for the caller to try again.
async fn fetch_and_submit(
    state: AppState,
    delivery: Option<String>,
    clone_url: String,
    origin: GitOrigin,
    detached: Arc<AtomicBool>,
    last_try: bool,
) -> ApiResult<(StatusCode, BuildView)> {
    let result = async {
        let files = {
            let (url, wanted, reference) = (clone_url.clone(), origin.commit.clone(), origin.git_ref.clone());
            let (sandbox, scratch) = (state.sandbox.clone(), state.jobs_dir.clone());
            tokio::task::spawn_blocking(move || {
                super::fetch::fetch_commit(&url, &wanted, &reference, &sandbox, &scratch)
            })
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| {
                let message = format!("could not fetch {}: {e}", origin.commit);
                ApiError::new(StatusCode::BAD_GATEWAY, "fetch_failed", message)
            })?
        };
        // The build, its delivery and the end of the pending push are one
        // transaction: a delivery makes one build, whatever fails when.
        let submission =
            Submission { files, origin: Some(origin.clone()), delivery: delivery.clone(), ..Submission::default() };
        let details = state.builds.submit(submission, &Submitter::github(&origin.repository)).await?;
        Ok::<_, ApiError>((StatusCode::ACCEPTED, BuildView::from(&details)))
    }
    .await;
    if !last_try && result.is_err() {
        return result;
    }
    if let Some(delivery) = &delivery {
        // Built (the build's transaction usually dropped it already, but not
        // when another attempt had recorded the delivery first), or failed
        // for good: a redelivery from GitHub starts it again.
        if let Err(e) = state.builds.forget_push(delivery).await {
            tracing::warn!(delivery = %delivery, "could not drop the pending push: {e}");
        }
    }
    if let (Err(error), true) = (&result, detached.load(Ordering::SeqCst)) {
        tracing::warn!(commit = %origin.commit, "a pushed commit could not be built: {}", error.message);
        if let Some(statuses) = &state.statuses {
            statuses.send(StatusUpdate {
                origin: origin.clone(),
                state: "error",
                description: error.message.chars().take(140).collect(),
                target_url: format!("{}/builds", state.config.public_url),
            });
        }
    }
    result
}

/// How often a push taken up after a restart is tried, and the waits
/// between tries (the network may still be coming up).
const RESUME_WAITS: [Duration; 2] = [Duration::from_secs(2), Duration::from_secs(10)];

/// Pending pushes older than this are dropped instead of built.
const RESUME_WITHIN: Duration = Duration::from_secs(7 * 24 * 3600);

/// Fetches and builds, one after another, the pushes a stopped daemon had
/// accepted but not yet built (when the webhook is enabled), checked again
/// against the repository list and `clone-base`. Failures are retried, then
/// reported as `error` commit statuses, as for any push answered before its
/// fetch ended. Returns how many there are.
pub async fn resume_pending(state: &AppState) -> Result<usize, ServiceError> {
    if state.config.github.secret.is_none() {
        return Ok(0);
    }
    let pending = state.builds.pending_pushes().await?;
    let count = pending.len();
    let state = state.clone();
    tokio::spawn(async move {
        for (push, age) in pending {
            let refused = match check_repository(&state, &push.origin.repository)
                .and_then(|_| check_source(&state, &push.clone_url, &push.origin))
            {
                Err(e) => Some(e.message),
                Ok(()) if age > RESUME_WITHIN => Some("it is older than a week".to_string()),
                Ok(()) => None,
            };
            if let Some(reason) = refused {
                tracing::warn!(delivery = %push.delivery, "a pending push is dropped: {reason}");
                let _ = state.builds.forget_push(&push.delivery).await;
                continue;
            }
            tracing::info!(delivery = %push.delivery, commit = %push.origin.commit, "fetching a push accepted before the restart");
            let mut waits = RESUME_WAITS.iter();
            loop {
                let wait = waits.next();
                let last_try = wait.is_none();
                let result = fetch_and_submit(
                    state.clone(),
                    Some(push.delivery.clone()),
                    push.clone_url.clone(),
                    push.origin.clone(),
                    Arc::new(AtomicBool::new(true)),
                    last_try,
                )
                .await;
                match wait {
                    Some(wait) if result.is_err() && !state.shutdown.is_cancelled() => tokio::time::sleep(*wait).await,
                    _ => break,
                }
            }
        }
    });
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::clone_url_names;

    #[test]
    fn a_clone_url_names_its_repository_in_any_case_with_or_without_git() {
        let base = "https://github.com/";
        assert!(clone_url_names(base, "https://github.com/acme/pymult.git", "acme/pymult"));
        assert!(clone_url_names(base, "https://github.com/acme/pymult", "acme/pymult"));
        assert!(clone_url_names(base, "https://github.com/ACME/PyMult.GIT", "Acme/pymult"));
        assert!(!clone_url_names(base, "https://github.com/acme/other.git", "acme/pymult"));
        assert!(!clone_url_names(base, "https://github.com/acme/pymult.git.git", "acme/pymult"));
        assert!(!clone_url_names(base, "https://github.com/acme/pymult/.git", "acme/pymult"));
        assert!(!clone_url_names(base, "https://gitlab.com/acme/pymult.git", "acme/pymult"));
        assert!(!clone_url_names(base, "https://github.co", "acme/pymult"));
        assert!(!clone_url_names(base, "https://github.com/acme/pymul\u{e9}t", "acme/pymult"));
    }
}
