//! Which namespaces to create and which to join, and the id maps and time
//! offsets that must be written before a namespace is used.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

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

/// Writes uid_map and gid_map of `pid` from the parent user namespace.
pub fn write_id_maps(spec: &Spec, pid: i32) -> Result<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    let fmt = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect::<String>()
    };
    // Without root on the host, gid_map can only be written once setgroups is
    // denied.
    if sys::geteuid() != 0 {
        let _ = std::fs::write(format!("/proc/{pid}/setgroups"), "deny");
    }
    std::fs::write(format!("/proc/{pid}/uid_map"), fmt(linux.uid_mappings()))
        .context(|| "write uid_map".into())?;
    std::fs::write(format!("/proc/{pid}/gid_map"), fmt(linux.gid_mappings()))
        .context(|| "write gid_map".into())?;
    Ok(())
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
