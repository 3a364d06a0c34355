//! exec, pause/resume, update, events and features.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::json;

fn running(env: &Env, args: &[&str], name: &str) -> (String, Bundle) {
    let mut b = env.bundle(args);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "cgroup"}));
    let id = env.id(name);
    env.create(&b, &id);
    assert!(env.exec(&["start", &id]).status.success());
    (id, b)
}

#[test]
fn exec_joins_the_container() {
    let env = Env::new();
    let (id, _b) = running(&env, &["sleep", "300"], "exec");
    let out = env.exec(&["exec", &id, "sh", "-c", "cat /proc/1/cmdline; echo; readlink /proc/self/ns/pid; readlink /proc/1/ns/pid; hostname; cat /proc/self/cgroup | grep memory"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let l: Vec<&str> = text.lines().collect();
    assert!(l[0].starts_with("sleep"), "{text}");
    assert_eq!(l[1], l[2], "not in the container's pid namespace: {text}");
    assert_eq!(l[3], "runc");
    assert!(
        l[4].ends_with(":/"),
        "not in the container's cgroup: {text}"
    );

    // Exit codes come back; flags change user and env.
    assert_eq!(
        env.exec(&["exec", &id, "sh", "-c", "exit 9"]).status.code(),
        Some(9)
    );
    let out = env.exec(&[
        "exec",
        "--user",
        "1000:1000",
        "--env",
        "FOO=bar",
        "--cwd",
        "/tmp",
        &id,
        "sh",
        "-c",
        "id -u; echo $FOO; pwd",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1000\nbar\n/tmp\n");

    // --process with a JSON process spec; --detach with a pid file.
    let proc_file = env.dir.path().join("process.json");
    std::fs::write(&proc_file, json!({"args": ["sh", "-c", "sleep 100"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin"]}).to_string()).unwrap();
    let pidfile = env.dir.path().join("exec.pid");
    let st = env
        .rt()
        .args(["exec", "--detach", "--pid-file"])
        .arg(&pidfile)
        .arg("--process")
        .arg(&proc_file)
        .arg(&id)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    let ps = env.exec(&["ps", "--format", "json", &id]);
    let pids: Vec<i32> = serde_json::from_slice(&ps.stdout).unwrap();
    assert!(pids.contains(&pid), "{pid} not in {pids:?}");

    let bad = env.exec(&["exec", &id, "no-such-command"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("executable file not found"));
}

#[test]
fn exec_with_terminal_in_foreground() {
    let env = Env::new();
    let (id, _b) = running(&env, &["sleep", "300"], "exectty");
    // `script` gives the runtime a terminal on stdin, as a user's shell would.
    let mut child = std::process::Command::new("script")
        .args([
            "-qec",
            &format!(
                "{BIN} --root {} exec -t {id} sh -c 'tty; echo done'",
                env.root.display()
            ),
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script (bsdutils)");
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let _ = child.wait();
    assert!(out.contains("/dev/pts/"), "{out}");
    assert!(out.contains("done"), "{out}");
}

#[test]
fn pause_resume_and_state() {
    let env = Env::new();
    let (id, _b) = running(&env, &["sleep", "300"], "pause");
    assert!(env.exec(&["pause", &id]).status.success());
    assert_eq!(env.state(&id)["status"], "paused");
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        st.contains("State:\tD") || st.contains("State:\tS") || st.contains("frozen"),
        "{st}"
    );
    // Pausing twice is refused, resuming works once.
    assert!(!env.exec(&["resume", "nonexistent"]).status.success());
    assert!(env.exec(&["resume", &id]).status.success());
    assert_eq!(env.state(&id)["status"], "running");
    assert!(!env.exec(&["resume", &id]).status.success());
    // A paused container can still be force-deleted.
    assert!(env.exec(&["pause", &id]).status.success());
    assert!(env.exec(&["delete", "--force", &id]).status.success());
    assert!(host_cgroups_named(&id).is_empty());
}

#[test]
fn sigkill_reaches_a_paused_container() {
    let env = Env::new();
    let (id, _b) = running(&env, &["sleep", "300"], "pausekill");
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    assert!(env.exec(&["pause", &id]).status.success());
    // A softer signal stays pending while frozen, as with runc.
    assert!(env.exec(&["kill", &id, "TERM"]).status.success());
    assert_eq!(env.state(&id)["status"], "paused");
    // SIGKILL thaws it, so the process dies now, not at the next resume.
    assert!(env.exec(&["kill", &id, "KILL"]).status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while env.state(&id)["status"] != "stopped" {
        assert!(
            std::time::Instant::now() < deadline,
            "pid {pid} still {}",
            env.state(&id)["status"]
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(env.exec(&["delete", &id]).status.success());
    assert!(host_cgroups_named(&id).is_empty());
}

#[test]
fn update_limits_and_stats() {
    let env = Env::new();
    let (id, _b) = running(&env, &["sleep", "300"], "update");
    let out = env.exec(&[
        "update",
        "--memory",
        "48m",
        "--pids-limit",
        "15",
        "--cpu-quota",
        "20000",
        &id,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env.exec(&[
        "exec",
        &id,
        "cat",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/pids/pids.max",
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n15\n20000\n", 48 << 20)
    );

    let res = env.dir.path().join("res.json");
    std::fs::write(&res, json!({"pids": {"limit": 99}}).to_string()).unwrap();
    assert!(env
        .rt()
        .args(["update", "--resources"])
        .arg(&res)
        .arg(&id)
        .status()
        .unwrap()
        .success());
    let out = env.exec(&["exec", &id, "cat", "/sys/fs/cgroup/pids/pids.max"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "99");

    let bad = env.exec(&["update", "--memory", "lots", &id]);
    assert!(!bad.status.success());
    std::fs::write(&res, "{\"pids\": {\"limit\": \"many\"}}").unwrap();
    let bad = env
        .rt()
        .args(["update", "--resources"])
        .arg(&res)
        .arg(&id)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("pids.limit"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    let ev = env.exec(&["events", "--stats", &id]);
    let v: serde_json::Value = serde_json::from_slice(&ev.stdout).unwrap();
    assert_eq!(v["type"], "stats");
    assert_eq!(v["data"]["memory"]["limit"], json!(48 << 20));
    assert!(v["data"]["pids"]["current"].as_u64().unwrap() >= 1, "{v}");
}

#[test]
fn events_reports_oom_kill() {
    let env = Env::new();
    let mut b = env.bundle(&["sh", "-c", "sleep 1; tail /dev/zero; sleep 300"]);
    b.config["linux"]["resources"]["memory"] = json!({"limit": 16777216, "swap": 16777216});
    let id = env.id("oom");
    env.create(&b, &id);
    let mut events = env
        .rt()
        .args(["events", "--interval", "1s", &id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(env.exec(&["start", &id]).status.success());
    let mut stdout = events.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            match stdout.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if String::from_utf8_lossy(&buf).contains("\"oom\"") {
                break;
            }
        }
        String::from_utf8_lossy(&buf).into_owned()
    });
    let out = reader.join().unwrap();
    let _ = events.kill();
    let _ = events.wait();
    assert!(out.lines().any(|l| l.contains("\"type\":\"oom\"")), "{out}");
}

#[test]
fn features_document() {
    let out = std::process::Command::new(BIN)
        .arg("features")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ociVersionMin"], "1.0.0");
    assert_eq!(v["linux"]["namespaces"].as_array().unwrap().len(), 8);
    assert!(v["linux"]["capabilities"]
        .as_array()
        .unwrap()
        .contains(&json!("CAP_SYS_ADMIN")));
    assert_eq!(v["linux"]["seccomp"]["enabled"], true);
    assert_eq!(v["linux"]["cgroup"]["v1"], true);
}
