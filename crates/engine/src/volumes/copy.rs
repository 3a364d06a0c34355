//! Copy-up of image content into a fresh volume, and disk usage of a volume.
//!
//! Nothing here follows a symlink: entries are examined with lstat, files are opened with
//! O_NOFOLLOW, and every directory walked is one lstat showed to be a real directory, so the
//! copy never reads or writes outside its two roots whatever the image contains.

use rustix::fs::{AtFlags, Timespec, Timestamps, CWD};
use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Copies the content of directory `src` into the existing directory `dst`.
pub fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    let mut links = HashMap::new();
    // The top may be a /proc/self/fd link to a directory resolved inside a container's
    // root: it is followed, nothing below it is.
    let top = fs::metadata(src)?;
    if !top.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a directory",
            src.display()
        )));
    }
    copy_dir_contents(src, dst, &mut links)?;
    apply_meta(dst, &top, false)
}

fn copy_dir_contents(
    src: &Path,
    dst: &Path,
    links: &mut HashMap<(u64, u64), std::path::PathBuf>,
) -> io::Result<()> {
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let meta = fs::symlink_metadata(&from)?;
        let ft = meta.file_type();
        if ft.is_dir() {
            fs::create_dir(&to)?;
            copy_dir_contents(&from, &to, links)?;
            apply_meta(&to, &meta, false)?;
            continue;
        }
        // Hard links stay hard links.
        if meta.nlink() > 1 && !ft.is_symlink() {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = links.get(&key) {
                fs::hard_link(first, &to)?;
                continue;
            }
            links.insert(key, to.clone());
        }
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
            apply_meta(&to, &meta, true)?;
        } else if ft.is_file() {
            let mut input = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&from)?;
            let mut output = OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&to)?;
            io::copy(&mut input, &mut output)?;
            drop(output);
            apply_meta(&to, &meta, false)?;
        } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_fifo() {
                nix::sys::stat::SFlag::S_IFIFO
            } else if ft.is_char_device() {
                nix::sys::stat::SFlag::S_IFCHR
            } else {
                nix::sys::stat::SFlag::S_IFBLK
            };
            let perm = nix::sys::stat::Mode::from_bits_truncate(meta.mode() & 0o7777);
            nix::sys::stat::mknod(&to, kind, perm, meta.rdev()).map_err(io::Error::from)?;
            apply_meta(&to, &meta, false)?;
        }
        // Sockets belong to a running process: nothing to copy.
    }
    Ok(())
}

/// Owner, then mode (chown clears set-id bits), then times.
fn apply_meta(path: &Path, meta: &fs::Metadata, symlink: bool) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()))?;
    if !symlink {
        fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    let ts = Timestamps {
        last_access: Timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec() as _,
        },
        last_modification: Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec() as _,
        },
    };
    rustix::fs::utimensat(CWD, path, &ts, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Bytes of the regular files under `dir`, each inode counted once (Docker's volume size).
pub fn disk_usage(dir: &Path) -> u64 {
    fn walk(dir: &Path, seen: &mut std::collections::HashSet<(u64, u64)>) -> u64 {
        let Ok(rd) = fs::read_dir(dir) else {
            return 0;
        };
        let mut total = 0;
        for e in rd.flatten() {
            let Ok(m) = fs::symlink_metadata(e.path()) else {
                continue;
            };
            if m.is_dir() {
                total += walk(&e.path(), seen);
            } else if m.is_file() && seen.insert((m.dev(), m.ino())) {
                total += m.len();
            }
        }
        total
    }
    walk(dir, &mut Default::default())
}
