//! `exec`: a new process inside a running container. It joins every
//! namespace and the cgroup of the container's init, then goes through the
//! same final steps as init (identity, capabilities, seccomp, exec).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use crate::capabilities::{self, CapSets};
use crate::error::{Context, Error, Result};
use crate::init::{self, msg};
use crate::namespaces;
use crate::state::{Root, Status};
use crate::{console, process, run, spec, sys, util};

#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub id: String,
    pub process: Process,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
}

/// What `exec ID CMD...` flags change in the container's own process spec.
#[derive(Debug, Default, Clone)]
pub struct ExecOverrides {
    pub args: Vec<String>,
    pub tty: bool,
    pub cwd: Option<PathBuf>,
    pub env: Vec<String>,
    /// `uid[:gid]`
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
}

/// The process to exec: the container's own process spec with the flags'
/// changes, as runc builds it.
pub fn process_from_flags(spec: &Spec, o: &ExecOverrides) -> Result<Process> {
    let mut p = spec.process().clone().unwrap_or_default();
    if o.args.is_empty() {
        return Err(Error::config("args", "exec needs a command"));
    }
    p.set_args(Some(o.args.clone()));
    p.set_terminal(Some(o.tty));
    if let Some(cwd) = &o.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    for e in &o.env {
        let key = e.split('=').next().unwrap_or_default();
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if let Some(u) = &o.user {
        let (uid, gid) = match u.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (u.as_str(), None),
        };
        let uid: u32 = uid
            .parse()
            .map_err(|_| Error::config("user", format!("{u:?} is not uid[:gid]")))?;
        let gid: u32 = match gid {
            Some(g) => g
                .parse()
                .map_err(|_| Error::config("user", format!("{u:?} is not uid[:gid]")))?,
            None => 0,
        };
        let mut user = p.user().clone();
        user.set_uid(uid);
        user.set_gid(gid);
        p.set_user(user);
    }
    if !o.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(o.additional_gids.clone()));
        p.set_user(user);
    }
    if !o.caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &o.caps {
            let cap: oci_spec::runtime::Capability = name
                .trim_start_matches("CAP_")
                .parse()
                .map_err(|_| Error::config("cap", format!("unknown capability {name}")))?;
            let add = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            let (bounding, effective, permitted) = (
                add(caps.bounding()),
                add(caps.effective()),
                add(caps.permitted()),
            );
            caps.set_bounding(bounding);
            caps.set_effective(effective);
            caps.set_permitted(permitted);
        }
        p.set_capabilities(Some(caps));
    }
    if o.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}

fn ns_file(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Opens the namespaces of `pid` that differ from ours, user first and mount
/// last (joining the mount namespace moves our root).
fn container_namespaces(pid: i32) -> Result<Vec<(LinuxNamespaceType, OwnedFd)>> {
    use LinuxNamespaceType as T;
    let mut out = Vec::new();
    for t in [
        T::User,
        T::Ipc,
        T::Uts,
        T::Network,
        T::Pid,
        T::Cgroup,
        T::Time,
        T::Mount,
    ] {
        let name = ns_file(t);
        let theirs = format!("/proc/{pid}/ns/{name}");
        let Ok(their_meta) = std::fs::metadata(&theirs) else {
            continue;
        };
        if let Ok(ours) = std::fs::metadata(format!("/proc/self/ns/{name}")) {
            if ours.ino() == their_meta.ino() && ours.dev() == their_meta.dev() {
                continue;
            }
        }
        let f = std::fs::File::open(&theirs).context(|| format!("open {theirs}"))?;
        out.push((t, OwnedFd::from(f)));
    }
    Ok(out)
}

/// Runs the exec; in the foreground returns the process's exit code.
pub fn exec(root: &Root, o: &ExecOptions) -> Result<i32> {
    let state = root.load(&o.id)?;
    let status = state.live_status(&root.container_dir(&o.id));
    if status == Status::Paused {
        // runc's words, which callers match.
        return Err(Error::Init("cannot exec in a paused container".into()));
    }
    if !matches!(status, Status::Running | Status::Created) {
        return Err(Error::WrongStatus {
            id: o.id.clone(),
            action: "exec in",
            status: status.to_string(),
        });
    }
    // An init created with the exec trampoline runs the runtime binary from
    // disk until it is started: nothing may join it before (CVE-2019-5736).
    if status == Status::Created && !crate::exe_seal::exe_protected(state.pid) {
        return Err(Error::Init(
            "cannot exec in a container that is created but not started: start it first".into(),
        ));
    }
    spec::validate_process(&o.process, "process")?;
    let spec = spec::load(&state.bundle)?;
    let caps = CapSets::from_spec(o.process.capabilities().as_ref(), "process.capabilities")?;
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(profile) => Some(
            berth_seccomp::FilterCache::new(root.path.join(".seccomp"))
                .get_or_compile(profile)?
                .0,
        ),
        None => None,
    };
    let joins = container_namespaces(state.pid)?;
    let in_userns = joins.iter().any(|(t, _)| *t == LinuxNamespaceType::User);
    let terminal = o.process.terminal().unwrap_or(false);
    let sfd = if o.detach {
        None
    } else {
        Some(run::foreground_signals()?)
    };
    let (console_ours, console_theirs) = match (terminal, &o.console_socket) {
        (true, Some(p)) => (
            None,
            Some(
                console::connect(p)
                    .context(|| format!("connect to console socket {}", p.display()))?,
            ),
        ),
        (true, None) if !o.detach => {
            let (a, b) = sys::seqpacket_pair().context(|| "socketpair".into())?;
            (Some(a), Some(b))
        }
        (true, None) => {
            return Err(Error::config(
                "process.terminal",
                "a detached terminal needs --console-socket",
            ))
        }
        (false, _) => (None, None),
    };

    let (parent_sock, child_sock) = sys::seqpacket_pair().context(|| "socketpair".into())?;
    let mid = sys::clone_with_flags(0).context(|| "fork".into())?;
    if mid == 0 {
        sys::close_in_child(&parent_sock);
        let joined = joins.iter().try_for_each(|(t, fd)| {
            sys::setns(fd.as_raw_fd(), namespaces::clone_flag(*t))
                .context(|| format!("join {t} namespace"))
        });
        let child = joined.and_then(|()| sys::clone_with_flags(0).context(|| "fork".into()));
        match child {
            Ok(0) => exec_child(&ExecChild {
                process: &o.process,
                sync: &child_sock,
                console: console_theirs.as_ref(),
                caps,
                in_userns,
                seccomp: seccomp.as_ref(),
                preserve_fds: o.preserve_fds,
            }),
            Ok(pid) => init::report_pid_and_exit(&child_sock, pid),
            Err(e) => init::fail_to_parent(&child_sock, &e),
        }
    }
    drop(child_sock);
    drop(console_theirs);
    let pid = init::read_intermediate(&parent_sock, mid)?;
    let mut buf = vec![0u8; 8192];
    let fail = |e: Error| {
        let _ = sys::kill(pid, libc::SIGKILL);
        let _ = sys::waitpid(pid, 0);
        e
    };
    if let Some(cg) = &state.cgroup {
        cg.add_pid(pid).map_err(|e| fail(e.into()))?;
    }
    init::send(&parent_sock, &[msg::GO])
        .context(|| "release exec".into())
        .map_err(fail)?;
    loop {
        if init::peek(&parent_sock)
            .context(|| "read from exec".into())
            .map_err(fail)?
            == Some(msg::SECCOMP_FD)
        {
            // Each process with a listener gets its own descriptor; the
            // agent at listenerPath receives this one as it got init's.
            crate::container::forward_seccomp_listener(&spec, &state, &parent_sock)
                .map_err(fail)?;
            continue;
        }
        let n = init::recv(&parent_sock, &mut buf)
            .context(|| "read from exec".into())
            .map_err(fail)?;
        match buf.first() {
            Some(&msg::READY) => break,
            Some(&msg::ERROR) => return Err(fail(Error::from_child(&buf[1..n]))),
            // EOF: the process exec'd (close-on-exec closed its end) or died.
            _ if n == 0 => break,
            _ => return Err(fail(Error::Init("unexpected message from exec".into()))),
        }
    }
    if let Some(p) = &o.pid_file {
        util::write_replace_volatile(p, pid.to_string().as_bytes())
            .context(|| format!("write pid file {}", p.display()))?;
    }
    let Some(sfd) = sfd else {
        return Ok(0);
    };
    let master = match &console_ours {
        Some(sock) => Some(console::recv_fd(sock).context(|| "receive pty master".into())?),
        None => None,
    };
    let raw = run::attach_terminal(master.as_ref());
    let code = run::supervise(pid, &sfd, master.as_ref());
    drop(raw);
    Ok(code)
}

struct ExecChild<'a> {
    process: &'a Process,
    sync: &'a OwnedFd,
    console: Option<&'a OwnedFd>,
    caps: Option<CapSets>,
    in_userns: bool,
    seccomp: Option<&'a berth_seccomp::CompiledFilter>,
    preserve_fds: u32,
}

fn exec_child(c: &ExecChild) -> ! {
    let result = (|| -> Result<process::Exec> {
        sys::set_dumpable(false).context(|| "prctl(PR_SET_DUMPABLE)".into())?;
        init::unblock_signals();
        init::expect(c.sync, msg::GO);
        if let Some(sock) = c.console {
            sys::setsid().context(|| "setsid".into())?;
            let (master, slave, name) = console::open_pty().context(|| "open pty".into())?;
            if let Some(sz) = c.process.console_size() {
                console::set_size(master.as_raw_fd(), sz.height() as u16, sz.width() as u16);
            }
            console::attach_stdio(&slave).context(|| "make pty the controlling terminal".into())?;
            console::send_fd(sock, &master, &name).context(|| "send pty master".into())?;
        }
        let exec = process::finalize(&process::Finalize {
            process: c.process,
            caps: c.caps,
            last_cap: capabilities::last_cap(),
            in_userns: c.in_userns,
            seccomp: c.seccomp,
            sync: c.sync,
            preserve_fds: c.preserve_fds,
        })?;
        init::send(c.sync, &[msg::READY]).context(|| "report ready".into())?;
        Ok(exec)
    })();
    match result {
        Ok(exec) => {
            process::install_late_seccomp(c.seccomp, Some(c.process));
            process::exec_now(&exec, None)
        }
        Err(e) => init::fail_to_parent(c.sync, &e),
    }
}
