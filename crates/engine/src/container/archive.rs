//! `docker cp` (archive GET/HEAD/PUT), `docker export` and `docker diff`. Every path from the
//! client is resolved inside the container's root with `openat2(RESOLVE_IN_ROOT)`, so symlinks
//! in the container cannot lead outside it; nothing under the root is followed while archiving.

use super::model::Container;
use super::root::{open_in, Root};
use super::Containers;
use crate::error::{Error, Result};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags};
use serde::Serialize;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// How much of a refused copy's body is read before answering.
const REFUSED_BODY_DRAIN: u64 = 64 << 20;

/// `X-Docker-Container-Path-Stat`, with Go's os.FileMode bits in `mode`.
#[derive(Serialize, Debug, Clone)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

const GO_DIR: u32 = 1 << 31;
const GO_SYMLINK: u32 = 1 << 27;
const GO_DEVICE: u32 = 1 << 26;
const GO_PIPE: u32 = 1 << 25;
const GO_SOCKET: u32 = 1 << 24;
const GO_SETUID: u32 = 1 << 23;
const GO_SETGID: u32 = 1 << 22;
const GO_CHARDEV: u32 = 1 << 21;
const GO_STICKY: u32 = 1 << 20;

fn go_mode(st: &rfs::Stat) -> u32 {
    let m = st.st_mode;
    let mut g = m & 0o777;
    match m & libc::S_IFMT {
        libc::S_IFDIR => g |= GO_DIR,
        libc::S_IFLNK => g |= GO_SYMLINK,
        libc::S_IFBLK => g |= GO_DEVICE,
        libc::S_IFCHR => g |= GO_DEVICE | GO_CHARDEV,
        libc::S_IFIFO => g |= GO_PIPE,
        libc::S_IFSOCK => g |= GO_SOCKET,
        _ => {}
    }
    if m & libc::S_ISUID != 0 {
        g |= GO_SETUID;
    }
    if m & libc::S_ISGID != 0 {
        g |= GO_SETGID;
    }
    if m & libc::S_ISVTX != 0 {
        g |= GO_STICKY;
    }
    g
}

pub(super) fn io_err(ctx: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("{ctx}: {e}"))
}

fn not_found(path: &str) -> Error {
    Error::NotFound(format!("Could not find the file {path} in container"))
}

impl Containers {
    pub async fn archive_stat(&self, name_or_id: &str, path: &str) -> Result<PathStat> {
        let c = self.get(name_or_id)?.snapshot();
        let root = self.container_root(&c).await?;
        let path = path.to_string();
        tokio::task::spawn_blocking(move || stat_in(root.fd.as_fd(), &path))
            .await
            .map_err(|e| io_err("stat", e))?
    }

    /// `GET /containers/{id}/archive`: the stat header value and a tar stream of `path`.
    pub async fn archive_get(
        &self,
        name_or_id: &str,
        path: &str,
    ) -> Result<(
        PathStat,
        tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    )> {
        let c = self.get(name_or_id)?.snapshot();
        let root = self.container_root(&c).await?;
        let path = path.to_string();
        let stat = {
            let p = path.clone();
            let fd = root.fd.try_clone().map_err(|e| io_err("dup", e))?;
            tokio::task::spawn_blocking(move || stat_in(fd.as_fd(), &p))
                .await
                .map_err(|e| io_err("stat", e))??
        };
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::task::spawn_blocking(move || {
            let w = ChannelWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(64 * 1024),
            };
            if let Err(e) = tar_path(&root, &path, w) {
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
            drop(root);
        });
        Ok((stat, rx))
    }

    /// `PUT /containers/{id}/archive`: extracts a tar into the directory `path`.
    pub async fn archive_put(
        &self,
        name_or_id: &str,
        path: &str,
        body: impl Read + Send + 'static,
        copy_uid_gid: bool,
        no_overwrite_dir_non_dir: bool,
    ) -> Result<()> {
        let c = self.get(name_or_id)?.snapshot();
        if let Err(e) = writable_at(&c, path) {
            // The client is still sending its tar. Reading it, up to a bound, lets the client
            // see this answer rather than a broken pipe.
            let mut body = body;
            let _ = tokio::task::spawn_blocking(move || {
                std::io::copy(
                    &mut (&mut body).take(REFUSED_BODY_DRAIN),
                    &mut std::io::sink(),
                )
            })
            .await;
            return Err(e);
        }
        let root = self.container_root(&c).await?;
        let path = path.to_string();
        tokio::task::spawn_blocking(move || {
            extract_into(&root, &path, body, copy_uid_gid, no_overwrite_dir_non_dir)
        })
        .await
        .map_err(|e| io_err("extracting", e))?
    }

    /// `GET /containers/{id}/export`: the whole filesystem as a tar.
    pub async fn export(
        &self,
        name_or_id: &str,
    ) -> Result<tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>> {
        let c = self.get(name_or_id)?.snapshot();
        // Docker exports the filesystem, not what is mounted over it (/proc, /sys, volumes).
        let root = self.container_root_view(&c, false).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::task::spawn_blocking(move || {
            let w = ChannelWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(64 * 1024),
            };
            if let Err(e) = tar_path(&root, "/.", w) {
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
            drop(root);
        });
        self.publish(&c, "export", &[]);
        Ok(rx)
    }

    /// `GET /containers/{id}/changes`: Kind 0 modified, 1 added, 2 deleted.
    pub async fn changes(&self, name_or_id: &str) -> Result<Vec<(String, u8)>> {
        let c = self.get(name_or_id)?.snapshot();
        let svc = self.images.svc.clone();
        tokio::task::spawn_blocking(move || -> Result<Vec<(String, u8)>> {
            let upper = svc.snapshots.rw_upper(&c.id)?;
            let image = svc.images.resolve(&c.image_id)?;
            let lowers: Vec<PathBuf> = svc
                .chain_ids_of(&image)
                .iter()
                .map(|ch| svc.snapshots.layer_dir(ch))
                .collect();
            let mut out = Vec::new();
            walk_changes(&upper, Path::new("/"), &lowers, &mut out);
            out.sort();
            Ok(out)
        })
        .await
        .map_err(|e| io_err("diff", e))?
    }
}

fn in_lowers(lowers: &[PathBuf], rel: &Path) -> bool {
    let rel = rel.strip_prefix("/").unwrap_or(rel);
    lowers
        .iter()
        .any(|l| std::fs::symlink_metadata(l.join(rel)).is_ok())
}

fn walk_changes(dir: &Path, rel: &Path, lowers: &[PathBuf], out: &mut Vec<(String, u8)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(md) = e.metadata() else { continue };
        let r = rel.join(e.file_name());
        let name = r.display().to_string();
        if berth_image::layer::whiteout::is_overlay_whiteout(&md) {
            out.push((name, 2));
            continue;
        }
        let existed = in_lowers(lowers, &r);
        out.push((name, if existed { 0 } else { 1 }));
        if md.is_dir() {
            walk_changes(&e.path(), &r, lowers, out);
        }
    }
}

fn stat_in(root: BorrowedFd<'_>, path: &str) -> Result<PathStat> {
    let fd = open_in(root, path, OFlags::PATH, false).map_err(|_| not_found(path))?;
    let st = rfs::fstat(&fd).map_err(|e| io_err(path, e))?;
    let link_target = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        rfs::readlinkat(&fd, "", Vec::new())
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    let name = Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".into());
    let mtime = std::time::UNIX_EPOCH
        + std::time::Duration::new(st.st_mtime.max(0) as u64, st.st_mtime_nsec as u32);
    Ok(PathStat {
        name,
        size: st.st_size,
        mode: go_mode(&st),
        mtime: crate::time::rfc3339(mtime),
        link_target,
    })
}

struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(64 * 1024));
        self.tx
            .blocking_send(Ok(chunk.into()))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Tars `path` (a file, a directory, or `dir/.` for its content only), never following a
/// symlink below it.
fn tar_path(root: &Root, path: &str, w: impl Write) -> Result<()> {
    let contents_only = path.ends_with("/.") || path == ".";
    let clean = path.trim_end_matches("/.").trim_end_matches('/');
    let fd = open_in(root.fd.as_fd(), clean, OFlags::PATH, false).map_err(|_| not_found(path))?;
    let st = rfs::fstat(&fd).map_err(|e| io_err(path, e))?;
    let base = if contents_only {
        String::new()
    } else {
        Path::new(clean)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        let dir = open_in(
            root.fd.as_fd(),
            clean,
            OFlags::RDONLY | OFlags::DIRECTORY,
            false,
        )
        .map_err(|e| io_err(path, e))?;
        if !base.is_empty() {
            append_entry(&mut b, &dir, None, &st, &base)?;
        }
        tar_dir(&mut b, &dir, &base)?;
    } else {
        let (parent, name) = split_parent(clean);
        let pfd = open_in(
            root.fd.as_fd(),
            &parent,
            OFlags::RDONLY | OFlags::DIRECTORY,
            true,
        )
        .map_err(|e| io_err(path, e))?;
        append_entry(&mut b, &pfd, Some(OsStr::new(&name)), &st, &base)?;
    }
    b.finish().map_err(|e| io_err("writing the archive", e))?;
    Ok(())
}

fn split_parent(p: &str) -> (String, String) {
    let p = Path::new(p);
    let parent = p
        .parent()
        .map(|x| x.display().to_string())
        .unwrap_or_else(|| "/".into());
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (
        if parent.is_empty() {
            "/".into()
        } else {
            parent
        },
        name,
    )
}

fn header_for(st: &rfs::Stat) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

/// Appends one entry; `name` is the entry inside `dir` (None: `dir` itself).
fn append_entry<W: Write>(
    b: &mut tar::Builder<W>,
    dir: &OwnedFd,
    name: Option<&OsStr>,
    st: &rfs::Stat,
    path_in_tar: &str,
) -> Result<()> {
    let mut h = header_for(st);
    let fmt = st.st_mode & libc::S_IFMT;
    let err = |e: std::io::Error| io_err(format!("archiving {path_in_tar}"), e);
    match fmt {
        libc::S_IFDIR => {
            h.set_entry_type(tar::EntryType::Directory);
            b.append_data(&mut h, format!("{path_in_tar}/"), std::io::empty())
                .map_err(err)?;
        }
        libc::S_IFREG => {
            let name = name.ok_or_else(|| Error::Internal("file without a name".into()))?;
            let f = rfs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io_err(path_in_tar, e))?;
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(st.st_size as u64);
            let file = std::fs::File::from(f);
            b.append_data(&mut h, path_in_tar, file.take(st.st_size as u64))
                .map_err(err)?;
        }
        libc::S_IFLNK => {
            let name = name.ok_or_else(|| Error::Internal("link without a name".into()))?;
            let target =
                rfs::readlinkat(dir, name, Vec::new()).map_err(|e| io_err(path_in_tar, e))?;
            h.set_entry_type(tar::EntryType::Symlink);
            b.append_link(&mut h, path_in_tar, OsStr::from_bytes(target.as_bytes()))
                .map_err(err)?;
        }
        libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
            h.set_entry_type(match fmt {
                libc::S_IFCHR => tar::EntryType::Char,
                libc::S_IFBLK => tar::EntryType::Block,
                _ => tar::EntryType::Fifo,
            });
            let _ = h.set_device_major(rustix::fs::major(st.st_rdev));
            let _ = h.set_device_minor(rustix::fs::minor(st.st_rdev));
            b.append_data(&mut h, path_in_tar, std::io::empty())
                .map_err(err)?;
        }
        _ => {} // sockets are not archived
    }
    Ok(())
}

fn tar_dir<W: Write>(b: &mut tar::Builder<W>, dir: &OwnedFd, prefix: &str) -> Result<()> {
    let mut names: Vec<std::ffi::OsString> = Vec::new();
    let d = rfs::Dir::read_from(dir).map_err(|e| io_err(prefix, e))?;
    for ent in d {
        let ent = ent.map_err(|e| io_err(prefix, e))?;
        let n = ent.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        names.push(OsStr::from_bytes(n).to_owned());
    }
    names.sort();
    for n in names {
        let st = match rfs::statat(dir, &n, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(s) => s,
            Err(_) => continue, // removed meanwhile
        };
        let path = if prefix.is_empty() {
            n.to_string_lossy().into_owned()
        } else {
            format!("{prefix}/{}", n.to_string_lossy())
        };
        append_entry(b, dir, Some(&n), &st, &path)?;
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            let sub = rfs::openat(
                dir,
                &n,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io_err(&path, e))?;
            tar_dir(b, &sub, &path)?;
        }
    }
    Ok(())
}

/// Docker's check before a copy into a container: a path in a mount may be written when the
/// mount is, any other path when the root filesystem is. The kernel still has the last word:
/// the binds are mounted read-only too.
fn writable_at(c: &Container, path: &str) -> Result<()> {
    let mut target = PathBuf::from("/");
    for part in Path::new(path).components() {
        match part {
            Component::Normal(s) => target.push(s),
            Component::ParentDir => {
                target.pop();
            }
            _ => {}
        }
    }
    let mount = c
        .mounts
        .iter()
        .filter(|m| target.starts_with(&m.destination))
        .max_by_key(|m| m.destination.len());
    match mount {
        Some(m) if !m.rw => Err(Error::Forbidden(
            "mounted volume is marked read-only".into(),
        )),
        None if c.host_config.readonly_rootfs => Err(Error::Forbidden(
            "container rootfs is marked read-only".into(),
        )),
        _ => Ok(()),
    }
}

/// A tar entry's name as safe relative components, or an error naming it.
fn safe_components(name: &Path) -> Result<Vec<std::ffi::OsString>> {
    let mut out = Vec::new();
    for c in name.components() {
        match c {
            Component::Normal(s) => out.push(s.to_owned()),
            Component::CurDir => {}
            Component::RootDir => {}
            Component::ParentDir => {
                return Err(Error::invalid(format!(
                    "archive entry {:?} escapes the destination",
                    name
                )));
            }
            Component::Prefix(_) => {
                return Err(Error::invalid(format!("invalid archive entry {name:?}")))
            }
        }
    }
    Ok(out)
}

fn extract_into(
    root: &Root,
    dest: &str,
    body: impl Read,
    copy_uid_gid: bool,
    no_overwrite_dir_non_dir: bool,
) -> Result<()> {
    let dfd = open_in(
        root.fd.as_fd(),
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY,
        true,
    )
    .map_err(|e| {
        if e == rustix::io::Errno::NOTDIR {
            Error::invalid(format!("extraction point is not a directory: {dest}"))
        } else {
            not_found(dest)
        }
    })?;
    let mut ar = tar::Archive::new(body);
    let entries = ar
        .entries()
        .map_err(|e| Error::invalid(format!("invalid tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::invalid(format!("invalid tar archive: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| Error::invalid(format!("invalid tar entry name: {e}")))?
            .into_owned();
        let comps = safe_components(&path)?;
        let Some((last, parents)) = comps.split_last() else {
            continue;
        };
        let parent_rel: PathBuf = parents.iter().collect();
        let parent_str = parent_rel.to_string_lossy().into_owned();
        // Parents are resolved inside the destination, which is itself inside the root, so
        // neither `..` nor symlinks can leave it.
        let pfd = if parent_str.is_empty() {
            dfd.try_clone().map_err(|e| io_err("dup", e))?
        } else {
            let rel = parent_str.clone();
            rfs::openat2(
                &dfd,
                rel.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT,
            )
            .map_err(|e| {
                Error::invalid(format!("cannot extract {:?}: parent directory: {e}", path))
            })?
        };
        let h = entry.header().clone();
        let mode = Mode::from_bits_truncate(h.mode().unwrap_or(0o644) & 0o7777);
        let existing = rfs::statat(&pfd, last.as_os_str(), AtFlags::SYMLINK_NOFOLLOW).ok();
        let is_dir_entry = h.entry_type() == tar::EntryType::Directory;
        if let Some(st) = &existing {
            let existing_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
            if no_overwrite_dir_non_dir && existing_dir != is_dir_entry {
                return Err(Error::invalid(format!(
                    "cannot overwrite {} {:?} with {}",
                    if existing_dir {
                        "directory"
                    } else {
                        "non-directory"
                    },
                    path,
                    if is_dir_entry {
                        "directory"
                    } else {
                        "non-directory"
                    }
                )));
            }
            if !(existing_dir && is_dir_entry) {
                let flags = if existing_dir {
                    AtFlags::REMOVEDIR
                } else {
                    AtFlags::empty()
                };
                let _ = rfs::unlinkat(&pfd, last.as_os_str(), flags);
            }
        }
        let name = last.as_os_str();
        let werr = |e: rustix::io::Errno| io_err(format!("extracting {}", path.display()), e);
        match h.entry_type() {
            tar::EntryType::Directory => {
                if existing.is_none() {
                    rfs::mkdirat(&pfd, name, mode).map_err(werr)?;
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let f = rfs::openat(
                    &pfd,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    mode,
                )
                .map_err(werr)?;
                let mut file = std::fs::File::from(f);
                std::io::copy(&mut entry, &mut file)
                    .map_err(|e| io_err(format!("writing {}", path.display()), e))?;
            }
            tar::EntryType::Symlink => {
                let target = h.link_name().ok().flatten().ok_or_else(|| {
                    Error::invalid(format!("symlink {:?} without a target", path))
                })?;
                rfs::symlinkat(target.as_os_str(), &pfd, name).map_err(werr)?;
            }
            tar::EntryType::Link => {
                let target = h.link_name().ok().flatten().ok_or_else(|| {
                    Error::invalid(format!("hardlink {:?} without a target", path))
                })?;
                let tcomps = safe_components(&target)?;
                let (tlast, tparents) = tcomps
                    .split_last()
                    .ok_or_else(|| Error::invalid("empty hardlink target"))?;
                let tp: PathBuf = tparents.iter().collect();
                let tp = tp.to_string_lossy().into_owned();
                let tfd = rfs::openat2(
                    &dfd,
                    if tp.is_empty() { "." } else { tp.as_str() },
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                    ResolveFlags::IN_ROOT,
                )
                .map_err(werr)?;
                rfs::linkat(&tfd, tlast.as_os_str(), &pfd, name, AtFlags::empty()).map_err(werr)?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let kind = match h.entry_type() {
                    tar::EntryType::Char => rfs::FileType::CharacterDevice,
                    tar::EntryType::Block => rfs::FileType::BlockDevice,
                    _ => rfs::FileType::Fifo,
                };
                let dev = rfs::makedev(
                    h.device_major().ok().flatten().unwrap_or(0),
                    h.device_minor().ok().flatten().unwrap_or(0),
                );
                rfs::mknodat(&pfd, name, kind, mode, dev).map_err(werr)?;
            }
            _ => continue, // PAX/GNU metadata entries are handled by the tar reader
        }
        let (uid, gid) = if copy_uid_gid {
            (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32)
        } else {
            (0, 0)
        };
        let _ = rfs::chownat(
            &pfd,
            name,
            Some(rfs::Uid::from_raw(uid)),
            Some(rfs::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        );
        if h.entry_type() != tar::EntryType::Symlink {
            let _ = rfs::chmodat(&pfd, name, mode, AtFlags::empty());
            if let Ok(m) = h.mtime() {
                let ts = rfs::Timespec {
                    tv_sec: m as i64,
                    tv_nsec: 0,
                };
                let _ = rfs::utimensat(
                    &pfd,
                    name,
                    &rfs::Timestamps {
                        last_access: ts,
                        last_modification: ts,
                    },
                    AtFlags::SYMLINK_NOFOLLOW,
                );
            }
        }
    }
    Ok(())
}
