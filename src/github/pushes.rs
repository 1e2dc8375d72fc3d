//! Pushes accepted but not yet built: a row per delivery from the moment the
//! webhook accepts it until the build is recorded (the same transaction
//! deletes it) or the fetch fails, so that a daemon stopped mid-fetch takes
//! the push up again when it starts.

use sqlx::{Row, SqlitePool};

use crate::builds::GitOrigin;
use crate::db::now_ms;

/// A push waiting for its commit to be fetched and built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPush {
    /// GitHub's `X-GitHub-Delivery`.
    pub delivery: String,
    /// The repository, ref and commit.
    pub origin: GitOrigin,
    /// Where to fetch the commit from.
    pub clone_url: String,
}

/// Records `push`; false when its delivery is already pending.
pub async fn remember(pool: &SqlitePool, push: &PendingPush) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO github_pushes (delivery_id, repository, git_ref, commit_id, clone_url, created_at) \
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (delivery_id) DO NOTHING",
    )
    .bind(&push.delivery)
    .bind(&push.origin.repository)
    .bind(&push.origin.git_ref)
    .bind(&push.origin.commit)
    .bind(&push.clone_url)
    .bind(now_ms())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Drops a pending push (its fetch failed for good).
pub async fn forget(pool: &SqlitePool, delivery: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM github_pushes WHERE delivery_id = ?").bind(delivery).execute(pool).await?;
    Ok(())
}

/// Every pending push with its age, oldest first.
pub async fn pending(pool: &SqlitePool) -> Result<Vec<(PendingPush, std::time::Duration)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT delivery_id, repository, git_ref, commit_id, clone_url, created_at FROM github_pushes \
         ORDER BY created_at, delivery_id",
    )
    .fetch_all(pool)
    .await?;
    let now = now_ms();
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
            let age = std::time::Duration::from_millis(now.saturating_sub(row.get::<i64, _>("created_at")) as u64);
            (push, age)
        })
        .collect())
}
