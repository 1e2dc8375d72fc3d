//! Every door of the daemon on one router: the API, the web pages and the
//! GitHub webhook, behind the guard (Host allow-list, cross-site checks,
//! security headers) that every answer passes.

use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use axum::Router;

use crate::error::ApiError;
use crate::state::AppState;

/// Every route of the daemon. `state.config.bind` must be the address the
/// listener really has (the `Host` allow-list derives from it).
pub fn router(state: AppState) -> Router {
    let guard = std::sync::Arc::new(crate::web::guard::Guard::new(state.config.bind, &state.config));
    let pages = crate::web::router().layer(DefaultBodyLimit::max(state.config.max_upload as usize + 64 * 1024));
    Router::new()
        .merge(crate::api::routes(&state))
        .merge(pages)
        // Caps its body itself, after the headers say it may be read.
        .route("/webhooks/github", post(crate::github::webhook))
        .fallback(|| async { ApiError::not_found("no such page") })
        // Outermost: Host and cross-site checks before anything else runs,
        // security headers on every answer, refusals and 404s included.
        .layer(axum::middleware::from_fn_with_state(guard, crate::web::guard::guard))
        .with_state(state)
}
