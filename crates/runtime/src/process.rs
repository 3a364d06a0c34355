//! The last steps before execve that every container process goes through,
//! init and exec alike: limits, identity, capabilities, cwd, no_new_privs,
//! seccomp, and the exec itself.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Process;

use crate::capabilities::CapSets;
use crate::error::{Context, Error, Result};
use crate::sys;

pub struct Finalize<'a> {
    pub process: &'a Process,
    pub caps: Option<CapSets>,
    pub last_cap: u32,
    pub in_userns: bool,
    pub seccomp: Option<&'a berth_seccomp::CompiledFilter>,
    /// Where a seccomp listener descriptor goes.
    pub sync: &'a OwnedFd,
    /// Descriptors from 3 up that the process keeps (`--preserve-fds`).
    pub preserve_fds: u32,
}

/// Applies everything up to the exec; returns what to exec.
pub fn finalize(f: &Finalize) -> Result<Exec> {
    let process = f.process;
    set_rlimits(process)?;
    let user = process.user();
    if let Some(mask) = user.umask() {
        sys::umask(mask);
    }

    let exec = resolve_exec(process)?;

    // Before any seccomp filter, which may not allow close_range.
    sys::cloexec_from(3 + f.preserve_fds).context(|| "mark descriptors close-on-exec".into())?;

    // As root, before a filter that may refuse getcwd; a cwd only the user
    // can enter is retried once we are that user.
    let early_cwd = std::env::set_current_dir(process.cwd());
    if early_cwd.is_ok() {
        check_cwd_inside()?;
    }

    // Without no_new_privs installing a filter needs CAP_SYS_ADMIN, so it
    // happens before capabilities go; a listener descriptor must reach the
    // parent while it still listens. Otherwise the filter waits for execve.
    if let Some(filter) = f.seccomp {
        if !no_new_privs(process) || filter.uses_notify() {
            if no_new_privs(process) {
                sys::set_no_new_privs().context(|| "prctl(PR_SET_NO_NEW_PRIVS)".into())?;
            }
            install_seccomp(f.sync, filter)?;
        }
    }

    if let Some(caps) = &f.caps {
        caps.drop_bounding(f.last_cap)
            .context(|| "drop bounding capabilities".into())?;
    }
    sys::set_keepcaps(true).context(|| "prctl(PR_SET_KEEPCAPS)".into())?;
    // Exactly the listed groups, as runc sets them (the primary group included when listed).
    let groups: Vec<u32> = user.additional_gids().clone().unwrap_or_default();
    if !(f.in_userns && sys::geteuid() != 0) {
        // setgroups may be denied in a rootless user namespace.
        if let Err(e) = sys::setgroups(&groups) {
            if !(f.in_userns && e.raw_os_error() == Some(libc::EPERM)) {
                return Err(e).context(|| "setgroups".into());
            }
        }
    }
    fix_stdio_owner(user.uid());
    sys::setresgid(user.gid()).context(|| format!("setresgid({})", user.gid()))?;
    sys::setresuid(user.uid()).context(|| format!("setresuid({})", user.uid()))?;
    sys::set_keepcaps(false).context(|| "prctl(PR_SET_KEEPCAPS)".into())?;
    if let Some(caps) = &f.caps {
        caps.apply(f.last_cap)
            .context(|| "set capabilities".into())?;
    }

    if early_cwd.is_err() {
        std::env::set_current_dir(process.cwd())
            .context(|| format!("chdir to cwd {:?}", process.cwd()))?;
        check_cwd_inside()?;
    }

    if no_new_privs(process) {
        sys::set_no_new_privs().context(|| "prctl(PR_SET_NO_NEW_PRIVS)".into())?;
    }

    Ok(exec)
}

/// Marks every descriptor close-on-exec, installs a late seccomp filter and
/// executes the process. Never returns.
/// Installs the seccomp filter that waits until just before the user's
/// process (no_new_privs set, no listener). startContainer hooks run after
/// it, as with runc, so the profile applies to them too.
pub fn install_late_seccomp(
    seccomp: Option<&berth_seccomp::CompiledFilter>,
    process: Option<&Process>,
) {
    if let Some(filter) = seccomp {
        if process.is_some_and(no_new_privs) && !filter.uses_notify() {
            if let Err(e) = berth_seccomp::install(filter) {
                let _ = writeln!(
                    std::io::stderr(),
                    "berth-runtime: install seccomp filter: {e}"
                );
                std::process::exit(1);
            }
        }
    }
}

/// Executes the process. Descriptors were marked close-on-exec in
/// `finalize`, and everything opened since is close-on-exec by construction.
/// Never returns.
pub fn exec_now(exec: &Exec, trampoline: Option<&OwnedFd>) -> ! {
    let err = match trampoline {
        // The trampoline reports failures tersely: say what fails early.
        Some(fd) => match rustix::fs::access(exec.path.as_c_str(), rustix::fs::Access::EXEC_OK) {
            Err(e) => e.into(),
            Ok(()) => {
                let mut argv = Vec::with_capacity(exec.argv.len() + 2);
                argv.push(crate::exec_trampoline::ARGV0.to_owned());
                argv.push(exec.path.clone());
                argv.extend(exec.argv.iter().cloned());
                sys::execveat_fd(fd, &argv, &exec.env)
            }
        },
        None => sys::execve(&exec.path, &exec.argv, &exec.env),
    };
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

pub struct Exec {
    path: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
}

/// The process's stdio belongs to its user, so it can reopen its terminal
/// (/dev/stdout, `tty`), as runc arranges. /dev/null stays root's.
fn fix_stdio_owner(uid: u32) {
    for fd in 0..3 {
        // SAFETY: fds 0-2 are ours for the duration of the calls.
        let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let Ok(st) = rustix::fs::fstat(b) else {
            continue;
        };
        let is_null = rustix::fs::FileType::from_raw_mode(st.st_mode)
            == rustix::fs::FileType::CharacterDevice
            && st.st_rdev == sys::makedev(1, 3);
        if is_null || st.st_uid == uid {
            continue;
        }
        let _ = rustix::fs::fchown(b, Some(rustix::fs::Uid::from_raw(uid)), None);
    }
}

fn no_new_privs(process: &oci_spec::runtime::Process) -> bool {
    process.no_new_privileges().unwrap_or(false)
}

fn install_seccomp(sync: &OwnedFd, filter: &berth_seccomp::CompiledFilter) -> Result<()> {
    use std::os::fd::AsFd;
    let listener = berth_seccomp::install(filter).map_err(|e| Error::Sys {
        context: "install seccomp filter".into(),
        source: std::io::Error::from_raw_os_error(e as i32),
    })?;
    if let Some(fd) = listener {
        berth_seccomp::send_fd(sync.as_fd(), fd.as_fd()).map_err(|e| Error::Sys {
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
        // As runc: a directory or a file without an execute bit fails `create`.
        if !is_executable(&p) {
            return Err(Error::Init(format!("exec: {arg0:?}: permission denied")));
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
