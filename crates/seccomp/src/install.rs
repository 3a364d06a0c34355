//! Loading a compiled filter into the calling thread.
//!
//! This runs in the container's init child between fork and exec, possibly forked from a
//! process that had other threads. So: one raw syscall, a `sock_fprog` on the stack pointing at
//! memory allocated before the fork, no allocation, no locks, no logging.

use std::os::fd::{FromRawFd, OwnedFd};

use nix::errno::Errno;

use crate::program::{flags, CompiledFilter, SockFilter};

const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;

/// The kernel's `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const SockFilter,
}

/// Installs `filter` on the calling thread with `seccomp(SECCOMP_SET_MODE_FILTER)`.
///
/// Async-signal-safe. The caller must either have set `PR_SET_NO_NEW_PRIVS` or hold
/// `CAP_SYS_ADMIN` in its user namespace, or the kernel answers `EACCES`. Returns the
/// notification listener fd when the profile uses `SCMP_ACT_NOTIFY`; it is close-on-exec.
pub fn install(filter: &CompiledFilter) -> Result<Option<OwnedFd>, Errno> {
    let program = filter.program();
    // CompiledFilter::new guarantees 1..=BPF_MAXINSNS instructions, so this fits in a u16.
    let prog = SockFprog {
        len: program.len() as libc::c_ushort,
        filter: program.as_ptr(),
    };
    // SAFETY: `prog` points at `program`, which outlives the call; the kernel copies it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            libc::c_ulong::from(filter.flags()),
            &prog as *const SockFprog,
        )
    };
    if ret < 0 {
        return Err(Errno::last());
    }
    if filter.flags() & flags::NEW_LISTENER == 0 {
        return Ok(None);
    }
    // SAFETY: with NEW_LISTENER the kernel returns a fresh fd that nothing else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(ret as libc::c_int) }))
}
