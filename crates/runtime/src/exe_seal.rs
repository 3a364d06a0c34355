//! Protection of the runtime binary against CVE-2019-5736: a container
//! process that reaches our /proc/PID/exe must not be able to write to the
//! host's berth-runtime. Before entering any container we re-execute
//! ourselves from a sealed memfd copy, so /proc/PID/exe names an immutable
//! anonymous file instead of the binary on disk.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// True when the running executable is already a sealed copy.
pub fn is_sealed() -> bool {
    let Ok(f) = std::fs::File::open("/proc/self/exe") else {
        return false;
    };
    // SAFETY: fcntl on our own descriptor.
    let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & SEALS == SEALS
}

/// Re-executes the current process from a sealed memfd copy of its binary,
/// with the same arguments and environment. Returns only on error, or at
/// once when already sealed.
pub fn reexec_sealed() -> io::Result<()> {
    if is_sealed() {
        return Ok(());
    }
    let exe = std::fs::File::open("/proc/self/exe")?;
    let len = exe.metadata()?.len();
    let memfd: OwnedFd = rustix::fs::memfd_create(
        "berth-runtime",
        rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
    )?;
    let mut copied = 0u64;
    while copied < len {
        let n = rustix::fs::sendfile(&memfd, &exe, None, (len - copied) as usize)?;
        if n == 0 {
            break;
        }
        copied += n as u64;
    }
    // SAFETY: fcntl on our own descriptor.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let to_c =
        |s: OsString| CString::new(s.into_vec()).map_err(|_| io::Error::other("NUL in argument"));
    let argv: Vec<CString> = std::env::args_os().map(to_c).collect::<io::Result<_>>()?;
    let envp: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            to_c(kv)
        })
        .collect::<io::Result<_>>()?;
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: valid fd, empty path with AT_EMPTY_PATH, null-terminated arrays.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            memfd.as_raw_fd(),
            c"".as_ptr(),
            a.as_ptr(),
            e.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(io::Error::last_os_error())
}
