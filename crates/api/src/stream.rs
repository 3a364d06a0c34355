//! Streamed responses: a 200 whose body is whatever a producer task sends on a channel (logs,
//! events, stats, progress lines, tar archives). An `Err` item aborts the transfer, so the
//! client sees a truncated body rather than a clean end.

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::Response;
use tokio::sync::mpsc::Receiver;

pub fn streamed(content_type: &str, mut rx: Receiver<std::io::Result<Bytes>>) -> Response {
    let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut resp = Response::new(Body::from_stream(body));
    *resp.status_mut() = StatusCode::OK;
    if let Ok(ct) = content_type.parse() {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    resp
}

/// The multiplexed or raw stream content type Docker announces for a container's output.
pub fn output_content_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}
