//! The HTTP API: builds, logs, artifacts, the package index, health,
//! metrics and the OpenAPI document. Writes need a bearer token when any is
//! configured.

pub mod builds;
mod health;
mod index;
pub mod projects;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

pub use crate::auth::{bearer_token, token_allowed};
use crate::error::ApiError;
use crate::state::AppState;

/// Every route of the daemon. `state.config.bind` must be the address the
/// listener really has (the `Host` allow-list derives from it).
pub fn router(state: AppState) -> Router {
    let guard = std::sync::Arc::new(crate::web::guard::Guard::new(state.config.bind, &state.config));
    let writes = Router::new()
        .route("/api/v1/builds", post(builds::create))
        .route("/api/v1/builds/{id}/cancel", post(builds::cancel))
        .route("/api/v1/builds/{id}/rebuild", post(builds::rebuild))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_token))
        // Room for the multipart framing around the largest accepted upload.
        .layer(DefaultBodyLimit::max(state.config.max_upload as usize + 64 * 1024));
    let pages = crate::web::router().layer(DefaultBodyLimit::max(state.config.max_upload as usize + 64 * 1024));
    Router::new()
        .merge(writes)
        .merge(pages)
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
        // Caps its body itself, after the headers say it may be read.
        .route("/webhooks/github", post(crate::github::webhook))
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .fallback(|| async { ApiError::not_found("no such page") })
        // Outermost: Host and cross-site checks before anything else runs,
        // security headers on every answer, refusals and 404s included.
        .layer(axum::middleware::from_fn_with_state(guard, crate::web::guard::guard))
        .with_state(state)
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
