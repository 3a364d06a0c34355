//! Binding, TLS and the connection loop; also the background collector. `start` is what the
//! binary and the tests both use.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tower::Service as _;

use crate::auth::Auth;
use crate::config::{Config, TlsConfig};
use crate::gc::{self, GcOptions};
use crate::metrics::Metrics;
use crate::routes::{router, App};
use crate::storage::{FsStorage, Storage};
use crate::zerocopy::ZeroCopyStream;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("opening storage at {path}: {source}")]
    Storage {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("binding {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error("TLS: {0}")]
    Tls(String),
}

/// A running server. Dropping it does not stop it; call [`ServerHandle::stop`].
pub struct ServerHandle {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    gc_task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// Stops accepting, lets open connections finish for up to `grace`, then aborts them.
    pub async fn stop_with_grace(mut self, grace: Duration) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.gc_task.take() {
            t.abort();
        }
        if tokio::time::timeout(grace, &mut self.task).await.is_err() {
            self.task.abort();
            let _ = self.task.await;
        }
    }

    pub async fn stop(self) {
        self.stop_with_grace(Duration::from_secs(0)).await
    }

    pub fn url(&self) -> String {
        let scheme = if self.app.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }
}

fn tls_acceptor(cfg: &TlsConfig) -> Result<TlsAcceptor, ServeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.cert)
        .map_err(|e| ServeError::Tls(format!("{}: {e}", cfg.cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| ServeError::Tls(format!("{}: {e}", cfg.cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(&cfg.key)
        .map_err(|e| ServeError::Tls(format!("{}: {e}", cfg.key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// Opens storage, builds auth and binds `config.listen`, then serves in the background.
pub async fn start(config: &Config) -> Result<ServerHandle, ServeError> {
    config.validate()?;
    let root = config.root.clone();
    let storage = tokio::task::spawn_blocking(move || FsStorage::open(&root))
        .await
        .map_err(|e| ServeError::Storage {
            path: config.root.clone(),
            source: std::io::Error::other(e),
        })?
        .map_err(|source| ServeError::Storage {
            path: config.root.clone(),
            source,
        })?;
    let auth = Auth::from_config(&config.auth, &config.root)?;
    let acceptor = config.tls.as_ref().map(tls_acceptor).transpose()?;
    let app = Arc::new(App {
        storage: Arc::new(storage),
        auth,
        metrics: Arc::new(Metrics::default()),
        limits: config.limits.clone(),
        tls: acceptor.is_some(),
    });
    let listener = TcpListener::bind(&config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.listen.clone(),
        source,
    })?;
    let pacing = crate::loopback::unpace_listener(&listener, addr);
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, pacing, app.clone(), acceptor, rx));
    let gc_task = (config.gc.interval_secs > 0).then(|| {
        let opts = GcOptions {
            dry_run: false,
            grace: Duration::from_secs(config.gc.grace_secs),
            upload_ttl: Some(Duration::from_secs(config.gc.upload_ttl_secs)),
            delete_untagged: false,
        };
        tokio::spawn(gc_loop(
            app.clone(),
            Duration::from_secs(config.gc.interval_secs),
            opts,
        ))
    });
    tracing::info!(%addr, tls = app.tls, root = %config.root.display(), "registry listening");
    Ok(ServerHandle {
        addr,
        app,
        shutdown: tx,
        task,
        gc_task,
    })
}

async fn gc_loop(app: Arc<App>, every: Duration, opts: GcOptions) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let storage: &dyn Storage = app.storage.as_ref();
        match gc::collect(storage, &opts).await {
            Ok(r) => {
                app.metrics
                    .gc_done(r.blobs_deleted.len() as u64, r.bytes_freed);
                tracing::info!(
                    deleted = r.blobs_deleted.len(),
                    bytes = r.bytes_freed,
                    uploads = r.uploads_removed,
                    "online garbage collection"
                );
            }
            Err(e) => tracing::error!(error = %e, "garbage collection failed"),
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    pacing: crate::loopback::Pacing,
    app: Arc<App>,
    acceptor: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let service = router(app);
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        pacing.accepted(&stream, peer);
        // Plain connections get sendfile for blob bodies; TLS needs the bytes in user space.
        let (conn, files) = match acceptor.clone() {
            None => {
                let (io, files) = ZeroCopyStream::new(stream);
                (Ok(io), Some(files))
            }
            Some(acc) => (Err((stream, acc)), None),
        };
        // Each request learns its peer address for the access log.
        let router = service.clone();
        let svc = TowerToHyperService::new(tower::service_fn(
            move |mut req: http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                if let Some(files) = &files {
                    req.extensions_mut().insert(files.clone());
                }
                let mut router = router.clone();
                async move { router.call(req).await }
            },
        ));
        conns.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            // Small read buffers keep memory flat with many uploads streaming at once.
            builder.max_buf_size(64 * 1024);
            let result = match conn {
                // Queued (vectored) writes hand body frames to the stream unflattened, which
                // is how it finds the sendfile stand-ins.
                Ok(io) => {
                    builder
                        .writev(true)
                        .serve_connection(TokioIo::new(io), svc)
                        .await
                }
                Err((stream, acc)) => match acc.accept(stream).await {
                    Ok(tls) => builder.serve_connection(TokioIo::new(tls), svc).await,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                },
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with error");
            }
        });
    }
    // Let in-flight requests end; the handle aborts this task if they take too long.
    while conns.join_next().await.is_some() {}
}
