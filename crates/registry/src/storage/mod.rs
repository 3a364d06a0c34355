//! Where blobs, manifests, tags and upload sessions live. Routes speak only to the
//! [`Storage`] trait so an object-store backend can sit beside the filesystem one.

pub mod fs;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::Stream;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;

pub use fs::FsStorage;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("blob unknown: {0}")]
    BlobUnknown(Digest),
    #[error("upload session unknown")]
    UploadUnknown,
    #[error("manifest unknown")]
    ManifestUnknown,
    #[error("repository unknown")]
    NameUnknown,
    #[error("digest mismatch: expected {expected}, content is {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("size mismatch: expected {expected}, got {actual}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("chunk out of order: upload is at offset {current}")]
    OffsetMismatch { current: u64 },
    #[error("request body: {0}")]
    Body(String),
    #[error("corrupt storage: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

pub type Result<T> = std::result::Result<T, StorageError>;
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;
pub type ByteStream = Pin<Box<dyn Stream<Item = std::result::Result<Bytes, io::Error>> + Send>>;

/// What the registry keeps about one manifest beside its bytes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManifestMeta {
    pub media_type: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct UploadStatus {
    pub repository: String,
    pub size: u64,
    pub modified: SystemTime,
}

#[derive(Debug, Clone)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
    pub modified: SystemTime,
}

pub trait Storage: Send + Sync + 'static {
    /// Size of a stored, verified blob, wherever it is linked.
    fn blob_size<'a>(&'a self, digest: &'a Digest) -> BoxFut<'a, Option<u64>>;
    /// Whether `repo` may serve the blob: it was pushed, mounted or is a manifest there.
    fn blob_linked<'a>(&'a self, repo: &'a str, digest: &'a Digest) -> BoxFut<'a, bool>;
    fn link_blob<'a>(&'a self, repo: &'a str, digest: &'a Digest) -> BoxFut<'a, ()>;
    /// Removes the repository's link; the bytes stay until garbage collection.
    fn unlink_blob<'a>(&'a self, repo: &'a str, digest: &'a Digest) -> BoxFut<'a, bool>;
    /// Opens `len` bytes from `offset` of a blob.
    fn read_blob<'a>(&'a self, digest: &'a Digest, offset: u64, len: u64)
        -> BoxFut<'a, ByteStream>;
    /// The blob as a local file, for backends that keep one, so it can be sent with
    /// sendfile(2). The default (object stores) has none and callers use [`Storage::read_blob`].
    fn blob_file<'a>(&'a self, _digest: &'a Digest) -> BoxFut<'a, Option<std::fs::File>> {
        Box::pin(async { Ok(None) })
    }
    /// Whole small blob (manifests) into memory.
    fn read_blob_bytes<'a>(&'a self, digest: &'a Digest) -> BoxFut<'a, Bytes>;
    /// Stores bytes the caller has already hashed to `digest` (manifests).
    fn put_blob_bytes<'a>(&'a self, digest: &'a Digest, data: Bytes) -> BoxFut<'a, ()>;
    fn list_blobs(&self) -> BoxFut<'_, Vec<BlobInfo>>;
    fn delete_blob<'a>(&'a self, digest: &'a Digest) -> BoxFut<'a, ()>;

    fn create_upload<'a>(&'a self, repo: &'a str) -> BoxFut<'a, String>;
    fn upload_status<'a>(&'a self, repo: &'a str, id: &'a str) -> BoxFut<'a, UploadStatus>;
    /// Appends a chunk. `start`, when given, must equal the current size. Returns the new size.
    fn append_upload<'a>(
        &'a self,
        repo: &'a str,
        id: &'a str,
        start: Option<u64>,
        body: ByteStream,
    ) -> BoxFut<'a, u64>;
    /// Verifies the content against `digest`, makes the blob visible and links it to `repo`.
    fn finish_upload<'a>(
        &'a self,
        repo: &'a str,
        id: &'a str,
        digest: &'a Digest,
    ) -> BoxFut<'a, u64>;
    fn cancel_upload<'a>(&'a self, repo: &'a str, id: &'a str) -> BoxFut<'a, ()>;
    /// Every session with its repository and last write time.
    fn list_uploads(&self) -> BoxFut<'_, Vec<(String, UploadStatus)>>;

    /// Callers hold [`Storage::gc_lock`] shared from checking the references until this returns,
    /// so collection cannot remove a blob in between.
    fn put_manifest<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
        meta: &'a ManifestMeta,
        data: Bytes,
    ) -> BoxFut<'a, ()>;
    fn manifest_meta<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFut<'a, Option<ManifestMeta>>;
    /// Removes the manifest from the repository with every tag pointing at it.
    fn delete_manifest<'a>(&'a self, repo: &'a str, digest: &'a Digest) -> BoxFut<'a, bool>;
    fn list_manifests<'a>(&'a self, repo: &'a str) -> BoxFut<'a, Vec<(Digest, ManifestMeta)>>;

    fn set_tag<'a>(&'a self, repo: &'a str, tag: &'a str, digest: &'a Digest) -> BoxFut<'a, ()>;
    fn resolve_tag<'a>(&'a self, repo: &'a str, tag: &'a str) -> BoxFut<'a, Option<Digest>>;
    fn delete_tag<'a>(&'a self, repo: &'a str, tag: &'a str) -> BoxFut<'a, bool>;
    /// Sorted tags, or `None` when the repository does not exist.
    fn list_tags<'a>(&'a self, repo: &'a str) -> BoxFut<'a, Option<Vec<(String, Digest)>>>;

    /// Records `descriptor` (an OCI descriptor) as a referrer of `subject`.
    fn add_referrer<'a>(
        &'a self,
        repo: &'a str,
        subject: &'a Digest,
        referrer: &'a Digest,
        descriptor: serde_json::Value,
    ) -> BoxFut<'a, ()>;
    fn remove_referrer<'a>(
        &'a self,
        repo: &'a str,
        subject: &'a Digest,
        referrer: &'a Digest,
    ) -> BoxFut<'a, ()>;
    fn list_referrers<'a>(
        &'a self,
        repo: &'a str,
        subject: &'a Digest,
    ) -> BoxFut<'a, Vec<serde_json::Value>>;

    /// Sorted repository names.
    fn list_repositories(&self) -> BoxFut<'_, Vec<String>>;

    /// Held shared by every write that makes content reachable, and exclusively by garbage
    /// collection, so a sweep never races a push that is about to reference a blob.
    fn gc_lock(&self) -> &tokio::sync::RwLock<()>;
}
