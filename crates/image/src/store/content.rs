//! Content-addressed blob store: `<root>/content/blobs/<alg>/<hex>`.
//!
//! A blob becomes visible only after it has been fully written, verified, fsynced and renamed
//! into place, so a reader never sees partial content and a crash leaves at most a temp file,
//! removed at the next open.

use super::atomic::{clean_temp_files, fsync_dir, temp_path_in};
use crate::digest::{Algorithm, Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct ContentStore {
    blobs: PathBuf,
}

impl ContentStore {
    /// Opens (creating if needed) the store under `root` and removes interrupted writes.
    pub fn open(root: &Path) -> Result<ContentStore> {
        let blobs = root.join("content").join("blobs");
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = blobs.join(alg.as_str());
            fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
            let n = clean_temp_files(&dir)?;
            if n > 0 {
                tracing::info!(dir = %dir.display(), removed = n, "removed interrupted blob writes");
            }
        }
        Ok(ContentStore { blobs })
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    pub fn exists(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    pub fn size(&self, digest: &Digest) -> Result<u64> {
        match fs::metadata(self.blob_path(digest)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::BlobNotFound(digest.clone()))
            }
            Err(e) => Err(e).ctx(|| format!("stat blob {digest}")),
        }
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        match File::open(self.blob_path(digest)) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::BlobNotFound(digest.clone()))
            }
            Err(e) => Err(e).ctx(|| format!("open blob {digest}")),
        }
    }

    /// Reads a whole blob, refusing blobs over `limit` bytes (manifests, configs).
    pub fn read_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>> {
        let size = self.size(digest)?;
        if size > limit {
            return Err(Error::TooLarge {
                what: format!("blob {digest}"),
                size,
                limit,
            });
        }
        let mut data = Vec::with_capacity(size as usize);
        self.open_blob(digest)?
            .take(limit + 1)
            .read_to_end(&mut data)
            .ctx(|| format!("read blob {digest}"))?;
        Ok(data)
    }

    /// Starts a streaming write; the blob is stored by [`BlobWriter::commit`].
    pub fn writer(&self, alg: Algorithm) -> Result<BlobWriter> {
        let dir = self.blobs.join(alg.as_str());
        let tmp = temp_path_in(&dir);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .ctx(|| format!("create {}", tmp.display()))?;
        Ok(BlobWriter {
            store: self.clone(),
            tmp: Some(tmp),
            out: Some(HashingWriter::new(
                BufWriter::with_capacity(256 * 1024, file),
                alg,
            )),
            written: 0,
            flushed_to: 0,
        })
    }

    /// Stores everything `reader` yields. With `expected`, the content must hash to it (the
    /// algorithm is taken from it); otherwise sha256 is used.
    pub fn write_blob(
        &self,
        reader: &mut dyn Read,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<(Digest, u64)> {
        if let Some(d) = expected {
            if self.exists(d) {
                // An existing blob was verified when it was stored; skip the copy.
                let size = self.size(d)?;
                if expected_size.is_some_and(|s| s != size) {
                    return Err(Error::SizeMismatch {
                        digest: d.clone(),
                        expected: expected_size.unwrap_or_default(),
                        actual: size,
                    });
                }
                return Ok((d.clone(), size));
            }
        }
        let alg = expected.map_or(Algorithm::Sha256, Digest::algorithm);
        let mut w = self.writer(alg)?;
        io::copy(reader, &mut w).ctx(|| "write blob".to_string())?;
        w.commit(expected, expected_size)
    }

    pub fn write_bytes(&self, data: &[u8]) -> Result<Digest> {
        let d = Digest::sha256_of(data);
        self.write_blob(&mut &data[..], Some(&d), Some(data.len() as u64))?;
        Ok(d)
    }

    /// Records that `derived` is `source` transformed by `kind` (e.g. the gzip of an
    /// uncompressed layer for push), so the work is not redone. Only a hint: callers check
    /// that the derived blob still exists (GC may have removed it).
    pub fn set_derived(&self, kind: &str, source: &Digest, derived: &Digest) -> Result<()> {
        let dir = self.derived_dir(kind)?;
        super::atomic::write_file(
            &dir.join(format!("{}-{}", source.algorithm().as_str(), source.hex())),
            derived.to_string().as_bytes(),
        )
    }

    /// The derived blob of `source`, if it is recorded and stored here.
    pub fn derived(&self, kind: &str, source: &Digest) -> Option<Digest> {
        self.derived_digest(kind, source).filter(|d| self.exists(d))
    }

    /// The recorded digest of `source`'s derived form, stored here or not: a push that
    /// compressed a layer on the fly remembers only the digest (as Docker's push metadata
    /// does), to find the blob in a registry later.
    pub fn derived_digest(&self, kind: &str, source: &Digest) -> Option<Digest> {
        let dir = self.derived_dir(kind).ok()?;
        let s = fs::read_to_string(dir.join(format!(
            "{}-{}",
            source.algorithm().as_str(),
            source.hex()
        )))
        .ok()?;
        s.trim().parse().ok()
    }

    fn derived_dir(&self, kind: &str) -> Result<PathBuf> {
        if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(Error::InvalidDigest(format!("derived kind {kind:?}")));
        }
        // content/derived/<kind>/, beside blobs/.
        let dir = self
            .blobs
            .parent()
            .unwrap_or(&self.blobs)
            .join("derived")
            .join(kind);
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        Ok(dir)
    }

    pub fn delete(&self, digest: &Digest) -> Result<()> {
        match fs::remove_file(self.blob_path(digest)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).ctx(|| format!("delete blob {digest}")),
        }
    }

    /// All committed blobs (temp files excluded).
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self.blobs.join(alg.as_str());
            for entry in fs::read_dir(&dir).ctx(|| format!("read {}", dir.display()))? {
                let entry = entry.ctx(|| format!("read {}", dir.display()))?;
                let name = entry.file_name();
                if let Some(d) = name.to_str().and_then(|n| Digest::from_hex(alg, n).ok()) {
                    out.push(d);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// A blob being written. Dropping it without `commit` removes the temp file.
pub struct BlobWriter {
    store: ContentStore,
    tmp: Option<PathBuf>,
    out: Option<HashingWriter<BufWriter<File>>>,
    written: u64,
    /// Where the last write-back request ended.
    flushed_to: u64,
}

/// Write-back of a large blob is started every this many bytes, so the fsync at commit finds
/// little left to write instead of the whole blob (a pull's blob then costs almost no time
/// after its last byte arrives).
const WRITE_BEHIND: u64 = 8 << 20;

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(o) = &mut self.out else {
            return Err(io::Error::other("blob writer already committed"));
        };
        let n = o.write(buf)?;
        self.written += n as u64;
        if self.written - self.flushed_to >= WRITE_BEHIND {
            o.get_mut().flush()?;
            start_write_back(o.get_mut().get_ref(), self.flushed_to, self.written);
            self.flushed_to = self.written;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Some(o) => o.flush(),
            None => Ok(()),
        }
    }
}

impl BlobWriter {
    /// Verifies, fsyncs and renames the blob into place. Storing a blob that already exists
    /// keeps the existing file, so identical content is stored once.
    pub fn commit(
        mut self,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<(Digest, u64)> {
        let (Some(tmp), Some(out)) = (self.tmp.take(), self.out.take()) else {
            return Err(Error::Io {
                context: "commit blob".into(),
                source: io::Error::other("blob writer already committed"),
            });
        };
        let result = self.finish(&tmp, out, expected, expected_size);
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn finish(
        &self,
        tmp: &Path,
        out: HashingWriter<BufWriter<File>>,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<(Digest, u64)> {
        let (digest, size, buf) = out.finish();
        if let Some(e) = expected {
            if *e != digest {
                return Err(Error::DigestMismatch {
                    expected: e.clone(),
                    actual: digest,
                });
            }
        }
        if let Some(s) = expected_size {
            if s != size {
                return Err(Error::SizeMismatch {
                    digest,
                    expected: s,
                    actual: size,
                });
            }
        }
        let file = buf
            .into_inner()
            .map_err(|e| e.into_error())
            .ctx(|| format!("write {}", tmp.display()))?;
        let dest = self.store.blob_path(&digest);
        if dest.is_file() {
            fs::remove_file(tmp).ctx(|| format!("remove {}", tmp.display()))?;
            return Ok((digest, size));
        }
        file.sync_all().ctx(|| format!("fsync {}", tmp.display()))?;
        drop(file);
        fs::rename(tmp, &dest).ctx(|| format!("rename blob into {}", dest.display()))?;
        fsync_dir(dest.parent().unwrap_or(Path::new("/")))?;
        Ok((digest, size))
    }
}

/// Asks the kernel to start writing `[from, to)` of `file` to disk, without waiting.
/// Only a hint: failures are ignored (the fsync at commit is what counts).
fn start_write_back(file: &File, from: u64, to: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(len)) = (i64::try_from(from), i64::try_from(to - from)) else {
        return;
    };
    // SAFETY: sync_file_range only reads its integer arguments; the fd is open for the
    // duration of the call (borrowed from `file`).
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), off, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::{Duration, Instant};

    #[test]
    fn stores_verifies_and_dedups() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let d = store.write_bytes(b"hello").unwrap();
        assert_eq!(d, Digest::sha256_of(b"hello"));
        assert_eq!(store.read_blob(&d, 100).unwrap(), b"hello");
        let d2 = store.write_bytes(b"hello").unwrap();
        assert_eq!(d, d2);
        assert_eq!(store.list().unwrap(), vec![d.clone()]);

        let wrong = Digest::sha256_of(b"other");
        let err = store
            .write_blob(&mut &b"hello!"[..], Some(&wrong), None)
            .unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        let err = store
            .write_blob(&mut &b"abc"[..], Some(&Digest::sha256_of(b"abc")), Some(4))
            .unwrap_err();
        assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
        assert!(matches!(
            store.read_blob(&d, 2),
            Err(Error::TooLarge { .. })
        ));

        let mut h = Algorithm::Sha512.hasher();
        h.update(b"x512");
        let d512 = h.finish();
        store
            .write_blob(&mut &b"x512"[..], Some(&d512), None)
            .unwrap();
        assert!(store
            .blob_path(&d512)
            .to_string_lossy()
            .contains("/content/blobs/sha512/"));
        assert_eq!(store.list().unwrap().len(), 2);
        // Nothing left behind by the failed writes.
        for alg in ["sha256", "sha512"] {
            let n = fs::read_dir(dir.path().join("content/blobs").join(alg))
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with(".tmp-")
                })
                .count();
            assert_eq!(n, 0);
        }
    }

    #[test]
    fn derived_hints_and_concurrent_writers() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let a = store.write_bytes(b"source").unwrap();
        let b = store.write_bytes(b"derived").unwrap();
        assert_eq!(store.derived("gzip", &a), None);
        store.set_derived("gzip", &a, &b).unwrap();
        assert_eq!(store.derived("gzip", &a), Some(b.clone()));
        store.delete(&b).unwrap();
        assert_eq!(
            store.derived("gzip", &a),
            None,
            "a hint to a deleted blob is no hint"
        );
        assert!(store.set_derived("../x", &a, &b).is_err());

        // Eight threads storing the same content at once: one blob, no temp files left.
        let data = vec![7u8; 3 << 20];
        let want = Digest::sha256_of(&data);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let got = store.write_blob(&mut &data[..], None, None).unwrap();
                    assert_eq!(got.0, want);
                });
            }
        });
        assert_eq!(store.read_blob(&want, 4 << 20).unwrap(), data);
        let names: Vec<_> = fs::read_dir(dir.path().join("content/blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    /// Runs only as the child of `kill_during_write_leaves_store_consistent`.
    #[test]
    #[ignore]
    fn child_slow_writer() {
        let Some(root) = std::env::var_os("BERTH_TEST_CHILD_STORE") else {
            return;
        };
        let store = ContentStore::open(Path::new(&root)).unwrap();
        struct Slow(u32);
        impl Read for Slow {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                std::thread::sleep(Duration::from_millis(20));
                self.0 += 1;
                let n = buf.len().min(4096);
                buf[..n].fill(b'x');
                Ok(n)
            }
        }
        let _ = store.write_blob(&mut Slow(0), None, None);
    }

    #[test]
    fn kill_during_write_leaves_store_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let kept = store.write_bytes(b"committed before the crash").unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "store::content::tests::child_slow_writer",
                "--ignored",
                "--nocapture",
            ])
            .env("BERTH_TEST_CHILD_STORE", dir.path())
            .spawn()
            .unwrap();
        let tmpdir = dir.path().join("content/blobs/sha256");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut saw_partial = false;
        while Instant::now() < deadline {
            let partial = fs::read_dir(&tmpdir).unwrap().any(|e| {
                let e = e.unwrap();
                e.file_name().to_string_lossy().starts_with(".tmp-")
                    && e.metadata().unwrap().len() > 64 * 1024
            });
            if partial {
                saw_partial = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // SIGKILL: no destructor runs in the child.
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::KILL,
        )
        .unwrap();
        child.wait().unwrap();
        assert!(saw_partial, "child never started writing");

        let reopened = ContentStore::open(dir.path()).unwrap();
        assert_eq!(reopened.list().unwrap(), vec![kept.clone()]);
        assert_eq!(
            reopened.read_blob(&kept, 1024).unwrap(),
            b"committed before the crash"
        );
        let leftovers: Vec<_> = fs::read_dir(&tmpdir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
