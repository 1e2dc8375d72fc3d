//! The SQLite backend: one file under the data directory, WAL journal, a
//! busy timeout and foreign keys on every pooled connection, migrations run
//! at start. The table modules (`builds`, `jobs`, `logs`, `github`,
//! `index`) and the store traits on top of them (`stores`) are written once
//! for both backends, in `src/db/shared/`; this module compiles them for
//! SQLite and says how its transactions and changes work. Read-then-write transactions start with `BEGIN IMMEDIATE`:
//! SQLite upgrades a deferred transaction's lock only at its first write,
//! and fails at once (whatever the busy timeout) when another writer got
//! there first. Its [`Changes`] are in-process: one daemon uses the file.

// The shared modules (`src/db/shared/`) are compiled here for SQLite's connection and row. SQLite
// has no row locks (`FOR UPDATE` is a syntax error): every read-then-write
// transaction starts with `BEGIN IMMEDIATE` and so holds the one write lock
// from its first statement, which serialises what PostgreSQL's row locks do.

/// The connection the shared table modules take.
type Conn = sqlx::SqliteConnection;
/// The row the shared table modules decode.
type DbRow = sqlx::sqlite::SqliteRow;

/// No row lock: the transaction's write lock covers it.
macro_rules! for_update {
    () => {
        ""
    };
}

/// No row lock: one daemon claims from a file, under its write lock.
macro_rules! for_update_skip_locked {
    () => {
        ""
    };
}

#[path = "../shared/builds.rs"]
mod builds;
#[path = "../shared/github.rs"]
mod github;
#[path = "../shared/index.rs"]
mod index;
#[path = "../shared/jobs.rs"]
mod jobs;
#[path = "../shared/logs.rs"]
mod logs;
#[path = "../shared/stores.rs"]
mod stores;

/// The backend the shared store implementations are compiled for.
type Store = Sqlite;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteError, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use super::changes::LocalChanges;
use super::{Backend, Change, Changes, DbError, DbResult};

const BEGIN_IMMEDIATE: &str = "BEGIN IMMEDIATE";

/// SQLite's primary result codes the daemon tells apart.
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_FULL: i64 = 13;

/// Busy and disk-full errors, by SQLite's result code (the extended code's
/// low byte is the primary code): never by their message text.
pub fn classify(error: &SqliteError) -> Option<DbError> {
    use sqlx::error::DatabaseError;
    let code: i64 = error.code()?.parse().ok()?;
    match code & 0xff {
        SQLITE_BUSY | SQLITE_LOCKED => Some(DbError::Busy),
        SQLITE_FULL => Some(DbError::DiskFull),
        _ => None,
    }
}

/// Every store, in one SQLite database.
#[derive(Debug, Clone)]
pub struct Sqlite {
    pool: SqlitePool,
    changes: LocalChanges,
}

impl Sqlite {
    /// Opens (creating if needed) the database at `path` and runs the migrations.
    pub async fn open(path: &Path, busy_timeout: Duration) -> DbResult<Sqlite> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(busy_timeout)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(busy_timeout.max(Duration::from_secs(1)))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await.map_err(|e| DbError::Other(e.into()))?;
        Ok(Sqlite { pool, changes: LocalChanges::default() })
    }

    /// The pool, for tests that look at rows directly.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn conn(&self) -> DbResult<sqlx::pool::PoolConnection<sqlx::Sqlite>> {
        Ok(self.pool.acquire().await?)
    }

    /// A transaction that only writes: SQLite takes the write lock at its
    /// first statement, waiting for it up to the busy timeout.
    async fn begin(&self) -> DbResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin().await?)
    }

    /// A transaction that reads then writes: `BEGIN IMMEDIATE` (see the
    /// module's documentation).
    async fn begin_write(&self) -> DbResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with(BEGIN_IMMEDIATE).await?)
    }

    /// Commits, then tells this daemon's subscribers: the changes are
    /// in-process, and sent only once a reader can see what they announce.
    async fn commit_announcing(&self, tx: sqlx::Transaction<'_, sqlx::Sqlite>, change: Option<Change>) -> DbResult<()> {
        tx.commit().await?;
        if let Some(change) = change {
            self.changes.send(change);
        }
        Ok(())
    }
}

/// A submitter's inserts need no lock of their own: `BEGIN IMMEDIATE`
/// already makes the count and the insert one step.
async fn serialise_submitter(_conn: &mut Conn, _client: &str) -> DbResult<()> {
    Ok(())
}

/// A cancel needs no row lock: its `BEGIN IMMEDIATE` keeps claims and
/// completions out until it commits.
async fn lock_job_of_build(_conn: &mut Conn, _build_id: &str) -> DbResult<()> {
    Ok(())
}

/// Publications need no lock of their own: they run in a `BEGIN IMMEDIATE`
/// transaction, which already keeps every other writer out.
async fn serialise_publications(_conn: &mut Conn) -> DbResult<()> {
    Ok(())
}

#[async_trait]
impl Changes for Sqlite {
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    async fn announce(&self, change: &Change) -> DbResult<()> {
        self.changes.send(change.clone());
        Ok(())
    }
}

#[async_trait]
impl Backend for Sqlite {
    async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::*;

    /// The shared table modules write `$1`, `$2`, … for both dialects: SQLite
    /// must bind them by their number (not by the order they appear), and a
    /// number used twice must take the same value.
    #[tokio::test]
    async fn numbered_parameters_bind_by_number_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let db = Sqlite::open(&dir.path().join("p.db"), Duration::from_secs(1)).await.unwrap();
        let row = sqlx::query("SELECT $2 || $1 || $2 AS joined, $3 IS NULL AS missing")
            .bind("a")
            .bind("b")
            .bind(Option::<&str>::None)
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(row.get::<String, _>("joined"), "bab");
        assert!(row.get::<bool, _>("missing"));
    }

    #[tokio::test]
    async fn a_second_writer_is_told_busy_by_the_code_not_the_text() {
        let dir = tempfile::tempdir().unwrap();
        // No busy timeout: the second writer fails at once.
        let db = Sqlite::open(&dir.path().join("w.db"), Duration::ZERO).await.unwrap();
        let first = db.begin_write().await.unwrap();
        let second = db.begin_write().await.map(|_| ()).unwrap_err();
        assert!(matches!(second, DbError::Busy), "{second:?}");
        drop(first);
        // And an error that is neither stays what it was.
        let other = sqlx::query("SELECT * FROM no_such_table").execute(db.pool()).await.unwrap_err();
        assert!(matches!(DbError::from(other), DbError::Other(_)));
    }
}
