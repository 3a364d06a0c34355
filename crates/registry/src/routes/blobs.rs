//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`, with single byte ranges.

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;

use super::{parse_digest, ApiResult, App, CONTENT_DIGEST};
use crate::error::{ApiError, ErrorCode};
use crate::storage::StorageError;
use crate::zerocopy::FileSender;

/// Outcome of a `Range` header against a blob of `size` bytes.
#[derive(Debug, PartialEq)]
enum RangeReq {
    Whole,
    Part(u64, u64),
    Unsatisfiable,
}

fn parse_range(value: Option<&str>, size: u64) -> RangeReq {
    let Some(value) = value else {
        return RangeReq::Whole;
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        // Other units are ignored, as RFC 9110 allows.
        return RangeReq::Whole;
    };
    if spec.contains(',') {
        // Multiple ranges would need multipart responses; serving the whole blob is allowed.
        return RangeReq::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeReq::Unsatisfiable;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (false, _) => {
            let Ok(start) = a.parse::<u64>() else {
                return RangeReq::Unsatisfiable;
            };
            let end = if b.is_empty() {
                size.saturating_sub(1)
            } else {
                match b.parse::<u64>() {
                    Ok(e) => e.min(size.saturating_sub(1)),
                    Err(_) => return RangeReq::Unsatisfiable,
                }
            };
            if !b.is_empty() && b.parse::<u64>().is_ok_and(|e| e < start) {
                return RangeReq::Unsatisfiable;
            }
            (start, end)
        }
        (true, false) => {
            let Ok(suffix) = b.parse::<u64>() else {
                return RangeReq::Unsatisfiable;
            };
            if suffix == 0 {
                return RangeReq::Unsatisfiable;
            }
            (size.saturating_sub(suffix), size.saturating_sub(1))
        }
        (true, true) => return RangeReq::Unsatisfiable,
    };
    if size == 0 || parsed.0 >= size {
        return RangeReq::Unsatisfiable;
    }
    RangeReq::Part(parsed.0, parsed.1)
}

pub async fn get(
    app: &App,
    name: &str,
    digest: &str,
    headers: &HeaderMap,
    head: bool,
    files: Option<&FileSender>,
) -> ApiResult {
    let digest = parse_digest(digest)?;
    let unknown = || {
        ApiError::new(ErrorCode::BlobUnknown)
            .detail(serde_json::json!({ "digest": digest.to_string() }))
    };
    if !app.storage.blob_linked(name, &digest).await? {
        return Err(unknown());
    }
    let Some(size) = app.storage.blob_size(&digest).await? else {
        return Err(unknown());
    };
    let range = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        size,
    );
    let (status, start, len) = match range {
        RangeReq::Whole => (StatusCode::OK, 0, size),
        RangeReq::Part(s, e) => (StatusCode::PARTIAL_CONTENT, s, e - s + 1),
        RangeReq::Unsatisfiable => {
            return Err(ApiError::new(ErrorCode::BlobUnknown)
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .message("requested range not satisfiable")
                .header(header::CONTENT_RANGE, &format!("bytes */{size}")))
        }
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, len)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, format!("\"{digest}\""))
        .header(header::CACHE_CONTROL, "max-age=31536000")
        .header(CONTENT_DIGEST, digest.to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{}", start, start + len - 1, size),
        );
    }
    if head {
        return builder.body(Body::empty()).map_err(ApiError::internal);
    }
    // Plain connections send local files with sendfile; TLS and object stores stream.
    let file = match files {
        Some(_) => app.storage.blob_file(&digest).await,
        None => Ok(None),
    };
    let body = match (file, files) {
        (Ok(Some(file)), Some(files)) => files.body(file, start, len),
        (Ok(_), _) => match app.storage.read_blob(&digest, start, len).await {
            Ok(stream) => Body::from_stream(stream),
            Err(StorageError::BlobUnknown(_)) => return Err(unknown()),
            Err(e) => return Err(e.into()),
        },
        (Err(StorageError::BlobUnknown(_)), _) => return Err(unknown()),
        (Err(e), _) => return Err(e.into()),
    };
    app.metrics.add_bytes_sent(len);
    builder.body(body).map_err(ApiError::internal)
}

pub async fn delete(app: &App, name: &str, digest: &str) -> ApiResult {
    let digest = parse_digest(digest)?;
    if !app.storage.unlink_blob(name, &digest).await? {
        return Err(ApiError::new(ErrorCode::BlobUnknown)
            .detail(serde_json::json!({ "digest": digest.to_string() })));
    }
    Response::builder()
        .status(StatusCode::ACCEPTED)
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |v: &str| parse_range(Some(v), 100);
        assert_eq!(parse_range(None, 100), RangeReq::Whole);
        assert_eq!(r("bytes=0-9"), RangeReq::Part(0, 9));
        assert_eq!(r("bytes=90-"), RangeReq::Part(90, 99));
        assert_eq!(r("bytes=90-500"), RangeReq::Part(90, 99));
        assert_eq!(r("bytes=-10"), RangeReq::Part(90, 99));
        assert_eq!(r("bytes=100-"), RangeReq::Unsatisfiable);
        assert_eq!(r("bytes=5-2"), RangeReq::Unsatisfiable);
        assert_eq!(r("bytes=x-2"), RangeReq::Unsatisfiable);
        assert_eq!(r("bytes=-"), RangeReq::Unsatisfiable);
        assert_eq!(r("bytes=-0"), RangeReq::Unsatisfiable);
        assert_eq!(r("items=0-1"), RangeReq::Whole);
        assert_eq!(parse_range(Some("bytes=0-0"), 0), RangeReq::Unsatisfiable);
    }
}
