//! `GET /v2/<name>/referrers/<digest>`: an OCI index of the manifests whose `subject` is the
//! digest, optionally filtered by `artifactType`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{parse_digest, query_get, ApiResult, App, OCI_FILTERS};
use crate::manifest::OCI_INDEX;

pub async fn list(app: &App, name: &str, digest: &str, query: &[(String, String)]) -> ApiResult {
    let subject = parse_digest(digest)?;
    let filter = query_get(query, "artifactType");
    let mut manifests = app.storage.list_referrers(name, &subject).await?;
    if let Some(f) = filter {
        manifests.retain(|d| d.get("artifactType").and_then(Value::as_str) == Some(f));
    }
    let body = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    });
    let mut resp: Response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, OCI_INDEX)],
        body.to_string(),
    )
        .into_response();
    if filter.is_some() {
        resp.headers_mut().insert(
            OCI_FILTERS,
            header::HeaderValue::from_static("artifactType"),
        );
    }
    Ok(resp)
}
