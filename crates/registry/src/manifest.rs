//! Parsing and checking pushed manifests: which media type, what they reference, and the
//! OCI 1.1 `subject`/`artifactType` fields the referrers API needs.

use serde_json::{Map, Value};

use crate::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ManifestError {
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    #[error("unsupported manifest media type {0:?}")]
    MediaType(String),
    #[error("Content-Type {header:?} does not match mediaType {body:?}")]
    MediaTypeMismatch { header: String, body: String },
    #[error("schemaVersion must be 2")]
    SchemaVersion,
    #[error("invalid descriptor at {0}")]
    Descriptor(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    /// Foreign layers (`urls`) live elsewhere and need not be in the registry.
    pub external: bool,
}

#[derive(Debug, Clone)]
pub struct Parsed {
    pub media_type: String,
    /// Blobs (config, layers) the repository must hold.
    pub blobs: Vec<Descriptor>,
    /// Manifests an index lists.
    pub manifests: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    /// `artifactType`, or for an image manifest without one, its config media type.
    pub artifact_type: Option<String>,
    pub annotations: Option<Value>,
}

fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

fn descriptor(v: &Value, at: &str) -> Result<Descriptor, ManifestError> {
    let bad = || ManifestError::Descriptor(at.to_string());
    let o = v.as_object().ok_or_else(bad)?;
    let media_type = o
        .get("mediaType")
        .and_then(Value::as_str)
        .ok_or_else(bad)?
        .to_string();
    let digest = o
        .get("digest")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let size = o.get("size").and_then(Value::as_u64).ok_or_else(bad)?;
    let external = o
        .get("urls")
        .and_then(Value::as_array)
        .is_some_and(|u| !u.is_empty());
    Ok(Descriptor {
        media_type,
        digest,
        size,
        external,
    })
}

fn descriptors(
    o: &Map<String, Value>,
    field: &str,
    required: bool,
) -> Result<Vec<Descriptor>, ManifestError> {
    match o.get(field) {
        None | Some(Value::Null) if !required => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| descriptor(v, &format!("{field}[{i}]")))
            .collect(),
        _ => Err(ManifestError::Descriptor(field.to_string())),
    }
}

/// Strips parameters (`; charset=...`) from a Content-Type.
fn bare_type(ct: &str) -> &str {
    ct.split(';').next().unwrap_or("").trim()
}

pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Parsed, ManifestError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ManifestError::Json(e.to_string()))?;
    let o = v
        .as_object()
        .ok_or_else(|| ManifestError::Json("not an object".into()))?;
    let body_type = o.get("mediaType").and_then(Value::as_str);
    let header_type = content_type
        .map(bare_type)
        .filter(|t| !t.is_empty() && *t != "application/octet-stream" && *t != "application/json");
    let media_type = match (header_type, body_type) {
        (Some(h), Some(b)) if h != b => {
            return Err(ManifestError::MediaTypeMismatch {
                header: h.into(),
                body: b.into(),
            })
        }
        (Some(h), _) => h.to_string(),
        (None, Some(b)) => b.to_string(),
        (None, None) if o.contains_key("manifests") => OCI_INDEX.to_string(),
        (None, None) => OCI_MANIFEST.to_string(),
    };
    if ![OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].contains(&media_type.as_str()) {
        return Err(ManifestError::MediaType(media_type));
    }
    if o.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
        return Err(ManifestError::SchemaVersion);
    }
    let subject = match o.get("subject") {
        None | Some(Value::Null) => None,
        Some(s) => Some(descriptor(s, "subject")?),
    };
    let declared_artifact = o
        .get("artifactType")
        .and_then(Value::as_str)
        .map(str::to_string);
    let annotations = o.get("annotations").filter(|a| a.is_object()).cloned();
    if is_index(&media_type) {
        let manifests = descriptors(o, "manifests", true)?;
        Ok(Parsed {
            media_type,
            blobs: Vec::new(),
            manifests,
            subject,
            artifact_type: declared_artifact,
            annotations,
        })
    } else {
        let config = descriptor(o.get("config").unwrap_or(&Value::Null), "config")?;
        let layers = descriptors(o, "layers", true)?;
        let artifact_type = declared_artifact.or_else(|| Some(config.media_type.clone()));
        let mut blobs = vec![config];
        blobs.extend(layers);
        Ok(Parsed {
            media_type,
            blobs,
            manifests: Vec::new(),
            subject,
            artifact_type,
            annotations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn image_manifest() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D}","size":0}},"layers":[{{"mediaType":"x","digest":"{D}","size":0,"urls":["http://x"]}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":1}}}}"#
        );
        let p = parse(None, m.as_bytes()).unwrap();
        assert_eq!(p.media_type, OCI_MANIFEST);
        assert_eq!(p.blobs.len(), 2);
        assert!(p.blobs[1].external);
        assert!(p.subject.is_some());
        assert_eq!(
            p.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        assert!(matches!(
            parse(Some(DOCKER_MANIFEST), m.as_bytes()),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
    }

    #[test]
    fn rejects() {
        assert!(parse(None, b"{").is_err());
        assert!(parse(None, b"[]").is_err());
        assert_eq!(
            parse(Some(OCI_MANIFEST), br#"{"schemaVersion":1}"#).unwrap_err(),
            ManifestError::SchemaVersion
        );
        assert!(parse(
            Some("application/vnd.docker.distribution.manifest.v1+json"),
            br#"{"schemaVersion":1}"#
        )
        .is_err());
        assert!(parse(
            Some(OCI_INDEX),
            br#"{"schemaVersion":2,"manifests":[{"digest":"x"}]}"#
        )
        .is_err());
        assert!(parse(Some(OCI_MANIFEST), br#"{"schemaVersion":2,"layers":[]}"#).is_err());
    }
}
