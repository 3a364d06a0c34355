//! The one error type of the crate: every variant names the problem so the daemon can map it onto
//! an Engine API status (404 for not-found, 409 for conflicts, 400 for bad input, 500 otherwise).

use crate::digest::Digest;
use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid reference format: {input:?}: {reason}")]
    InvalidReference { input: String, reason: String },
    #[error("invalid digest {0:?}")]
    InvalidDigest(String),
    #[error("unsupported digest algorithm {0:?} (sha256 and sha512 are supported)")]
    UnsupportedDigestAlgorithm(String),
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("blob {0} not found in the content store")]
    BlobNotFound(Digest),
    #[error("{what} is {size} bytes, over the limit of {limit}")]
    TooLarge { what: String, size: u64, limit: u64 },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{context}: {source}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("image manifest schema 1 ({0}) is not supported; rebuild or re-push the image with schema 2 or OCI")]
    Schema1(String),
    #[error("unsupported manifest: {0}")]
    UnsupportedManifest(String),
    #[error("no matching manifest for {wanted} in the manifest list (available: {available})")]
    NoMatchingPlatform { wanted: String, available: String },
    #[error("unsafe path in layer: {path:?}: {reason}")]
    UnsafePath { path: String, reason: String },
    #[error("invalid layer: {0}")]
    InvalidLayer(String),
    #[error("invalid archive: {0}")]
    InvalidArchive(String),
    #[error("no such image: {0}")]
    ImageNotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid change {0:?}")]
    InvalidChange(String),
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UserNotFound(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    GroupNotFound(String),
    #[error("snapshot {0} not found")]
    SnapshotNotFound(String),
    #[error("mount failed: {0}")]
    Mount(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a human context to io errors at the call site.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Io {
            context: context(),
            source: e.into(),
        })
    }
}

pub(crate) fn json_err(context: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Error {
    let context = context.into();
    move |source| Error::Json { context, source }
}
