//! Congestion control for connections from this host.
//!
//! BBR paces every packet to its estimate of the path's bandwidth, with an hrtimer when no
//! `fq` qdisc does it. A loopback path has no link to model, no queue and no loss, so the
//! pacing only adds timer work and wakeups on both ends: on a host whose default is BBR,
//! a blob pull over loopback ran at ~2.9 GB/s with BBR and ~7.8 GB/s with cubic or reno.
//! Connections from other hosts keep the host's choice.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

/// Loss-based algorithms, which never pace on their own; reno is last because the kernel
/// allows it to every process.
const UNPACED: [&[u8]; 2] = [b"cubic", b"reno"];

/// Makes a listener bound to a loopback address hand out connections with an unpaced
/// algorithm. This is the only complete cure: BBR marks a socket as needing pacing when it
/// starts, at the end of the handshake, and that mark stays after a switch to another
/// algorithm. A listener's own choice is inherited by its connections before that.
pub fn unpace_listener(sock: &impl AsRawFd, local: SocketAddr) {
    if local.ip().to_canonical().is_loopback() {
        unpace_fd(sock.as_raw_fd());
    }
}

/// Moves a connection from a loopback peer, accepted by a listener on a wider address, off
/// BBR. Its pacing mark stays, but the pacing rate then follows the new algorithm's window,
/// which still about halves BBR's cost.
pub fn unpace(sock: &impl AsRawFd, peer: SocketAddr) {
    if peer.ip().to_canonical().is_loopback() {
        unpace_fd(sock.as_raw_fd());
    }
}

/// Best effort: a failure leaves the socket as it was.
fn unpace_fd(fd: RawFd) {
    match congestion(fd) {
        Ok(name) if name.starts_with(b"bbr") => {}
        Ok(_) => return,
        Err(e) => {
            tracing::debug!(error = %e, "reading TCP_CONGESTION failed");
            return;
        }
    }
    for algo in UNPACED {
        match set_congestion(fd, algo) {
            Ok(()) => return,
            Err(e) => tracing::debug!(
                algorithm = %String::from_utf8_lossy(algo),
                error = %e,
                "setting TCP_CONGESTION failed"
            ),
        }
    }
}

fn congestion(fd: RawFd) -> io::Result<Vec<u8>> {
    let mut buf = [0u8; 16];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `buf` and updates `len`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let name = &buf[..(len as usize).min(buf.len())];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok(name[..end].to_vec())
}

fn set_congestion(fd: RawFd, algo: &[u8]) -> io::Result<()> {
    // SAFETY: the kernel reads `algo.len()` bytes from a live slice.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            algo.as_ptr().cast(),
            algo.len() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn name(fd: RawFd) -> String {
        String::from_utf8_lossy(&congestion(fd).expect("read TCP_CONGESTION")).into_owned()
    }

    #[test]
    fn a_loopback_listener_hands_out_unpaced_connections() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        if set_congestion(listener.as_raw_fd(), b"bbr").is_err() {
            eprintln!("skipped: bbr is not available to this process");
            return;
        }
        let addr = listener.local_addr().expect("addr");
        unpace_listener(&listener, addr);
        let _client = TcpStream::connect(addr).expect("connect");
        let (conn, _) = listener.accept().expect("accept");
        let now = name(conn.as_raw_fd());
        assert!(UNPACED.contains(&now.as_bytes()), "connection got {now}");
    }

    #[test]
    fn a_loopback_connection_leaves_bbr_and_keeps_other_algorithms() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _client = TcpStream::connect(addr).expect("connect");
        let (conn, peer) = listener.accept().expect("accept");
        let fd = conn.as_raw_fd();
        if set_congestion(fd, b"bbr").is_err() {
            eprintln!("skipped: bbr is not available to this process");
            return;
        }
        unpace(&conn, peer);
        let now = name(fd);
        assert!(UNPACED.contains(&now.as_bytes()), "still {now}");

        set_congestion(fd, b"reno").expect("reno is allowed to every process");
        unpace(&conn, peer);
        assert_eq!(name(fd), "reno");
    }

    #[test]
    fn an_ipv4_peer_of_a_dual_stack_listener_counts_as_loopback() {
        let Ok(listener) = TcpListener::bind("[::]:0") else {
            eprintln!("skipped: no IPv6 here");
            return;
        };
        let port = listener.local_addr().expect("addr").port();
        let _client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (conn, peer) = listener.accept().expect("accept");
        assert!(peer.is_ipv6(), "{peer}");
        if set_congestion(conn.as_raw_fd(), b"bbr").is_err() {
            eprintln!("skipped: bbr is not available to this process");
            return;
        }
        unpace(&conn, peer);
        let now = name(conn.as_raw_fd());
        assert!(UNPACED.contains(&now.as_bytes()), "still {now}");
    }
}
