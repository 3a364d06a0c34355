//! Image archives: the `docker save` format and the OCI image layout, in and out.
//!
//! Loading reads the tar once: small JSON documents are kept in memory, everything else is
//! streamed into the content store (verified against its name when the name is a digest).
//! The tar is never extracted to disk, so hostile names in it cannot do any harm.

pub mod docker_save;
pub mod oci_layout;

use crate::digest::{Algorithm, Digest};
use crate::error::{Error, IoContext, Result};
use crate::manifest::MAX_CONFIG_SIZE;
use crate::store::ContentStore;
use std::collections::HashMap;
use std::io::{Read, Write};

/// What a single pass over an archive found.
#[derive(Default)]
pub struct ArchiveIndex {
    small: HashMap<String, Vec<u8>>,
    blobs: HashMap<String, (Digest, u64)>,
    links: HashMap<String, String>,
}

const MAX_LINK_DEPTH: usize = 16;
/// Small files kept in memory, in total; beyond this they go to the content store too, so a
/// hostile archive of many JSON files cannot exhaust memory.
const MAX_IN_MEMORY: u64 = 64 << 20;

/// `./a/b/../c` → `a/c`; `None` when the name climbs out of the archive.
pub(crate) fn normalize(name: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

fn keep_in_memory(name: &str, size: u64) -> bool {
    size <= MAX_CONFIG_SIZE
        && (name.ends_with(".json")
            || name.ends_with("/json")
            || name == "repositories"
            || name == "oci-layout"
            || name.ends_with("VERSION"))
}

impl ArchiveIndex {
    /// Reads every entry of the tar in `reader`.
    pub fn read(reader: impl Read, content: &ContentStore) -> Result<ArchiveIndex> {
        let mut idx = ArchiveIndex::default();
        let mut in_memory = 0u64;
        let mut ar = tar::Archive::new(reader);
        let entries = ar
            .entries()
            .map_err(|e| Error::InvalidArchive(format!("read tar: {e}")))?;
        for entry in entries {
            let mut entry =
                entry.map_err(|e| Error::InvalidArchive(format!("read tar entry: {e}")))?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let Some(name) = normalize(&raw) else {
                return Err(Error::InvalidArchive(format!(
                    "entry {raw:?} escapes the archive"
                )));
            };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let size = entry.size();
                    if keep_in_memory(&name, size) && in_memory + size <= MAX_IN_MEMORY {
                        in_memory += size;
                        let mut data = Vec::with_capacity(size as usize);
                        entry
                            .read_to_end(&mut data)
                            .map_err(|e| Error::InvalidArchive(format!("read {name}: {e}")))?;
                        idx.small.insert(name, data);
                    } else {
                        let expected = blob_name_digest(&name);
                        let alg = expected
                            .as_ref()
                            .map_or(Algorithm::Sha256, Digest::algorithm);
                        let mut w = content.writer(alg)?;
                        std::io::copy(&mut entry, &mut w)
                            .map_err(|e| Error::InvalidArchive(format!("read {name}: {e}")))?;
                        w.flush().ctx(|| format!("write {name}"))?;
                        let stored = w.commit(expected.as_ref(), Some(size))?;
                        idx.blobs.insert(name, stored);
                    }
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .unwrap_or_default();
                    let resolved = if entry.header().entry_type() == tar::EntryType::Symlink {
                        // Symlink targets are relative to the link's directory.
                        let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                        normalize(&format!("{dir}/{target}"))
                    } else {
                        normalize(&target)
                    };
                    if let Some(t) = resolved {
                        idx.links.insert(name, t);
                    }
                }
                _ => {}
            }
        }
        Ok(idx)
    }

    fn resolve_name(&self, name: &str) -> Result<String> {
        let mut cur = normalize(name)
            .ok_or_else(|| Error::InvalidArchive(format!("path {name:?} escapes the archive")))?;
        for _ in 0..MAX_LINK_DEPTH {
            match self.links.get(&cur) {
                Some(t) => cur = t.clone(),
                None => return Ok(cur),
            }
        }
        Err(Error::InvalidArchive(format!(
            "too many links resolving {name:?}"
        )))
    }

    pub fn has(&self, name: &str) -> bool {
        self.resolve_name(name)
            .is_ok_and(|n| self.small.contains_key(&n) || self.blobs.contains_key(&n))
    }

    /// The content of a small file, read from memory or the content store.
    pub fn read_small(&self, name: &str, content: &ContentStore) -> Result<Vec<u8>> {
        let n = self.resolve_name(name)?;
        if let Some(d) = self.small.get(&n) {
            return Ok(d.clone());
        }
        match self.blobs.get(&n) {
            Some((d, _)) => content.read_blob(d, MAX_CONFIG_SIZE),
            None => Err(Error::InvalidArchive(format!("file {name:?} is missing"))),
        }
    }

    /// The content-store digest of a file (small files are stored on demand).
    pub fn blob(&self, name: &str, content: &ContentStore) -> Result<(Digest, u64)> {
        let n = self.resolve_name(name)?;
        if let Some(b) = self.blobs.get(&n) {
            return Ok(b.clone());
        }
        match self.small.get(&n) {
            Some(data) => Ok((content.write_bytes(data)?, data.len() as u64)),
            None => Err(Error::InvalidArchive(format!("file {name:?} is missing"))),
        }
    }
}

/// `blobs/sha256/<hex>` names their own digest; content must match it.
fn blob_name_digest(name: &str) -> Option<Digest> {
    let rest = name.strip_prefix("blobs/")?;
    let (alg, hex) = rest.split_once('/')?;
    format!("{alg}:{hex}").parse().ok()
}

/// Writes regular files into a tar with fixed, reproducible metadata.
pub(crate) struct TarOut<W: Write> {
    b: tar::Builder<W>,
    dirs: std::collections::BTreeSet<String>,
}

impl<W: Write> TarOut<W> {
    pub fn new(w: W) -> Self {
        TarOut {
            b: tar::Builder::new(w),
            dirs: Default::default(),
        }
    }

    fn ensure_dirs(&mut self, name: &str) -> Result<()> {
        let mut prefix = String::new();
        let parts: Vec<&str> = name.split('/').collect();
        for p in &parts[..parts.len().saturating_sub(1)] {
            prefix.push_str(p);
            prefix.push('/');
            if self.dirs.insert(prefix.clone()) {
                let mut h = tar::Header::new_ustar();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                h.set_mtime(0);
                self.b
                    .append_data(&mut h, &prefix, std::io::empty())
                    .ctx(|| format!("write {prefix} to archive"))?;
            }
        }
        Ok(())
    }

    pub fn file(&mut self, name: &str, size: u64, data: impl Read) -> Result<()> {
        self.ensure_dirs(name)?;
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(size);
        h.set_mtime(0);
        self.b
            .append_data(&mut h, name, data)
            .ctx(|| format!("write {name} to archive"))
    }

    pub fn bytes(&mut self, name: &str, data: &[u8]) -> Result<()> {
        self.file(name, data.len() as u64, data)
    }

    pub fn finish(self) -> Result<W> {
        self.b.into_inner().ctx(|| "finish archive".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_names() {
        assert_eq!(normalize("./a/b/../c").as_deref(), Some("a/c"));
        assert_eq!(normalize("abc/../../x"), None);
        assert_eq!(
            normalize("/manifest.json").as_deref(),
            Some("manifest.json")
        );
    }
}
