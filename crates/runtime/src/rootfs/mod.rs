//! Building the container's filesystem view inside its mount namespace:
//! propagation, the spec's mounts, /dev, masked and read-only paths, and
//! finally pivot_root. Every destination is resolved inside the rootfs.

mod cgroupfs;
mod devices;
pub mod idmap;
mod mountinfo;
mod options;
pub mod paths;

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Mount, Spec};
use rustix::fs::OFlags;

pub use options::{propagation_flag, MountOptions};

use crate::error::{Context, Error, Result};
use crate::sys;
use paths::Kind;

/// What the rootfs set-up needs besides the spec.
pub struct Setup<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    /// The container has its own user namespace: mknod is refused there, so
    /// devices are bind-mounted from the host instead.
    pub in_userns: bool,
    pub cgroupns: bool,
    /// Host cgroup directories of the container, bound in when the container
    /// has no cgroup namespace.
    pub cgroup_paths: &'a [PathBuf],
    /// Called before a cgroup filesystem is mounted: the container must be in
    /// its cgroup (and cgroup namespace) by then.
    pub before_cgroup_mount: &'a dyn Fn() -> Result<()>,
    /// Id-mapped source trees the runtime prepared, by mount index.
    pub idmapped: &'a [idmap::IdmappedTree],
}

/// Everything that happens before pivot_root. Returns the rootfs descriptor.
pub fn prepare(s: &Setup) -> Result<OwnedFd> {
    let linux = s.spec.linux().as_ref();
    // Nothing we mount may propagate back to the host. The spec's
    // rootfsPropagation applies after pivot_root, which refuses shared mounts.
    sys::mount_path(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_SLAVE,
        None,
    )
    .context(|| "make / a recursive slave".into())?;
    // pivot_root needs the new root to be a mount point.
    sys::mount_path(
        Some(s.rootfs),
        s.rootfs,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .context(|| format!("bind mount rootfs {}", s.rootfs.display()))?;
    let root = sys::open_dir(s.rootfs).context(|| format!("open rootfs {}", s.rootfs.display()))?;

    let mounts = s.spec.mounts().as_deref().unwrap_or_default();
    for (i, m) in mounts.iter().enumerate() {
        let tree = s.idmapped.iter().find(|t| t.index == i).map(|t| &t.tree);
        mount_entry(s, &root, m, tree).map_err(|e| match e {
            Error::Sys { context, source } => Error::Sys {
                context: format!("mounts[{i}] ({}): {context}", m.destination().display()),
                source,
            },
            other => other,
        })?;
    }

    let dev_is_host_bind = mounts.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && MountOptions::parse(m.options().as_deref().unwrap_or_default()).is_bind()
    });
    if !dev_is_host_bind {
        let devs = linux
            .and_then(|l| l.devices().as_deref())
            .unwrap_or_default();
        devices::create_all(&root, devs, s.in_userns)?;
        let has_devpts = mounts
            .iter()
            .any(|m| m.destination() == Path::new("/dev/pts"));
        devices::create_symlinks(&root, has_devpts)?;
    }
    Ok(root)
}

/// Masks and read-only paths; runs once /proc and /sys are mounted and
/// before pivot_root, so the host's /dev/null is what masks files.
pub fn restrict_paths(spec: &Spec, root: &OwnedFd) -> Result<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    for p in linux.masked_paths().as_deref().unwrap_or_default() {
        mask_path(root, Path::new(p)).context(|| format!("mask {p}"))?;
    }
    for p in linux.readonly_paths().as_deref().unwrap_or_default() {
        readonly_path(root, Path::new(p)).context(|| format!("make {p} read-only"))?;
    }
    Ok(())
}

fn mask_path(root: &OwnedFd, path: &Path) -> io::Result<()> {
    let target = match sys::open_in_root(root, path, OFlags::PATH | OFlags::NOFOLLOW) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if paths::is_dir(&target) {
        sys::mount_path(
            Some(Path::new("tmpfs")),
            &sys::fd_path(&target),
            Some("tmpfs"),
            libc::MS_RDONLY,
            None,
        )
    } else {
        sys::mount_path(
            Some(Path::new("/dev/null")),
            &sys::fd_path(&target),
            None,
            libc::MS_BIND,
            None,
        )
    }
}

fn readonly_path(root: &OwnedFd, path: &Path) -> io::Result<()> {
    let target = match sys::open_in_root(root, path, OFlags::PATH | OFlags::NOFOLLOW) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let p = sys::fd_path(&target);
    sys::mount_path(Some(&p), &p, None, libc::MS_BIND | libc::MS_REC, None)?;
    // The bind now sits on top: reopen to reach it rather than the directory
    // underneath.
    let top = sys::open_in_root(root, path, OFlags::PATH | OFlags::NOFOLLOW)?;
    remount_bind(&top, libc::MS_RDONLY | libc::MS_REC)
}

/// Remounts a bind mount with `flags`, keeping the flags the kernel locks on
/// the source mount (nosuid, nodev, noexec, atime) so the call is allowed.
fn remount_bind(target: &OwnedFd, flags: libc::c_ulong) -> io::Result<()> {
    let locked = locked_flags(target);
    sys::mount_path(
        None,
        &sys::fd_path(target),
        None,
        libc::MS_BIND | libc::MS_REMOUNT | flags | locked,
        None,
    )
}

fn locked_flags(target: &OwnedFd) -> libc::c_ulong {
    let Ok(st) = rustix::fs::fstatvfs(target) else {
        return 0;
    };
    use rustix::fs::StatVfsMountFlags as F;
    let f = st.f_flag;
    let mut out = 0;
    for (st_flag, ms) in [
        (F::NOSUID, libc::MS_NOSUID),
        (F::NODEV, libc::MS_NODEV),
        (F::NOEXEC, libc::MS_NOEXEC),
        (F::NOATIME, libc::MS_NOATIME),
        (F::NODIRATIME, libc::MS_NODIRATIME),
        (F::RELATIME, libc::MS_RELATIME),
    ] {
        if f.contains(st_flag) {
            out |= ms;
        }
    }
    out
}

/// `idmapped` is the mount's source already cloned and id-mapped, to attach
/// instead of binding the source.
fn mount_entry(s: &Setup, root: &OwnedFd, m: &Mount, idmapped: Option<&OwnedFd>) -> Result<()> {
    let opts = MountOptions::parse(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().as_deref().unwrap_or("");
    let dest = m.destination();

    if typ == "cgroup" || typ == "cgroup2" {
        (s.before_cgroup_mount)()?;
        return cgroupfs::mount(s, root, dest, &opts);
    }

    if opts.is_bind() {
        let src = m
            .source()
            .as_ref()
            .ok_or_else(|| Error::config("mounts[].source", "a bind mount needs a source"))?;
        // A prepared tree is what gets attached, and the source path may
        // not even be reachable from a user namespace.
        let is_dir = match idmapped {
            Some(tree) => paths::is_dir(tree),
            None => std::fs::metadata(src)
                .context(|| format!("bind source {}", src.display()))?
                .is_dir(),
        };
        let kind = if is_dir { Kind::Dir } else { Kind::File };
        let target = paths::ensure_in_root(root, dest, kind)
            .context(|| format!("create mount point {}", dest.display()))?;
        match idmapped {
            Some(tree) => sys::move_mount_onto(tree, &target)
                .context(|| format!("attach idmapped {}", src.display()))?,
            None => sys::mount_path(
                Some(src),
                &sys::fd_path(&target),
                None,
                libc::MS_BIND | (opts.flags & libc::MS_REC),
                None,
            )
            .context(|| format!("bind {}", src.display()))?,
        }
        let top =
            sys::open_in_root(root, dest, OFlags::PATH).context(|| "reopen bind mount".into())?;
        let extra = opts.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
        if extra != 0 {
            remount_bind(&top, extra).context(|| "remount bind with options".into())?;
        }
        if opts.recursive_ro {
            sys::set_recursive_readonly(&top).context(|| "rro".into())?;
        }
        apply_propagation(&top, &opts)?;
        return Ok(());
    }

    let target = paths::ensure_in_root(root, dest, Kind::Dir)
        .context(|| format!("create mount point {}", dest.display()))?;
    let source = m
        .source()
        .clone()
        .unwrap_or_else(|| PathBuf::from(if typ.is_empty() { "none" } else { typ }));
    let data = opts.data_string();
    let flags = opts.flags & !libc::MS_REMOUNT;
    let res = sys::mount_path(
        Some(&source),
        &sys::fd_path(&target),
        Some(typ),
        flags,
        data.as_deref(),
    );
    match res {
        Ok(()) => {}
        // Without its own network namespace owned by our user namespace the
        // kernel refuses a new sysfs; bind the host's, as runc does.
        Err(e) if typ == "sysfs" && e.raw_os_error() == Some(libc::EPERM) => {
            sys::mount_path(
                Some(Path::new("/sys")),
                &sys::fd_path(&target),
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            )
            .context(|| "bind /sys".into())?;
            let top =
                sys::open_in_root(root, dest, OFlags::PATH).context(|| "reopen /sys".into())?;
            remount_bind(&top, flags & !libc::MS_BIND).context(|| "remount /sys".into())?;
        }
        // In a user namespace devpts refuses a uid= or gid= the namespace
        // does not map (gid=5 from a spec written for root): mount it
        // without them, as crun does.
        Err(e)
            if typ == "devpts"
                && s.in_userns
                && e.raw_os_error() == Some(libc::EINVAL)
                && opts
                    .data
                    .iter()
                    .any(|d| d.starts_with("uid=") || d.starts_with("gid=")) =>
        {
            let data: Vec<&str> = opts
                .data
                .iter()
                .map(String::as_str)
                .filter(|d| !d.starts_with("uid=") && !d.starts_with("gid="))
                .collect();
            tracing::debug!("devpts: ids unmapped in the user namespace; mounting without them");
            sys::mount_path(
                Some(&source),
                &sys::fd_path(&target),
                Some(typ),
                flags,
                Some(&data.join(",")),
            )
            .context(|| format!("mount devpts on {}", dest.display()))?;
        }
        // mqueue likewise needs an IPC namespace the user namespace owns.
        Err(e) if typ == "mqueue" && e.raw_os_error() == Some(libc::EPERM) => {
            sys::mount_path(
                Some(Path::new("/dev/mqueue")),
                &sys::fd_path(&target),
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            )
            .context(|| "bind /dev/mqueue".into())?;
        }
        Err(e) => {
            return Err(Error::Sys {
                context: format!("mount {typ} on {}", dest.display()),
                source: e,
            })
        }
    }
    if !opts.propagation.is_empty() {
        let top = sys::open_in_root(root, dest, OFlags::PATH).context(|| "reopen mount".into())?;
        apply_propagation(&top, &opts)?;
    }
    Ok(())
}

fn apply_propagation(target: &OwnedFd, opts: &MountOptions) -> Result<()> {
    for &p in &opts.propagation {
        sys::mount_path(None, &sys::fd_path(target), None, p, None)
            .context(|| "set mount propagation".into())?;
    }
    Ok(())
}

/// Makes `rootfs` the root with the pivot_root(".", ".") trick, which needs no
/// directory inside the rootfs for the old root.
pub fn pivot(rootfs: &Path) -> Result<()> {
    std::env::set_current_dir(rootfs).context(|| format!("chdir {}", rootfs.display()))?;
    sys::pivot_root(Path::new("."), Path::new(".")).context(|| "pivot_root".into())?;
    // The old root now sits on top of the new one. Keep its unmount from
    // reaching the host's mounts, then detach it.
    sys::mount_path(
        None,
        Path::new("."),
        None,
        libc::MS_SLAVE | libc::MS_REC,
        None,
    )
    .context(|| "make old root a slave".into())?;
    sys::umount2(Path::new("."), libc::MNT_DETACH).context(|| "detach old root".into())?;
    std::env::set_current_dir("/").context(|| "chdir /".into())?;
    Ok(())
}

/// Applies `linux.rootfsPropagation` to the new root, once it is the root.
pub fn apply_root_propagation(spec: &Spec) -> Result<()> {
    let Some(flag) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(propagation_flag)
    else {
        return Ok(());
    };
    sys::mount_path(None, Path::new("/"), None, flag | libc::MS_REC, None)
        .context(|| "set rootfs propagation".into())
}

/// For containers without a mount namespace, and `--no-pivot`.
pub fn chroot(rootfs: &Path, moved: bool) -> Result<()> {
    if moved {
        // chroot alone leaves the host's proc and sysfs mounted in this
        // namespace, and a fully visible proc lets a nested user namespace
        // mount a new one: detach them first, as runc does.
        hide_host_proc_and_sys(rootfs);
        // --no-pivot: move the rootfs mount over / so the old root is hidden.
        std::env::set_current_dir(rootfs).context(|| format!("chdir {}", rootfs.display()))?;
        sys::mount_path(Some(rootfs), Path::new("/"), None, libc::MS_MOVE, None)
            .context(|| "move rootfs to /".into())?;
        sys::chroot(Path::new(".")).context(|| "chroot".into())?;
    } else {
        sys::chroot(rootfs).context(|| format!("chroot {}", rootfs.display()))?;
    }
    std::env::set_current_dir("/").context(|| "chdir /".into())
}

fn hide_host_proc_and_sys(rootfs: &Path) {
    let mut targets: Vec<PathBuf> = mountinfo::read()
        .into_iter()
        .filter(|m| {
            matches!(m.fstype.as_str(), "proc" | "sysfs") && !m.mountpoint.starts_with(rootfs)
        })
        .map(|m| m.mountpoint)
        .collect();
    // Deepest first, so nothing is busy when its turn comes.
    targets.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for t in targets {
        if sys::umount2(&t, libc::MNT_DETACH).is_err() {
            let _ = sys::mount_path(
                Some(Path::new("tmpfs")),
                &t,
                Some("tmpfs"),
                libc::MS_RDONLY,
                None,
            );
        }
    }
}

pub fn make_root_readonly() -> Result<()> {
    // By path, not descriptor: the container may have no /proc to name one.
    let root = sys::open_dir(Path::new("/")).context(|| "open /".into())?;
    sys::mount_path(
        None,
        Path::new("/"),
        None,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | locked_flags(&root),
        None,
    )
    .context(|| "remount / read-only".into())
}
