//! Mounts of a container: `-v`, `--mount`, `--volumes-from` and image VOLUMEs resolved at
//! create time (named and anonymous volumes made then, as Docker does).

use super::model::Container;
use super::types::MountPoint;
use super::Containers;
use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::path::Path;

/// A `-v` entry: `/host:/ctr[:opts]` (bind) or `name:/ctr[:opts]` (volume) or `/ctr` (anonymous).
#[derive(Debug, Clone, PartialEq)]
pub struct Bind {
    pub source: String,
    pub target: String,
    pub read_only: bool,
    pub propagation: String,
    pub mode: String,
}

impl Bind {
    pub fn is_volume(&self) -> bool {
        !self.source.starts_with('/')
    }
}

pub fn parse_bind(spec: &str) -> Result<Bind> {
    let bad = || Error::invalid(format!("invalid volume specification: '{spec}'"));
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => ("", *t, ""),
        [s, t] => (*s, *t, ""),
        [s, t, m] => (*s, *t, *m),
        _ => return Err(bad()),
    };
    if !target.starts_with('/') || target == "/" && source.is_empty() {
        return Err(Error::invalid(format!(
            "invalid volume specification: '{spec}': invalid mount config for type \"bind\": invalid mount path: '{target}' mount path must be absolute"
        )));
    }
    if !source.is_empty() && !source.starts_with('/') && !crate::ids::is_valid_name(source) {
        return Err(Error::invalid(format!(
                "invalid volume specification: '{spec}': \"{source}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )));
    }
    let mut read_only = false;
    let mut propagation = String::new();
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        match m {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "z" | "Z" | "nocopy" | "consistent" | "cached" | "delegated" => {}
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                propagation = m.to_string()
            }
            _ => return Err(bad()),
        }
    }
    if source.is_empty() && !mode.is_empty() && parts.len() == 3 {
        return Err(bad());
    }
    Ok(Bind {
        source: source.to_string(),
        target: target.to_string(),
        read_only,
        propagation,
        mode: mode.to_string(),
    })
}

pub(crate) fn bind_mount(src: &Path, dst: &str, ro: bool, propagation: &str) -> Value {
    let mut opts = vec![
        "rbind".to_string(),
        if ro { "ro" } else { "rw" }.to_string(),
    ];
    opts.push(if propagation.is_empty() {
        "rprivate".into()
    } else {
        propagation.to_string()
    });
    json!({"destination": dst, "type": "bind", "source": src, "options": opts})
}

impl Containers {
    /// Resolves `-v`, `--mount`, image VOLUMEs into mount points (creating named and anonymous
    /// volumes), at create time as Docker does.
    pub(crate) async fn prepare_mounts(&self, rec: &mut Container) -> Result<()> {
        let mut mounts: Vec<MountPoint> = Vec::new();
        let mut taken = std::collections::BTreeSet::new();
        for b in rec.host_config.binds.clone() {
            let b = parse_bind(&b)?;
            if !taken.insert(b.target.clone()) {
                return Err(Error::invalid(format!(
                    "Duplicate mount point: {}",
                    b.target
                )));
            }
            if b.source.is_empty() {
                let v = self.volume_anonymous(&rec.id)?;
                rec.anonymous_volumes.push(v.name.clone());
                mounts.push(MountPoint {
                    kind: "volume".into(),
                    name: v.name,
                    source: v.mountpoint,
                    destination: b.target,
                    driver: "local".into(),
                    mode: b.mode,
                    rw: !b.read_only,
                    propagation: String::new(),
                });
            } else if b.is_volume() {
                let v = self.volume_named(&b.source, &rec.id)?;
                mounts.push(MountPoint {
                    kind: "volume".into(),
                    name: v.name,
                    source: v.mountpoint,
                    destination: b.target,
                    driver: "local".into(),
                    mode: b.mode,
                    rw: !b.read_only,
                    propagation: String::new(),
                });
            } else {
                if !Path::new(&b.source).exists() {
                    // Docker creates a missing bind source for -v (not for --mount).
                    std::fs::create_dir_all(&b.source).map_err(|e| {
                        Error::invalid(format!(
                            "error while creating mount source path '{}': {e}",
                            b.source
                        ))
                    })?;
                }
                mounts.push(MountPoint {
                    kind: "bind".into(),
                    name: String::new(),
                    source: b.source,
                    destination: b.target,
                    driver: String::new(),
                    mode: b.mode,
                    rw: !b.read_only,
                    propagation: if b.propagation.is_empty() {
                        "rprivate".into()
                    } else {
                        b.propagation
                    },
                });
            }
        }
        for m in rec.host_config.mounts.clone() {
            if !m.target.starts_with('/') {
                return Err(Error::invalid(format!(
                    "invalid mount config: mount path must be absolute: {:?}",
                    m.target
                )));
            }
            if !taken.insert(m.target.clone()) {
                return Err(Error::invalid(format!(
                    "Duplicate mount point: {}",
                    m.target
                )));
            }
            match m.kind.as_str() {
                "bind" => {
                    if !Path::new(&m.source).exists() {
                        return Err(Error::invalid(format!("invalid mount config for type \"bind\": bind source path does not exist: {}", m.source)));
                    }
                    mounts.push(MountPoint {
                        kind: "bind".into(),
                        name: String::new(),
                        source: m.source,
                        destination: m.target,
                        driver: String::new(),
                        mode: String::new(),
                        rw: !m.read_only,
                        propagation: "rprivate".into(),
                    });
                }
                "volume" => {
                    let v = if m.source.is_empty() {
                        let v = self.volume_anonymous(&rec.id)?;
                        rec.anonymous_volumes.push(v.name.clone());
                        v
                    } else {
                        self.volume_named(&m.source, &rec.id)?
                    };
                    let nocopy = m
                        .volume_options
                        .as_ref()
                        .and_then(|o| o.get("NoCopy"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    mounts.push(MountPoint {
                        kind: "volume".into(),
                        name: v.name,
                        source: v.mountpoint,
                        destination: m.target,
                        driver: "local".into(),
                        mode: if nocopy { "z,nocopy" } else { "z" }.into(),
                        rw: !m.read_only,
                        propagation: String::new(),
                    });
                }
                "tmpfs" => {
                    let mut opts = vec![];
                    if let Some(t) = &m.tmpfs_options {
                        if let Some(s) = t.size_bytes {
                            opts.push(format!("size={s}"));
                        }
                        if let Some(md) = t.mode {
                            opts.push(format!("mode={md:o}"));
                        }
                    }
                    rec.host_config
                        .tmpfs
                        .insert(m.target.clone(), opts.join(","));
                }
                other => {
                    return Err(Error::invalid(format!(
                        "invalid mount config: mount type unknown: {other:?}"
                    )))
                }
            }
        }
        for from in rec.host_config.volumes_from.clone() {
            let (name, mode) = from.split_once(':').unwrap_or((&from, ""));
            let src = self.get(name)?.snapshot();
            for mp in src.mounts {
                if taken.insert(mp.destination.clone()) {
                    let mut mp = mp.clone();
                    if mode == "ro" {
                        mp.rw = false;
                    }
                    if mp.kind == "volume" {
                        self.volume_add_user(&mp.name, &rec.id);
                    }
                    mounts.push(mp);
                }
            }
        }
        for target in rec.config.volumes.clone().unwrap_or_default().keys() {
            if taken.contains(target) || rec.host_config.tmpfs.contains_key(target) {
                continue;
            }
            let v = self.volume_anonymous(&rec.id)?;
            rec.anonymous_volumes.push(v.name.clone());
            taken.insert(target.clone());
            mounts.push(MountPoint {
                kind: "volume".into(),
                name: v.name,
                source: v.mountpoint,
                destination: target.clone(),
                driver: "local".into(),
                mode: String::new(),
                rw: true,
                propagation: String::new(),
            });
        }
        rec.mounts = mounts;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds() {
        let b = parse_bind("/src:/dst:ro").unwrap();
        assert!(b.read_only && !b.is_volume());
        let b = parse_bind("data:/data").unwrap();
        assert!(b.is_volume());
        assert!(parse_bind("data:rel").is_err());
        assert!(parse_bind("a/b:/x").is_err());
        assert!(parse_bind("/a:/b:bogus").is_err());
    }
}
