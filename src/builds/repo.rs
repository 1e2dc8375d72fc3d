//! SQL for builds, artifacts and logs. Portable statements; read-then-write
//! transactions start with `BEGIN IMMEDIATE`.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use tracing::instrument;
use wheelwright_workers::platform::Target;
use wheelwright_workers::report::BuildReport;

use super::published::{self, Publication};
use super::{ArtifactRecord, BuildRecord, BuildStatus, GitOrigin, Submitter, UploadOverrides};
use crate::db::{now_ms, BEGIN_IMMEDIATE};
use crate::queue;

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

/// Claims `build`'s delivery for it (and ends the delivery's pending push);
/// the build that has it already when another one was first.
async fn claim_delivery(conn: &mut sqlx::SqliteConnection, build: &NewBuild) -> Result<Inserted, sqlx::Error> {
    let Some(delivery) = &build.delivery else { return Ok(Inserted::Recorded) };
    let done = sqlx::query(
        "INSERT INTO github_deliveries (delivery_id, build_id, created_at) VALUES (?, ?, ?) \
         ON CONFLICT (delivery_id) DO NOTHING",
    )
    .bind(delivery)
    .bind(&build.id)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        let first: String = sqlx::query_scalar("SELECT build_id FROM github_deliveries WHERE delivery_id = ?")
            .bind(delivery)
            .fetch_one(&mut *conn)
            .await?;
        return Ok(Inserted::DeliveryTaken(first));
    }
    sqlx::query("DELETE FROM github_pushes WHERE delivery_id = ?").bind(delivery).execute(&mut *conn).await?;
    Ok(Inserted::Recorded)
}

fn record(row: &SqliteRow) -> BuildRecord {
    let targets: String = row.get("targets");
    BuildRecord {
        id: row.get("id"),
        status: BuildStatus::parse(row.get("status")).unwrap_or(BuildStatus::Failed),
        project_name: row.get("project_name"),
        normalized_name: row.get("normalized_name"),
        project_version: row.get("project_version"),
        requires_python: row.get("requires_python"),
        targets: Target::parse_list(&targets).unwrap_or_default(),
        debug: row.get("debug"),
        overrides: serde_json::from_str(row.get::<&str, _>("overrides")).unwrap_or_default(),
        source_hash: row.get("source_hash"),
        cache_key: row.get("cache_key"),
        cached_from: row.get("cached_from"),
        report: row.get::<Option<&str>, _>("report").and_then(|r| serde_json::from_str(r).ok()),
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
    }
}

fn targets_column(targets: &[Target]) -> String {
    targets.iter().map(|t| t.name()).collect::<Vec<_>>().join(",")
}

async fn insert_row(
    conn: &mut sqlx::SqliteConnection,
    build: &NewBuild,
    status: BuildStatus,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO builds (id, status, project_name, normalized_name, project_version, requires_python, targets, \
         debug, overrides, source_hash, cache_key, created_at, source_repository, source_ref, source_commit, owner, \
         submitter) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

/// Records a queued build and its job in one transaction, unless its
/// submitter has `max_queued` builds queued already (counted in the same
/// transaction, so a burst cannot overshoot).
#[instrument(skip_all, err, fields(build.id = %build.id))]
pub async fn insert_queued(
    pool: &SqlitePool,
    build: &NewBuild,
    max_attempts: u32,
    max_queued: u32,
) -> Result<Inserted, sqlx::Error> {
    let now = now_ms();
    let mut tx = pool.begin_with(BEGIN_IMMEDIATE).await?;
    let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM builds WHERE submitter = ? AND status = 'queued'")
        .bind(&build.submitter.client)
        .fetch_one(&mut *tx)
        .await?;
    if queued >= i64::from(max_queued) {
        tx.rollback().await?;
        return Ok(Inserted::TooManyQueued(queued));
    }
    insert_row(&mut tx, build, BuildStatus::Queued, now).await?;
    let inserted = claim_delivery(&mut tx, build).await?;
    if inserted != Inserted::Recorded {
        tx.rollback().await?;
        return Ok(inserted);
    }
    queue::enqueue(&mut tx, &build.id, max_attempts, now).await?;
    tx.commit().await?;
    Ok(inserted)
}

/// The newest succeeded build with this cache key.
pub async fn find_cached(pool: &SqlitePool, cache_key: &str) -> Result<Option<BuildRecord>, sqlx::Error> {
    let sql = "SELECT id FROM builds WHERE cache_key = ? AND status = 'succeeded' ORDER BY id DESC LIMIT 1";
    let id: Option<String> = sqlx::query_scalar(sql).bind(cache_key).fetch_optional(pool).await?;
    match id {
        Some(id) => get(pool, &id).await,
        None => Ok(None),
    }
}

/// Records a build that reuses `from`'s results: succeeded at once, with
/// the same report and artifacts, published like a build of its own
/// (`enforce_ownership` as in [`Publication`]).
#[instrument(skip_all, err, fields(build.id = %build.id))]
pub async fn insert_cached(
    pool: &SqlitePool,
    build: &NewBuild,
    from: &BuildRecord,
    enforce_ownership: bool,
) -> Result<Inserted, sqlx::Error> {
    let now = now_ms();
    let mut tx = pool.begin_with(BEGIN_IMMEDIATE).await?;
    insert_row(&mut tx, build, BuildStatus::Succeeded, now).await?;
    let inserted = claim_delivery(&mut tx, build).await?;
    if inserted != Inserted::Recorded {
        tx.rollback().await?;
        return Ok(inserted);
    }
    sqlx::query(
        "UPDATE builds SET cached_from = ?, report = (SELECT report FROM builds WHERE id = ?), started_at = ?, \
         finished_at = ? WHERE id = ?",
    )
    .bind(&from.id)
    .bind(&from.id)
    .bind(now)
    .bind(now)
    .bind(&build.id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO artifacts (build_id, filename, target, sha256, size) \
         SELECT ?, filename, target, sha256, size FROM artifacts WHERE build_id = ?",
    )
    .bind(&build.id)
    .bind(&from.id)
    .execute(&mut *tx)
    .await?;
    if !build.debug {
        let artifacts = artifacts_in(&mut tx, &build.id).await?;
        let publication = Publication {
            build_id: &build.id,
            normalized_name: &build.normalized_name,
            owner: Some(&build.submitter.owner),
            enforce_ownership,
            artifacts: &artifacts,
        };
        if !published::publish(&mut tx, &publication).await?.is_empty() {
            tx.rollback().await?;
            return Ok(Inserted::NotFromCache);
        }
    }
    tx.commit().await?;
    Ok(inserted)
}

/// One build.
pub async fn get(pool: &SqlitePool, id: &str) -> Result<Option<BuildRecord>, sqlx::Error> {
    let sql = "SELECT id, status, project_name, normalized_name, project_version, requires_python, targets, debug, \
               overrides, source_hash, cache_key, cached_from, report, error, cancel_requested, created_at, \
               started_at, finished_at, source_repository, source_ref, source_commit, owner, submitter FROM builds \
               WHERE id = ?";
    Ok(sqlx::query(sql).bind(id).fetch_optional(pool).await?.as_ref().map(record))
}

/// Builds newest first, after the cursor `before` (an id), optionally for one
/// project (normalised name) and one status.
pub async fn list(
    pool: &SqlitePool,
    limit: i64,
    before: Option<&str>,
    project: Option<&str>,
    status: Option<BuildStatus>,
) -> Result<Vec<BuildRecord>, sqlx::Error> {
    let sql = "SELECT id, status, project_name, normalized_name, project_version, requires_python, targets, debug, \
               overrides, source_hash, cache_key, cached_from, report, error, cancel_requested, created_at, \
               started_at, finished_at, source_repository, source_ref, source_commit, owner, submitter FROM builds \
               WHERE (? IS NULL OR id < ?) AND (? IS NULL OR normalized_name = ?) AND (? IS NULL OR status = ?) \
               ORDER BY id DESC LIMIT ?";
    let status = status.map(BuildStatus::as_str);
    let rows = sqlx::query(sql)
        .bind(before)
        .bind(before)
        .bind(project)
        .bind(project)
        .bind(status)
        .bind(status)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(record).collect())
}

/// A build's artifacts, wheels by target then the sdist.
pub async fn artifacts(pool: &SqlitePool, id: &str) -> Result<Vec<ArtifactRecord>, sqlx::Error> {
    artifacts_in(&mut *pool.acquire().await?, id).await
}

async fn artifacts_in(conn: &mut sqlx::SqliteConnection, id: &str) -> Result<Vec<ArtifactRecord>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT filename, target, sha256, size FROM artifacts WHERE build_id = ? \
         ORDER BY target IS NULL, target, filename",
    )
    .bind(id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| ArtifactRecord {
            filename: r.get("filename"),
            target: r.get("target"),
            sha256: r.get("sha256"),
            size: r.get("size"),
        })
        .collect())
}

/// How a build ended, written with its artifacts in the transaction that
/// completes its job.
pub async fn finish(
    conn: &mut sqlx::SqliteConnection,
    id: &str,
    status: BuildStatus,
    report: Option<&BuildReport>,
    error: Option<&str>,
    artifacts: &[ArtifactRecord],
) -> Result<(), sqlx::Error> {
    for a in artifacts {
        sqlx::query("INSERT INTO artifacts (build_id, filename, target, sha256, size) VALUES (?, ?, ?, ?, ?)")
            .bind(id)
            .bind(&a.filename)
            .bind(&a.target)
            .bind(&a.sha256)
            .bind(a.size)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("UPDATE builds SET status = ?, report = ?, error = ?, finished_at = ? WHERE id = ?")
        .bind(status.as_str())
        .bind(report.map(|r| serde_json::to_string(r).expect("serialisable")))
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
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

/// Cancels a queued build at once, or flags a running one for its worker.
#[instrument(skip_all, err, fields(build.id = %id))]
pub async fn cancel(pool: &SqlitePool, id: &str) -> Result<CancelOutcome, sqlx::Error> {
    let mut tx = pool.begin_with(BEGIN_IMMEDIATE).await?;
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM builds WHERE id = ?").bind(id).fetch_optional(&mut *tx).await?;
    let outcome = match status.as_deref().and_then(BuildStatus::parse) {
        None => CancelOutcome::NotFound,
        Some(BuildStatus::Queued) => {
            let now = now_ms();
            sqlx::query(
                "UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE build_id = ? AND state = 'available'",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE builds SET status = 'cancelled', error = 'cancelled', finished_at = ? WHERE id = ?")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            CancelOutcome::Cancelled
        }
        Some(BuildStatus::Running) => {
            sqlx::query("UPDATE builds SET cancel_requested = TRUE WHERE id = ?").bind(id).execute(&mut *tx).await?;
            CancelOutcome::Requested
        }
        Some(done) => CancelOutcome::AlreadyFinished(done),
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Whether a cancel was asked for.
pub async fn cancel_requested(pool: &SqlitePool, id: &str) -> Result<bool, sqlx::Error> {
    let flag: Option<bool> =
        sqlx::query_scalar("SELECT cancel_requested FROM builds WHERE id = ?").bind(id).fetch_optional(pool).await?;
    Ok(flag.unwrap_or(false))
}

/// Appends log lines from `first_seq` on.
pub async fn append_logs(pool: &SqlitePool, id: &str, first_seq: i64, lines: &[String]) -> Result<(), sqlx::Error> {
    // Multi-row inserts, within the 999 bound parameters old SQLite allows.
    const ROWS_PER_STATEMENT: usize = 300;
    let mut tx = pool.begin().await?;
    for (chunk_index, chunk) in lines.chunks(ROWS_PER_STATEMENT).enumerate() {
        let first = first_seq + (chunk_index * ROWS_PER_STATEMENT) as i64;
        let mut insert = sqlx::QueryBuilder::new("INSERT INTO build_logs (build_id, seq, line) ");
        insert.push_values(chunk.iter().enumerate(), |mut row, (i, line)| {
            row.push_bind(id).push_bind(first + i as i64).push_bind(line);
        });
        insert.build().execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// The next free log sequence number of a build.
pub async fn next_log_seq(pool: &SqlitePool, id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COALESCE(MAX(seq) + 1, 0) FROM build_logs WHERE build_id = ?")
        .bind(id)
        .fetch_one(pool)
        .await
}

/// Log lines after `after` (exclusive; -1 for all).
pub async fn logs(pool: &SqlitePool, id: &str, after: i64) -> Result<Vec<(i64, String)>, sqlx::Error> {
    let rows = sqlx::query("SELECT seq, line FROM build_logs WHERE build_id = ? AND seq > ? ORDER BY seq")
        .bind(id)
        .bind(after)
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(|r| (r.get("seq"), r.get("line"))).collect())
}

/// Normalised names of projects with at least one published file.
pub async fn index_projects(pool: &SqlitePool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT DISTINCT normalized_name FROM published_files ORDER BY normalized_name")
        .fetch_all(pool)
        .await
}

/// A file of the package index.
#[derive(Debug, Clone)]
pub struct IndexFile {
    /// The build that published it (the first one with these bytes).
    pub build_id: String,
    /// File name.
    pub filename: String,
    /// sha256.
    pub sha256: String,
    /// `requires-python`.
    pub requires_python: String,
}

/// Every published file of a project, each name once with its first bytes.
pub async fn index_files(pool: &SqlitePool, normalized_name: &str) -> Result<Vec<IndexFile>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT p.build_id, p.filename, p.sha256, b.requires_python FROM published_files p \
         JOIN builds b ON b.id = p.build_id WHERE p.normalized_name = ? ORDER BY p.filename",
    )
    .bind(normalized_name)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|row| IndexFile {
            build_id: row.get("build_id"),
            filename: row.get("filename"),
            sha256: row.get("sha256"),
            requires_python: row.get("requires_python"),
        })
        .collect())
}

/// Builds per status, for metrics.
pub async fn counts_by_status(pool: &SqlitePool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM builds GROUP BY status").fetch_all(pool).await?;
    Ok(rows.iter().map(|r| (r.get("status"), r.get("n"))).collect())
}

/// The build a webhook delivery already made, if any.
pub async fn delivery(pool: &SqlitePool, delivery_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT build_id FROM github_deliveries WHERE delivery_id = ?")
        .bind(delivery_id)
        .fetch_optional(pool)
        .await
}
