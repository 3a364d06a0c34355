//! Engine errors as the Engine API reports them: Docker's status code and `{"message": ...}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_engine::Error;

pub struct ApiError(pub Error);

pub type ApiResult<T> = Result<T, ApiError>;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> ApiError {
        ApiError(Error::InvalidParameter(msg.into()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status == StatusCode::NOT_MODIFIED {
            return status.into_response();
        }
        if status.is_server_error() {
            tracing::warn!(error = %self.0, "request failed");
        }
        (
            status,
            Json(serde_json::json!({ "message": self.0.to_string() })),
        )
            .into_response()
    }
}

/// Parses a JSON body into `T`, with the field path in the error (Docker answers 400).
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return serde_json::from_slice(b"{}").map_err(|e| ApiError::bad_request(e.to_string()));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ApiError::bad_request(format!("invalid JSON: {inner}"))
        } else {
            ApiError::bad_request(format!("invalid JSON at {path}: {inner}"))
        }
    })
}

/// The `h` and `w` query parameters of the resize routes.
pub fn tty_size(q: &std::collections::HashMap<String, String>) -> ApiResult<(u16, u16)> {
    let dim = |k: &str| -> ApiResult<u16> {
        q.get(k)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ApiError::bad_request(format!("invalid or missing {k}")))
    };
    Ok((dim("h")?, dim("w")?))
}

/// Docker's boolean query parameters: `1`, `true`, `True` are true; absent, `0`, `false` false.
pub fn qbool(v: Option<&String>) -> bool {
    matches!(
        v.map(|s| s.to_ascii_lowercase()).as_deref(),
        Some("1" | "true" | "yes")
    )
}
