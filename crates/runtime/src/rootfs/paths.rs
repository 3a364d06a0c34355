//! Resolving and creating paths inside the container's rootfs without ever
//! leaving it. Lookups go through openat2(RESOLVE_IN_ROOT); creation walks the
//! path one component at a time relative to directory descriptors, following
//! symlinks (dangling ones included) as if the rootfs were `/`.

use std::collections::VecDeque;
use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::sys;

/// What to create at the end of a path that does not exist yet.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// The kernel's own limit on symlinks in one lookup.
const MAX_LINKS: u32 = 40;

fn push_components(queue: &mut VecDeque<OsString>, path: &Path, front: bool) {
    let comps: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    if front {
        for c in comps.into_iter().rev() {
            queue.push_front(c);
        }
    } else {
        queue.extend(comps);
    }
}

/// Opens `path` inside `root` with O_PATH, creating missing components
/// (directories, and the last one as `last`).
pub fn ensure_in_root(root: &OwnedFd, path: &Path, last: Kind) -> io::Result<OwnedFd> {
    match sys::open_in_root(root, path, OFlags::PATH) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut pending = VecDeque::new();
    push_components(&mut pending, path, false);
    let mut cur = rustix::io::dup(root)?;
    let mut cur_path = PathBuf::from("/");
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            cur_path.pop();
            cur = sys::open_in_root(root, &cur_path, OFlags::PATH)?;
            continue;
        }
        let is_last = pending.is_empty();
        match rustix::fs::statat(&cur, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = rustix::fs::readlinkat(&cur, &name, Vec::new())?;
                let target = PathBuf::from(std::ffi::OsStr::from_bytes(target.as_bytes()));
                if target.is_absolute() {
                    cur_path = PathBuf::from("/");
                    cur = rustix::io::dup(root)?;
                }
                push_components(&mut pending, &target, true);
                continue;
            }
            Ok(_) => {}
            Err(rustix::io::Errno::NOENT) => {
                if is_last && last == Kind::File {
                    drop(rustix::fs::openat(
                        &cur,
                        &name,
                        OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::WRONLY
                            | OFlags::CLOEXEC
                            | OFlags::NOFOLLOW,
                        Mode::from_raw_mode(0o644),
                    )?);
                } else {
                    match rustix::fs::mkdirat(&cur, &name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
        // NOFOLLOW: if something swapped a symlink in since we looked, this
        // fails rather than following it.
        cur = rustix::fs::openat(
            &cur,
            &name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        cur_path.push(&name);
    }
    Ok(cur)
}

/// Opens the directory containing `path` inside `root`, creating it, and
/// returns it with the final name.
pub fn parent_in_root(root: &OwnedFd, path: &Path) -> io::Result<(OwnedFd, CString)> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", path.display()),
        )
    })?;
    let parent = path.parent().unwrap_or(Path::new("/"));
    let dir = ensure_in_root(root, parent, Kind::Dir)?;
    // Reopen as a real directory descriptor: mknodat and symlinkat need one.
    let dir = rustix::fs::openat(
        &dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let cname = CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in path"))?;
    Ok((dir, cname))
}

pub fn is_dir(fd: &impl AsFd) -> bool {
    rustix::fs::fstat(fd)
        .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
        .unwrap_or(false)
}
