//! The `published_files` and `project_owners` tables: what the package
//! index publishes and who owns each project. The only module that writes
//! them.
//!
//! Written once for both backends: `sqlite/mod.rs` and `postgres/mod.rs` each
//! compile this file as their own module (`#[path]`), with `Conn` and `DbRow`
//! their dialect's connection and row, and parameters written `$1`, `$2`, …
//! (which PostgreSQL requires and sqlx's SQLite driver binds by number).
//! Where the dialects differ, the text comes from the backend:
//! `serialise_publications` (see [`publish`]).

use sqlx::Row;

use super::Conn;

use crate::db::{now_ms, DbResult};
use crate::model::index::{IndexFile, Refusal};
use crate::model::ArtifactRecord;

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

/// The owner of a project, if it has been published.
pub async fn owner_of(conn: &mut Conn, normalized_name: &str) -> DbResult<Option<String>> {
    Ok(sqlx::query_scalar("SELECT owner FROM project_owners WHERE normalized_name = $1")
        .bind(normalized_name)
        .fetch_optional(conn)
        .await?)
}

/// Publishes every file of the build, and makes its owner the project's
/// when nobody owns it yet; or, when any file name already has other bytes
/// or the project is someone else's, publishes nothing and says why. Run it
/// in the transaction that records the build; it first waits for the
/// backend's `serialise_publications`, so that two builds of one version
/// cannot both be first.
pub async fn publish(conn: &mut Conn, publication: &Publication<'_>) -> DbResult<Vec<Refusal>> {
    super::serialise_publications(conn).await?;
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
        let published = sqlx::query("SELECT sha256, build_id FROM published_files WHERE filename = $1")
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
            "INSERT INTO project_owners (normalized_name, owner, build_id, created_at) VALUES ($1, $2, $3, $4) \
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
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (filename) DO NOTHING",
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

/// Normalised names of projects with at least one published file.
pub async fn projects(conn: &mut Conn) -> DbResult<Vec<String>> {
    Ok(sqlx::query_scalar("SELECT DISTINCT normalized_name FROM published_files ORDER BY normalized_name")
        .fetch_all(conn)
        .await?)
}

/// Every published file of a project, each name once with its first bytes.
pub async fn files(conn: &mut Conn, normalized_name: &str) -> DbResult<Vec<IndexFile>> {
    let rows = sqlx::query(
        "SELECT p.build_id, p.filename, p.sha256, p.published_at, b.requires_python, b.project_version, a.size, \
         a.metadata_sha256, p.yanked_reason FROM published_files p JOIN builds b ON b.id = p.build_id \
         JOIN artifacts a ON a.build_id = p.build_id AND a.filename = p.filename \
         WHERE p.normalized_name = $1 ORDER BY p.filename",
    )
    .bind(normalized_name)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| IndexFile {
            url: crate::model::artifact_url(row.get("build_id"), row.get("filename")),
            build_id: row.get("build_id"),
            filename: row.get("filename"),
            sha256: row.get("sha256"),
            requires_python: row.get("requires_python"),
            version: row.get("project_version"),
            size: row.get("size"),
            published_at: row.get("published_at"),
            metadata_sha256: row.get("metadata_sha256"),
            yanked: row.get("yanked_reason"),
        })
        .collect())
}

/// Yanks (`reason` given) or unyanks (`None`) the files the index serves
/// from build `build_id`: its artifacts whose published name still has its
/// bytes, whichever build published them first. Returns how many.
pub async fn set_yanked(conn: &mut Conn, build_id: &str, reason: Option<&str>) -> DbResult<u64> {
    let done = sqlx::query(
        "UPDATE published_files SET yanked_reason = $1 WHERE EXISTS (SELECT 1 FROM artifacts a \
         WHERE a.build_id = $2 AND a.filename = published_files.filename AND a.sha256 = published_files.sha256)",
    )
    .bind(reason)
    .bind(build_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Whether the index serves files of build `build_id` (`None`: none), and
/// if so the yank reason (`Some(Some(reason))`) or not yanked (`Some(None)`).
pub async fn yank_state(conn: &mut Conn, build_id: &str) -> DbResult<Option<Option<String>>> {
    let rows: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT p.yanked_reason FROM published_files p JOIN artifacts a ON a.filename = p.filename \
         AND a.sha256 = p.sha256 WHERE a.build_id = $1 ORDER BY p.filename",
    )
    .bind(build_id)
    .fetch_all(conn)
    .await?;
    // Yanking sets every file at once; the first yanked one speaks for them.
    Ok((!rows.is_empty()).then(|| rows.iter().flatten().next().cloned()))
}
