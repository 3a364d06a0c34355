//! `/images/*`, `/auth` and `/commit`. Image names contain `/`, so everything below
//! `/images/{name}` is one catch-all route per method, split on its last path segment.

use crate::error::{parse_json, qbool, ApiError, ApiResult};
use crate::filters::parse_filters;
use crate::server::AppState;
use crate::version::ApiVersion;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use berth_engine::container::commit::CommitRequest;
use berth_engine::images::archive::ImportRequest;
use berth_engine::images::list::ListOptions;
use berth_engine::images::pull::PullRequest;
use berth_engine::images::push::PushRequest;
use berth_engine::images::{AuthConfig, Images, JsonMessage};
use berth_engine::Error;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::Arc;
use tokio::sync::mpsc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/create", post(create))
        .route("/images/load", post(load))
        .route("/images/get", get(save_many))
        .route("/images/prune", post(prune))
        .route("/images/search", get(search))
        .route(
            "/images/{*rest}",
            get(get_named).post(post_named).delete(delete),
        )
        .route("/auth", post(auth))
        .route("/commit", post(commit))
}

/// Query parameters in order, repeated keys kept (`changes`, `names`).
fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(v) => {
                            out.push(v);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    raw.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

struct Query(Vec<(String, String)>);

impl Query {
    fn new(raw: Option<String>) -> Query {
        Query(query_pairs(raw.as_deref()))
    }
    fn get(&self, key: &str) -> Option<&String> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    fn str(&self, key: &str) -> String {
        self.get(key).cloned().unwrap_or_default()
    }
    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }
    fn bool(&self, key: &str) -> bool {
        qbool(self.get(key))
    }
    fn filters(&self) -> ApiResult<HashMap<String, Vec<String>>> {
        parse_filters(&self.str("filters"))
    }
}

fn registry_auth(headers: &HeaderMap) -> Option<AuthConfig> {
    headers
        .get("x-registry-auth")
        .and_then(|v| v.to_str().ok())
        .and_then(AuthConfig::from_header)
}

fn json_stream(rx: mpsc::Receiver<io::Result<Bytes>>) -> Response {
    crate::stream::streamed("application/json", rx)
}

fn lines_response(lines: &[JsonMessage]) -> Response {
    let mut body = Vec::new();
    for l in lines {
        body.extend(l.to_line());
    }
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Runs a progress-reporting operation. Until it says anything, a failure is a plain HTTP
/// error (dockerd's behaviour: the status line is not sent before the first message); after
/// that the response is a stream of JSON lines ending, on failure, with an error line.
async fn progress_response<F, Fut>(op: F) -> ApiResult<Response>
where
    F: FnOnce(mpsc::UnboundedSender<JsonMessage>) -> Fut,
    Fut: std::future::Future<Output = berth_engine::Result<()>> + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<JsonMessage>();
    let task = tokio::spawn(op(tx));
    let Some(first) = rx.recv().await else {
        return match task.await {
            Ok(Ok(())) => Ok(lines_response(&[])),
            Ok(Err(e)) => Err(ApiError(e)),
            Err(e) => Err(ApiError(Error::internal("image task", e))),
        };
    };
    let (btx, brx) = mpsc::channel::<io::Result<Bytes>>(64);
    tokio::spawn(async move {
        let mut next = Some(first);
        while let Some(m) = next {
            // A client that went away does not stop the operation; it completes unseen.
            let _ = btx.send(Ok(Bytes::from(m.to_line()))).await;
            next = rx.recv().await;
        }
        let end = match task.await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(format!("image task: {e}")),
        };
        if let Some(msg) = end {
            let _ = btx
                .send(Ok(Bytes::from(JsonMessage::error(msg).to_line())))
                .await;
        }
    });
    Ok(json_stream(brx))
}

/// The request body as a blocking reader, for berth-image calls on blocking threads.
struct BodyReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl BodyReader {
    fn new(body: Body) -> BodyReader {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut s = body.into_data_stream();
            while let Some(chunk) = s.next().await {
                let item = chunk.map_err(io::Error::other);
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    return;
                }
            }
        });
        BodyReader {
            rx,
            cur: Bytes::new(),
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// A blocking writer feeding a response body in 256 KiB chunks.
struct BodyWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 256 * 1024;

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }
}

async fn list(
    State(st): State<AppState>,
    RawQuery(raw): RawQuery,
    ver: Option<Extension<ApiVersion>>,
) -> ApiResult<Json<Vec<Value>>> {
    let q = Query::new(raw);
    let mut filters = q.filters()?;
    // The old `filter=<reference>` parameter.
    let legacy = q.str("filter");
    if !legacy.is_empty() {
        filters.entry("reference".into()).or_default().push(legacy);
    }
    let rows = st
        .engine
        .images
        .list(ListOptions {
            filters,
            api_minor: ver.map(|Extension(v)| v.0),
        })
        .await?;
    Ok(Json(rows))
}

async fn create(
    State(st): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let q = Query::new(raw);
    let images: Arc<Images> = st.engine.images.clone();
    let from_src = q.str("fromSrc");
    if !from_src.is_empty() {
        if from_src != "-" {
            return Err(ApiError::bad_request(format!(
                "importing from a URL ({from_src}) is not supported: this daemon does not download from arbitrary URLs; pipe the tarball in (fromSrc=-)"
            )));
        }
        let req = ImportRequest {
            repo: q.str("repo"),
            tag: q.str("tag"),
            changes: q.all("changes"),
            message: q.str("message"),
            platform: q.str("platform"),
        };
        let rec = images.import(req, BodyReader::new(body)).await?;
        return Ok(lines_response(&[JsonMessage::status(rec.id.to_string())]));
    }
    let req = PullRequest {
        from_image: q.str("fromImage"),
        tag: q.str("tag"),
        platform: q.str("platform"),
        auth: registry_auth(&headers),
    };
    progress_response(move |tx| async move {
        let sink = move |m: JsonMessage| {
            let _ = tx.send(m);
        };
        images.pull(req, &sink).await.map(|_| ())
    })
    .await
}

async fn load(State(st): State<AppState>, body: Body) -> ApiResult<Response> {
    let lines = st.engine.images.load(BodyReader::new(body)).await?;
    Ok(lines_response(&lines))
}

async fn save(st: AppState, names: Vec<String>) -> ApiResult<Response> {
    let images = st.engine.images.clone();
    images.check_save(&names)?;
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
    tokio::task::spawn_blocking(move || {
        let mut w = BodyWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let res = images
            .save_blocking(&names, &mut w)
            .and_then(|()| w.flush().map_err(Error::from));
        if let Err(e) = res {
            tracing::warn!(error = %e, "image save failed mid-stream");
            // An error item aborts the response, so the client sees a truncated transfer.
            let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
        }
    });
    Ok(crate::stream::streamed("application/x-tar", rx))
}

async fn save_many(State(st): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let q = Query::new(raw);
    let names: Vec<String> = q
        .all("names")
        .iter()
        .flat_map(|n| n.split(',').map(str::to_string).collect::<Vec<_>>())
        .filter(|n| !n.is_empty())
        .collect();
    save(st, names).await
}

async fn prune(State(st): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    let filters = Query::new(raw).filters()?;
    let containers = st.engine.containers.clone();
    let report = st
        .engine
        .images
        .prune(&filters, &|id| containers.users_of_image(id))
        .await?;
    Ok(Json(json!({
        "ImagesDeleted": report.deleted,
        "SpaceReclaimed": report.space_reclaimed,
    })))
}

async fn search() -> ApiError {
    ApiError(Error::NotImplemented(
        "image search is not supported by this daemon: it keeps no registry index; use the registry's own search".into(),
    ))
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=`, an optional
/// container config as the body; 201 with the new image's ID.
async fn commit(
    State(st): State<AppState>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let q = Query::new(raw);
    let config = if body.iter().all(u8::is_ascii_whitespace) || &body[..] == b"null" {
        None
    } else {
        Some(parse_json(&body)?)
    };
    let req = CommitRequest {
        container: q.str("container"),
        repo: q.str("repo"),
        tag: q.str("tag"),
        comment: q.str("comment"),
        author: q.str("author"),
        changes: q.all("changes"),
        // Docker pauses unless told not to.
        pause: q.get("pause").is_none_or(|_| q.bool("pause")),
        config,
    };
    if req.container.is_empty() {
        return Err(ApiError::bad_request(
            "No container name or ID supplied".to_string(),
        ));
    }
    let id = st.engine.containers.commit(req).await?;
    Ok((StatusCode::CREATED, Json(json!({ "Id": id }))).into_response())
}

async fn auth(State(st): State<AppState>, body: Bytes) -> ApiResult<Json<Value>> {
    let cfg: AuthConfig = parse_json(&body)?;
    let status = st.engine.images.login(&cfg).await?;
    Ok(Json(json!({ "Status": status, "IdentityToken": "" })))
}

/// `name/json`, `name/history`, `name/get`.
async fn get_named(State(st): State<AppState>, Path(rest): Path<String>) -> ApiResult<Response> {
    let not_found = || ApiError(Error::NotFound(format!("page not found: /images/{rest}")));
    let (name, op) = rest.rsplit_once('/').ok_or_else(not_found)?;
    match op {
        "json" => Ok(Json(st.engine.images.inspect(name).await?).into_response()),
        "history" => Ok(Json(st.engine.images.history(name).await?).into_response()),
        "get" => save(st, vec![name.to_string()]).await,
        _ => Err(not_found()),
    }
}

/// `name/push`, `name/tag`.
async fn post_named(
    State(st): State<AppState>,
    Path(rest): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let not_found = || ApiError(Error::NotFound(format!("page not found: /images/{rest}")));
    let (name, op) = rest.rsplit_once('/').ok_or_else(not_found)?;
    let q = Query::new(raw);
    match op {
        "tag" => {
            st.engine
                .images
                .tag(name, &q.str("repo"), &q.str("tag"))
                .await?;
            Ok(StatusCode::CREATED.into_response())
        }
        "push" => {
            let images = st.engine.images.clone();
            let req = PushRequest {
                name: name.to_string(),
                tag: q.str("tag"),
                auth: registry_auth(&headers),
            };
            // A missing image is a plain 404, before the stream starts.
            images.push_targets(&req.name, &req.tag)?;
            progress_response(move |tx| async move {
                let sink = move |m: JsonMessage| {
                    let _ = tx.send(m);
                };
                images.push(req, &sink).await
            })
            .await
        }
        _ => Err(not_found()),
    }
}

async fn delete(
    State(st): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Value>>> {
    let q = Query::new(raw);
    let rec = st.engine.images.resolve(&name)?;
    let users = st.engine.containers.image_users(&rec.id.to_string());
    let items = st
        .engine
        .images
        .delete(&name, q.bool("force"), users)
        .await?;
    Ok(Json(items))
}

#[cfg(test)]
mod tests {
    use super::query_pairs;

    #[test]
    fn repeated_and_encoded_params() {
        let q = query_pairs(Some(
            "changes=CMD%20%5B%22sh%22%5D&changes=ENV+A%3Db&repo=x",
        ));
        assert_eq!(q[0].1, "CMD [\"sh\"]");
        assert_eq!(q[1].1, "ENV A=b");
        assert_eq!(q[2], ("repo".to_string(), "x".to_string()));
    }
}
