//! The two whiteout encodings: AUFS-style names inside layer tars, and overlayfs's on-disk form.

/// `.wh.NAME` in a tar: NAME is deleted in this layer.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// `.wh..wh..opq` in a tar: the directory holding it hides everything below it in lower layers.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// Other `.wh..wh.` names are AUFS bookkeeping (hardlink dirs) and carry no content.
pub const AUFS_META_PREFIX: &str = ".wh..wh.";
/// overlayfs marks opaque directories with this xattr (`trusted.` needs CAP_SYS_ADMIN in the
/// initial user namespace; inside a user namespace the kernel uses `user.overlay.`).
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Layers never get to set overlayfs's own xattrs: a crafted `trusted.overlay.redirect` or
/// `origin` would make the mount look somewhere else.
pub const OVERLAY_XATTR_PREFIXES: [&str; 2] = ["trusted.overlay.", "user.overlay."];

/// What a tar entry name means for overlayfs.
#[derive(Debug, PartialEq, Eq)]
pub enum WhiteoutKind<'a> {
    /// Not a whiteout.
    None,
    /// The parent directory becomes opaque.
    Opaque,
    /// Delete this sibling.
    Remove(&'a [u8]),
    /// AUFS metadata: skip.
    Ignore,
}

pub fn classify(name: &[u8]) -> WhiteoutKind<'_> {
    if name == OPAQUE_MARKER.as_bytes() {
        WhiteoutKind::Opaque
    } else if name.starts_with(AUFS_META_PREFIX.as_bytes()) {
        WhiteoutKind::Ignore
    } else if let Some(rest) = name.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
        WhiteoutKind::Remove(rest)
    } else {
        WhiteoutKind::None
    }
}

pub fn is_overlay_xattr(name: &str) -> bool {
    OVERLAY_XATTR_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Whether a directory entry (its metadata, not following symlinks) is overlayfs's whiteout:
/// a 0:0 character device.
pub fn is_overlay_whiteout(md: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    md.file_type().is_char_device() && md.rdev() == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        assert_eq!(classify(b".wh..wh..opq"), WhiteoutKind::Opaque);
        assert_eq!(classify(b".wh..wh.plnk"), WhiteoutKind::Ignore);
        assert_eq!(classify(b".wh.foo"), WhiteoutKind::Remove(b"foo"));
        assert_eq!(classify(b".wh..."), WhiteoutKind::Remove(b".."));
        assert_eq!(classify(b"foo"), WhiteoutKind::None);
    }
}
