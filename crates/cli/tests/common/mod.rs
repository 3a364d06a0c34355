//! Test helpers: run `berth` (and docker's CLI, for comparison) against one
//! Engine API daemon chosen by `BERTH_TEST_HOST` (e.g. the anchors' dockerd
//! at unix:///run/docker-anchor.sock). Without it, each test starts a private
//! berthd (binaries next to the test executable, or in `BERTH_BIN_DIR`, e.g.
//! target/dist from scripts/build-release.sh) with its own bridge, and stops
//! it at the end.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const DEFAULT_HOST: &str = "unix:///run/docker-anchor.sock";
pub const DOCKER: &str = "/usr/local/bin/docker";

pub struct Daemon {
    pub host: String,
    pub berth: PathBuf,
    private: Option<PrivateDaemon>,
}

/// A berthd started for one test.
struct PrivateDaemon {
    child: std::process::Child,
    dir: tempfile::TempDir,
    bridge: String,
}

/// The daemon under test, or `None` (with a message) when its socket is absent.
pub fn daemon() -> Option<Daemon> {
    let Ok(host) = std::env::var("BERTH_TEST_HOST") else {
        return Some(start_berthd());
    };
    if let Some(p) = host.strip_prefix("unix://") {
        if !Path::new(p).exists() {
            eprintln!("SKIP: no daemon socket at {p} (start /work/shared/anchors/start-peers.sh or unset BERTH_TEST_HOST)");
            return None;
        }
    }
    Some(Daemon {
        host,
        berth: berth_bin(),
        private: None,
    })
}

/// A /24 for the private daemon's default bridge that no route of the host uses yet.
fn free_bridge_subnet() -> (String, String) {
    // Tests of one process run in parallel threads, and a daemon makes its bridge (and its
    // route) only once it runs: remember what was handed out.
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<usize>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let seed = std::process::id() as usize;
    for i in 0..250 {
        let n = (seed * 7 + i) % 250 + 1;
        // /proc/net/route prints the destination little-endian: 10.211.n.0 → 00 n D3 0A.
        let dest = format!("00{n:02X}D30A");
        let taken = routes
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(dest.as_str()));
        let name = format!("bt{}x{n}", seed % 100000);
        if !taken && !given.contains(&n) && !Path::new("/sys/class/net").join(&name).exists() {
            given.insert(n);
            return (name, format!("10.211.{n}.1/24"));
        }
    }
    panic!("no free 10.211.x.0/24 for a test bridge");
}

fn start_berthd() -> Daemon {
    let dir = tempfile::Builder::new()
        .prefix("bc")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let bin = berth_bin();
    let bindir = bin.parent().expect("bin dir").to_path_buf();
    let sock = dir.path().join("b.sock");
    let (bridge, bip) = free_bridge_subnet();
    let log = std::fs::File::create(dir.path().join("berthd.log")).expect("log");
    let child = Command::new(bindir.join("berthd"))
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .arg("--data-root")
        .arg(dir.path().join("data"))
        .arg("--exec-root")
        .arg(dir.path().join("e"))
        .arg("--pidfile")
        .arg(dir.path().join("pid"))
        .args([
            "--config-file",
            "/nonexistent",
            "--bridge",
            &bridge,
            "--bip",
            &bip,
        ])
        .args(["--default-address-pool", "10.212.0.0/16"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start berthd (build the workspace: cargo build --workspace)");
    let d = Daemon {
        host: format!("unix://{}", sock.display()),
        berth: bin,
        private: Some(PrivateDaemon { child, dir, bridge }),
    };
    let up = eventually(100, || d.berth(&["version"]).code == 0);
    assert!(up, "berthd did not come up: {}", d.berthd_log());
    let images =
        std::env::var("BERTH_ANCHOR_IMAGES").unwrap_or_else(|_| "/tmp/anchors-images".into());
    d.ok(&["load", "-q", "-i", &format!("{images}/busybox-docker.tar")]);
    d
}

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        // berthd takes its exec-root tmpfs away when it stops cleanly; make sure.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path().join("e"))
            .stderr(Stdio::null())
            .status();
        // The default bridge and its NAT table belong to this daemon only.
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        let table: String = self
            .bridge
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &format!("berth_{table}")])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.private.is_none() {
            return;
        }
        // Containers outlive berthd by design: remove them before stopping it.
        let ids = self.berth(&["ps", "-aq"]).stdout;
        for id in ids.split_whitespace() {
            let _ = self.berth(&["rm", "-f", "-v", id]);
        }
        let nets = self
            .berth(&["network", "ls", "-q", "--filter", "type=custom"])
            .stdout;
        for n in nets.split_whitespace() {
            let _ = self.berth(&["network", "rm", n]);
        }
        self.private.take();
    }
}

impl Daemon {
    pub fn berthd_log(&self) -> String {
        match &self.private {
            Some(p) => std::fs::read_to_string(p.dir.path().join("berthd.log")).unwrap_or_default(),
            None => String::new(),
        }
    }
}

/// `berth` lives in `BERTH_BIN_DIR` when set, else next to the test executable's
/// `deps/` directory.
pub fn berth_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("BERTH_BIN_DIR") {
        return PathBuf::from(dir).join("berth");
    }
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(|d| {
            if d.ends_with("deps") {
                d.parent()
            } else {
                Some(d)
            }
        })
        .expect("target dir");
    dir.join("berth")
}

pub fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "berth-cli-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Daemon {
    pub fn berth_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.berth);
        c.arg("-H").arg(&self.host).args(args);
        c.env_remove("DOCKER_HOST").env_remove("BERTH_HOST");
        c.stdin(Stdio::null());
        c
    }

    pub fn berth(&self, args: &[&str]) -> Run {
        self.berth_cmd(args).output().expect("run berth").into()
    }

    /// Runs berth and insists on success.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.berth(args);
        assert_eq!(r.code, 0, "berth {args:?} failed: {}{}", r.stdout, r.stderr);
        r.stdout
    }

    pub fn docker(&self, args: &[&str]) -> Run {
        Command::new(DOCKER)
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
            .into()
    }

    pub fn has_docker_cli(&self) -> bool {
        Path::new(DOCKER).exists()
    }

    /// Removes the container (and its anonymous volumes) when dropped.
    pub fn guard(&self, name: &str) -> Guard {
        Guard {
            host: self.host.clone(),
            berth: self.berth.clone(),
            kind: Kind::Container,
            name: name.to_string(),
        }
    }

    pub fn image_guard(&self, name: &str) -> Guard {
        Guard {
            host: self.host.clone(),
            berth: self.berth.clone(),
            kind: Kind::Image,
            name: name.to_string(),
        }
    }
}

enum Kind {
    Container,
    Image,
}

pub struct Guard {
    host: String,
    berth: PathBuf,
    kind: Kind,
    name: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let args: &[&str] = match self.kind {
            Kind::Container => &["rm", "-f", "-v"],
            Kind::Image => &["rmi", "-f"],
        };
        let _ = Command::new(&self.berth)
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .arg(&self.name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Polls `f` until it returns true; gives up (false) after `tries` attempts.
pub fn eventually(tries: usize, mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..tries {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    false
}
