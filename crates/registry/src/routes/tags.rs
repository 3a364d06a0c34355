//! `GET /v2/<name>/tags/list` and `GET /v2/_catalog`, both paginated with `n`/`last`.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{paginate, ApiResult, App};
use crate::error::{ApiError, ErrorCode};

fn with_link(body: serde_json::Value, link: Option<String>) -> Response {
    let mut resp = axum::Json(body).into_response();
    if let Some(l) = link.and_then(|l| header::HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LINK, l);
    }
    resp
}

pub async fn list(app: &App, name: &str, query: &[(String, String)]) -> ApiResult {
    let Some(tags) = app.storage.list_tags(name).await? else {
        return Err(ApiError::new(ErrorCode::NameUnknown).detail(json!({ "name": name })));
    };
    let names: Vec<String> = tags.into_iter().map(|(t, _)| t).collect();
    let (page, link) = paginate(names, query, &format!("/v2/{name}/tags/list"))?;
    Ok(with_link(json!({ "name": name, "tags": page }), link))
}

pub async fn catalog(app: &App, query: &[(String, String)]) -> ApiResult {
    let repos = app.storage.list_repositories().await?;
    let (page, link) = paginate(repos, query, "/v2/_catalog")?;
    Ok(with_link(json!({ "repositories": page }), link))
}
