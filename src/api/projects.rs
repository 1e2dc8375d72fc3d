//! `/api/v1/projects/{name}`: a project's versions × targets with the latest
//! outcome of each, the JSON twin of the project page.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use wheelwright_workers::wheel::tags;

use super::builds::ArtifactView;
use super::error::{ApiError, ApiResult};
use crate::builds::repo;
use crate::state::AppState;

/// The newest outcome of one target of one version.
#[derive(Debug, Serialize)]
pub struct Cell {
    /// Target name.
    pub target: String,
    /// The target's status in that build (or the build's, while it runs).
    pub status: String,
    /// The build.
    pub build_id: String,
    /// Its wheels for this target.
    pub artifacts: Vec<ArtifactView>,
}

/// One version row.
#[derive(Debug, Serialize)]
pub struct VersionRow {
    /// Version.
    pub version: String,
    /// One cell per target that was ever built for it.
    pub targets: Vec<Cell>,
}

/// A project.
#[derive(Debug, Serialize)]
pub struct ProjectView {
    /// Normalised name.
    pub name: String,
    /// The name as its newest build spells it.
    pub display_name: String,
    /// Newest version first.
    pub versions: Vec<VersionRow>,
    /// Builds looked at.
    pub builds: usize,
}

/// Builds the view from the newest 500 builds of the project.
pub async fn project_view(state: &AppState, name: &str) -> ApiResult<ProjectView> {
    let normalized = tags::normalize(name);
    let builds = repo::list(&state.db, 500, None, Some(&normalized), None).await?;
    if builds.is_empty() {
        return Err(ApiError::not_found(format!("no builds of `{normalized}`")));
    }
    let mut order: Vec<String> = Vec::new();
    let mut cells: BTreeMap<(String, String), Cell> = BTreeMap::new();
    for build in &builds {
        if !order.contains(&build.project_version) {
            order.push(build.project_version.clone());
        }
        let artifacts = repo::artifacts(&state.db, &build.id).await?;
        for target in &build.targets {
            let key = (build.project_version.clone(), target.name().to_string());
            if cells.contains_key(&key) {
                continue;
            }
            let status = build
                .report
                .as_ref()
                .and_then(|r| r.targets.iter().find(|t| t.target == *target))
                .map(|t| t.status.as_str().to_string())
                .unwrap_or_else(|| build.status.as_str().to_string());
            // A failed target's wheels are not the version's: a refused
            // upload's wheel must not stand beside the published one.
            let artifacts = artifacts
                .iter()
                .filter(|a| a.target.as_deref() == Some(target.name()) && status != "failed")
                .map(|a| ArtifactView {
                    filename: a.filename.clone(),
                    size: a.size,
                    sha256: a.sha256.clone(),
                    url: format!("/api/v1/builds/{}/artifacts/{}", build.id, a.filename),
                    target: a.target.clone(),
                })
                .collect();
            cells
                .insert(key, Cell { target: target.name().to_string(), status, build_id: build.id.clone(), artifacts });
        }
    }
    let versions = order
        .into_iter()
        .map(|version| {
            let mut targets: Vec<Cell> = Vec::new();
            let keys: Vec<(String, String)> = cells.keys().filter(|(v, _)| *v == version).cloned().collect();
            for key in keys {
                targets.extend(cells.remove(&key));
            }
            VersionRow { version, targets }
        })
        .collect();
    Ok(ProjectView { name: normalized, display_name: builds[0].project_name.clone(), versions, builds: builds.len() })
}

/// `GET /api/v1/projects/{name}`.
pub async fn show(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<ProjectView>> {
    Ok(Json(project_view(&state, &name).await?))
}
