//! The `builds` and `artifacts` tables: the only module that writes them.
//! Functions take the caller's connection, so that the backend can put them
//! in one transaction with other tables' writes.
//!
//! Written once for both backends: `sqlite/mod.rs` and `postgres/mod.rs` each
//! compile this file as their own module (`#[path]`), with `Conn` and `DbRow`
//! their dialect's connection and row, and parameters written `$1`, `$2`, …
//! (which PostgreSQL requires and sqlx's SQLite driver binds by number).
//! Where the dialects differ, the text comes from the backend:
//! `for_update!()` locks a row on PostgreSQL and is empty on SQLite.

use sqlx::Row;
use wheelwright_workers::platform::Target;

use super::{Conn, DbRow};
use crate::db::{DbError, DbResult};
use crate::model::{
    ArtifactRecord, BuildDetails, BuildRecord, BuildStatus, GitOrigin, ListFilter, NewBuild, StoredReport,
    UploadOverrides,
};

/// Every column of a build row, for `concat!` (statements stay `&'static str`).
macro_rules! columns {
    () => {
        "id, status, project_name, normalized_name, project_version, requires_python, targets, \
                       debug, overrides, source_hash, cache_key, cached_from, report, error, cancel_requested, \
                       created_at, started_at, finished_at, source_repository, source_ref, source_commit, owner, \
                       submitter"
    };
}

fn decode(id: &str, column: &str, detail: impl std::fmt::Display) -> DbError {
    DbError::Decode { what: format!("builds.{column} of build {id}"), detail: detail.to_string() }
}

/// A row as a record; a column that does not decode is an error.
fn record(row: &DbRow) -> DbResult<BuildRecord> {
    let id: String = row.get("id");
    let status: &str = row.get("status");
    let status = BuildStatus::parse(status).ok_or_else(|| decode(&id, "status", format!("unknown `{status}`")))?;
    let targets: &str = row.get("targets");
    let targets = Target::parse_list(targets).map_err(|e| decode(&id, "targets", e))?;
    let overrides: UploadOverrides =
        serde_json::from_str(row.get::<&str, _>("overrides")).map_err(|e| decode(&id, "overrides", e))?;
    let report = match row.get::<Option<&str>, _>("report") {
        Some(json) => Some(StoredReport::decode(json).map_err(|e| decode(&id, "report", e))?),
        None => None,
    };
    Ok(BuildRecord {
        status,
        project_name: row.get("project_name"),
        normalized_name: row.get("normalized_name"),
        project_version: row.get("project_version"),
        requires_python: row.get("requires_python"),
        targets,
        debug: row.get("debug"),
        overrides,
        source_hash: row.get("source_hash"),
        cache_key: row.get("cache_key"),
        cached_from: row.get("cached_from"),
        report,
        error: row.get("error"),
        cancel_requested: row.get("cancel_requested"),
        created_at: row.get("created_at"),
        started_at: row.get("started_at"),
        finished_at: row.get("finished_at"),
        origin: match (row.get("source_repository"), row.get("source_ref"), row.get("source_commit")) {
            (Some(repository), Some(git_ref), Some(commit)) => Some(GitOrigin { repository, git_ref, commit }),
            _ => None,
        },
        owner: row.get("owner"),
        submitter: row.get("submitter"),
        id,
    })
}

fn artifact(row: &DbRow) -> ArtifactRecord {
    ArtifactRecord {
        filename: row.get("filename"),
        target: row.get("target"),
        sha256: row.get("sha256"),
        size: row.get("size"),
        metadata_sha256: row.get("metadata_sha256"),
    }
}

fn targets_column(targets: &[Target]) -> String {
    targets.iter().map(|t| t.name()).collect::<Vec<_>>().join(",")
}

/// Inserts the row of a new build with `status`.
pub async fn insert(conn: &mut Conn, build: &NewBuild, status: BuildStatus, now: i64) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO builds (id, status, project_name, normalized_name, project_version, requires_python, targets, \
         debug, overrides, source_hash, cache_key, created_at, source_repository, source_ref, source_commit, owner, \
         submitter) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(&build.id)
    .bind(status.as_str())
    .bind(&build.project_name)
    .bind(&build.normalized_name)
    .bind(&build.project_version)
    .bind(&build.requires_python)
    .bind(targets_column(&build.targets))
    .bind(build.debug)
    .bind(serde_json::to_string(&build.overrides).expect("serialisable"))
    .bind(&build.source_hash)
    .bind(&build.cache_key)
    .bind(now)
    .bind(build.origin.as_ref().map(|o| o.repository.clone()))
    .bind(build.origin.as_ref().map(|o| o.git_ref.clone()))
    .bind(build.origin.as_ref().map(|o| o.commit.clone()))
    .bind(&build.submitter.owner)
    .bind(&build.submitter.client)
    .execute(conn)
    .await?;
    Ok(())
}

/// Builds of `client` waiting in the queue.
pub async fn queued_by(conn: &mut Conn, client: &str) -> DbResult<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM builds WHERE submitter = $1 AND status = 'queued'")
        .bind(client)
        .fetch_one(conn)
        .await?)
}

/// Gives build `id` the report and artifacts of build `from`, finished now.
pub async fn copy_results(conn: &mut Conn, id: &str, from: &str, now: i64) -> DbResult<()> {
    sqlx::query(
        "UPDATE builds SET cached_from = $1, report = (SELECT report FROM builds WHERE id = $2), started_at = $3, \
         finished_at = $4 WHERE id = $5",
    )
    .bind(from)
    .bind(from)
    .bind(now)
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO artifacts (build_id, filename, target, sha256, size, metadata_sha256) \
         SELECT $1, filename, target, sha256, size, metadata_sha256 FROM artifacts WHERE build_id = $2",
    )
    .bind(id)
    .bind(from)
    .execute(conn)
    .await?;
    Ok(())
}

/// The id of the newest succeeded build with this cache key.
pub async fn cached(conn: &mut Conn, cache_key: &str) -> DbResult<Option<String>> {
    let sql = "SELECT id FROM builds WHERE cache_key = $1 AND status = 'succeeded' ORDER BY id DESC LIMIT 1";
    Ok(sqlx::query_scalar(sql).bind(cache_key).fetch_optional(conn).await?)
}

/// One build.
pub async fn get(conn: &mut Conn, id: &str) -> DbResult<Option<BuildRecord>> {
    let sql = concat!("SELECT ", columns!(), " FROM builds WHERE id = $1");
    sqlx::query(sql).bind(id).fetch_optional(conn).await?.as_ref().map(record).transpose()
}

/// A build's status, its row locked until the transaction ends (a cancel
/// and a claim or a completion of the same build take turns; on SQLite the
/// transaction's write lock does that).
pub async fn status_for_update(conn: &mut Conn, id: &str) -> DbResult<Option<BuildStatus>> {
    let status: Option<String> = sqlx::query_scalar(concat!("SELECT status FROM builds WHERE id = $1", for_update!()))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    status.map(|s| BuildStatus::parse(&s).ok_or_else(|| decode(id, "status", format!("unknown `{s}`")))).transpose()
}

/// Builds newest first, with their artifacts from one more query.
pub async fn list(conn: &mut Conn, filter: &ListFilter) -> DbResult<Vec<BuildDetails>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM builds WHERE ($1 IS NULL OR id < $2) AND ($3 IS NULL OR normalized_name = $4) \
         AND ($5 IS NULL OR status = $6) ORDER BY id DESC LIMIT $7"
    );
    let status = filter.status.map(BuildStatus::as_str);
    let rows = sqlx::query(sql)
        .bind(&filter.before)
        .bind(&filter.before)
        .bind(&filter.project)
        .bind(&filter.project)
        .bind(status)
        .bind(status)
        .bind(i64::from(filter.limit))
        .fetch_all(&mut *conn)
        .await?;
    let builds = rows.iter().map(record).collect::<DbResult<Vec<_>>>()?;
    let ids: Vec<&str> = builds.iter().map(|b| b.id.as_str()).collect();
    let mut artifacts = artifacts_of(conn, &ids).await?;
    Ok(builds
        .into_iter()
        .map(|build| {
            let artifacts = artifacts.remove(&build.id).unwrap_or_default();
            BuildDetails { build, artifacts }
        })
        .collect())
}

/// The artifacts of several builds in one query, per build in the order of
/// [`artifacts`].
async fn artifacts_of(
    conn: &mut Conn,
    ids: &[&str],
) -> DbResult<std::collections::HashMap<String, Vec<ArtifactRecord>>> {
    let mut by_build: std::collections::HashMap<String, Vec<ArtifactRecord>> = Default::default();
    if ids.is_empty() {
        return Ok(by_build);
    }
    let mut query = sqlx::QueryBuilder::new(
        "SELECT build_id, filename, target, sha256, size, metadata_sha256 FROM artifacts WHERE build_id IN (",
    );
    let mut list = query.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    query.push(") ORDER BY build_id, target IS NULL, target, filename");
    for row in query.build().fetch_all(conn).await? {
        by_build.entry(row.get("build_id")).or_default().push(artifact(&row));
    }
    Ok(by_build)
}

/// A build's artifacts, wheels by target then the sdist.
pub async fn artifacts(conn: &mut Conn, id: &str) -> DbResult<Vec<ArtifactRecord>> {
    let rows = sqlx::query(
        "SELECT filename, target, sha256, size, metadata_sha256 FROM artifacts WHERE build_id = $1 \
         ORDER BY target IS NULL, target, filename",
    )
    .bind(id)
    .fetch_all(conn)
    .await?;
    Ok(rows.iter().map(artifact).collect())
}

/// How a build ended, with its artifacts.
pub async fn finish(
    conn: &mut Conn,
    id: &str,
    status: BuildStatus,
    report: Option<&StoredReport>,
    error: Option<&str>,
    artifacts: &[ArtifactRecord],
    now: i64,
) -> DbResult<()> {
    for a in artifacts {
        sqlx::query(
            "INSERT INTO artifacts (build_id, filename, target, sha256, size, metadata_sha256) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(&a.filename)
        .bind(&a.target)
        .bind(&a.sha256)
        .bind(a.size)
        .bind(&a.metadata_sha256)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("UPDATE builds SET status = $1, report = $2, error = $3, finished_at = $4 WHERE id = $5")
        .bind(status.as_str())
        .bind(report.map(StoredReport::encode))
        .bind(error)
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks a claimed build running (once started, its first start is kept).
pub async fn mark_running(conn: &mut Conn, id: &str, now: i64) -> DbResult<()> {
    sqlx::query(
        "UPDATE builds SET status = 'running', started_at = COALESCE(started_at, $1) \
         WHERE id = $2 AND status IN ('queued', 'running')",
    )
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Puts a running build back to queued (its job was handed back or will be
/// retried).
pub async fn mark_queued(conn: &mut Conn, id: &str) -> DbResult<()> {
    sqlx::query("UPDATE builds SET status = 'queued' WHERE id = $1 AND status = 'running'")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Fails a build outside its targets (out of attempts), or cancels a queued
/// one: `status` with `error`, finished now.
pub async fn end(conn: &mut Conn, id: &str, status: BuildStatus, error: &str, now: i64) -> DbResult<()> {
    sqlx::query("UPDATE builds SET status = $1, error = $2, finished_at = $3 WHERE id = $4")
        .bind(status.as_str())
        .bind(error)
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Flags a running build for its worker to stop.
pub async fn request_cancel(conn: &mut Conn, id: &str) -> DbResult<()> {
    sqlx::query("UPDATE builds SET cancel_requested = TRUE WHERE id = $1").bind(id).execute(conn).await?;
    Ok(())
}

/// Whether a cancel was asked for.
pub async fn cancel_requested(conn: &mut Conn, id: &str) -> DbResult<bool> {
    let flag: Option<bool> =
        sqlx::query_scalar("SELECT cancel_requested FROM builds WHERE id = $1").bind(id).fetch_optional(conn).await?;
    Ok(flag.unwrap_or(false))
}

/// Builds per status.
pub async fn counts_by_status(conn: &mut Conn) -> DbResult<Vec<(BuildStatus, i64)>> {
    let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM builds GROUP BY status").fetch_all(conn).await?;
    rows.iter()
        .map(|r| {
            let status: &str = r.get("status");
            let parsed = BuildStatus::parse(status).ok_or_else(|| DbError::Decode {
                what: "builds.status".into(),
                detail: format!("unknown `{status}`"),
            })?;
            Ok((parsed, r.get("n")))
        })
        .collect()
}
