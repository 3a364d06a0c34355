//! What containers need of the volumes service, in one place.

use super::Containers;
use crate::error::Result;
use std::path::{Path, PathBuf};

pub struct VolumeRef {
    pub name: String,
    pub mountpoint: String,
}

impl Containers {
    pub(crate) fn volume_named(&self, name: &str, container_id: &str) -> Result<VolumeRef> {
        let path = self.volumes.root.join(name).join("_data");
        std::fs::create_dir_all(&path)?;
        let _ = container_id;
        Ok(VolumeRef {
            name: name.to_string(),
            mountpoint: path.display().to_string(),
        })
    }

    pub(crate) fn volume_anonymous(&self, container_id: &str) -> Result<VolumeRef> {
        self.volume_named(&crate::ids::new_id(), container_id)
    }

    pub(crate) fn volume_path(&self, name: &str) -> Result<PathBuf> {
        Ok(self.volumes.root.join(name).join("_data"))
    }

    pub(crate) fn volume_copy_up(&self, name: &str, rootfs: &Path, target: &str) -> Result<()> {
        let _ = (name, rootfs, target);
        Ok(())
    }

    pub(crate) fn volume_add_user(&self, name: &str, container_id: &str) {
        let _ = (name, container_id);
    }

    pub(crate) fn volume_remove_user(&self, name: &str, container_id: &str) {
        let _ = (name, container_id);
    }

    pub(crate) fn volume_remove(&self, name: &str) -> Result<()> {
        let _ = std::fs::remove_dir_all(self.volumes.root.join(name));
        Ok(())
    }
}
