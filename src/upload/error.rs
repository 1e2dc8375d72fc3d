//! What can be wrong with an upload. Each variant names one refusal and its
//! `Display` is the sentence the client reads; the HTTP edge picks the status
//! and the `code` (`impl From<UploadError> for ApiError`), so this module
//! knows nothing of responses.

use axum::extract::multipart::MultipartError;
use axum::http::StatusCode;
use wheelwright_workers::platform::UnknownTarget;

use super::{shown, MAX_FILES};

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The request body is larger than the server accepts.
    #[error("the upload is larger than this server accepts")]
    BodyTooLarge,
    /// The archive decompresses to more than `max` bytes.
    #[error("the archive unpacks to more than {max} bytes")]
    ArchiveTooLarge {
        /// The cap it went past.
        max: u64,
    },
    /// The archive is not one we read, is damaged, or holds an entry we
    /// refuse (a link, a path outside the project, too many entries...).
    #[error("{0}")]
    BadArchive(String),
    /// A file part's name is not a safe path in the project.
    #[error("{0}")]
    BadPath(String),
    /// Two file parts name the same path (the name as the client sent it).
    #[error("`{}` was sent twice", shown(.0))]
    DuplicatePath(String),
    /// More file parts than a project may have.
    #[error("more than {MAX_FILES} files")]
    TooManyFiles,
    /// A part whose name is not one of the form's fields.
    #[error(
        "unknown form field `{}` (expected files, archive, targets, name, version, debug, rebuild)",
        shown(.0)
    )]
    UnknownField(String),
    /// A text field longer than its cap.
    #[error("`{}` is longer than {max} bytes", shown(.field))]
    FieldTooLong {
        /// The field's name.
        field: String,
        /// Its cap in bytes.
        max: usize,
    },
    /// A text field that is not UTF-8.
    #[error("`{}` is not UTF-8 text", shown(.field))]
    FieldNotText {
        /// The field's name.
        field: String,
    },
    /// A yes/no field with another value.
    #[error("`{field}` must be true or false, not `{value}`")]
    NotABool {
        /// The field's name.
        field: &'static str,
        /// What was sent, trimmed.
        value: String,
    },
    /// Several `archive` parts.
    #[error("send one `archive`, not several")]
    SeveralArchives,
    /// Picked files and a picked folder in one form.
    #[error("pick files or a folder, not both")]
    FilesAndFolder,
    /// File parts and an archive in one upload.
    #[error("send either `files` or one `archive`, not both")]
    FilesAndArchive,
    /// Neither file parts nor an archive.
    #[error("no project: send `files` parts or one `archive` part")]
    NoFiles,
    /// A requested target that is not one of ours.
    #[error(transparent)]
    UnknownTarget(#[from] UnknownTarget),
    /// The server needs a token and the form's first part is not one (or
    /// the body ended, or broke, before it).
    #[error("this server needs a token: the form's first field must be `token`")]
    TokenNotFirst,
    /// The form's token is not one of the configured tokens.
    #[error("{}", crate::auth::INVALID_TOKEN)]
    TokenInvalid,
    /// The multipart body could not be parsed (the parser's explanation).
    #[error("the form data could not be read: {0}")]
    Unreadable(String),
    /// The task unpacking the archive panicked or was cancelled: the
    /// server's fault, not the client's.
    #[error("the archive could not be unpacked: {0}")]
    Unpacking(#[from] tokio::task::JoinError),
}

impl From<MultipartError> for UploadError {
    /// A body past the request's limit is too large; anything else the
    /// parser refused is unreadable.
    fn from(e: MultipartError) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            UploadError::BodyTooLarge
        } else {
            UploadError::Unreadable(e.body_text())
        }
    }
}
