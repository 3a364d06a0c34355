//! What containers need of the volumes service, in one place.

use super::Containers;
use crate::error::{Error, Result};
use crate::volumes::Volumes;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::path::{Path, PathBuf};

pub struct VolumeRef {
    pub name: String,
    pub mountpoint: String,
}

impl Containers {
    pub(crate) fn volume_named(&self, name: &str, container_id: &str) -> Result<VolumeRef> {
        let v = self.volumes.get_or_create(name, container_id)?;
        Ok(VolumeRef {
            name: v.name,
            mountpoint: v.mountpoint,
        })
    }

    pub(crate) fn volume_anonymous(&self, container_id: &str) -> Result<VolumeRef> {
        let v = self.volumes.create_anonymous(container_id)?;
        Ok(VolumeRef {
            name: v.name,
            mountpoint: v.mountpoint,
        })
    }

    pub(crate) fn volume_path(&self, name: &str) -> Result<PathBuf> {
        self.volumes.mount_path(name)
    }

    /// Docker's volume `mount` and `unmount` events of a container's start and exit.
    pub(crate) fn publish_volume(&self, action: &str, name: &str, attrs: &[(&str, String)]) {
        let attrs = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        self.events.publish("volume", action, name, attrs);
    }

    pub(crate) fn volume_add_user(&self, name: &str, container_id: &str) {
        self.volumes.add_user(name, container_id)
    }

    pub(crate) fn volume_remove_user(&self, name: &str, container_id: &str) {
        self.volumes.remove_user(name, container_id)
    }

    pub(crate) fn volume_remove(&self, name: &str) -> Result<()> {
        self.volumes.remove(name, false)
    }
}

/// Copies the image's content at `target` into volume `name` when the volume is empty. The
/// mount point is resolved inside the container's root, so an image symlink cannot point the
/// copy at the host.
pub(crate) fn copy_image_content(
    volumes: &Volumes,
    name: &str,
    rootfs: &Path,
    target: &str,
) -> Result<()> {
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::internal(format!("opening {}", rootfs.display()), e))?;
    let rel = target.trim_start_matches('/');
    let dir = match rustix::fs::openat2(
        &root,
        rel,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT,
    ) {
        Ok(d) => d,
        Err(_) => return Ok(()), // nothing in the image there
    };
    use std::os::fd::AsRawFd;
    let src = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    volumes.copy_up(name, &src)
}
