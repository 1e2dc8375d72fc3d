//! The store traits on top of the table modules, for both backends:
//! `sqlite/mod.rs` and `postgres/mod.rs` each compile this file as their own
//! module (`#[path]`), with `Store` their backend and `Conn` its connection.
//! An operation that spans tables opens one transaction here. Where the
//! dialects differ the backend says how, and why, in what it provides:
//! `Store::begin` (a transaction), `Store::begin_write` (one that reads then
//! writes: `BEGIN IMMEDIATE` on SQLite), `Store::commit_announcing` (commits
//! and sends a [`Change`]: after the commit on SQLite, a `NOTIFY` inside it on
//! PostgreSQL), `serialise_submitter` and `lock_job_of_build` (locks that
//! PostgreSQL takes and SQLite's write lock makes needless).

use std::time::Duration;

use async_trait::async_trait;
use tracing::instrument;

use super::{builds, github, index, jobs, lock_job_of_build, logs, serialise_submitter, Conn, Store};
use crate::db::{now_ms, BuildRecords, Change, DbResult, GithubDeliveries, JobQueue, LogLines, PackageIndex};
use crate::model::index::{IndexFile, Refusal};
use crate::model::queue::{backoff, AttemptError, Claim, Completed, Completion, Retry};
use crate::model::{
    ArtifactRecord, BuildDetails, BuildRecord, BuildStatus, CancelOutcome, Inserted, ListFilter, NewBuild, PendingPush,
};

/// Claims a new build's delivery inside its transaction: `Recorded` when it
/// has none or got it, else the build that has it.
async fn claim_delivery(conn: &mut Conn, build: &NewBuild, now: i64) -> DbResult<Inserted> {
    let Some(delivery) = &build.delivery else { return Ok(Inserted::Recorded) };
    Ok(match github::claim_delivery(conn, delivery, &build.id, now).await? {
        Some(first) => Inserted::DeliveryTaken(first),
        None => Inserted::Recorded,
    })
}

/// Records `error` for a running attempt, then queues the job again or
/// discards it and fails its build.
async fn fail_in(conn: &mut Conn, job_id: &str, attempt: i64, error: &str) -> DbResult<Retry> {
    let now = now_ms();
    let Some(job) = jobs::running(conn, job_id, attempt).await? else { return Ok(Retry::Stale) };
    let mut errors = job.errors;
    errors.push(AttemptError { attempt, at: now, error: error.to_string() });
    if attempt < job.max_attempts {
        jobs::reschedule(conn, job_id, now + backoff(attempt).as_millis() as i64, &errors).await?;
        builds::mark_queued(conn, &job.build_id).await?;
        Ok(Retry::Scheduled)
    } else {
        jobs::discard(conn, job_id, &errors, now).await?;
        let summary = format!(
            "gave up after {} attempts: {}",
            errors.len(),
            errors.iter().map(|e| format!("attempt {}: {}", e.attempt, e.error)).collect::<Vec<_>>().join("; ")
        );
        builds::end(conn, &job.build_id, BuildStatus::Failed, &summary, now).await?;
        Ok(Retry::Discarded)
    }
}

#[async_trait]
impl BuildRecords for Store {
    #[instrument(skip_all, err, fields(build.id = %build.id))]
    async fn insert_queued(&self, build: &NewBuild, max_attempts: u32, max_queued: u32) -> DbResult<Inserted> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        serialise_submitter(&mut tx, &build.submitter.client).await?;
        let queued = builds::queued_by(&mut tx, &build.submitter.client).await?;
        if queued >= i64::from(max_queued) {
            tx.rollback().await?;
            return Ok(Inserted::TooManyQueued(queued));
        }
        builds::insert(&mut tx, build, BuildStatus::Queued, now).await?;
        let inserted = claim_delivery(&mut tx, build, now).await?;
        if inserted != Inserted::Recorded {
            tx.rollback().await?;
            return Ok(inserted);
        }
        jobs::enqueue(&mut tx, &build.id, max_attempts, now).await?;
        tx.commit().await?;
        Ok(inserted)
    }

    #[instrument(skip_all, err, fields(build.id = %build.id))]
    async fn insert_cached(&self, build: &NewBuild, from: &str, enforce_ownership: bool) -> DbResult<Inserted> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        builds::insert(&mut tx, build, BuildStatus::Succeeded, now).await?;
        let inserted = claim_delivery(&mut tx, build, now).await?;
        if inserted != Inserted::Recorded {
            tx.rollback().await?;
            return Ok(inserted);
        }
        builds::copy_results(&mut tx, &build.id, from, now).await?;
        if !build.debug {
            let artifacts = builds::artifacts(&mut tx, &build.id).await?;
            let publication = index::Publication {
                build_id: &build.id,
                normalized_name: &build.normalized_name,
                owner: Some(&build.submitter.owner),
                enforce_ownership,
                artifacts: &artifacts,
            };
            if !index::publish(&mut tx, &publication).await?.is_empty() {
                tx.rollback().await?;
                return Ok(Inserted::NotFromCache);
            }
        }
        tx.commit().await?;
        Ok(inserted)
    }

    async fn find_cached(&self, cache_key: &str) -> DbResult<Option<BuildRecord>> {
        let mut conn = self.conn().await?;
        match builds::cached(&mut conn, cache_key).await? {
            Some(id) => builds::get(&mut conn, &id).await,
            None => Ok(None),
        }
    }

    async fn get(&self, id: &str) -> DbResult<Option<BuildRecord>> {
        builds::get(&mut *self.conn().await?, id).await
    }

    async fn details(&self, id: &str) -> DbResult<Option<BuildDetails>> {
        let mut conn = self.conn().await?;
        let Some(build) = builds::get(&mut conn, id).await? else { return Ok(None) };
        let artifacts = builds::artifacts(&mut conn, id).await?;
        Ok(Some(BuildDetails { build, artifacts }))
    }

    async fn artifacts(&self, id: &str) -> DbResult<Vec<ArtifactRecord>> {
        builds::artifacts(&mut *self.conn().await?, id).await
    }

    async fn list(&self, filter: &ListFilter) -> DbResult<Vec<BuildDetails>> {
        builds::list(&mut *self.conn().await?, filter).await
    }

    #[instrument(skip_all, err, fields(build.id = %id))]
    async fn cancel(&self, id: &str) -> DbResult<CancelOutcome> {
        let mut tx = self.begin_write().await?;
        // The job first, then the build: the order a claim takes them.
        lock_job_of_build(&mut tx, id).await?;
        let outcome = match builds::status_for_update(&mut tx, id).await? {
            None => CancelOutcome::NotFound,
            Some(BuildStatus::Queued) => {
                let now = now_ms();
                jobs::cancel_available(&mut tx, id, now).await?;
                builds::end(&mut tx, id, BuildStatus::Cancelled, "cancelled", now).await?;
                CancelOutcome::Cancelled
            }
            Some(BuildStatus::Running) => {
                builds::request_cancel(&mut tx, id).await?;
                CancelOutcome::Requested
            }
            Some(done) => CancelOutcome::AlreadyFinished(done),
        };
        let change = match outcome {
            CancelOutcome::Cancelled => {
                Some(Change::Finished { build_id: id.to_string(), status: BuildStatus::Cancelled })
            }
            CancelOutcome::Requested => Some(Change::CancelRequested { build_id: id.to_string() }),
            _ => None,
        };
        self.commit_announcing(tx, change).await?;
        Ok(outcome)
    }

    async fn cancel_requested(&self, id: &str) -> DbResult<bool> {
        builds::cancel_requested(&mut *self.conn().await?, id).await
    }

    async fn counts_by_status(&self) -> DbResult<Vec<(BuildStatus, i64)>> {
        builds::counts_by_status(&mut *self.conn().await?).await
    }
}

#[async_trait]
impl JobQueue for Store {
    #[instrument(skip_all, err)]
    async fn claim(&self, worker: &str, lease: Duration) -> DbResult<Option<Claim>> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let claim = jobs::claim(&mut tx, worker, now + lease.as_millis() as i64, now).await?;
        if let Some(claim) = &claim {
            builds::mark_running(&mut tx, &claim.build_id, now).await?;
        }
        tx.commit().await?;
        Ok(claim)
    }

    #[instrument(skip_all, err)]
    async fn heartbeat(&self, claim: &Claim, lease: Duration) -> DbResult<bool> {
        jobs::heartbeat(&mut *self.conn().await?, claim, now_ms() + lease.as_millis() as i64).await
    }

    #[instrument(skip_all, err, fields(build.id = %claim.build_id))]
    async fn complete(&self, claim: &Claim, completion: &Completion) -> DbResult<Completed> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let job_state = if completion.status == BuildStatus::Cancelled { "cancelled" } else { "completed" };
        if !jobs::complete(&mut tx, claim, job_state, now).await? {
            tx.rollback().await?;
            return Ok(Completed::Stale);
        }
        if let Some(publish) = &completion.publish {
            let Some(build) = builds::get(&mut tx, &claim.build_id).await? else {
                tx.rollback().await?;
                return Ok(Completed::Stale);
            };
            let publication = index::Publication {
                build_id: &build.id,
                normalized_name: &build.normalized_name,
                owner: publish.owner.as_deref(),
                enforce_ownership: publish.enforce_ownership,
                artifacts: &completion.artifacts,
            };
            let refusals: Vec<Refusal> = index::publish(&mut tx, &publication).await?;
            if !refusals.is_empty() {
                tx.rollback().await?;
                return Ok(Completed::Refused(refusals));
            }
        }
        builds::finish(
            &mut tx,
            &claim.build_id,
            completion.status,
            completion.report.as_ref(),
            completion.error.as_deref(),
            &completion.artifacts,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Completed::Recorded)
    }

    #[instrument(skip_all, err)]
    async fn fail_attempt(&self, claim: &Claim, error: &str) -> DbResult<Retry> {
        let mut tx = self.begin_write().await?;
        let retry = fail_in(&mut tx, &claim.job_id, claim.attempt, error).await?;
        tx.commit().await?;
        Ok(retry)
    }

    #[instrument(skip_all, err)]
    async fn release(&self, claim: &Claim) -> DbResult<bool> {
        let mut tx = self.begin_write().await?;
        let released = jobs::release(&mut tx, claim).await?;
        if released {
            builds::mark_queued(&mut tx, &claim.build_id).await?;
        }
        tx.commit().await?;
        Ok(released)
    }

    #[instrument(skip_all, err)]
    async fn rescue_expired(&self) -> DbResult<usize> {
        let expired = jobs::expired(&mut *self.conn().await?, now_ms()).await?;
        for (job_id, build_id, attempt) in &expired {
            let mut tx = self.begin_write().await?;
            let retry =
                fail_in(&mut tx, job_id, *attempt, "the lease expired: the worker stopped without finishing").await?;
            // When discarded, nobody else will say so: its worker is gone.
            let change = (retry == Retry::Discarded)
                .then(|| Change::Finished { build_id: build_id.clone(), status: BuildStatus::Failed });
            self.commit_announcing(tx, change).await?;
        }
        Ok(expired.len())
    }

    async fn depth(&self) -> DbResult<i64> {
        jobs::depth(&mut *self.conn().await?).await
    }
}

#[async_trait]
impl LogLines for Store {
    async fn append(&self, build_id: &str, first_seq: i64, lines: &[String]) -> DbResult<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        logs::append(&mut tx, build_id, first_seq, lines).await?;
        let last_seq = first_seq + lines.len() as i64 - 1;
        self.commit_announcing(tx, Some(Change::LogAppended { build_id: build_id.to_string(), first_seq, last_seq }))
            .await
    }

    async fn next_seq(&self, build_id: &str) -> DbResult<i64> {
        logs::next_seq(&mut *self.conn().await?, build_id).await
    }

    async fn after(&self, build_id: &str, after: i64) -> DbResult<Vec<(i64, String)>> {
        logs::after(&mut *self.conn().await?, build_id, after).await
    }
}

#[async_trait]
impl GithubDeliveries for Store {
    async fn build_of(&self, delivery: &str) -> DbResult<Option<String>> {
        github::build_of(&mut *self.conn().await?, delivery).await
    }

    async fn remember(&self, push: &PendingPush) -> DbResult<bool> {
        github::remember(&mut *self.conn().await?, push, now_ms()).await
    }

    async fn forget(&self, delivery: &str) -> DbResult<()> {
        github::forget(&mut *self.conn().await?, delivery).await
    }

    async fn pending(&self) -> DbResult<Vec<(PendingPush, Duration)>> {
        github::pending(&mut *self.conn().await?, now_ms()).await
    }
}

#[async_trait]
impl PackageIndex for Store {
    async fn owner_of(&self, normalized_name: &str) -> DbResult<Option<String>> {
        index::owner_of(&mut *self.conn().await?, normalized_name).await
    }

    async fn projects(&self) -> DbResult<Vec<String>> {
        index::projects(&mut *self.conn().await?).await
    }

    async fn files(&self, normalized_name: &str) -> DbResult<Vec<IndexFile>> {
        index::files(&mut *self.conn().await?, normalized_name).await
    }

    async fn set_yanked(&self, build_id: &str, reason: Option<&str>) -> DbResult<u64> {
        index::set_yanked(&mut *self.conn().await?, build_id, reason).await
    }

    async fn yank_state(&self, build_id: &str) -> DbResult<Option<Option<String>>> {
        index::yank_state(&mut *self.conn().await?, build_id).await
    }
}
