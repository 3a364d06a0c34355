//! `/containers/{id}/exec` and `/exec/{id}/...`.

use crate::error::{parse_json, ApiError, ApiResult};
use crate::hijack;
use crate::server::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_engine::container::exec::ExecConfig;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/{id}/exec", post(create))
        .route("/exec/{id}/start", post(start))
        .route("/exec/{id}/resize", post(resize))
        .route("/exec/{id}/json", get(inspect))
}

async fn create(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let cfg: ExecConfig = parse_json(&body)?;
    if !cfg.detach_keys.is_empty() {
        hijack::parse_detach_keys(&cfg.detach_keys).map_err(ApiError::bad_request)?;
    }
    let eid = st.engine.containers.exec_create(&id, cfg)?;
    Ok((StatusCode::CREATED, Json(json!({ "Id": eid }))).into_response())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: bool,
    tty: bool,
}

async fn start(
    State(st): State<AppState>,
    Path(id): Path<String>,
    mut req: Request,
) -> ApiResult<Response> {
    let upgrade = hijack::on_upgrade(&mut req);
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let b: StartBody = parse_json(&body)?;
    let cfg = st.engine.containers.exec_config(&id)?;
    if b.detach {
        st.engine.containers.exec_start(&id, true).await?;
        return Ok(StatusCode::OK.into_response());
    }
    let tty = cfg.tty || b.tty;
    let detach_keys = if cfg.detach_keys.is_empty() {
        hijack::DEFAULT_DETACH_KEYS.to_vec()
    } else {
        hijack::parse_detach_keys(&cfg.detach_keys).map_err(ApiError::bad_request)?
    };
    // Hijack first, as dockerd does: a process that fails to start reports its error in the
    // stream, and the exit code (126/127) through exec inspect.
    let engine = st.engine.clone();
    tokio::spawn(async move {
        match engine.containers.exec_start(&id, false).await {
            Ok(Some(stream)) => {
                hijack::relay(
                    upgrade,
                    stream,
                    hijack::RelayOpts {
                        tty: cfg.tty,
                        stdin: cfg.attach_stdin,
                        detach_keys,
                    },
                )
                .await
            }
            Ok(None) => {}
            Err(e) => hijack::write_error(upgrade, &e.to_string(), cfg.tty).await,
        }
    });
    Ok(hijack::upgrade_response(tty))
}

async fn resize(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<StatusCode> {
    let (h, w) = crate::error::tty_size(&q)?;
    st.engine.containers.exec_resize(&id, h, w).await?;
    Ok(StatusCode::OK)
}

async fn inspect(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(st.engine.containers.exec_inspect(&id)?))
}
