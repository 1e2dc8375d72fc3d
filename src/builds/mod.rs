//! Builds as the database holds them: one row per request, with its
//! report, artifacts and log lines; who asked for each; and what the
//! package index publishes.

pub mod published;
pub mod repo;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use wheelwright_workers::platform::Target;
use wheelwright_workers::report::BuildReport;
use wheelwright_workers::wheel::sha256_hex;

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

/// Who asks for a build: the identity a project is owned by, and the one
/// its queued builds are counted against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitter {
    /// Whose project a successful build publishes: `token:<id>`,
    /// `github:<owner>/<name>` or `local` (the one owner of a tokenless daemon).
    pub owner: String,
    /// Whose queue limit the build counts against: the owner, except on a
    /// tokenless daemon, where it is the client's address (`addr:<ip>`).
    pub client: String,
}

impl Submitter {
    /// The holder of a bearer token, known by a stable id that is not the
    /// token: the first 16 hex digits of its sha256.
    pub fn token(token: &str) -> Submitter {
        let id = format!("token:{}", &sha256_hex(token.as_bytes())[..16]);
        Submitter { owner: id.clone(), client: id }
    }

    /// A GitHub repository (`owner/name`, compared without case, as GitHub does).
    pub fn github(repository: &str) -> Submitter {
        let id = format!("github:{}", repository.to_ascii_lowercase());
        Submitter { owner: id.clone(), client: id }
    }

    /// Anyone reaching a tokenless daemon: one owner, the daemon itself;
    /// queue limits per client address.
    pub fn local(client: IpAddr) -> Submitter {
        Submitter { owner: LOCAL_OWNER.to_string(), client: format!("addr:{client}") }
    }

    /// The submitter of a request that passed the token check: the token's
    /// holder when the daemon has tokens, else the client's address.
    /// The token is taken trimmed, as the token checks compare it.
    pub fn of_request(tokens_configured: bool, token: Option<&str>, client: IpAddr) -> Submitter {
        match token.map(str::trim) {
            Some(token) if tokens_configured => Submitter::token(token),
            _ => Submitter::local(client),
        }
    }

    /// The owner as a person reads it in an error message: a GitHub
    /// repository is named, a token is not (its id is half of a hash of it).
    pub fn describe_owner(owner: &str) -> String {
        match owner.strip_prefix("github:") {
            Some(repository) => format!("the GitHub repository {repository}"),
            None if owner == LOCAL_OWNER => "this server's local uploads".to_string(),
            None => "another token".to_string(),
        }
    }
}

/// The owner id of everything uploaded to a tokenless daemon.
pub const LOCAL_OWNER: &str = "local";

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
    /// Who the build publishes for (see [`Submitter::owner`]); `None` for
    /// builds recorded before owners were.
    pub owner: Option<String>,
    /// Whose queue limit it counts against (see [`Submitter::client`]).
    pub submitter: Option<String>,
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
