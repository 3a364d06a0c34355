//! Mark-and-sweep of the content store from a set of roots (the manifests images point at).
//!
//! The caller must keep blob writes that are not yet referenced by an image out of the sweep's
//! way (the daemon serialises GC with pulls and loads); temp files are never touched here.

use super::content::ContentStore;
use crate::digest::Digest;
use crate::error::Result;
use crate::manifest::{Manifest, MAX_MANIFEST_SIZE};
use std::collections::BTreeSet;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcStats {
    pub kept: usize,
    pub removed: Vec<Digest>,
    pub bytes_freed: u64,
}

impl ContentStore {
    /// Every blob reachable from `roots` through manifests and indexes.
    pub fn reachable(&self, roots: &[Digest]) -> Result<BTreeSet<Digest>> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<Digest> = roots.to_vec();
        while let Some(d) = todo.pop() {
            if !seen.insert(d.clone()) || !self.exists(&d) {
                continue;
            }
            // Only small JSON documents can be manifests; layers are never read here.
            if self.size(&d)? > MAX_MANIFEST_SIZE {
                continue;
            }
            let data = self.read_blob(&d, MAX_MANIFEST_SIZE)?;
            if data.first() != Some(&b'{') {
                continue;
            }
            if let Ok(m) = Manifest::parse(&data, None) {
                todo.extend(m.children()?);
            }
        }
        Ok(seen)
    }

    /// Removes every blob not reachable from `roots`.
    pub fn gc(&self, roots: &[Digest]) -> Result<GcStats> {
        let live = self.reachable(roots)?;
        let mut stats = GcStats::default();
        for d in self.list()? {
            if live.contains(&d) {
                stats.kept += 1;
                continue;
            }
            stats.bytes_freed += self.size(&d).unwrap_or(0);
            self.delete(&d)?;
            stats.removed.push(d);
        }
        tracing::info!(
            kept = stats.kept,
            removed = stats.removed.len(),
            bytes = stats.bytes_freed,
            "content gc"
        );
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST};

    fn manifest(config: &Digest, layers: &[(&Digest, usize)]) -> Vec<u8> {
        let layers: Vec<String> = layers
            .iter()
            .map(|(d, s)| format!(r#"{{"mediaType":"{OCI_LAYER}","digest":"{d}","size":{s}}}"#))
            .collect();
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{config}","size":2}},"layers":[{}]}}"#,
            layers.join(",")
        )
        .into_bytes()
    }

    #[test]
    fn gc_keeps_reachable_and_removes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let s = ContentStore::open(dir.path()).unwrap();
        let cfg = s.write_bytes(b"{}").unwrap();
        let shared = s.write_bytes(b"shared layer").unwrap();
        let only_a = s.write_bytes(b"layer a").unwrap();
        let only_b = s.write_bytes(b"layer b").unwrap();
        let ma = s
            .write_bytes(&manifest(&cfg, &[(&shared, 12), (&only_a, 7)]))
            .unwrap();
        let mb = s
            .write_bytes(&manifest(&cfg, &[(&shared, 12), (&only_b, 7)]))
            .unwrap();
        let idx = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{ma}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
        );
        let idx = s.write_bytes(idx.as_bytes()).unwrap();
        let junk = s.write_bytes(b"unreferenced").unwrap();

        let stats = s.gc(std::slice::from_ref(&idx)).unwrap();
        let mut removed = stats.removed.clone();
        removed.sort();
        let mut want = vec![only_b.clone(), mb.clone(), junk.clone()];
        want.sort();
        assert_eq!(removed, want);
        for d in [&idx, &ma, &cfg, &shared, &only_a] {
            assert!(s.exists(d), "{d} was removed");
        }
        // No roots: everything goes.
        let stats = s.gc(&[]).unwrap();
        assert_eq!(stats.removed.len(), 5);
        assert!(s.list().unwrap().is_empty());
    }
}
