//! Layers: applying tar layers into snapshot directories the way overlayfs expects, and the
//! reverse, turning an overlay upper directory back into a layer tar.

pub mod apply;
pub mod compress;
pub mod diff;
pub mod whiteout;

mod safe;

pub use apply::{apply_layer, ApplyStats};
pub use diff::{write_diff, DiffStats};
