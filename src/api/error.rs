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
        (self.status, body).into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if crate::db::is_busy(&e) {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "the database is busy; try again shortly")
        } else if crate::db::is_disk_full(&e) {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "disk_full", "the server's disk is full")
        } else {
            ApiError::internal(e)
        }
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        if e.raw_os_error() == Some(crate::db::libc_enospc()) || e.kind() == std::io::ErrorKind::StorageFull {
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

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;
