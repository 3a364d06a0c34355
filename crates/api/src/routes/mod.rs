//! The route table. Every route is served both with and without a `/v1.NN` prefix (the prefix
//! is stripped before routing, see `version`).

use crate::server::AppState;
use axum::Router;

pub mod containers;
pub mod exec;
pub mod images;
pub mod logs;
pub mod networks;
pub mod system;
pub mod volumes;

pub fn all() -> Router<AppState> {
    Router::new()
        .merge(system::routes())
        .merge(containers::routes())
        .merge(exec::routes())
        .merge(images::routes())
        .merge(volumes::routes())
        .merge(networks::routes())
        .fallback(not_found)
}

async fn not_found(uri: axum::http::Uri) -> crate::error::ApiError {
    crate::error::ApiError(berth_engine::Error::NotFound(format!(
        "page not found: {}",
        uri.path()
    )))
}
