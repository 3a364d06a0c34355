//! Hijacked connections (attach, exec start): answer `101 UPGRADED` with `Upgrade: tcp`, then
//! relay raw bytes between the client and the monitor's attach socket. The monitor always
//! frames output (8-byte headers); with a TTY the frames are unwrapped into a raw stream.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Docker's default detach sequence: ctrl-p, ctrl-q.
pub const DEFAULT_DETACH_KEYS: &[u8] = &[0x10, 0x11];

/// Parses `--detach-keys` syntax: `ctrl-p,ctrl-q`, `a,ctrl-@`.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for k in s.split(',') {
        if let Some(c) = k.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [c] if c.is_ascii_alphabetic() => c.to_ascii_lowercase() - b'a' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => return Err(format!("Unknown character: '{k}'")),
            };
            out.push(b);
        } else if k.len() == 1 {
            out.push(k.as_bytes()[0]);
        } else {
            return Err(format!("Unknown character: '{k}'"));
        }
    }
    Ok(out)
}

pub fn upgrade_response(tty: bool) -> Response {
    let ct = crate::stream::output_content_type(tty);
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONTENT_TYPE, ct)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .body(Body::empty())
        .unwrap_or_default()
}

pub struct RelayOpts {
    pub tty: bool,
    pub stdin: bool,
    pub detach_keys: Vec<u8>,
}

/// Takes the upgrade future out of the request (before the response is sent).
pub fn on_upgrade(req: &mut Request<Body>) -> hyper::upgrade::OnUpgrade {
    hyper::upgrade::on(req)
}

/// Relays until the monitor closes the output (the process exited) or the client detaches.
pub async fn relay(
    upgrade: hyper::upgrade::OnUpgrade,
    monitor: std::os::unix::net::UnixStream,
    opts: RelayOpts,
) {
    let client = match upgrade.await {
        Ok(u) => TokioIo::new(u),
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return;
        }
    };
    if monitor.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(monitor) = tokio::net::UnixStream::from_std(monitor) else {
        return;
    };
    let (mut mr, mut mw) = monitor.into_split();
    let (mut cr, mut cw) = tokio::io::split(client);
    let tty = opts.tty;
    let out = async move {
        let mut buf = vec![0u8; 32 * 1024];
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let n = match mr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if !tty {
                if cw.write_all(&buf[..n]).await.is_err() {
                    return;
                }
                continue;
            }
            pending.extend_from_slice(&buf[..n]);
            // Unwrap complete frames; keep a partial one for the next read.
            let mut off = 0;
            while pending.len() - off >= 8 {
                let len = u32::from_be_bytes([
                    pending[off + 4],
                    pending[off + 5],
                    pending[off + 6],
                    pending[off + 7],
                ]) as usize;
                if pending.len() - off - 8 < len {
                    break;
                }
                if cw
                    .write_all(&pending[off + 8..off + 8 + len])
                    .await
                    .is_err()
                {
                    return;
                }
                off += 8 + len;
            }
            pending.drain(..off);
        }
        let _ = cw.flush().await;
        let _ = cw.shutdown().await;
    };
    let detach = opts.detach_keys.clone();
    let want_stdin = opts.stdin;
    let inp = async move {
        let mut buf = vec![0u8; 8 * 1024];
        let mut matched = 0usize;
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if !want_stdin {
                continue;
            }
            let mut out = Vec::with_capacity(n);
            for &b in &buf[..n] {
                if !detach.is_empty() && b == detach[matched] {
                    matched += 1;
                    if matched == detach.len() {
                        return true;
                    }
                    continue;
                }
                if matched > 0 {
                    out.extend_from_slice(&detach[..matched]);
                    matched = 0;
                }
                out.push(b);
            }
            if !out.is_empty() && mw.write_all(&out).await.is_err() {
                break;
            }
        }
        // The client closed its side: stdin EOF for the container.
        let _ = mw.shutdown().await;
        false
    };
    tokio::pin!(out);
    tokio::pin!(inp);
    tokio::select! {
        _ = &mut out => {}
        detached = &mut inp => {
            if !detached {
                out.await;
            }
        }
    }
}

/// Writes an error into a hijacked stream (as stdout, framed unless TTY) and closes it.
pub async fn write_error(upgrade: hyper::upgrade::OnUpgrade, msg: &str, tty: bool) {
    let Ok(u) = upgrade.await else { return };
    let mut io = TokioIo::new(u);
    let text = format!("{msg}\r\n");
    let mut out = Vec::new();
    if !tty {
        out.extend_from_slice(&[1, 0, 0, 0]);
        out.extend_from_slice(&(text.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(text.as_bytes());
    let _ = io.write_all(&out).await;
    let _ = io.shutdown().await;
}
