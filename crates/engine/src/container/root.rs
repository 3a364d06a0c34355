//! A container's filesystem as `docker cp` and `docker export` reach it: the running
//! container's own view, or a stopped container's root filesystem mounted for the duration.
//! For `cp`, a stopped container's volumes, binds and /etc files are bound over that root as
//! they are when it runs, as Docker does; `export` takes the filesystem alone.

use super::archive::io_err;
use super::model::Container;
use super::Containers;
use crate::error::Result;
use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};
use rustix::mount::{self as rmount, MountFlags};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The files start binds from the container's directory, unless a mount takes the path.
pub(super) const ETC_FILES: [(&str, &str); 3] = [
    ("resolv.conf", "/etc/resolv.conf"),
    ("hostname", "/etc/hostname"),
    ("hosts", "/etc/hosts"),
];

/// The container's root as a directory fd, and a mount to undo when it was not running.
pub struct Root {
    pub fd: OwnedFd,
    temp_mount: Option<PathBuf>,
}

impl Drop for Root {
    fn drop(&mut self) {
        // The binds under the temporary root go with it: a busy tree is detached whole.
        if let Some(m) = self.temp_mount.take() {
            let _ = berth_image::snapshot::unmount_rootfs(&m);
        }
    }
}

/// One bind of a stopped container's view.
struct Bind {
    source: PathBuf,
    destination: String,
    read_only: bool,
    /// The volume to give the image's content first, as start does, when it is empty.
    copy_up: Option<String>,
}

/// Opens `path` inside `root` (symlinks resolved inside it). `follow_last`: whether a final
/// symlink is followed.
pub(super) fn open_in(
    root: BorrowedFd<'_>,
    path: &str,
    flags: OFlags,
    follow_last: bool,
) -> rustix::io::Result<OwnedFd> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let mut f = flags | OFlags::CLOEXEC;
    if !follow_last {
        f |= OFlags::NOFOLLOW;
    }
    rfs::openat2(root, rel, f, Mode::empty(), ResolveFlags::IN_ROOT)
}

/// `mkdir -p` of `path` inside `root`, each component resolved with `RESOLVE_IN_ROOT`;
/// the last directory, opened `O_PATH`.
pub(super) fn mkdir_in(root: BorrowedFd<'_>, path: &str) -> rustix::io::Result<OwnedFd> {
    let dir = OFlags::PATH | OFlags::DIRECTORY;
    let mut cur = open_in(root, "/", dir, true)?;
    let mut sofar = String::new();
    for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        sofar.push('/');
        sofar.push_str(comp);
        cur = match open_in(root, &sofar, dir, true) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => {
                match rfs::mkdirat(&cur, comp, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e),
                }
                open_in(root, &sofar, dir, true)?
            }
            Err(e) => return Err(e),
        };
    }
    Ok(cur)
}

/// Makes the mount point `path` inside `root`, a directory or an empty file like `source`,
/// as start would.
fn make_point(root: BorrowedFd<'_>, path: &str, source: &Path) -> rustix::io::Result<OwnedFd> {
    if source.is_dir() {
        return mkdir_in(root, path);
    }
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
    let dir = mkdir_in(root, parent)?;
    // O_PATH descriptors cannot create; the parent is reopened for real, still inside.
    let dir = rfs::openat(
        &dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    match rfs::openat(
        &dir,
        name,
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    ) {
        Ok(_) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(e),
    }
    open_in(root, path, OFlags::PATH, true)
}

fn open_dir(path: &Path) -> Result<OwnedFd> {
    rfs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err(path.display(), e))
}

impl Containers {
    /// The root to read or write: the live mount namespace's view for a running container (so
    /// volumes are included), else its filesystem mounted for the duration with its volumes,
    /// binds and /etc files bound over it.
    pub async fn container_root(&self, c: &Container) -> Result<Root> {
        self.container_root_view(c, true).await
    }

    /// `with_mounts`: the container's own view (volumes and /etc files; for a running one
    /// also /proc and /sys), else its root filesystem alone.
    pub(super) async fn container_root_view(
        &self,
        c: &Container,
        with_mounts: bool,
    ) -> Result<Root> {
        if c.state.running && !with_mounts {
            let p = self.run_dir(&c.id).join("rootfs");
            return Ok(Root {
                fd: open_dir(&p)?,
                temp_mount: None,
            });
        }
        if c.state.running && c.state.pid > 0 {
            return Ok(Root {
                fd: open_dir(Path::new(&format!("/proc/{}/root", c.state.pid)))?,
                temp_mount: None,
            });
        }
        let binds = if with_mounts {
            self.binds_of(c)
        } else {
            Vec::new()
        };
        let svc = self.images.svc.clone();
        let volumes = self.volumes.clone();
        let target = self.run_dir(&c.id).join("rootfs");
        let image_id = c.image_id.clone();
        let key = c.id.clone();
        tokio::task::spawn_blocking(move || -> Result<Root> {
            std::fs::create_dir_all(&target)?;
            let image = svc.images.resolve(&image_id)?;
            let ov = svc.prepare_container_rootfs(&key, &image)?;
            ov.mount(&target)?;
            let root = Root {
                fd: open_dir(&target)?,
                temp_mount: Some(target.clone()),
            };
            // The image's content goes into a fresh volume before it is bound, as at start.
            for b in &binds {
                if let Some(name) = &b.copy_up {
                    super::volume_glue::copy_image_content(
                        &volumes,
                        name,
                        &target,
                        &b.destination,
                    )?;
                }
            }
            for b in &binds {
                if let Err(e) = bind_in(root.fd.as_fd(), b) {
                    tracing::debug!(
                        destination = %b.destination,
                        error = %e,
                        "binding into a stopped container's root failed"
                    );
                }
            }
            Ok(root)
        })
        .await
        .map_err(|e| io_err("mounting the container's filesystem", e))?
    }

    /// What start binds over the root: volumes and binds, parents before what lies under
    /// them, then the /etc files no mount replaces.
    fn binds_of(&self, c: &Container) -> Vec<Bind> {
        let mut binds: Vec<Bind> = c
            .mounts
            .iter()
            .filter_map(|mp| {
                let volume = mp.kind == "volume";
                let source = if volume {
                    self.volume_path(&mp.name).ok()?
                } else {
                    PathBuf::from(&mp.source)
                };
                Some(Bind {
                    source,
                    destination: mp.destination.clone(),
                    read_only: !mp.rw,
                    copy_up: (volume && !mp.nocopy()).then(|| mp.name.clone()),
                })
            })
            .collect();
        binds.sort_by_key(|b| Path::new(&b.destination).components().count());
        let cdir = self.config.container_dir(&c.id);
        for (file, destination) in ETC_FILES {
            if !c.mounts.iter().any(|m| m.destination == destination) {
                binds.push(Bind {
                    source: cdir.join(file),
                    destination: destination.into(),
                    read_only: c.host_config.readonly_rootfs,
                    copy_up: None,
                });
            }
        }
        binds
    }
}

/// Binds `b.source` over its destination, resolved inside `root` so that a symlink in the
/// container cannot point the mount elsewhere. A missing mount point is made, as Docker
/// does; a missing source is skipped: the /etc files exist from the first start.
fn bind_in(root: BorrowedFd<'_>, b: &Bind) -> rustix::io::Result<()> {
    if !b.source.exists() {
        return Ok(());
    }
    let point = match open_in(root, &b.destination, OFlags::PATH, true) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => make_point(root, &b.destination, &b.source)?,
        Err(e) => return Err(e),
    };
    rmount::mount_bind_recursive(&b.source, fd_path(&point))?;
    if b.read_only {
        // The old descriptor names the path under the new mount; a fresh lookup crosses it.
        let top = open_in(root, &b.destination, OFlags::PATH, true)?;
        rmount::mount_remount(fd_path(&top), MountFlags::BIND | MountFlags::RDONLY, "")?;
    }
    Ok(())
}

fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}
