//! Accepts connections on unix or loopback TCP listeners and serves the Engine API on each with
//! HTTP/1.1 and upgrades (attach and exec hijack the connection).

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::Router;
use berth_engine::Engine;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::{TcpListener, UnixListener};
use tower::ServiceExt;

use crate::routes;

pub enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
}

pub fn router(engine: Arc<Engine>) -> Router {
    routes::all().with_state(AppState { engine })
}

/// Serves until `shutdown` resolves. Each connection runs on its own task.
pub async fn serve(
    engine: Arc<Engine>,
    listeners: Vec<Listener>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let app = router(engine);
    let svc = tower::service_fn(move |req: Request<hyper::body::Incoming>| {
        let app = app.clone();
        async move {
            let req = req.map(Body::new);
            let resp: Response = match crate::version::strip(req) {
                Ok(req) => app.oneshot(req).await.unwrap_or_else(|e| match e {}),
                Err(resp) => *resp,
            };
            Ok::<_, Infallible>(resp)
        }
    });
    let mut tasks = tokio::task::JoinSet::new();
    for l in listeners {
        let svc = svc.clone();
        tasks.spawn(async move {
            loop {
                let io = match &l {
                    Listener::Unix(u) => match u.accept().await {
                        Ok((s, _)) => Conn::Unix(s),
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            continue;
                        }
                    },
                    Listener::Tcp(t) => match t.accept().await {
                        Ok((s, _)) => {
                            let _ = s.set_nodelay(true);
                            Conn::Tcp(s)
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            continue;
                        }
                    },
                };
                let svc = svc.clone();
                tokio::spawn(async move {
                    let hs = TowerToHyperService::new(svc);
                    let builder = hyper::server::conn::http1::Builder::new();
                    let res = match io {
                        Conn::Unix(s) => {
                            builder
                                .serve_connection(TokioIo::new(s), hs)
                                .with_upgrades()
                                .await
                        }
                        Conn::Tcp(s) => {
                            builder
                                .serve_connection(TokioIo::new(s), hs)
                                .with_upgrades()
                                .await
                        }
                    };
                    if let Err(e) = res {
                        tracing::debug!(error = %e, "connection ended");
                    }
                });
            }
        });
    }
    shutdown.await;
    tasks.abort_all();
}

enum Conn {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}
