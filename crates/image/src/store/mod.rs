//! On-disk stores: content-addressed blobs and image metadata.

pub mod content;
pub mod gc;
pub mod images;

pub(crate) mod atomic;

pub use content::{BlobWriter, ContentStore};
pub use gc::GcStats;
pub use images::{DeleteOutcome, ImageRecord, ImageStore};
