//! The OCI image layout: `oci-layout`, `index.json`, `blobs/<alg>/<hex>`.

use crate::digest::Digest;
use crate::error::{json_err, Error, IoContext, Result};
use crate::store::ContentStore;
use oci_spec::image::ImageIndex;
use std::fs;
use std::path::Path;

pub const OCI_LAYOUT_FILE: &str = "oci-layout";
pub const INDEX_JSON: &str = "index.json";
pub const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// The tag (or full reference) of an index entry.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd and Docker ≥ 25 put the full image name here.
pub const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";

pub fn parse_index(data: &[u8]) -> Result<ImageIndex> {
    serde_json::from_slice(data).map_err(json_err("parse index.json"))
}

pub fn check_layout_version(data: &[u8]) -> Result<()> {
    let v: serde_json::Value =
        serde_json::from_slice(data).map_err(json_err("parse oci-layout"))?;
    match v.get("imageLayoutVersion").and_then(|v| v.as_str()) {
        Some(s) if s.starts_with("1.") => Ok(()),
        other => Err(Error::InvalidArchive(format!(
            "unsupported OCI layout version {other:?}"
        ))),
    }
}

pub fn blob_path(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm().as_str(), digest.hex())
}

/// Copies a blob of an OCI layout directory into the content store, verifying it.
pub fn import_dir_blob(dir: &Path, digest: &Digest, content: &ContentStore) -> Result<u64> {
    let p = dir.join(blob_path(digest));
    let mut f = fs::File::open(&p).ctx(|| format!("open {}", p.display()))?;
    Ok(content.write_blob(&mut f, Some(digest), None)?.1)
}
