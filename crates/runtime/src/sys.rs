//! Every raw syscall the runtime makes, in one place: the rest of the crate
//! never chooses between libc, nix and rustix.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

fn cvt(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cstr(p: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// fork(2) with namespace flags: a raw `clone` without CLONE_VM, so the child
/// gets a copy of the address space like fork. Only safe from a
/// single-threaded process, which the runtime always is.
///
/// Returns `Ok(0)` in the child and the child's pid in the parent.
pub fn clone_with_flags(flags: libc::c_int) -> io::Result<libc::pid_t> {
    // SAFETY: raw clone without CLONE_VM behaves like fork; the runtime is
    // single-threaded so no lock is held by another thread.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    cvt(ret).map(|p| p as libc::pid_t)
}

pub fn setns(fd: RawFd, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall on a descriptor we own.
    cvt(unsafe { libc::setns(fd, nstype) } as libc::c_long).map(drop)
}

pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::unshare(flags) } as libc::c_long).map(drop)
}

pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    let p = |c: Option<&CStr>| c.map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is a valid NUL-terminated string or null.
    let ret = unsafe {
        libc::mount(
            p(source),
            target.as_ptr(),
            p(fstype),
            flags,
            p(data) as *const libc::c_void,
        )
    };
    cvt(ret as libc::c_long).map(drop)
}

pub fn mount_path(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let src = source.map(cstr).transpose()?;
    let tgt = cstr(target)?;
    let fs = fstype.map(CString::new).transpose()?;
    let dat = data.map(CString::new).transpose()?;
    mount(src.as_deref(), &tgt, fs.as_deref(), flags, dat.as_deref())
}

pub fn umount2(target: &Path, flags: libc::c_int) -> io::Result<()> {
    let t = cstr(target)?;
    // SAFETY: valid C string.
    cvt(unsafe { libc::umount2(t.as_ptr(), flags) } as libc::c_long).map(drop)
}

pub fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    let n = cstr(new_root)?;
    let o = cstr(put_old)?;
    // SAFETY: valid C strings.
    cvt(unsafe { libc::syscall(libc::SYS_pivot_root, n.as_ptr(), o.as_ptr()) }).map(drop)
}

pub fn chroot(path: &Path) -> io::Result<()> {
    std::os::unix::fs::chroot(path)
}

/// The path through which a descriptor can be named to syscalls that only
/// take paths (mount, for one): the kernel follows it to the exact inode the
/// descriptor holds, so a symlink swapped in later cannot redirect it.
pub fn fd_path(fd: &impl AsRawFd) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Opens `path` as if `root` were `/`: absolute symlinks and `..` cannot
/// leave it, and magic links (/proc/self/fd/N) are refused.
pub fn open_in_root(root: &OwnedFd, path: &Path, flags: rustix::fs::OFlags) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, ResolveFlags};
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    rustix::fs::openat2(
        root,
        rel,
        flags | rustix::fs::OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(io::Error::from)
}

pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
}

/// Marks every descriptor from `first` up close-on-exec, so nothing the
/// runtime opened reaches the container process (CVE-2024-21626). Falls back
/// to walking /proc/self/fd where close_range is missing or filtered.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: plain syscall.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    match cvt(ret) {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOSYS) | Some(libc::EPERM) | Some(libc::EINVAL)
            ) =>
        {
            let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .filter(|fd: &RawFd| *fd >= first as RawFd)
                .collect();
            for fd in fds {
                // The directory's own descriptor is gone by now: EBADF is fine.
                match set_cloexec(fd, true) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EBADF) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

pub fn set_dumpable(on: bool) -> io::Result<()> {
    // SAFETY: plain prctl.
    cvt(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, on as libc::c_ulong, 0, 0, 0) } as libc::c_long)
        .map(drop)
}

pub fn set_keepcaps(on: bool) -> io::Result<()> {
    // SAFETY: plain prctl.
    cvt(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, on as libc::c_ulong, 0, 0, 0) } as libc::c_long)
        .map(drop)
}

pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: plain prctl.
    cvt(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } as libc::c_long).map(drop)
}

pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: plain prctl.
    cvt(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } as libc::c_long).map(drop)
}

pub fn set_pdeathsig(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: plain prctl.
    cvt(
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) }
            as libc::c_long,
    )
    .map(drop)
}

// The id-changing calls go straight to the kernel: glibc's wrappers would try
// to broadcast the change to threads it believes exist, which is wrong after a
// raw clone.
pub fn setresuid(uid: u32) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) }).map(drop)
}

pub fn setresgid(gid: u32) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) }).map(drop)
}

pub fn setgroups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: the pointer and length describe a valid slice of gid_t.
    cvt(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) }).map(drop)
}

pub fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length of a valid byte slice.
    cvt(
        unsafe { libc::sethostname(name.as_ptr() as *const libc::c_char, name.len()) }
            as libc::c_long,
    )
    .map(drop)
}

pub fn setdomainname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length of a valid byte slice.
    cvt(
        unsafe { libc::setdomainname(name.as_ptr() as *const libc::c_char, name.len()) }
            as libc::c_long,
    )
    .map(drop)
}

pub fn setsid() -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::setsid() } as libc::c_long).map(drop)
}

pub fn umask(mask: u32) {
    // SAFETY: plain syscall, cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) };
}

pub fn mknodat(dir: &OwnedFd, name: &CStr, mode: u32, dev: u64) -> io::Result<()> {
    // SAFETY: valid fd and C string.
    cvt(
        unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t, dev) }
            as libc::c_long,
    )
    .map(drop)
}

pub fn makedev(major: u64, minor: u64) -> u64 {
    libc::makedev(major as u32, minor as u32)
}

pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::kill(pid, sig) } as libc::c_long).map(drop)
}

pub fn dup2(old: RawFd, new: RawFd) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::dup2(old, new) } as libc::c_long).map(drop)
}

pub fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: plain fcntl on a caller-owned descriptor.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) } as libc::c_long)? as libc::c_int;
    let new = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, new) } as libc::c_long).map(drop)
}

/// A connected pair of SOCK_SEQPACKET sockets: message boundaries are kept,
/// and a peer that dies reads as end-of-file.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a valid two-element array.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } as libc::c_long)?;
    // SAFETY: socketpair returned two fresh descriptors we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn mkfifo(path: &Path, mode: u32) -> io::Result<()> {
    let p = cstr(path)?;
    // SAFETY: valid C string.
    cvt(unsafe { libc::mkfifo(p.as_ptr(), mode as libc::mode_t) } as libc::c_long).map(drop)
}

pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: null-terminated arrays of valid C strings that outlive the call.
    unsafe { libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr()) };
    io::Error::last_os_error()
}

/// execveat(fd, "", argv, envp, AT_EMPTY_PATH). Returns only on failure.
pub fn execveat_fd(fd: &impl AsRawFd, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: valid fd, empty path with AT_EMPTY_PATH, null-terminated arrays
    // of valid C strings that outlive the call.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            a.as_ptr(),
            e.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    io::Error::last_os_error()
}

pub fn waitpid(pid: libc::pid_t, flags: libc::c_int) -> io::Result<(libc::pid_t, libc::c_int)> {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok((r, status));
    }
}

/// Exit code of a wait status the way a shell reports it: the code, or
/// 128 + the signal number.
pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

pub fn getpid() -> libc::pid_t {
    // SAFETY: cannot fail.
    unsafe { libc::getpid() }
}

pub fn geteuid() -> u32 {
    // SAFETY: cannot fail.
    unsafe { libc::geteuid() }
}

pub fn getegid() -> u32 {
    // SAFETY: cannot fail.
    unsafe { libc::getegid() }
}

pub fn setrlimit(resource: libc::c_int, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: valid rlimit struct; prlimit on ourselves.
    cvt(unsafe { libc::prlimit(0, resource as _, &lim, std::ptr::null_mut()) } as libc::c_long)
        .map(drop)
}

pub fn personality(persona: libc::c_ulong) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::personality(persona) } as libc::c_long).map(drop)
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn mount_setattr(target: &OwnedFd, recursive: bool, attr: &MountAttr) -> io::Result<()> {
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    // SAFETY: valid fd, empty path with AT_EMPTY_PATH, attr struct of the
    // size we pass.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            target.as_raw_fd(),
            c"".as_ptr(),
            flags as libc::c_uint,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// Makes a mount and every mount below it read-only (the `rro` option).
pub fn set_recursive_readonly(target: &OwnedFd) -> io::Result<()> {
    set_recursive_flags(target, libc::MS_RDONLY)
}

/// Sets `MS_RDONLY`, `MS_NOSUID`, `MS_NODEV` and `MS_NOEXEC` of `ms_flags` on a mount and
/// every mount below it, in one call; other bits are ignored. Flags already set stay set.
pub fn set_recursive_flags(target: &OwnedFd, ms_flags: libc::c_ulong) -> io::Result<()> {
    let mut attr_set = 0;
    for (ms, attr) in [
        (libc::MS_RDONLY, 0x1),
        (libc::MS_NOSUID, 0x2),
        (libc::MS_NODEV, 0x4),
        (libc::MS_NOEXEC, 0x8),
    ] {
        if ms_flags & ms != 0 {
            attr_set |= attr;
        }
    }
    mount_setattr(
        target,
        true,
        &MountAttr {
            attr_set,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        },
    )
}

/// A detached copy of the mount (tree, with `recursive`) at `path`, as
/// open_tree(OPEN_TREE_CLONE) gives it: attached nowhere until moved.
pub fn clone_mount_tree(path: &Path, recursive: bool) -> io::Result<OwnedFd> {
    use rustix::mount::OpenTreeFlags;
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    rustix::mount::open_tree(rustix::fs::CWD, path, flags).map_err(io::Error::from)
}

/// Gives a detached mount (tree) the id mapping of the user namespace
/// `userns`: files owned by id N on disk appear owned by what N maps to.
pub fn set_idmap(tree: &OwnedFd, userns: &OwnedFd, recursive: bool) -> io::Result<()> {
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    mount_setattr(
        tree,
        recursive,
        &MountAttr {
            attr_set: MOUNT_ATTR_IDMAP,
            attr_clr: 0,
            propagation: 0,
            userns_fd: userns.as_raw_fd() as u64,
        },
    )
}

/// Attaches a detached mount tree on top of the directory or file `target`
/// (an O_PATH descriptor).
pub fn move_mount_onto(tree: &OwnedFd, target: &OwnedFd) -> io::Result<()> {
    use rustix::mount::MoveMountFlags;
    rustix::mount::move_mount(
        tree,
        c"",
        target,
        c"",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(io::Error::from)
}

/// clone3(2) with CLONE_INTO_CGROUP: the child starts life inside the cgroup
/// `cgroup` (a cgroup2 directory descriptor), so not one instruction of it
/// runs elsewhere. Fork-like like [`clone_with_flags`] (no new stack, no
/// CLONE_VM), with the same single-threaded precondition.
///
/// ENOSYS (no clone3, or a seccomp profile that hides it) and E2BIG (a
/// kernel that predates the cgroup field) tell the caller to fall back to
/// clone and a write to cgroup.procs.
pub fn clone_into_cgroup(flags: libc::c_int, cgroup: &impl AsRawFd) -> io::Result<libc::pid_t> {
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let args = CloneArgs {
        flags: (flags as u32 as u64) | CLONE_INTO_CGROUP,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup.as_raw_fd() as u64,
    };
    // SAFETY: as for clone_with_flags: no CLONE_VM and no new stack, so the
    // child continues on a private copy of our memory, like fork; the runtime
    // is single-threaded. The args struct outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    cvt(ret).map(|p| p as libc::pid_t)
}

/// Closes the child's copy of a descriptor the parent keeps, so that the
/// parent's death reads as end-of-file on the child's end of a socket pair.
/// Only for a freshly forked child, which never drops the `OwnedFd` it
/// inherited.
pub fn close_in_child(fd: &impl AsRawFd) {
    // SAFETY: closing our copy of the descriptor; the owner in this process
    // is never used or dropped again (the child execs or exits).
    unsafe { libc::close(fd.as_raw_fd()) };
}
