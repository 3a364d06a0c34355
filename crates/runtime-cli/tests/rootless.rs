//! Rootless containers: a user without root writes `spec --rootless` and runs
//! it. Each test makes a throwaway user (removed again, with its /etc/subuid
//! and /etc/subgid lines, by a guard) and runs berth-runtime as that user
//! through runuser.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use common::{make_rootfs, BIN};
use serde_json::{json, Value};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Why a user namespace cannot be had without root here, if it cannot.
fn userns_unavailable() -> Option<String> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return Some("needs root to create a throwaway user".into());
    }
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Some("user.max_user_namespaces is 0".into());
    }
    if let Some(v) = read("/proc/sys/kernel/unprivileged_userns_clone") {
        if v != "1" {
            return Some(format!("kernel.unprivileged_userns_clone is {v}"));
        }
    }
    if let Some(v) = read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") {
        if v != "0" {
            return Some("AppArmor restricts unprivileged user namespaces".into());
        }
    }
    None
}

macro_rules! require_userns {
    () => {
        if let Some(why) = userns_unavailable() {
            eprintln!("skipped: rootless user namespaces unavailable: {why}");
            return;
        }
    };
}

/// A user made for one test, and a home for its bundles and state: removed
/// on drop, with everything the user's containers left.
struct User {
    name: String,
    uid: u32,
    gid: u32,
    dir: tempfile::TempDir,
    bin: PathBuf,
    ids: std::cell::RefCell<Vec<String>>,
}

impl User {
    fn new() -> User {
        let name = format!(
            "brl{}x{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let st = Command::new("useradd")
            .args(["--no-create-home", "--user-group", "--shell", "/bin/sh"])
            .arg(&name)
            .status()
            .expect("run useradd");
        assert!(st.success(), "useradd {name} failed");
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").arg(flag).arg(&name).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        let dir = tempfile::Builder::new()
            .prefix("berth-rootless")
            .tempdir()
            .expect("tempdir");
        // From here on the guard removes the user.
        let u = User {
            uid: id("-u"),
            gid: id("-g"),
            name,
            bin: dir.path().join("berth-runtime"),
            dir,
            ids: Default::default(),
        };
        // The build directory need not be reachable by the user.
        std::fs::copy(BIN, &u.bin).unwrap();
        std::fs::set_permissions(&u.bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        u.chown(u.dir.path());
        u
    }

    fn chown(&self, p: &Path) {
        let st = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", self.uid, self.gid))
            .arg(p)
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Gives the user `count` subordinate uids and gids from `start`.
    fn add_subids(&self, start: u32, count: u32) {
        let range = format!("{start}-{}", start + count - 1);
        let st = Command::new("usermod")
            .args(["--add-subuids", &range, "--add-subgids", &range])
            .arg(&self.name)
            .status()
            .unwrap();
        assert!(st.success(), "usermod --add-subuids failed");
    }

    fn state_root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// berth-runtime as the user, with `--root` in the user's directory.
    fn rt(&self) -> Command {
        let mut c = self.rt_no_root();
        c.arg("--root").arg(self.state_root());
        c
    }

    fn rt_no_root(&self) -> Command {
        let mut c = Command::new("runuser");
        c.args(["-u", &self.name, "--"])
            .arg(&self.bin)
            .current_dir(self.dir.path())
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(Stdio::null());
        c
    }

    fn id(&self, name: &str) -> String {
        let id = format!("{name}-{}", SEQ.fetch_add(1, Ordering::Relaxed));
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// A busybox bundle owned by the user, from `spec --rootless` run as
    /// the user, running `args`.
    fn bundle(&self, args: &[&str]) -> (PathBuf, Value) {
        let path = self
            .dir
            .path()
            .join(format!("bundle{}", SEQ.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&path).unwrap();
        make_rootfs(&path.join("rootfs"));
        self.chown(&path);
        let out = self
            .rt()
            .args(["spec", "--rootless", "--bundle"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "spec --rootless: {}", text(&out));
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(path.join("config.json")).unwrap()).unwrap();
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        (path, config)
    }

    fn save(&self, bundle: &Path, config: &Value) {
        let p = bundle.join("config.json");
        std::fs::write(&p, serde_json::to_vec_pretty(config).unwrap()).unwrap();
        self.chown(&p);
    }

    fn run(&self, bundle: &Path, config: &Value, name: &str) -> Output {
        self.save(bundle, config);
        let id = self.id(name);
        self.rt()
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(&id)
            .output()
            .expect("spawn berth-runtime run")
    }
}

impl Drop for User {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = self
                .rt()
                .args(["delete", "--force", id])
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new("userdel").arg(&self.name).status();
        for f in ["/etc/subuid", "/etc/subgid"] {
            remove_lines_of(Path::new(f), &self.name);
        }
    }
}

/// userdel removes the user's subordinate ids itself; this makes sure.
fn remove_lines_of(file: &Path, name: &str) {
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    let prefix = format!("{name}:");
    if !text.lines().any(|l| l.starts_with(&prefix)) {
        return;
    }
    let kept: String = text
        .lines()
        .filter(|l| !l.starts_with(&prefix))
        .map(|l| format!("{l}\n"))
        .collect();
    let _ = std::fs::write(file, kept);
}

fn text(o: &Output) -> String {
    format!(
        "status={} stdout={} stderr={}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn status_ids(pid: i32, key: &str) -> Vec<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect()
}

#[test]
fn rootless_run_is_root_inside_and_the_user_outside() {
    require_userns!();
    let u = User::new();
    let (bundle, mut config) = u.bundle(&["sh", "-c", "id; cat /proc/self/uid_map"]);
    // The spec maps the user's own ids (written by the user, not by us).
    assert_eq!(config["linux"]["uidMappings"][0]["hostID"], json!(u.uid));
    assert_eq!(config["linux"]["gidMappings"][0]["hostID"], json!(u.gid));
    config["hostname"] = json!("rootless");
    let out = u.run(&bundle, &config, "run");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("uid=0(root) gid=0(root)"),
        "id inside: {stdout}"
    );
    let map: Vec<&str> = stdout.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(map, ["0", &u.uid.to_string(), "1"]);

    // Created and started as separate steps, the host sees the user.
    config["process"]["args"] = json!(["sleep", "1000"]);
    u.save(&bundle, &config);
    let id = u.id("detached");
    let out = u
        .rt()
        .args(["create", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(out.success(), "create failed");
    let state: Value =
        serde_json::from_slice(&u.rt().args(["state", &id]).output().unwrap().stdout).unwrap();
    assert_eq!(state["status"], "created");
    let pid = state["pid"].as_i64().unwrap() as i32;
    assert!(u.rt().args(["start", &id]).status().unwrap().success());
    assert_eq!(status_ids(pid, "Uid:"), vec![u.uid; 4]);
    assert_eq!(status_ids(pid, "Gid:"), vec![u.gid; 4]);
    // The container's own view: root.
    let inside = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    assert_eq!(
        inside.split_whitespace().collect::<Vec<_>>(),
        ["0", &u.uid.to_string(), "1"]
    );
    // exec joins the user namespace too.
    let out = u.rt().args(["exec", &id, "id", "-u"]).output().unwrap();
    assert!(out.status.success(), "exec: {}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    // Without a cgroup, init is the process the runtime knows of.
    let out = u
        .rt()
        .args(["ps", "--format", "json", &id])
        .output()
        .unwrap();
    let pids: Vec<i32> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pids, vec![pid]);
    let out = u.rt().args(["pause", &id]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no cgroup"),
        "{}",
        text(&out)
    );
    assert!(u
        .rt()
        .args(["kill", &id, "KILL"])
        .status()
        .unwrap()
        .success());
    let out = u.rt().args(["delete", "--force", &id]).output().unwrap();
    assert!(out.status.success(), "delete: {}", text(&out));
    assert!(!u.state_root().join(&id).exists());
}

#[test]
fn rootless_state_defaults_to_xdg_runtime_dir() {
    require_userns!();
    let u = User::new();
    let (bundle, config) = u.bundle(&["true"]);
    u.save(&bundle, &config);
    let xdg = u.dir.path().join("xdg");
    std::fs::create_dir(&xdg).unwrap();
    u.chown(&xdg);
    let id = u.id("xdg");
    // The waiting init keeps create's stdio: a file, not a pipe to wait on.
    let err_path = u.dir.path().join("create.err");
    let create = u
        .rt_no_root()
        .env("XDG_RUNTIME_DIR", &xdg)
        .args(["create", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .status()
        .unwrap();
    assert!(
        create.success(),
        "create: {}",
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    assert!(xdg.join("berth").join(&id).join("state.json").exists());
    let del = u
        .rt_no_root()
        .env("XDG_RUNTIME_DIR", &xdg)
        .args(["delete", "--force", &id])
        .output()
        .unwrap();
    assert!(del.status.success(), "{}", text(&del));
    assert!(!xdg.join("berth").join(&id).exists());
}

#[test]
fn rootless_with_subordinate_ids_uses_newuidmap() {
    require_userns!();
    if Command::new("newuidmap").arg("--help").output().is_err() {
        eprintln!("skipped: newuidmap missing (apt-get install uidmap)");
        return;
    }
    let u = User::new();
    let sub = 1_500_000 + (std::process::id() % 1000) * 70_000;
    u.add_subids(sub, 65536);
    let (bundle, mut config) = u.bundle(&[
        "sh",
        "-c",
        "cat /proc/self/uid_map /proc/self/gid_map; touch /dev/shm/f; chown 1000:1000 /dev/shm/f && stat -c owner=%u:%g /dev/shm/f; id -u",
    ]);
    config["linux"]["uidMappings"] = json!([
        {"containerID": 0, "hostID": u.uid, "size": 1},
        {"containerID": 1, "hostID": sub, "size": 65536}
    ]);
    config["linux"]["gidMappings"] = json!([
        {"containerID": 0, "hostID": u.gid, "size": 1},
        {"containerID": 1, "hostID": sub, "size": 65536}
    ]);
    // chown needs the capability; the default rootless set lacks it.
    let caps = json!(["CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE"]);
    for set in ["bounding", "effective", "permitted"] {
        config["process"]["capabilities"][set] = caps.clone();
    }
    let out = u.run(&bundle, &config, "subids");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let uid = u.uid.to_string();
    let gid = u.gid.to_string();
    let sub = sub.to_string();
    assert_eq!(lines[0], ["0", uid.as_str(), "1"], "{stdout}");
    assert_eq!(lines[1], ["1", sub.as_str(), "65536"], "{stdout}");
    assert_eq!(lines[2], ["0", gid.as_str(), "1"], "{stdout}");
    assert_eq!(lines[3], ["1", sub.as_str(), "65536"], "{stdout}");
    assert!(stdout.contains("owner=1000:1000"), "{stdout}");
    assert_eq!(lines.last().unwrap(), &["0"]);
}

#[test]
fn rootless_limits_and_idmapped_mounts_fail_clearly() {
    require_userns!();
    let u = User::new();
    let (bundle, mut config) = u.bundle(&["true"]);
    config["linux"]["resources"] = json!({"pids": {"limit": 10}});
    let out = u.run(&bundle, &config, "limits");
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rootless") && err.contains("linux.resources.pids"),
        "{err}"
    );
    // Nothing left behind.
    let left: Vec<_> = std::fs::read_dir(u.state_root())
        .map(|rd| {
            rd.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "state left: {left:?}");

    // Idmapped mounts need privilege in the initial user namespace.
    let (bundle, mut config) = u.bundle(&["true"]);
    let src = u.dir.path().join("vol");
    std::fs::create_dir(&src).unwrap();
    u.chown(&src);
    config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/mnt", "type": "bind", "source": src, "options": ["bind", "idmap"]
    }));
    let out = u.run(&bundle, &config, "idmap");
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not supported rootless"), "{err}");
}

#[test]
fn rootless_falls_back_where_a_user_namespace_cannot_mount() {
    require_userns!();
    let u = User::new();
    let (bundle, mut config) = u.bundle(&[
        "sh",
        "-c",
        "test -d /sys/kernel && echo sysfs-ok; echo x > /dev/null && echo null-ok; test -c /dev/zero && echo zero-ok; grep -q ' /dev/pts ' /proc/self/mountinfo && echo devpts-ok; grep -q ' /dev/mqueue ' /proc/self/mountinfo && echo mqueue-ok",
    ]);
    // A spec written for root: sysfs without a network namespace (the
    // kernel refuses it in a user namespace), devpts with gid=5 (unmapped).
    let mounts = config["mounts"].as_array_mut().unwrap();
    for m in mounts.iter_mut() {
        if m["destination"] == "/sys" {
            *m = json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                        "options": ["nosuid", "noexec", "nodev", "ro"]});
        }
        if m["destination"] == "/dev/pts" {
            m["options"].as_array_mut().unwrap().push(json!("gid=5"));
        }
    }
    let out = u.run(&bundle, &config, "fallbacks");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for want in ["sysfs-ok", "null-ok", "zero-ok", "devpts-ok", "mqueue-ok"] {
        assert!(stdout.contains(want), "{want} missing: {stdout}");
    }
}
