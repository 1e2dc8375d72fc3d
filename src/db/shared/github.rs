//! The `github_deliveries` and `github_pushes` tables: the only module that
//! writes them. A push is pending from the moment the webhook accepts it
//! until its build is recorded (the same transaction deletes it, see
//! [`claim_delivery`]) or its fetch fails, so that a daemon stopped
//! mid-fetch takes the push up again when it starts.
//!
//! Written once for both backends: `sqlite/mod.rs` and `postgres/mod.rs` each
//! compile this file as their own module (`#[path]`), with `Conn` and `DbRow`
//! their dialect's connection and row, and parameters written `$1`, `$2`, …
//! (which PostgreSQL requires and sqlx's SQLite driver binds by number). The dialects
//! agree on every statement here.

use std::time::Duration;

use sqlx::Row;

use super::Conn;

use crate::db::DbResult;
use crate::model::{GitOrigin, PendingPush};

/// Claims `delivery` for build `build_id` and ends its pending push; the
/// build that has it already when another one was first.
pub async fn claim_delivery(conn: &mut Conn, delivery: &str, build_id: &str, now: i64) -> DbResult<Option<String>> {
    let done = sqlx::query(
        "INSERT INTO github_deliveries (delivery_id, build_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (delivery_id) DO NOTHING",
    )
    .bind(delivery)
    .bind(build_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return build_of(conn, delivery).await;
    }
    sqlx::query("DELETE FROM github_pushes WHERE delivery_id = $1").bind(delivery).execute(conn).await?;
    Ok(None)
}

/// The build a delivery made, if any.
pub async fn build_of(conn: &mut Conn, delivery: &str) -> DbResult<Option<String>> {
    Ok(sqlx::query_scalar("SELECT build_id FROM github_deliveries WHERE delivery_id = $1")
        .bind(delivery)
        .fetch_optional(conn)
        .await?)
}

/// Records `push`; false when its delivery is already pending.
pub async fn remember(conn: &mut Conn, push: &PendingPush, now: i64) -> DbResult<bool> {
    let done = sqlx::query(
        "INSERT INTO github_pushes (delivery_id, repository, git_ref, commit_id, clone_url, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (delivery_id) DO NOTHING",
    )
    .bind(&push.delivery)
    .bind(&push.origin.repository)
    .bind(&push.origin.git_ref)
    .bind(&push.origin.commit)
    .bind(&push.clone_url)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Drops a pending push.
pub async fn forget(conn: &mut Conn, delivery: &str) -> DbResult<()> {
    sqlx::query("DELETE FROM github_pushes WHERE delivery_id = $1").bind(delivery).execute(conn).await?;
    Ok(())
}

/// Every pending push with its age, oldest first.
pub async fn pending(conn: &mut Conn, now: i64) -> DbResult<Vec<(PendingPush, Duration)>> {
    let rows = sqlx::query(
        "SELECT delivery_id, repository, git_ref, commit_id, clone_url, created_at FROM github_pushes \
         ORDER BY created_at, delivery_id",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let push = PendingPush {
                delivery: row.get("delivery_id"),
                origin: GitOrigin {
                    repository: row.get("repository"),
                    git_ref: row.get("git_ref"),
                    commit: row.get("commit_id"),
                },
                clone_url: row.get("clone_url"),
            };
            let age = Duration::from_millis(now.saturating_sub(row.get::<i64, _>("created_at")) as u64);
            (push, age)
        })
        .collect())
}
