//! `/healthz`, `/metrics` and the OpenAPI document.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::error::ApiResult;
use crate::state::AppState;

/// Alive and able to read the database.
pub async fn healthz(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let depth = state.builds.queue_depth().await?;
    Ok(Json(json!({ "status": "ok", "queue_depth": depth, "workers": state.config.workers })))
}

/// Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let (builds, depth) = state.builds.counts().await?;
    let body = state.metrics.render(state.config.workers, depth, &builds);
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body))
}

/// The API described in OpenAPI 3.1.
pub async fn openapi() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], include_str!("openapi.json"))
}
