//! Manifests and indexes, OCI and Docker schema 2, parsed with oci-spec's types (Docker schema 2
//! has the same shape with other media types), and platform selection from an index.

use crate::digest::Digest;
use crate::error::{json_err, Error, Result};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use std::fmt;
use std::str::FromStr;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const OCI_LAYER_NONDISTRIBUTABLE_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";

/// Foreign (Docker) and non-distributable (OCI) layers: registries need not hold them, their
/// descriptors' `urls` say where they are, and pushes leave them out.
pub fn is_non_distributable(media_type: &str) -> bool {
    media_type == DOCKER_FOREIGN_LAYER_GZIP
        || media_type.starts_with("application/vnd.oci.image.layer.nondistributable.")
}

const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Registries commonly cap manifests at 4 MiB; larger ones are refused before parsing.
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;
/// Image configs with long histories can be large, but not unboundedly.
pub const MAX_CONFIG_SIZE: u64 = 8 << 20;

/// Everything that may be asked for in an `Accept` header when fetching a manifest.
pub const ACCEPTED_MEDIA_TYPES: [&str; 4] = [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Oci,
    Docker,
}

#[derive(Clone, Debug)]
pub enum Manifest {
    Image(Box<ImageManifest>, Flavor),
    Index(Box<ImageIndex>, Flavor),
}

impl Manifest {
    /// Parses manifest bytes. `media_type` is the Content-Type or descriptor media type, when
    /// known; the document's own `mediaType` and shape decide otherwise.
    pub fn parse(data: &[u8], media_type: Option<&str>) -> Result<Manifest> {
        if data.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(Error::TooLarge {
                what: "manifest".into(),
                size: data.len() as u64,
                limit: MAX_MANIFEST_SIZE,
            });
        }
        let v: serde_json::Value =
            serde_json::from_slice(data).map_err(json_err("parse manifest"))?;
        let declared = v.get("mediaType").and_then(|m| m.as_str());
        // Registries may answer `application/json` for a manifest without `mediaType`: a
        // hint we do not know is ignored and the document's shape decides.
        let known = |m: &&str| {
            ACCEPTED_MEDIA_TYPES.contains(m) || *m == DOCKER_SCHEMA1 || *m == DOCKER_SCHEMA1_SIGNED
        };
        let mt = declared.or(media_type.filter(known)).unwrap_or_default();
        if v.get("schemaVersion").and_then(|s| s.as_u64()) == Some(1)
            || mt == DOCKER_SCHEMA1
            || mt == DOCKER_SCHEMA1_SIGNED
        {
            return Err(Error::Schema1(if mt.is_empty() {
                DOCKER_SCHEMA1.into()
            } else {
                mt.into()
            }));
        }
        let is_index = match mt {
            OCI_INDEX | DOCKER_LIST => true,
            OCI_MANIFEST | DOCKER_MANIFEST => false,
            "" => v.get("manifests").is_some(),
            other => return Err(Error::UnsupportedManifest(format!("media type {other}"))),
        };
        let flavor = if mt.starts_with("application/vnd.docker.") {
            Flavor::Docker
        } else {
            Flavor::Oci
        };
        if is_index {
            let i: ImageIndex = serde_json::from_value(v).map_err(json_err("parse image index"))?;
            Ok(Manifest::Index(Box::new(i), flavor))
        } else {
            let m: ImageManifest =
                serde_json::from_value(v).map_err(json_err("parse image manifest"))?;
            Ok(Manifest::Image(Box::new(m), flavor))
        }
    }

    pub fn media_type(&self) -> &'static str {
        match self {
            Manifest::Image(_, Flavor::Oci) => OCI_MANIFEST,
            Manifest::Image(_, Flavor::Docker) => DOCKER_MANIFEST,
            Manifest::Index(_, Flavor::Oci) => OCI_INDEX,
            Manifest::Index(_, Flavor::Docker) => DOCKER_LIST,
        }
    }

    /// The blobs this document points at (for garbage collection and copying).
    pub fn children(&self) -> Result<Vec<Digest>> {
        let descs: Vec<&Descriptor> = match self {
            Manifest::Image(m, _) => std::iter::once(m.config()).chain(m.layers()).collect(),
            Manifest::Index(i, _) => i.manifests().iter().collect(),
        };
        descs
            .into_iter()
            .map(|d| Digest::from_oci(d.digest()))
            .collect()
    }
}

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn from_media_type(mt: &str) -> Option<Compression> {
        if mt.ends_with("+gzip") || mt.ends_with(".tar.gzip") {
            Some(Compression::Gzip)
        } else if mt.ends_with("+zstd") {
            Some(Compression::Zstd)
        } else if mt.ends_with(".tar") || mt == "application/vnd.docker.image.rootfs.diff.tar" {
            Some(Compression::None)
        } else {
            None
        }
    }

    /// Sniffs the magic bytes, which is what decides in the end: registries and archives lie
    /// about media types often enough.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    pub fn oci_layer_media_type(self) -> &'static str {
        match self {
            Compression::None => OCI_LAYER,
            Compression::Gzip => OCI_LAYER_GZIP,
            Compression::Zstd => OCI_LAYER_ZSTD,
        }
    }
}

/// os/arch[/variant], as in `--platform linux/arm64/v8`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Default for Platform {
    fn default() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

impl Platform {
    /// The platform of this machine, named the way image indexes name it.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: None,
        }
    }

    fn normalized(&self) -> (String, String, Option<String>) {
        let arch = match self.architecture.as_str() {
            "x86_64" | "x86-64" => "amd64".to_string(),
            "aarch64" => "arm64".to_string(),
            a => a.to_string(),
        };
        // arm64's only variant is v8 and arm's common default is v7: both are often omitted.
        let variant = match (arch.as_str(), self.variant.as_deref()) {
            ("arm64", Some("v8")) => None,
            ("arm", None) => Some("v7".to_string()),
            (_, v) => v.map(str::to_string),
        };
        (self.os.clone(), arch, variant)
    }

    pub fn matches(&self, other: &Platform) -> bool {
        self.normalized() == other.normalized()
    }

    fn from_oci(p: &oci_spec::image::Platform) -> Platform {
        Platform {
            os: p.os().to_string(),
            architecture: p.architecture().to_string(),
            variant: p.variant().clone(),
        }
    }
}

impl FromStr for Platform {
    type Err = Error;
    fn from_str(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || Error::UnsupportedManifest(format!("invalid platform {s:?}"));
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Picks the manifest for `wanted` from an index. Entries without a platform (attestations,
/// artifacts) are never chosen.
pub fn select_platform<'a>(index: &'a ImageIndex, wanted: &Platform) -> Result<&'a Descriptor> {
    let candidates = || {
        index.manifests().iter().filter_map(|d| {
            let p = d.platform().as_ref()?;
            Some((d, Platform::from_oci(p)))
        })
    };
    if let Some((d, _)) = candidates().find(|(_, p)| p.matches(wanted)) {
        return Ok(d);
    }
    // A request without a variant accepts any variant of the architecture.
    if wanted.variant.is_none() {
        let w = wanted.normalized();
        if let Some((d, _)) = candidates().find(|(_, p)| {
            let n = p.normalized();
            n.0 == w.0 && n.1 == w.1
        }) {
            return Ok(d);
        }
    }
    let available: Vec<String> = candidates().map(|(_, p)| p.to_string()).collect();
    Err(Error::NoMatchingPlatform {
        wanted: wanted.to_string(),
        available: available.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_distributable_media_types() {
        assert!(is_non_distributable(DOCKER_FOREIGN_LAYER_GZIP));
        assert!(is_non_distributable(OCI_LAYER_NONDISTRIBUTABLE_GZIP));
        assert!(is_non_distributable(
            "application/vnd.oci.image.layer.nondistributable.v1.tar"
        ));
        assert!(!is_non_distributable(DOCKER_LAYER_GZIP));
        assert!(!is_non_distributable(OCI_LAYER_ZSTD));
    }

    const ZERO: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    fn dig(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn index_json(mt: &str) -> String {
        let entry = |d: char, arch: &str, variant: Option<&str>| {
            let v = variant.map_or(String::new(), |v| format!(r#","variant":"{v}""#));
            format!(
                r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":10,"platform":{{"os":"linux","architecture":"{arch}"{v}}}}}"#,
                dig(d)
            )
        };
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{mt}","manifests":[{},{},{},{},{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"unknown","architecture":"unknown"}}}}]}}"#,
            entry('a', "amd64", None),
            entry('b', "arm64", Some("v8")),
            entry('c', "arm", Some("v6")),
            entry('d', "arm", Some("v7")),
            dig('e'),
        )
    }

    #[test]
    fn selects_platform() {
        for mt in [OCI_INDEX, DOCKER_LIST] {
            let m = Manifest::parse(index_json(mt).as_bytes(), None).unwrap();
            let Manifest::Index(i, _) = &m else {
                panic!("not an index")
            };
            let pick =
                |p: &str| select_platform(i, &p.parse().unwrap()).map(|d| d.digest().to_string());
            assert_eq!(
                select_platform(i, &Platform::default())
                    .unwrap()
                    .digest()
                    .to_string(),
                dig('a')
            );
            assert_eq!(pick("linux/arm64").unwrap(), dig('b'));
            assert_eq!(pick("linux/arm64/v8").unwrap(), dig('b'));
            assert_eq!(pick("linux/arm").unwrap(), dig('d'));
            assert_eq!(pick("linux/arm/v6").unwrap(), dig('c'));
            let err = pick("linux/s390x").unwrap_err().to_string();
            assert!(
                err.contains("linux/s390x") && err.contains("linux/arm64/v8"),
                "{err}"
            );
            assert_eq!(m.children().unwrap().len(), 5);
        }
    }

    #[test]
    fn parses_manifests_and_refuses_schema1() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","digest":"{ZERO}","size":1}},"layers":[{{"mediaType":"{DOCKER_LAYER_GZIP}","digest":"{}","size":2}}]}}"#,
            dig('1')
        );
        let parsed = Manifest::parse(m.as_bytes(), None).unwrap();
        assert_eq!(parsed.media_type(), DOCKER_MANIFEST);
        assert_eq!(parsed.children().unwrap().len(), 2);
        // An OCI manifest without mediaType is recognised by its shape.
        let oci = m.replace(&format!(r#""mediaType":"{DOCKER_MANIFEST}","#), "");
        assert_eq!(
            Manifest::parse(oci.as_bytes(), None).unwrap().media_type(),
            OCI_MANIFEST
        );
        let s1 = r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        let err = Manifest::parse(s1.as_bytes(), None).unwrap_err();
        assert!(matches!(err, Error::Schema1(_)));
        assert!(err.to_string().contains("schema 1"));
        let big = vec![b' '; (MAX_MANIFEST_SIZE + 1) as usize];
        assert!(matches!(
            Manifest::parse(&big, None),
            Err(Error::TooLarge { .. })
        ));
        assert!(Manifest::parse(b"{}", Some("text/html")).is_err());
        // An unknown Content-Type does not hide a recognisable document.
        assert_eq!(
            Manifest::parse(oci.as_bytes(), Some("application/json"))
                .unwrap()
                .media_type(),
            OCI_MANIFEST
        );
        let artifact = oci.replace(
            "\"schemaVersion\":2,",
            "\"schemaVersion\":2,\"mediaType\":\"application/vnd.example+json\",",
        );
        assert!(matches!(
            Manifest::parse(artifact.as_bytes(), None),
            Err(Error::UnsupportedManifest(_))
        ));
    }

    #[test]
    fn compression_detection() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"etc/"), Compression::None);
        assert_eq!(
            Compression::from_media_type(DOCKER_LAYER_GZIP),
            Some(Compression::Gzip)
        );
        assert_eq!(
            Compression::from_media_type(OCI_LAYER_ZSTD),
            Some(Compression::Zstd)
        );
        assert_eq!(
            Compression::from_media_type(OCI_LAYER),
            Some(Compression::None)
        );
    }
}
