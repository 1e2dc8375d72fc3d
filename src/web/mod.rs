//! The web interface: server-rendered pages (upload, build, builds, project)
//! that work without JavaScript, with a little script for live logs and
//! in-place errors. Templates and assets live in `web/` and are embedded in
//! the binary. Every page has a JSON twin in the API.

pub mod guard;
mod pages;
mod views;

use axum::extract::{DefaultBodyLimit, Path};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

use crate::error::ApiError;
use crate::state::AppState;

/// Largest body of the cancel, rebuild and yank forms.
const SMALL_FORM: usize = 16 << 10;

pub use crate::auth::INVALID_TOKEN;

/// The pages and their assets.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::upload))
        .route("/builds", get(pages::builds).post(pages::submit))
        .route("/builds/{id}", get(pages::build))
        // A token and nothing else: no need to read more before checking it.
        .route("/builds/{id}/cancel", post(pages::cancel).layer(DefaultBodyLimit::max(SMALL_FORM)))
        .route("/builds/{id}/rebuild", post(pages::rebuild).layer(DefaultBodyLimit::max(SMALL_FORM)))
        .route("/builds/{id}/yank", post(pages::yank).layer(DefaultBodyLimit::max(SMALL_FORM)))
        .route("/builds/{id}/unyank", post(pages::unyank).layer(DefaultBodyLimit::max(SMALL_FORM)))
        .route("/projects/{name}", get(pages::project))
        .route("/static/{file}", get(asset))
}

/// Embedded CSS and JavaScript.
async fn asset(Path(file): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let (body, content_type) = match file.as_str() {
        "style.css" => (include_str!("../../web/static/style.css"), "text/css; charset=utf-8"),
        "app.js" => (include_str!("../../web/static/app.js"), "text/javascript; charset=utf-8"),
        _ => return Err(ApiError::not_found(format!("no asset `{file}`"))),
    };
    Ok(([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=300")], body))
}
