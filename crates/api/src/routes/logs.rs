//! `GET /containers/{id}/logs`.

use crate::error::{qbool, ApiError, ApiResult};
use crate::server::AppState;
use axum::extract::{Path, Query, State};
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
        details: qbool(q.get("details")),
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
    let (tty, rx) = st.engine.containers.logs(&id, opts)?;
    Ok(crate::stream::streamed(
        crate::stream::output_content_type(tty),
        rx,
    ))
}
