//! `/containers/...`.

use crate::error::{parse_json, qbool, ApiError, ApiResult};
use crate::filters::{label_matches, parse_filters};
use crate::hijack;
use crate::server::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use berth_engine::container::model::Container;
use berth_engine::container::types::CreateRequest;
use serde_json::{json, Value};
use std::collections::HashMap;

type Q = Query<HashMap<String, String>>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/create", post(create))
        .route("/containers/json", get(list))
        .route("/containers/prune", post(prune))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/attach", post(attach))
        .route("/containers/{id}/resize", post(resize))
        .route("/containers/{id}/rename", post(rename))
        .route("/containers/{id}/update", post(update))
        .route("/containers/{id}/pause", post(pause))
        .route("/containers/{id}/unpause", post(unpause))
        .route("/containers/{id}/logs", get(crate::routes::logs::logs))
        .route("/containers/{id}", delete(remove))
        .route(
            "/containers/{id}/archive",
            get(archive_get).head(archive_head).put(archive_put),
        )
        .route("/containers/{id}/export", get(export))
        .route("/containers/{id}/changes", get(changes))
        .route("/containers/{id}/top", get(top))
        .route("/containers/{id}/stats", get(stats))
}

async fn create(State(st): State<AppState>, Query(q): Q, body: Bytes) -> ApiResult<Response> {
    let req: CreateRequest = parse_json(&body)?;
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        if !p.starts_with("linux") {
            return Err(ApiError::bad_request(format!("unsupported platform {p:?}")));
        }
    }
    let (id, warnings) = st
        .engine
        .containers
        .create(q.get("name").map(String::as_str), req)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "Id": id, "Warnings": warnings })),
    )
        .into_response())
}

fn matches(c: &Container, f: &HashMap<String, Vec<String>>, st: &AppState) -> ApiResult<bool> {
    for (key, vals) in f {
        if vals.is_empty() {
            continue;
        }
        let ok = match key.as_str() {
            "id" => vals.iter().any(|v| c.id.starts_with(v.as_str())),
            "name" => vals
                .iter()
                .any(|v| c.name.contains(v.trim_start_matches('/'))),
            "label" => vals.iter().all(|v| label_matches(&c.config.labels, v)),
            "status" => {
                for v in vals {
                    if ![
                        "created",
                        "restarting",
                        "running",
                        "removing",
                        "paused",
                        "exited",
                        "dead",
                    ]
                    .contains(&v.as_str())
                    {
                        return Err(ApiError::bad_request(format!(
                            "invalid filter 'status={v}'"
                        )));
                    }
                }
                vals.contains(&c.state.status)
            }
            "exited" => vals.iter().any(|v| {
                !c.state.running
                    && c.has_been_started
                    && v.parse::<i64>().ok() == Some(c.state.exit_code)
            }),
            "ancestor" => vals.iter().any(|v| {
                c.config.image == *v
                    || c.image_id == *v
                    || c.image_id
                        .trim_start_matches("sha256:")
                        .starts_with(v.trim_start_matches("sha256:"))
                    || st
                        .engine
                        .images
                        .svc
                        .images
                        .resolve(v)
                        .map(|r| r.id.to_string() == c.image_id)
                        .unwrap_or(false)
            }),
            "network" => vals
                .iter()
                .any(|v| c.networks.contains_key(v) || c.network_mode() == v),
            "volume" => vals.iter().any(|v| {
                c.mounts
                    .iter()
                    .any(|m| m.name == *v || m.destination == *v || m.source == *v)
            }),
            "health" => {
                let status = c
                    .state
                    .health
                    .as_ref()
                    .map_or("none", |h| h.status.as_str());
                vals.iter().any(|v| v == status)
            }
            "is-task" => vals.iter().any(|v| v == "false"),
            "before" | "since" => {
                let other = st.engine.containers.inspect(&vals[0])?;
                if key == "before" {
                    c.created < other.created
                } else {
                    c.created > other.created
                }
            }
            "publish" | "expose" => vals.iter().any(|v| {
                c.ports
                    .keys()
                    .any(|k| k == v || k.split('/').next() == Some(v.as_str()))
            }),
            other => return Err(ApiError::bad_request(format!("invalid filter '{other}'"))),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn list(State(st): State<AppState>, Query(q): Q) -> ApiResult<Json<Value>> {
    let all = qbool(q.get("all"));
    let limit: i64 = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(-1);
    let f = parse_filters(q.get("filters").map(String::as_str).unwrap_or(""))?;
    let mut out = Vec::new();
    for c in st.engine.containers.list() {
        if !all
            && limit <= 0
            && !c.state.running
            && !f.contains_key("status")
            && !f.contains_key("exited")
        {
            continue;
        }
        if !matches(&c, &f, &st)? {
            continue;
        }
        out.push(c.summary());
        if limit > 0 && out.len() as i64 >= limit {
            break;
        }
    }
    Ok(Json(Value::Array(out)))
}

async fn inspect(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult<Json<Value>> {
    let c = st.engine.containers.inspect(&id)?;
    let size = if qbool(q.get("size")) {
        Some(st.engine.containers.sizes(&c).await)
    } else {
        None
    };
    Ok(Json(c.inspect(size)))
}

async fn start(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult<StatusCode> {
    if let Some(k) = q.get("detachKeys").filter(|k| !k.is_empty()) {
        hijack::parse_detach_keys(k).map_err(ApiError::bad_request)?;
    }
    st.engine.containers.start(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn timeout(q: &HashMap<String, String>) -> ApiResult<Option<i64>> {
    match q.get("t").or(q.get("timeout")) {
        None => Ok(None),
        Some(t) if t.is_empty() => Ok(None),
        Some(t) => t
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid value for t: {t:?}"))),
    }
}

async fn stop(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult<StatusCode> {
    st.engine
        .containers
        .stop(&id, timeout(&q)?, q.get("signal").map(String::as_str))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn restart(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult<StatusCode> {
    st.engine
        .containers
        .restart(&id, timeout(&q)?, q.get("signal").map(String::as_str))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn kill(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult<StatusCode> {
    st.engine
        .containers
        .kill(&id, q.get("signal").map(String::as_str))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Headers go out at once; the body is written when the condition is met (the CLI calls
/// wait before start).
async fn wait(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult<Response> {
    let cond = q.get("condition").cloned().unwrap_or_default();
    let fut = st.engine.containers.wait(&id, &cond)?;
    let stream = futures_util::stream::once(async move {
        let (code, err) = fut.await;
        let body = match err {
            Some(e) => json!({ "StatusCode": code, "Error": { "Message": e } }),
            None => json!({ "StatusCode": code, "Error": null }),
        };
        Ok::<_, std::io::Error>(Bytes::from(format!("{body}\n")))
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_default())
}

async fn attach(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
    mut req: Request,
) -> ApiResult<Response> {
    let c = st.engine.containers.inspect(&id)?;
    let stream = qbool(q.get("stream"));
    let logs = qbool(q.get("logs"));
    if !stream && !logs {
        return Err(ApiError::bad_request(
            "at least one of stream or logs must be set",
        ));
    }
    let detach_keys = match q.get("detachKeys").filter(|k| !k.is_empty()) {
        Some(k) => hijack::parse_detach_keys(k).map_err(ApiError::bad_request)?,
        None => hijack::DEFAULT_DETACH_KEYS.to_vec(),
    };
    let areq = berth_monitor::AttachRequest {
        stdin: qbool(q.get("stdin")) && c.config.open_stdin,
        stdout: qbool(q.get("stdout")),
        stderr: qbool(q.get("stderr")),
    };
    let upgrade = hijack::on_upgrade(&mut req);
    let engine = st.engine.clone();
    let tty = c.config.tty;
    tokio::spawn(async move {
        match engine.containers.attach(&id, areq).await {
            Ok(mon) => {
                hijack::relay(
                    upgrade,
                    mon,
                    hijack::RelayOpts {
                        tty,
                        stdin: areq.stdin,
                        detach_keys,
                    },
                )
                .await
            }
            Err(e) => tracing::debug!(error = %e, "attach ended before the container started"),
        }
    });
    Ok(hijack::upgrade_response(tty))
}

async fn resize(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult<StatusCode> {
    let (h, w) = crate::error::tty_size(&q)?;
    st.engine.containers.resize(&id, h, w).await?;
    Ok(StatusCode::OK)
}

async fn update(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let req: serde_json::Map<String, Value> = parse_json(&body)?;
    let warnings = st.engine.containers.update_resources(&id, &req).await?;
    Ok(Json(json!({ "Warnings": warnings })))
}

async fn rename(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult<StatusCode> {
    let name = q
        .get("name")
        .ok_or_else(|| ApiError::bad_request("missing name"))?;
    st.engine.containers.rename(&id, name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn pause(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    st.engine.containers.pause(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unpause(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    st.engine.containers.unpause(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult<StatusCode> {
    if qbool(q.get("link")) {
        return Err(ApiError::bad_request("links are not supported"));
    }
    st.engine
        .containers
        .remove(&id, qbool(q.get("force")), qbool(q.get("v")))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn prune(State(st): State<AppState>, Query(q): Q) -> ApiResult<Json<Value>> {
    let f = parse_filters(q.get("filters").map(String::as_str).unwrap_or(""))?;
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for c in st.engine.containers.list() {
        if c.state.running {
            continue;
        }
        if let Some(labels) = f.get("label") {
            if !labels.iter().all(|l| label_matches(&c.config.labels, l)) {
                continue;
            }
        }
        if let Some(until) = f.get("until").and_then(|u| u.first()) {
            let limit = berth_engine::time::parse_time_arg(until)
                .ok_or_else(|| ApiError::bad_request(format!("invalid until {until:?}")))?;
            if berth_engine::time::parse_rfc3339(&c.created).is_some_and(|t| t > limit) {
                continue;
            }
        }
        let (rw, _) = st.engine.containers.sizes(&c).await;
        if st
            .engine
            .containers
            .remove(&c.id, false, false)
            .await
            .is_ok()
        {
            reclaimed += rw;
            deleted.push(c.id);
        }
    }
    Ok(Json(
        json!({ "ContainersDeleted": deleted, "SpaceReclaimed": reclaimed }),
    ))
}

fn path_param(q: &HashMap<String, String>) -> ApiResult<String> {
    q.get("path")
        .filter(|p| !p.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::bad_request("path is required"))
}

fn stat_header(stat: &berth_engine::container::archive::PathStat) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(stat).unwrap_or_default())
}

async fn archive_head(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult<Response> {
    let stat = st
        .engine
        .containers
        .archive_stat(&id, &path_param(&q)?)
        .await?;
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("X-Docker-Container-Path-Stat", stat_header(&stat))
        .body(Body::empty())
        .unwrap_or_default())
}

fn tar_response(
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    stat: Option<String>,
) -> Response {
    let mut resp = crate::stream::streamed("application/x-tar", rx);
    if let Some(v) = stat.and_then(|s| s.parse().ok()) {
        resp.headers_mut().insert("X-Docker-Container-Path-Stat", v);
    }
    resp
}

async fn archive_get(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult<Response> {
    let (stat, rx) = st
        .engine
        .containers
        .archive_get(&id, &path_param(&q)?)
        .await?;
    Ok(tar_response(rx, Some(stat_header(&stat))))
}

async fn archive_put(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
    body: Body,
) -> ApiResult<StatusCode> {
    let path = path_param(&q)?;
    // The tar is read on a blocking thread from a bridge of the request body.
    let stream =
        futures_util::TryStreamExt::map_err(body.into_data_stream(), std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    let sync = tokio_util::io::SyncIoBridge::new(reader);
    st.engine
        .containers
        .archive_put(
            &id,
            &path,
            sync,
            qbool(q.get("copyUIDGID")),
            qbool(q.get("noOverwriteDirNonDir")),
        )
        .await?;
    Ok(StatusCode::OK)
}

async fn export(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let rx = st.engine.containers.export(&id).await?;
    Ok(tar_response(rx, None))
}

async fn changes(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let ch = st.engine.containers.changes(&id).await?;
    Ok(Json(Value::Array(
        ch.into_iter()
            .map(|(p, k)| json!({ "Path": p, "Kind": k }))
            .collect(),
    )))
}

async fn top(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        st.engine
            .containers
            .top(&id, q.get("ps_args").map(String::as_str).unwrap_or(""))
            .await?,
    ))
}

async fn stats(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult<Response> {
    let stream = q.get("stream").is_none_or(|s| qbool(Some(s)));
    let one_shot = qbool(q.get("one-shot"));
    let engine = st.engine.clone();
    let first = engine.containers.stats_sample(&id, None)?;
    if !stream {
        // Docker samples twice a second apart so the CPU percentage can be computed, unless
        // one-shot asks for a single sample.
        let v = if one_shot {
            first
        } else {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            engine.containers.stats_sample(&id, Some(&first))?
        };
        return Ok(Json(v).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::spawn(async move {
        let mut prev = first;
        loop {
            let line = format!("{prev}\n");
            if tx.send(Ok(Bytes::from(line))).await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            match engine.containers.stats_sample(&id, Some(&prev)) {
                Ok(v) => prev = v,
                Err(_) => return,
            }
        }
    });
    Ok(crate::stream::streamed("application/json", rx))
}
