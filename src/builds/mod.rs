//! Builds as the database holds them: one row per request, with its
//! report, artifacts and log lines.

pub mod repo;

use serde::{Deserialize, Serialize};
use wheelwright_workers::report::BuildReport;
use wheelwright_workers::target::Target;

/// Where a build is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    /// Waiting for a worker.
    Queued,
    /// A worker is building it.
    Running,
    /// Every requested target succeeded.
    Succeeded,
    /// A target failed, or the host gave up on it.
    Failed,
    /// Cancelled by a user.
    Cancelled,
}

impl BuildStatus {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Queued => "queued",
            BuildStatus::Running => "running",
            BuildStatus::Succeeded => "succeeded",
            BuildStatus::Failed => "failed",
            BuildStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a column or query value.
    pub fn parse(s: &str) -> Option<BuildStatus> {
        [Self::Queued, Self::Running, Self::Succeeded, Self::Failed, Self::Cancelled]
            .into_iter()
            .find(|b| b.as_str() == s)
    }

    /// Whether the build will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, BuildStatus::Succeeded | BuildStatus::Failed | BuildStatus::Cancelled)
    }
}

/// Values given with the upload that stand in for a missing pyproject.toml.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadOverrides {
    /// Distribution name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Where a build's source came from, when it was a git push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitOrigin {
    /// `owner/name`.
    pub repository: String,
    /// The pushed ref, e.g. `refs/heads/main`.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The commit built.
    pub commit: String,
}

/// One build row.
#[derive(Debug, Clone)]
pub struct BuildRecord {
    /// Public id (a UUIDv7: sorts by creation).
    pub id: String,
    /// Status.
    pub status: BuildStatus,
    /// Project name as written.
    pub project_name: String,
    /// PEP 503 normalised name.
    pub normalized_name: String,
    /// Version.
    pub project_version: String,
    /// `requires-python`, for the index.
    pub requires_python: String,
    /// Requested targets.
    pub targets: Vec<Target>,
    /// Debug build.
    pub debug: bool,
    /// Upload overrides.
    pub overrides: UploadOverrides,
    /// sha256 over the source tree.
    pub source_hash: String,
    /// Key for reusing identical earlier results.
    pub cache_key: String,
    /// The build whose results this one reuses.
    pub cached_from: Option<String>,
    /// The engine's report once done.
    pub report: Option<BuildReport>,
    /// Why the build failed outside any target (host failures, cancellation).
    pub error: Option<String>,
    /// A cancel was asked for while it ran.
    pub cancel_requested: bool,
    /// Timestamps in ms since 1970.
    pub created_at: i64,
    /// Started.
    pub started_at: Option<i64>,
    /// Finished.
    pub finished_at: Option<i64>,
    /// The git push it came from, if any.
    pub origin: Option<GitOrigin>,
}

/// One stored artifact of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRecord {
    /// File name.
    pub filename: String,
    /// The target for a wheel; `None` for the sdist.
    pub target: Option<String>,
    /// Lowercase hex sha256: the store's key.
    pub sha256: String,
    /// Size in bytes.
    pub size: i64,
}
