//! `/v1.NN/` path prefixes: stripped before routing (every route is also served without one),
//! and versions outside 1.24–1.50 refused with Docker's words.

use axum::body::Body;
use axum::http::{Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::{API_VERSION, MIN_API_VERSION};

fn minor(v: &str) -> Option<u32> {
    v.strip_prefix("1.")?.parse().ok()
}

/// Splits `/v1.43/containers/json` into `("1.43", "/containers/json")`.
fn split(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v")?;
    let end = rest.find('/').unwrap_or(rest.len());
    let ver = &rest[..end];
    if ver.is_empty() || !ver.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    Some((ver, &rest[end..]))
}

pub fn strip(mut req: Request<Body>) -> Result<Request<Body>, Box<Response>> {
    let path = req.uri().path();
    let Some((ver, rest)) = split(path) else {
        return Ok(req);
    };
    let (Some(v), Some(max), Some(min)) = (minor(ver), minor(API_VERSION), minor(MIN_API_VERSION))
    else {
        return Err(refuse(format!("invalid API version {ver:?}")));
    };
    if v > max {
        return Err(refuse(format!(
            "client version {ver} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    if v < min {
        return Err(refuse(format!(
            "client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    let rest = if rest.is_empty() { "/" } else { rest };
    let pq = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = pq.parse().ok();
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
    req.extensions_mut().insert(ApiVersion(v));
    Ok(req)
}

/// The minor API version the client asked for, when its path named one.
#[derive(Clone, Copy, Debug)]
pub struct ApiVersion(pub u32);

fn refuse(msg: String) -> Box<Response> {
    Box::new(refuse_unboxed(msg))
}

fn refuse_unboxed(msg: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "message": msg })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_versions() {
        assert_eq!(
            split("/v1.43/containers/json"),
            Some(("1.43", "/containers/json"))
        );
        assert_eq!(split("/version"), None);
        assert_eq!(split("/volumes"), None);
        assert_eq!(split("/v1.50"), Some(("1.50", "")));
    }
}
