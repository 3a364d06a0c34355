//! Protection of the runtime binary against CVE-2019-5736: a container
//! process that reaches our /proc/PID/exe must not be able to write to the
//! host's berth-runtime. Before entering any container we re-execute
//! ourselves from a view of the binary that cannot be written:
//!
//! - first choice, a detached overlayfs mount of the binary's directory with
//!   no upper layer. It exists in no mount namespace, and an overlay without
//!   an upper layer cannot be written whatever its mount flags say. No byte
//!   is copied, which matters: this runs on every create.
//! - fallback (no overlayfs, or not root), a sealed memfd copy of the binary.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Set across the re-exec through the overlay, so the new image knows it is
/// the protected one; removed again at once.
const SEALED_ENV: &str = "_BERTH_RUNTIME_SEALED";
const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;

/// True when the running executable is already a protected view.
pub fn is_sealed() -> bool {
    let Ok(f) = std::fs::File::open("/proc/self/exe") else {
        return false;
    };
    is_sealed_memfd(&f) || (std::env::var_os(SEALED_ENV).is_some() && on_readonly_overlay(&f))
}

/// True when process `pid` runs from a sealed memfd or a read-only overlay.
pub fn exe_protected(pid: i32) -> bool {
    let Ok(f) = std::fs::File::open(format!("/proc/{pid}/exe")) else {
        return false;
    };
    is_sealed_memfd(&f) || on_readonly_overlay(&f)
}

fn is_sealed_memfd(f: &std::fs::File) -> bool {
    // SAFETY: fcntl on our own descriptor.
    let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & SEALS == SEALS
}

/// Makes a memfd's contents final: no write, resize or further seal.
pub(crate) fn seal_memfd(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on our own descriptor.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn on_readonly_overlay(f: &std::fs::File) -> bool {
    let fs = rustix::fs::fstatfs(f).map(|s| s.f_type == OVERLAYFS_SUPER_MAGIC);
    let ro =
        rustix::fs::fstatvfs(f).map(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY));
    matches!((fs, ro), (Ok(true), Ok(true)))
}

/// Re-executes the current process from a sealed memfd copy of its binary,
/// with the same arguments and environment. Returns only on error, or at
/// once when already sealed.
pub fn reexec_sealed(scratch: &Path) -> io::Result<()> {
    if is_sealed() {
        // SAFETY: single-threaded at this point; nothing reads the
        // environment concurrently.
        unsafe { std::env::remove_var(SEALED_ENV) };
        return Ok(());
    }
    if let Ok(fd) = overlay_view(scratch) {
        // SAFETY: as above.
        unsafe { std::env::set_var(SEALED_ENV, "1") };
        let err = execveat_self(&fd);
        // SAFETY: as above.
        unsafe { std::env::remove_var(SEALED_ENV) };
        tracing::debug!("exec through overlay failed ({err}); copying to a memfd");
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
    seal_memfd(&memfd)?;
    Err(execveat_self(&memfd))
}

/// A descriptor of our binary on a detached, read-only overlayfs whose
/// layers are the binary's directory and an empty directory under `scratch`
/// (overlayfs wants two layers when it has no upper one).
fn overlay_view(scratch: &Path) -> io::Result<OwnedFd> {
    use rustix::mount::{
        fsconfig_create, fsconfig_set_string, fsmount, fsopen, FsMountFlags, FsOpenFlags,
        MountAttrFlags,
    };
    let exe = std::fs::read_link("/proc/self/exe")?;
    let (Some(dir), Some(name)) = (exe.parent(), exe.file_name()) else {
        return Err(io::Error::other("odd executable path"));
    };
    let empty = scratch.join(".exe-empty");
    match std::fs::create_dir_all(&empty) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_set_string(&fs, "lowerdir+", dir)?;
    fsconfig_set_string(&fs, "lowerdir+", &empty)?;
    fsconfig_create(&fs)?;
    let mnt = fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NODEV,
    )?;
    let fd = rustix::fs::openat(
        &mnt,
        name,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    Ok(fd)
}

/// execveat(fd, "", argv, environ, AT_EMPTY_PATH) with our own arguments and
/// environment. Returns only on failure.
fn execveat_self(fd: &OwnedFd) -> io::Error {
    let to_c =
        |s: OsString| CString::new(s.into_vec()).map_err(|_| io::Error::other("NUL in argument"));
    let argv: Vec<CString> = match std::env::args_os().map(to_c).collect::<io::Result<_>>() {
        Ok(v) => v,
        Err(e) => return e,
    };
    let envp: Vec<CString> = match std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            to_c(kv)
        })
        .collect::<io::Result<_>>()
    {
        Ok(v) => v,
        Err(e) => return e,
    };
    crate::sys::execveat_fd(fd, &argv, &envp)
}
