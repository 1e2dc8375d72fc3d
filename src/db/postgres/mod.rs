//! The PostgreSQL backend: a database several daemons share. The table
//! modules (`builds`, `jobs`, `logs`, `github`, `index`) and the store traits
//! on top of them (`stores`) are the SQLite backend's, written once in
//! `src/db/shared/`; this module compiles them for PostgreSQL and provides
//! the locks and notifications that differ.
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

// The shared modules (`src/db/shared/`) are compiled here
// for PostgreSQL's connection and row, with its row locks.
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

#[path = "../shared/builds.rs"]
#[allow(clippy::duplicate_mod)]
mod builds;
#[path = "../shared/github.rs"]
#[allow(clippy::duplicate_mod)]
mod github;
#[path = "../shared/index.rs"]
#[allow(clippy::duplicate_mod)]
mod index;
#[path = "../shared/jobs.rs"]
#[allow(clippy::duplicate_mod)]
mod jobs;
#[path = "../shared/logs.rs"]
#[allow(clippy::duplicate_mod)]
mod logs;
#[path = "../shared/stores.rs"]
#[allow(clippy::duplicate_mod)]
mod stores;

/// The backend the shared store implementations are compiled for.
type Store = Postgres;

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgDatabaseError, PgListener, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::broadcast;
use tracing::warn;

use super::changes::CHANGES_BUFFER;
use super::{Backend, Change, Changes, DatabaseSettings, DbError, DbResult};

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

    /// A transaction, at READ COMMITTED.
    async fn begin(&self) -> DbResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        Ok(self.pool.begin().await?)
    }

    /// A transaction that reads then writes: the same, for what it reads
    /// it locks (the shared statements' `FOR UPDATE`, the advisory locks).
    async fn begin_write(&self) -> DbResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.begin().await
    }

    /// `NOTIFY`s `change` inside the transaction, then commits: PostgreSQL
    /// delivers it to every daemon at the commit, and never for a rollback.
    async fn commit_announcing(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
        change: Option<Change>,
    ) -> DbResult<()> {
        if let Some(change) = change {
            notify(&mut tx, &change).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Makes one submitter's inserts take turns, so that a burst spread over
/// daemons cannot overshoot the queue cap (the count sees every commit
/// before it).
async fn serialise_submitter(conn: &mut Conn, client: &str) -> DbResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("queued-by:{client}"))
        .execute(conn)
        .await?;
    Ok(())
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
