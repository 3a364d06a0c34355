//! Shared by the image and volume API tests (included with `#[path]`): a Berth API server on a
//! unix socket in a temp dir, the real docker CLI pointed at it, and a loopback registry.
#![allow(dead_code)]

use std::net::TcpListener as StdTcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use tokio::sync::oneshot;

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
    pub engine: std::sync::Arc<berth_engine::Engine>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Daemon {
    pub async fn start() -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg =
            berth_engine::EngineConfig::new(dir.path().join("data"), dir.path().join("exec"));
        // Its own bridge, subnet and NAT table: the engine creates its default network at open,
        // and must not touch berth0 (a real berthd's) or another test's.
        let (bridge, bip) = free_bridge();
        cfg.nft_table = format!("berth_{bridge}");
        cfg.bridge_name = bridge;
        cfg.default_bridge_subnet = bip;
        cfg.default_address_pool = "10.218.0.0/16".into();
        let engine = berth_engine::Engine::open(cfg).await.expect("engine");
        let sock = dir.path().join("berth.sock");
        let listener = tokio::net::UnixListener::bind(&sock).expect("bind");
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(berth_api::serve(
            engine.clone(),
            vec![berth_api::Listener::Unix(listener)],
            async move {
                let _ = rx.await;
            },
        ));
        std::fs::create_dir_all(dir.path().join("docker-config")).expect("config dir");
        Daemon {
            dir,
            sock,
            engine,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Runs the docker CLI against this daemon (on a blocking thread: the server runs on
    /// this runtime).
    pub async fn docker(&self, args: &[&str]) -> Output {
        self.docker_stdin(args, None).await
    }

    pub async fn docker_stdin(&self, args: &[&str], stdin: Option<&Path>) -> Output {
        let mut cmd = Command::new("/usr/local/bin/docker");
        cmd.arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .args(args)
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("DOCKER_HOST")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match stdin {
            Some(p) => cmd.stdin(std::fs::File::open(p).expect("stdin file")),
            None => cmd.stdin(Stdio::null()),
        };
        tokio::task::spawn_blocking(move || cmd.output().expect("run docker"))
            .await
            .expect("docker task")
    }

    /// Runs docker and insists it succeeded; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args).await;
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A raw request with curl (to see the exact bytes dockerd would send).
    pub async fn curl(&self, args: &[&str]) -> (String, String) {
        let mut cmd = Command::new("curl");
        cmd.arg("-sS")
            .arg("--unix-socket")
            .arg(&self.sock)
            .arg("-w")
            .arg("\n%{http_code}")
            .args(args);
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("run curl"))
            .await
            .expect("curl task");
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = s.rsplit_once('\n').unwrap_or(("", ""));
        (body.to_string(), code.to_string())
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    pub async fn load_busybox(&self) {
        let out = self
            .ok(&["load", "-i", busybox_tar().to_str().unwrap()])
            .await;
        assert!(out.contains("Loaded image: busybox:latest"), "{out}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let bridge = self.engine.config.bridge_name.clone();
        let table = self.engine.config.nft_table.clone();
        let _ = Command::new("ip")
            .args(["link", "del", &bridge])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &table])
            .stderr(Stdio::null())
            .status();
    }
}

/// A bridge name and a /24 no host route uses yet, for this test's engine.
fn free_bridge() -> (String, String) {
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let seed = std::process::id() as usize;
    for i in 0..250 {
        let n = (seed * 7 + i) % 250 + 1;
        // /proc/net/route prints destinations little-endian: 10.217.n.0 → 00 n D9 0A.
        let dest = format!("00{n:02X}D90A");
        if !routes
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(dest.as_str()))
        {
            return (
                format!("ba{}x{n}", seed % 100000),
                format!("10.217.{n}.1/24"),
            );
        }
    }
    panic!("no free 10.217.x.0/24 for a test bridge");
}

pub fn anchors() -> PathBuf {
    PathBuf::from(
        std::env::var("BERTH_ANCHOR_IMAGES").unwrap_or_else(|_| "/tmp/anchors-images".into()),
    )
}

pub fn busybox_tar() -> PathBuf {
    anchors().join("busybox-docker.tar")
}

/// A `docker-registry` (distribution 2.x) on 127.0.0.1, killed and cleaned up on drop.
pub struct Registry {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = StdTcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("storage").display()
        );
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, config).expect("registry config");
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let reg = Registry {
            child,
            addr: addr.clone(),
            _dir: dir,
        };
        // Wait until it accepts connections (bounded: a registry that never comes up fails
        // the test rather than hanging it).
        for _ in 0..200 {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return reg;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("docker-registry did not start on {addr}");
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
