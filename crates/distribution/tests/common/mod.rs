//! Shared by the registry tests: a private docker-registry per test, anchors, skopeo.
#![allow(dead_code)]

use berth_distribution::Progress;
use berth_image::Digest;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn require_tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("this test needs `{name}` installed");
}

pub fn anchors() -> PathBuf {
    let dir = PathBuf::from("/tmp/anchors-images");
    if !dir.join("busybox-docker.tar").exists() {
        let st = Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/anchors/make-images.sh"
        ))
        .arg(&dir)
        .status()
        .expect("run make-images.sh");
        assert!(st.success(), "make-images.sh failed");
    }
    dir
}

pub fn busybox_config() -> Digest {
    let txt = fs::read_to_string(anchors().join("DIGESTS.txt")).unwrap();
    let line = txt
        .lines()
        .find(|l| l.starts_with("busybox config"))
        .unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// A private registry; killed and its storage removed on drop.
pub struct Registry {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        Self::start_with("")
    }

    /// Serves TLS with this certificate and key.
    pub fn start_tls(cert: &Path, key: &Path) -> Registry {
        Self::start_with(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ))
    }

    fn start_with(http_extra: &str) -> Registry {
        let bin = require_tool("docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let cfg = dir.path().join("config.yml");
        fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{http_extra}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .args(["serve", cfg.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new(require_tool("skopeo"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn events() -> (Arc<Mutex<Vec<Progress>>>, impl Fn(Progress) + Send + Sync) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l2 = log.clone();
    (log, move |p| l2.lock().unwrap().push(p))
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
