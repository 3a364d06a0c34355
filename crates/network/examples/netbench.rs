//! Measures what container start-up and published ports cost:
//! - create a named netns + connect it to a bridge network (veth, address, route);
//! - request/response round trips through the userland proxy on 127.0.0.1, compared
//!   with the same exchange straight to the container address.
//!
//! Runs entirely inside a private network namespace it creates, as root:
//! `cargo run --release -p berth-network --example netbench`

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use berth_network::{
    create_netns, in_netns_blocking, remove_netns, EndpointRequest, NetConfig, NetworkManager,
    PortBinding,
};

const CONTAINERS: usize = 20;
const ROUND_TRIPS: usize = 2000;
const CONNECTIONS: usize = 200;

fn main() {
    std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare (run as root)");
        let lo = std::process::Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status();
        assert!(lo.is_ok_and(|s| s.success()), "ip link set lo up");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(bench());
    })
    .join()
    .expect("bench thread");
}

/// Unpins the namespaces it holds when dropped, so a failed run leaves no mounts behind.
struct Pinned(Vec<std::path::PathBuf>);

impl Drop for Pinned {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = remove_netns(p);
        }
    }
}

fn stats(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let total: Duration = samples.iter().sum();
    let n = samples.len() as u32;
    println!(
        "{name}: n={n} mean={:?} median={:?} p90={:?} max={:?}",
        total / n,
        samples[samples.len() / 2],
        samples[samples.len() * 9 / 10],
        samples[samples.len() - 1]
    );
}

fn echo_server(listener: TcpListener) {
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let _ = conn.set_nodelay(true);
                let mut buf = [0u8; 64];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
}

fn round_trips(to: SocketAddrV4) -> Vec<Duration> {
    let mut s = TcpStream::connect(to).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let msg = [7u8; 64];
    let mut buf = [0u8; 64];
    (0..ROUND_TRIPS)
        .map(|_| {
            let t = Instant::now();
            s.write_all(&msg).expect("write");
            s.read_exact(&mut buf).expect("read");
            t.elapsed()
        })
        .collect()
}

fn fresh_connections(to: SocketAddrV4) -> Vec<Duration> {
    (0..CONNECTIONS)
        .map(|_| {
            let t = Instant::now();
            let mut s = TcpStream::connect(to).expect("connect");
            s.set_nodelay(true).expect("nodelay");
            s.write_all(b"x").expect("write");
            let mut b = [0u8; 1];
            s.read_exact(&mut b).expect("read");
            t.elapsed()
        })
        .collect()
}

async fn bench() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = NetConfig::new(dir.path().join("state"));
    cfg.default_bridge = "bench0".into();
    cfg.default_bridge_cidr = "10.213.90.1/24".parse().expect("cidr");
    cfg.nft_table = "berth_bench".into();
    let t = Instant::now();
    let mgr = NetworkManager::open(cfg).await.expect("open");
    println!("open (default bridge + nft table): {:?}", t.elapsed());

    let mut setup = Vec::new();
    let mut netns_only = Vec::new();
    let mut teardown = Vec::new();
    let mut pinned = Pinned(Vec::new());
    for i in 0..CONTAINERS {
        let path = dir.path().join(format!("ns{i}"));
        pinned.0.push(path.clone());
        let id = format!("{i:064x}");
        let t = Instant::now();
        create_netns(&path).await.expect("netns");
        netns_only.push(t.elapsed());
        mgr.connect(
            "bridge",
            EndpointRequest {
                container_id: id,
                container_name: format!("c{i}"),
                netns_path: path.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("connect");
        setup.push(t.elapsed());
    }
    stats("create netns", netns_only);
    stats("create netns + connect", setup);

    let server_ns = pinned.0[0].clone();
    let listener = in_netns_blocking(&server_ns, || TcpListener::bind("0.0.0.0:9000"))
        .expect("enter")
        .expect("bind");
    echo_server(listener);
    let published = mgr
        .publish(
            "bridge",
            &format!("{:064x}", 0),
            &[PortBinding::tcp(0, 9000)],
        )
        .await
        .expect("publish");
    let proxy = SocketAddrV4::new(Ipv4Addr::LOCALHOST, published[0].host_port);
    let direct = SocketAddrV4::new(Ipv4Addr::new(10, 213, 90, 2), 9000);
    // The client blocks this thread (the namespace's first), not a runtime worker: the
    // proxy tasks keep the workers.
    let (a, b, c, d) = (
        round_trips(direct),
        round_trips(proxy),
        fresh_connections(direct),
        fresh_connections(proxy),
    );
    stats("64-byte round trip, direct to container", a);
    stats("64-byte round trip, via proxy 127.0.0.1", b);
    stats("connect+1-byte exchange, direct", c);
    stats("connect+1-byte exchange, via proxy", d);

    for (i, path) in pinned.0.iter().enumerate() {
        let t = Instant::now();
        mgr.disconnect("bridge", &format!("{i:064x}"))
            .await
            .expect("disconnect");
        remove_netns(path).expect("remove netns");
        teardown.push(t.elapsed());
    }
    stats("disconnect + remove netns", teardown);
    mgr.purge().await.expect("purge");
}
