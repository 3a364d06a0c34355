//! Filters installed for real in forked children: errno, argument conditions, default deny,
//! the ENOSYS stub, every action, NOTIFY with fd passing, flags, and Docker's default profile.
//! The syscall numbers used are x86-64's.
#![cfg(target_arch = "x86_64")]

mod common;

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::{UnixListener, UnixStream};

use berth_seccomp::docker_profile::{self, KernelVersion};
use berth_seccomp::{compile, flags, install, parse_oci_seccomp, CompiledFilter};
use common::*;
use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags, ScmpSyscall};

fn filter(json: &str) -> CompiledFilter {
    compile(&parse_oci_seccomp(json).expect("profile parses")).expect("profile compiles")
}

fn path_in(dir: &tempfile::TempDir, name: &str) -> CString {
    CString::new(dir.path().join(name).into_os_string().into_encoded_bytes()).expect("path")
}

#[test]
fn mkdir_gets_chosen_errno_and_status_shows_filter_mode() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":123}]}"#,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = path_in(&dir, "d");
    let status = in_child(|| {
        if !no_new_privs() || install(&f).is_err() {
            return 1;
        }
        if mkdir(&path, 0o755) != Err(123) {
            return 2;
        }
        if !seccomp_mode_is_filter() {
            return 3;
        }
        0
    });
    assert_eq!(exit_code(status), Ok(0));
    assert!(!dir.path().join("d").exists());
}

#[test]
fn argument_conditions_including_masked_eq() {
    // Deny mode 0700 exactly, and any mode with the group-write bit (masked compare).
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[
              {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":77,
               "args":[{"index":1,"value":448,"op":"SCMP_CMP_EQ"}]},
              {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":78,
               "args":[{"index":1,"value":16,"valueTwo":16,"op":"SCMP_CMP_MASKED_EQ"}]}]}"#,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b, c) = (path_in(&dir, "a"), path_in(&dir, "b"), path_in(&dir, "c"));
    let status = in_child(|| {
        if !no_new_privs() || install(&f).is_err() {
            return 1;
        }
        if mkdir(&a, 0o755).is_err() {
            return 2;
        }
        if mkdir(&b, 0o700) != Err(77) {
            return 3;
        }
        if mkdir(&c, 0o775) != Err(78) {
            return 4;
        }
        0
    });
    assert_eq!(exit_code(status), Ok(0));
}

#[test]
fn default_errno_with_allow_list_and_enosys_stub() {
    // Allow-list up to exit_group (231 on x86-64). getpid (39) is below it and not listed:
    // default EPERM. pidfd_open (434) is above anything listed: ENOSYS from the stub.
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ERRNO",
            "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
            "syscalls":[{"names":["exit_group","exit","getppid"],"action":"SCMP_ACT_ALLOW"}]}"#,
    );
    let status = in_child(|| {
        if !no_new_privs() || install(&f).is_err() {
            return 1;
        }
        if raw(libc::SYS_getppid, 0, 0).is_err() {
            return 2;
        }
        if raw(libc::SYS_getpid, 0, 0) != Err(libc::EPERM) {
            return 3;
        }
        if raw(libc::SYS_pidfd_open, 1, 0) != Err(libc::ENOSYS) {
            return 4;
        }
        if raw(1000, 0, 0) != Err(libc::ENOSYS) {
            return 5;
        }
        0
    });
    assert_eq!(exit_code(status), Ok(0));
}

#[test]
fn default_errno_ret_is_used_and_disables_the_stub_when_enosys() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,
            "syscalls":[{"names":["exit_group"],"action":"SCMP_ACT_ALLOW"}]}"#,
    );
    let g = filter(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":5,
            "syscalls":[{"names":["exit_group"],"action":"SCMP_ACT_ALLOW"}]}"#,
    );
    assert!(
        f.program().len() < g.program().len(),
        "ENOSYS default needs no stub"
    );
    let status = in_child(|| {
        if !no_new_privs() || install(&g).is_err() {
            return 1;
        }
        if raw(libc::SYS_getpid, 0, 0) != Err(libc::EIO) {
            return 2;
        }
        0
    });
    assert_eq!(exit_code(status), Ok(0));
}

fn dies_by_sigsys(action: &str) {
    let f = filter(&format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[{{"names":["getppid"],"action":"{action}"}}]}}"#
    ));
    let status = in_child(|| {
        if !no_new_privs() || install(&f).is_err() {
            return 1;
        }
        let _ = raw(libc::SYS_getppid, 0, 0);
        2
    });
    assert_eq!(
        exit_code(status),
        Err(format!("killed by signal {}", libc::SIGSYS)),
        "{action}"
    );
}

#[test]
fn kill_actions_and_trap_deliver_sigsys() {
    for action in [
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL",
        "SCMP_ACT_TRAP",
    ] {
        dies_by_sigsys(action);
    }
}

#[test]
fn trace_without_tracer_and_log_and_tsync_flag() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "flags":["SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_SPEC_ALLOW","SECCOMP_FILTER_FLAG_TSYNC"],
            "syscalls":[{"names":["getppid"],"action":"SCMP_ACT_TRACE","errnoRet":7},
                        {"names":["getpid"],"action":"SCMP_ACT_LOG"}]}"#,
    );
    assert_eq!(
        f.flags(),
        flags::LOG | flags::SPEC_ALLOW | flags::TSYNC,
        "flags passed through"
    );
    let status = in_child(|| {
        if !no_new_privs() || install(&f).is_err() {
            return 1;
        }
        // With no tracer attached the kernel fails a TRACE'd syscall with ENOSYS.
        if raw(libc::SYS_getppid, 0, 0) != Err(libc::ENOSYS) {
            return 2;
        }
        if raw(libc::SYS_getpid, 0, 0).is_err() {
            return 3;
        }
        0
    });
    assert_eq!(exit_code(status), Ok(0));
}

/// Kills a child left blocked in a notified syscall when an assertion fails in the parent.
struct KillOnDrop(libc::pid_t);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
        wait(self.0);
    }
}

#[test]
fn notify_listener_is_passed_to_an_agent_which_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent_path = dir.path().join("agent.sock");
    let profile = parse_oci_seccomp(&format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW",
            "listenerPath":{},"listenerMetadata":"agent-metadata",
            "flags":["SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                     "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls":[{{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}}]}}"#,
        serde_json::to_string(&agent_path).expect("path json")
    ))
    .expect("profile parses");
    let f = compile(&profile).expect("profile compiles");
    assert!(f.uses_notify());
    assert_eq!(
        f.flags(),
        flags::NEW_LISTENER | flags::LOG | flags::SPEC_ALLOW | flags::WAIT_KILLABLE_RECV
    );
    let target = path_in(&dir, "blocked");
    let agent = UnixListener::bind(&agent_path).expect("bind agent socket");
    let (parent_sock, child_sock) = UnixStream::pair().expect("socketpair");

    // SAFETY: the child only makes raw syscalls (see common::in_child).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = (|| {
            if !no_new_privs() {
                return 1;
            }
            let Ok(Some(listener)) = install(&f) else {
                return 2;
            };
            if berth_seccomp::send_fd(child_sock.as_fd(), listener.as_fd()).is_err() {
                return 3;
            }
            // Blocks until the agent answers.
            if mkdir(&target, 0o755) != Err(libc::EROFS) {
                return 4;
            }
            0
        })();
        // SAFETY: leave the forked harness without running anything else.
        unsafe { libc::_exit(code) }
    }

    // Without this copy closed, a child that died early would leave recv_fd blocked forever.
    drop(child_sock);
    let guard = KillOnDrop(pid);

    // Runtime parent: receive the fd from init, forward it with the state to the agent.
    let seccomp_fd = berth_seccomp::recv_fd(parent_sock.as_fd()).expect("fd from child");
    let mut state = oci_spec::runtime::State::default();
    state.set_id("c1".to_string());
    state.set_pid(Some(pid));
    state.set_bundle(dir.path().to_path_buf());
    let message = berth_seccomp::process_state(pid, profile.listener_metadata().clone(), state);
    let listener_path = profile.listener_path().as_ref().expect("listenerPath");
    berth_seccomp::send_to_listener(listener_path, seccomp_fd.as_fd(), &message)
        .expect("send to agent");
    drop(seccomp_fd);

    // Agent: read the state message, then answer the notification.
    let (conn, _) = agent.accept().expect("accept");
    let (got, fds) = berth_seccomp::recv_listener_message(conn.as_fd()).expect("agent message");
    assert_eq!(got.fds(), &vec!["seccompFd".to_string()]);
    assert_eq!(*got.pid(), pid);
    assert_eq!(got.metadata().as_deref(), Some("agent-metadata"));
    assert_eq!(got.state().id(), "c1");
    assert_eq!(fds.len(), 1);
    let json = serde_json::to_value(&got).expect("json");
    for key in ["ociVersion", "fds", "pid", "metadata", "state"] {
        assert!(json.get(key).is_some(), "{key} missing from {json}");
    }

    let notify_fd = fds[0].as_raw_fd();
    let req = ScmpNotifReq::receive(notify_fd).expect("notification");
    assert_eq!(req.pid, pid as u32);
    assert_eq!(
        req.data.syscall,
        ScmpSyscall::from_name("mkdir").expect("mkdir nr")
    );
    ScmpNotifResp::new_error(req.id, -libc::EROFS, ScmpNotifRespFlags::empty())
        .respond(notify_fd)
        .expect("respond");
    std::mem::forget(guard);
    assert_eq!(exit_code(wait(pid)), Ok(0));
    assert!(!dir.path().join("blocked").exists());
}

#[test]
fn wait_killable_recv_is_dropped_without_notify() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    assert_eq!(f.flags(), 0);
    let status = in_child(|| {
        if !no_new_privs() || !matches!(install(&f), Ok(None)) {
            return 1;
        }
        0
    });
    assert_eq!(exit_code(status), Ok(0));
}

#[test]
fn docker_default_profile_runs() {
    let caps: Vec<String> = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ]
    .map(String::from)
    .to_vec();
    let kernel = KernelVersion::current().expect("kernel version");
    let oci = docker_profile::to_oci(
        docker_profile::DOCKER_DEFAULT,
        &caps,
        std::env::consts::ARCH,
        kernel,
    )
    .expect("convert");
    let f = compile(&oci).expect("compile Docker's default profile");
    let dir = tempfile::tempdir().expect("tempdir");
    let ok_dir = path_in(&dir, "ok");
    let status = in_child(|| {
        if !no_new_privs() || install(&f).is_err() {
            return 1;
        }
        if mkdir(&ok_dir, 0o755).is_err() {
            return 2;
        }
        // Profile rule: clone3 → ENOSYS without CAP_SYS_ADMIN, so libc falls back to clone.
        if raw(libc::SYS_clone3, 0, 0) != Err(libc::ENOSYS) {
            return 3;
        }
        // Not allowed, below the highest listed syscall: the default EPERM.
        if raw(libc::SYS_umount2, 0, 0) != Err(libc::EPERM) {
            return 4;
        }
        // Beyond anything the profile knows: ENOSYS from the stub.
        if raw(1000, 0, 0) != Err(libc::ENOSYS) {
            return 5;
        }
        0
    });
    assert_eq!(exit_code(status), Ok(0));
}

/// A 32-bit syscall through `int 0x80`: the kernel reports it with AUDIT_ARCH_I386, so this
/// exercises the i386 section of the filter from a 64-bit test. Returns the raw result
/// (negative errno on failure). Only syscalls without arguments are used.
fn int80(nr: i32) -> i32 {
    let ret: i32;
    // SAFETY: int 0x80 with only eax set; the kernel clobbers r8-r11 on this path.
    unsafe {
        std::arch::asm!(
            "int 0x80",
            inlateout("eax") nr => ret,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            options(nostack)
        );
    }
    ret
}

#[test]
fn i386_section_of_a_multi_arch_filter() {
    const I386_GETPID: i32 = 20;
    const I386_GETPPID: i32 = 64;
    // Without IA32 emulation int 0x80 kills the process; nothing to test then.
    if exit_code(in_child(|| (int80(I386_GETPID) > 0) as i32)) != Ok(1) {
        eprintln!("no IA32 emulation in this kernel; skipped");
        return;
    }
    // i386 numbers listed: exit 1, getppid 64, exit_group 252 (the highest).
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ERRNO",
            "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
            "syscalls":[{"names":["exit_group","exit","getppid"],"action":"SCMP_ACT_ALLOW"}]}"#,
    );
    let status = in_child(|| {
        if !no_new_privs() || install(&f).is_err() {
            return 1;
        }
        if int80(I386_GETPPID) <= 0 {
            return 2;
        }
        if int80(I386_GETPID) != -libc::EPERM {
            return 3;
        }
        // Above i386's highest listed number: the stub's ENOSYS.
        if int80(400) != -libc::ENOSYS {
            return 4;
        }
        0
    });
    assert_eq!(exit_code(status), Ok(0));

    // Without x86 in the profile, an i386 syscall hits the filter's bad-arch action (kill).
    let g = filter(
        r#"{"defaultAction":"SCMP_ACT_ERRNO",
            "syscalls":[{"names":["exit_group","exit","getppid"],"action":"SCMP_ACT_ALLOW"}]}"#,
    );
    let status = in_child(|| {
        if !no_new_privs() || install(&g).is_err() {
            return 1;
        }
        int80(I386_GETPPID);
        2
    });
    assert_eq!(
        exit_code(status),
        Err(format!("killed by signal {}", libc::SIGSYS))
    );
}
