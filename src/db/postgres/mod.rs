//! The PostgreSQL backend: a database several daemons share. Each table has
//! one module that writes it (`builds`, `jobs`, `logs`, `github`, `index`),
//! as in the SQLite backend; this module implements the store traits on top
//! of them, opening a transaction where an operation spans tables.
//!
//! Transactions run at READ COMMITTED and are short: claiming takes the
//! oldest due job with `FOR UPDATE SKIP LOCKED` and commits at once, and no
//! transaction is held while a build runs (leases and the attempt fence do
//! that job, as on SQLite). Where SQLite's single writer serialised
//! read-then-write steps, row locks and advisory locks do: the queue cap
//! locks its submitter, publication takes one lock, a cancel locks the job
//! then the build (the order a claim and a completion take them).
//!
//! [`Changes`] are `NOTIFY`s on one channel, sent inside the transaction
//! that makes the change (PostgreSQL delivers them at commit, and never for
//! a rollback); one dedicated connection `LISTEN`s and reconnects when lost.

// The table modules are shared with the SQLite backend (`src/db/tables/`):
// compiled here for PostgreSQL's connection and row, with its row locks.
// Under READ COMMITTED a read-then-write step must lock the rows it read
// (SQLite's single writer serialises whole transactions instead). Each
// file is a module of both backends on purpose (for their own connection
// and row types), hence `duplicate_mod` allowed.

/// The connection the shared table modules take.
type Conn = sqlx::PgConnection;
/// The row the shared table modules decode.
type DbRow = sqlx::postgres::PgRow;

/// Locks the rows a shared statement reads until the transaction ends.
macro_rules! for_update {
    () => {
        " FOR UPDATE"
    };
}

/// Locks the row a claim takes, skipping rows another daemon's claim holds:
/// daemons claiming at once take different jobs instead of queueing.
macro_rules! for_update_skip_locked {
    () => {
        " FOR UPDATE SKIP LOCKED"
    };
}

#[path = "../tables/builds.rs"]
#[allow(clippy::duplicate_mod)]
mod builds;
#[path = "../tables/github.rs"]
#[allow(clippy::duplicate_mod)]
mod github;
#[path = "../tables/index.rs"]
#[allow(clippy::duplicate_mod)]
mod index;
#[path = "../tables/jobs.rs"]
#[allow(clippy::duplicate_mod)]
mod jobs;
#[path = "../tables/logs.rs"]
#[allow(clippy::duplicate_mod)]
mod logs;

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgDatabaseError, PgListener, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::broadcast;
use tracing::{instrument, warn};

use super::changes::CHANGES_BUFFER;
use super::{
    now_ms, Backend, BuildRecords, Change, Changes, DatabaseSettings, DbError, DbResult, GithubDeliveries, JobQueue,
    LogLines, PackageIndex,
};
use crate::model::index::{IndexFile, Refusal};
use crate::model::queue::{backoff, AttemptError, Claim, Completed, Completion, Retry};
use crate::model::{
    ArtifactRecord, BuildDetails, BuildRecord, BuildStatus, CancelOutcome, Inserted, ListFilter, NewBuild, PendingPush,
};

/// The channel every daemon on the database `LISTEN`s to.
pub const CHANNEL: &str = "wheelwright_changes";

/// How long the listener waits before connecting again after it lost its
/// connection (or could not make one).
const RECONNECT_AFTER: Duration = Duration::from_millis(500);

/// Busy and disk-full errors, by SQLSTATE: serialization failure (40001),
/// deadlock (40P01) and lock not available (55P03) are worth a retry;
/// 53100 is disk full. Never by message text.
pub fn classify(error: &PgDatabaseError) -> Option<DbError> {
    match error.code() {
        "40001" | "40P01" | "55P03" => Some(DbError::Busy),
        "53100" => Some(DbError::DiskFull),
        _ => None,
    }
}

/// Every store, in one PostgreSQL database.
#[derive(Debug, Clone)]
pub struct Postgres {
    pool: PgPool,
    changes: broadcast::Sender<Change>,
    listener: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Postgres {
    /// Connects to `url`, runs the migrations and starts listening for changes.
    pub async fn open(url: &str, settings: &DatabaseSettings) -> DbResult<Postgres> {
        let options = PgConnectOptions::from_str(url)?.application_name("wheelwright");
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options.clone())
            .await?;
        // Several daemons starting at once: sqlx takes an advisory lock
        // around the migrations, so exactly one runs them.
        sqlx::migrate!("./migrations/postgres").run(&pool).await.map_err(|e| DbError::Other(e.into()))?;
        // Its own pool of one: the listening connection never takes a slot
        // from requests, and a request never waits behind it.
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(settings.acquire_timeout)
            .connect_lazy_with(options);
        let (changes, _) = broadcast::channel(CHANGES_BUFFER);
        let mut listener = PgListener::connect_with(&listen_pool).await?;
        listener.listen(CHANNEL).await?;
        let task = tokio::spawn(listen(listener, changes.clone()));
        Ok(Postgres { pool, changes, listener: Arc::new(Mutex::new(Some(task))) })
    }

    /// The pool, for tests that look at rows directly.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn conn(&self) -> DbResult<sqlx::pool::PoolConnection<sqlx::Postgres>> {
        Ok(self.pool.acquire().await?)
    }

    async fn begin(&self) -> DbResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

/// The advisory lock key every publication holds until its transaction ends
/// (an arbitrary constant, "ww-publ" in ASCII).
const PUBLISH_LOCK: i64 = 0x0077_772d_7075_626c;

/// Makes publications take turns, before one looks at the file names it
/// wants: under READ COMMITTED two daemons could otherwise both see a name
/// free and both be first.
async fn serialise_publications(conn: &mut Conn) -> DbResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PUBLISH_LOCK).execute(conn).await?;
    Ok(())
}

/// Locks a build's job row until the transaction ends: a cancel takes the
/// job before the build, in the order a claim does, so the two never wait
/// for each other in a circle.
async fn lock_job_of_build(conn: &mut Conn, build_id: &str) -> DbResult<()> {
    sqlx::query("SELECT id FROM jobs WHERE build_id = $1 FOR UPDATE").bind(build_id).fetch_optional(conn).await?;
    Ok(())
}

/// Sends `change` to every listening daemon when the transaction `conn` is
/// in commits (at once outside one).
async fn notify(conn: &mut sqlx::PgConnection, change: &Change) -> DbResult<()> {
    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(change.encode()).execute(conn).await?;
    Ok(())
}

/// Forwards notifications to the daemon's subscribers until the listener's
/// pool closes; a lost connection is made again (notifications sent while it
/// was down are lost: followers read the table every few seconds anyway, and
/// workers look at the cancel flag on every tick).
async fn listen(mut listener: PgListener, changes: broadcast::Sender<Change>) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => match Change::decode(notification.payload()) {
                Some(change) => {
                    let _ = changes.send(change);
                }
                None => warn!(payload = notification.payload(), "ignoring a notification that is not a change"),
            },
            Ok(None) => warn!("the LISTEN connection was lost; connecting again"),
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => {
                warn!("listening for changes failed: {e}; trying again");
                tokio::time::sleep(RECONNECT_AFTER).await;
            }
        }
    }
}

/// Claims a new build's delivery inside its transaction: `Recorded` when it
/// has none or got it, else the build that has it.
async fn claim_delivery(conn: &mut sqlx::PgConnection, build: &NewBuild, now: i64) -> DbResult<Inserted> {
    let Some(delivery) = &build.delivery else { return Ok(Inserted::Recorded) };
    Ok(match github::claim_delivery(conn, delivery, &build.id, now).await? {
        Some(first) => Inserted::DeliveryTaken(first),
        None => Inserted::Recorded,
    })
}

/// Records `error` for a running attempt, then queues the job again or
/// discards it and fails its build.
async fn fail_in(conn: &mut sqlx::PgConnection, job_id: &str, attempt: i64, error: &str) -> DbResult<Retry> {
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
impl BuildRecords for Postgres {
    #[instrument(skip_all, err, fields(build.id = %build.id))]
    async fn insert_queued(&self, build: &NewBuild, max_attempts: u32, max_queued: u32) -> DbResult<Inserted> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        // One submitter's inserts take turns, so that a burst spread over
        // daemons cannot overshoot the cap (the count sees every commit
        // before it).
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("queued-by:{}", build.submitter.client))
            .execute(&mut *tx)
            .await?;
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
        let mut tx = self.begin().await?;
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
        let mut tx = self.begin().await?;
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
        if let Some(change) = change {
            notify(&mut tx, &change).await?;
        }
        tx.commit().await?;
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
impl JobQueue for Postgres {
    #[instrument(skip_all, err)]
    async fn claim(&self, worker: &str, lease: Duration) -> DbResult<Option<Claim>> {
        let now = now_ms();
        let mut tx = self.begin().await?;
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
        let mut tx = self.begin().await?;
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
        let mut tx = self.begin().await?;
        let retry = fail_in(&mut tx, &claim.job_id, claim.attempt, error).await?;
        tx.commit().await?;
        Ok(retry)
    }

    #[instrument(skip_all, err)]
    async fn release(&self, claim: &Claim) -> DbResult<bool> {
        let mut tx = self.begin().await?;
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
            let mut tx = self.begin().await?;
            let retry =
                fail_in(&mut tx, job_id, *attempt, "the lease expired: the worker stopped without finishing").await?;
            if retry == Retry::Discarded {
                // Nobody else will say so: its worker is gone.
                notify(&mut tx, &Change::Finished { build_id: build_id.clone(), status: BuildStatus::Failed }).await?;
            }
            tx.commit().await?;
        }
        Ok(expired.len())
    }

    async fn depth(&self) -> DbResult<i64> {
        jobs::depth(&mut *self.conn().await?).await
    }
}

#[async_trait]
impl LogLines for Postgres {
    async fn append(&self, build_id: &str, first_seq: i64, lines: &[String]) -> DbResult<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        logs::append(&mut tx, build_id, first_seq, lines).await?;
        let last_seq = first_seq + lines.len() as i64 - 1;
        notify(&mut tx, &Change::LogAppended { build_id: build_id.to_string(), first_seq, last_seq }).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn next_seq(&self, build_id: &str) -> DbResult<i64> {
        logs::next_seq(&mut *self.conn().await?, build_id).await
    }

    async fn after(&self, build_id: &str, after: i64) -> DbResult<Vec<(i64, String)>> {
        logs::after(&mut *self.conn().await?, build_id, after).await
    }
}

#[async_trait]
impl GithubDeliveries for Postgres {
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
impl PackageIndex for Postgres {
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

#[async_trait]
impl Changes for Postgres {
    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    async fn announce(&self, change: &Change) -> DbResult<()> {
        notify(&mut *self.conn().await?, change).await
    }
}

#[async_trait]
impl Backend for Postgres {
    async fn close(&self) {
        let listener = self.listener.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(listener) = listener {
            listener.abort();
            let _ = listener.await;
        }
        self.pool.close().await;
    }
}
