//! The HTTP surface: one dispatcher for everything under `/v2/` (repository names contain
//! slashes, so the route is found from the end of the path), plus `/token` and `/metrics`.

mod blobs;
mod manifests;
mod referrers;
mod tags;
mod uploads;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use futures_util::StreamExt;

use crate::auth::{Action, Auth, Grant, Need};
use crate::config::Limits;
use crate::error::{ApiError, ErrorCode};
use crate::metrics::Metrics;
use crate::names::valid_repository;
use crate::storage::{ByteStream, Storage};

/// Shared state of a running registry.
pub struct App {
    pub storage: Arc<dyn Storage>,
    pub auth: Auth,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub tls: bool,
}

pub type ApiResult = Result<Response, ApiError>;

pub const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
pub const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
pub const UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
pub const UPLOAD_SESSION: HeaderName = HeaderName::from_static("blob-upload-session-id");
pub const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
pub const OCI_FILTERS: HeaderName = HeaderName::from_static("oci-filters-applied");

/// The upload progress header value: inclusive end, `0-0` while empty (as Docker's client
/// expects).
pub fn upload_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v2", any(dispatch))
        .route("/v2/", any(dispatch))
        .route("/v2/{*rest}", any(dispatch))
        .route("/token", get(token))
        .route("/metrics", get(metrics))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(middleware::from_fn_with_state(app.clone(), access_log))
        .with_state(app)
}

async fn token(State(app): State<Arc<App>>, headers: HeaderMap, req: Request) -> Response {
    let query = query_pairs(&req);
    app.auth.token_endpoint(&headers, &query).await
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

/// Structured access log and request metrics for every request.
async fn access_log(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut resp = next.run(req).await;
    resp.headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    let status = resp.status().as_u16();
    let elapsed = start.elapsed();
    app.metrics
        .observe_request(method.as_str(), status, elapsed);
    tracing::info!(
        target: "access",
        peer = %peer,
        method = %method,
        path = %path,
        status,
        user_agent = %user_agent,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    resp
}

pub(crate) fn query_pairs(req: &Request) -> Vec<(String, String)> {
    Query::<Vec<(String, String)>>::try_from_uri(req.uri())
        .map(|q| q.0)
        .unwrap_or_default()
}

pub(crate) fn query_get<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[derive(Debug, PartialEq)]
enum Route {
    Base,
    Catalog,
    Tags(String),
    Manifest(String, String),
    Blob(String, String),
    UploadStart(String),
    Upload(String, String),
    Referrers(String, String),
}

fn parse_route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/v2")?;
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Some(Route::Base);
    }
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let name = |k: usize| segs[..n - k].join("/");
    if n >= 3 && segs[n - 2] == "tags" && segs[n - 1] == "list" {
        return Some(Route::Tags(name(2)));
    }
    if n >= 3 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
        let id = segs[n - 1];
        if n >= 4 && id.is_empty() {
            return Some(Route::UploadStart(name(3)));
        }
        if n >= 4 {
            return Some(Route::Upload(name(3), id.to_string()));
        }
    }
    if n >= 3 && segs[n - 2] == "blobs" && segs[n - 1] == "uploads" {
        return Some(Route::UploadStart(name(2)));
    }
    if n >= 3 {
        let last = segs[n - 1].to_string();
        match segs[n - 2] {
            "manifests" => return Some(Route::Manifest(name(2), last)),
            "blobs" => return Some(Route::Blob(name(2), last)),
            "referrers" => return Some(Route::Referrers(name(2), last)),
            _ => {}
        }
    }
    None
}

fn required_action(method: &Method) -> Option<Action> {
    match *method {
        Method::GET | Method::HEAD => Some(Action::Pull),
        Method::POST | Method::PUT | Method::PATCH => Some(Action::Push),
        Method::DELETE => Some(Action::Delete),
        _ => None,
    }
}

pub(crate) fn body_stream(app: &App, body: Body) -> ByteStream {
    let metrics = app.metrics.clone();
    Box::pin(body.into_data_stream().map(move |r| match r {
        Ok(b) => {
            metrics.add_bytes_received(b.len() as u64);
            Ok(b)
        }
        Err(e) => Err(std::io::Error::other(e.to_string())),
    }))
}

fn unsupported() -> ApiError {
    ApiError::new(ErrorCode::Unsupported)
}

async fn dispatch(State(app): State<Arc<App>>, req: Request) -> Response {
    match route(&app, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn route(app: &Arc<App>, req: Request) -> ApiResult {
    let path = req.uri().path().to_string();
    let Some(route) = parse_route(&path) else {
        return Err(ApiError::new(ErrorCode::NameUnknown)
            .message("no such route")
            .status(StatusCode::NOT_FOUND));
    };
    let method = req.method().clone();
    let Some(action) = required_action(&method) else {
        return Err(unsupported());
    };
    let name = match &route {
        Route::Base | Route::Catalog => None,
        Route::Tags(n)
        | Route::Manifest(n, _)
        | Route::Blob(n, _)
        | Route::UploadStart(n)
        | Route::Upload(n, _)
        | Route::Referrers(n, _) => Some(n.clone()),
    };
    if let Some(n) = &name {
        if !valid_repository(n) {
            return Err(
                ApiError::new(ErrorCode::NameInvalid).detail(serde_json::json!({ "name": n }))
            );
        }
    }
    let need = match (&route, &name) {
        (Route::Base, _) => Need::Base,
        (Route::Catalog, _) => Need::Catalog,
        (_, Some(n)) => Need::Repo(n, action),
        (_, None) => Need::Base,
    };
    let grant: Grant = app.auth.authorize(req.headers(), need, app.tls).await?;
    let head = method == Method::HEAD;
    let query = query_pairs(&req);
    match (route, method) {
        (Route::Base, Method::GET | Method::HEAD) => {
            Ok(axum::Json(serde_json::json!({})).into_response())
        }
        (Route::Catalog, Method::GET) => tags::catalog(app, &query).await,
        (Route::Tags(n), Method::GET) => tags::list(app, &n, &query).await,
        (Route::Manifest(n, r), Method::GET | Method::HEAD) => {
            manifests::get(app, &n, &r, head).await
        }
        (Route::Manifest(n, r), Method::PUT) => manifests::put(app, &n, &r, req).await,
        (Route::Manifest(n, r), Method::DELETE) => manifests::delete(app, &n, &r).await,
        (Route::Blob(n, d), Method::GET | Method::HEAD) => {
            blobs::get(app, &n, &d, req.headers(), head, req.extensions().get()).await
        }
        (Route::Blob(n, d), Method::DELETE) => blobs::delete(app, &n, &d).await,
        (Route::UploadStart(n), Method::POST) => uploads::start(app, &grant, &n, req).await,
        (Route::Upload(n, id), Method::GET) => uploads::status(app, &n, &id).await,
        (Route::Upload(n, id), Method::PATCH) => uploads::patch(app, &n, &id, req).await,
        (Route::Upload(n, id), Method::PUT) => uploads::put(app, &n, &id, req).await,
        (Route::Upload(n, id), Method::DELETE) => uploads::cancel(app, &n, &id).await,
        (Route::Referrers(n, d), Method::GET) => referrers::list(app, &n, &d, &query).await,
        _ => Err(unsupported()),
    }
}

pub(crate) fn parse_digest(s: &str) -> Result<crate::digest::Digest, ApiError> {
    s.parse().map_err(|e: crate::digest::DigestError| {
        ApiError::new(ErrorCode::DigestInvalid).detail(serde_json::json!({
            "digest": s,
            "reason": e.to_string(),
        }))
    })
}

/// Pagination shared by tags and catalog: entries after `last`, at most `n`, and the
/// `Link` for the next page when one exists.
pub(crate) fn paginate(
    mut items: Vec<String>,
    query: &[(String, String)],
    base: &str,
) -> Result<(Vec<String>, Option<String>), ApiError> {
    let n = match query_get(query, "n") {
        Some(s) => Some(s.parse::<usize>().map_err(|_| {
            unsupported()
                .status(StatusCode::BAD_REQUEST)
                .message("invalid page size n")
        })?),
        None => None,
    };
    if let Some(last) = query_get(query, "last") {
        items.retain(|t| t.as_str() > last);
    }
    let Some(n) = n else {
        return Ok((items, None));
    };
    let more = items.len() > n;
    items.truncate(n);
    let link = match (more, items.last()) {
        (true, Some(last)) => Some(format!("<{base}?n={n}&last={last}>; rel=\"next\"")),
        _ => None,
    };
    Ok((items, link))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_from_the_end() {
        let r = |p: &str| parse_route(p);
        assert_eq!(r("/v2/"), Some(Route::Base));
        assert_eq!(r("/v2"), Some(Route::Base));
        assert_eq!(r("/v2/_catalog"), Some(Route::Catalog));
        assert_eq!(r("/v2/a/b/tags/list"), Some(Route::Tags("a/b".into())));
        assert_eq!(
            r("/v2/a/manifests/x/manifests/latest"),
            Some(Route::Manifest("a/manifests/x".into(), "latest".into()))
        );
        assert_eq!(
            r("/v2/a/blobs/uploads/"),
            Some(Route::UploadStart("a".into()))
        );
        assert_eq!(
            r("/v2/a/blobs/uploads"),
            Some(Route::UploadStart("a".into()))
        );
        assert_eq!(
            r("/v2/a/b/blobs/uploads/abc"),
            Some(Route::Upload("a/b".into(), "abc".into()))
        );
        assert_eq!(
            r("/v2/a/blobs/sha256:x"),
            Some(Route::Blob("a".into(), "sha256:x".into()))
        );
        assert_eq!(
            r("/v2/a/referrers/sha256:x"),
            Some(Route::Referrers("a".into(), "sha256:x".into()))
        );
        assert_eq!(r("/v2/a"), None);
        assert_eq!(r("/v3/a/tags/list"), None);
    }

    #[test]
    fn pagination() {
        let items: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let (page, link) = paginate(items.clone(), &q(&[("n", "2")]), "/x").unwrap();
        assert_eq!(page, vec!["a", "b"]);
        assert_eq!(link.unwrap(), "</x?n=2&last=b>; rel=\"next\"");
        let (page, link) = paginate(items.clone(), &q(&[("n", "2"), ("last", "b")]), "/x").unwrap();
        assert_eq!(page, vec!["c", "d"]);
        assert!(link.is_none());
        let (page, _) = paginate(items.clone(), &q(&[("n", "0")]), "/x").unwrap();
        assert!(page.is_empty());
        assert!(paginate(items, &q(&[("n", "x")]), "/x").is_err());
    }
}
