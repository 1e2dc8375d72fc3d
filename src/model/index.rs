//! What the package index publishes: every file name once, with the bytes
//! first published under it (pip pins wheels by sha256, so a name must never
//! change its bytes), and every project with the owner who first published
//! it. A build publishes all of its files or none of them, in the
//! transaction that records it.

use super::Submitter;

/// Why a build's files were not published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A file of the same name was published earlier with other bytes.
    FileTaken {
        /// The file name.
        filename: String,
        /// The wheel's target; `None` for the sdist.
        target: Option<String>,
        /// The bytes this build made.
        sha256: String,
        /// The bytes published under the name.
        published_sha256: String,
        /// The build that published them.
        published_by: String,
    },
    /// The project belongs to another owner.
    ProjectOwned {
        /// Normalised project name.
        project: String,
        /// Its owner id.
        owner: String,
    },
}

impl Refusal {
    /// A sentence for the build's page, log and commit status.
    pub fn message(&self) -> String {
        match self {
            Refusal::FileTaken { filename, sha256, published_sha256, published_by, .. } => format!(
                "{filename} was already published with other bytes (sha256 {published_sha256}, build \
                 {published_by}); this build made sha256 {sha256}, which is not published: bump the version"
            ),
            Refusal::ProjectOwned { project, owner } => project_owned_message(project, owner),
        }
    }
}

/// Why `project` cannot be published by anyone but `owner`.
pub fn project_owned_message(project: &str, owner: &str) -> String {
    format!(
        "project `{project}` belongs to {}, which published it first; only its owner can publish it (or choose \
         another name)",
        Submitter::describe_owner(owner)
    )
}

/// How a successful build publishes its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Who it publishes for; `None` for a build recorded before owners were
    /// (it publishes only into a project nobody owns, and claims nothing).
    pub owner: Option<String>,
    /// Whether a project owned by someone else is refused (`ownership =
    /// "first-publisher"`) or open to all (`"open"`).
    pub enforce_ownership: bool,
}

/// A file of the package index.
#[derive(Debug, Clone)]
pub struct IndexFile {
    /// The build that published it (the first one with these bytes).
    pub build_id: String,
    /// Where it is downloaded.
    pub url: String,
    /// File name.
    pub filename: String,
    /// sha256.
    pub sha256: String,
    /// `requires-python`.
    pub requires_python: String,
    /// The version of the build that published it.
    pub version: String,
    /// Size in bytes.
    pub size: i64,
    /// When it was published (ms since 1970): PEP 700's `upload-time`.
    pub published_at: i64,
    /// sha256 of its `METADATA` file served beside it (PEP 658), when kept.
    pub metadata_sha256: Option<String>,
    /// Yanked (PEP 592), with the reason given (possibly empty).
    pub yanked: Option<String>,
}
