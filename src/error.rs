//! One error type for the HTTP edge: every failure becomes
//! `{"error": {"code": "...", "message": "..."}}` with the right status, and
//! internal details go to the log, not to the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tracing::error;

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// A sentence for people.
    pub message: String,
}

impl ApiError {
    /// Any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }

    /// 400.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 401 `unauthorized`: a token is missing or wrong.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 413.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    /// 500, without details for the client.
    pub fn internal(what: impl std::fmt::Display) -> Self {
        error!("internal error: {what}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "something went wrong on the server; it was logged")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": { "code": self.code, "message": self.message } }));
        let mut response = (self.status, body).into_response();
        if self.code == STORE_UNAVAILABLE {
            let retry = axum::http::HeaderValue::from(STORE_RETRY_AFTER_SECS);
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, retry);
        }
        response
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        use crate::db::DbError;
        match e {
            DbError::Busy => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "the database is busy; try again shortly")
            }
            DbError::DiskFull => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "disk_full", "the server's disk is full")
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<crate::builds::ServiceError> for ApiError {
    /// The one place a service refusal gets its status and code.
    fn from(e: crate::builds::ServiceError) -> Self {
        use crate::builds::ServiceError as E;
        match e {
            E::NotFound(message) => ApiError::not_found(message),
            E::InvalidProject(message) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_project", message),
            E::ProjectOwned(message) => ApiError::new(StatusCode::FORBIDDEN, "project_owned", message),
            E::TooManyQueued(message) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_queued", message),
            E::AlreadyFinished(message) => ApiError::new(StatusCode::CONFLICT, "already_finished", message),
            E::NotPublished(message) => ApiError::new(StatusCode::CONFLICT, "not_published", message),
            E::BadReason(message) => ApiError::bad_request("bad_reason", message),
            E::Db(e) => e.into(),
            E::Io(e) => e.into(),
            E::Store(e) => e.into(),
            E::Internal(message) => ApiError::internal(message),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    /// An unreachable store is a 503 the client may retry; anything else
    /// about a stored object (a row naming a missing one) is the server's fault.
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError as E;
        match e {
            E::Unavailable(why) => {
                tracing::warn!("artifact store: {why}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    STORE_UNAVAILABLE,
                    "the artifact store is unavailable; try again shortly",
                )
            }
            E::Io(e) => e.into(),
            other => ApiError::internal(other),
        }
    }
}

/// The `code` of a 503 for an unreachable store, answered with `Retry-After`.
pub const STORE_UNAVAILABLE: &str = "store_unavailable";

/// Seconds a client is asked to wait when the store is unavailable.
const STORE_RETRY_AFTER_SECS: u64 = 10;

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::StorageFull {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "disk_full", "the server's disk is full")
        } else {
            ApiError::internal(e)
        }
    }
}

impl From<axum::extract::multipart::MultipartError> for ApiError {
    fn from(e: axum::extract::multipart::MultipartError) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large("the upload is larger than this server accepts")
        } else {
            ApiError::bad_request("bad_multipart", format!("the form data could not be read: {}", e.body_text()))
        }
    }
}

impl From<axum::extract::multipart::MultipartRejection> for ApiError {
    fn from(e: axum::extract::multipart::MultipartRejection) -> Self {
        ApiError::bad_request("bad_multipart", format!("expected multipart/form-data: {}", e.body_text()))
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::bad_request("bad_query", e.body_text())
    }
}

impl From<crate::upload::UploadError> for ApiError {
    /// The status and `code` of each refusal; the message is the error's own.
    /// No wildcard: a new kind of refusal must choose its answer here.
    fn from(e: crate::upload::UploadError) -> Self {
        use crate::upload::UploadError as E;
        let (status, code) = match &e {
            E::BodyTooLarge | E::ArchiveTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            E::BadArchive(_) => (StatusCode::BAD_REQUEST, "bad_archive"),
            E::BadPath(_) => (StatusCode::BAD_REQUEST, "bad_path"),
            E::DuplicatePath(_) => (StatusCode::BAD_REQUEST, "duplicate_path"),
            E::TooManyFiles => (StatusCode::BAD_REQUEST, "too_many_files"),
            E::UnknownField(_) => (StatusCode::BAD_REQUEST, "unknown_field"),
            E::FieldTooLong { .. } | E::FieldNotText { .. } | E::NotABool { .. } => {
                (StatusCode::BAD_REQUEST, "bad_field")
            }
            E::SeveralArchives | E::FilesAndFolder | E::FilesAndArchive => (StatusCode::BAD_REQUEST, "bad_form"),
            E::NoFiles => (StatusCode::BAD_REQUEST, "no_files"),
            E::UnknownTarget(_) => (StatusCode::BAD_REQUEST, "unknown_target"),
            E::TokenNotFirst | E::TokenInvalid => (StatusCode::UNAUTHORIZED, "unauthorized"),
            E::Unreadable(_) => (StatusCode::BAD_REQUEST, "bad_multipart"),
            E::Unpacking(_) => return ApiError::internal(e),
        };
        ApiError::new(status, code, e.to_string())
    }
}

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::UploadError;
    use wheelwright_workers::platform::UnknownTarget;

    #[test]
    fn each_upload_refusal_answers_its_status_code_and_message() {
        let cases: Vec<(UploadError, StatusCode, &str, &str)> = vec![
            (
                UploadError::BodyTooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the upload is larger than this server accepts",
            ),
            (
                UploadError::ArchiveTooLarge { max: 1000 },
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the archive unpacks to more than 1000 bytes",
            ),
            (
                UploadError::BadArchive("the archive holds no files".into()),
                StatusCode::BAD_REQUEST,
                "bad_archive",
                "the archive holds no files",
            ),
            (
                UploadError::BadPath("`../x` leaves the project (`..`)".into()),
                StatusCode::BAD_REQUEST,
                "bad_path",
                "`../x` leaves the project (`..`)",
            ),
            (
                UploadError::DuplicatePath("src/a\nb.asm".into()),
                StatusCode::BAD_REQUEST,
                "duplicate_path",
                "`src/a\\nb.asm` was sent twice",
            ),
            (UploadError::TooManyFiles, StatusCode::BAD_REQUEST, "too_many_files", "more than 2000 files"),
            (
                UploadError::UnknownField("extra".into()),
                StatusCode::BAD_REQUEST,
                "unknown_field",
                "unknown form field `extra` (expected files, archive, targets, name, version, debug, rebuild)",
            ),
            (
                UploadError::FieldTooLong { field: "name".into(), max: 65536 },
                StatusCode::BAD_REQUEST,
                "bad_field",
                "`name` is longer than 65536 bytes",
            ),
            (
                UploadError::FieldNotText { field: "version".into() },
                StatusCode::BAD_REQUEST,
                "bad_field",
                "`version` is not UTF-8 text",
            ),
            (
                UploadError::NotABool { field: "debug", value: "maybe".into() },
                StatusCode::BAD_REQUEST,
                "bad_field",
                "`debug` must be true or false, not `maybe`",
            ),
            (UploadError::SeveralArchives, StatusCode::BAD_REQUEST, "bad_form", "send one `archive`, not several"),
            (UploadError::FilesAndFolder, StatusCode::BAD_REQUEST, "bad_form", "pick files or a folder, not both"),
            (
                UploadError::FilesAndArchive,
                StatusCode::BAD_REQUEST,
                "bad_form",
                "send either `files` or one `archive`, not both",
            ),
            (
                UploadError::NoFiles,
                StatusCode::BAD_REQUEST,
                "no_files",
                "no project: send `files` parts or one `archive` part",
            ),
            (
                UploadError::UnknownTarget(UnknownTarget("sparc".into())),
                StatusCode::BAD_REQUEST,
                "unknown_target",
                "unknown target `sparc` (expected linux-x86_64, macos-x86_64, windows-x86_64 or all)",
            ),
            (
                UploadError::TokenNotFirst,
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this server needs a token: the form's first field must be `token`",
            ),
            (UploadError::TokenInvalid, StatusCode::UNAUTHORIZED, "unauthorized", "the token is missing or not valid"),
            (
                UploadError::Unreadable("incomplete multipart stream".into()),
                StatusCode::BAD_REQUEST,
                "bad_multipart",
                "the form data could not be read: incomplete multipart stream",
            ),
        ];
        for (upload, status, code, message) in cases {
            let shown = format!("{upload:?}");
            let api = ApiError::from(upload);
            assert_eq!((api.status, api.code, api.message.as_str()), (status, code, message), "{shown}");
        }
    }

    #[tokio::test]
    async fn a_failed_unpacking_task_is_an_internal_error_without_details() {
        let join = tokio::spawn(async { panic!("unpacker blew up") }).await.unwrap_err();
        let api = ApiError::from(UploadError::Unpacking(join));
        assert_eq!(api.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(api.code, "internal");
        assert!(!api.message.contains("blew up"), "{}", api.message);
    }

    #[tokio::test]
    async fn an_archive_entry_outside_the_project_answers_bad_archive_with_the_reason() {
        use crate::upload::{self, tests::form, tests::zip_of};
        let zip = zip_of(&[("src/m.asm", b"x"), ("../../etc/cron.d/x", b"y")]);
        let multipart = form(&[("archive", Some("p.zip"), &zip)]).await;
        let api = ApiError::from(upload::read(multipart, 1 << 20, upload::Mode::Api, &[], None).await.unwrap_err());
        assert_eq!(api.status, StatusCode::BAD_REQUEST);
        assert_eq!(api.code, "bad_archive");
        assert_eq!(api.message, "`../../etc/cron.d/x` leaves the project (`..`)");
    }
}
