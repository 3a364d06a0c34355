//! Known runc/Docker CVEs as test cases.

mod common;

use std::io::Write;

use common::*;
use serde_json::json;

/// CVE-2024-21626: no descriptor of the runtime reaches the container, so
/// neither the process nor a crafted cwd can reach the host through one.
#[test]
fn no_runtime_descriptor_leaks_into_the_container() {
    let env = Env::new();
    // /proc/self/fd of `ls` itself: 0-2 plus the directory it is reading.
    let b = env.bundle(&["ls", "/proc/self/fd"]);
    let out = env.run_ok(&b, "fds");
    let fds: Vec<u32> = out
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    assert_eq!(fds, vec![0, 1, 2, 3], "unexpected descriptors {fds:?}");

    for n in 3..12 {
        let mut b = env.bundle(&["sh", "-c", "pwd; ls ../../../ 2>&1 | head -3"]);
        b.config["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
        let (code, out, _err) = env.run(&b, "cwdfd");
        if code == 0 {
            assert!(
                out.starts_with('/') && !out.contains("(unreachable)"),
                "fd {n}: cwd {out}"
            );
            assert!(!out.contains("work"), "fd {n}: reached the host: {out}");
        }
    }
}

/// CVE-2019-5736, first route: a container that shares a pid namespace
/// could open /proc/PID/exe of the waiting init. There init runs from a
/// sealed memfd copy or a detached read-only overlay of the binary's
/// directory, never from the binary on disk.
#[test]
fn runtime_binary_cannot_be_overwritten_through_proc_exe() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.retain(|n| n["type"] != "pid");
    let id = env.id("exe");
    env.create(&b, &id);
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let fs_type = std::process::Command::new("stat")
        .args(["-f", "-c", "%T", &format!("/proc/{pid}/exe")])
        .output()
        .unwrap();
    let fs_type = String::from_utf8_lossy(&fs_type.stdout).trim().to_string();
    assert!(
        exe.to_string_lossy().starts_with("/memfd:") || fs_type == "overlayfs",
        "init runs from {} on {fs_type}",
        exe.display()
    );
    let before = std::fs::read(BIN).unwrap();
    let w = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/exe"));
    if let Ok(mut f) = w {
        assert!(
            f.write_all(b"#!/bin/sh\necho pwned\n").is_err(),
            "write to sealed exe succeeded"
        );
    }
    assert_eq!(
        std::fs::read(BIN).unwrap(),
        before,
        "runtime binary changed"
    );
}

/// CVE-2019-5736, second route: the user's program is /proc/self/exe, or a
/// script with it as interpreter, so that the kernel would start the runtime
/// binary inside the container. With a pid namespace of its own init skips
/// the sealed re-execution and executes the program through a sealed
/// trampoline, which is all /proc/self/exe can name then.
#[test]
fn proc_self_exe_as_the_program_never_reaches_the_runtime_binary() {
    let env = Env::new();
    let before = std::fs::read(BIN).unwrap();
    let b = env.bundle(&["/proc/self/exe", "--version"]);
    let (code, out, err) = env.run(&b, "selfexe");
    assert!(!out.contains("berth-runtime"), "{out}");
    assert_ne!(code, 0, "{out} {err}");

    let b = env.bundle(&["/evil"]);
    std::fs::write(b.rootfs().join("evil"), "#!/proc/self/exe\n").unwrap();
    std::fs::set_permissions(
        b.rootfs().join("evil"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let (code, out, err) = env.run(&b, "selfinterp");
    assert!(!out.contains("berth-runtime"), "{out}");
    assert_ne!(code, 0, "{out} {err}");
    assert_eq!(
        std::fs::read(BIN).unwrap(),
        before,
        "runtime binary changed"
    );
}

/// An init that runs the runtime binary from disk (see above) admits no
/// exec before it is started.
#[test]
fn exec_into_a_created_container_with_an_unsealed_init_is_refused() {
    let env = Env::new();
    let b = env.bundle(&["true"]);
    let id = env.id("execcreated");
    env.create(&b, &id);
    let out = env.exec(&["exec", &id, "true"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("created but not started"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Mount destinations are resolved inside the rootfs: an absolute symlink
/// in the image cannot redirect a mount onto the host.
#[test]
fn mount_through_symlink_stays_inside_rootfs() {
    let env = Env::new();
    let victim = env.dir.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "grep ' /evil ' /proc/self/mounts | wc -l; ls -d /host-victim-target",
    ]);
    std::os::unix::fs::symlink(&victim, b.rootfs().join("evil")).unwrap();
    b.config["root"]["readonly"] = json!(false);
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/evil", "type": "tmpfs", "source": "tmpfs"}));
    let (code, out, err) = env.run(&b, "symlink");
    assert_eq!(code, 1, "{out} {err}");
    // The mount landed at the symlink's target *inside* the rootfs.
    let inside = b.rootfs().join(victim.strip_prefix("/").unwrap());
    assert!(inside.exists(), "mount point not created inside the rootfs");
    assert!(
        host_mounts_under(&victim).is_empty(),
        "mount escaped to the host"
    );
}

/// Masking replaces what it masks with the host's real /dev/null even when
/// the image ships its own /dev/null as a symlink (CVE-2025-31133 family).
#[test]
fn masked_file_uses_real_dev_null() {
    let env = Env::new();
    let mut b = env.bundle(&["sh", "-c", "stat -c '%t:%T' /proc/timer_list"]);
    // No /dev tmpfs: the image's /dev is used, with a hostile symlink.
    b.config["mounts"].as_array_mut().unwrap().retain(|m| {
        m["destination"] != "/dev"
            && m["destination"] != "/dev/pts"
            && m["destination"] != "/dev/shm"
            && m["destination"] != "/dev/mqueue"
    });
    b.config["root"]["readonly"] = json!(false);
    std::fs::create_dir_all(b.rootfs().join("dev")).unwrap();
    std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", b.rootfs().join("dev/null"))
        .unwrap();
    let out = env.run_ok(&b, "devnull");
    assert_eq!(out.trim(), "1:3");
}
