//! The HTTP API: builds, logs, artifacts, the package index, health,
//! metrics and the OpenAPI document. Writes need a bearer token when any is
//! configured.

pub mod builds;
mod health;
mod index;
pub mod projects;
mod range;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

pub use crate::auth::{bearer_token, token_allowed};
use crate::error::ApiError;
use crate::state::AppState;

/// The API's routes (builds, projects, the package index, health, metrics,
/// the OpenAPI document); [`crate::routes`] puts every door together.
pub fn routes(state: &AppState) -> Router<AppState> {
    let writes = Router::new()
        .route("/api/v1/builds", post(builds::create))
        .route("/api/v1/builds/{id}/cancel", post(builds::cancel))
        .route("/api/v1/builds/{id}/rebuild", post(builds::rebuild))
        .route("/api/v1/builds/{id}/yank", post(builds::yank))
        .route("/api/v1/builds/{id}/unyank", post(builds::unyank))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_token))
        // Room for the multipart framing around the largest accepted upload.
        .layer(DefaultBodyLimit::max(state.config.max_upload as usize + 64 * 1024));
    Router::new()
        .merge(writes)
        .route("/api/v1/builds", get(builds::list))
        .route("/api/v1/builds/{id}", get(builds::show))
        .route("/api/v1/builds/{id}/log", get(builds::log))
        .route("/api/v1/builds/{id}/artifacts/{filename}", get(builds::artifact))
        .route("/api/v1/projects/{name}", get(projects::show))
        .route("/api/v1/openapi.json", get(health::openapi))
        .route("/simple/", get(index::projects))
        .route("/simple", get(index::projects))
        .route("/simple/{project}/", get(index::project))
        .route("/simple/{project}", get(index::project))
        .route("/backend/{filename}", get(builds::backend))
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
}

/// Refuses writes without a configured bearer token (when there are tokens).
async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    if !state.config.tokens.is_empty() {
        let Some(given) = bearer_token(request.headers()) else {
            return Err(ApiError::unauthorized("this server needs `Authorization: Bearer <token>` to accept builds"));
        };
        if !token_allowed(&state.config.tokens, Some(given)) {
            return Err(ApiError::unauthorized("the token is not valid"));
        }
    }
    Ok(next.run(request).await)
}
