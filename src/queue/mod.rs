//! The job queue: one `jobs` row per build, claimed with a lease and an
//! attempt number. Heartbeats and results from a stale attempt are refused
//! (fencing); a job whose lease ran out is taken again, with backoff, up to
//! its attempt limit, then discarded with its error history. No transaction
//! stays open while a build runs.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::{Row, SqlitePool};
use tracing::instrument;

use crate::db::{now_ms, BEGIN_IMMEDIATE};

/// A job this worker holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The job.
    pub job_id: String,
    /// Its build.
    pub build_id: String,
    /// The attempt this claim is; every write is fenced on it.
    pub attempt: i64,
}

/// One entry of a job's error history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptError {
    /// Which attempt.
    pub attempt: i64,
    /// When (ms since 1970).
    pub at: i64,
    /// What went wrong.
    pub error: String,
}

/// Backoff before attempt `attempt + 1`: 2 s, 4 s, 8 s ... capped at 5 minutes.
pub fn backoff(attempt: i64) -> Duration {
    Duration::from_secs(2u64.saturating_pow(attempt.clamp(1, 20) as u32).min(300))
}

/// Adds a job for `build_id` inside the caller's transaction (the one that
/// inserts the build row).
pub async fn enqueue(
    tx: &mut sqlx::SqliteConnection,
    build_id: &str,
    max_attempts: u32,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO jobs (id, build_id, state, attempt, max_attempts, scheduled_at, created_at) \
         VALUES (?, ?, 'available', 0, ?, ?, ?)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(build_id)
    .bind(i64::from(max_attempts))
    .bind(now)
    .bind(now)
    .execute(tx)
    .await?;
    Ok(())
}

/// Claims the oldest available job, in one short transaction that also marks
/// its build running.
#[instrument(skip_all, err)]
pub async fn claim(pool: &SqlitePool, worker: &str, lease: Duration) -> Result<Option<Claim>, sqlx::Error> {
    let now = now_ms();
    let mut tx = pool.begin_with(BEGIN_IMMEDIATE).await?;
    let row = sqlx::query(
        "UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_until = ?, worker = ? \
         WHERE id = (SELECT id FROM jobs WHERE state = 'available' AND scheduled_at <= ? \
                     ORDER BY scheduled_at, id LIMIT 1) \
         RETURNING id, build_id, attempt",
    )
    .bind(now + lease.as_millis() as i64)
    .bind(worker)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        tx.commit().await?;
        return Ok(None);
    };
    let claim = Claim { job_id: row.get("id"), build_id: row.get("build_id"), attempt: row.get("attempt") };
    sqlx::query(
        "UPDATE builds SET status = 'running', started_at = COALESCE(started_at, ?) \
         WHERE id = ? AND status IN ('queued', 'running')",
    )
    .bind(now)
    .bind(&claim.build_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(claim))
}

/// Extends the lease; false when the claim is stale (another attempt owns
/// the job, or it was cancelled or discarded).
#[instrument(skip_all, err)]
pub async fn heartbeat(pool: &SqlitePool, claim: &Claim, lease: Duration) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE jobs SET lease_until = ? WHERE id = ? AND attempt = ? AND state = 'running'")
        .bind(now_ms() + lease.as_millis() as i64)
        .bind(&claim.job_id)
        .bind(claim.attempt)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks the job completed inside the caller's transaction; false (and the
/// caller must roll back) when the claim is stale.
pub async fn complete(tx: &mut sqlx::SqliteConnection, claim: &Claim, state: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE jobs SET state = ?, lease_until = NULL, finished_at = ? \
         WHERE id = ? AND attempt = ? AND state = 'running'",
    )
    .bind(state)
    .bind(now_ms())
    .bind(&claim.job_id)
    .bind(claim.attempt)
    .execute(tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What became of a job after an infrastructure failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    /// Queued again for later.
    Scheduled,
    /// Out of attempts: the build failed with its error history.
    Discarded,
    /// The claim was stale; nothing changed.
    Stale,
}

/// Records `error` for this attempt, then queues the job again after a
/// backoff, or discards it (failing its build) when attempts are used up.
#[instrument(skip_all, err)]
pub async fn fail_attempt(pool: &SqlitePool, claim: &Claim, error: &str) -> Result<Retry, sqlx::Error> {
    let mut tx = pool.begin_with(BEGIN_IMMEDIATE).await?;
    let retry = fail_in(&mut tx, &claim.job_id, claim.attempt, error).await?;
    tx.commit().await?;
    Ok(retry)
}

async fn fail_in(
    tx: &mut sqlx::SqliteConnection,
    job_id: &str,
    attempt: i64,
    error: &str,
) -> Result<Retry, sqlx::Error> {
    let now = now_ms();
    let row = sqlx::query(
        "SELECT build_id, max_attempts, errors FROM jobs WHERE id = ? AND attempt = ? AND state = 'running'",
    )
    .bind(job_id)
    .bind(attempt)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(Retry::Stale) };
    let build_id: String = row.get("build_id");
    let max_attempts: i64 = row.get("max_attempts");
    let mut errors: Vec<AttemptError> = serde_json::from_str(row.get::<&str, _>("errors")).unwrap_or_default();
    errors.push(AttemptError { attempt, at: now, error: error.to_string() });
    let history = serde_json::to_string(&errors).expect("serialisable");
    if attempt < max_attempts {
        sqlx::query(
            "UPDATE jobs SET state = 'available', scheduled_at = ?, lease_until = NULL, worker = NULL, errors = ? \
             WHERE id = ?",
        )
        .bind(now + backoff(attempt).as_millis() as i64)
        .bind(&history)
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE builds SET status = 'queued' WHERE id = ? AND status = 'running'")
            .bind(&build_id)
            .execute(&mut *tx)
            .await?;
        Ok(Retry::Scheduled)
    } else {
        sqlx::query(
            "UPDATE jobs SET state = 'discarded', lease_until = NULL, errors = ?, finished_at = ? WHERE id = ?",
        )
        .bind(&history)
        .bind(now)
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
        let summary = format!(
            "gave up after {} attempts: {}",
            errors.len(),
            errors.iter().map(|e| format!("attempt {}: {}", e.attempt, e.error)).collect::<Vec<_>>().join("; ")
        );
        sqlx::query("UPDATE builds SET status = 'failed', error = ?, finished_at = ? WHERE id = ?")
            .bind(summary)
            .bind(now)
            .bind(&build_id)
            .execute(&mut *tx)
            .await?;
        Ok(Retry::Discarded)
    }
}

/// Hands a job back without counting the attempt (graceful shutdown).
#[instrument(skip_all, err)]
pub async fn release(pool: &SqlitePool, claim: &Claim) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin_with(BEGIN_IMMEDIATE).await?;
    let done = sqlx::query(
        "UPDATE jobs SET state = 'available', attempt = attempt - 1, lease_until = NULL, worker = NULL \
         WHERE id = ? AND attempt = ? AND state = 'running'",
    )
    .bind(&claim.job_id)
    .bind(claim.attempt)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 1 {
        sqlx::query("UPDATE builds SET status = 'queued' WHERE id = ? AND status = 'running'")
            .bind(&claim.build_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// Takes back jobs whose lease ran out (their daemon died): each counts as a
/// failed attempt. Returns how many were found.
#[instrument(skip_all, err)]
pub async fn rescue_expired(pool: &SqlitePool) -> Result<usize, sqlx::Error> {
    let expired: Vec<(String, i64)> =
        sqlx::query("SELECT id, attempt FROM jobs WHERE state = 'running' AND lease_until < ?")
            .bind(now_ms())
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|row| (row.get("id"), row.get("attempt")))
            .collect();
    for (job_id, attempt) in &expired {
        let mut tx = pool.begin_with(BEGIN_IMMEDIATE).await?;
        fail_in(&mut tx, job_id, *attempt, "the lease expired: the worker stopped without finishing").await?;
        tx.commit().await?;
    }
    Ok(expired.len())
}

/// Number of jobs waiting.
pub async fn depth(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'available'").fetch_one(pool).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(30), Duration::from_secs(300));
    }
}
