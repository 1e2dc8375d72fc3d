//! Moving an install: `wheelwright migrate` copies an SQLite install's
//! records into PostgreSQL ([`tables`]) and its local store's objects and
//! source trees into another store, S3 ([`objects`]), checking everything
//! it copies. Both databases are brought to the current schema first. A run
//! never overwrites anything: a row or object already there and equal is
//! counted, a row that differs stops the run with both values, so it is
//! safe to repeat.

pub mod objects;
pub mod tables;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::db::{postgres::Postgres, sqlite::Sqlite, Backend, DatabaseSettings, DatabaseUrl};
use crate::store::{ArtifactStore, StoreError};

pub use objects::ObjectCopy;
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
    /// Either store failed, or an object does not match its name.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What to move.
pub struct Plan {
    /// The install's SQLite database.
    pub from: PathBuf,
    /// The install's data directory (its `artifacts/` and `sources/`).
    pub data_dir: PathBuf,
    /// The PostgreSQL database to fill, if the records move.
    pub to: Option<String>,
    /// The store to fill, if the objects move.
    pub to_store: Option<Arc<dyn ArtifactStore>>,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Moved {
    /// Per table, when the records moved.
    pub tables: Vec<TableCopy>,
    /// The objects, when they moved.
    pub objects: Option<ObjectCopy>,
}

/// Moves what `plan` says: the objects first, so that no record copied
/// names an object the destination lacks.
pub async fn run(plan: Plan) -> Result<Moved, MigrateError> {
    if !plan.from.is_file() {
        return Err(MigrateError::NoSource(plan.from.display().to_string()));
    }
    let source = Sqlite::open(&plan.from, Duration::from_secs(5)).await?;
    let result = async {
        let mut moved = Moved::default();
        if let Some(store) = plan.to_store {
            moved.objects = Some(objects::copy_objects(source.pool(), &plan.data_dir, store).await?);
        }
        if let Some(to) = &plan.to {
            moved.tables = copy_records(&source, to).await?;
        }
        Ok(moved)
    }
    .await;
    source.close().await;
    result
}

async fn copy_records(source: &Sqlite, to: &str) -> Result<Vec<TableCopy>, MigrateError> {
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
    dest.close().await;
    result
}
