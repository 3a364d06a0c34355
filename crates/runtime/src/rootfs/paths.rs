//! Resolving and creating paths inside the container's rootfs without ever
//! leaving it: every lookup goes through openat2(RESOLVE_IN_ROOT), and every
//! creation happens relative to a directory descriptor obtained that way.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::sys;

/// What to create at the end of a path that does not exist yet.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// Opens `path` inside `root` with O_PATH, creating missing components
/// (directories, and the last one as `last`). Symlinks met on the way are
/// followed as if `root` were `/`.
pub fn ensure_in_root(root: &OwnedFd, path: &Path, last: Kind) -> io::Result<OwnedFd> {
    let comps: Vec<&std::ffi::OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    if path.components().any(|c| c == Component::ParentDir) {
        // `..` would be clamped at the root by RESOLVE_IN_ROOT anyway, but a
        // destination that needs it is a mistake worth refusing.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} contains '..'", path.display()),
        ));
    }
    match sys::open_in_root(root, path, OFlags::PATH) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut parent = rustix::io::dup(root)?;
    let mut sofar = PathBuf::from("/");
    for (i, name) in comps.iter().enumerate() {
        sofar.push(name);
        match sys::open_in_root(root, &sofar, OFlags::PATH) {
            Ok(fd) => {
                parent = fd;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let is_last = i + 1 == comps.len();
        // `parent` may be an O_PATH descriptor; the *at calls accept it as a
        // directory.
        if is_last && last == Kind::File {
            let fd = rustix::fs::openat(
                &parent,
                *name,
                OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::from_raw_mode(0o644),
            )?;
            drop(fd);
        } else {
            match rustix::fs::mkdirat(&parent, *name, Mode::from_raw_mode(0o755)) {
                Ok(()) => {}
                Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }
        parent = rustix::fs::openat(
            &parent,
            *name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
    }
    Ok(parent)
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
        .map(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
        })
        .unwrap_or(false)
}
