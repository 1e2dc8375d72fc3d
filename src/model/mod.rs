//! The daemon's records: builds as the database holds them (one row per
//! request, with its stored report and artifacts), who asked for each, the
//! job queue's claims, pending GitHub pushes and what the package index
//! publishes. Plain data, shared by the stores below and the service above;
//! it imports nothing else of the daemon.

pub mod index;
pub mod queue;
pub mod report;

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use wheelwright_workers::platform::Target;
use wheelwright_workers::wheel::sha256_hex;

pub use report::StoredReport;

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

    /// Every status, in the order of a build's life.
    pub const ALL: [BuildStatus; 5] = [Self::Queued, Self::Running, Self::Succeeded, Self::Failed, Self::Cancelled];

    /// Parses a column or query value.
    pub fn parse(s: &str) -> Option<BuildStatus> {
        Self::ALL.into_iter().find(|b| b.as_str() == s)
    }

    /// Whether the build will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, BuildStatus::Succeeded | BuildStatus::Failed | BuildStatus::Cancelled)
    }
}

impl fmt::Display for BuildStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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

/// A timestamp column (ms since 1970) as RFC 3339 with milliseconds, as
/// the API and the pages show it.
pub fn rfc3339(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}

/// Where a build's artifact is downloaded (the API's path, linked from the
/// pages and the index alike).
pub fn artifact_url(build_id: &str, filename: &str) -> String {
    format!("/api/v1/builds/{build_id}/artifacts/{filename}")
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
    /// The build's report once done, as stored.
    pub report: Option<StoredReport>,
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
    /// sha256 of a wheel's `METADATA`, stored beside it (PEP 658); `None`
    /// for the sdist and for artifacts recorded before it was kept.
    pub metadata_sha256: Option<String>,
}

impl BuildRecord {
    /// The status of `target` in this build: its report's, or the build's
    /// own while it has no report.
    pub fn target_status(&self, target: Target) -> String {
        self.report
            .as_ref()
            .and_then(|r| r.targets.iter().find(|t| t.target == target))
            .map(|t| t.status.as_str().to_string())
            .unwrap_or_else(|| self.status.as_str().to_string())
    }
}

/// A build with its artifacts, as one listing or lookup returns it.
#[derive(Debug, Clone)]
pub struct BuildDetails {
    /// The row.
    pub build: BuildRecord,
    /// Its artifacts, wheels by target then the sdist.
    pub artifacts: Vec<ArtifactRecord>,
}

/// Which builds a listing returns: newest first, after `before` (an id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Most builds returned.
    pub limit: u32,
    /// Only builds older than this id (the cursor).
    pub before: Option<String>,
    /// Only this project (normalised name).
    pub project: Option<String>,
    /// Only builds with this status.
    pub status: Option<BuildStatus>,
}

/// A build about to be recorded.
#[derive(Debug, Clone)]
pub struct NewBuild {
    /// Public id.
    pub id: String,
    /// Project name.
    pub project_name: String,
    /// Normalised name.
    pub normalized_name: String,
    /// Version.
    pub project_version: String,
    /// `requires-python`.
    pub requires_python: String,
    /// Targets.
    pub targets: Vec<Target>,
    /// Debug build.
    pub debug: bool,
    /// Upload overrides.
    pub overrides: UploadOverrides,
    /// Source tree hash.
    pub source_hash: String,
    /// Cache key.
    pub cache_key: String,
    /// The git push it came from.
    pub origin: Option<GitOrigin>,
    /// The GitHub delivery that asked for it: recorded with the build, in
    /// the same transaction, so a delivery makes one build at most.
    pub delivery: Option<String>,
    /// Who asked for it.
    pub submitter: Submitter,
}

/// What recording a new build did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// The build was recorded.
    Recorded,
    /// Nothing was recorded: the build's delivery already made this build.
    DeliveryTaken(String),
    /// Nothing was recorded: the submitter has this many builds queued,
    /// the most it may have.
    TooManyQueued(i64),
    /// Nothing was recorded: the earlier build's files cannot be published
    /// for this one (another owner's project, or names taken by other
    /// bytes), so it has to be built, and fail, on its own.
    NotFromCache,
}

/// What a cancel request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// It was queued: cancelled now.
    Cancelled,
    /// It is running: its worker will stop it.
    Requested,
    /// It had already finished with this status.
    AlreadyFinished(BuildStatus),
    /// No such build.
    NotFound,
}

/// A push accepted by the webhook, waiting for its commit to be fetched
/// and built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPush {
    /// GitHub's `X-GitHub-Delivery`.
    pub delivery: String,
    /// The repository, ref and commit.
    pub origin: GitOrigin,
    /// Where to fetch the commit from.
    pub clone_url: String,
}
