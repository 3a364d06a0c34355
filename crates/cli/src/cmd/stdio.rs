//! Carries a hijacked attach/exec connection: stdin up (with detach keys and
//! half-close on EOF), stdout/stderr down (demultiplexed unless a TTY), and
//! terminal resizes.

use std::io::Write;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::client::stream::{Demux, StdStream};
use crate::client::{Client, Hijacked, Query};
use crate::tty::{DetachWatcher, Scan};

pub struct StreamOpts {
    pub tty: bool,
    pub stdin: bool,
    /// Sequence that detaches (checked only with a TTY, as docker does).
    pub detach_keys: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// The container's output ended.
    Eof,
    /// The user typed the detach sequence.
    Detached,
    /// We got SIGTERM or SIGHUP while holding the terminal: let go of it,
    /// leave the container running (docker's client dies the same way).
    Terminated,
}

impl StreamEnd {
    /// The command's result when the stream did not end by itself: detaching
    /// succeeds; a termination signal exits as a signal death would (143).
    pub fn early_result(&self) -> anyhow::Result<()> {
        match self {
            StreamEnd::Terminated => Err(super::Fail::exit(143)),
            _ => Ok(()),
        }
    }
}

pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

pub async fn pump(io: Hijacked, opts: &StreamOpts) -> anyhow::Result<StreamEnd> {
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut stdin_rx = opts.stdin.then(spawn_stdin_reader);
    let mut watcher = (opts.tty && !opts.detach_keys.is_empty())
        .then(|| DetachWatcher::new(opts.detach_keys.clone()));
    let mut demux = Demux::new();
    let mut buf = vec![0u8; 32 * 1024];
    // With a TTY the terminal is in raw mode: a plain kill must still restore it,
    // so termination signals end the stream and unwind through the guard.
    let mut term = if opts.tty {
        Some(termination_signals()?)
    } else {
        None
    };
    loop {
        tokio::select! {
            _ = recv_term(&mut term) => return Ok(StreamEnd::Terminated),
            n = rd.read(&mut buf) => {
                let n = n?;
                if n == 0 {
                    return Ok(StreamEnd::Eof);
                }
                if opts.tty {
                    write_out(StdStream::Stdout, &buf[..n]);
                } else {
                    for (kind, data) in demux.push(&buf[..n]) {
                        write_out(kind, &data);
                    }
                }
            }
            chunk = recv(&mut stdin_rx) => {
                match chunk {
                    Some(data) => {
                        let (fwd, detach) = match watcher.as_mut() {
                            Some(w) => match w.scan(&data) {
                                Scan::Forward(f) => (f, false),
                                Scan::Detach(f) => (f, true),
                            },
                            None => (data, false),
                        };
                        if !fwd.is_empty() {
                            wr.write_all(&fwd).await?;
                            wr.flush().await?;
                        }
                        if detach {
                            return Ok(StreamEnd::Detached);
                        }
                    }
                    None => {
                        // stdin ended: half-close so the container sees EOF, keep reading output
                        stdin_rx = None;
                        let _ = wr.shutdown().await;
                    }
                }
            }
        }
    }
}

fn termination_signals() -> std::io::Result<mpsc::Receiver<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = mpsc::channel(1);
    for kind in [SignalKind::terminate(), SignalKind::hangup()] {
        let mut s = signal(kind)?;
        let tx = tx.clone();
        tokio::spawn(async move {
            if s.recv().await.is_some() {
                let _ = tx.send(()).await;
            }
        });
    }
    Ok(rx)
}

async fn recv_term(rx: &mut Option<mpsc::Receiver<()>>) {
    match rx {
        Some(rx) => {
            if rx.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

async fn recv(rx: &mut Option<mpsc::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn spawn_stdin_reader() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

pub fn write_out(kind: StdStream, data: &[u8]) {
    match kind {
        StdStream::Stderr => {
            let mut e = std::io::stderr().lock();
            let _ = e.write_all(data);
            let _ = e.flush();
        }
        _ => {
            let mut o = std::io::stdout().lock();
            super::exit_on_broken_pipe(o.write_all(data).and_then(|_| o.flush()));
        }
    }
}

/// Sends the terminal size now and on every SIGWINCH, until aborted.
/// `path` is `/containers/{id}/resize` or `/exec/{id}/resize`.
pub fn spawn_resizer(client: Client, path: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let send = |client: Client, path: String| async move {
            if let Some((h, w)) = crate::tty::size() {
                let q = Query::new().set("h", h.to_string()).set("w", w.to_string());
                if let Err(e) = client.post(&path, &q, None).await {
                    tracing::debug!("resize failed: {e}");
                }
            }
        };
        send(client.clone(), path.clone()).await;
        let Ok(mut sig) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        while sig.recv().await.is_some() {
            send(client.clone(), path.clone()).await;
        }
    })
}

/// Forwards SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to the container
/// (docker's `--sig-proxy`), until aborted.
pub fn spawn_sig_proxy(client: Client, id: String) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{signal, SignalKind};
    tokio::spawn(async move {
        let kinds = [
            (SignalKind::interrupt(), "SIGINT"),
            (SignalKind::terminate(), "SIGTERM"),
            (SignalKind::hangup(), "SIGHUP"),
            (SignalKind::quit(), "SIGQUIT"),
            (SignalKind::user_defined1(), "SIGUSR1"),
            (SignalKind::user_defined2(), "SIGUSR2"),
        ];
        let (tx, mut rx) = mpsc::channel::<&'static str>(8);
        for (k, name) in kinds {
            let Ok(mut s) = signal(k) else { continue };
            let tx = tx.clone();
            tokio::spawn(async move {
                while s.recv().await.is_some() {
                    if tx.send(name).await.is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        while let Some(name) = rx.recv().await {
            let q = Query::new().set("signal", name);
            if let Err(e) = client
                .post(&format!("/containers/{id}/kill"), &q, None)
                .await
            {
                tracing::debug!("forwarding {name} failed: {e}");
            }
        }
    })
}
