//! The spec's error codes and the JSON error body every failing route answers with.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::storage::StorageError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            ErrorCode::BlobUnknown
            | ErrorCode::BlobUploadUnknown
            | ErrorCode::ManifestUnknown
            | ErrorCode::NameUnknown => StatusCode::NOT_FOUND,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Denied => StatusCode::FORBIDDEN,
            ErrorCode::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn message(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "blob unknown to registry",
            ErrorCode::BlobUploadInvalid => "blob upload invalid",
            ErrorCode::BlobUploadUnknown => "blob upload unknown to registry",
            ErrorCode::DigestInvalid => "provided digest did not match uploaded content",
            ErrorCode::ManifestBlobUnknown => {
                "manifest references a manifest or blob unknown to registry"
            }
            ErrorCode::ManifestInvalid => "manifest invalid",
            ErrorCode::ManifestUnknown => "manifest unknown to registry",
            ErrorCode::NameInvalid => "invalid repository name",
            ErrorCode::NameUnknown => "repository name not known to registry",
            ErrorCode::SizeInvalid => "provided length did not match content length",
            ErrorCode::Unauthorized => "authentication required",
            ErrorCode::Denied => "requested access to the resource is denied",
            ErrorCode::Unsupported => "the operation is unsupported",
            ErrorCode::TooManyRequests => "too many requests",
        }
    }
}

/// An error as the HTTP API reports it: a status, one or more spec error entries, and any
/// headers the client needs to react (a challenge, an upload's current range).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub errors: Vec<(ErrorCode, String, Value)>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(code: ErrorCode) -> ApiError {
        ApiError {
            status: code.status(),
            errors: vec![(code, code.message().to_string(), Value::Null)],
            headers: Vec::new(),
        }
    }

    pub fn detail(mut self, detail: Value) -> ApiError {
        if let Some(e) = self.errors.last_mut() {
            e.2 = detail;
        }
        self
    }

    pub fn message(mut self, message: impl Into<String>) -> ApiError {
        if let Some(e) = self.errors.last_mut() {
            e.1 = message.into();
        }
        self
    }

    pub fn status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }

    pub fn push(mut self, code: ErrorCode, detail: Value) -> ApiError {
        self.errors.push((code, code.message().to_string(), detail));
        self
    }

    pub fn header(mut self, name: HeaderName, value: &str) -> ApiError {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    pub fn internal(err: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %err, "internal error");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            errors: vec![(
                ErrorCode::Unsupported,
                "internal server error".into(),
                Value::Null,
            )],
            headers: Vec::new(),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> ApiError {
        match e {
            StorageError::BlobUnknown(d) => {
                ApiError::new(ErrorCode::BlobUnknown).detail(json!({ "digest": d.to_string() }))
            }
            StorageError::UploadUnknown => ApiError::new(ErrorCode::BlobUploadUnknown),
            StorageError::ManifestUnknown => ApiError::new(ErrorCode::ManifestUnknown),
            StorageError::NameUnknown => ApiError::new(ErrorCode::NameUnknown),
            StorageError::DigestMismatch { expected, actual } => {
                ApiError::new(ErrorCode::DigestInvalid).detail(json!({
                    "expected": expected.to_string(),
                    "actual": actual.to_string(),
                }))
            }
            StorageError::OffsetMismatch { current } => ApiError::new(ErrorCode::BlobUploadInvalid)
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .message(format!("chunk out of order; upload is at offset {current}"))
                .header(
                    axum::http::header::RANGE,
                    &crate::routes::upload_range(current),
                ),
            StorageError::Body(msg) => ApiError::new(ErrorCode::BlobUploadInvalid)
                .message(format!("request body failed: {msg}")),
            StorageError::SizeMismatch { expected, actual } => {
                ApiError::new(ErrorCode::SizeInvalid).detail(json!({
                    "expected": expected,
                    "actual": actual,
                }))
            }
            e @ (StorageError::Io(_) | StorageError::Corrupt(_)) => ApiError::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let errors: Vec<Value> = self
            .errors
            .iter()
            .map(|(code, message, detail)| {
                json!({ "code": code.as_str(), "message": message, "detail": detail })
            })
            .collect();
        let mut resp = (self.status, axum::Json(json!({ "errors": errors }))).into_response();
        for (k, v) in self.headers {
            resp.headers_mut().append(k, v);
        }
        resp
    }
}
