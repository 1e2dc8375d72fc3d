//! What the package index publishes: every file name once, with the bytes
//! first published under it (pip pins wheels by sha256, so a name must never
//! change its bytes), and every project with the owner who first published
//! it. A build publishes all of its files or none of them, in the
//! transaction that records it.

use sqlx::{Row, SqliteConnection};

use super::{ArtifactRecord, Submitter};
use crate::db::now_ms;

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

/// The owner of a project, if it has been published.
pub async fn owner_of(conn: &mut SqliteConnection, normalized_name: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT owner FROM project_owners WHERE normalized_name = ?")
        .bind(normalized_name)
        .fetch_optional(conn)
        .await
}

/// A build's files, about to be published.
#[derive(Debug, Clone, Copy)]
pub struct Publication<'a> {
    /// The build.
    pub build_id: &'a str,
    /// Its project's normalised name.
    pub normalized_name: &'a str,
    /// Who it publishes for; `None` for a build recorded before owners were
    /// (it publishes only into a project nobody owns, and claims nothing).
    pub owner: Option<&'a str>,
    /// Whether a project owned by someone else is refused (`ownership =
    /// "first-publisher"`) or open to all (`"open"`).
    pub enforce_ownership: bool,
    /// Its files.
    pub artifacts: &'a [ArtifactRecord],
}

/// Publishes every file of the build, and makes its owner the project's
/// when nobody owns it yet; or, when any file name already has other bytes
/// or the project is someone else's, publishes nothing and says why. Run it
/// in the transaction that records the build (`BEGIN IMMEDIATE`, so that two
/// builds of one version cannot both be first).
pub async fn publish(conn: &mut SqliteConnection, publication: &Publication<'_>) -> Result<Vec<Refusal>, sqlx::Error> {
    let project = publication.normalized_name;
    if publication.enforce_ownership {
        if let Some(owner) = owner_of(conn, project).await? {
            if publication.owner != Some(owner.as_str()) {
                return Ok(vec![Refusal::ProjectOwned { project: project.to_string(), owner }]);
            }
        }
    }
    let mut refusals = Vec::new();
    for artifact in publication.artifacts {
        let published = sqlx::query("SELECT sha256, build_id FROM published_files WHERE filename = ?")
            .bind(&artifact.filename)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(row) = published {
            let published_sha256: String = row.get("sha256");
            if published_sha256 != artifact.sha256 {
                refusals.push(Refusal::FileTaken {
                    filename: artifact.filename.clone(),
                    target: artifact.target.clone(),
                    sha256: artifact.sha256.clone(),
                    published_sha256,
                    published_by: row.get("build_id"),
                });
            }
        }
    }
    if !refusals.is_empty() || publication.artifacts.is_empty() {
        return Ok(refusals);
    }
    let now = now_ms();
    if let Some(owner) = publication.owner {
        sqlx::query(
            "INSERT INTO project_owners (normalized_name, owner, build_id, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (normalized_name) DO NOTHING",
        )
        .bind(project)
        .bind(owner)
        .bind(publication.build_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    for artifact in publication.artifacts {
        // The same bytes again (a reproducible rebuild) keep the first
        // build's row: its URL is the one pip already knows.
        sqlx::query(
            "INSERT INTO published_files (filename, normalized_name, sha256, build_id, published_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (filename) DO NOTHING",
        )
        .bind(&artifact.filename)
        .bind(project)
        .bind(&artifact.sha256)
        .bind(publication.build_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(refusals)
}
