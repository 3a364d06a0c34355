//! `_ping`, `version`, `info`, `events`.

use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::{API_VERSION, MIN_API_VERSION};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;

pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/events", get(events))
        .route("/system/df", get(df))
}

fn ping_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h
}

async fn ping() -> Response {
    (
        StatusCode::OK,
        ping_headers(),
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "OK",
    )
        .into_response()
}

fn kernel_version() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

async fn version() -> Json<Value> {
    let details = json!({
        "ApiVersion": API_VERSION, "Arch": arch(), "BuildTime": "", "Experimental": "false",
        "GitCommit": "", "GoVersion": "", "KernelVersion": kernel_version(),
        "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
    });
    Json(json!({
        "Platform": { "Name": "Berth Engine" },
        "Components": [{ "Name": "Engine", "Version": ENGINE_VERSION, "Details": details }],
        "Version": ENGINE_VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": arch(),
        "KernelVersion": kernel_version(),
        "BuildTime": "",
    }))
}

fn os_release() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".to_string())
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

async fn info(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    let e = &st.engine;
    let c = e.containers.counts();
    let images = e.images.svc.images.list().len();
    let runtimes: serde_json::Map<String, Value> = e
        .config
        .runtimes
        .iter()
        .map(|(k, v)| {
            let args = e.config.runtime_args(Some(k));
            let mut r = json!({ "path": v });
            if !args.is_empty() {
                r["runtimeArgs"] = json!(args);
            }
            (k.clone(), r)
        })
        .collect();
    let cgroup_version = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    };
    let hostname = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    Ok(Json(json!({
        "ID": e.containers.daemon_id(),
        "Containers": c.total, "ContainersRunning": c.running, "ContainersPaused": c.paused,
        "ContainersStopped": c.total - c.running - c.paused,
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
        "Plugins": { "Volume": ["local"], "Network": ["bridge", "host", "none"], "Authorization": null,
                     "Log": ["json-file"] },
        "MemoryLimit": true, "SwapLimit": true, "CpuCfsPeriod": true, "CpuCfsQuota": true,
        "CPUShares": true, "CPUSet": true, "PidsLimit": true, "IPv4Forwarding": true,
        "Debug": false, "NFd": 0, "OomKillDisable": true, "NGoroutines": 0,
        "SystemTime": berth_engine::time::now_rfc3339(),
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs", "CgroupVersion": cgroup_version,
        "NEventsListener": 0, "KernelVersion": kernel_version(),
        "OperatingSystem": os_release(), "OSVersion": "", "OSType": "linux",
        "Architecture": std::env::consts::ARCH, "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "InsecureRegistryCIDRs": ["127.0.0.0/8", "::1/128"],
            "IndexConfigs": {},
            "Mirrors": e.config.registry_mirrors,
        },
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": mem_total(),
        "DockerRootDir": e.config.data_root,
        "Name": hostname,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": ENGINE_VERSION,
        "Runtimes": runtimes,
        "DefaultRuntime": e.config.default_runtime,
        "Swarm": { "NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                   "ControlAvailable": false, "Error": "", "RemoteManagers": null },
        "LiveRestoreEnabled": e.config.live_restore,
        "Isolation": "",
        "InitBinary": "docker-init",
        "ContainerdCommit": { "ID": "", "Expected": "" },
        "RuncCommit": { "ID": "", "Expected": "" },
        "InitCommit": { "ID": "", "Expected": "" },
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": [],
    })))
}

/// `GET /events`: JSON objects, one per line, flushed as they happen. `since` replays the
/// recorded history; `until` ends the stream; `filters` selects (type, event/action,
/// container, image, label, network, volume).
async fn events(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let filters = match q.get("filters") {
        Some(f) if !f.is_empty() => crate::filters::parse_filters(f)?,
        _ => Default::default(),
    };
    let parse = |k: &str| -> ApiResult<Option<std::time::SystemTime>> {
        match q.get(k) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => berth_engine::time::parse_time_arg(v)
                .map(Some)
                .ok_or_else(|| ApiError::bad_request(format!("invalid value for {k}: {v:?}"))),
        }
    };
    let since = parse("since")?;
    let until = parse("until")?;
    let nanos = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0)
    };
    let (past, mut rx) = st.engine.events.subscribe(since.map(nanos));
    let until_n = until.map(nanos);
    let (tx, body_rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let matches = |ev: &berth_engine::events::Event| event_matches(&filters, ev);
        for ev in past {
            if until_n.is_some_and(|u| ev.time_nano > u) {
                return;
            }
            if matches(&ev) && send_line(&tx, &ev).await.is_err() {
                return;
            }
        }
        let deadline = until.map(|u| {
            let now = std::time::SystemTime::now();
            tokio::time::Instant::now() + u.duration_since(now).unwrap_or_default()
        });
        loop {
            let next = async {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, rx.recv()).await.ok(),
                    None => Some(rx.recv().await),
                }
            };
            let ev = tokio::select! {
                r = next => match r {
                    None => return,
                    Some(Ok(ev)) => ev,
                    Some(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
                    Some(Err(_)) => return,
                },
                _ = tx.closed() => return,
            };
            if matches(&ev) && send_line(&tx, &ev).await.is_err() {
                return;
            }
        }
    });
    Ok(crate::stream::streamed("application/json", body_rx))
}

async fn send_line(
    tx: &tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>,
    ev: &berth_engine::events::Event,
) -> Result<(), ()> {
    let mut line = serde_json::to_vec(ev).map_err(|_| ())?;
    line.push(b'\n');
    tx.send(Ok(line.into())).await.map_err(|_| ())
}

fn event_matches(f: &HashMap<String, Vec<String>>, ev: &berth_engine::events::Event) -> bool {
    let any = |key: &str, pred: &dyn Fn(&str) -> bool| -> bool {
        match f.get(key) {
            None => true,
            Some(vals) => vals.iter().any(|v| pred(v)),
        }
    };
    let name = ev
        .actor
        .attributes
        .get("name")
        .map(String::as_str)
        .unwrap_or("");
    let id = ev.actor.id.as_str();
    any("type", &|v| v == ev.kind)
        && any("event", &|v| {
            v == ev.action || ev.action.starts_with(&format!("{v}:"))
        })
        && any("action", &|v| v == ev.action)
        && (ev.kind != "container" || any("container", &|v| v == name || id.starts_with(v)))
        && (!f.contains_key("container") || ev.kind == "container")
        && any("image", &|v| {
            ev.actor.attributes.get("image").is_some_and(|i| i == v)
                || (ev.kind == "image" && (id == v || name == v))
        })
        && any("label", &|v| match v.split_once('=') {
            Some((k, val)) => ev.actor.attributes.get(k).is_some_and(|x| x == val),
            None => ev.actor.attributes.contains_key(v),
        })
        && (ev.kind != "network" || any("network", &|v| v == name || id.starts_with(v)))
        && (ev.kind != "volume" || any("volume", &|v| v == id))
}

/// `GET /system/df`: what images, containers and volumes use on disk.
async fn df(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    let e = &st.engine;
    let images = e.images.list(Default::default()).await?;
    let (shared, layers) = e.images.layer_usage().await?;
    let mut imgs = Vec::new();
    for mut i in images {
        let id = i
            .get("Id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        i["Containers"] = json!(e.containers.users_of_image(&id).len());
        i["SharedSize"] = json!(shared.get(&id).copied().unwrap_or(0));
        imgs.push(i);
    }
    let mut containers = Vec::new();
    for c in e.containers.list() {
        let (rw, root) = e.containers.sizes(&c).await;
        let mut v = c.summary();
        v["SizeRw"] = json!(rw);
        v["SizeRootFs"] = json!(root);
        containers.push(v);
    }
    let vols = e.volumes.clone();
    let volumes = tokio::task::spawn_blocking(move || {
        vols.list_with_users()
            .into_iter()
            .map(|(v, users)| {
                let size = vols.size(&v.name);
                let mut j = serde_json::to_value(&v).unwrap_or(Value::Null);
                j["UsageData"] = json!({ "Size": size, "RefCount": users.len() });
                j
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ApiError(berth_engine::Error::internal("volume sizes", e)))?;
    Ok(Json(json!({
        "LayersSize": layers,
        "Images": imgs,
        "Containers": containers,
        "Volumes": volumes,
        "BuildCache": [],
    })))
}
