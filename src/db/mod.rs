//! The stores of the daemon's records, behind one small trait per owner of
//! tables: [`BuildRecords`] (`builds`, `artifacts`), [`JobQueue`] (`jobs`),
//! [`LogLines`] (`build_logs`), [`GithubDeliveries`] (`github_deliveries`,
//! `github_pushes`) and [`PackageIndex`] (`published_files`,
//! `project_owners`). A backend implements them: SQLite ([`sqlite`], the
//! embedded default, one daemon) or PostgreSQL ([`postgres`], a queue that
//! several daemons share). Which one is chosen by [`DatabaseUrl`].
//!
//! [`Changes`] carries what other daemons must hear at once (log lines
//! appended, a build finished, a cancel asked for): SQLite's are in-process,
//! PostgreSQL's go through `LISTEN/NOTIFY`, and every daemon feeds its live
//! followers and its running builds from them the same way.
//!
//! Some operations span owners, because they must be one transaction: a
//! build is recorded with its job (and its delivery), a job completes with
//! its build's outcome and the files it publishes. Each is one method of the
//! trait it belongs to; inside the backend every table is still written by
//! its own module.

pub mod changes;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::model::index::IndexFile;
use crate::model::queue::{Claim, Completed, Completion, Retry};
use crate::model::{
    ArtifactRecord, BuildDetails, BuildRecord, BuildStatus, CancelOutcome, Inserted, ListFilter, NewBuild, PendingPush,
};

/// What went wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database is busy (locked by another writer, or no connection
    /// free in time): worth trying again shortly.
    #[error("the database is busy")]
    Busy,
    /// The database's disk is full.
    #[error("the database's disk is full")]
    DiskFull,
    /// A stored value does not decode: a bug or a damaged row, never read
    /// as a default.
    #[error("a stored {what} cannot be read: {detail}")]
    Decode {
        /// Which value (`builds.status of <id>`, ...).
        what: String,
        /// Why.
        detail: String,
    },
    /// Anything else the database said.
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
}

impl From<sqlx::Error> for DbError {
    /// Each backend recognises its own busy and disk-full errors, by code.
    fn from(e: sqlx::Error) -> DbError {
        match &e {
            sqlx::Error::PoolTimedOut => DbError::Busy,
            sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => DbError::DiskFull,
            sqlx::Error::Database(db) => {
                if let Some(sqlite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                    sqlite::classify(sqlite).unwrap_or(DbError::Other(e))
                } else if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                    postgres::classify(pg).unwrap_or(DbError::Other(e))
                } else {
                    DbError::Other(e)
                }
            }
            _ => DbError::Other(e),
        }
    }
}

/// Store result.
pub type DbResult<T> = Result<T, DbError>;

/// Builds and their artifacts.
#[async_trait]
pub trait BuildRecords: Send + Sync {
    /// Records a queued build and its job (and its delivery) in one
    /// transaction, unless its submitter has `max_queued` builds queued
    /// already (counted in the same transaction, so a burst cannot overshoot).
    async fn insert_queued(&self, build: &NewBuild, max_attempts: u32, max_queued: u32) -> DbResult<Inserted>;

    /// Records a build that reuses build `from`'s results: succeeded at
    /// once, with the same report and artifacts, published like a build of
    /// its own (unless debug).
    async fn insert_cached(&self, build: &NewBuild, from: &str, enforce_ownership: bool) -> DbResult<Inserted>;

    /// The newest succeeded build with this cache key.
    async fn find_cached(&self, cache_key: &str) -> DbResult<Option<BuildRecord>>;

    /// One build.
    async fn get(&self, id: &str) -> DbResult<Option<BuildRecord>>;

    /// One build with its artifacts.
    async fn details(&self, id: &str) -> DbResult<Option<BuildDetails>>;

    /// A build's artifacts, wheels by target then the sdist.
    async fn artifacts(&self, id: &str) -> DbResult<Vec<ArtifactRecord>>;

    /// Builds newest first with their artifacts: one query for the builds,
    /// one for all of their artifacts.
    async fn list(&self, filter: &ListFilter) -> DbResult<Vec<BuildDetails>>;

    /// Cancels a queued build (and its job) at once, or flags a running one
    /// for its worker.
    async fn cancel(&self, id: &str) -> DbResult<CancelOutcome>;

    /// Whether a cancel was asked for.
    async fn cancel_requested(&self, id: &str) -> DbResult<bool>;

    /// Builds per status.
    async fn counts_by_status(&self) -> DbResult<Vec<(BuildStatus, i64)>>;
}

/// The job queue: claims with leases, fenced on the attempt.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Claims the oldest due job and marks its build running, in one short
    /// transaction.
    async fn claim(&self, worker: &str, lease: Duration) -> DbResult<Option<Claim>>;

    /// Extends the lease; false when the claim is stale.
    async fn heartbeat(&self, claim: &Claim, lease: Duration) -> DbResult<bool>;

    /// Completes the job and records its build's outcome (artifacts,
    /// report, published files) in one transaction fenced on the claim.
    async fn complete(&self, claim: &Claim, completion: &Completion) -> DbResult<Completed>;

    /// Records `error` for this attempt, then queues the job again after a
    /// backoff, or discards it (failing its build) when attempts are used up.
    async fn fail_attempt(&self, claim: &Claim, error: &str) -> DbResult<Retry>;

    /// Hands a job back without counting the attempt (graceful shutdown).
    async fn release(&self, claim: &Claim) -> DbResult<bool>;

    /// Takes back jobs whose lease ran out (their daemon died): each counts
    /// as a failed attempt. Returns how many there were.
    async fn rescue_expired(&self) -> DbResult<usize>;

    /// Jobs waiting.
    async fn depth(&self) -> DbResult<i64>;
}

/// Build log lines, numbered per build.
#[async_trait]
pub trait LogLines: Send + Sync {
    /// Appends lines numbered from `first_seq`.
    async fn append(&self, build_id: &str, first_seq: i64, lines: &[String]) -> DbResult<()>;

    /// The next free sequence number of a build's log.
    async fn next_seq(&self, build_id: &str) -> DbResult<i64>;

    /// Lines after `after` (exclusive; -1 for all), in order.
    async fn after(&self, build_id: &str, after: i64) -> DbResult<Vec<(i64, String)>>;
}

/// GitHub deliveries: which build a delivery made, and pushes accepted but
/// not built yet.
#[async_trait]
pub trait GithubDeliveries: Send + Sync {
    /// The build a delivery made, if any.
    async fn build_of(&self, delivery: &str) -> DbResult<Option<String>>;

    /// Records a pending push; false when its delivery is already pending.
    async fn remember(&self, push: &PendingPush) -> DbResult<bool>;

    /// Drops a pending push (its fetch failed for good).
    async fn forget(&self, delivery: &str) -> DbResult<()>;

    /// Every pending push with its age, oldest first.
    async fn pending(&self) -> DbResult<Vec<(PendingPush, Duration)>>;
}

/// What the package index publishes.
#[async_trait]
pub trait PackageIndex: Send + Sync {
    /// The owner of a project, once published.
    async fn owner_of(&self, normalized_name: &str) -> DbResult<Option<String>>;

    /// Normalised names of projects with a published file.
    async fn projects(&self) -> DbResult<Vec<String>>;

    /// Every published file of a project.
    async fn files(&self, normalized_name: &str) -> DbResult<Vec<IndexFile>>;

    /// Yanks (PEP 592, `reason` given, possibly empty) or unyanks (`None`)
    /// every file the index serves from build `build_id`; returns how many.
    async fn set_yanked(&self, build_id: &str, reason: Option<&str>) -> DbResult<u64>;

    /// `None` when the index serves no file of build `build_id`; else its
    /// yank reason, `Some(None)` when not yanked.
    async fn yank_state(&self, build_id: &str) -> DbResult<Option<Option<String>>>;
}

pub use changes::{Change, Changes};

/// Closes a backend's connections.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Waits for open connections to close.
    async fn close(&self);
}

/// Every store, as the daemon holds them. Cheap to clone.
#[derive(Clone)]
pub struct Database {
    /// Builds and artifacts.
    pub builds: Arc<dyn BuildRecords>,
    /// The job queue.
    pub jobs: Arc<dyn JobQueue>,
    /// Log lines.
    pub logs: Arc<dyn LogLines>,
    /// GitHub deliveries and pending pushes.
    pub github: Arc<dyn GithubDeliveries>,
    /// The package index.
    pub index: Arc<dyn PackageIndex>,
    /// What other daemons (and this one) must hear at once.
    pub changes: Arc<dyn Changes>,
    backend: Arc<dyn Backend>,
}

impl Database {
    /// Every store served by one backend.
    pub fn new<B>(backend: Arc<B>) -> Database
    where
        B: BuildRecords + JobQueue + LogLines + GithubDeliveries + PackageIndex + Changes + Backend + 'static,
    {
        Database {
            builds: backend.clone(),
            jobs: backend.clone(),
            logs: backend.clone(),
            github: backend.clone(),
            index: backend.clone(),
            changes: backend.clone(),
            backend,
        }
    }

    /// Opens (creating if needed) the SQLite database at `path`, runs the
    /// migrations and serves every store from it.
    pub async fn open_sqlite(path: &std::path::Path, busy_timeout: Duration) -> DbResult<Database> {
        Ok(Database::new(Arc::new(sqlite::Sqlite::open(path, busy_timeout).await?)))
    }

    /// Opens the database `settings` name (SQLite at `default_sqlite` when
    /// the URL names none), runs its migrations and serves every store from it.
    pub async fn open(settings: &DatabaseSettings, default_sqlite: &std::path::Path) -> DbResult<Database> {
        match &settings.url {
            DatabaseUrl::Sqlite(path) => {
                let path = path.as_deref().unwrap_or(default_sqlite);
                Database::open_sqlite(path, settings.busy_timeout).await
            }
            DatabaseUrl::Postgres(url) => Ok(Database::new(Arc::new(postgres::Postgres::open(url, settings).await?))),
        }
    }

    /// Closes the backend's connections.
    pub async fn close(&self) {
        self.backend.close().await;
    }
}

/// Which database holds the records.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// SQLite: this file, or `wheelwright.db` in the data directory when `None`.
    Sqlite(Option<std::path::PathBuf>),
    /// PostgreSQL: a `postgres://` (or `postgresql://`) URL.
    Postgres(String),
}

impl DatabaseUrl {
    /// `postgres://…`, `postgresql://…`, `sqlite:PATH` (or `sqlite://PATH`).
    pub fn parse(url: &str) -> Result<DatabaseUrl, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_string()));
        }
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err("a sqlite: database URL needs a path (sqlite:/var/lib/wheelwright/wheelwright.db)".into());
            }
            return Ok(DatabaseUrl::Sqlite(Some(path.into())));
        }
        Err(format!(
            "unsupported database URL `{}`: use postgres://user@host/db or sqlite:PATH",
            url.split_once("://").map(|(scheme, _)| scheme).unwrap_or(url)
        ))
    }
}

impl std::fmt::Debug for DatabaseUrl {
    /// The password never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for DatabaseUrl {
    /// The password never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(None) => write!(f, "sqlite (in the data directory)"),
            DatabaseUrl::Sqlite(Some(path)) => write!(f, "sqlite:{}", path.display()),
            DatabaseUrl::Postgres(url) => {
                match url.split_once("://").and_then(|(s, rest)| Some((s, rest.split_once('@')?))) {
                    Some((scheme, (credentials, host))) => {
                        let user = credentials.split(':').next().unwrap_or("");
                        let masked = if credentials.contains(':') { ":***" } else { "" };
                        write!(f, "{scheme}://{user}{masked}@{host}")
                    }
                    None => write!(f, "{url}"),
                }
            }
        }
    }
}

/// How the daemon connects to its database.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// Which database.
    pub url: DatabaseUrl,
    /// Most connections in the pool (PostgreSQL).
    pub max_connections: u32,
    /// How long a request waits for a free connection before it is told busy (503).
    pub acquire_timeout: std::time::Duration,
    /// How long a SQLite write waits for the lock.
    pub busy_timeout: std::time::Duration,
}

/// Milliseconds since 1970, the unit of every timestamp column.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_choose_the_backend_and_never_show_a_password() {
        let pg = DatabaseUrl::parse("postgres://ww:s3cret@db.internal:5432/wheelwright").unwrap();
        assert_eq!(pg, DatabaseUrl::Postgres("postgres://ww:s3cret@db.internal:5432/wheelwright".into()));
        assert_eq!(pg.to_string(), "postgres://ww:***@db.internal:5432/wheelwright");
        assert!(!format!("{pg:?}").contains("s3cret"));
        assert_eq!(DatabaseUrl::parse("sqlite:/var/ww.db").unwrap(), DatabaseUrl::Sqlite(Some("/var/ww.db".into())));
        assert_eq!(DatabaseUrl::parse("sqlite:///var/ww.db").unwrap(), DatabaseUrl::Sqlite(Some("/var/ww.db".into())));
        assert!(DatabaseUrl::parse("sqlite:").is_err());
        let refused = DatabaseUrl::parse("mysql://root:pw@h/db").unwrap_err();
        assert!(refused.contains("`mysql`") && !refused.contains("pw"), "{refused}");
    }
}
