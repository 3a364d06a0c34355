//! Path handling that cannot leave a root directory: names are checked lexically, then every
//! lookup goes through `openat2` with `RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS`, so neither `..`
//! nor a symlink (planted by this layer or raced in) can carry a write outside the root.

use crate::error::{Error, IoContext, Result};
use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

pub(crate) fn unsafe_path(path: &[u8], reason: &str) -> Error {
    Error::UnsafePath {
        path: String::from_utf8_lossy(path).into_owned(),
        reason: reason.to_string(),
    }
}

/// Splits a tar entry name into components. `./` prefixes and `.` components are dropped
/// (tar writes `./etc/passwd`); absolute names, `..` and NUL bytes are refused.
pub(crate) fn components(path: &[u8]) -> Result<Vec<&[u8]>> {
    if path.starts_with(b"/") {
        return Err(unsafe_path(path, "absolute path"));
    }
    if path.contains(&0) {
        return Err(unsafe_path(path, "NUL byte in name"));
    }
    let mut out = Vec::new();
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(unsafe_path(path, "'..' component")),
            c => out.push(c),
        }
    }
    Ok(out)
}

pub(crate) fn join(comps: &[&[u8]]) -> Vec<u8> {
    comps.join(&b'/')
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW
}

/// Opens an existing directory below `root`.
pub(crate) fn open_dir(root: impl AsFd, comps: &[&[u8]]) -> rustix::io::Result<OwnedFd> {
    if comps.is_empty() {
        return openat2(root, ".", dir_flags(), Mode::empty(), RESOLVE);
    }
    openat2(
        root,
        OsStr::from_bytes(&join(comps)),
        dir_flags(),
        Mode::empty(),
        RESOLVE,
    )
}

/// Opens a directory below `root`, creating missing components (mode 0755, root-owned, as tar
/// does for directories a layer does not list).
pub(crate) fn ensure_dir(root: &OwnedFd, comps: &[&[u8]]) -> Result<OwnedFd> {
    match open_dir(root, comps) {
        Ok(fd) => return Ok(fd),
        Err(Errno::NOENT) => {}
        Err(e) => return Err(classify_err(comps, e)),
    }
    let mut cur = open_dir(root, &[]).ctx(|| "open layer root".to_string())?;
    for c in comps {
        let name = OsStr::from_bytes(c);
        match openat2(&cur, name, dir_flags(), Mode::empty(), RESOLVE) {
            Ok(fd) => cur = fd,
            Err(Errno::NOENT) => {
                match rustix::fs::mkdirat(&cur, name, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(classify_err(comps, e)),
                }
                cur = openat2(&cur, name, dir_flags(), Mode::empty(), RESOLVE)
                    .map_err(|e| classify_err(comps, e))?;
            }
            Err(e) => return Err(classify_err(comps, e)),
        }
    }
    Ok(cur)
}

pub(crate) fn classify_err(comps: &[&[u8]], e: Errno) -> Error {
    let path = join(comps);
    match e {
        Errno::LOOP | Errno::XDEV => unsafe_path(&path, "path passes through a symlink"),
        Errno::NOTDIR => unsafe_path(&path, "a parent is not a directory"),
        e => Error::Io {
            context: format!("resolve {}", String::from_utf8_lossy(&path)),
            source: e.into(),
        },
    }
}
