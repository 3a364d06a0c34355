//! The container's init on a cgroup v2 host is cloned straight into its
//! cgroup (clone3 with CLONE_INTO_CGROUP). On a hybrid host the runtime runs
//! in a private mount namespace where /sys/fs/cgroup is a fresh cgroup2
//! mount, so it sees a unified layout.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use serde_json::json;

fn is_unified_host() -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some("/sys/fs/cgroup") && l.contains(" - cgroup2 "))
}

/// Where a cgroup2 directory named `name` at the hierarchy root shows on
/// this host.
fn host_v2_dir(name: &str) -> PathBuf {
    if is_unified_host() {
        Path::new("/sys/fs/cgroup").join(name)
    } else {
        Path::new("/sys/fs/cgroup/unified").join(name)
    }
}

struct RemoveCgroup(PathBuf);
impl Drop for RemoveCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn init_is_cloned_into_its_v2_cgroup() {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    if !is_unified_host() && !Path::new("/sys/fs/cgroup/unified").exists() {
        eprintln!("skipped: no cgroup2 hierarchy on this host");
        return;
    }
    let env = Env::new();
    let id = env.id("clone3");
    let name = format!("berth-clone3-{id}");
    let _rm = RemoveCgroup(host_v2_dir(&name));
    let mut b = env.bundle(&["cat", "/proc/self/cgroup"]);
    b.config["linux"]["cgroupsPath"] = json!(format!("/{name}"));
    // Only the v2 hierarchy is visible; the spec's device rules need none.
    b.config["linux"]["resources"] = json!({});
    b.save();

    let run = format!(
        "{bin} --debug --root {root} run --bundle {bundle} {id}",
        bin = BIN,
        root = env.root.display(),
        bundle = b.path.display(),
    );
    let script = if is_unified_host() {
        format!("exec {run}")
    } else {
        format!("umount -l /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec {run}")
    };
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .expect("run unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout={stdout} stderr={stderr}");
    assert!(
        stdout.lines().any(|l| l == format!("0::/{name}")),
        "container's cgroups: {stdout}"
    );
    assert!(
        stderr.contains("into its cgroup"),
        "init was not cloned into its cgroup: {stderr}"
    );
    assert!(
        !stderr.contains("init joined its cgroup"),
        "init was moved as well: {stderr}"
    );
    // run deleted the container, and its cgroup with it.
    assert!(!host_v2_dir(&name).exists(), "cgroup left behind");
}
