//! `GET /containers/{id}/logs`.

use crate::error::{qbool, ApiError, ApiResult};
use crate::server::AppState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use berth_engine::container::logs::LogOptions;
use std::collections::HashMap;

pub async fn logs(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let time = |k: &str| -> ApiResult<Option<std::time::SystemTime>> {
        match q.get(k).filter(|v| !v.is_empty() && *v != "0") {
            None => Ok(None),
            Some(v) => berth_engine::time::parse_time_arg(v)
                .map(Some)
                .ok_or_else(|| ApiError::bad_request(format!("invalid value for {k}: {v:?}"))),
        }
    };
    let opts = LogOptions {
        stdout: qbool(q.get("stdout")),
        stderr: qbool(q.get("stderr")),
        follow: qbool(q.get("follow")),
        timestamps: qbool(q.get("timestamps")),
        since: time("since")?,
        until: time("until")?,
        tail: match q.get("tail").map(String::as_str) {
            None | Some("") | Some("all") => None,
            Some(n) => Some(
                n.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid tail {n:?}")))?
                    .max(0) as usize,
            ),
        },
    };
    if !opts.stdout && !opts.stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let (tty, mut rx) = st.engine.containers.logs(&id, opts)?;
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|o| o.map(Ok::<_, std::io::Error>))
    });
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, ct)
        .body(Body::from_stream(stream))
        .unwrap_or_default())
}
