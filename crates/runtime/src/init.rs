//! The container's init process between clone and execve. It runs in the new
//! namespaces, talks to the parent over a seqpacket socket, and holds before
//! execve until `start` writes to the exec fifo.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::capabilities::CapSets;
use crate::error::{Context, Error, Result};
use crate::process::{self, Exec};
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
    /// The cgroup v1 `tasks` files init writes itself into.
    pub cgroup_join: &'a [OwnedFd],
    /// What the user's process is executed through, if anything.
    pub exec_trampoline: Option<&'a OwnedFd>,
    pub preserve_fds: u32,
    pub seccomp: Option<&'a berth_seccomp::CompiledFilter>,
    pub idmapped: &'a [rootfs::idmap::IdmappedTree],
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

/// Where init waits until the parent has written its id maps and sent the
/// state. Passing it the first time also does what needs the cgroup and the
/// maps: becoming root of a user namespace and unsharing the cgroup namespace.
struct Gate<'a> {
    a: &'a InitArgs<'a>,
    state_json: std::cell::RefCell<Option<Vec<u8>>>,
}

impl<'a> Gate<'a> {
    fn new(a: &'a InitArgs<'a>) -> Self {
        Gate {
            a,
            state_json: std::cell::RefCell::new(None),
        }
    }

    fn pass(&self) -> Result<()> {
        if self.state_json.borrow().is_some() {
            return Ok(());
        }
        let json = expect(self.a.sync, msg::GO);
        *self.state_json.borrow_mut() = Some(json);
        if self.a.in_userns {
            // Become the namespace's root, whatever uid we were mapped from.
            let _ = sys::setresgid(0);
            let _ = sys::setresuid(0);
        }
        if self.a.new_cgroupns {
            sys::unshare(libc::CLONE_NEWCGROUP).context(|| "unshare cgroup namespace".into())?;
        }
        Ok(())
    }

    /// The container state the parent sent; empty before the gate.
    fn state_json(&self) -> Vec<u8> {
        self.state_json.borrow().clone().unwrap_or_default()
    }
}

/// An error message init already sent, if there is one waiting.
pub fn pending_error(sync: &OwnedFd) -> Option<Error> {
    let mut buf = vec![0u8; 8192];
    match rustix::net::recv(sync, &mut buf, rustix::net::RecvFlags::DONTWAIT) {
        Ok((n, _)) if n > 0 && buf[0] == msg::ERROR => Some(Error::from_child(&buf[1..n])),
        _ => None,
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
pub(crate) fn expect(sync: &OwnedFd, want: u8) -> Vec<u8> {
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

/// Sends `err` to the parent and exits: how a child of the runtime fails.
pub fn fail_to_parent(sync: &OwnedFd, err: &Error) -> ! {
    let mut m = vec![msg::ERROR];
    m.extend_from_slice(err.to_string().as_bytes());
    let _ = send(sync, &m);
    std::process::exit(1);
}

/// Sends the pid of the process it forked to the parent and exits: the last
/// act of an intermediate process.
pub fn report_pid_and_exit(sync: &OwnedFd, pid: i32) -> ! {
    let mut m = vec![msg::PID];
    m.extend_from_slice(&pid.to_ne_bytes());
    let _ = send(sync, &m);
    std::process::exit(0);
}

/// Reads what an intermediate process `mid` reported (a pid or its error)
/// and reaps it.
pub fn read_intermediate(sync: &OwnedFd, mid: i32) -> Result<i32> {
    let mut buf = [0u8; 4096];
    let n = recv(sync, &mut buf).context(|| "read from intermediate process".into())?;
    let _ = sys::waitpid(mid, 0);
    match buf[..n].first() {
        Some(&msg::PID) if n == 5 => Ok(i32::from_ne_bytes([buf[1], buf[2], buf[3], buf[4]])),
        Some(&msg::ERROR) => Err(Error::from_child(&buf[1..n])),
        _ => Err(Error::Init("intermediate process exited".into())),
    }
}

/// Runs init to the point of execve. Never returns.
pub fn run(a: InitArgs) -> ! {
    match setup(&a) {
        Ok((exec, state_json)) => {
            exec_after_start(&a, exec, &state_json);
        }
        Err(e) => fail_to_parent(a.sync, &e),
    }
}

/// Returns what to exec and the container state (from the parent) that
/// hooks receive.
fn setup(a: &InitArgs) -> Result<(Exec, Vec<u8>)> {
    // Nothing in the container may open our /proc/PID/exe or ptrace us
    // before execve replaces this binary (CVE-2019-5736). In a new user
    // namespace that waits until the id maps are written: without root the
    // parent (or newuidmap) can only write them to a dumpable process, and
    // nothing of the container runs before then.
    if !a.in_userns {
        sys::set_dumpable(false).context(|| "prctl(PR_SET_DUMPABLE)".into())?;
    }
    unblock_signals();
    // First, so that everything init does is charged to the container.
    berth_cgroups::join_self(a.cgroup_join).context(|| "join the container's cgroup".into())?;

    let spec = a.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::config("process", "missing"))?;
    // What needs the parent's go (id maps, the state for hooks) waits at the
    // gate: the cgroup namespace and cgroup mounts, hooks, the user's process.
    let gate = Gate::new(a);
    if a.in_userns {
        // Without its id maps a user namespace is of no use yet.
        gate.pass()?;
        sys::set_dumpable(false).context(|| "prctl(PR_SET_DUMPABLE)".into())?;
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
            before_cgroup_mount: &|| gate.pass(),
            idmapped: a.idmapped,
        };
        let root = rootfs::prepare(&setup)?;
        gate.pass()?;
        let state_json = gate.state_json();
        set_sysctls(spec)?;
        rootfs::restrict_paths(spec, &root)?;
        drop(root);
        pre_pivot_hooks(a, &state_json)?;
        if a.no_pivot {
            rootfs::chroot(a.rootfs, true)?;
        } else {
            rootfs::pivot(a.rootfs)?;
        }
        rootfs::apply_root_propagation(spec)?;
        if spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false)
        {
            rootfs::make_root_readonly()?;
        }
    } else {
        gate.pass()?;
        let state_json = gate.state_json();
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

    let exec = process::finalize(&process::Finalize {
        process,
        caps: a.caps,
        last_cap: a.last_cap,
        in_userns: a.in_userns,
        seccomp: a.seccomp,
        sync: a.sync,
        preserve_fds: a.preserve_fds,
    })?;

    send(a.sync, &[msg::READY]).context(|| "report ready".into())?;
    Ok((exec, gate.state_json()))
}

fn pre_pivot_hooks(a: &InitArgs, state_json: &[u8]) -> Result<()> {
    if a.parent_hooks {
        send(a.sync, &[msg::HOOKS]).context(|| "request hooks".into())?;
        expect(a.sync, msg::HOOKS_DONE);
    }
    let hooks = a.spec.hooks().as_ref();
    // runc runs them from the container's root, which relative paths in
    // them expect.
    if hooks.is_some_and(|h| h.create_container().as_ref().is_some_and(|v| !v.is_empty())) {
        std::env::set_current_dir(a.rootfs).context(|| format!("chdir {}", a.rootfs.display()))?;
    }
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

/// Unblocks every signal and restores default dispositions: the runtime
/// ignores SIGPIPE (as every Rust program does), and an ignored signal would
/// stay ignored across execve into the container's process.
pub(crate) fn unblock_signals() {
    // SAFETY: sigset operations on a local set; signal() with SIG_DFL.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        // Raw rt_sigaction: glibc's wrapper refuses the two real-time
        // signals it reserves for itself, which may arrive ignored too.
        #[repr(C)]
        struct KernelSigaction {
            handler: usize,
            flags: u64,
            restorer: usize,
            mask: u64,
        }
        let dfl = KernelSigaction {
            handler: libc::SIG_DFL,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        for sig in 1..=64 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    &dfl as *const KernelSigaction,
                    std::ptr::null_mut::<KernelSigaction>(),
                    8usize,
                );
            }
        }
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
    process::install_late_seccomp(a.seccomp, a.spec.process().as_ref());
    let hooks = a.spec.hooks().as_ref();
    if let Err(e) = hooks::run_all(
        "startContainer",
        hooks.and_then(|h| h.start_container().as_ref()),
        state_json,
    ) {
        let _ = writeln!(std::io::stderr(), "berth-runtime: {e}");
        std::process::exit(1);
    }
    process::exec_now(&exec, a.exec_trampoline)
}
