//! The container's init process between clone and execve. It runs in the new
//! namespaces, talks to the parent over a seqpacket socket, and holds before
//! execve until `start` writes to the exec fifo.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::capabilities::CapSets;
use crate::error::{Context, Error, Result};
use crate::{console, hooks, namespaces, rootfs, spec, sys};

/// Messages on the sync socket.
pub mod msg {
    /// parent → init: ids mapped and cgroup joined, go on.
    pub const GO: u8 = b'G';
    /// init → parent: mounts are ready, run the prestart/createRuntime hooks.
    pub const HOOKS: u8 = b'H';
    /// parent → init: hooks done.
    pub const HOOKS_DONE: u8 = b'h';
    /// init → parent: set up, waiting for start.
    pub const READY: u8 = b'R';
    /// init → parent: failed, the rest of the message says why.
    pub const ERROR: u8 = b'E';
    /// intermediate → parent: the pid of init follows (i32, native endian).
    pub const PID: u8 = b'P';
    /// init → parent: a seccomp listener descriptor rides along (SCM_RIGHTS).
    pub const SECCOMP_FD: u8 = b'S';
}

pub struct InitArgs<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub sync: &'a OwnedFd,
    pub exec_fifo: &'a OwnedFd,
    pub console: Option<&'a OwnedFd>,
    pub no_pivot: bool,
    pub caps: Option<CapSets>,
    pub last_cap: u32,
    pub new_cgroupns: bool,
    pub new_timens: bool,
    pub in_userns: bool,
    pub parent_hooks: bool,
    pub cgroup_paths: &'a [PathBuf],
    pub preserve_fds: u32,
    pub seccomp: Option<&'a berth_seccomp::CompiledFilter>,
}

pub fn send(sync: &OwnedFd, data: &[u8]) -> std::io::Result<()> {
    let n = rustix::net::send(sync, data, rustix::net::SendFlags::NOSIGNAL)?;
    if n != data.len() {
        return Err(std::io::Error::other("short write on sync socket"));
    }
    Ok(())
}

pub fn recv(sync: &OwnedFd, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match rustix::net::recv(sync, &mut *buf, rustix::net::RecvFlags::empty()) {
            Ok((n, _)) => return Ok(n),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The tag of the next message, without consuming it; None at end of file.
pub fn peek(sync: &OwnedFd) -> std::io::Result<Option<u8>> {
    let mut b = [0u8; 1];
    loop {
        match rustix::net::recv(sync, &mut b, rustix::net::RecvFlags::PEEK) {
            Ok((0, _)) => return Ok(None),
            Ok(_) => return Ok(Some(b[0])),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits for message `want`; returns what follows its tag.
fn expect(sync: &OwnedFd, want: u8) -> Vec<u8> {
    let mut b = vec![0u8; 64 * 1024];
    match recv(sync, &mut b) {
        Ok(n) if n >= 1 && b[0] == want => {
            b.truncate(n);
            b.remove(0);
            b
        }
        // The parent went away: nobody will start us.
        _ => std::process::exit(1),
    }
}

/// Runs init to the point of execve. Never returns.
pub fn run(a: InitArgs) -> ! {
    match setup(&a) {
        Ok((exec, state_json)) => {
            exec_after_start(&a, exec, &state_json);
        }
        Err(e) => {
            let mut m = vec![msg::ERROR];
            m.extend_from_slice(e.to_string().as_bytes());
            let _ = send(a.sync, &m);
            std::process::exit(1);
        }
    }
}

struct Exec {
    path: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
}

/// Returns what to exec and the container state (from the parent) that
/// hooks receive.
fn setup(a: &InitArgs) -> Result<(Exec, Vec<u8>)> {
    // Nothing in the container may open our /proc/PID/exe or ptrace us
    // before execve replaces this binary (CVE-2019-5736).
    sys::set_dumpable(false).context(|| "prctl(PR_SET_DUMPABLE)".into())?;
    unblock_signals();
    let state_json = expect(a.sync, msg::GO);

    let spec = a.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::config("process", "missing"))?;
    if a.in_userns {
        // Become the namespace's root, whatever uid we were mapped from.
        let _ = sys::setresgid(0);
        let _ = sys::setresuid(0);
    }
    if a.new_cgroupns {
        sys::unshare(libc::CLONE_NEWCGROUP).context(|| "unshare cgroup namespace".into())?;
    }
    if a.new_timens {
        sys::unshare(0x80).context(|| "unshare time namespace".into())?;
        namespaces::write_time_offsets(spec)?;
    }
    sys::setsid().context(|| "setsid".into())?;

    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        sys::sethostname(h).context(|| "sethostname".into())?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        sys::setdomainname(d).context(|| "setdomainname".into())?;
    }

    let has_mountns = spec::has_namespace(spec, LinuxNamespaceType::Mount);
    if has_mountns {
        let setup = rootfs::Setup {
            spec,
            rootfs: a.rootfs,
            in_userns: a.in_userns,
            cgroupns: spec::has_namespace(spec, LinuxNamespaceType::Cgroup),
            cgroup_paths: a.cgroup_paths,
        };
        let root = rootfs::prepare(&setup)?;
        set_sysctls(spec)?;
        rootfs::restrict_paths(spec, &root)?;
        drop(root);
        pre_pivot_hooks(a, &state_json)?;
        if a.no_pivot {
            rootfs::chroot(a.rootfs, true)?;
        } else {
            rootfs::pivot(a.rootfs)?;
        }
        if spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false)
        {
            rootfs::make_root_readonly()?;
        }
    } else {
        set_sysctls(spec)?;
        pre_pivot_hooks(a, &state_json)?;
        rootfs::chroot(a.rootfs, false)?;
    }

    if let Some(sock) = a.console {
        let (master, slave, name) = console::open_pty().context(|| "open pty".into())?;
        if let Some(sz) = process.console_size() {
            console::set_size(master.as_raw_fd(), sz.height() as u16, sz.width() as u16);
        }
        bind_console(&name);
        console::attach_stdio(&slave).context(|| "make pty the controlling terminal".into())?;
        console::send_fd(sock, &master, &name)
            .context(|| "send pty master to console socket".into())?;
    }

    set_rlimits(process)?;
    let user = process.user();
    if let Some(mask) = user.umask() {
        sys::umask(mask);
    }

    let exec = resolve_exec(process)?;

    // Without no_new_privs installing a filter needs CAP_SYS_ADMIN, so it
    // happens before capabilities go; a listener descriptor must reach the
    // parent while it still listens. Otherwise the filter waits for execve.
    if let Some(filter) = a.seccomp {
        if !no_new_privs(process) || filter.uses_notify() {
            if no_new_privs(process) {
                sys::set_no_new_privs().context(|| "prctl(PR_SET_NO_NEW_PRIVS)".into())?;
            }
            install_seccomp(a, filter)?;
        }
    }

    if let Some(caps) = &a.caps {
        caps.drop_bounding(a.last_cap)
            .context(|| "drop bounding capabilities".into())?;
    }
    sys::set_keepcaps(true).context(|| "prctl(PR_SET_KEEPCAPS)".into())?;
    let mut groups: Vec<u32> = user.additional_gids().clone().unwrap_or_default();
    groups.retain(|g| *g != user.gid());
    if !(a.in_userns && sys::geteuid() != 0) {
        // setgroups may be denied in a rootless user namespace.
        if let Err(e) = sys::setgroups(&groups) {
            if !(a.in_userns && e.raw_os_error() == Some(libc::EPERM)) {
                return Err(e).context(|| "setgroups".into());
            }
        }
    }
    sys::setresgid(user.gid()).context(|| format!("setresgid({})", user.gid()))?;
    sys::setresuid(user.uid()).context(|| format!("setresuid({})", user.uid()))?;
    sys::set_keepcaps(false).context(|| "prctl(PR_SET_KEEPCAPS)".into())?;
    if let Some(caps) = &a.caps {
        caps.apply(a.last_cap)
            .context(|| "set capabilities".into())?;
    }

    std::env::set_current_dir(process.cwd())
        .context(|| format!("chdir to cwd {:?}", process.cwd()))?;
    check_cwd_inside()?;

    if no_new_privs(process) {
        sys::set_no_new_privs().context(|| "prctl(PR_SET_NO_NEW_PRIVS)".into())?;
    }

    send(a.sync, &[msg::READY]).context(|| "report ready".into())?;
    Ok((exec, state_json))
}

fn no_new_privs(process: &oci_spec::runtime::Process) -> bool {
    process.no_new_privileges().unwrap_or(false)
}

fn install_seccomp(a: &InitArgs, filter: &berth_seccomp::CompiledFilter) -> Result<()> {
    use std::os::fd::AsFd;
    let listener = berth_seccomp::install(filter).map_err(|e| Error::Sys {
        context: "install seccomp filter".into(),
        source: std::io::Error::from_raw_os_error(e as i32),
    })?;
    if let Some(fd) = listener {
        berth_seccomp::send_fd(a.sync.as_fd(), fd.as_fd()).map_err(|e| Error::Sys {
            context: "send seccomp listener".into(),
            source: std::io::Error::from_raw_os_error(e as i32),
        })?;
    }
    Ok(())
}

/// A leaked descriptor used as cwd would put the process outside its root
/// (CVE-2024-21626): getcwd then reports an unreachable path.
fn check_cwd_inside() -> Result<()> {
    let cwd = std::env::current_dir().context(|| "getcwd".into())?;
    if !cwd.is_absolute() || cwd.as_os_str().as_bytes().starts_with(b"(unreachable)") {
        return Err(Error::config(
            "process.cwd",
            "resolves outside the container",
        ));
    }
    Ok(())
}

fn pre_pivot_hooks(a: &InitArgs, state_json: &[u8]) -> Result<()> {
    if a.parent_hooks {
        send(a.sync, &[msg::HOOKS]).context(|| "request hooks".into())?;
        expect(a.sync, msg::HOOKS_DONE);
    }
    let hooks = a.spec.hooks().as_ref();
    hooks::run_all(
        "createContainer",
        hooks.and_then(|h| h.create_container().as_ref()),
        state_json,
    )
}

/// /dev/console points at the container's terminal, as runc arranges.
fn bind_console(pts: &str) {
    let console = Path::new("/dev/console");
    if !console.exists() {
        let _ = std::fs::File::create(console);
    }
    let _ = sys::mount_path(Some(Path::new(pts)), console, None, libc::MS_BIND, None);
}

fn set_sysctls(spec: &Spec) -> Result<()> {
    let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    for (k, v) in sysctl {
        let path = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        std::fs::write(&path, v).context(|| format!("set sysctl {k}"))?;
    }
    Ok(())
}

fn set_rlimits(process: &oci_spec::runtime::Process) -> Result<()> {
    for r in process.rlimits().iter().flatten() {
        let res = rlimit_resource(r.typ());
        sys::setrlimit(res, r.soft(), r.hard()).context(|| format!("setrlimit {:?}", r.typ()))?;
    }
    Ok(())
}

fn rlimit_resource(t: oci_spec::runtime::PosixRlimitType) -> libc::c_int {
    use oci_spec::runtime::PosixRlimitType as T;
    (match t {
        T::RlimitCpu => libc::RLIMIT_CPU,
        T::RlimitFsize => libc::RLIMIT_FSIZE,
        T::RlimitData => libc::RLIMIT_DATA,
        T::RlimitStack => libc::RLIMIT_STACK,
        T::RlimitCore => libc::RLIMIT_CORE,
        T::RlimitRss => libc::RLIMIT_RSS,
        T::RlimitNproc => libc::RLIMIT_NPROC,
        T::RlimitNofile => libc::RLIMIT_NOFILE,
        T::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        T::RlimitAs => libc::RLIMIT_AS,
        T::RlimitLocks => libc::RLIMIT_LOCKS,
        T::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        T::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        T::RlimitNice => libc::RLIMIT_NICE,
        T::RlimitRtprio => libc::RLIMIT_RTPRIO,
        T::RlimitRttime => libc::RLIMIT_RTTIME,
    }) as libc::c_int
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Finds the executable in the container's root (we are already inside it),
/// so "not found" is reported by `create`, not lost after `start`.
fn resolve_exec(process: &oci_spec::runtime::Process) -> Result<Exec> {
    let args = process.args().as_deref().unwrap_or_default();
    let env: Vec<String> = process.env().clone().unwrap_or_default();
    let arg0 = args
        .first()
        .ok_or_else(|| Error::config("process.args", "must not be empty"))?;
    let path = if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        if !p.exists() {
            return Err(Error::Init(format!(
                "exec: {arg0:?}: no such file or directory"
            )));
        }
        p
    } else {
        let search = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        search
            .split(':')
            .map(|d| Path::new(if d.is_empty() { "." } else { d }).join(arg0))
            .find(|p| is_executable(p))
            .ok_or_else(|| {
                Error::Init(format!(
                    "exec: {arg0:?}: executable file not found in $PATH"
                ))
            })?
    };
    let c =
        |s: &str| CString::new(s).map_err(|_| Error::config("process.args", "contains a NUL byte"));
    Ok(Exec {
        path: CString::new(path.as_os_str().as_bytes())
            .map_err(|_| Error::config("process.args", "contains a NUL byte"))?,
        argv: args.iter().map(|s| c(s)).collect::<Result<_>>()?,
        env: env.iter().map(|s| c(s)).collect::<Result<_>>()?,
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn unblock_signals() {
    // SAFETY: sigset operations on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Blocks until `start` writes to the exec fifo, then execs.
fn exec_after_start(a: &InitArgs, exec: Exec, state_json: &[u8]) -> ! {
    let mut fifo = std::fs::File::from(match a.exec_fifo.try_clone() {
        Ok(f) => f,
        Err(_) => std::process::exit(1),
    });
    let mut b = [0u8; 1];
    loop {
        match fifo.read(&mut b) {
            Ok(1) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // Deleted before start.
            _ => std::process::exit(1),
        }
    }
    drop(fifo);
    let hooks = a.spec.hooks().as_ref();
    if let Err(e) = hooks::run_all(
        "startContainer",
        hooks.and_then(|h| h.start_container().as_ref()),
        state_json,
    ) {
        let _ = writeln!(std::io::stderr(), "berth-runtime: {e}");
        std::process::exit(1);
    }
    if let Err(e) = sys::cloexec_from(3 + a.preserve_fds) {
        let _ = writeln!(std::io::stderr(), "berth-runtime: close descriptors: {e}");
        std::process::exit(1);
    }
    // Last, so the profile need allow nothing of ours but execve.
    if let Some(filter) = a.seccomp {
        let process = a.spec.process().as_ref();
        if process.is_some_and(no_new_privs) && !filter.uses_notify() {
            if let Err(e) = berth_seccomp::install(filter) {
                let _ = writeln!(std::io::stderr(), "berth-runtime: install seccomp filter: {e}");
                std::process::exit(1);
            }
        }
    }
    let err = sys::execve(&exec.path, &exec.argv, &exec.env);
    let _ = writeln!(
        std::io::stderr(),
        "berth-runtime: exec {:?}: {err}",
        exec.path
    );
    std::process::exit(if err.raw_os_error() == Some(libc::ENOENT) {
        127
    } else {
        126
    });
}
