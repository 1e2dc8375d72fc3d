//! `/api/v1/projects/{name}`: a project's versions × targets with the latest
//! outcome of each, the JSON twin of the project page.

use axum::extract::{Path, State};
use axum::Json;

use crate::dto::ProjectView;
use crate::error::ApiResult;
use crate::state::AppState;

/// `GET /api/v1/projects/{name}`.
pub async fn show(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<ProjectView>> {
    Ok(Json(ProjectView::from(&state.builds.project(&name).await?)))
}
