//! Test support: busybox bundles built offline from Debian's busybox-static,
//! a private runtime root per test, and a guard that deletes every container
//! the test made, also when it fails.
#![allow(dead_code)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");
const BUSYBOX: &str = "/bin/busybox";

static SEQ: AtomicU32 = AtomicU32::new(0);

pub struct Env {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    ids: std::cell::RefCell<Vec<String>>,
}

pub struct Bundle {
    pub path: PathBuf,
    pub config: Value,
}

impl Env {
    pub fn new() -> Env {
        assert!(
            Path::new(BUSYBOX).exists(),
            "{BUSYBOX} missing: apt-get install busybox-static (scripts/install-deps.sh)"
        );
        let dir = tempfile::Builder::new()
            .prefix("berth-rt-test")
            .tempdir()
            .expect("tempdir");
        let root = dir.path().join("state");
        Env {
            dir,
            root,
            ids: Default::default(),
        }
    }

    /// A unique container id; remembered so Drop can delete it.
    pub fn id(&self, name: &str) -> String {
        let id = format!(
            "{name}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// A bundle running `args`, with `berth-runtime spec` defaults and no terminal.
    pub fn bundle(&self, args: &[&str]) -> Bundle {
        let path = self
            .dir
            .path()
            .join(format!("bundle{}", SEQ.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&path).unwrap();
        make_rootfs(&path.join("rootfs"));
        let out = Command::new(BIN)
            .args(["spec", "--bundle"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(path.join("config.json")).unwrap()).unwrap();
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        // The rootfs is shared by nothing, but keep the image pristine like
        // a real one: tests that write opt out.
        let b = Bundle { path, config };
        b.save();
        b
    }

    pub fn rt(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--root").arg(&self.root);
        c
    }

    /// Runs berth-runtime with `args` and returns its output.
    pub fn exec(&self, args: &[&str]) -> Output {
        self.rt()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn berth-runtime")
    }

    /// `run` in the foreground; returns (exit code, stdout, stderr).
    pub fn run(&self, b: &Bundle, name: &str) -> (i32, String, String) {
        b.save();
        let id = self.id(name);
        let out = self
            .rt()
            .args(["run", "--bundle"])
            .arg(&b.path)
            .arg(&id)
            .stdin(Stdio::null())
            .output()
            .expect("spawn berth-runtime run");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `run` that must succeed; returns stdout.
    pub fn run_ok(&self, b: &Bundle, name: &str) -> String {
        let (code, out, err) = self.run(b, name);
        assert_eq!(code, 0, "run {name} failed: stdout={out} stderr={err}");
        out
    }

    /// `create` with extra flags; returns (success, stderr). The waiting
    /// init inherits stdio, so it goes to files rather than pipes a reader
    /// would wait on until the container exits.
    pub fn try_create(&self, b: &Bundle, id: &str, extra: &[&str]) -> (bool, String) {
        b.save();
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let err_path = self.dir.path().join(format!("create{n}.err"));
        let out_path = self.dir.path().join(format!("create{n}.out"));
        let status = self
            .rt()
            .arg("create")
            .args(extra)
            .arg("--bundle")
            .arg(&b.path)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .status()
            .expect("spawn berth-runtime create");
        (
            status.success(),
            std::fs::read_to_string(&err_path).unwrap_or_default(),
        )
    }

    pub fn create(&self, b: &Bundle, id: &str) {
        let (ok, err) = self.try_create(b, id, &[]);
        assert!(ok, "create: {err}");
    }

    pub fn state(&self, id: &str) -> Value {
        let out = self.exec(&["state", id]);
        assert!(
            out.status.success(),
            "state: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("state is JSON")
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
    }
}

impl Bundle {
    pub fn save(&self) {
        std::fs::write(
            self.path.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }
    pub fn rootfs(&self) -> PathBuf {
        self.path.join("rootfs")
    }
}

/// busybox, its applets as symlinks, and the few /etc files tests need.
pub fn make_rootfs(dir: &Path) {
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc",
        "proc",
        "sys",
        "dev",
        "tmp",
        "root",
        "home/user",
    ] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, dir.join("bin/busybox")).unwrap();
    // Whatever mode the host's copy has, the image's is the usual one.
    std::fs::set_permissions(
        dir.join("bin/busybox"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let list = Command::new(BUSYBOX).arg("--list-full").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet == "bin/busybox" || applet.is_empty() {
            continue;
        }
        let _ = symlink("/bin/busybox", dir.join(applet));
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\ntty:x:5:\nuser:x:1000:\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
}

/// Mount points on the host that lie under `path`.
pub fn host_mounts_under(path: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| Path::new(mp).starts_with(path))
        .map(String::from)
        .collect()
}

/// Host cgroup directories named after a container id.
pub fn host_cgroups_named(id: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for h in rd.flatten() {
            let p = h.path().join(id);
            if p.exists() {
                out.push(p);
            }
        }
    }
    out
}
