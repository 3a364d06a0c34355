//! berth-image: the image library of the Berth daemon.
//!
//! Everything here is synchronous; the daemon calls it from `spawn_blocking`.

pub mod digest;
pub mod error;
pub mod reference;

pub use digest::{Algorithm, Digest};
pub use error::{Error, Result};
pub use reference::Reference;
pub mod config;
pub mod manifest;
pub mod store;

pub use config::ImageConfig;
pub use manifest::{Manifest, Platform};
pub use store::{ContentStore, ImageStore};
pub mod init_layer;
pub mod layer;
pub mod snapshot;

pub use snapshot::{OverlayMount, SnapshotStore};
pub mod archive;
pub mod import;
pub mod service;

pub use service::{CommitOptions, ImageService, ImportOptions, SaveFormat};
pub mod spec;
