//! cgroup v2 end to end, detected rather than assumed: this test re-runs itself inside a new
//! mount namespace (via unshare(1)) where the v1 tree at /sys/fs/cgroup is detached and a
//! cgroup2 filesystem is mounted there instead, so the host looks like a pure-v2 machine. On a
//! hybrid host the cgroup2 hierarchy has no controllers, so resource files are absent; the test
//! checks that asking for one gives a typed error, and drives everything else for real.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_cgroups::{devices_bpf, Cgroup, Error, Layout, Mode};
use oci_spec::runtime::LinuxResources;
use serde_json::json;

const INNER: &str = "BERTH_CGROUPS_PRIVATE_NS_INNER";

fn res(v: serde_json::Value) -> LinuxResources {
    serde_json::from_value(v).expect("resources json")
}

#[test]
fn v2_detected_in_private_mount_namespace() {
    if std::env::var_os(INNER).is_some() {
        return inner();
    }
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 || !Path::new("/sys/fs/cgroup/unified").exists() {
        eprintln!("skipped: needs root on a hybrid host");
        return;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let script = format!(
        "umount -l /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec {} --exact v2_detected_in_private_mount_namespace --nocapture --test-threads=1",
        exe.display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env(INNER, "1")
        .stdin(Stdio::null())
        .output()
        .expect("run unshare");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "inner run failed:\n{text}");
    assert!(
        text.contains("inner: done"),
        "inner test did not run:\n{text}"
    );
    for l in text.lines().filter(|l| l.starts_with("inner:")) {
        eprintln!("{l}");
    }
}

fn inner() {
    let layout = Layout::detect().expect("detect");
    assert_eq!(layout.mode, Mode::Unified, "{layout:?}");
    let name = format!("/berth-test-ns-{}", std::process::id());
    let mut cg = Cgroup::for_container(Some(&name), "x").expect("for_container");
    assert_eq!(
        cg.unified_path().unwrap(),
        Path::new("/sys/fs/cgroup").join(&name[1..])
    );
    // Cleans up whatever happens below.
    struct Guard(Cgroup);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill_all();
            let _ = self.0.wait_empty(Duration::from_secs(2));
            let _ = self.0.delete();
        }
    }
    let _g = Guard(cg.clone());

    // No pids controller in this hierarchy: a typed error naming the field, nothing left.
    let e = cg
        .create_with(&res(json!({"pids": {"limit": 10}})))
        .unwrap_err();
    assert!(
        matches!(&e, Error::ControllerUnavailable { field: "linux.resources.pids.limit", controller } if controller == "pids"),
        "{e}"
    );
    assert!(!cg.unified_path().unwrap().exists());

    let t0 = std::time::Instant::now();
    cg.create_with(&res(json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
    ]})))
    .expect("create_with");
    eprintln!("inner: create_with took {:?}", t0.elapsed());
    let fd = cg.open_dir().unwrap();
    assert_eq!(devices_bpf::attached_count(&fd).unwrap(), 1);

    let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
    let pid = child.id() as i32;
    cg.add_pid(pid).unwrap();
    let pc = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(pc.lines().any(|l| l == format!("0::{name}")), "{pc}");
    assert_eq!(cg.pids().unwrap(), vec![pid]);
    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    cg.thaw().unwrap();
    let s = cg.stats().unwrap();
    assert_eq!(s.memory.limit, None);
    // memory.events exists only with the memory controller; without it the watcher says so.
    if let Err(e) = cg.oom_watcher() {
        eprintln!("inner: oom watcher without memory controller: {e}");
    }
    cg.kill_all().unwrap();
    assert!(cg.wait_empty(Duration::from_secs(5)).unwrap());
    child.wait().unwrap();
    drop(fd);
    cg.delete().unwrap();
    assert!(!cg.unified_path().unwrap().exists());
    eprintln!("inner: done");
}
