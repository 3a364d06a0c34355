//! OCI hooks run at their points with the state on stdin.

mod common;

use common::*;
use serde_json::json;

#[test]
fn every_hook_runs_with_state_on_stdin() {
    let env = Env::new();
    let log = env.dir.path().join("hooks.log");
    let mut b = env.bundle(&["true"]);
    let hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("read -r s; echo \"{name} $s\" >> {}", log.display())]});
    b.config["hooks"] = json!({
        "prestart": [hook("prestart")],
        "createRuntime": [hook("createRuntime")],
        "createContainer": [hook("createContainer")],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo startContainer > /tmp/hookran"]}],
        "poststart": [hook("poststart")],
        "poststop": [hook("poststop")]
    });
    b.config["root"]["readonly"] = json!(false);
    let id = env.id("hooks");
    env.create(&b, &id);
    assert!(env.exec(&["start", &id]).status.success());
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(env.exec(&["delete", &id]).status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let order: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        order,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "poststart",
            "poststop"
        ]
    );
    for l in text.lines() {
        let json = l.split_once(' ').unwrap().1;
        let v: serde_json::Value =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("{l}: {e}"));
        assert_eq!(v["id"], json!(id));
        assert!(
            v["pid"].as_i64().unwrap_or(0) > 0 || l.starts_with("poststop"),
            "{l}"
        );
    }
    // startContainer ran inside the container.
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("tmp/hookran"))
            .unwrap()
            .trim(),
        "startContainer"
    );
}

#[test]
fn failing_or_slow_hook_fails_create_and_cleans_up() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    b.config["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]});
    let id = env.id("hookfail");
    let (ok, err) = env.try_create(&b, &id, &[]);
    assert!(!ok);
    assert!(err.contains("createRuntime hook"), "{err}");
    assert!(!env.root.join(&id).exists());

    b.config["hooks"] =
        json!({"prestart": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]});
    let id = env.id("hookslow");
    let t = std::time::Instant::now();
    let (ok, err) = env.try_create(&b, &id, &[]);
    assert!(!ok);
    assert!(err.contains("timed out"), "{err}");
    assert!(t.elapsed().as_secs() < 10);
    assert!(host_cgroups_named(&id).is_empty());
}

#[test]
fn failing_poststart_and_poststop_hooks_only_warn() {
    let env = Env::new();
    let log = env.dir.path().join("poststop.log");
    let mut b = env.bundle(&["sleep", "300"]);
    b.config["hooks"] = json!({
        "poststart": [{"path": "/bin/false"}],
        "poststop": [{"path": "/bin/false"}, {"path": "/bin/sh", "args": ["sh", "-c", format!("echo ran > {}", log.display())]}]
    });
    let id = env.id("hookwarn");
    env.create(&b, &id);
    let out = env.exec(&["start", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.state(&id)["status"], "running");
    assert!(env.exec(&["delete", "--force", &id]).status.success());
    // The second poststop hook still ran.
    assert_eq!(std::fs::read_to_string(&log).unwrap().trim(), "ran");
}

/// If the runtime dies while init is being set up, init goes too instead of
/// waiting forever.
#[test]
fn init_exits_when_the_runtime_dies_during_create() {
    let env = Env::new();
    let pidlog = env.dir.path().join("init.json");
    let mut b = env.bundle(&["true"]);
    b.config["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}; exec sleep 30", pidlog.display())]}]});
    b.save();
    let id = env.id("orphan");
    let mut create = env
        .rt()
        .args(["create", "--bundle"])
        .arg(&b.path)
        .arg(&id)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut init_pid = 0;
    for _ in 0..500 {
        if let Ok(text) = std::fs::read_to_string(&pidlog) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                init_pid = v["pid"].as_i64().unwrap_or(0);
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(init_pid > 0, "hook never got the state");
    let _ = create.kill();
    let _ = create.wait();
    let mut gone = false;
    for _ in 0..300 {
        let st = std::fs::read_to_string(format!("/proc/{init_pid}/stat")).unwrap_or_default();
        if st.is_empty() || st.contains(") Z") {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // The hook's sleep outlives the runtime; end it.
    let _ = std::process::Command::new("pkill")
        .args(["-f", &pidlog.display().to_string()])
        .status();
    assert!(gone, "init {init_pid} outlived the runtime");
    // What the killed create left, delete removes.
    assert!(env.exec(&["delete", "--force", &id]).status.success());
    assert!(host_cgroups_named(&id).is_empty(), "cgroup left behind");
    assert!(!env.root.join(&id).exists());
}
