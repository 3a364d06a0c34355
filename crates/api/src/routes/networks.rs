//! `/networks/...`.

use crate::error::{parse_json, ApiError, ApiResult};
use crate::filters::{label_matches, parse_filters};
use crate::server::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_engine::container::network_glue::net_err;
use berth_engine::container::types::EndpointSettings;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        .route("/networks/{id}", get(inspect).delete(remove))
        .route("/networks/{id}/connect", post(connect))
        .route("/networks/{id}/disconnect", post(disconnect))
}

const PREDEFINED: &[&str] = &["bridge", "host", "none"];

async fn list(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let f = parse_filters(q.get("filters").map(String::as_str).unwrap_or(""))?;
    let mut out = Vec::new();
    for n in st.engine.networks.list().await {
        let mut ok = true;
        for (k, vals) in &f {
            if vals.is_empty() {
                continue;
            }
            ok &= match k.as_str() {
                "name" => vals.iter().any(|v| n.name.contains(v.as_str())),
                "id" => vals.iter().any(|v| n.id.starts_with(v.as_str())),
                "driver" => vals.contains(&n.driver),
                "label" => vals.iter().all(|v| label_matches(&n.labels, v)),
                "scope" => vals.iter().any(|v| v == "local"),
                "type" => vals.iter().any(|v| match v.as_str() {
                    "builtin" => PREDEFINED.contains(&n.name.as_str()),
                    "custom" => !PREDEFINED.contains(&n.name.as_str()),
                    _ => false,
                }),
                "dangling" => vals.iter().any(|v| {
                    (v == "true" || v == "1")
                        == (n.containers.is_empty() && !PREDEFINED.contains(&n.name.as_str()))
                }),
                other => return Err(ApiError::bad_request(format!("invalid filter '{other}'"))),
            };
        }
        if ok {
            out.push(serde_json::to_value(&n).unwrap_or(Value::Null));
        }
    }
    Ok(Json(Value::Array(out)))
}

async fn inspect(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let n = st.engine.networks.inspect(&id).await.map_err(net_err)?;
    Ok(Json(serde_json::to_value(&n).unwrap_or(Value::Null)))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct IpamConfigReq {
    subnet: String,
    #[serde(rename = "IPRange")]
    ip_range: String,
    gateway: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct IpamReq {
    driver: String,
    config: Option<Vec<IpamConfigReq>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateReq {
    name: String,
    driver: String,
    internal: bool,
    attachable: bool,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: Option<bool>,
    #[serde(rename = "IPAM")]
    ipam: Option<IpamReq>,
    options: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

async fn create(State(st): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let r: CreateReq = parse_json(&body)?;
    if r.name.is_empty() {
        return Err(ApiError::bad_request("network name is required"));
    }
    if PREDEFINED.contains(&r.name.as_str()) {
        return Err(ApiError(berth_engine::Error::Forbidden(format!(
            "{} is a pre-defined network and cannot be created",
            r.name
        ))));
    }
    if r.enable_ipv6 == Some(true) {
        return Err(ApiError::bad_request("IPv6 networks are not supported"));
    }
    let ipam = r.ipam.unwrap_or_default();
    if !ipam.driver.is_empty() && ipam.driver != "default" {
        return Err(ApiError::bad_request(format!(
            "IPAM driver {:?} is not supported",
            ipam.driver
        )));
    }
    let cfgs = ipam.config.unwrap_or_default();
    if cfgs.len() > 1 {
        return Err(ApiError::bad_request(
            "only one IPv4 subnet per network is supported",
        ));
    }
    let c = cfgs.into_iter().next().unwrap_or_default();
    let some = |s: String| (!s.is_empty()).then_some(s);
    let req = berth_network::NetworkCreate {
        name: r.name,
        driver: if r.driver.is_empty() {
            "bridge".into()
        } else {
            r.driver
        },
        subnet: some(c.subnet),
        gateway: some(c.gateway),
        ip_range: some(c.ip_range),
        internal: r.internal,
        attachable: r.attachable,
        labels: r.labels.unwrap_or_default(),
        options: r.options.unwrap_or_default(),
    };
    let n = st.engine.networks.create(req).await.map_err(net_err)?;
    st.engine.events.publish(
        "network",
        "create",
        &n.id,
        [
            ("name".to_string(), n.name.clone()),
            ("type".to_string(), n.driver.clone()),
        ]
        .into(),
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({ "Id": n.id, "Warning": "" })),
    )
        .into_response())
}

async fn remove(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let n = st.engine.networks.inspect(&id).await.map_err(net_err)?;
    st.engine.networks.remove(&id).await.map_err(net_err)?;
    st.engine.events.publish(
        "network",
        "destroy",
        &n.id,
        [
            ("name".to_string(), n.name.clone()),
            ("type".to_string(), n.driver.clone()),
        ]
        .into(),
    );
    Ok(StatusCode::NO_CONTENT)
}

async fn prune(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    let gone = st.engine.networks.prune().await.map_err(net_err)?;
    Ok(Json(json!({ "NetworksDeleted": gone })))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectReq {
    container: String,
    endpoint_config: Option<EndpointSettings>,
    force: bool,
}

async fn connect(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let r: ConnectReq = parse_json(&body)?;
    st.engine
        .containers
        .network_connect(&id, &r.container, r.endpoint_config.unwrap_or_default())
        .await?;
    Ok(StatusCode::OK)
}

async fn disconnect(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let r: ConnectReq = parse_json(&body)?;
    st.engine
        .containers
        .network_disconnect(&id, &r.container, r.force)
        .await?;
    Ok(StatusCode::OK)
}
