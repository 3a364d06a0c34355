//! The `docker save` / `docker load` format: `manifest.json` lists, per image, the config file,
//! the layer tars (uncompressed, so their digests are the diffIDs) and the tags; `repositories`
//! is the legacy tag map. Layer files are named either `<v1 id>/layer.tar` (Docker ≤ 24,
//! often symlinked when shared) or `blobs/sha256/<hex>` (Docker ≥ 25, also an OCI layout).

use crate::error::{json_err, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const MANIFEST_JSON: &str = "manifest.json";
pub const REPOSITORIES: &str = "repositories";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SaveEntry {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    pub layers: Vec<String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

pub fn parse_manifest(data: &[u8]) -> Result<Vec<SaveEntry>> {
    serde_json::from_slice(data).map_err(json_err("parse manifest.json"))
}

/// `{"busybox":{"latest":"<top layer id>"}}`, from familiar `repo:tag` strings.
pub fn repositories_json(tags: &[(String, String)]) -> Vec<u8> {
    let mut map: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (tag, top) in tags {
        if let Some((repo, t)) = tag.rsplit_once(':') {
            if !t.contains('/') {
                map.entry(repo.to_string())
                    .or_default()
                    .insert(t.to_string(), top.clone());
            }
        }
    }
    serde_json::to_vec(&map).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_20_manifest() {
        let j = br#"[{"Config":"abc.json","RepoTags":["busybox:latest"],"Layers":["x/layer.tar"]},{"Config":"d.json","RepoTags":null,"Layers":[],"LayerSources":{}}]"#;
        let m = parse_manifest(j).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0].repo_tags.as_deref(),
            Some(&["busybox:latest".to_string()][..])
        );
        assert!(m[1].extra.contains_key("LayerSources"));
        let r = repositories_json(&[
            ("busybox:latest".into(), "ab".into()),
            ("h:5000/r:t".into(), "cd".into()),
        ]);
        assert_eq!(
            r,
            br#"{"busybox":{"latest":"ab"},"h:5000/r":{"t":"cd"}}"#.to_vec()
        );
    }
}
