use crate::server::AppState;
use axum::Router;

pub fn routes() -> Router<AppState> {
    Router::new()
}
