//! Moving an install: `wheelwright migrate` copies an SQLite install's
//! records into PostgreSQL ([`tables`]), then checks that every row arrived
//! equal. Both databases are brought to the current schema first. A run
//! never overwrites a row: one already there and equal is counted, one that
//! differs stops the run with both values, so it is safe to repeat.

pub mod tables;

use std::path::Path;
use std::time::Duration;

use crate::db::{postgres::Postgres, sqlite::Sqlite, Backend, DatabaseSettings, DatabaseUrl};

pub use tables::TableCopy;

/// Why a migration stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The source database is not there.
    #[error("no SQLite database at {0}")]
    NoSource(String),
    /// The two databases' schemas differ (a version mismatch).
    #[error("the schemas differ: {0}")]
    Schema(String),
    /// The destination holds a different row under the same key.
    #[error("`{table}` row ({key}) differs in the destination ({differs}): nothing was overwritten")]
    Conflict {
        /// The table.
        table: String,
        /// The row's key.
        key: String,
        /// The columns that differ.
        differs: String,
    },
    /// Rows were still arriving when the copy was read back: a daemon
    /// still writes the source.
    #[error("`{0}` changed during the copy: stop the daemons using the source and run again")]
    Unsettled(&'static str),
    /// Either database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Opening or migrating a database failed.
    #[error(transparent)]
    Open(#[from] crate::db::DbError),
}

/// Copies the SQLite database at `from` into the PostgreSQL database at
/// `to`; returns what happened per table.
pub async fn copy_records(from: &Path, to: &str) -> Result<Vec<TableCopy>, MigrateError> {
    if !from.is_file() {
        return Err(MigrateError::NoSource(from.display().to_string()));
    }
    let source = Sqlite::open(from, Duration::from_secs(5)).await?;
    let settings = DatabaseSettings {
        url: DatabaseUrl::Postgres(to.to_string()),
        max_connections: 4,
        acquire_timeout: Duration::from_secs(30),
        busy_timeout: Duration::from_secs(5),
    };
    let dest = Postgres::open(to, &settings).await?;
    let result = async {
        tables::check_schema(source.pool(), dest.pool()).await?;
        let copied = tables::copy_all(source.pool(), dest.pool()).await?;
        // Read everything back: each row of the source must now be there,
        // equal (a second pass that finds something to write means another
        // writer is at work on either side).
        let check = tables::copy_all(source.pool(), dest.pool()).await?;
        if let Some(t) = check.iter().find(|t| t.copied > 0) {
            return Err(MigrateError::Unsettled(t.table));
        }
        Ok(copied)
    }
    .await;
    source.close().await;
    dest.close().await;
    result
}
