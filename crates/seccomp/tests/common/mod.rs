//! Fork helpers for tests that install filters. The child may run in a copy of the
//! multi-threaded test harness, so it only makes raw syscalls on pre-built data and leaves with
//! `_exit`, exactly like the runtime's init child.

#![allow(dead_code)]

use std::ffi::CStr;

/// Runs `child` in a forked process and returns its raw wait status.
pub fn in_child(child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only runs `child`, which by contract is async-signal-safe.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
        // SAFETY: leave without running the harness's atexit handlers or destructors.
        unsafe { libc::_exit(code) }
    }
    wait(pid)
}

pub fn wait(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: plain waitpid on our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return status;
        }
        assert_eq!(errno(), libc::EINTR, "waitpid failed");
    }
}

/// Exit code of a normally exited child, or a description of how it died.
pub fn exit_code(status: i32) -> Result<i32, String> {
    if libc::WIFEXITED(status) {
        Ok(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Err(format!("killed by signal {}", libc::WTERMSIG(status)))
    } else {
        Err(format!("status {status:#x}"))
    }
}

pub fn errno() -> i32 {
    // SAFETY: reading the thread's errno location is always valid.
    unsafe { *libc::__errno_location() }
}

pub fn no_new_privs() -> bool {
    // SAFETY: raw prctl.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 }
}

/// Result of a raw syscall as `Ok(ret)` or `Err(errno)`.
pub fn raw(nr: libc::c_long, a: libc::c_long, b: libc::c_long) -> Result<libc::c_long, i32> {
    // SAFETY: callers pass syscalls whose arguments are plain integers or valid pointers.
    let r = unsafe { libc::syscall(nr, a, b) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

pub fn mkdir(path: &CStr, mode: libc::c_long) -> Result<libc::c_long, i32> {
    raw(libc::SYS_mkdir, path.as_ptr() as libc::c_long, mode)
}

/// True when /proc/self/status says `Seccomp: 2` (filter mode). Stack buffer, raw syscalls.
pub fn seccomp_mode_is_filter() -> bool {
    let mut buf = [0u8; 8192];
    // SAFETY: raw open/read/close on a static path into a stack buffer.
    let n = unsafe {
        let fd = libc::open(
            c"/proc/self/status".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return false;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    if n <= 0 {
        return false;
    }
    let needle = b"Seccomp:\t2\n";
    buf[..n as usize].windows(needle.len()).any(|w| w == needle)
}
