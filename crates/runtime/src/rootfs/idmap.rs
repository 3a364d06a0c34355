//! Idmapped bind mounts (`mounts[].uidMappings/gidMappings`, the `idmap` and
//! `ridmap` options). Giving a mount an id mapping needs privilege over the
//! mapping's user namespace and a mount not yet attached anywhere, which the
//! container's init (perhaps in a user namespace of its own) lacks. So the
//! runtime, still in the host's namespaces, clones each source into a
//! detached mount tree and maps it; init only attaches the trees it
//! inherits.

use std::os::fd::OwnedFd;
use std::path::Path;

use oci_spec::runtime::{LinuxIdMapping, Mount, Spec};

use super::MountOptions;
use crate::error::{Error, Result};
use crate::{namespaces, sys};

/// A detached, id-mapped copy of the source of `mounts[index]`.
pub struct IdmappedTree {
    pub index: usize,
    pub tree: OwnedFd,
}

/// Whether `m` asks for an idmapped mount. Cheap: the common case of a spec
/// without any is one scan of the options.
fn wants_idmap(m: &Mount) -> bool {
    m.uid_mappings().is_some()
        || m.gid_mappings().is_some()
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "idmap" || o == "ridmap")
}

/// Prepares every idmapped mount of the spec. Runs in the runtime before
/// init is cloned; init inherits the descriptors.
pub fn prepare(spec: &Spec) -> Result<Vec<IdmappedTree>> {
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let mut out = Vec::new();
    for (i, m) in mounts.iter().enumerate() {
        if !wants_idmap(m) {
            continue;
        }
        out.push(IdmappedTree {
            index: i,
            tree: prepare_one(spec, i, m)?,
        });
    }
    Ok(out)
}

fn prepare_one(spec: &Spec, i: usize, m: &Mount) -> Result<OwnedFd> {
    let field = |f: &str| format!("mounts[{i}]{f}");
    let opts = MountOptions::parse(m.options().as_deref().unwrap_or_default());
    if !opts.is_bind() {
        return Err(Error::config(
            field(".options"),
            "idmapped mounts are supported for bind mounts only",
        ));
    }
    let (uids, gids) = mappings(spec, m, &field)?;
    if sys::geteuid() != 0 {
        return Err(Error::config(
            field(""),
            "idmapped mounts need a runtime running as root (not supported rootless)",
        ));
    }
    let src = m
        .source()
        .as_deref()
        .ok_or_else(|| Error::config(field(".source"), "a bind mount needs a source"))?;
    let recursive_bind = opts.flags & libc::MS_REC != 0;
    let tree = sys::clone_mount_tree(src, recursive_bind).map_err(|e| Error::Sys {
        context: format!("{}: clone mount of {}", field(""), src.display()),
        source: e,
    })?;
    let userns = namespaces::userns_with_maps(uids, gids)?;
    sys::set_idmap(&tree, &userns, opts.idmap.unwrap_or(false)).map_err(|e| Error::Sys {
        context: format!(
            "{}: idmap {}{}",
            field(""),
            src.display(),
            unsupported_hint(src, &e)
        ),
        source: e,
    })?;
    Ok(tree)
}

/// The mount's own mappings, or with bare `idmap`/`ridmap` the container's
/// user namespace mappings (runtime-spec 1.2).
fn mappings<'a>(
    spec: &'a Spec,
    m: &'a Mount,
    field: &dyn Fn(&str) -> String,
) -> Result<(&'a [LinuxIdMapping], &'a [LinuxIdMapping])> {
    let (uids, gids) = match (m.uid_mappings(), m.gid_mappings()) {
        (Some(u), Some(g)) => (u.as_slice(), g.as_slice()),
        (Some(_), None) => {
            return Err(Error::config(
                field(".gidMappings"),
                "required together with uidMappings",
            ))
        }
        (None, Some(_)) => {
            return Err(Error::config(
                field(".uidMappings"),
                "required together with gidMappings",
            ))
        }
        (None, None) => {
            let linux = spec.linux().as_ref();
            let u = linux.and_then(|l| l.uid_mappings().as_deref());
            let g = linux.and_then(|l| l.gid_mappings().as_deref());
            match (u, g) {
                (Some(u), Some(g)) => (u, g),
                _ => {
                    return Err(Error::config(
                        field(".uidMappings"),
                        "idmap without mappings needs linux.uidMappings and linux.gidMappings",
                    ))
                }
            }
        }
    };
    if uids.is_empty() {
        return Err(Error::config(field(".uidMappings"), "must not be empty"));
    }
    if gids.is_empty() {
        return Err(Error::config(field(".gidMappings"), "must not be empty"));
    }
    Ok((uids, gids))
}

fn unsupported_hint(src: &Path, e: &std::io::Error) -> String {
    if e.raw_os_error() == Some(libc::EINVAL) {
        format!(
            " (the filesystem of {} may not support idmapped mounts)",
            src.display()
        )
    } else {
        String::new()
    }
}
