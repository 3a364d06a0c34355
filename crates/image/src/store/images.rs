//! Image metadata: `<root>/images/<id-hex>.json`, one file per image, written atomically.
//! An image's ID is its config digest, as in Docker; tags and digests point at images.

use super::atomic::{clean_temp_files, fsync_dir, write_file};
use crate::digest::{Algorithm, Digest};
use crate::error::{json_err, Error, IoContext, Result};
use crate::reference::Reference;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Config digest.
    pub id: Digest,
    /// The platform-specific manifest the image was created from.
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    /// The index it was selected from, when it came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<Digest>,
    /// Normalized references, e.g. `docker.io/library/busybox:latest`.
    #[serde(default)]
    pub repo_tags: Vec<String>,
    /// `name@digest` references by which the image was pulled.
    #[serde(default)]
    pub repo_digests: Vec<String>,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
    /// Sum of the uncompressed layer sizes.
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
}

impl ImageRecord {
    pub fn short_id(&self) -> String {
        self.id.hex().chars().take(12).collect()
    }

    /// Familiar forms (`busybox:latest`) of the tags, as `docker images` prints them.
    pub fn familiar_tags(&self) -> Vec<String> {
        self.repo_tags
            .iter()
            .filter_map(|t| Reference::parse_normalized(t).ok())
            .map(|r| r.familiar_string())
            .collect()
    }
}

/// What a delete did, in the order of Docker's `Untagged:` / `Deleted:` response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteOutcome {
    pub untagged: Vec<String>,
    pub deleted: Vec<Digest>,
}

/// A container that uses an image, as reported by the daemon for delete conflicts.
#[derive(Clone, Debug)]
pub struct ImageUser {
    pub container_id: String,
    pub running: bool,
}

pub struct ImageStore {
    dir: PathBuf,
    state: Mutex<BTreeMap<Digest, ImageRecord>>,
}

impl ImageStore {
    pub fn open(root: &Path) -> Result<ImageStore> {
        let dir = root.join("images");
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        clean_temp_files(&dir)?;
        let mut images = BTreeMap::new();
        for entry in fs::read_dir(&dir).ctx(|| format!("read {}", dir.display()))? {
            let entry = entry.ctx(|| format!("read {}", dir.display()))?;
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let data = fs::read(&path).ctx(|| format!("read {}", path.display()))?;
            match serde_json::from_slice::<ImageRecord>(&data) {
                Ok(r) => {
                    images.insert(r.id.clone(), r);
                }
                Err(e) => {
                    // A corrupt record must not keep the daemon from starting.
                    tracing::warn!(path = %path.display(), error = %e, "skipping unreadable image record");
                }
            }
        }
        Ok(ImageStore {
            dir,
            state: Mutex::new(images),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Digest, ImageRecord>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path_of(&self, id: &Digest) -> PathBuf {
        self.dir.join(format!("{}.json", id.hex()))
    }

    fn persist(&self, r: &ImageRecord) -> Result<()> {
        let data = serde_json::to_vec_pretty(r).map_err(json_err("serialize image record"))?;
        write_file(&self.path_of(&r.id), &data)
    }

    pub fn list(&self) -> Vec<ImageRecord> {
        self.lock().values().cloned().collect()
    }

    /// Manifest (and index) digests of every image: the roots for content GC.
    pub fn gc_roots(&self) -> Vec<Digest> {
        let st = self.lock();
        let mut roots = Vec::new();
        for r in st.values() {
            roots.push(r.manifest_digest.clone());
            roots.extend(r.index_digest.clone());
        }
        roots
    }

    /// Adds or updates an image. Its tags are moved off any other image that had them, which
    /// leaves that image dangling (`<none>:<none>`), as Docker does.
    pub fn put(&self, record: ImageRecord) -> Result<ImageRecord> {
        let mut st = self.lock();
        let mut merged = match st.get(&record.id) {
            Some(old) => {
                let mut m = record.clone();
                for t in &old.repo_tags {
                    if !m.repo_tags.contains(t) {
                        m.repo_tags.push(t.clone());
                    }
                }
                for t in &old.repo_digests {
                    if !m.repo_digests.contains(t) {
                        m.repo_digests.push(t.clone());
                    }
                }
                m
            }
            None => record,
        };
        merged.repo_tags.sort();
        merged.repo_digests.sort();
        for tag in &merged.repo_tags {
            Self::remove_tag_elsewhere(&self.dir, &mut st, tag, &merged.id)?;
        }
        self.persist(&merged)?;
        st.insert(merged.id.clone(), merged.clone());
        Ok(merged)
    }

    fn remove_tag_elsewhere(
        dir: &Path,
        st: &mut BTreeMap<Digest, ImageRecord>,
        tag: &str,
        keep: &Digest,
    ) -> Result<()> {
        let others: Vec<Digest> = st
            .values()
            .filter(|r| &r.id != keep && r.repo_tags.iter().any(|t| t == tag))
            .map(|r| r.id.clone())
            .collect();
        for id in others {
            if let Some(r) = st.get_mut(&id) {
                r.repo_tags.retain(|t| t != tag);
                let data =
                    serde_json::to_vec_pretty(r).map_err(json_err("serialize image record"))?;
                write_file(&dir.join(format!("{}.json", id.hex())), &data)?;
            }
        }
        Ok(())
    }

    /// Finds an image by full or short ID, `sha256:` ID, reference, or `name@digest`.
    pub fn resolve(&self, name_or_id: &str) -> Result<ImageRecord> {
        let st = self.lock();
        Self::resolve_in(&st, name_or_id).cloned()
    }

    fn resolve_in<'a>(
        st: &'a BTreeMap<Digest, ImageRecord>,
        name_or_id: &str,
    ) -> Result<&'a ImageRecord> {
        let not_found = || Error::ImageNotFound(name_or_id.to_string());
        let hex = name_or_id.strip_prefix("sha256:").unwrap_or(name_or_id);
        let is_hex = !hex.is_empty()
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        if let Ok(r) = Reference::parse_normalized(name_or_id) {
            let full = r.to_string();
            let found = st.values().find(|img| match r.digest() {
                Some(d) => {
                    let by_digest = r.repository().with_digest(d.clone()).to_string();
                    img.repo_digests.contains(&by_digest)
                        || (img.manifest_digest == *d
                            && img.repo_tags.iter().chain(&img.repo_digests).any(|t| {
                                Reference::parse_normalized(t).is_ok_and(|x| x.name() == r.name())
                            }))
                }
                None => img.repo_tags.contains(&full),
            });
            if let Some(img) = found {
                return Ok(img);
            }
        }
        if is_hex {
            if hex.len() == 64 {
                let d = Digest::from_hex(Algorithm::Sha256, hex).map_err(|_| not_found())?;
                return st.get(&d).ok_or_else(not_found);
            }
            let mut matches = st.values().filter(|img| img.id.hex().starts_with(hex));
            if let Some(first) = matches.next() {
                if matches.next().is_some() {
                    return Err(Error::Conflict(format!("short ID {hex} is ambiguous")));
                }
                return Ok(first);
            }
        }
        Err(not_found())
    }

    /// `docker tag SOURCE TARGET`.
    pub fn tag(&self, source: &str, target: &Reference) -> Result<ImageRecord> {
        if target.digest().is_some() {
            return Err(Error::InvalidReference {
                input: target.to_string(),
                reason: "refusing to create a tag with a digest reference".into(),
            });
        }
        let mut img = self.resolve(source)?;
        let t = target.to_string();
        if !img.repo_tags.contains(&t) {
            img.repo_tags.push(t);
        }
        self.put(img)
    }

    /// Removes one tag (or `name@digest`) reference; the image itself stays.
    pub fn untag(&self, reference: &Reference) -> Result<ImageRecord> {
        let mut st = self.lock();
        let full = reference.to_string();
        let id = st
            .values()
            .find(|i| i.repo_tags.contains(&full) || i.repo_digests.contains(&full))
            .map(|i| i.id.clone())
            .ok_or_else(|| Error::ImageNotFound(reference.familiar_string()))?;
        let img = st
            .get_mut(&id)
            .ok_or_else(|| Error::ImageNotFound(full.clone()))?;
        img.repo_tags.retain(|t| *t != full);
        img.repo_digests.retain(|t| *t != full);
        let img = img.clone();
        // Written under the lock, so the file and the map never disagree.
        self.persist(&img)?;
        drop(st);
        Ok(img)
    }

    /// `docker rmi` with Docker's conflict rules. `user_of` tells which container (if any) uses
    /// an image.
    pub fn delete(
        &self,
        name_or_id: &str,
        force: bool,
        user_of: &dyn Fn(&Digest) -> Option<ImageUser>,
    ) -> Result<DeleteOutcome> {
        let img = self.resolve(name_or_id)?;
        let by_name = Reference::parse_normalized(name_or_id)
            .ok()
            .map(|r| r.to_string())
            .filter(|full| img.repo_tags.contains(full) || img.repo_digests.contains(full));
        let mut out = DeleteOutcome::default();
        let refs: Vec<String> = img
            .repo_tags
            .iter()
            .chain(&img.repo_digests)
            .cloned()
            .collect();

        if let Some(full) = &by_name {
            if refs.len() > 1 {
                let r = Reference::parse_normalized(full)?;
                self.untag(&r)?;
                out.untagged.push(r.familiar_string());
                return Ok(out);
            }
        }
        let user = user_of(&img.id);
        if let Some(u) = &user {
            // By name, Docker lets force untag even under a running container: the image
            // stays, dangling, for it. By ID it is never removed while in use.
            if u.running && by_name.is_none() {
                return Err(Error::Conflict(format!(
                    "unable to delete {} (cannot be forced) - image is being used by running container {}",
                    img.short_id(),
                    short(&u.container_id)
                )));
            }
            if !force {
                return Err(Error::Conflict(match &by_name {
                    Some(_) => format!(
                        "unable to remove repository reference {:?} (must force) - container {} is using its referenced image {}",
                        name_or_id, short(&u.container_id), img.short_id()
                    ),
                    None => format!(
                        "unable to delete {} (must be forced) - image is being used by stopped container {}",
                        img.short_id(),
                        short(&u.container_id)
                    ),
                }));
            }
        }
        if by_name.is_none() && !force {
            let repos: std::collections::BTreeSet<String> = refs
                .iter()
                .filter_map(|t| Reference::parse_normalized(t).ok().map(|r| r.name()))
                .collect();
            if repos.len() > 1 {
                return Err(Error::Conflict(format!(
                    "unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    img.short_id()
                )));
            }
        }
        for r in &refs {
            if let Ok(parsed) = Reference::parse_normalized(r) {
                out.untagged.push(parsed.familiar_string());
            }
        }
        if user.is_some() {
            // Forced removal of an image a stopped container uses only drops its names, so the
            // container keeps its rootfs (Docker behaves the same).
            let mut st = self.lock();
            if let Some(i) = st.get_mut(&img.id) {
                i.repo_tags.clear();
                i.repo_digests.clear();
                let i = i.clone();
                self.persist(&i)?;
                drop(st);
            }
            return Ok(out);
        }
        let mut st = self.lock();
        st.remove(&img.id);
        let path = self.path_of(&img.id);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx(|| format!("remove {}", path.display())),
        }
        fsync_dir(&self.dir)?;
        out.deleted.push(img.id.clone());
        Ok(out)
    }
}

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seed: &[u8], tags: &[&str]) -> ImageRecord {
        ImageRecord {
            id: Digest::sha256_of(seed),
            manifest_digest: Digest::sha256_of(&[seed, b"-m"].concat()),
            manifest_media_type: crate::manifest::OCI_MANIFEST.into(),
            index_digest: None,
            repo_tags: tags
                .iter()
                .map(|t| Reference::parse_normalized(t).unwrap().to_string())
                .collect(),
            repo_digests: vec![],
            diff_ids: vec![],
            size: 0,
            created: None,
            os: "linux".into(),
            architecture: "amd64".into(),
        }
    }

    #[test]
    fn tag_resolve_untag_delete_with_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let s = ImageStore::open(dir.path()).unwrap();
        let a = s.put(rec(b"a", &["busybox"])).unwrap();
        let b = s.put(rec(b"b", &["alpine:3"])).unwrap();
        assert_eq!(s.resolve("busybox").unwrap().id, a.id);
        assert_eq!(
            s.resolve("docker.io/library/busybox:latest").unwrap().id,
            a.id
        );
        assert_eq!(s.resolve(&a.id.to_string()).unwrap().id, a.id);
        assert_eq!(s.resolve(&a.id.hex()[..8]).unwrap().id, a.id);
        assert!(matches!(s.resolve("nothere"), Err(Error::ImageNotFound(_))));

        // Moving a tag leaves the old image dangling.
        s.tag(&b.id.to_string(), &"busybox:latest".parse().unwrap())
            .unwrap();
        assert_eq!(s.resolve("busybox").unwrap().id, b.id);
        assert!(s.resolve(&a.id.to_string()).unwrap().repo_tags.is_empty());

        // Reopen: state persisted.
        let s = ImageStore::open(dir.path()).unwrap();
        assert_eq!(s.list().len(), 2);
        assert_eq!(
            s.resolve("busybox").unwrap().familiar_tags(),
            vec!["alpine:3".to_string(), "busybox:latest".to_string()]
        );

        // Deleting by name with several refs only untags.
        let none = |_: &Digest| None;
        let out = s.delete("busybox", false, &none).unwrap();
        assert_eq!(out.untagged, vec!["busybox:latest".to_string()]);
        assert!(out.deleted.is_empty());

        // Multiple repositories: deleting by ID needs force.
        s.tag("alpine:3", &"other/repo:x".parse().unwrap()).unwrap();
        let err = s.delete(&b.id.hex()[..12], false, &none).unwrap_err();
        assert!(
            err.to_string()
                .contains("referenced in multiple repositories"),
            "{err}"
        );

        // A stopped container blocks unless forced; a running one always.
        let stopped = |_: &Digest| {
            Some(ImageUser {
                container_id: "c0ffee".repeat(8),
                running: false,
            })
        };
        let running = |_: &Digest| {
            Some(ImageUser {
                container_id: "beef".repeat(16),
                running: true,
            })
        };
        let err = s.delete(&b.id.to_string(), true, &running).unwrap_err();
        assert!(err.to_string().contains("cannot be forced"), "{err}");
        s.untag(&"other/repo:x".parse().unwrap()).unwrap();
        let err = s.delete("alpine:3", false, &stopped).unwrap_err();
        assert!(err.to_string().contains("must force"), "{err}");

        let out = s.delete("alpine:3", false, &none).unwrap();
        assert_eq!(out.untagged, vec!["alpine:3".to_string()]);
        assert_eq!(out.deleted, vec![b.id.clone()]);
        assert_eq!(s.list().len(), 1);
        let s = ImageStore::open(dir.path()).unwrap();
        assert_eq!(s.list().len(), 1);
        assert_eq!(s.gc_roots(), vec![a.manifest_digest.clone()]);
    }
}
