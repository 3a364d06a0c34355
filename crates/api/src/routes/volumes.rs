//! `/volumes`: list, create, inspect, remove, prune (Docker's `local` driver).

use crate::error::{parse_json, qbool, ApiError, ApiResult};
use crate::filters::{parse_filters, Filters};
use crate::server::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_engine::volumes::{matches_filters, CreateOptions, Volume};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect).delete(remove))
}

fn filters_of(q: &HashMap<String, String>) -> ApiResult<Filters> {
    match q.get("filters") {
        Some(f) => parse_filters(f),
        None => Ok(Filters::new()),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> berth_engine::Result<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(berth_engine::Error::internal("volume task", e)))?
        .map_err(ApiError)
}

async fn list(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let filters = filters_of(&q)?;
    let mut out: Vec<Volume> = Vec::new();
    for (v, users) in st.engine.volumes.list_with_users() {
        if matches_filters(&v, &users, &filters)? {
            out.push(v);
        }
    }
    Ok(Json(json!({ "Volumes": out, "Warnings": [] })))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct CreateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    driver: Option<String>,
    #[serde(default)]
    driver_opts: Option<BTreeMap<String, String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

async fn create(State(st): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let b: CreateBody = parse_json(&body)?;
    let vols = st.engine.volumes.clone();
    let v = blocking(move || {
        vols.create(CreateOptions {
            name: b.name.unwrap_or_default(),
            driver: b.driver.unwrap_or_default(),
            driver_opts: b.driver_opts,
            labels: b.labels,
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn inspect(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Volume>> {
    Ok(Json(st.engine.volumes.get(&name)?))
}

async fn remove(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<StatusCode> {
    let force = qbool(q.get("force"));
    let vols = st.engine.volumes.clone();
    blocking(move || vols.remove(&name, force)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn prune(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let filters = filters_of(&q)?;
    let all = match filters.get("all").map(Vec::as_slice) {
        None | Some([]) => false,
        Some(vals) => vals.iter().any(|v| matches!(v.as_str(), "true" | "1")),
    };
    for key in filters.keys() {
        if !matches!(key.as_str(), "label" | "label!" | "all") {
            return Err(ApiError::bad_request(format!("invalid filter '{key}'")));
        }
    }
    let vols = st.engine.volumes.clone();
    let report =
        blocking(move || vols.prune(all, &|v| matches_filters(v, &[], &filters).unwrap_or(false)))
            .await?;
    Ok(Json(json!({
        "VolumesDeleted": report.deleted,
        "SpaceReclaimed": report.space_reclaimed,
    })))
}
