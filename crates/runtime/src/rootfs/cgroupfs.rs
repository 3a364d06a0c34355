//! The `cgroup` mount type: the container's view of /sys/fs/cgroup. With a
//! cgroup namespace the hierarchies are mounted fresh (the kernel roots them
//! at the container's cgroup); without one the container's own directories
//! are bound in from the host.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use super::paths::{self, Kind};
use super::{remount_bind, MountOptions, Setup};
use crate::error::{Context, Result};
use crate::sys;

struct Hierarchy {
    mountpoint: PathBuf,
    fstype: String,
    /// Controllers or `name=` options the hierarchy was mounted with.
    subsystems: String,
}

fn host_hierarchies() -> Vec<Hierarchy> {
    super::mountinfo::read()
        .into_iter()
        .filter(|m| {
            (m.fstype == "cgroup" || m.fstype == "cgroup2")
                && m.mountpoint.starts_with("/sys/fs/cgroup")
        })
        .map(|m| {
            let subsystems = m
                .superopts
                .split(',')
                .filter(|o| {
                    !matches!(*o, "rw" | "ro" | "relatime" | "nosuid" | "nodev" | "noexec")
                        && !o.starts_with("nsdelegate")
                        && !o.starts_with("memory_")
                })
                .collect::<Vec<_>>()
                .join(",");
            Hierarchy {
                mountpoint: m.mountpoint,
                fstype: m.fstype,
                subsystems,
            }
        })
        .collect()
}

pub fn mount(s: &Setup, root: &OwnedFd, dest: &Path, opts: &MountOptions) -> Result<()> {
    let base_flags =
        opts.flags & (libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RELATIME);
    let ro = opts.flags & libc::MS_RDONLY != 0;
    let hierarchies = host_hierarchies();
    let unified_only = hierarchies.len() == 1
        && hierarchies[0].fstype == "cgroup2"
        && hierarchies[0].mountpoint == Path::new("/sys/fs/cgroup");

    if unified_only {
        let target = paths::ensure_in_root(root, dest, Kind::Dir)
            .context(|| format!("create {}", dest.display()))?;
        return mount_one(s, root, &target, dest, &hierarchies[0], base_flags, ro);
    }

    let target = paths::ensure_in_root(root, dest, Kind::Dir)
        .context(|| format!("create {}", dest.display()))?;
    sys::mount_path(
        Some(Path::new("tmpfs")),
        &sys::fd_path(&target),
        Some("tmpfs"),
        base_flags,
        Some("mode=755"),
    )
    .context(|| format!("mount tmpfs on {}", dest.display()))?;
    for h in &hierarchies {
        let Some(name) = h.mountpoint.file_name() else {
            continue;
        };
        let sub_dest = dest.join(name);
        let sub = paths::ensure_in_root(root, &sub_dest, Kind::Dir)
            .context(|| format!("create {}", sub_dest.display()))?;
        mount_one(s, root, &sub, &sub_dest, h, base_flags, ro)?;
    }
    if ro {
        let top = sys::open_in_root(root, dest, rustix::fs::OFlags::PATH)
            .context(|| format!("reopen {}", dest.display()))?;
        remount_bind(&top, libc::MS_RDONLY)
            .context(|| format!("remount {} read-only", dest.display()))?;
    }
    Ok(())
}

fn mount_one(
    s: &Setup,
    root: &OwnedFd,
    target: &OwnedFd,
    dest: &Path,
    h: &Hierarchy,
    flags: libc::c_ulong,
    ro: bool,
) -> Result<()> {
    if s.cgroupns {
        let data = (h.fstype == "cgroup").then_some(h.subsystems.as_str());
        let ro_flag = if ro { libc::MS_RDONLY } else { 0 };
        return sys::mount_path(
            Some(Path::new(&h.fstype)),
            &sys::fd_path(target),
            Some(&h.fstype),
            flags | ro_flag,
            data,
        )
        .context(|| format!("mount {} on {}", h.fstype, dest.display()));
    }
    // The container's directory in this hierarchy, if it has one.
    let Some(src) = s.cgroup_paths.iter().find(|p| p.starts_with(&h.mountpoint)) else {
        return Ok(());
    };
    sys::mount_path(
        Some(src),
        &sys::fd_path(target),
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .context(|| format!("bind {} on {}", src.display(), dest.display()))?;
    if ro {
        let top = sys::open_in_root(root, dest, rustix::fs::OFlags::PATH)
            .context(|| format!("reopen {}", dest.display()))?;
        remount_bind(&top, libc::MS_RDONLY | flags)
            .context(|| format!("remount {} read-only", dest.display()))?;
    }
    Ok(())
}
