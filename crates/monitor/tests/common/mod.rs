//! Test support: busybox bundles copied from the offline anchor image, a
//! private runtime root, monitor configs, and a guard that removes every
//! container and monitor a test made, also when it fails.
#![allow(dead_code)]

use std::cell::RefCell;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use berth_monitor::{protocol, Kind, MonitorConfig};
use serde_json::{json, Value};

pub const MONITOR: &str = env!("CARGO_BIN_EXE_berth-monitor");

static SEQ: AtomicU32 = AtomicU32::new(0);

/// berth-runtime next to the test executable (`cargo nextest run --workspace`
/// builds every binary), or $BERTH_RUNTIME.
pub fn runtime_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_RUNTIME") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("berth-runtime");
    assert!(
        bin.exists(),
        "{} missing: cargo build -p berth-runtime-cli (or set BERTH_RUNTIME)",
        bin.display()
    );
    bin
}

fn anchor_rootfs() -> PathBuf {
    let base = std::env::var_os("BERTH_ANCHOR_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/anchors-images"));
    let rootfs = base.join("busybox-bundle/rootfs");
    assert!(
        rootfs.join("bin/busybox").exists(),
        "{} missing: the busybox anchor image is needed",
        rootfs.display()
    );
    rootfs
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    ids: RefCell<Vec<String>>,
    run_dirs: RefCell<Vec<PathBuf>>,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("berth-monitor-test")
            .tempdir()
            .expect("tempdir");
        let root = dir.path().join("runtime-root");
        Env {
            dir,
            root,
            ids: Default::default(),
            run_dirs: Default::default(),
        }
    }

    /// A unique container id, deleted by Drop.
    pub fn id(&self, name: &str) -> String {
        let id = format!(
            "mon-{name}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// A bundle running `args`, from `berth-runtime spec` with a copy of the
    /// busybox rootfs.
    pub fn bundle(&self, args: &[&str], terminal: bool) -> PathBuf {
        let path = self
            .dir
            .path()
            .join(format!("bundle{}", SEQ.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&path).unwrap();
        let st = Command::new("cp")
            .arg("-a")
            .arg(anchor_rootfs())
            .arg(path.join("rootfs"))
            .status()
            .expect("cp");
        assert!(st.success(), "cp -a rootfs");
        let out = Command::new(runtime_bin())
            .args(["spec", "--bundle"])
            .arg(&path)
            .output()
            .expect("berth-runtime spec");
        assert!(
            out.status.success(),
            "spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cfg_path = path.join("config.json");
        let mut config: Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
        config["process"]["args"] = json!(args);
        config["process"]["terminal"] = json!(terminal);
        config["root"] = json!({"path": "rootfs"});
        std::fs::write(&cfg_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        path
    }

    /// A container-kind config with a run dir of its own.
    pub fn container_config(&self, id: &str, bundle: &Path) -> MonitorConfig {
        let run_dir = self.run_dir(id);
        MonitorConfig {
            kind: Kind::Container,
            id: id.to_string(),
            exec_id: None,
            runtime: runtime_bin(),
            runtime_root: self.root.clone(),
            runtime_args: vec![],
            bundle: Some(bundle.to_path_buf()),
            process_json: None,
            tty: false,
            open_stdin: false,
            stdin_once: false,
            log_path: None,
            log_max_size: None,
            log_max_files: 1,
            run_dir,
            start_fifo: None,
            start_at_once: false,
            expect_attaches: 0,
        }
    }

    /// An exec-kind config running `args` inside container `id`.
    pub fn exec_config(&self, id: &str, args: &[&str], tty: bool) -> MonitorConfig {
        let exec_id = format!("exec{}", SEQ.fetch_add(1, Ordering::Relaxed));
        let run_dir = self.run_dir(&format!("{id}-{exec_id}"));
        let process = json!({
            "terminal": tty,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
        });
        let process_json = self.dir.path().join(format!("{exec_id}-process.json"));
        std::fs::write(&process_json, serde_json::to_vec(&process).unwrap()).unwrap();
        MonitorConfig {
            kind: Kind::Exec,
            id: id.to_string(),
            exec_id: Some(exec_id),
            runtime: runtime_bin(),
            runtime_root: self.root.clone(),
            runtime_args: vec![],
            bundle: None,
            process_json: Some(process_json),
            tty,
            open_stdin: false,
            stdin_once: false,
            log_path: None,
            log_max_size: None,
            log_max_files: 1,
            run_dir,
            start_fifo: None,
            start_at_once: false,
            expect_attaches: 0,
        }
    }

    fn run_dir(&self, name: &str) -> PathBuf {
        let run_dir = self.dir.path().join("run").join(name);
        self.run_dirs.borrow_mut().push(run_dir.clone());
        run_dir
    }

    pub fn write_config(&self, cfg: &MonitorConfig) -> PathBuf {
        let path = self.dir.path().join(format!(
            "monitor{}.json",
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, serde_json::to_vec_pretty(cfg).unwrap()).unwrap();
        path
    }

    pub fn spawn(&self, cfg: &MonitorConfig) -> Result<berth_monitor::Ready, berth_monitor::Error> {
        berth_monitor::spawn(&self.write_config(cfg), Path::new(MONITOR))
    }

    pub fn rt(&self) -> Command {
        let mut c = Command::new(runtime_bin());
        c.arg("--root").arg(&self.root);
        c.stdin(Stdio::null());
        c
    }

    /// Container ids the runtime still knows.
    pub fn runtime_ids(&self) -> Vec<String> {
        let out = self.rt().args(["list", "-q"]).output().expect("list");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = self
                .rt()
                .args(["delete", "--force", id])
                .stderr(Stdio::null())
                .status();
        }
        // A monitor whose process never started (a failed test) would wait
        // forever: kill it, if that pid still is a monitor.
        for dir in self.run_dirs.borrow().iter() {
            let Ok(text) = std::fs::read_to_string(dir.join("monitor.pid")) else {
                continue;
            };
            let Ok(pid) = text.trim().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("berth-monitor") {
                // SAFETY: kill(2) on a pid we checked is one of our monitors.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// Reads every frame until the monitor closes the connection:
/// (stdout bytes, stderr bytes).
pub fn read_all_frames(sock: &mut UnixStream) -> (Vec<u8>, Vec<u8>) {
    // A guard against a hang, not a timing assertion.
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some((stream, data)) = protocol::read_frame(sock).expect("read frame") {
        match stream {
            protocol::STDOUT => out.extend(data),
            protocol::STDERR => err.extend(data),
            s => panic!("unexpected stream {s}"),
        }
    }
    (out, err)
}

pub fn is_alive(pid: i32) -> bool {
    // Zombies count as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit(')').next().unwrap_or("").split_whitespace().next();
            state != Some("Z")
        })
        .unwrap_or(false)
}

/// Waits until `pid` has gone away (the monitor exits right after answering
/// waits); bounded, to fail rather than hang.
pub fn wait_gone(pid: i32) {
    for _ in 0..600 {
        if !is_alive(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("process {pid} did not exit");
}

pub fn read_to_string(mut r: impl Read) -> String {
    let mut s = String::new();
    r.read_to_string(&mut s).unwrap();
    s
}
