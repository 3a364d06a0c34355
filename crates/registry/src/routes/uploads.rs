//! Blob uploads: `POST` (session, monolithic with `?digest=`, or cross-repository mount),
//! `PATCH` chunks, `PUT` to finish, `GET` status and `DELETE` to cancel.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;

use super::{
    body_stream, parse_digest, query_get, query_pairs, upload_range, ApiResult, App,
    CONTENT_DIGEST, UPLOAD_SESSION, UPLOAD_UUID,
};
use crate::auth::{Action, Grant};
use crate::digest::Digest;
use crate::error::{ApiError, ErrorCode};
use crate::storage::StorageError;

fn created(name: &str, digest: &Digest) -> ApiResult {
    Response::builder()
        .status(StatusCode::CREATED)
        .header(header::LOCATION, format!("/v2/{name}/blobs/{digest}"))
        .header(header::CONTENT_LENGTH, 0)
        .header(CONTENT_DIGEST, digest.to_string())
        .body(Body::empty())
        .map_err(ApiError::internal)
}

fn session_response(status: StatusCode, name: &str, id: &str, size: u64) -> ApiResult {
    Response::builder()
        .status(status)
        .header(header::LOCATION, format!("/v2/{name}/blobs/uploads/{id}"))
        .header(header::RANGE, upload_range(size))
        .header(header::CONTENT_LENGTH, 0)
        .header(UPLOAD_UUID, id)
        .header(UPLOAD_SESSION, id)
        .body(Body::empty())
        .map_err(ApiError::internal)
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// `Content-Range: <start>-<end>` (inclusive) of a chunk; `bytes ` prefixes and `/total`
/// suffixes are tolerated. Err carries nothing: the caller answers 416.
fn content_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, ()> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let v = v.to_str().map_err(|_| ())?.trim();
    let v = v.strip_prefix("bytes").map(str::trim_start).unwrap_or(v);
    let v = v.strip_prefix('=').unwrap_or(v);
    let v = v.split('/').next().unwrap_or(v);
    let (a, b) = v.split_once('-').ok_or(())?;
    let a: u64 = a.trim().parse().map_err(|_| ())?;
    let b: u64 = b.trim().parse().map_err(|_| ())?;
    if b < a {
        return Err(());
    }
    Ok(Some((a, b)))
}

async fn range_error(app: &App, name: &str, id: &str) -> ApiError {
    let size = app
        .storage
        .upload_status(name, id)
        .await
        .map(|s| s.size)
        .unwrap_or(0);
    ApiError::new(ErrorCode::BlobUploadInvalid)
        .status(StatusCode::RANGE_NOT_SATISFIABLE)
        .message("invalid or out-of-order Content-Range")
        .header(header::RANGE, &upload_range(size))
        .header(header::LOCATION, &format!("/v2/{name}/blobs/uploads/{id}"))
}

pub async fn start(app: &App, grant: &Grant, name: &str, req: Request) -> ApiResult {
    let query = query_pairs(&req);
    if let Some(mount) = query_get(&query, "mount") {
        if let Ok(digest) = mount.parse::<Digest>() {
            if let Some(from) = query_get(&query, "from") {
                if crate::names::valid_repository(from)
                    && app.auth.allows(grant, from, Action::Pull)
                    && app.storage.blob_linked(from, &digest).await?
                {
                    match app.storage.link_blob(name, &digest).await {
                        Ok(()) => return created(name, &digest),
                        // Fall back to an upload session, as the spec asks.
                        Err(StorageError::BlobUnknown(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        let id = app.storage.create_upload(name).await?;
        return session_response(StatusCode::ACCEPTED, name, &id, 0);
    }
    if let Some(d) = query_get(&query, "digest") {
        let digest = parse_digest(d)?;
        let id = app.storage.create_upload(name).await?;
        let stream = body_stream(app, req.into_body());
        let result = async {
            app.storage
                .append_upload(name, &id, Some(0), stream)
                .await?;
            app.storage.finish_upload(name, &id, &digest).await
        }
        .await;
        return match result {
            Ok(_) => {
                app.metrics.blob_committed();
                created(name, &digest)
            }
            Err(e) => {
                // A one-shot upload leaves nothing behind when it fails.
                let _ = app.storage.cancel_upload(name, &id).await;
                Err(e.into())
            }
        };
    }
    let id = app.storage.create_upload(name).await?;
    session_response(StatusCode::ACCEPTED, name, &id, 0)
}

pub async fn status(app: &App, name: &str, id: &str) -> ApiResult {
    let st = app.storage.upload_status(name, id).await?;
    session_response(StatusCode::NO_CONTENT, name, id, st.size)
}

async fn append(app: &App, name: &str, id: &str, req: Request) -> Result<u64, ApiError> {
    let headers = req.headers().clone();
    let range = match content_range(&headers) {
        Ok(r) => r,
        Err(()) => return Err(range_error(app, name, id).await),
    };
    if let (Some((a, b)), Some(len)) = (range, declared_length(&headers)) {
        if (b - a).checked_add(1) != Some(len) {
            return Err(range_error(app, name, id).await);
        }
    }
    let stream = body_stream(app, req.into_body());
    app.metrics.upload_started();
    let result = app
        .storage
        .append_upload(name, id, range.map(|r| r.0), stream)
        .await;
    app.metrics.upload_finished();
    match result {
        Ok(size) => Ok(size),
        Err(StorageError::OffsetMismatch { .. }) => Err(range_error(app, name, id).await),
        Err(e) => Err(e.into()),
    }
}

pub async fn patch(app: &App, name: &str, id: &str, req: Request) -> ApiResult {
    let size = append(app, name, id, req).await?;
    session_response(StatusCode::ACCEPTED, name, id, size)
}

pub async fn put(app: &App, name: &str, id: &str, req: Request) -> ApiResult {
    let query = query_pairs(&req);
    let Some(d) = query_get(&query, "digest") else {
        return Err(ApiError::new(ErrorCode::DigestInvalid).message("digest parameter missing"));
    };
    let digest = parse_digest(d)?;
    let has_body = declared_length(req.headers()).is_none_or(|l| l > 0);
    if has_body {
        append(app, name, id, req).await?;
    }
    app.storage.finish_upload(name, id, &digest).await?;
    app.metrics.blob_committed();
    created(name, &digest)
}

pub async fn cancel(app: &App, name: &str, id: &str) -> ApiResult {
    app.storage.cancel_upload(name, id).await?;
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::empty())
        .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::CONTENT_RANGE, v.parse().unwrap());
            content_range(&m)
        };
        assert_eq!(h("0-9"), Ok(Some((0, 9))));
        assert_eq!(h("bytes 10-19/100"), Ok(Some((10, 19))));
        assert_eq!(h("9-0"), Err(()));
        assert_eq!(h("x"), Err(()));
        assert_eq!(content_range(&HeaderMap::new()), Ok(None));
    }
}
