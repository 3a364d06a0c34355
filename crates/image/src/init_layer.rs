//! The init layer: what Docker puts between an image and a container's writable layer, so
//! that every container has `/.dockerenv`, `/etc/mtab` and the mount points the runtime binds
//! over, without any of them counting as the container's own changes (`diff`, `commit`).
//!
//! It is a directory of its own in the container's snapshot, mounted as the top-most lower
//! layer. It is built as Docker builds it on the image: a file or symlink entry replaces what
//! the image has at that path, a directory entry is only added where the image has none, and
//! a parent directory the image has keeps the image's owner and mode.

use crate::error::{IoContext, Result};
use crate::layer::whiteout::{is_overlay_whiteout, OVERLAY_OPAQUE_XATTR};
use crate::store::atomic::fsync_dir;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What an init layer entry is.
#[derive(Clone, Copy, Debug)]
pub enum InitKind {
    Dir,
    /// An empty file.
    File,
    Symlink(&'static str),
}

/// Docker's init layer (moby's `daemon/initlayer`).
pub const CONTAINER_INIT: [(&str, InitKind); 10] = [
    ("dev/pts", InitKind::Dir),
    ("dev/shm", InitKind::Dir),
    ("proc", InitKind::Dir),
    ("sys", InitKind::Dir),
    (".dockerenv", InitKind::File),
    ("etc/resolv.conf", InitKind::File),
    ("etc/hosts", InitKind::File),
    ("etc/hostname", InitKind::File),
    ("dev/console", InitKind::File),
    ("etc/mtab", InitKind::Symlink("/proc/mounts")),
];

/// Builds the init layer in `dir`, which must not exist, over the image layers `lowers`
/// (top-most first), and syncs it to disk. The caller renames it into place, so a crash
/// leaves no half layer.
pub fn build(dir: &Path, lowers: &[PathBuf], entries: &[(&str, InitKind)]) -> Result<()> {
    fs::create_dir(dir).ctx(|| format!("create {}", dir.display()))?;
    for (path, kind) in entries {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let Some((leaf, parents)) = parts.split_last() else {
            continue;
        };
        let mut at = dir.to_path_buf();
        let mut rel = PathBuf::new();
        for p in parents {
            at.push(p);
            rel.push(p);
            if !at.is_dir() {
                make_dir(&at, image_dir(lowers, &rel))?;
            }
        }
        rel.push(leaf);
        let target = at.join(leaf);
        // Docker's entries are also mount points: the parents they are made in are created
        // even when the image already has the entry as a directory.
        match kind {
            InitKind::Dir => {
                if image_dir(lowers, &rel).is_none() && !target.is_dir() {
                    make_dir(&target, None)?;
                }
            }
            InitKind::File => {
                fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o755)
                    .open(&target)
                    .ctx(|| format!("create {}", target.display()))?;
            }
            InitKind::Symlink(to) => {
                std::os::unix::fs::symlink(to, &target)
                    .ctx(|| format!("symlink {}", target.display()))?;
            }
        }
    }
    sync_tree(dir)
}

/// fsyncs every file and directory under `dir` (a symlink is in its directory's sync).
fn sync_tree(dir: &Path) -> Result<()> {
    for e in fs::read_dir(dir).ctx(|| format!("read {}", dir.display()))? {
        let e = e.ctx(|| format!("read {}", dir.display()))?;
        let kind = e
            .file_type()
            .ctx(|| format!("stat {}", e.path().display()))?;
        if kind.is_dir() {
            sync_tree(&e.path())?;
        } else if kind.is_file() {
            fs::File::open(e.path())
                .and_then(|f| f.sync_all())
                .ctx(|| format!("fsync {}", e.path().display()))?;
        }
    }
    fsync_dir(dir)
}

/// Makes `at` with the owner and mode of the image's directory, as overlayfs' copy-up
/// would, or root's 0755 where the image has none.
fn make_dir(at: &Path, image: Option<fs::Metadata>) -> Result<()> {
    let mode = image.as_ref().map_or(0o755, |m| m.mode() & 0o7777);
    fs::DirBuilder::new()
        .mode(mode)
        .create(at)
        .ctx(|| format!("create {}", at.display()))?;
    // The umask may have taken bits off.
    let set: fs::Permissions = std::os::unix::fs::PermissionsExt::from_mode(mode);
    fs::set_permissions(at, set).ctx(|| format!("chmod {}", at.display()))?;
    if let Some(m) = image {
        std::os::unix::fs::lchown(at, Some(m.uid()), Some(m.gid()))
            .ctx(|| format!("chown {}", at.display()))?;
    }
    Ok(())
}

/// The image's directory at `rel` as the overlay of `lowers` (top-most first) shows it: the
/// top-most layer with an entry there decides, a whiteout or a non-directory hides it, and
/// an opaque directory on the way hides the layers below. Every component is looked at
/// without following symlinks, so a layer cannot point the lookup outside itself.
fn image_dir(lowers: &[PathBuf], rel: &Path) -> Option<fs::Metadata> {
    let comps: Vec<_> = rel.components().collect();
    'layers: for layer in lowers {
        let mut at = layer.clone();
        let mut hides_below = false;
        for (i, c) in comps.iter().enumerate() {
            at.push(c);
            let Ok(md) = fs::symlink_metadata(&at) else {
                if hides_below {
                    return None;
                }
                continue 'layers;
            };
            if is_overlay_whiteout(&md) || !md.is_dir() {
                return None;
            }
            if i + 1 == comps.len() {
                return Some(md);
            }
            hides_below |= is_opaque(&at);
        }
    }
    None
}

fn is_opaque(dir: &Path) -> bool {
    let mut v = [0u8; 4];
    matches!(rustix::fs::lgetxattr(dir, OVERLAY_OPAQUE_XATTR, &mut v[..]), Ok(1) if v[0] == b'y')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-init-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn builds_docker_entries_over_an_image() {
        let base = tmp("build");
        let image = base.join("layer");
        fs::create_dir_all(image.join("etc")).unwrap();
        fs::set_permissions(image.join("etc"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::create_dir_all(image.join("proc")).unwrap();
        fs::write(image.join("etc/hostname"), "from the image").unwrap();
        std::os::unix::fs::symlink("/", image.join("dev")).unwrap();

        let init = base.join("init");
        build(&init, std::slice::from_ref(&image), &CONTAINER_INIT).unwrap();

        assert_eq!(fs::read(init.join(".dockerenv")).unwrap(), b"");
        assert_eq!(fs::read(init.join("etc/hostname")).unwrap(), b"");
        assert_eq!(
            fs::read_link(init.join("etc/mtab")).unwrap(),
            Path::new("/proc/mounts")
        );
        let etc = fs::metadata(init.join("etc")).unwrap();
        assert_eq!(etc.mode() & 0o7777, 0o750, "the image's /etc mode is kept");
        assert!(!init.join("proc").exists(), "the image's /proc is used");
        assert!(init.join("sys").is_dir());
        // The image's /dev is a symlink: the init layer has a real directory there, and the
        // lookup never left the layer.
        assert!(fs::symlink_metadata(init.join("dev")).unwrap().is_dir());
        assert!(init.join("dev/pts").is_dir());
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn whiteouts_and_opaque_directories_hide_lower_directories() {
        let base = tmp("hide");
        let (top, bottom) = (base.join("top"), base.join("bottom"));
        fs::create_dir_all(bottom.join("a/b")).unwrap();
        fs::create_dir_all(bottom.join("c")).unwrap();
        fs::create_dir_all(top.join("a")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            top.join("c"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
        let lowers = [top.clone(), bottom.clone()];
        assert!(image_dir(&lowers, Path::new("a/b")).is_some());
        assert!(image_dir(&lowers, Path::new("c")).is_none());
        rustix::fs::lsetxattr(
            top.join("a"),
            OVERLAY_OPAQUE_XATTR,
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        assert!(image_dir(&lowers, Path::new("a/b")).is_none());
        assert!(image_dir(&lowers, Path::new("a")).is_some());
        fs::remove_dir_all(&base).unwrap();
    }
}
