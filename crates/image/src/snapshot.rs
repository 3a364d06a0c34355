//! Snapshots: one directory per layer, `<root>/snapshots/<chainID-hex>/fs`, holding that
//! layer alone in overlayfs form (and `init`, the init layer of the images whose top layer
//! it is), plus writable `rw-<key>/{fs,work}` directories for containers. A container
//! rootfs is an overlay mount of the layer chain, the init layer and its writable dir.
//!
//! Durability is deferred: a layer snapshot is derived data (its blob in the content store is
//! fsynced), so extraction does not wait for the disk. A new snapshot carries an `unsynced`
//! marker holding the boot ID; [`SnapshotStore::sync_pending`] (called by the daemon every
//! few seconds and at shutdown) syncs the filesystem once and drops the markers. At open, a
//! marker from an earlier boot means the machine went down before the data was on disk: that
//! snapshot is removed and extracted again from its blob when next needed. A marker from this
//! boot (the daemon restarted, the kernel did not) only needs the sync: the data is intact in
//! the page cache, and running containers may be using it.

use crate::digest::{Algorithm, Digest};
use crate::error::{Error, IoContext, Result};
use crate::init_layer;
use crate::layer::{apply_layer, ApplyStats};
use crate::store::atomic::{clean_temp_files, fsync_dir, temp_path_in};
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount, unmount,
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags,
};
use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

const RW_PREFIX: &str = "rw-";
const UNSYNCED: &str = "unsynced";
const CONTENT_SIZE: &str = "content-size";
const LAYER_DIR: &str = "fs";
/// An init layer, a container's top-most lower layer (see [`crate::init_layer`]).
const INIT_DIR: &str = "init";
const OVERLAY_FEATURES: [(&str, &str); 3] = [
    ("redirect_dir", "off"),
    ("index", "off"),
    ("metacopy", "off"),
];

#[derive(Clone, Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
}

/// What to mount for a container rootfs. `lowers` is ordered top-most first, as overlayfs
/// wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverlayMount {
    pub lowers: Vec<PathBuf>,
    pub upper: Option<PathBuf>,
    pub work: Option<PathBuf>,
}

impl SnapshotStore {
    /// Opens the store, removes interrupted extractions and init layer builds and the
    /// snapshots an OS crash may have left incomplete, and makes the rest durable.
    pub fn open(root: &Path) -> Result<SnapshotStore> {
        let dir = root.join("snapshots");
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        let n = clean_temp_files(&dir)?;
        if n > 0 {
            tracing::info!(removed = n, "removed interrupted layer extractions");
        }
        let store = SnapshotStore { dir };
        let boot = boot_id();
        let mut pending = false;
        for d in store.list_layers()? {
            // An init layer whose build was interrupted.
            clean_temp_files(&store.dir.join(d.hex()))?;
            let marker = store.dir.join(d.hex()).join(UNSYNCED);
            match fs::read_to_string(&marker) {
                Ok(b) if b.trim() == boot && !boot.is_empty() => pending = true,
                Ok(_) => {
                    tracing::warn!(chain_id = %d, "layer extracted before a reboot and never synced: removing it");
                    store.remove_layer(&d)?;
                }
                Err(_) => {}
            }
        }
        if pending {
            store.sync_pending()?;
        }
        Ok(store)
    }

    /// Makes every snapshot extracted so far durable (one syncfs) and clears their markers.
    pub fn sync_pending(&self) -> Result<usize> {
        let markers: Vec<PathBuf> = self
            .list_layers()?
            .iter()
            .map(|d| self.dir.join(d.hex()).join(UNSYNCED))
            .filter(|m| m.exists())
            .collect();
        if markers.is_empty() {
            return Ok(0);
        }
        let f = fs::File::open(&self.dir).ctx(|| format!("open {}", self.dir.display()))?;
        rustix::fs::syncfs(&f).ctx(|| "syncfs snapshots".to_string())?;
        for m in &markers {
            match fs::remove_file(m) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).ctx(|| format!("remove {}", m.display())),
            }
            if let Some(parent) = m.parent() {
                fsync_dir(parent)?;
            }
        }
        Ok(markers.len())
    }

    /// Snapshots not yet known to be on disk.
    pub fn unsynced(&self) -> Result<Vec<Digest>> {
        Ok(self
            .list_layers()?
            .into_iter()
            .filter(|d| self.dir.join(d.hex()).join(UNSYNCED).exists())
            .collect())
    }

    pub fn layer_dir(&self, chain_id: &Digest) -> PathBuf {
        self.dir.join(chain_id.hex()).join(LAYER_DIR)
    }

    pub fn has_layer(&self, chain_id: &Digest) -> bool {
        self.layer_dir(chain_id).is_dir()
    }

    /// Extracts a layer blob into the snapshot for `chain_id`. The snapshot appears only once
    /// complete (extracted in a temp dir, then renamed), and only if the uncompressed content
    /// hashes to `expected_diff_id`. It is durable after the next [`Self::sync_pending`].
    pub fn apply(
        &self,
        chain_id: &Digest,
        expected_diff_id: Option<&Digest>,
        blob: impl Read,
    ) -> Result<ApplyStats> {
        let tmp = temp_path_in(&self.dir);
        let result = (|| {
            let fs_dir = tmp.join(LAYER_DIR);
            fs::create_dir_all(&fs_dir).ctx(|| format!("create {}", fs_dir.display()))?;
            let stats = apply_layer(blob, &fs_dir)?;
            if let Some(want) = expected_diff_id {
                if *want != stats.diff_id {
                    return Err(Error::DigestMismatch {
                        expected: want.clone(),
                        actual: stats.diff_id.clone(),
                    });
                }
            }
            fs::write(tmp.join("diffid"), stats.diff_id.to_string())
                .and_then(|_| fs::write(tmp.join(CONTENT_SIZE), stats.content_size.to_string()))
                .and_then(|_| fs::write(tmp.join(UNSYNCED), boot_id()))
                .ctx(|| "write snapshot metadata".to_string())?;
            let dest = self.dir.join(chain_id.hex());
            match fs::rename(&tmp, &dest) {
                // No directory fsync: durability is deferred to sync_pending, and a rename
                // lost in a crash only means the layer is extracted again. (On ext4 the
                // fsync would also write out the whole layer's data, ordered before it.)
                Ok(()) => {}
                // Someone else extracted the same layer meanwhile (rename(2) does not replace
                // a non-empty directory); theirs is as good.
                Err(_) if dest.is_dir() => {
                    fs::remove_dir_all(&tmp).ctx(|| format!("remove {}", tmp.display()))?
                }
                Err(e) => return Err(e).ctx(|| format!("rename into {}", dest.display())),
            }
            Ok(stats)
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }

    /// The layer's size as Docker shows it (see [`ApplyStats::content_size`]), recorded at
    /// extraction. A layer extracted before that was recorded is measured once, as moby
    /// measures its layers, by walking its files, and the figure kept.
    pub fn layer_size(&self, chain_id: &Digest) -> Option<u64> {
        let dir = self.dir.join(chain_id.hex());
        if let Some(n) = fs::read_to_string(dir.join(CONTENT_SIZE))
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return Some(n);
        }
        let layer = dir.join(LAYER_DIR);
        if !layer.is_dir() {
            return None;
        }
        let n = files_size(&layer, &mut HashSet::new());
        // A figure that cannot be kept is measured again next time.
        let _ = crate::store::atomic::write_file(&dir.join(CONTENT_SIZE), n.to_string().as_bytes());
        Some(n)
    }

    pub fn remove_layer(&self, chain_id: &Digest) -> Result<()> {
        remove_dir_if_exists(&self.dir.join(chain_id.hex()))
    }

    pub fn list_layers(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir).ctx(|| format!("read {}", self.dir.display()))? {
            let e = e.ctx(|| format!("read {}", self.dir.display()))?;
            if let Some(d) = e
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(Algorithm::Sha256, n).ok())
            {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes layer snapshots no image needs any more.
    pub fn gc(&self, keep: &BTreeSet<Digest>) -> Result<Vec<Digest>> {
        let mut removed = Vec::new();
        for d in self.list_layers()? {
            if !keep.contains(&d) {
                self.remove_layer(&d)?;
                removed.push(d);
            }
        }
        Ok(removed)
    }

    fn rw_dir(&self, key: &str) -> Result<PathBuf> {
        let ok = !key.is_empty()
            && key.len() <= 128
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(Error::SnapshotNotFound(format!(
                "invalid snapshot key {key:?}"
            )));
        }
        Ok(self.dir.join(format!("{RW_PREFIX}{key}")))
    }

    /// Creates the writable layer of a container over the image's layer chain (`chain_ids`
    /// bottom first, as in the image config).
    pub fn prepare_rw(&self, key: &str, chain_ids: &[Digest]) -> Result<OverlayMount> {
        self.prepare_rw_with_init(key, chain_ids, &[])
    }

    /// [`Self::prepare_rw`] with an init layer of `init` entries between the image and the
    /// writable layer (see [`crate::init_layer`]). It depends on the image alone, so the
    /// containers of an image share one, kept beside the image's top layer and removed with
    /// it; an image without layers gets one of its own.
    pub fn prepare_rw_with_init(
        &self,
        key: &str,
        chain_ids: &[Digest],
        init: &[(&str, init_layer::InitKind)],
    ) -> Result<OverlayMount> {
        let rw = self.rw_dir(key)?;
        for c in chain_ids {
            if !self.has_layer(c) {
                return Err(Error::SnapshotNotFound(c.to_string()));
            }
        }
        let upper = rw.join(LAYER_DIR);
        let work = rw.join("work");
        for d in [&upper, &work] {
            fs::create_dir_all(d).ctx(|| format!("create {}", d.display()))?;
        }
        let mut lowers: Vec<PathBuf> = chain_ids.iter().rev().map(|c| self.layer_dir(c)).collect();
        if !init.is_empty() {
            let home = match chain_ids.last() {
                Some(top) => self.dir.join(top.hex()),
                None => rw.clone(),
            };
            let dir = home.join(INIT_DIR);
            if !dir.is_dir() {
                // Unlike a layer, it is made durable at once: it is small, made once per
                // image, and a half-written one would never be rebuilt.
                let tmp = temp_path_in(&home);
                let built = init_layer::build(&tmp, &lowers, init).and_then(|()| {
                    match fs::rename(&tmp, &dir) {
                        Ok(()) => fsync_dir(&home),
                        // Another container of the image built it meanwhile; same content.
                        Err(_) if dir.is_dir() => remove_dir_if_exists(&tmp),
                        Err(e) => Err(e).ctx(|| format!("rename into {}", dir.display())),
                    }
                });
                if built.is_err() {
                    let _ = fs::remove_dir_all(&tmp);
                }
                built?;
            }
            lowers.insert(0, dir);
        }
        if lowers.is_empty() {
            // overlayfs needs a lower layer even for an image without layers.
            let empty = rw.join("empty");
            fs::create_dir_all(&empty).ctx(|| format!("create {}", empty.display()))?;
            lowers.push(empty);
        }
        Ok(OverlayMount {
            lowers,
            upper: Some(upper),
            work: Some(work),
        })
    }

    pub fn rw_upper(&self, key: &str) -> Result<PathBuf> {
        Ok(self.rw_dir(key)?.join(LAYER_DIR))
    }

    pub fn remove_rw(&self, key: &str) -> Result<()> {
        remove_dir_if_exists(&self.rw_dir(key)?)
    }

    /// Keys of every writable layer in the store.
    pub fn rw_keys(&self) -> Result<Vec<String>> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).ctx(|| format!("read {}", self.dir.display())),
        };
        Ok(rd
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix(RW_PREFIX).map(str::to_owned)
            })
            .collect())
    }
}

/// The bytes of every file and symlink under `dir`, a hard-linked file once; not following
/// symlinks.
fn files_size(dir: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for e in rd.flatten() {
        let Ok(md) = e.metadata() else { continue };
        if md.is_dir() {
            total += files_size(&e.path(), seen);
        } else if md.nlink() < 2 || seen.insert((md.dev(), md.ino())) {
            total += md.size();
        }
    }
    total
}

fn remove_dir_if_exists(p: &Path) -> Result<()> {
    match fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).ctx(|| format!("remove {}", p.display())),
    }
}

impl OverlayMount {
    /// Mounts the overlay on `target` with the new mount API: one `lowerdir+` per layer, so
    /// the number of layers is not limited by the one-page mount data of mount(2)
    /// (DEPENDENCIES.md pitfall 9; kernel 6.8 or later).
    pub fn mount(&self, target: &Path) -> Result<()> {
        self.mount_with(target, false)
    }

    /// [`Self::mount`] with overlayfs' `volatile` option, for a writable layer that is
    /// thrown away with its container (`docker run --rm`): syncs are skipped, so unmounting
    /// it does not write back the whole backing filesystem (hundreds of ms on a busy disk).
    /// The marker the kernel leaves in the work dir, which would refuse a second mount of
    /// the same layer, is removed first: such a layer's content never matters after a crash.
    pub fn mount_volatile(&self, target: &Path) -> Result<()> {
        if let Some(w) = &self.work {
            let _ = fs::remove_dir(w.join("work/incompat/volatile"));
        }
        self.mount_with(target, true)
    }

    fn mount_with(&self, target: &Path, volatile: bool) -> Result<()> {
        let fsfd = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
            .map_err(|e| Error::Mount(format!("fsopen overlay: {e}")))?;
        let fail = |what: String, e: rustix::io::Errno| {
            Error::Mount(format!("{what}: {e}{}", kernel_message(&fsfd)))
        };
        for l in &self.lowers {
            fsconfig_set_string(&fsfd, "lowerdir+", l)
                .map_err(|e| fail(format!("lowerdir+ {}", l.display()), e))?;
        }
        // Off explicitly: with redirects, index or metacopy, the upper dir would no longer
        // hold every change, and diffs for commit/export would be wrong.
        for (k, v) in OVERLAY_FEATURES {
            fsconfig_set_string(&fsfd, k, v).map_err(|e| fail(format!("{k}={v}"), e))?;
        }
        if let (Some(u), Some(w)) = (&self.upper, &self.work) {
            fsconfig_set_string(&fsfd, "upperdir", u)
                .map_err(|e| fail(format!("upperdir {}", u.display()), e))?;
            fsconfig_set_string(&fsfd, "workdir", w)
                .map_err(|e| fail(format!("workdir {}", w.display()), e))?;
            if volatile {
                fsconfig_set_flag(&fsfd, "volatile").map_err(|e| fail("volatile".into(), e))?;
            }
        }
        fsconfig_create(&fsfd).map_err(|e| fail("create overlay".into(), e))?;
        let mnt = fsmount(
            &fsfd,
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::empty(),
        )
        .map_err(|e| fail("fsmount".into(), e))?;
        move_mount(
            &mnt,
            "",
            rustix::fs::CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(|e| Error::Mount(format!("move_mount to {}: {e}", target.display())))?;
        Ok(())
    }

    /// The classic `mount -t overlay -o ...` option string, for an OCI runtime spec's mounts.
    /// It must fit in one page; callers with many layers should mount with [`Self::mount`].
    pub fn options(&self) -> Result<String> {
        let lowers: Vec<String> = self
            .lowers
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let mut s = format!("lowerdir={}", lowers.join(":"));
        for (k, v) in OVERLAY_FEATURES {
            s.push_str(&format!(",{k}={v}"));
        }
        if let (Some(u), Some(w)) = (&self.upper, &self.work) {
            s.push_str(&format!(
                ",upperdir={},workdir={}",
                u.display(),
                w.display()
            ));
        }
        if s.len() >= 4096 {
            return Err(Error::Mount(format!(
                "overlay options are {} bytes, over the one-page limit of mount(2)",
                s.len()
            )));
        }
        Ok(s)
    }
}

/// Changes at every boot; tells a daemon restart from a machine restart.
fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The kernel explains fsconfig failures in messages read from the fs context fd.
fn kernel_message(fsfd: &std::os::fd::OwnedFd) -> String {
    let mut buf = [0u8; 512];
    match rustix::io::read(fsfd, &mut buf) {
        Ok(n) if n > 0 => format!(" ({})", String::from_utf8_lossy(&buf[..n]).trim()),
        _ => String::new(),
    }
}

pub fn unmount_rootfs(target: &Path) -> Result<()> {
    unmount(target, UnmountFlags::empty())
        .or_else(|_| unmount(target, UnmountFlags::DETACH))
        .map_err(|e| Error::Mount(format!("unmount {}: {e}", target.display())))
}
