//! cgroup limits and seccomp profiles from config.json, seen from inside.

mod common;

use common::*;
use serde_json::json;

#[test]
fn memory_pids_and_cpu_limits_apply() {
    let env = Env::new();
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us",
    ]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "cgroup"}));
    b.config["linux"]["resources"]["memory"] = json!({"limit": 33554432});
    b.config["linux"]["resources"]["pids"] = json!({"limit": 20});
    b.config["linux"]["resources"]["cpu"] = json!({"quota": 50000, "period": 100000});
    let out = env.run_ok(&b, "limits");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l, ["33554432", "20", "50000"]);
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let env = Env::new();
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "for i in $(seq 40); do sleep 60 & done 2>/dev/null; wait",
    ]);
    b.config["linux"]["resources"]["pids"] = json!({"limit": 10});
    let id = env.id("forkbomb");
    env.create(&b, &id);
    assert!(env.exec(&["start", &id]).status.success());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let ps = env.exec(&["ps", "--format", "json", &id]);
    let pids: Vec<i32> = serde_json::from_slice(&ps.stdout).unwrap();
    assert!(
        pids.len() <= 10,
        "{} processes under a limit of 10",
        pids.len()
    );
    // The kernel counted the forks it refused.
    let events = std::fs::read_to_string(format!("/sys/fs/cgroup/pids/{id}/pids.events")).unwrap();
    let refused: u64 = events.trim().strip_prefix("max ").unwrap().parse().unwrap();
    assert!(refused > 0, "no fork was refused: {events}");
}

#[test]
fn device_cgroup_denies_unlisted_devices() {
    let env = Env::new();
    // /dev/kmsg (1:11) is not among the devices a container may open: bound
    // in from the host, the device cgroup still refuses it. An empty write
    // logs nothing even where the open would be allowed.
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "(: > /dev/null) && echo NULL_OK; (: > /dev/kmsg) 2>&1 || echo KMSG_DENIED",
    ]);
    b.config["mounts"].as_array_mut().unwrap().push(json!({"destination": "/dev/kmsg", "type": "bind", "source": "/dev/kmsg", "options": ["bind"]}));
    let out = env.run_ok(&b, "devcg");
    assert!(out.contains("NULL_OK"), "{out}");
    assert!(
        out.contains("Operation not permitted") && out.contains("KMSG_DENIED"),
        "{out}"
    );
}

#[test]
fn seccomp_profile_errno_and_status() {
    let env = Env::new();
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status; mkdir /tmp/x 2>&1; echo mkdir=$?",
    ]);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    });
    let out = env.run_ok(&b, "seccomp");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(
        out.contains("Permission denied") && out.contains("mkdir=1"),
        "{out}"
    );
}

#[test]
fn seccomp_without_no_new_privs_is_installed_before_caps_drop() {
    let env = Env::new();
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "grep -E 'Seccomp:|NoNewPrivs' /proc/self/status",
    ]);
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_ERRNO"}]
    });
    let out = env.run_ok(&b, "seccomp-nnp");
    assert!(
        out.contains("Seccomp:\t2") && out.contains("NoNewPrivs:\t0"),
        "{out}"
    );
}

#[test]
fn docker_default_profile_runs_busybox() {
    let env = Env::new();
    let caps: Vec<String> = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
        .map(String::from)
        .to_vec();
    let profile = berth_seccomp_profile(&caps);
    let mut b = env.bundle(&["sh", "-c", "grep Seccomp: /proc/self/status; echo hi > /tmp/f && cat /tmp/f; unshare -U true 2>/dev/null || echo UNSHARE_DENIED"]);
    b.config["linux"]["seccomp"] = profile;
    b.config["root"]["readonly"] = json!(false);
    let out = env.run_ok(&b, "docker-default");
    assert!(
        out.contains("Seccomp:\t2") && out.contains("\nhi\n") && out.contains("UNSHARE_DENIED"),
        "{out}"
    );
}

/// Docker's default profile for these capabilities, as OCI JSON.
fn berth_seccomp_profile(caps: &[String]) -> serde_json::Value {
    let kernel = berth_seccomp::docker_profile::KernelVersion::current().unwrap();
    let oci = berth_seccomp::docker_profile::to_oci(
        berth_seccomp::docker_profile::DOCKER_DEFAULT,
        caps,
        "amd64",
        kernel,
    )
    .unwrap();
    serde_json::to_value(oci).unwrap()
}

#[test]
fn bad_seccomp_and_resources_fail_cleanly() {
    let env = Env::new();
    let cases = [
        (
            json!({"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["nosuchcall"], "action": "SCMP_ACT_ERRNO"}]}}),
            "nosuchcall",
        ),
        (
            json!({"seccomp": {"defaultAction": "SCMP_ACT_FLY"}}),
            "linux.seccomp.defaultAction",
        ),
        (
            json!({"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}}),
            "linux.seccomp.architectures",
        ),
        (
            json!({"resources": {"cpu": {"cpus": "0-999"}}}),
            "linux.resources.cpu.cpus",
        ),
        (
            json!({"resources": {"memory": {"limit": -5}}}),
            "linux.resources.memory",
        ),
    ];
    for (patch, want) in cases {
        let mut b = env.bundle(&["true"]);
        for (k, v) in patch.as_object().unwrap() {
            b.config["linux"][k] = v.clone();
        }
        let id = env.id("badres");
        let (ok, err) = env.try_create(&b, &id, &[]);
        assert!(!ok, "{patch} was accepted");
        assert!(err.contains(want), "{patch}: {err}");
        assert!(!env.root.join(&id).exists());
        assert!(host_cgroups_named(&id).is_empty(), "{patch}: cgroup left");
    }
}

/// A profile from before close_range and with getcwd denied, without
/// no_new_privs (so it is installed early, as root): the runtime's own steps
/// after it must not need either call.
#[test]
fn old_profile_installed_early_does_not_break_init() {
    let env = Env::new();
    let mut profile = berth_seccomp_profile(
        &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"].map(String::from),
    );
    for rule in profile["syscalls"].as_array_mut().unwrap() {
        rule["names"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n != "close_range" && n != "getcwd" && n != "openat2");
    }
    let mut b = env.bundle(&["echo", "still works"]);
    b.config["linux"]["seccomp"] = profile;
    b.config["process"]["noNewPrivileges"] = json!(false);
    assert_eq!(env.run_ok(&b, "oldprofile").trim(), "still works");
}

#[test]
fn unsupported_security_labels_are_refused() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    b.config["process"]["apparmorProfile"] = json!("docker-default");
    let id = env.id("apparmor");
    let (ok, err) = env.try_create(&b, &id, &[]);
    assert!(!ok && err.contains("process.apparmorProfile"), "{err}");
    let mut b = env.bundle(&["true"]);
    b.config["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0");
    let (ok, err) = env.try_create(&b, &id, &[]);
    assert!(!ok && err.contains("linux.mountLabel"), "{err}");
}
