//! What a container sees from inside: its own namespaces, root, hostname,
//! capabilities, no_new_privs, masked and read-only paths, limits.

mod common;

use common::*;
use serde_json::json;

fn host_ns(name: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{name}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn init_is_pid_1_with_hostname_and_own_namespaces() {
    let env = Env::new();
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "echo pid=$$; echo host=$(hostname); for n in mnt pid ipc uts net cgroup user time; do echo $n=$(readlink /proc/self/ns/$n); done",
    ]);
    b.config["hostname"] = json!("berth-test");
    b.config["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
        {"type": "mount"}, {"type": "cgroup"}, {"type": "time"}
    ]);
    let out = env.run_ok(&b, "ns");
    let get = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing in {out}"))
            .to_string()
    };
    assert_eq!(get("pid"), "1");
    assert_eq!(get("host"), "berth-test");
    for n in ["mnt", "pid", "ipc", "uts", "net", "cgroup", "time"] {
        assert_ne!(get(n), host_ns(n), "{n} namespace is the host's");
    }
    // No user namespace was asked for.
    assert_eq!(get("user"), host_ns("user"));
}

#[test]
fn user_namespace_maps_ids() {
    let env = Env::new();
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "cat /proc/self/uid_map /proc/self/gid_map; id -u; readlink /proc/self/ns/user",
    ]);
    let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    // The rootfs belongs to host root, which is unmapped; reading is enough.
    let out = env.run_ok(&b, "userns");
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0", "100000", "65536"]);
    assert_eq!(lines[1], ["0", "100000", "65536"]);
    assert_eq!(lines[2], ["0"]);
    assert_ne!(lines[3][0], host_ns("user"));
}

#[test]
fn time_namespace_offsets_apply() {
    let env = Env::new();
    let mut b = env.bundle(&["cat", "/proc/uptime"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "time"}));
    b.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 864000000, "nanosecs": 0}});
    let out = env.run_ok(&b, "timens");
    let up: f64 = out.split_whitespace().next().unwrap().parse().unwrap();
    assert!(up > 864000000.0, "uptime {up} lacks the offset");
}

#[test]
fn joins_an_existing_network_namespace_by_path() {
    let env = Env::new();
    let mut holder = std::process::Command::new("unshare")
        .args(["--net", "sleep", "60"])
        .spawn()
        .expect("unshare (util-linux)");
    // Wait until the holder is inside its namespace.
    let path = format!("/proc/{}/ns/net", holder.id());
    let mut target = String::new();
    for _ in 0..200 {
        target = std::fs::read_link(&path)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !target.is_empty() && target != host_ns("net") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut b = env.bundle(&["readlink", "/proc/self/ns/net"]);
    let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.retain(|n| n["type"] != "network");
    ns.push(json!({"type": "network", "path": path}));
    let out = env.run(&b, "joinnet");
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(out.0, 0, "{out:?}");
    assert_eq!(out.1.trim(), target);
}

#[test]
fn capabilities_and_no_new_privs_match_config() {
    let env = Env::new();
    let b = env.bundle(&[
        "grep",
        "-E",
        "^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)",
        "/proc/self/status",
    ]);
    let out = env.run_ok(&b, "caps");
    // CAP_KILL(5), CAP_NET_BIND_SERVICE(10), CAP_AUDIT_WRITE(29).
    let want = format!("{:016x}", (1u64 << 5) | (1 << 10) | (1 << 29));
    for k in ["CapPrm", "CapEff", "CapBnd"] {
        let line = out.lines().find(|l| l.starts_with(k)).unwrap();
        assert!(line.ends_with(&want), "{line} != {want}");
    }
    // Ambient capabilities must also be inheritable, which the default spec
    // does not make them: the kernel keeps them out, as with runc.
    for k in ["CapInh", "CapAmb"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(k) && l.ends_with("0000000000000000")),
            "{out}"
        );
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("NoNewPrivs") && l.ends_with('1')),
        "{out}"
    );
}

#[test]
fn non_root_user_with_groups_umask_and_no_caps() {
    let env = Env::new();
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "id -u; id -g; id -G; grep CapEff /proc/self/status; umask",
    ]);
    b.config["process"]["user"] =
        json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 1000], "umask": 63});
    let out = env.run_ok(&b, "user");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "1000");
    assert_eq!(l[1], "1000");
    let groups: Vec<&str> = l[2].split_whitespace().collect();
    assert!(
        groups.contains(&"5") && groups.contains(&"1000"),
        "{groups:?}"
    );
    // Changing to a non-root uid clears the effective set.
    assert!(l[3].ends_with("0000000000000000"), "{}", l[3]);
    assert_eq!(l[4], "0077");
}

#[test]
fn signals_are_unblocked_and_default_in_the_container() {
    let env = Env::new();
    let b = env.bundle(&["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"]);
    let out = env.run_ok(&b, "sigs");
    for l in out.lines() {
        assert!(l.ends_with("0000000000000000"), "{l}");
    }
}

#[test]
fn host_processes_and_files_are_invisible() {
    let env = Env::new();
    let b = env.bundle(&[
        "sh",
        "-c",
        "ls /proc | grep -c '^[0-9]'; ls / ; test -e /work && echo HOSTFS; true",
    ]);
    let out = env.run_ok(&b, "invisible");
    let procs: u32 = out.lines().next().unwrap().trim().parse().unwrap();
    assert!(procs <= 3, "container sees {procs} processes");
    assert!(!out.contains("HOSTFS"));
    assert!(out.lines().any(|l| l == "bin"));
}

#[test]
fn masked_and_readonly_paths() {
    let env = Env::new();
    let b = env.bundle(&[
        "sh",
        "-c",
        "wc -c < /proc/timer_list; ls -A /proc/acpi /sys/firmware | grep -v ':$' | grep -c .; \
         echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo SYSWRITE; \
         echo h > /proc/sysrq-trigger 2>/dev/null && echo SYSRQ; \
         touch /rootfile 2>/dev/null && echo ROOTWRITE; \
         grep ' /proc/sys ' /proc/self/mounts",
    ]);
    let out = env.run_ok(&b, "masks");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0].trim(), "0", "/proc/timer_list not masked: {out}");
    assert_eq!(
        l[1].trim(),
        "0",
        "/proc/acpi or /sys/firmware not masked: {out}"
    );
    assert!(!out.contains("SYSWRITE") && !out.contains("SYSRQ"), "{out}");
    // root.readonly is true in the default spec.
    assert!(!out.contains("ROOTWRITE"), "{out}");
    assert!(
        out.contains(" ro,") || out.contains(" ro "),
        "/proc/sys not read-only: {out}"
    );
}

#[test]
fn default_devices_and_spec_devices() {
    let env = Env::new();
    let mut b = env.bundle(&["sh", "-c", "stat -c '%n %t:%T %a %F' /dev/null /dev/zero /dev/tty /dev/mydev; readlink /dev/fd; readlink /dev/ptmx; echo ok > /dev/null && echo NULLOK"]);
    b.config["linux"]["devices"] = json!([{"path": "/dev/mydev", "type": "c", "major": 1, "minor": 5, "fileMode": 432, "uid": 0, "gid": 0}]);
    let out = env.run_ok(&b, "devices");
    assert!(
        out.contains("/dev/null 1:3 666 character special file"),
        "{out}"
    );
    assert!(out.contains("/dev/zero 1:5 666"), "{out}");
    assert!(out.contains("/dev/tty 5:0 666"), "{out}");
    assert!(out.contains("/dev/mydev 1:5 660"), "{out}");
    assert!(
        out.contains("/proc/self/fd") && out.contains("pts/ptmx"),
        "{out}"
    );
    assert!(out.contains("NULLOK"));
}

#[test]
fn mounts_bind_readonly_tmpfs_and_propagation() {
    let env = Env::new();
    let host = env.dir.path().join("shared");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("data"), "from host").unwrap();
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "cat /data/data; echo x > /data/new 2>/dev/null && echo BINDWRITE; \
         grep ' /scratch ' /proc/self/mounts; echo y > /scratch/f && cat /scratch/f; \
         ls -d /deep/made/here",
    ]);
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/data", "type": "bind", "source": host, "options": ["rbind", "ro", "rprivate"]}));
    mounts.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=1m", "mode=700"]}));
    mounts.push(json!({"destination": "/deep/made/here", "type": "tmpfs", "source": "tmpfs"}));
    b.config["root"]["readonly"] = json!(false);
    let out = env.run_ok(&b, "mounts");
    assert!(out.starts_with("from host"), "{out}");
    assert!(!out.contains("BINDWRITE"));
    assert!(out.contains("tmpfs /scratch tmpfs rw,nosuid"), "{out}");
    assert!(
        out.contains("size=1024k") && out.contains("mode=700"),
        "{out}"
    );
    assert!(out.contains("\ny\n"), "{out}");
    assert!(out.contains("/deep/made/here"));
    assert!(!host.join("new").exists());
    assert!(
        host_mounts_under(env.dir.path()).is_empty(),
        "container mounts leaked to the host"
    );
}

#[test]
fn rlimits_sysctl_oom_score_and_cwd() {
    let env = Env::new();
    let mut b = env.bundle(&["sh", "-c", "ulimit -n; ulimit -Hn; cat /proc/sys/net/ipv4/ip_forward; cat /proc/self/oom_score_adj; pwd"]);
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}]);
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    b.config["process"]["oomScoreAdj"] = json!(500);
    b.config["process"]["cwd"] = json!("/tmp");
    let out = env.run_ok(&b, "limits");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l, ["256", "512", "1", "500", "/tmp"]);
}

#[test]
fn no_pivot_and_env() {
    let env = Env::new();
    let mut b = env.bundle(&["sh", "-c", "echo $GREETING; ls /bin/busybox"]);
    b.config["process"]["env"] = json!(["PATH=/bin:/usr/bin", "GREETING=hi there"]);
    b.save();
    let id = env.id("nopivot");
    let out = env
        .rt()
        .args(["run", "--no-pivot", "--bundle"])
        .arg(&b.path)
        .arg(&id)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hi there\n/bin/busybox\n"
    );
}

#[test]
fn cgroup_mount_is_the_containers_own() {
    let env = Env::new();
    let mut b = env.bundle(&["sh", "-c", "ls /sys/fs/cgroup; cat /proc/self/cgroup"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "cgroup"}));
    let out = env.run_ok(&b, "cgmount");
    assert!(out.contains("memory") && out.contains("pids"), "{out}");
    // Inside a cgroup namespace every path is the namespace root.
    for line in out.lines().filter(|l| l.contains(":/")) {
        assert!(line.ends_with(":/"), "{line}");
    }
}

/// Without a cgroup namespace the container's own cgroup directories are bound in, and
/// the `ro` option of the cgroup mount reaches every one of them, not just the tmpfs.
#[test]
fn cgroup_mount_without_namespace_is_read_only_throughout() {
    let env = Env::new();
    let script = "for d in /sys/fs/cgroup /sys/fs/cgroup/memory /sys/fs/cgroup/pids; do \
        awk -v m=$d '$5 == m { split($6, o, \",\"); print m, o[1] }' /proc/self/mountinfo; done; \
        mkdir /sys/fs/cgroup/memory/sub 2>/dev/null && echo made-sub; \
        touch /sys/fs/cgroup/new 2>/dev/null && echo made-file; \
        test -r /sys/fs/cgroup/memory/memory.limit_in_bytes && echo readable";
    let b = env.bundle(&["sh", "-c", script]);
    let out = env.run_ok(&b, "cgro");
    assert_eq!(
        out,
        "/sys/fs/cgroup ro\n/sys/fs/cgroup/memory ro\n/sys/fs/cgroup/pids ro\nreadable\n"
    );
}

#[test]
fn rootfs_propagation_shared_applies_after_pivot() {
    let env = Env::new();
    let mut b = env.bundle(&["awk", "$5 == \"/\"", "/proc/self/mountinfo"]);
    b.config["linux"]["rootfsPropagation"] = json!("shared");
    let out = env.run_ok(&b, "propshared");
    assert!(out.contains("shared:"), "{out}");
    let mut b = env.bundle(&["awk", "$5 == \"/\"", "/proc/self/mountinfo"]);
    b.config["linux"]["rootfsPropagation"] = json!("private");
    let out = env.run_ok(&b, "propprivate");
    assert!(
        !out.contains("shared:") && !out.contains("master:"),
        "{out}"
    );
}
