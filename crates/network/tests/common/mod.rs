//! Test harness: every test runs in a private network namespace standing in for the host
//! (bridges, nft table, proxies and DNS live there and vanish with it, even on panic), and
//! container namespaces are pinned in a temp dir that guards unmount on drop.
#![allow(dead_code)]

use std::future::Future;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_network::{create_netns, in_netns_blocking, remove_netns, NetConfig};

/// Runs `body` on a thread whose network namespace is new, with a tokio runtime whose
/// threads all start there too.
pub fn in_sandbox<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let res = std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare netns");
        run(&["ip", "link", "set", "lo", "up"]);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(body());
    })
    .join();
    if let Err(panic) = res {
        std::panic::resume_unwind(panic);
    }
}

/// Runs a command (in the calling thread's namespace) and returns stdout; panics on failure.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", name])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A config with names of its own, state in `dir`.
pub fn config(dir: &Path, tag: &str, octet: u8) -> NetConfig {
    let mut cfg = NetConfig::new(dir.join("state"));
    cfg.default_bridge = format!("bt{tag}0");
    cfg.default_bridge_cidr = format!("10.213.{octet}.1/24").parse().unwrap();
    cfg.default_pool = format!("10.214.{octet}.0/24").parse().unwrap();
    cfg.pool_prefix = 26;
    cfg.nft_table = format!("berth_t{tag}");
    cfg
}

/// A pinned container namespace, unpinned on drop.
pub struct Netns {
    pub path: PathBuf,
}

impl Netns {
    pub async fn new(dir: &Path, name: &str) -> Netns {
        let path = dir.join(name);
        create_netns(&path).await.expect("create netns");
        Netns { path }
    }

    /// A TCP listener inside the namespace that answers every connection with `reply`.
    pub fn serve_tcp(&self, port: u16, reply: &'static str) -> SocketAddr {
        let listener = in_netns_blocking(&self.path, move || TcpListener::bind(("0.0.0.0", port)))
            .unwrap()
            .unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let mut buf = [0u8; 64];
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let n = conn.read(&mut buf).unwrap_or(0);
                let _ = conn.write_all(
                    format!("{reply}:{}", String::from_utf8_lossy(&buf[..n])).as_bytes(),
                );
            }
        });
        addr
    }

    /// A TCP listener inside the namespace that answers with the address of the peer it
    /// sees (to tell masqueraded connections from direct ones).
    pub fn serve_tcp_peer(&self, port: u16) {
        let listener = in_netns_blocking(&self.path, move || TcpListener::bind(("0.0.0.0", port)))
            .unwrap()
            .unwrap();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let peer = conn
                    .peer_addr()
                    .map(|p| p.ip().to_string())
                    .unwrap_or_default();
                let _ = conn.write_all(peer.as_bytes());
            }
        });
    }

    /// Runs a command inside the namespace and returns its stdout; panics on failure.
    pub fn run(&self, args: &'static [&'static str]) -> String {
        in_netns_blocking(&self.path, move || run(args)).unwrap()
    }

    /// A UDP echo server inside the namespace.
    pub fn serve_udp_echo(&self, port: u16) {
        let sock = in_netns_blocking(&self.path, move || UdpSocket::bind(("0.0.0.0", port)))
            .unwrap()
            .unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, peer)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(&buf[..n], peer);
            }
        });
    }

    /// Connects from inside this namespace, sends `msg`, returns the reply.
    pub fn tcp_request(&self, to: SocketAddrV4, msg: &str) -> std::io::Result<String> {
        let msg = msg.to_string();
        in_netns_blocking(&self.path, move || tcp_request(to, &msg)).unwrap()
    }

    /// A UDP socket bound inside this namespace.
    pub fn udp_socket(&self) -> UdpSocket {
        in_netns_blocking(&self.path, || UdpSocket::bind("0.0.0.0:0"))
            .unwrap()
            .unwrap()
    }

    /// A TCP connection to `to` made from inside this namespace.
    pub fn tcp_connect(&self, to: SocketAddrV4) -> TcpStream {
        in_netns_blocking(&self.path, move || {
            TcpStream::connect_timeout(&to.into(), Duration::from_secs(2))
        })
        .unwrap()
        .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = remove_netns(&self.path);
    }
}

pub fn tcp_request(to: SocketAddrV4, msg: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&to.into(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(msg.as_bytes())?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

pub fn ip4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// Asserts that no mount of `dir` or below is left.
pub fn assert_no_mounts_under(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let d = dir.to_string_lossy();
    assert!(
        !mounts.lines().any(|l| l
            .split(' ')
            .nth(4)
            .is_some_and(|m| m.starts_with(d.as_ref()))),
        "mounts left under {d}"
    );
}
