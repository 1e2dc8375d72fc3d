//! What the build service answers when it cannot do what was asked.

use crate::db::DbError;

/// A refusal or failure of the build service. Every variant carries the
/// sentence its caller shows; the HTTP edge maps each to one status.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No such build or project.
    #[error("{0}")]
    NotFound(String),
    /// The uploaded project is not a project wheelwright can build.
    #[error("{0}")]
    InvalidProject(String),
    /// The project belongs to another owner.
    #[error("{0}")]
    ProjectOwned(String),
    /// The submitter has as many builds queued as it may.
    #[error("{0}")]
    TooManyQueued(String),
    /// The build already finished.
    #[error("{0}")]
    AlreadyFinished(String),
    /// The index serves no file of the build (it failed, is still running,
    /// or its files were refused), so there is nothing to yank.
    #[error("{0}")]
    NotPublished(String),
    /// A yank reason that cannot be shown (too long, control characters).
    #[error("{0}")]
    BadReason(String),
    /// A store failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A file of the source store could not be written or read.
    #[error("source store: {0}")]
    Io(#[from] std::io::Error),
    /// The artifact store (or a shared store's copy of the sources) failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Something that should not happen happened.
    #[error("{0}")]
    Internal(String),
}
