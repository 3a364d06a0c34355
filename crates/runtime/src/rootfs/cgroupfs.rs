//! The `cgroup` mount type: the container's view of /sys/fs/cgroup. With a
//! cgroup namespace the hierarchies are mounted fresh (the kernel roots them
//! at the container's cgroup); without one the container's own directories
//! are bound in from the host.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

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
        if mount_one(s, &target, dest, &hierarchies[0], base_flags, ro)? && ro {
            let bound = sys::open_in_root(root, dest, OFlags::PATH)
                .context(|| format!("reopen {}", dest.display()))?;
            remount_bind(&bound, libc::MS_RDONLY | base_flags)
                .context(|| format!("remount {} read-only", dest.display()))?;
        }
        return Ok(());
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
    // The tmpfs is new and holds nothing from the image: its entries are reached from its
    // root without a walk from the container's root.
    let top = sys::open_in_root(root, dest, OFlags::PATH)
        .context(|| format!("reopen {}", dest.display()))?;
    // One recursive attribute change makes the whole tree read-only; a remount per
    // hierarchy is the fallback for kernels without mount_setattr (before 5.12).
    let mut bound_any = false;
    for h in &hierarchies {
        let Some(name) = h.mountpoint.file_name() else {
            continue;
        };
        let sub_dest = dest.join(name);
        let sub = subdir(&top, name).context(|| format!("create {}", sub_dest.display()))?;
        bound_any |= mount_one(s, &sub, &sub_dest, h, base_flags, ro)?;
    }
    if !ro {
        return Ok(());
    }
    match sys::set_recursive_flags(&top, libc::MS_RDONLY | base_flags) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            if bound_any {
                for h in &hierarchies {
                    if let Some(name) = h.mountpoint.file_name() {
                        let sub_dest = dest.join(name);
                        let sub = rustix::fs::openat(
                            &top,
                            name,
                            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                            Mode::empty(),
                        )
                        .map_err(std::io::Error::from)
                        .context(|| format!("reopen {}", sub_dest.display()))?;
                        remount_bind(&sub, libc::MS_RDONLY | base_flags)
                            .context(|| format!("remount {} read-only", sub_dest.display()))?;
                    }
                }
            }
            remount_bind(&top, libc::MS_RDONLY)
                .context(|| format!("remount {} read-only", dest.display()))
        }
        Err(e) => Err(e).context(|| format!("make {} read-only", dest.display())),
    }
}

/// Makes directory `name` in the fresh tmpfs `top` and opens it.
fn subdir(top: &OwnedFd, name: &OsStr) -> std::io::Result<OwnedFd> {
    match rustix::fs::mkdirat(top, name, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    rustix::fs::openat(
        top,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(Into::into)
}

/// Mounts one hierarchy on `target`. Returns whether a host directory was bound there (a
/// bind keeps the host mount's flags until the caller makes it read-only).
fn mount_one(
    s: &Setup,
    target: &OwnedFd,
    dest: &Path,
    h: &Hierarchy,
    flags: libc::c_ulong,
    ro: bool,
) -> Result<bool> {
    if s.cgroupns {
        let data = (h.fstype == "cgroup").then_some(h.subsystems.as_str());
        let ro_flag = if ro { libc::MS_RDONLY } else { 0 };
        sys::mount_path(
            Some(Path::new(&h.fstype)),
            &sys::fd_path(target),
            Some(&h.fstype),
            flags | ro_flag,
            data,
        )
        .context(|| format!("mount {} on {}", h.fstype, dest.display()))?;
        return Ok(false);
    }
    // The container's directory in this hierarchy, if it has one.
    let Some(src) = s.cgroup_paths.iter().find(|p| p.starts_with(&h.mountpoint)) else {
        return Ok(false);
    };
    sys::mount_path(
        Some(src),
        &sys::fd_path(target),
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .context(|| format!("bind {} on {}", src.display(), dest.display()))?;
    Ok(true)
}
