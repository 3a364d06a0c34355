//! Applies a layer tar (plain, gzip or zstd) into an empty snapshot directory.
//!
//! Entries are created one by one relative to directory fds found with `openat2`; nothing
//! here uses `tar::Archive::unpack` (DEPENDENCIES.md pitfall 8). Whiteouts are converted to
//! overlayfs's form. The blob digest and the diffID are computed in the same pass.

use super::safe::{classify_err, components, ensure_dir, open_dir, unsafe_path};
use super::whiteout::{classify, is_overlay_xattr, WhiteoutKind, OVERLAY_OPAQUE_XATTR};
use crate::digest::{Algorithm, Digest, HashingReader};
use crate::error::{Error, IoContext, Result};
use crate::manifest::Compression;
use rustix::fs::{
    fchmod, fchown, fsetxattr, futimens, mkdirat, mknodat, openat, statat, symlinkat, unlinkat,
    utimensat, AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use tar::EntryType;

/// Digests and sizes measured while applying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyStats {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// sha256 of the bytes read (the blob digest).
    pub blob_digest: Digest,
    pub blob_size: u64,
    pub uncompressed_size: u64,
    /// What Docker counts as a layer's size: the bytes of its files and of its symlinks'
    /// targets (a hard link adds nothing). A path the tar writes twice counts twice.
    pub content_size: u64,
    pub compression: Compression,
}

enum Decoder<R: BufRead> {
    Plain(R),
    Gzip(Box<flate2::bufread::MultiGzDecoder<R>>),
    Zstd(zstd::stream::read::Decoder<'static, R>),
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

impl<R: BufRead> Decoder<R> {
    fn into_inner(self) -> R {
        match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(r) => r.into_inner(),
            Decoder::Zstd(r) => r.finish(),
        }
    }
}

/// Opens a decompressing reader over `blob`, sniffing the compression from its first bytes.
pub fn decompress<'a, R: Read + 'a>(blob: R) -> Result<(Box<dyn Read + 'a>, Compression)> {
    let mut buf = BufReader::with_capacity(128 * 1024, blob);
    let comp = Compression::detect(buf.fill_buf().ctx(|| "read layer".to_string())?);
    let r: Box<dyn Read> = match comp {
        Compression::None => Box::new(buf),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buf)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(buf)
                .ctx(|| "start zstd decoder".to_string())?,
        ),
    };
    Ok((r, comp))
}

/// Applies the layer read from `blob` into `dest`, an existing (normally empty) directory.
pub fn apply_layer(blob: impl Read, dest: &Path) -> Result<ApplyStats> {
    let root: OwnedFd = File::open(dest)
        .ctx(|| format!("open snapshot dir {}", dest.display()))?
        .into();
    let compressed = HashingReader::new(blob, Algorithm::Sha256);
    let mut buf = BufReader::with_capacity(128 * 1024, compressed);
    let compression = Compression::detect(buf.fill_buf().ctx(|| "read layer".to_string())?);
    let decoder = match compression {
        Compression::None => Decoder::Plain(buf),
        Compression::Gzip => Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(buf))),
        Compression::Zstd => Decoder::Zstd(
            zstd::stream::read::Decoder::with_buffer(buf)
                .ctx(|| "start zstd decoder".to_string())?,
        ),
    };
    let uncompressed = HashingReader::new(decoder, Algorithm::Sha256);
    let mut archive = tar::Archive::new(uncompressed);
    let mut applier = Applier {
        root,
        dirs: Vec::new(),
        parent_cache: None,
        content_size: 0,
    };
    for entry in archive
        .entries()
        .map_err(|e| Error::InvalidLayer(format!("read tar: {e}")))?
    {
        let mut entry = entry.map_err(|e| Error::InvalidLayer(format!("read tar entry: {e}")))?;
        applier.entry(&mut entry)?;
    }
    applier.finish_dirs()?;
    let (diff_id, uncompressed_size, decoder) = archive
        .into_inner()
        .drain_and_finish()
        .map_err(|e| Error::InvalidLayer(format!("read layer: {e}")))?;
    let (blob_digest, blob_size, _) = decoder
        .into_inner()
        .into_inner()
        .drain_and_finish()
        .ctx(|| "read layer blob".to_string())?;
    Ok(ApplyStats {
        diff_id,
        blob_digest,
        blob_size,
        uncompressed_size,
        content_size: applier.content_size,
        compression,
    })
}

struct Applier {
    root: OwnedFd,
    /// Directory mtimes are set last: creating children would change them again.
    dirs: Vec<(Vec<u8>, i64)>,
    parent_cache: Option<(Vec<u8>, OwnedFd)>,
    content_size: u64,
}

/// Go's archive/tar (so Docker) reads an all-blank numeric field as 0; some tar writers
/// leave uid/gid/mode empty. Anything else unparseable is an error.
fn blank(field: &[u8]) -> bool {
    field.iter().all(|b| *b == 0 || *b == b' ')
}

fn mode_of(h: &tar::Header) -> Result<Mode> {
    let m = match h.mode() {
        Ok(m) => m,
        Err(_) if blank(&h.as_old().mode) => 0,
        Err(e) => return Err(Error::InvalidLayer(format!("bad mode: {e}"))),
    };
    Ok(Mode::from_raw_mode(m & 0o7777))
}

fn owner_of(h: &tar::Header, path: &[u8]) -> Result<(Uid, Gid)> {
    let uid = match h.uid() {
        Ok(u) => u,
        Err(_) if blank(&h.as_old().uid) => 0,
        Err(e) => return Err(Error::InvalidLayer(format!("bad uid: {e}"))),
    };
    let gid = match h.gid() {
        Ok(g) => g,
        Err(_) if blank(&h.as_old().gid) => 0,
        Err(e) => return Err(Error::InvalidLayer(format!("bad gid: {e}"))),
    };
    let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) else {
        return Err(unsafe_path(path, "uid/gid out of range"));
    };
    if uid == u32::MAX || gid == u32::MAX {
        return Err(unsafe_path(path, "uid/gid -1"));
    }
    Ok((Uid::from_raw_unchecked(uid), Gid::from_raw_unchecked(gid)))
}

fn timestamps(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn proc_path(dir: &OwnedFd, name: &[u8]) -> std::path::PathBuf {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    std::path::PathBuf::from(OsStr::from_bytes(&p))
}

impl Applier {
    fn parent(&mut self, comps: &[&[u8]]) -> Result<&OwnedFd> {
        let key = comps.join(&b'/');
        let hit = matches!(&self.parent_cache, Some((k, _)) if *k == key);
        if !hit {
            let fd = ensure_dir(&self.root, comps)?;
            self.parent_cache = Some((key, fd));
        }
        match &self.parent_cache {
            Some((_, fd)) => Ok(fd),
            None => unreachable!("parent cache was just filled"),
        }
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<()> {
        let path = entry.path_bytes().into_owned();
        let comps = components(&path)?;
        let kind = entry.header().entry_type();
        let xattrs = collect_xattrs(entry, &path)?;

        let Some((name, parent)) = comps.split_last() else {
            // The layer's own root (`./`): only its metadata can apply.
            if kind == EntryType::Directory {
                let fd = open_dir(&self.root, &[]).ctx(|| "open layer root".to_string())?;
                self.set_meta(&fd, entry.header(), &path, &xattrs)?;
                let mtime = entry.header().mtime().unwrap_or(0) as i64;
                self.dirs.push((Vec::new(), mtime));
            }
            return Ok(());
        };
        let name: &[u8] = name;

        match classify(name) {
            WhiteoutKind::Ignore => return Ok(()),
            WhiteoutKind::Opaque => {
                let dir = self.parent(parent)?;
                fsetxattr(dir, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
                    .ctx(|| format!("mark {} opaque", String::from_utf8_lossy(&path)))?;
                return Ok(());
            }
            WhiteoutKind::Remove(target) => {
                if target.is_empty() || target == b"." || target == b".." {
                    return Err(unsafe_path(&path, "whiteout of an invalid name"));
                }
                let dir = self.parent(parent)?.try_clone().ctx(|| "dup fd".into())?;
                self.remove_existing(&dir, target, false)?;
                mknodat(
                    &dir,
                    OsStr::from_bytes(target),
                    FileType::CharacterDevice,
                    Mode::empty(),
                    0,
                )
                .ctx(|| format!("create whiteout for {}", String::from_utf8_lossy(&path)))?;
                return Ok(());
            }
            WhiteoutKind::None => {}
        }

        let dir = self.parent(parent)?.try_clone().ctx(|| "dup fd".into())?;
        let os_name = OsStr::from_bytes(name);
        let h = entry.header().clone();
        let what = || String::from_utf8_lossy(&path).into_owned();
        match kind {
            EntryType::Directory => {
                let existed = self.remove_existing(&dir, name, true)?;
                if !existed {
                    mkdirat(&dir, os_name, Mode::from_raw_mode(0o700))
                        .ctx(|| format!("mkdir {}", what()))?;
                }
                let fd = open_dir(&dir, &[name]).map_err(|e| classify_err(&comps, e))?;
                self.set_meta(&fd, &h, &path, &xattrs)?;
                let mtime = h.mtime().unwrap_or(0) as i64;
                self.dirs.push((path.clone(), mtime));
            }
            EntryType::Regular | EntryType::Continuous => {
                self.remove_existing(&dir, name, false)?;
                let fd = openat(
                    &dir,
                    os_name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .ctx(|| format!("create {}", what()))?;
                let mut file = File::from(fd);
                let written = io::copy(entry, &mut file)
                    .map_err(|e| Error::InvalidLayer(format!("write {}: {e}", what())))?;
                self.content_size += written;
                let fd = OwnedFd::from(file);
                self.set_meta(&fd, &h, &path, &xattrs)?;
                futimens(&fd, &timestamps(h.mtime().unwrap_or(0) as i64))
                    .ctx(|| format!("set times of {}", what()))?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| {
                        Error::InvalidLayer(format!("symlink {} without target", what()))
                    })?
                    .into_owned();
                self.remove_existing(&dir, name, false)?;
                // The target is stored verbatim: it is only ever resolved inside the container,
                // and our own lookups refuse to follow symlinks.
                symlinkat(OsStr::from_bytes(&target), &dir, os_name)
                    .ctx(|| format!("symlink {}", what()))?;
                self.content_size += target.len() as u64;
                self.set_meta_at(&dir, name, &h, &path, &xattrs, true)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| {
                        Error::InvalidLayer(format!("hardlink {} without target", what()))
                    })?
                    .into_owned();
                let tcomps = components(&target)?;
                let Some((tname, tparent)) = tcomps.split_last() else {
                    return Err(unsafe_path(&target, "hardlink to the layer root"));
                };
                let tdir = open_dir(&self.root, tparent).map_err(|e| classify_err(&tcomps, e))?;
                let st = statat(&tdir, OsStr::from_bytes(tname), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| classify_err(&tcomps, e))?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    return Err(unsafe_path(&path, "hardlink to a directory"));
                }
                if tcomps == comps {
                    return Ok(());
                }
                self.remove_existing(&dir, name, false)?;
                // linkat without AT_SYMLINK_FOLLOW links the name itself, never what it points at.
                rustix::fs::linkat(
                    &tdir,
                    OsStr::from_bytes(tname),
                    &dir,
                    os_name,
                    AtFlags::empty(),
                )
                .ctx(|| format!("hardlink {}", what()))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let ft = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                self.remove_existing(&dir, name, false)?;
                mknodat(
                    &dir,
                    os_name,
                    ft,
                    Mode::from_raw_mode(0o600),
                    rustix::fs::makedev(major, minor),
                )
                .ctx(|| format!("mknod {}", what()))?;
                self.set_meta_at(&dir, name, &h, &path, &xattrs, false)?;
            }
            EntryType::XGlobalHeader => {}
            other => {
                return Err(Error::InvalidLayer(format!(
                    "unsupported tar entry type {other:?} for {}",
                    what()
                )))
            }
        }
        Ok(())
    }

    /// Clears the way for a new entry. Returns true when `name` is a directory that was kept
    /// because the new entry is a directory too (tar semantics: directories merge).
    fn remove_existing(&mut self, dir: &OwnedFd, name: &[u8], keep_dir: bool) -> Result<bool> {
        let os_name = OsStr::from_bytes(name);
        let st = match statat(dir, os_name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(e).ctx(|| format!("stat {}", String::from_utf8_lossy(name))),
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            if keep_dir {
                return Ok(true);
            }
            // Removing a directory invalidates any cached fd below it.
            self.parent_cache = None;
            std::fs::remove_dir_all(proc_path(dir, name))
                .ctx(|| format!("remove {}", String::from_utf8_lossy(name)))?;
        } else {
            unlinkat(dir, os_name, AtFlags::empty())
                .ctx(|| format!("remove {}", String::from_utf8_lossy(name)))?;
        }
        Ok(false)
    }

    fn set_meta(
        &self,
        fd: &OwnedFd,
        h: &tar::Header,
        path: &[u8],
        xattrs: &[(String, Vec<u8>)],
    ) -> Result<()> {
        let what = || String::from_utf8_lossy(path).into_owned();
        let (uid, gid) = owner_of(h, path)?;
        // chown before chmod: chown clears set-id bits.
        fchown(fd, Some(uid), Some(gid)).ctx(|| format!("chown {}", what()))?;
        fchmod(fd, mode_of(h)?).ctx(|| format!("chmod {}", what()))?;
        for (k, v) in xattrs {
            tolerate_xattr(
                fsetxattr(fd, k.as_str(), v, XattrFlags::empty()),
                k,
                &what(),
            )?;
        }
        Ok(())
    }

    /// Metadata for entries that cannot be opened (symlinks, device nodes, fifos).
    fn set_meta_at(
        &self,
        dir: &OwnedFd,
        name: &[u8],
        h: &tar::Header,
        path: &[u8],
        xattrs: &[(String, Vec<u8>)],
        is_symlink: bool,
    ) -> Result<()> {
        let what = || String::from_utf8_lossy(path).into_owned();
        let os_name = OsStr::from_bytes(name);
        let (uid, gid) = owner_of(h, path)?;
        rustix::fs::chownat(
            dir,
            os_name,
            Some(uid),
            Some(gid),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .ctx(|| format!("chown {}", what()))?;
        if !is_symlink {
            rustix::fs::chmodat(dir, os_name, mode_of(h)?, AtFlags::empty())
                .ctx(|| format!("chmod {}", what()))?;
        }
        for (k, v) in xattrs {
            tolerate_xattr(
                rustix::fs::lsetxattr(proc_path(dir, name), k.as_str(), v, XattrFlags::empty()),
                k,
                &what(),
            )?;
        }
        utimensat(
            dir,
            os_name,
            &timestamps(h.mtime().unwrap_or(0) as i64),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .ctx(|| format!("set times of {}", what()))?;
        Ok(())
    }

    fn finish_dirs(&mut self) -> Result<()> {
        self.parent_cache = None;
        for (path, mtime) in self.dirs.iter().rev() {
            let comps = components(path)?;
            // A later entry may have replaced the directory; then there is nothing to stamp.
            let Ok(fd) = open_dir(&self.root, &comps) else {
                continue;
            };
            futimens(&fd, &timestamps(*mtime))
                .ctx(|| format!("set times of {}", String::from_utf8_lossy(path)))?;
        }
        Ok(())
    }
}

/// A filesystem without the xattr namespace (ENOTSUP), or `user.*` on a symlink or device
/// (EPERM), loses that xattr with a warning, as Docker does; other failures are errors.
fn tolerate_xattr(r: rustix::io::Result<()>, key: &str, path: &str) -> Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(e @ (Errno::NOTSUP | Errno::PERM)) => {
            tracing::warn!(xattr = key, path, error = %e, "xattr not applied");
            Ok(())
        }
        Err(e) => Err(e).ctx(|| format!("set xattr {key} on {path}")),
    }
}

fn collect_xattrs<R: Read>(
    entry: &mut tar::Entry<R>,
    path: &[u8],
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let Some(exts) = entry.pax_extensions().map_err(|e| {
        Error::InvalidLayer(format!(
            "pax header of {}: {e}",
            String::from_utf8_lossy(path)
        ))
    })?
    else {
        return Ok(out);
    };
    for ext in exts {
        let ext = ext.map_err(|e| Error::InvalidLayer(format!("pax header: {e}")))?;
        let Ok(key) = ext.key() else { continue };
        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
            if is_overlay_xattr(name) {
                return Err(unsafe_path(path, "layer sets an overlayfs xattr"));
            }
            out.push((name.to_string(), ext.value_bytes().to_vec()));
        }
    }
    Ok(out)
}
