//! The SQLite database: one file under the data directory, WAL journal, a
//! busy timeout and foreign keys on every pooled connection, migrations run
//! at start.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

/// The statement that opens a read-then-write transaction: SQLite upgrades a
/// deferred transaction's lock only at its first write, and fails at once
/// (whatever the busy timeout) when another writer got there first.
pub const BEGIN_IMMEDIATE: &str = "BEGIN IMMEDIATE";

/// Opens (creating if needed) the database at `path` and runs the migrations.
pub async fn connect(path: &Path, busy_timeout: Duration) -> Result<SqlitePool, sqlx::Error> {
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
    sqlx::migrate!("./migrations").run(&pool).await?;
    Ok(pool)
}

/// Milliseconds since 1970, the unit of every timestamp column.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Whether an error means "busy, try again later" rather than a bug.
pub fn is_busy(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            let message = db.message();
            message.contains("database is locked") || message.contains("database is busy")
        }
        sqlx::Error::PoolTimedOut => true,
        _ => false,
    }
}

/// Whether an error means the disk is full.
pub fn is_disk_full(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.message().contains("database or disk is full"),
        sqlx::Error::Io(io) => io.raw_os_error() == Some(libc_enospc()),
        _ => false,
    }
}

/// ENOSPC on Linux.
pub const fn libc_enospc() -> i32 {
    28
}
