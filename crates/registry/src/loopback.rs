//! Congestion control for connections from this host.
//!
//! BBR paces every packet to its estimate of the path's bandwidth, with an hrtimer when no
//! `fq` qdisc does it. A loopback path has no link to model, no queue and no loss, so the
//! pacing only adds timer work and wakeups on both ends: on a host whose default is BBR,
//! a blob pull over loopback ran at ~2.9 GB/s with BBR and ~7.8 GB/s with cubic or reno.
//! Connections from other hosts keep the host's choice (see [`Pacing`]).

use rustix::net::sockopt;
use std::net::SocketAddr;
use std::os::fd::AsFd;

/// Loss-based algorithms, which never pace on their own; reno is last because the kernel
/// allows it to every process.
const UNPACED: [&str; 2] = ["cubic", "reno"];

/// What the accept loop does to each connection's algorithm, decided once per listener.
///
/// BBR marks a socket as needing pacing when it starts, at the end of the handshake, and
/// the mark stays after a switch to another algorithm; a connection inherits its listener's
/// algorithm before that. So the listener itself is made unpaced when it can be reached from
/// this host, and a listener on every address gives peers on other hosts the host's
/// algorithm back right after accept, before any data moves.
#[derive(Debug, Default)]
pub struct Pacing {
    /// The host's algorithm, for peers on other hosts of an unpaced wildcard listener.
    remote: Option<String>,
    /// The listener hands out unpaced connections to loopback peers.
    listener_unpaced: bool,
}

/// Sets up `sock`, listening on `local`, as described on [`Pacing`].
pub fn unpace_listener(sock: &impl AsFd, local: SocketAddr) -> Pacing {
    let ip = local.ip().to_canonical();
    if !ip.is_loopback() && !ip.is_unspecified() {
        return Pacing::default();
    }
    let Some(host) = unpace(sock) else {
        return Pacing::default();
    };
    Pacing {
        remote: ip.is_unspecified().then_some(host),
        listener_unpaced: true,
    }
}

impl Pacing {
    /// Gives the connection `sock` from `peer` its algorithm. Best effort.
    pub fn accepted(&self, sock: &impl AsFd, peer: SocketAddr) {
        if peer.ip().to_canonical().is_loopback() {
            if !self.listener_unpaced {
                // Late: the pacing mark stays, but the pacing rate then follows the new
                // algorithm's window, which still about halves BBR's cost.
                unpace(sock);
            }
        } else if let Some(host) = &self.remote {
            if let Err(e) = sockopt::set_tcp_congestion(sock, host) {
                tracing::warn!(error = %e, "restoring the host's congestion control failed");
            }
        }
    }
}

/// Moves `sock` off a pacing algorithm (BBR); returns the one it had, or None when it kept
/// it (not pacing, or no unpaced one allowed). Best effort: a failure leaves it as it was.
fn unpace(sock: &impl AsFd) -> Option<String> {
    let had = match sockopt::tcp_congestion(sock) {
        Ok(name) if name.starts_with("bbr") => name,
        Ok(_) => return None,
        Err(e) => {
            tracing::debug!(error = %e, "reading TCP_CONGESTION failed");
            return None;
        }
    };
    for algo in UNPACED {
        match sockopt::set_tcp_congestion(sock, algo) {
            Ok(()) => return Some(had),
            Err(e) => tracing::debug!(
                algorithm = algo,
                error = %e,
                "setting TCP_CONGESTION failed"
            ),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn name(sock: &impl AsFd) -> String {
        sockopt::tcp_congestion(sock).expect("read TCP_CONGESTION")
    }

    /// A listener on `addr` whose own algorithm is BBR, as on a host whose default is BBR;
    /// None where BBR is not available.
    fn bbr_listener(addr: &str) -> Option<TcpListener> {
        let listener = TcpListener::bind(addr).ok()?;
        sockopt::set_tcp_congestion(&listener, "bbr").ok()?;
        Some(listener)
    }

    fn unpaced(sock: &impl AsFd) -> bool {
        UNPACED.contains(&name(sock).as_str())
    }

    #[test]
    fn a_loopback_listener_hands_out_unpaced_connections() {
        let Some(listener) = bbr_listener("127.0.0.1:0") else {
            eprintln!("skipped: bbr is not available to this process");
            return;
        };
        let addr = listener.local_addr().expect("addr");
        let pacing = unpace_listener(&listener, addr);
        let _client = TcpStream::connect(addr).expect("connect");
        let (conn, peer) = listener.accept().expect("accept");
        pacing.accepted(&conn, peer);
        assert!(unpaced(&conn), "connection got {}", name(&conn));
    }

    /// On a wildcard listener, a loopback peer (also one reaching an IPv6 listener over
    /// IPv4) stays unpaced and a peer on another host gets the host's algorithm back (its
    /// address is given to `accepted`; no packet goes anywhere).
    #[test]
    fn a_wildcard_listener_unpaces_loopback_peers_only() {
        for (any, local) in [("0.0.0.0:0", "127.0.0.1"), ("[::]:0", "127.0.0.1")] {
            let Some(listener) = bbr_listener(any) else {
                eprintln!("skipped {any}: no such listener with bbr here");
                continue;
            };
            let addr = listener.local_addr().expect("addr");
            let pacing = unpace_listener(&listener, addr);
            let _client = TcpStream::connect((local, addr.port())).expect("connect");
            let (conn, peer) = listener.accept().expect("accept");
            pacing.accepted(&conn, peer);
            assert!(unpaced(&conn), "{any}: {}", name(&conn));

            let remote = SocketAddr::from(([192, 0, 2, 1], 40000));
            pacing.accepted(&conn, remote);
            assert_eq!(name(&conn), "bbr", "{any}: a remote peer keeps the host's");
        }
    }

    #[test]
    fn a_late_switch_moves_a_loopback_connection_off_bbr_and_keeps_other_algorithms() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _client = TcpStream::connect(addr).expect("connect");
        let (conn, peer) = listener.accept().expect("accept");
        if sockopt::set_tcp_congestion(&conn, "bbr").is_err() {
            eprintln!("skipped: bbr is not available to this process");
            return;
        }
        let late = Pacing::default();
        late.accepted(&conn, peer);
        assert!(unpaced(&conn), "still {}", name(&conn));

        sockopt::set_tcp_congestion(&conn, "reno").expect("reno is allowed to every process");
        late.accepted(&conn, peer);
        assert_eq!(name(&conn), "reno");
    }
}
