//! Loading config.json and checking it before anything is created, so a bad
//! bundle fails with one message naming the field and leaves nothing behind.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// Reads `<bundle>/config.json`. Parse errors name the JSON path of the
/// offending field (`process.capabilities.bounding[2]: unknown variant ...`).
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).map_err(|io| Error::ReadConfig {
        path: path.clone(),
        io,
    })?;
    parse(&data)
}

pub fn parse(data: &[u8]) -> Result<Spec> {
    let de = &mut serde_json::Deserializer::from_slice(data);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = match e.path().to_string() {
            p if p == "." => "config.json".to_string(),
            p => p,
        };
        let inner = e.inner().to_string();
        // serde lists every accepted variant after "expected"; for
        // capabilities that is forty names nobody needs in one line.
        let reason = match inner.find(", expected") {
            Some(i) => inner[..i].to_string(),
            None => inner,
        };
        Error::config(field, reason)
    })
}

/// The namespace types the spec asks for, new or joined.
pub fn namespaces(spec: &Spec) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .map(|v| v.iter().map(|n| (n.typ(), n.path().clone())).collect())
        .unwrap_or_default()
}

pub fn has_namespace(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    namespaces(spec).iter().any(|(t, _)| *t == typ)
}

/// The rootfs as an absolute path (relative ones are relative to the bundle).
pub fn rootfs(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::config("root", "missing"))?;
    if root.path().as_os_str().is_empty() {
        return Err(Error::config("root.path", "must not be empty"));
    }
    let p = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    let canon = std::fs::canonicalize(&p)
        .map_err(|e| Error::config("root.path", format!("{}: {e}", p.display())))?;
    if !canon.is_dir() {
        return Err(Error::config(
            "root.path",
            format!("{} is not a directory", canon.display()),
        ));
    }
    Ok(canon)
}

/// Semantic checks serde cannot make. Runs before any state is written.
pub fn validate(spec: &Spec, need_process: bool) -> Result<()> {
    if need_process {
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| Error::config("process", "missing"))?;
        validate_process(process, "process")?;
    }

    let ns = namespaces(spec);
    let mut seen = HashSet::new();
    for (i, (typ, path)) in ns.iter().enumerate() {
        if !seen.insert(*typ) {
            return Err(Error::config(
                format!("linux.namespaces[{i}].type"),
                format!("namespace {typ} is listed twice"),
            ));
        }
        if let Some(p) = path {
            if !p.is_absolute() {
                return Err(Error::config(
                    format!("linux.namespaces[{i}].path"),
                    "must be an absolute path",
                ));
            }
        }
    }
    let new_ns = |t: LinuxNamespaceType| ns.iter().any(|(typ, p)| *typ == t && p.is_none());
    let any_ns = |t: LinuxNamespaceType| ns.iter().any(|(typ, _)| *typ == t);

    let linux = spec.linux().as_ref();
    let has_maps = linux.is_some_and(|l| {
        l.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || l.gid_mappings().as_ref().is_some_and(|m| !m.is_empty())
    });
    if new_ns(LinuxNamespaceType::User) && !has_maps {
        return Err(Error::config(
            "linux.uidMappings",
            "a new user namespace needs uidMappings and gidMappings",
        ));
    }
    if has_maps && !new_ns(LinuxNamespaceType::User) {
        return Err(Error::config(
            "linux.uidMappings",
            "id mappings need a new user namespace",
        ));
    }
    if let Some(l) = linux {
        for (field, maps) in [
            ("linux.uidMappings", l.uid_mappings()),
            ("linux.gidMappings", l.gid_mappings()),
        ] {
            if let Some(maps) = maps {
                check_mappings(field, maps)?;
            }
        }
        if l.time_offsets().as_ref().is_some_and(|t| !t.is_empty())
            && !new_ns(LinuxNamespaceType::Time)
        {
            return Err(Error::config(
                "linux.timeOffsets",
                "time offsets need a new time namespace",
            ));
        }
        if let Some(offsets) = l.time_offsets() {
            for k in offsets.keys() {
                if k != "monotonic" && k != "boottime" {
                    return Err(Error::config(
                        format!("linux.timeOffsets.{k}"),
                        "only monotonic and boottime clocks can be offset",
                    ));
                }
            }
        }
        if let Some(sysctl) = l.sysctl() {
            for key in sysctl.keys() {
                check_sysctl(
                    key,
                    any_ns(LinuxNamespaceType::Ipc),
                    any_ns(LinuxNamespaceType::Network),
                    any_ns(LinuxNamespaceType::Uts),
                )?;
            }
        }
        let masks = l.masked_paths().as_ref().is_some_and(|v| !v.is_empty())
            || l.readonly_paths().as_ref().is_some_and(|v| !v.is_empty());
        if masks && !any_ns(LinuxNamespaceType::Mount) {
            return Err(Error::config(
                "linux.maskedPaths",
                "masked and read-only paths need a mount namespace",
            ));
        }
        if l.mount_label().as_ref().is_some_and(|m| !m.is_empty()) {
            return Err(Error::config(
                "linux.mountLabel",
                "SELinux is not supported by berth-runtime",
            ));
        }
        if let Some(p) = l.rootfs_propagation() {
            if crate::rootfs::propagation_flag(p).is_none() {
                return Err(Error::config(
                    "linux.rootfsPropagation",
                    format!("unknown propagation {p:?}"),
                ));
            }
        }
        if let Some(devices) = l.devices() {
            for (i, d) in devices.iter().enumerate() {
                if !d.path().is_absolute() || !d.path().starts_with("/dev") {
                    return Err(Error::config(
                        format!("linux.devices[{i}].path"),
                        "must be an absolute path under /dev",
                    ));
                }
            }
        }
    }
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !any_ns(LinuxNamespaceType::Uts) {
        return Err(Error::config(
            "hostname",
            "setting the hostname needs a UTS namespace",
        ));
    }
    if let Some(mounts) = spec.mounts() {
        for (i, m) in mounts.iter().enumerate() {
            if !m.destination().is_absolute() {
                return Err(Error::config(
                    format!("mounts[{i}].destination"),
                    format!("{:?} is not an absolute path", m.destination()),
                ));
            }
            if let Some(opts) = m.options() {
                for (j, o) in opts.iter().enumerate() {
                    if let Err(reason) = crate::rootfs::MountOptions::check(o) {
                        return Err(Error::config(format!("mounts[{i}].options[{j}]"), reason));
                    }
                }
            }
        }
    }
    Ok(())
}

pub fn validate_process(process: &oci_spec::runtime::Process, field: &str) -> Result<()> {
    let args = process.args().as_deref().unwrap_or_default();
    if args.is_empty() || args[0].is_empty() {
        return Err(Error::config(format!("{field}.args"), "must not be empty"));
    }
    if !process.cwd().is_absolute() {
        return Err(Error::config(
            format!("{field}.cwd"),
            format!("{:?} is not an absolute path", process.cwd()),
        ));
    }
    // Silently running without a security profile the caller asked for would
    // be worse than refusing.
    if process
        .apparmor_profile()
        .as_ref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(Error::config(
            format!("{field}.apparmorProfile"),
            "AppArmor is not supported by berth-runtime",
        ));
    }
    if process
        .selinux_label()
        .as_ref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(Error::config(
            format!("{field}.selinuxLabel"),
            "SELinux is not supported by berth-runtime",
        ));
    }
    if let Some(env) = process.env() {
        for (i, e) in env.iter().enumerate() {
            if !e.contains('=') || e.starts_with('=') {
                return Err(Error::config(
                    format!("{field}.env[{i}]"),
                    format!("{e:?} is not NAME=VALUE"),
                ));
            }
        }
    }
    if let Some(rl) = process.rlimits() {
        let mut seen = HashSet::new();
        for (i, r) in rl.iter().enumerate() {
            if !seen.insert(format!("{:?}", r.typ())) {
                return Err(Error::config(
                    format!("{field}.rlimits[{i}].type"),
                    format!("{:?} is listed twice", r.typ()),
                ));
            }
            if r.soft() > r.hard() {
                return Err(Error::config(
                    format!("{field}.rlimits[{i}]"),
                    "soft limit is above the hard limit",
                ));
            }
        }
    }
    Ok(())
}

fn check_mappings(field: &str, maps: &[oci_spec::runtime::LinuxIdMapping]) -> Result<()> {
    for (i, m) in maps.iter().enumerate() {
        if m.size() == 0 {
            return Err(Error::config(format!("{field}[{i}].size"), "must not be 0"));
        }
        for (j, o) in maps.iter().enumerate().take(i) {
            let overlap = |a: u32, b: u32, sa: u32, sb: u32| {
                (a as u64) < b as u64 + sb as u64 && (b as u64) < a as u64 + sa as u64
            };
            if overlap(m.container_id(), o.container_id(), m.size(), o.size())
                || overlap(m.host_id(), o.host_id(), m.size(), o.size())
            {
                return Err(Error::config(
                    format!("{field}[{i}]"),
                    format!("overlaps mapping {j}"),
                ));
            }
        }
    }
    Ok(())
}

/// Only sysctls that the container's own namespaces isolate may be set; a
/// host-wide key would change the host.
fn check_sysctl(key: &str, ipc: bool, net: bool, uts: bool) -> Result<()> {
    const IPC_KEYS: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let field = format!("linux.sysctl.{key}");
    // Keys become paths under /proc/sys: nothing may climb out of it.
    if key.is_empty() || key.contains("..") || key.starts_with('/') {
        return Err(Error::config(field, "invalid key"));
    }
    let key_dots = key.replace('/', ".");
    let ok = if IPC_KEYS.contains(&key_dots.as_str()) || key_dots.starts_with("fs.mqueue.") {
        ipc
    } else if key_dots.starts_with("net.") {
        net
    } else if key_dots == "kernel.hostname" || key_dots == "kernel.domainname" {
        uts
    } else {
        return Err(Error::config(field, "not a namespaced sysctl"));
    };
    if !ok {
        return Err(Error::config(
            field,
            "the namespace this sysctl belongs to is shared with the host",
        ));
    }
    Ok(())
}

/// runc's rule for container ids: letters, digits and `_+-.`, not `.`/`..`.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::InvalidId {
            id: id.into(),
            reason: "must not be empty",
        });
    }
    if id == "." || id == ".." {
        return Err(Error::InvalidId {
            id: id.into(),
            reason: "must not be . or ..",
        });
    }
    if id.len() > 1024 {
        return Err(Error::InvalidId {
            id: id.into(),
            reason: "is too long",
        });
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b))
    {
        return Err(Error::InvalidId {
            id: id.into(),
            reason: "may contain only letters, digits and _+-.",
        });
    }
    Ok(())
}
