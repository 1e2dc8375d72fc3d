//! The `jobs` table: the only module that writes it. One row per build,
//! claimed with a lease and an attempt number; every write of a claim is
//! fenced on its attempt. On PostgreSQL claims skip rows another transaction
//! has locked (`FOR UPDATE SKIP LOCKED`), so daemons claiming at once take
//! different jobs instead of waiting for each other.
//!
//! Written once for both backends: `sqlite/mod.rs` and `postgres/mod.rs` each
//! compile this file as their own module (`#[path]`), with `Conn` and `DbRow`
//! their dialect's connection and row, and parameters written `$1`, `$2`, …
//! (which PostgreSQL requires and sqlx's SQLite driver binds by number).
//! Where the dialects differ, the text comes from the backend:
//! `for_update!()` and `for_update_skip_locked!()`, empty on SQLite.

use sqlx::Row;

use super::Conn;

use crate::db::DbResult;
use crate::model::queue::{AttemptError, Claim};

/// Adds a job for `build_id`.
pub async fn enqueue(conn: &mut Conn, build_id: &str, max_attempts: u32, now: i64) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO jobs (id, build_id, state, attempt, max_attempts, scheduled_at, created_at) \
         VALUES ($1, $2, 'available', 0, $3, $4, $5)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(build_id)
    .bind(i64::from(max_attempts))
    .bind(now)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes the oldest due job: the claim statement.
pub async fn claim(conn: &mut Conn, worker: &str, lease_until: i64, now: i64) -> DbResult<Option<Claim>> {
    let row = sqlx::query(concat!(
        "UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_until = $1, worker = $2 \
         WHERE id = (SELECT id FROM jobs WHERE state = 'available' AND scheduled_at <= $3 \
                     ORDER BY scheduled_at, id LIMIT 1",
        for_update_skip_locked!(),
        ") RETURNING id, build_id, attempt",
    ))
    .bind(lease_until)
    .bind(worker)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| Claim { job_id: row.get("id"), build_id: row.get("build_id"), attempt: row.get("attempt") }))
}

/// Extends a claim's lease; false when the claim is stale.
pub async fn heartbeat(conn: &mut Conn, claim: &Claim, lease_until: i64) -> DbResult<bool> {
    let done = sqlx::query("UPDATE jobs SET lease_until = $1 WHERE id = $2 AND attempt = $3 AND state = 'running'")
        .bind(lease_until)
        .bind(&claim.job_id)
        .bind(claim.attempt)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks a claimed job `state` (completed or cancelled); false when stale.
pub async fn complete(conn: &mut Conn, claim: &Claim, state: &str, now: i64) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE jobs SET state = $1, lease_until = NULL, finished_at = $2 \
         WHERE id = $3 AND attempt = $4 AND state = 'running'",
    )
    .bind(state)
    .bind(now)
    .bind(&claim.job_id)
    .bind(claim.attempt)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A running attempt's job, as a failure sees it.
pub struct Running {
    /// Its build.
    pub build_id: String,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// Errors of earlier attempts.
    pub errors: Vec<AttemptError>,
}

/// The job `job_id` while `attempt` runs it, its row locked until the
/// transaction ends (on SQLite the transaction's write lock covers it);
/// `None` when stale.
pub async fn running(conn: &mut Conn, job_id: &str, attempt: i64) -> DbResult<Option<Running>> {
    let row = sqlx::query(concat!(
        "SELECT build_id, max_attempts, errors FROM jobs WHERE id = $1 AND attempt = $2 AND state = 'running'",
        for_update!()
    ))
    .bind(job_id)
    .bind(attempt)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let build_id: String = row.get("build_id");
    let errors = serde_json::from_str(row.get::<&str, _>("errors")).map_err(|e| crate::db::DbError::Decode {
        what: format!("jobs.errors of job {job_id}"),
        detail: e.to_string(),
    })?;
    Ok(Some(Running { build_id, max_attempts: row.get("max_attempts"), errors }))
}

/// Queues a job again at `at`, with its error history.
pub async fn reschedule(conn: &mut Conn, job_id: &str, at: i64, errors: &[AttemptError]) -> DbResult<()> {
    sqlx::query(
        "UPDATE jobs SET state = 'available', scheduled_at = $1, lease_until = NULL, worker = NULL, errors = $2 \
         WHERE id = $3",
    )
    .bind(at)
    .bind(serde_json::to_string(errors).expect("serialisable"))
    .bind(job_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives a job up, with its error history.
pub async fn discard(conn: &mut Conn, job_id: &str, errors: &[AttemptError], now: i64) -> DbResult<()> {
    sqlx::query("UPDATE jobs SET state = 'discarded', lease_until = NULL, errors = $1, finished_at = $2 WHERE id = $3")
        .bind(serde_json::to_string(errors).expect("serialisable"))
        .bind(now)
        .bind(job_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Hands a claimed job back without counting the attempt; false when stale.
pub async fn release(conn: &mut Conn, claim: &Claim) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE jobs SET state = 'available', attempt = attempt - 1, lease_until = NULL, worker = NULL \
         WHERE id = $1 AND attempt = $2 AND state = 'running'",
    )
    .bind(&claim.job_id)
    .bind(claim.attempt)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Cancels a build's job that no worker has claimed.
pub async fn cancel_available(conn: &mut Conn, build_id: &str, now: i64) -> DbResult<()> {
    sqlx::query("UPDATE jobs SET state = 'cancelled', finished_at = $1 WHERE build_id = $2 AND state = 'available'")
        .bind(now)
        .bind(build_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Running jobs whose lease ran out: id, build and attempt.
pub async fn expired(conn: &mut Conn, now: i64) -> DbResult<Vec<(String, String, i64)>> {
    Ok(sqlx::query("SELECT id, build_id, attempt FROM jobs WHERE state = 'running' AND lease_until < $1")
        .bind(now)
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(|row| (row.get("id"), row.get("build_id"), row.get("attempt")))
        .collect())
}

/// Jobs waiting.
pub async fn depth(conn: &mut Conn) -> DbResult<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'available'").fetch_one(conn).await?)
}
