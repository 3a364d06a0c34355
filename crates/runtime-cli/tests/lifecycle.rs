//! create/start/state/kill/delete/run/list/ps against real containers.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn wait_status(env: &Env, id: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = env.exec(&["state", id]);
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if s["status"] == want {
            return;
        }
        assert!(Instant::now() < deadline, "{id} never became {want}: {s}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn run_prints_and_propagates_exit_code() {
    let env = Env::new();
    let b = env.bundle(&["sh", "-c", "echo hello from berth"]);
    assert_eq!(env.run_ok(&b, "hello").trim(), "hello from berth");
    let b = env.bundle(&["sh", "-c", "exit 42"]);
    assert_eq!(env.run(&b, "exit42").0, 42);
}

/// `run` in the foreground, in the background of the test.
fn spawn_run(env: &Env, b: &Bundle, id: &str) -> std::process::Child {
    b.save();
    env.rt()
        .args(["run", "--bundle"])
        .arg(&b.path)
        .arg(id)
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("spawn berth-runtime run")
}

#[test]
fn foreground_run_forwards_signals_and_reports_death_by_signal() {
    let env = Env::new();
    let b = env.bundle(&["sh", "-c", "trap 'exit 5' TERM; sleep 300 & wait"]);
    b.save();
    let id = env.id("fwd");
    let mut child = spawn_run(&env, &b, &id);
    wait_status(&env, &id, "running");
    std::thread::sleep(Duration::from_millis(200));
    // SIGTERM to the runtime reaches the container's shell.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(5));

    let id = env.id("killed");
    let b = env.bundle(&["sleep", "300"]);
    let mut child = spawn_run(&env, &b, &id);
    wait_status(&env, &id, "running");
    assert!(env.exec(&["kill", &id, "KILL"]).status.success());
    // Killed by a signal: 128 + signal, as a shell reports it.
    assert_eq!(child.wait().unwrap().code(), Some(137));
    // run removes what it created.
    assert!(!env.root.join(&id).exists());
}

#[test]
fn create_start_state_kill_delete() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "300"]);
    let id = env.id("life");
    let pidfile = env.dir.path().join("pid");
    let (ok, err) = env.try_create(&b, &id, &["--pid-file", pidfile.to_str().unwrap()]);
    assert!(ok, "{err}");

    let s = env.state(&id);
    assert_eq!(s["status"], "created");
    assert_eq!(s["id"], json!(id));
    assert_eq!(s["bundle"], json!(b.path.canonicalize().unwrap()));
    let pid = s["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), pid.to_string());
    // Init waits before exec: it is still the runtime, not sleep.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_ne!(comm.trim(), "sleep");
    let cgroups = host_cgroups_named(&id);
    assert!(!cgroups.is_empty(), "no cgroup created for {id}");

    // The runtime process has exited; state is still right.
    assert!(env.exec(&["start", &id]).status.success());
    wait_status(&env, &id, "running");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sleep");

    // Starting twice is refused.
    let again = env.exec(&["start", &id]);
    assert!(!again.status.success());

    // A running container is not deleted without --force.
    let del = env.exec(&["delete", &id]);
    assert!(!del.status.success());
    assert!(String::from_utf8_lossy(&del.stderr).contains("not stopped"));

    assert!(env.exec(&["kill", &id, "KILL"]).status.success());
    wait_status(&env, &id, "stopped");
    assert_eq!(env.state(&id)["pid"], 0);
    let k = env.exec(&["kill", &id, "TERM"]);
    assert!(String::from_utf8_lossy(&k.stderr).contains("container not running"));

    assert!(env.exec(&["delete", &id]).status.success());
    let gone = env.exec(&["state", &id]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("does not exist"));
    assert!(!env.root.join(&id).exists(), "state dir left behind");
    for c in cgroups {
        assert!(!c.exists(), "cgroup {} left behind", c.display());
    }
    assert!(
        host_mounts_under(&b.rootfs()).is_empty(),
        "mounts left on the host"
    );
}

#[test]
fn kill_accepts_names_and_numbers_and_all() {
    let env = Env::new();
    let b = env.bundle(&["sh", "-c", "trap 'exit 3' USR1; sleep 300 & wait"]);
    for sig in ["USR1", "SIGUSR1", "10"] {
        let id = env.id("kill");
        env.create(&b, &id);
        assert!(env.exec(&["start", &id]).status.success());
        wait_status(&env, &id, "running");
        std::thread::sleep(Duration::from_millis(100));
        let out = env.exec(&["kill", &id, sig]);
        assert!(
            out.status.success(),
            "kill {sig}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait_status(&env, &id, "stopped");
        // kill --all reaches the orphaned sleep too.
        env.exec(&["kill", "--all", &id, "KILL"]);
        assert!(env.exec(&["delete", "--force", &id]).status.success());
    }
    let id = env.id("badsig");
    env.create(&b, &id);
    let out = env.exec(&["kill", &id, "NOTASIGNAL"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid signal"));
}

#[test]
fn delete_force_removes_running_container_and_its_processes() {
    let env = Env::new();
    let b = env.bundle(&["sh", "-c", "sleep 300 & sleep 300"]);
    let id = env.id("force");
    env.create(&b, &id);
    assert!(env.exec(&["start", &id]).status.success());
    wait_status(&env, &id, "running");
    let ps = env.exec(&["ps", "--format", "json", &id]);
    let pids: Vec<i32> = serde_json::from_slice(&ps.stdout).unwrap();
    assert!(pids.len() >= 2, "expected sh and sleeps, got {pids:?}");
    assert!(env.exec(&["delete", "--force", &id]).status.success());
    for p in pids {
        let alive = std::fs::read_to_string(format!("/proc/{p}/stat"))
            .map(|s| !s.contains(") Z"))
            .unwrap_or(false);
        assert!(!alive, "pid {p} survived delete --force");
    }
    assert!(host_cgroups_named(&id).is_empty());
}

#[test]
fn delete_of_created_container_kills_waiting_init() {
    let env = Env::new();
    let b = env.bundle(&["true"]);
    let id = env.id("created");
    env.create(&b, &id);
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    assert!(env.exec(&["delete", &id]).status.success());
    std::thread::sleep(Duration::from_millis(50));
    let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        st.is_empty() || st.contains(") Z"),
        "init still alive: {st}"
    );
}

#[test]
fn list_and_ps_formats() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "300"]);
    let id = env.id("list");
    env.create(&b, &id);
    let q = env.exec(&["list", "-q"]);
    assert_eq!(String::from_utf8_lossy(&q.stdout).trim(), id);
    let j = env.exec(&["list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(v[0]["id"], json!(id));
    assert_eq!(v[0]["status"], "created");
    let t = String::from_utf8_lossy(&env.exec(&["list"]).stdout).into_owned();
    assert!(t.starts_with("ID"), "{t}");
    assert!(t.contains(&id) && t.contains("created"), "{t}");
    assert!(env.exec(&["start", &id]).status.success());
    let ps = String::from_utf8_lossy(&env.exec(&["ps", &id]).stdout).into_owned();
    assert!(ps.contains("PID") && ps.contains("sleep 300"), "{ps}");
}

#[test]
fn unknown_container_errors_use_runc_words() {
    let env = Env::new();
    for cmd in [
        &["state", "nope"][..],
        &["start", "nope"],
        &["kill", "nope", "KILL"],
        &["delete", "nope"],
    ] {
        let out = env.exec(cmd);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("does not exist"), "{cmd:?}: {err}");
    }
}

#[test]
fn json_log_format() {
    let env = Env::new();
    let log = env.dir.path().join("log.json");
    let out = env
        .rt()
        .arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "state", "missing"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().contains("does not exist"));
    assert!(line["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn spec_matches_runc_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["spec", "-b"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(v["process"]["terminal"], true);
    assert_eq!(v["process"]["args"], json!(["sh"]));
    assert_eq!(v["root"], json!({"path": "rootfs", "readonly": true}));
    assert_eq!(v["process"]["noNewPrivileges"], true);
    assert_eq!(v["mounts"].as_array().unwrap().len(), 7);
    // Refuses to overwrite.
    let again = std::process::Command::new(BIN)
        .args(["spec", "-b"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    // When runc is installed, the two agree on everything but the version.
    if std::path::Path::new("/usr/sbin/runc").exists() {
        let rd = tempfile::tempdir().unwrap();
        let st = std::process::Command::new("/usr/sbin/runc")
            .arg("spec")
            .current_dir(rd.path())
            .status()
            .unwrap();
        assert!(st.success());
        let mut r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(rd.path().join("config.json")).unwrap()).unwrap();
        let mut ours = v.clone();
        for x in [&mut r, &mut ours] {
            x["ociVersion"] = json!("");
        }
        assert_eq!(ours, r);
    }
}

/// Details runc's own test suite checks.
#[test]
fn runc_compatible_details() {
    let env = Env::new();
    // A relative --pid-file is relative to the caller's directory.
    let b = env.bundle(&["sleep", "300"]);
    let id = env.id("relpid");
    b.save();
    let st = env
        .rt()
        .args(["create", "--pid-file", "pid.txt", "--bundle"])
        .arg(&b.path)
        .arg(&id)
        .current_dir(env.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let pid = std::fs::read_to_string(env.dir.path().join("pid.txt")).unwrap();
    assert_eq!(pid, env.state(&id)["pid"].to_string());
    // State keys come in runc's order.
    let out = String::from_utf8(env.exec(&["state", &id]).stdout).unwrap();
    let keys: Vec<&str> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix('"')?.split('"').next())
        .collect();
    assert_eq!(&keys[..4], ["ociVersion", "id", "pid", "status"], "{out}");
    // Signal 0 probes the process.
    assert!(env.exec(&["kill", &id, "0"]).status.success());
    assert!(env.exec(&["delete", "--force", &id]).status.success());
    // Deleting what is gone is not an error with --force.
    assert!(env.exec(&["delete", "--force", &id]).status.success());
    assert!(!env.exec(&["delete", &id]).status.success());

    // run --keep leaves the stopped container for state and delete.
    let b = env.bundle(&["true"]);
    b.save();
    let id = env.id("keep");
    let st = env
        .rt()
        .args(["run", "--keep", "--bundle"])
        .arg(&b.path)
        .arg(&id)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(env.state(&id)["status"], "stopped");
    assert!(env.exec(&["delete", &id]).status.success());

    // -v prints the version.
    let v = env.exec(&["-v"]);
    assert!(String::from_utf8_lossy(&v.stdout).contains("spec: "));
}
