//! The userland proxy (Docker's docker-proxy, in-process): a listener on the published
//! host address that relays to the container, so that connections to 127.0.0.1:PORT,
//! which DNAT cannot reach, work too. Holding the listening socket also reserves the port.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

use crate::error::{NetError, Result};
use crate::types::{PortBinding, Proto};

/// How long a UDP flow without traffic keeps its relay socket.
const UDP_IDLE: Duration = Duration::from_secs(60);

/// A running proxy; dropping it closes the listener and every relayed connection.
#[derive(Debug)]
pub(crate) struct Proxy {
    pub binding: PortBinding,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn bind_err(pb: &PortBinding, e: std::io::Error) -> NetError {
    let addr = format!("{}:{}", pb.host_ip, pb.host_port);
    if e.kind() == ErrorKind::AddrInUse {
        NetError::PortInUse {
            addr,
            proto: pb.proto.as_str(),
        }
    } else {
        NetError::PortBind {
            addr,
            proto: pb.proto.as_str(),
            source: e,
        }
    }
}

/// Binds the host side of `pb` (port 0 picks a free port) and starts relaying to
/// `container_ip:pb.container_port`. The returned binding carries the actual port.
pub(crate) async fn start(pb: PortBinding, container_ip: Ipv4Addr) -> Result<Proxy> {
    let target = SocketAddrV4::new(container_ip, pb.container_port);
    let local = SocketAddrV4::new(pb.host_ip, pb.host_port);
    match pb.proto {
        Proto::Tcp => {
            let listener = TcpListener::bind(local)
                .await
                .map_err(|e| bind_err(&pb, e))?;
            let port = listener.local_addr().map_err(|e| bind_err(&pb, e))?.port();
            Ok(Proxy {
                binding: PortBinding {
                    host_port: port,
                    ..pb
                },
                task: tokio::spawn(tcp_loop(listener, target)),
            })
        }
        Proto::Udp => {
            let socket = UdpSocket::bind(local).await.map_err(|e| bind_err(&pb, e))?;
            let port = socket.local_addr().map_err(|e| bind_err(&pb, e))?.port();
            Ok(Proxy {
                binding: PortBinding {
                    host_port: port,
                    ..pb
                },
                task: tokio::spawn(udp_loop(Arc::new(socket), target)),
            })
        }
    }
}

async fn tcp_loop(listener: TcpListener, target: SocketAddrV4) {
    // Owned here so aborting this task also ends every connection it relays.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    conns.spawn(relay_tcp(client, peer, target));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn relay_tcp(mut client: TcpStream, peer: SocketAddr, target: SocketAddrV4) {
    let mut upstream = match TcpStream::connect(target).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(%peer, %target, error = %e, "proxy cannot reach container");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(%peer, %target, error = %e, "proxied connection ended");
    }
}

type Flows = Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>>;

async fn udp_loop(listener: Arc<UdpSocket>, target: SocketAddrV4) {
    let flows: Flows = Arc::default();
    let mut replies = JoinSet::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        tokio::select! {
            got = listener.recv_from(&mut buf) => {
                let (n, client) = match got {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!(error = %e, "udp proxy receive failed");
                        continue;
                    }
                };
                let existing = flows.lock().ok().and_then(|f| f.get(&client).cloned());
                let upstream = match existing {
                    Some(u) => u,
                    None => match open_flow(target).await {
                        Ok(u) => {
                            if let Ok(mut f) = flows.lock() {
                                f.insert(client, u.clone());
                            }
                            replies.spawn(udp_replies(listener.clone(), u.clone(), client, flows.clone()));
                            u
                        }
                        Err(e) => {
                            tracing::debug!(%target, error = %e, "udp proxy cannot open a flow");
                            continue;
                        }
                    },
                };
                let _ = upstream.send(&buf[..n]).await;
            }
            Some(_) = replies.join_next(), if !replies.is_empty() => {}
        }
    }
}

async fn open_flow(target: SocketAddrV4) -> std::io::Result<Arc<UdpSocket>> {
    let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).await?;
    s.connect(target).await?;
    Ok(Arc::new(s))
}

async fn udp_replies(
    listener: Arc<UdpSocket>,
    upstream: Arc<UdpSocket>,
    client: SocketAddr,
    flows: Flows,
) {
    let mut buf = vec![0u8; 65_536];
    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, upstream.recv(&mut buf)).await {
        if listener.send_to(&buf[..n], client).await.is_err() {
            break;
        }
    }
    if let Ok(mut f) = flows.lock() {
        f.remove(&client);
    }
}
