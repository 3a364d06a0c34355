//! The image service: content store, image metadata and snapshots together, with the
//! operations the daemon calls (load, save, import, unpack, garbage collection).

use crate::archive::docker_save::{self, SaveEntry, MANIFEST_JSON, REPOSITORIES};
use crate::archive::oci_layout::{
    self, CONTAINERD_IMAGE_NAME, INDEX_JSON, OCI_LAYOUT_FILE, REF_NAME,
};
use crate::archive::{ArchiveIndex, TarOut};
use crate::config::{chain_ids, ImageConfig};
use crate::digest::{Algorithm, Digest};
use crate::error::{Error, IoContext, Result};
use crate::import::{apply_changes, rfc3339};
use crate::layer::apply::decompress;
use crate::manifest::{
    select_platform, Compression, Manifest, Platform, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE,
    OCI_CONFIG, OCI_INDEX, OCI_MANIFEST,
};
use crate::reference::Reference;
use crate::snapshot::{OverlayMount, SnapshotStore};
use crate::store::atomic::{clean_temp_files, temp_path_in};
use crate::store::{ContentStore, GcStats, ImageRecord, ImageStore};
use serde_json::json;
use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

pub struct ImageService {
    tmp: PathBuf,
    pub content: ContentStore,
    pub images: ImageStore,
    pub snapshots: SnapshotStore,
}

/// Options of `docker import`.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    pub reference: Option<Reference>,
    /// Dockerfile-style instructions, e.g. `CMD ["sh"]`.
    pub changes: Vec<String>,
    pub message: Option<String>,
    pub platform: Option<Platform>,
}

/// Options of `docker commit` (and of each builder step).
#[derive(Clone, Debug, Default)]
pub struct CommitOptions {
    pub reference: Option<Reference>,
    pub changes: Vec<String>,
    pub author: Option<String>,
    pub message: Option<String>,
    /// The `created_by` of the history entry (the builder puts the instruction here).
    pub created_by: Option<String>,
    /// The config the new image starts from instead of the parent's: `docker commit` keeps
    /// what the container ran with (its Cmd, Env, ...), then applies `changes`.
    pub config: Option<crate::config::ContainerConfig>,
}

/// Output format of [`ImageService::save`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveFormat {
    /// `docker save`: manifest.json + repositories with uncompressed layers under
    /// `blobs/sha256/`, which is at the same time an OCI layout (as Docker 25 writes it).
    Docker,
    /// An OCI image layout with the blobs as stored (`oci-archive:`).
    OciArchive,
}

fn oci_descriptor(media_type: &str, digest: &Digest, size: u64) -> serde_json::Value {
    json!({"mediaType": media_type, "digest": digest.to_string(), "size": size})
}

fn oci_manifest_json(config: (&Digest, u64), layers: &[(String, Digest, u64)]) -> Vec<u8> {
    let layers: Vec<_> = layers
        .iter()
        .map(|(mt, d, s)| oci_descriptor(mt, d, *s))
        .collect();
    let m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": oci_descriptor(OCI_CONFIG, config.0, config.1),
        "layers": layers,
    });
    serde_json::to_vec(&m).unwrap_or_default()
}

impl ImageService {
    pub fn open(root: &Path) -> Result<ImageService> {
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        clean_temp_files(&tmp)?;
        Ok(ImageService {
            tmp,
            content: ContentStore::open(root)?,
            images: ImageStore::open(root)?,
            snapshots: SnapshotStore::open(root)?,
        })
    }

    pub fn manifest_of(&self, rec: &ImageRecord) -> Result<oci_spec::image::ImageManifest> {
        let data = self
            .content
            .read_blob(&rec.manifest_digest, MAX_MANIFEST_SIZE)?;
        match Manifest::parse(&data, Some(&rec.manifest_media_type))? {
            Manifest::Image(m, _) => Ok(*m),
            Manifest::Index(..) => Err(Error::UnsupportedManifest(format!(
                "{} is an index, not an image manifest",
                rec.manifest_digest
            ))),
        }
    }

    pub fn config_of(&self, rec: &ImageRecord) -> Result<ImageConfig> {
        ImageConfig::parse(&self.content.read_blob(&rec.id, MAX_CONFIG_SIZE)?)
    }

    pub fn chain_ids_of(&self, rec: &ImageRecord) -> Vec<Digest> {
        chain_ids(&rec.diff_ids)
    }

    /// The image's size as Docker shows it: its layers' sizes, as the snapshots measure them
    /// now; the size recorded with the image where a layer is not extracted.
    pub fn image_size(&self, rec: &ImageRecord) -> u64 {
        self.chain_ids_of(rec)
            .iter()
            .map(|c| self.snapshots.layer_size(c))
            .sum::<Option<u64>>()
            .unwrap_or(rec.size)
    }

    /// Records an image whose manifest, config and layers are in the content store, and
    /// extracts any layer not yet in a snapshot.
    pub fn register(
        &self,
        manifest_digest: &Digest,
        index_digest: Option<Digest>,
        tags: &[Reference],
        repo_digests: &[Reference],
    ) -> Result<ImageRecord> {
        let data = self.content.read_blob(manifest_digest, MAX_MANIFEST_SIZE)?;
        let parsed = Manifest::parse(&data, None)?;
        let media_type = parsed.media_type().to_string();
        let Manifest::Image(m, _) = parsed else {
            return Err(Error::UnsupportedManifest(format!(
                "{manifest_digest} is an index; select a platform first"
            )));
        };
        let config_digest = Digest::from_oci(m.config().digest())?;
        let config = ImageConfig::parse(&self.content.read_blob(&config_digest, MAX_CONFIG_SIZE)?)?;
        if m.layers().len() != config.rootfs.diff_ids.len() {
            return Err(Error::UnsupportedManifest(format!(
                "manifest has {} layers but the config lists {} diffIDs",
                m.layers().len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let chain = chain_ids(&config.rootfs.diff_ids);
        let mut size = 0;
        for (i, layer) in m.layers().iter().enumerate() {
            if !self.snapshots.has_layer(&chain[i]) {
                let blob = Digest::from_oci(layer.digest())?;
                let f = self.content.open_blob(&blob)?;
                self.snapshots.apply(
                    &chain[i],
                    Some(&config.rootfs.diff_ids[i]),
                    std::io::BufReader::new(f),
                )?;
            }
            size += self.snapshots.layer_size(&chain[i]).unwrap_or(layer.size());
        }
        let rec = ImageRecord {
            id: config_digest,
            manifest_digest: manifest_digest.clone(),
            manifest_media_type: media_type,
            index_digest,
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            repo_digests: repo_digests.iter().map(|t| t.to_string()).collect(),
            diff_ids: config.rootfs.diff_ids.clone(),
            size,
            created: config.created.clone(),
            os: config.os.clone(),
            architecture: config.architecture.clone(),
        };
        self.images.put(rec)
    }

    /// The overlay of `image` with a writable dir named `key`, without an init layer. Layers
    /// whose snapshot is missing (removed after a crash, or by GC) are extracted again first.
    pub fn prepare_rootfs(&self, key: &str, image: &ImageRecord) -> Result<OverlayMount> {
        self.ensure_unpacked(image)?;
        self.snapshots.prepare_rw(key, &self.chain_ids_of(image))
    }

    /// [`Self::prepare_rootfs`] with Docker's init layer: a container's root.
    pub fn prepare_container_rootfs(&self, key: &str, image: &ImageRecord) -> Result<OverlayMount> {
        self.ensure_unpacked(image)?;
        self.snapshots.prepare_rw_with_init(
            key,
            &self.chain_ids_of(image),
            &crate::init_layer::CONTAINER_INIT,
        )
    }

    /// Extracts every layer of `image` that has no snapshot, from its blob.
    pub fn ensure_unpacked(&self, image: &ImageRecord) -> Result<()> {
        let chain = self.chain_ids_of(image);
        if chain.iter().all(|c| self.snapshots.has_layer(c)) {
            return Ok(());
        }
        let manifest = self.manifest_of(image)?;
        for (i, layer) in manifest.layers().iter().enumerate() {
            let (Some(c), Some(diff)) = (chain.get(i), image.diff_ids.get(i)) else {
                break;
            };
            if !self.snapshots.has_layer(c) {
                let f = self.content.open_blob(&Digest::from_oci(layer.digest())?)?;
                self.snapshots
                    .apply(c, Some(diff), std::io::BufReader::new(f))?;
            }
        }
        Ok(())
    }

    /// `docker load`: accepts `docker save` archives (both layouts) and OCI archives.
    pub fn load(&self, reader: impl Read) -> Result<Vec<ImageRecord>> {
        let idx = ArchiveIndex::read(reader, &self.content)?;
        if idx.has(MANIFEST_JSON) {
            self.load_docker(&idx)
        } else if idx.has(INDEX_JSON) {
            oci_layout::check_layout_version(&idx.read_small(OCI_LAYOUT_FILE, &self.content)?)?;
            let index = oci_layout::parse_index(&idx.read_small(INDEX_JSON, &self.content)?)?;
            self.load_oci_index(&index)
        } else {
            Err(Error::InvalidArchive(
                "neither manifest.json nor index.json found: not a docker save or OCI archive"
                    .into(),
            ))
        }
    }

    fn load_docker(&self, idx: &ArchiveIndex) -> Result<Vec<ImageRecord>> {
        let entries = docker_save::parse_manifest(&idx.read_small(MANIFEST_JSON, &self.content)?)?;
        let mut out = Vec::new();
        for e in entries {
            let config_bytes = idx.read_small(&e.config, &self.content)?;
            let config_digest = self.content.write_bytes(&config_bytes)?;
            let config = ImageConfig::parse(&config_bytes)?;
            if config.rootfs.diff_ids.len() != e.layers.len() {
                return Err(Error::InvalidArchive(format!(
                    "{} lists {} layers but its config has {} diffIDs",
                    e.config,
                    e.layers.len(),
                    config.rootfs.diff_ids.len()
                )));
            }
            let mut layers = Vec::new();
            for l in &e.layers {
                let (d, size) = idx.blob(l, &self.content)?;
                let mut head = [0u8; 4];
                let n = self
                    .content
                    .open_blob(&d)?
                    .read(&mut head)
                    .ctx(|| format!("read {l}"))?;
                let comp = Compression::detect(&head[..n]);
                layers.push((comp.oci_layer_media_type().to_string(), d, size));
            }
            let manifest = oci_manifest_json((&config_digest, config_bytes.len() as u64), &layers);
            let md = self.content.write_bytes(&manifest)?;
            let tags = e
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| Reference::parse_normalized(t))
                .collect::<Result<Vec<_>>>()?;
            out.push(self.register(&md, None, &tags, &[])?);
        }
        Ok(out)
    }

    fn load_oci_index(&self, index: &oci_spec::image::ImageIndex) -> Result<Vec<ImageRecord>> {
        let mut out = Vec::new();
        let host = Platform::host();
        for desc in index.manifests() {
            // A multi-platform layout loads the entries this machine can run, as Docker does.
            if let Some(p) = desc.platform() {
                let p = Platform {
                    os: p.os().to_string(),
                    architecture: p.architecture().to_string(),
                    variant: p.variant().clone(),
                };
                let runnable =
                    p.matches(&host) || (p.os == host.os && p.architecture == host.architecture);
                if !runnable {
                    continue;
                }
            }
            let mut digest = Digest::from_oci(desc.digest())?;
            let mut index_digest = None;
            let data = self.content.read_blob(&digest, MAX_MANIFEST_SIZE)?;
            if let Manifest::Index(i, _) = Manifest::parse(&data, Some(desc.media_type().as_ref()))?
            {
                index_digest = Some(digest.clone());
                digest = Digest::from_oci(select_platform(&i, &host)?.digest())?;
            }
            let annotations = desc.annotations().clone().unwrap_or_default();
            // A full name wins; a bare tag ("latest") names no repository.
            let name = annotations
                .get(CONTAINERD_IMAGE_NAME)
                .or_else(|| {
                    annotations
                        .get(REF_NAME)
                        .filter(|r| r.contains('/') || r.contains(':'))
                })
                .and_then(|n| Reference::parse_normalized(n).ok());
            let tags: Vec<Reference> = name.into_iter().filter(|r| r.tag().is_some()).collect();
            out.push(self.register(&digest, index_digest, &tags, &[])?);
        }
        Ok(out)
    }

    /// Loads an OCI image layout directory (what `skopeo copy ... oci:DIR` writes).
    pub fn load_oci_dir(&self, dir: &Path) -> Result<Vec<ImageRecord>> {
        let layout = fs::read(dir.join(OCI_LAYOUT_FILE))
            .ctx(|| format!("read {}/oci-layout", dir.display()))?;
        oci_layout::check_layout_version(&layout)?;
        let index = oci_layout::parse_index(
            &fs::read(dir.join(INDEX_JSON)).ctx(|| format!("read {}/index.json", dir.display()))?,
        )?;
        // Copy every reachable blob, verifying each against its digest.
        let mut todo: Vec<Digest> = index
            .manifests()
            .iter()
            .map(|d| Digest::from_oci(d.digest()))
            .collect::<Result<_>>()?;
        let mut seen = BTreeSet::new();
        while let Some(d) = todo.pop() {
            if !seen.insert(d.clone()) {
                continue;
            }
            let size = oci_layout::import_dir_blob(dir, &d, &self.content)?;
            if size <= MAX_MANIFEST_SIZE {
                let data = self.content.read_blob(&d, MAX_MANIFEST_SIZE)?;
                if data.first() == Some(&b'{') {
                    if let Ok(m) = Manifest::parse(&data, None) {
                        todo.extend(m.children()?);
                    }
                }
            }
        }
        self.load_oci_index(&index)
    }

    /// `docker save NAME...` into `out`.
    pub fn save(&self, names: &[&str], format: SaveFormat, out: impl Write) -> Result<()> {
        // Image ID → the references asked for, in order of first mention.
        let mut wanted: Vec<(ImageRecord, Vec<Reference>)> = Vec::new();
        for name in names {
            let rec = self.images.resolve(name)?;
            let tag = Reference::parse_normalized(name)
                .ok()
                .filter(|r| rec.repo_tags.contains(&r.to_string()));
            match wanted.iter_mut().find(|(r, _)| r.id == rec.id) {
                Some((_, tags)) => tags.extend(tag),
                None => wanted.push((rec, tag.into_iter().collect())),
            }
        }
        let mut tar = TarOut::new(out);
        let mut written: BTreeSet<Digest> = BTreeSet::new();
        let mut index_entries = Vec::new();
        let mut save_entries = Vec::new();
        let mut repositories = Vec::new();
        for (rec, tags) in &wanted {
            let manifest = self.manifest_of(rec)?;
            let config_size = self.content.size(&rec.id)?;
            self.copy_blob(&mut tar, &mut written, &rec.id)?;
            let (manifest_digest, manifest_size) = match format {
                SaveFormat::OciArchive => {
                    for l in manifest.layers() {
                        self.copy_blob(&mut tar, &mut written, &Digest::from_oci(l.digest())?)?;
                    }
                    self.copy_blob(&mut tar, &mut written, &rec.manifest_digest)?;
                    (
                        rec.manifest_digest.clone(),
                        self.content.size(&rec.manifest_digest)?,
                    )
                }
                SaveFormat::Docker => {
                    let mut layers = Vec::new();
                    for (l, diff_id) in manifest.layers().iter().zip(&rec.diff_ids) {
                        let blob = Digest::from_oci(l.digest())?;
                        let size =
                            self.write_uncompressed(&mut tar, &mut written, &blob, diff_id)?;
                        layers.push((
                            crate::manifest::OCI_LAYER.to_string(),
                            diff_id.clone(),
                            size,
                        ));
                    }
                    let m = oci_manifest_json((&rec.id, config_size), &layers);
                    let md = Digest::sha256_of(&m);
                    if written.insert(md.clone()) {
                        tar.bytes(&oci_layout::blob_path(&md), &m)?;
                    }
                    let familiar: Vec<String> = tags.iter().map(|t| t.familiar_string()).collect();
                    if let Some(top) = rec.diff_ids.last() {
                        for t in &familiar {
                            repositories.push((t.clone(), top.hex().to_string()));
                        }
                    }
                    save_entries.push(SaveEntry {
                        config: oci_layout::blob_path(&rec.id),
                        repo_tags: (!familiar.is_empty()).then_some(familiar),
                        layers: layers
                            .iter()
                            .map(|(_, d, _)| oci_layout::blob_path(d))
                            .collect(),
                        extra: Default::default(),
                    });
                    (md, m.len() as u64)
                }
            };
            let media_type = match format {
                SaveFormat::Docker => OCI_MANIFEST.to_string(),
                SaveFormat::OciArchive => rec.manifest_media_type.clone(),
            };
            if tags.is_empty() {
                index_entries.push(oci_descriptor(&media_type, &manifest_digest, manifest_size));
            }
            for t in tags {
                let mut d = oci_descriptor(&media_type, &manifest_digest, manifest_size);
                d["annotations"] = json!({
                    CONTAINERD_IMAGE_NAME: t.to_string(),
                    REF_NAME: t.tag().unwrap_or("latest"),
                });
                index_entries.push(d);
            }
        }
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index_entries});
        tar.bytes(INDEX_JSON, &serde_json::to_vec(&index).unwrap_or_default())?;
        tar.bytes(OCI_LAYOUT_FILE, oci_layout::OCI_LAYOUT_CONTENT)?;
        if format == SaveFormat::Docker {
            let mj = serde_json::to_vec(&save_entries).unwrap_or_default();
            tar.bytes(MANIFEST_JSON, &mj)?;
            tar.bytes(REPOSITORIES, &docker_save::repositories_json(&repositories))?;
        }
        tar.finish()?;
        Ok(())
    }

    fn copy_blob<W: Write>(
        &self,
        tar: &mut TarOut<W>,
        written: &mut BTreeSet<Digest>,
        d: &Digest,
    ) -> Result<()> {
        if written.insert(d.clone()) {
            let size = self.content.size(d)?;
            tar.file(&oci_layout::blob_path(d), size, self.content.open_blob(d)?)?;
        }
        Ok(())
    }

    /// Writes a layer uncompressed as `blobs/sha256/<diffID>`. A tar header needs the size
    /// first, so a compressed blob is decompressed into a temp file (and verified) before.
    fn write_uncompressed<W: Write>(
        &self,
        tar: &mut TarOut<W>,
        written: &mut BTreeSet<Digest>,
        blob: &Digest,
        diff_id: &Digest,
    ) -> Result<u64> {
        let name = oci_layout::blob_path(diff_id);
        if blob == diff_id {
            let size = self.content.size(blob)?;
            if written.insert(diff_id.clone()) {
                tar.file(&name, size, self.content.open_blob(blob)?)?;
            }
            return Ok(size);
        }
        let tmp_path = temp_path_in(&self.tmp);
        let result = (|| {
            let mut tmp = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&tmp_path)
                .ctx(|| format!("create {}", tmp_path.display()))?;
            let (mut r, _) = decompress(std::io::BufReader::new(self.content.open_blob(blob)?))?;
            let mut hw = crate::digest::HashingWriter::new(&mut tmp, Algorithm::Sha256);
            std::io::copy(&mut r, &mut hw).ctx(|| format!("decompress layer {blob}"))?;
            let (got, size, _) = hw.finish();
            if got != *diff_id {
                return Err(Error::DigestMismatch {
                    expected: diff_id.clone(),
                    actual: got,
                });
            }
            if written.insert(diff_id.clone()) {
                tmp.rewind().ctx(|| "rewind temp layer".to_string())?;
                tar.file(&name, size, &mut tmp)?;
            }
            Ok(size)
        })();
        let _ = fs::remove_file(&tmp_path);
        result
    }

    /// `docker commit`: the changes in a container's writable layer (`upper`, an overlay upper
    /// dir) become a new layer on top of `parent`'s. The layer is stored uncompressed (its
    /// digest is its diffID); push compresses it.
    pub fn commit(
        &self,
        parent: &ImageRecord,
        upper: &Path,
        opts: &CommitOptions,
    ) -> Result<ImageRecord> {
        let mut config = self.config_of(parent)?;
        let parent_manifest = self.manifest_of(parent)?;
        let w = self.content.writer(Algorithm::Sha256)?;
        let (stats, w) = crate::layer::write_diff(upper, w)?;
        let (layer_digest, layer_size) = w.commit(Some(&stats.diff_id), Some(stats.size))?;
        let mut cc = opts
            .config
            .clone()
            .unwrap_or_else(|| config.container_config());
        apply_changes(&mut cc, &opts.changes)?;
        let now = rfc3339(std::time::SystemTime::now());
        config.created = Some(now.clone());
        if opts.author.is_some() {
            config.author = opts.author.clone();
        }
        config.config = Some(cc);
        config.rootfs.diff_ids.push(stats.diff_id.clone());
        config
            .history
            .get_or_insert_with(Vec::new)
            .push(crate::config::History {
                created: Some(now),
                created_by: opts.created_by.clone(),
                author: opts.author.clone(),
                comment: opts.message.clone(),
                empty_layer: None,
            });
        let cfg_bytes = config.to_json();
        let cfg_digest = self.content.write_bytes(&cfg_bytes)?;
        let mut layers = Vec::new();
        for l in parent_manifest.layers() {
            layers.push((
                l.media_type().to_string(),
                Digest::from_oci(l.digest())?,
                l.size(),
            ));
        }
        layers.push((
            crate::manifest::OCI_LAYER.to_string(),
            layer_digest,
            layer_size,
        ));
        let m = oci_manifest_json((&cfg_digest, cfg_bytes.len() as u64), &layers);
        let md = self.content.write_bytes(&m)?;
        let tags: Vec<Reference> = opts.reference.iter().cloned().collect();
        self.register(&md, None, &tags, &[])
    }

    /// `docker import`: a rootfs tarball (plain, gzip or zstd) as a new one-layer image.
    pub fn import(&self, reader: impl Read, opts: &ImportOptions) -> Result<ImageRecord> {
        let (mut r, _) = decompress(reader)?;
        let mut w = self.content.writer(Algorithm::Sha256)?;
        std::io::copy(&mut r, &mut w).ctx(|| "read import tarball".to_string())?;
        let (diff_id, layer_size) = w.commit(None, None)?;
        let mut cc = crate::config::ContainerConfig::default();
        apply_changes(&mut cc, &opts.changes)?;
        let platform = opts.platform.clone().unwrap_or_else(Platform::host);
        let now = rfc3339(std::time::SystemTime::now());
        let config = ImageConfig {
            created: Some(now.clone()),
            architecture: platform.architecture,
            os: platform.os,
            variant: platform.variant,
            config: Some(cc),
            rootfs: crate::config::RootFs {
                kind: "layers".into(),
                diff_ids: vec![diff_id.clone()],
            },
            history: Some(vec![crate::config::History {
                created: Some(now),
                created_by: Some("berth import".into()),
                comment: opts
                    .message
                    .clone()
                    .or_else(|| Some("Imported from tarball".into())),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let cfg_bytes = config.to_json();
        let cfg_digest = self.content.write_bytes(&cfg_bytes)?;
        let m = oci_manifest_json(
            (&cfg_digest, cfg_bytes.len() as u64),
            &[(crate::manifest::OCI_LAYER.to_string(), diff_id, layer_size)],
        );
        let md = self.content.write_bytes(&m)?;
        let tags: Vec<Reference> = opts.reference.iter().cloned().collect();
        self.register(&md, None, &tags, &[])
    }

    /// Removes blobs and layer snapshots no image needs. Snapshots of containers (`rw-*`) are
    /// the daemon's to remove.
    pub fn gc(&self) -> Result<(GcStats, Vec<Digest>)> {
        let stats = self.content.gc(&self.images.gc_roots())?;
        let keep: BTreeSet<Digest> = self
            .images
            .list()
            .iter()
            .flat_map(|r| chain_ids(&r.diff_ids))
            .collect();
        let removed = self.snapshots.gc(&keep)?;
        Ok((stats, removed))
    }

    /// Image summaries grouped the way `docker images` shows them: one row per tag, and one
    /// `<none>` row per untagged image.
    pub fn list_rows(&self) -> Vec<(String, String, ImageRecord)> {
        let mut rows = Vec::new();
        for r in self.images.list() {
            let tags = r.familiar_tags();
            if tags.is_empty() {
                rows.push(("<none>".into(), "<none>".into(), r.clone()));
            }
            for t in tags {
                let (repo, tag) = t
                    .rsplit_once(':')
                    .map_or((t.clone(), String::new()), |(a, b)| {
                        (a.to_string(), b.to_string())
                    });
                rows.push((repo, tag, r.clone()));
            }
        }
        rows
    }
}
