//! The reverse of apply: an overlayfs upper directory becomes a layer tar, with overlay
//! whiteouts (0:0 character devices, `trusted.overlay.opaque=y`) turned back into `.wh.` names.
//!
//! The walk uses directory fds and never follows symlinks, so a container that is still
//! running cannot steer it outside the upper directory.

use super::whiteout::{is_overlay_xattr, OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX};
use crate::digest::{Algorithm, Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};
use rustix::fs::{openat, statat, AtFlags, FileType, Mode, OFlags};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffStats {
    /// sha256 of the tar written (before any compression the writer applies).
    pub diff_id: Digest,
    pub size: u64,
}

/// Writes the changes recorded in `upper` as a layer tar into `out`.
pub fn write_diff<W: Write>(upper: &Path, out: W) -> Result<(DiffStats, W)> {
    let root: OwnedFd = File::open(upper)
        .ctx(|| format!("open {}", upper.display()))?
        .into();
    let mut b = tar::Builder::new(HashingWriter::new(out, Algorithm::Sha256));
    b.mode(tar::HeaderMode::Complete);
    let mut w = Walker {
        links: HashMap::new(),
    };
    w.walk_dir(&mut b, &root, Path::new(""))?;
    let hw = b.into_inner().ctx(|| "finish layer tar".to_string())?;
    let (diff_id, size, out) = hw.finish();
    Ok((DiffStats { diff_id, size }, out))
}

struct Walker {
    /// (dev, ino) of multiply-linked files already written, for hardlink entries.
    links: HashMap<(u64, u64), PathBuf>,
}

fn tar_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        context: format!("add {} to layer tar", path.display()),
        source,
    }
}

fn list_xattrs(fd: impl AsFd, symlink_path: Option<&Path>) -> Result<Vec<(String, Vec<u8>)>> {
    let mut names = vec![0u8; 64 * 1024];
    let n = match symlink_path {
        Some(p) => rustix::fs::llistxattr(p, &mut names[..]),
        None => rustix::fs::flistxattr(&fd, &mut names[..]),
    };
    let n = match n {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx(|| "list xattrs".to_string()),
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        if is_overlay_xattr(name) {
            continue;
        }
        let mut val = vec![0u8; 64 * 1024];
        let len = match symlink_path {
            Some(p) => rustix::fs::lgetxattr(p, name, &mut val[..]),
            None => rustix::fs::fgetxattr(&fd, name, &mut val[..]),
        }
        .ctx(|| format!("read xattr {name}"))?;
        val.truncate(len);
        out.push((name.to_string(), val));
    }
    out.sort();
    Ok(out)
}

fn is_opaque(fd: impl AsFd) -> bool {
    let mut v = [0u8; 4];
    matches!(rustix::fs::fgetxattr(fd, OVERLAY_OPAQUE_XATTR, &mut v[..]), Ok(1) if v[0] == b'y')
}

impl Walker {
    fn walk_dir<W: Write>(
        &mut self,
        b: &mut tar::Builder<W>,
        dir: &OwnedFd,
        rel: &Path,
    ) -> Result<()> {
        let mut names: Vec<OsString> = Vec::new();
        let d = rustix::fs::Dir::read_from(dir).ctx(|| format!("read dir {}", rel.display()))?;
        for e in d {
            let e = e.ctx(|| format!("read dir {}", rel.display()))?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(OsString::from_vec(n.to_vec()));
            }
        }
        // Sorted for reproducible layers (same content, same diffID).
        names.sort();
        for name in names {
            self.entry(b, dir, rel, &name)?;
        }
        Ok(())
    }

    fn entry<W: Write>(
        &mut self,
        b: &mut tar::Builder<W>,
        dir: &OwnedFd,
        rel: &Path,
        name: &OsStr,
    ) -> Result<()> {
        let path = rel.join(name);
        let st = statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .ctx(|| format!("stat {}", path.display()))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        let mut h = tar::Header::new_gnu();
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(st.st_uid as u64);
        h.set_gid(st.st_gid as u64);
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);

        if ft == FileType::CharacterDevice && st.st_rdev == 0 {
            let mut wh = OsString::from(WHITEOUT_PREFIX);
            wh.push(name);
            let wpath = rel.join(wh);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            return b
                .append_data(&mut h, &wpath, io::empty())
                .map_err(tar_err(&wpath));
        }

        let proc = |fd: &OwnedFd| {
            let mut p = format!("/proc/self/fd/{}/", fd.as_raw_fd()).into_bytes();
            p.extend_from_slice(name.as_bytes());
            PathBuf::from(OsString::from_vec(p))
        };
        match ft {
            FileType::Directory => {
                let fd = openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ctx(|| format!("open {}", path.display()))?;
                let xattrs = list_xattrs(&fd, None)?;
                append_pax(b, &xattrs, &path)?;
                h.set_entry_type(tar::EntryType::Directory);
                b.append_data(&mut h, &path, io::empty())
                    .map_err(tar_err(&path))?;
                if is_opaque(&fd) {
                    let opq = path.join(OPAQUE_MARKER);
                    let mut oh = tar::Header::new_gnu();
                    oh.set_entry_type(tar::EntryType::Regular);
                    oh.set_mode(0o644);
                    oh.set_size(0);
                    oh.set_mtime(st.st_mtime.max(0) as u64);
                    b.append_data(&mut oh, &opq, io::empty())
                        .map_err(tar_err(&opq))?;
                }
                self.walk_dir(b, &fd, &path)?;
            }
            FileType::RegularFile => {
                let key = (st.st_dev, st.st_ino);
                if st.st_nlink > 1 {
                    if let Some(first) = self.links.get(&key) {
                        h.set_entry_type(tar::EntryType::Link);
                        return b.append_link(&mut h, &path, first).map_err(tar_err(&path));
                    }
                    self.links.insert(key, path.clone());
                }
                let fd = openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ctx(|| format!("open {}", path.display()))?;
                let xattrs = list_xattrs(&fd, None)?;
                append_pax(b, &xattrs, &path)?;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(st.st_size as u64);
                let file = File::from(fd);
                // The size in the header was taken first; a file that changes while we read
                // must not produce a corrupt tar.
                use std::io::Read;
                b.append_data(&mut h, &path, file.take(st.st_size as u64))
                    .map_err(tar_err(&path))?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(dir, name, Vec::new())
                    .ctx(|| format!("readlink {}", path.display()))?;
                let xattrs = list_xattrs(dir, Some(&proc(dir)))?;
                append_pax(b, &xattrs, &path)?;
                h.set_entry_type(tar::EntryType::Symlink);
                b.append_link(&mut h, &path, OsStr::from_bytes(target.as_bytes()))
                    .map_err(tar_err(&path))?;
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                h.set_entry_type(match ft {
                    FileType::CharacterDevice => tar::EntryType::Char,
                    FileType::BlockDevice => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                });
                if ft != FileType::Fifo {
                    h.set_device_major(rustix::fs::major(st.st_rdev))
                        .map_err(tar_err(&path))?;
                    h.set_device_minor(rustix::fs::minor(st.st_rdev))
                        .map_err(tar_err(&path))?;
                }
                b.append_data(&mut h, &path, io::empty())
                    .map_err(tar_err(&path))?;
            }
            // Sockets are not part of a filesystem image.
            _ => {}
        }
        Ok(())
    }
}

fn append_pax<W: Write>(
    b: &mut tar::Builder<W>,
    xattrs: &[(String, Vec<u8>)],
    path: &Path,
) -> Result<()> {
    if xattrs.is_empty() {
        return Ok(());
    }
    let keys: Vec<(String, &[u8])> = xattrs
        .iter()
        .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
        .collect();
    b.append_pax_extensions(keys.iter().map(|(k, v)| (k.as_str(), *v)))
        .map_err(tar_err(path))
}
