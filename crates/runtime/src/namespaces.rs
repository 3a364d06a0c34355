//! Which namespaces to create and which to join, and the id maps and time
//! offsets that must be written before a namespace is used.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::error::{Context, Error, Result};
use crate::sys;

pub fn clone_flag(t: LinuxNamespaceType) -> libc::c_int {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => 0x80, // CLONE_NEWTIME
    }
}

pub struct Plan {
    /// Flags for clone(2): every new namespace but cgroup and time, which
    /// init unshares itself (cgroup once it is in its cgroup; time because
    /// clone(2) cannot take the flag).
    pub clone_flags: libc::c_int,
    pub new_cgroupns: bool,
    pub new_timens: bool,
    /// Namespaces to join, opened now, user namespace first and mount last.
    pub joins: Vec<(LinuxNamespaceType, OwnedFd)>,
}

impl Plan {
    pub fn new(spec: &Spec) -> Result<Self> {
        let mut plan = Plan {
            clone_flags: 0,
            new_cgroupns: false,
            new_timens: false,
            joins: Vec::new(),
        };
        let mut joins: Vec<(LinuxNamespaceType, PathBuf)> = Vec::new();
        for (typ, path) in crate::spec::namespaces(spec) {
            match (typ, path) {
                (t, Some(p)) => joins.push((t, p)),
                (LinuxNamespaceType::Cgroup, None) => plan.new_cgroupns = true,
                (LinuxNamespaceType::Time, None) => plan.new_timens = true,
                (t, None) => plan.clone_flags |= clone_flag(t),
            }
        }
        let order = |t: &LinuxNamespaceType| match t {
            LinuxNamespaceType::User => 0,
            LinuxNamespaceType::Mount => 2,
            _ => 1,
        };
        joins.sort_by_key(|(t, _)| order(t));
        for (t, p) in joins {
            let fd = std::fs::File::open(&p).map(OwnedFd::from).map_err(|e| {
                Error::config("linux.namespaces[].path", format!("{}: {e}", p.display()))
            })?;
            plan.joins.push((t, fd));
        }
        Ok(plan)
    }

    pub fn new_userns(&self) -> bool {
        self.clone_flags & libc::CLONE_NEWUSER != 0
    }

    /// Joins every namespace given by path. Runs in the intermediate child.
    pub fn join_all(&self) -> Result<()> {
        for (t, fd) in &self.joins {
            sys::setns(fd.as_raw_fd(), clone_flag(*t)).context(|| format!("join {t} namespace"))?;
        }
        Ok(())
    }
}

/// Writes uid_map and gid_map of `pid` (the container's init) from the
/// parent user namespace, as the spec's linux.uidMappings/gidMappings say.
pub fn write_id_maps(spec: &Spec, pid: i32) -> Result<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    write_maps(
        pid,
        linux.uid_mappings().as_deref().unwrap_or_default(),
        linux.gid_mappings().as_deref().unwrap_or_default(),
    )
}

/// Root writes any mapping itself. Without root the kernel accepts only the
/// caller's own id mapped once; anything more goes through the setuid
/// helpers newuidmap/newgidmap, which check /etc/subuid and /etc/subgid.
fn write_maps(pid: i32, uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<()> {
    let root = sys::geteuid() == 0;
    if root || is_only_own(uids, sys::geteuid()) {
        std::fs::write(format!("/proc/{pid}/uid_map"), map_text(uids))
            .context(|| "write uid_map".into())?;
    } else {
        run_map_helper("newuidmap", pid, uids)?;
    }
    if root || is_only_own(gids, sys::getegid()) {
        // Without root on the host, gid_map can only be written once
        // setgroups is denied; newgidmap decides that for itself.
        if !root {
            std::fs::write(format!("/proc/{pid}/setgroups"), "deny")
                .context(|| "write setgroups".into())?;
        }
        std::fs::write(format!("/proc/{pid}/gid_map"), map_text(gids))
            .context(|| "write gid_map".into())?;
    } else {
        run_map_helper("newgidmap", pid, gids)?;
    }
    Ok(())
}

fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

fn is_only_own(maps: &[LinuxIdMapping], id: u32) -> bool {
    matches!(maps, [m] if m.host_id() == id && m.size() == 1)
}

fn run_map_helper(helper: &str, pid: i32, maps: &[LinuxIdMapping]) -> Result<()> {
    let mut cmd = std::process::Command::new(helper);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                " (install the uidmap package: without root, mapping more than the own id needs it)"
            } else {
                ""
            };
            Error::Sys {
                context: format!("run {helper}{hint}"),
                source: e,
            }
        })?;
    if !out.status.success() {
        return Err(Error::Init(format!(
            "{helper} {pid} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// A user namespace with the given mappings, held only by the descriptor
/// returned: what an idmapped mount takes its mapping from. The process that
/// created it is gone when this returns.
pub fn userns_with_maps(uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<OwnedFd> {
    let pid = sys::clone_with_flags(libc::CLONE_NEWUSER)
        .context(|| "clone a user namespace for an idmapped mount".into())?;
    if pid == 0 {
        // Lives only until the parent has opened its namespace; never
        // outlives the parent.
        let _ = sys::set_pdeathsig(libc::SIGKILL);
        loop {
            // SAFETY: pause has no preconditions.
            unsafe { libc::pause() };
        }
    }
    struct Reap(i32);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = sys::kill(self.0, libc::SIGKILL);
            let _ = sys::waitpid(self.0, 0);
        }
    }
    let _reap = Reap(pid);
    write_maps(pid, uids, gids)?;
    std::fs::File::open(format!("/proc/{pid}/ns/user"))
        .map(OwnedFd::from)
        .context(|| "open the idmapped mount's user namespace".into())
}

/// After unshare(CLONE_NEWTIME) and before anything enters the namespace.
pub fn write_time_offsets(spec: &Spec) -> Result<()> {
    let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    else {
        return Ok(());
    };
    let mut s = String::new();
    for (clock, off) in offsets {
        s.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    if s.is_empty() {
        return Ok(());
    }
    std::fs::write("/proc/self/timens_offsets", s).context(|| "write timens_offsets".into())
}
