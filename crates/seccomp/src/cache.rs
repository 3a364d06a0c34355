//! On-disk cache of compiled filters, so that starting many containers with the same profile
//! (Docker's default, typically) costs a file read instead of a libseccomp compilation.
//!
//! Key: sha256 of the profile's canonical JSON (object keys sorted, the per-container
//! `listenerPath`/`listenerMetadata` removed), the native architecture, the libseccomp version
//! and this crate's version, since each of them can change the generated program.
//!
//! File `<dir>/<key>.bpf`: a 56-byte header, then the program as host-endian `sock_filter`s.
//! The header carries a sha256 of flags + program, so a torn or damaged file is detected and
//! recompiled rather than installed. Files are written to a temp file in the same directory,
//! fsynced, renamed into place, and the directory fsynced.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use libseccomp::{ScmpArch, ScmpVersion};
use oci_spec::runtime::LinuxSeccomp;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::compile::check_listener;
use crate::program::{CompiledFilter, INSN_LEN};
use crate::{compile, Error};

const MAGIC: &[u8; 8] = b"BERTHBPF";
const FORMAT: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 4 + 4 + 4 + 32;

/// How [`FilterCache::get_or_compile`] obtained the filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// Read from a valid cache file; libseccomp was not used.
    Hit,
    /// No cache file: compiled (and stored, if the directory is writable).
    Miss,
    /// A cache file existed but failed verification: compiled again and replaced.
    Corrupt,
}

/// A directory of compiled filters, e.g. `/run/berth-runtime/seccomp`.
#[derive(Clone, Debug)]
pub struct FilterCache {
    dir: PathBuf,
}

impl FilterCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FilterCache { dir: dir.into() }
    }

    /// Hex sha256 naming the cache entry for `seccomp` on this machine.
    pub fn key(seccomp: &LinuxSeccomp) -> Result<String, Error> {
        let mut value = serde_json::to_value(seccomp).map_err(|e| {
            Error::io(
                "serializing profile for cache key",
                std::io::Error::other(e),
            )
        })?;
        if let Value::Object(map) = &mut value {
            map.remove("listenerPath");
            map.remove("listenerMetadata");
        }
        let mut canonical = String::new();
        write_canonical(&value, &mut canonical);
        let version =
            ScmpVersion::current().map_err(|e| Error::seccomp("reading libseccomp version", e))?;
        let mut h = Sha256::new();
        // "tree": programs dispatch on syscall numbers by binary tree (compile.rs).
        h.update(b"berth-seccomp cache\0tree\0");
        h.update(canonical.as_bytes());
        h.update(format!(
            "\0{:?}\0{}.{}.{}\0{}",
            ScmpArch::native(),
            version.major,
            version.minor,
            version.micro,
            env!("CARGO_PKG_VERSION")
        ));
        Ok(hex::encode(h.finalize()))
    }

    pub fn path_for(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.bpf"))
    }

    /// Returns the cached filter for `seccomp`, compiling and storing it when needed. A cache
    /// that cannot be written is logged and otherwise ignored: it must never fail a container.
    pub fn get_or_compile(
        &self,
        seccomp: &LinuxSeccomp,
    ) -> Result<(CompiledFilter, CacheStatus), Error> {
        let path = self.path_for(&Self::key(seccomp)?);
        let status = match read_trusted(&path) {
            Ok(bytes) => match decode(&bytes, &path) {
                Ok(filter) => {
                    // listenerPath is not part of the key, so check it on hits too.
                    check_listener(seccomp, filter.uses_notify())?;
                    return Ok((filter, CacheStatus::Hit));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "discarding damaged seccomp cache file");
                    CacheStatus::Corrupt
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => CacheStatus::Miss,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring untrusted seccomp cache file");
                CacheStatus::Corrupt
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read seccomp cache");
                CacheStatus::Miss
            }
        };
        let filter = compile(seccomp)?;
        if let Err(e) = self.store(&path, &filter) {
            tracing::warn!(error = %e, "cannot write seccomp cache");
        }
        Ok((filter, status))
    }

    /// Removes temp files left by a writer that crashed mid-write. Only files older than
    /// `min_age` go, so that a concurrent writer's file is left alone. Returns how many.
    pub fn remove_stale_temp_files(&self, min_age: std::time::Duration) -> Result<usize, Error> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io(format!("listing {}", self.dir.display()), e)),
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let stale = entry.file_name().to_string_lossy().starts_with(".tmp-")
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age >= min_age);
            if stale && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn store(&self, path: &Path, filter: &CompiledFilter) -> Result<(), Error> {
        let ctx = |what: &str| format!("{what} {}", self.dir.display());
        // Whoever can write here can loosen every container's filter: keep it private.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| Error::io(ctx("creating"), e))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .suffix(".bpf")
            .tempfile_in(&self.dir)
            .map_err(|e| Error::io(ctx("creating temp file in"), e))?;
        tmp.write_all(&encode(filter))
            .and_then(|_| tmp.as_file().sync_all())
            .map_err(|e| Error::io(ctx("writing temp file in"), e))?;
        tmp.persist(path)
            .map_err(|e| Error::io(format!("renaming into {}", path.display()), e.error))?;
        // The rename is durable only once the directory entry is.
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(ctx("syncing"), e))
    }
}

/// Reads a cache file only if nobody but us could have written it. The checksum catches
/// damage, not tampering, so ownership and mode are what make a hit safe to install.
fn read_trusted(path: &Path) -> std::io::Result<Vec<u8>> {
    let file = fs::File::open(path)?;
    let meta = file.metadata()?;
    if meta.uid() != rustix::process::geteuid().as_raw() || meta.mode() & 0o022 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "not owned by us or writable by group/others",
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    (&file).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn digest(flags: u32, program: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(flags.to_le_bytes());
    h.update(program);
    h.finalize().into()
}

fn encode(filter: &CompiledFilter) -> Vec<u8> {
    let program = filter.to_bpf_bytes();
    let mut out = Vec::with_capacity(HEADER_LEN + program.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&filter.flags().to_le_bytes());
    out.extend_from_slice(&(filter.program().len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&digest(filter.flags(), &program));
    out.extend_from_slice(&program);
    out
}

fn decode(bytes: &[u8], path: &Path) -> Result<CompiledFilter, Error> {
    let corrupt = |reason: &str| Error::CorruptCache {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if bytes.len() < HEADER_LEN {
        return Err(corrupt("shorter than its header"));
    }
    let u32_at =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    if &bytes[..8] != MAGIC || u32_at(8) != FORMAT {
        return Err(corrupt("not a berth seccomp cache file of this format"));
    }
    let flags = u32_at(12);
    let count = u32_at(16) as usize;
    let program = &bytes[HEADER_LEN..];
    if program.len() != count * INSN_LEN {
        return Err(corrupt("length does not match its instruction count"));
    }
    if digest(flags, program)[..] != bytes[24..HEADER_LEN] {
        return Err(corrupt("checksum mismatch"));
    }
    CompiledFilter::from_bpf_bytes(program, flags)
}

/// JSON with object keys sorted at every level, so equal profiles hash equally whatever order
/// their fields were written in (and whatever serde_json's map type is).
fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&map[*k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::SockFilter;

    fn sample() -> CompiledFilter {
        CompiledFilter::new(vec![SockFilter::stmt(0x06, 0x7fff_0000)], 2).expect("filter")
    }

    #[test]
    fn round_trip() {
        let f = sample();
        let bytes = encode(&f);
        assert_eq!(decode(&bytes, Path::new("x")).expect("decode"), f);
    }

    #[test]
    fn detects_damage() {
        let bytes = encode(&sample());
        let p = Path::new("x");
        assert!(decode(&bytes[..bytes.len() - 1], p).is_err());
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(decode(&flipped, p).is_err());
        let mut flags = bytes;
        flags[12] ^= 1;
        assert!(decode(&flags, p).is_err());
    }

    #[test]
    fn key_ignores_field_order_and_listener() {
        let a: LinuxSeccomp = serde_json::from_str(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/a","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
        )
        .expect("a");
        let b: LinuxSeccomp = serde_json::from_str(
            r#"{"syscalls":[{"action":"SCMP_ACT_ERRNO","names":["mkdir"]}],"defaultAction":"SCMP_ACT_ALLOW"}"#,
        )
        .expect("b");
        assert_eq!(
            FilterCache::key(&a).expect("ka"),
            FilterCache::key(&b).expect("kb")
        );
        let c: LinuxSeccomp = serde_json::from_str(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["rmdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
        )
        .expect("c");
        assert_ne!(
            FilterCache::key(&a).expect("ka"),
            FilterCache::key(&c).expect("kc")
        );
    }
}
