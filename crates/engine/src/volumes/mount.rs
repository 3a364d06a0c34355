//! The `local` driver's `DriverOpts` (`type`, `device`, `o`): a filesystem mounted on the
//! volume's `_data` the first time a container uses it, like `mount -t TYPE -o O DEVICE`.

use nix::mount::{MntFlags, MsFlags};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

const KEYS: &[&str] = &["type", "device", "o"];

/// Refuses options the local driver does not know, and a `type` without a `device`.
pub fn validate(opts: &BTreeMap<String, String>) -> Result<(), String> {
    for k in opts.keys() {
        if !KEYS.contains(&k.as_str()) {
            return Err(format!("invalid option: \"{k}\""));
        }
    }
    let has = |k: &str| opts.get(k).is_some_and(|v| !v.is_empty());
    if has("type") && !has("device") {
        return Err("missing required option: \"device\"".into());
    }
    if has("device") && !has("type") && !opts.get("o").is_some_and(|o| o.contains("bind")) {
        return Err("missing required option: \"type\"".into());
    }
    Ok(())
}

/// Splits `o` into mount flags and the filesystem's own data string.
fn parse_o(o: &str) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for opt in o.split(',').filter(|s| !s.is_empty()) {
        let (set, clear) = match opt {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            other => {
                data.push(other.to_string());
                continue;
            }
        };
        flags.insert(set);
        flags.remove(clear);
    }
    (flags, data.join(","))
}

/// Mounts the volume's filesystem on `target` unless something is mounted there already.
pub fn mount_once(opts: &BTreeMap<String, String>, target: &Path) -> io::Result<()> {
    if is_mountpoint(target)? {
        return Ok(());
    }
    let device = opts.get("device").map(String::as_str).unwrap_or("none");
    let fstype = opts.get("type").map(String::as_str).unwrap_or("none");
    let (flags, data) = parse_o(opts.get("o").map(String::as_str).unwrap_or(""));
    let data = (!data.is_empty()).then_some(data.as_str());
    nix::mount::mount(Some(device), target, Some(fstype), flags, data).map_err(|e| {
        io::Error::other(format!(
            "mount -t {fstype} {device} {}: {e}",
            target.display()
        ))
    })?;
    // A read-only bind needs a remount: the first call ignores MS_RDONLY with MS_BIND.
    if flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY) {
        nix::mount::mount(
            None::<&str>,
            target,
            None::<&str>,
            flags | MsFlags::MS_REMOUNT,
            None::<&str>,
        )
        .map_err(|e| io::Error::other(format!("remount {} read-only: {e}", target.display())))?;
    }
    Ok(())
}

pub fn unmount_if_mounted(target: &Path) -> io::Result<()> {
    while is_mountpoint(target)? {
        nix::mount::umount2(target, MntFlags::MNT_DETACH)
            .map_err(|e| io::Error::other(format!("unmount {}: {e}", target.display())))?;
    }
    Ok(())
}

/// Whether `path` is a mount point of this mount namespace (per /proc/self/mountinfo; a
/// bind mount of the same filesystem has the same st_dev, so stat cannot tell).
pub fn is_mountpoint(path: &Path) -> io::Result<bool> {
    let Ok(real) = std::fs::canonicalize(path) else {
        return Ok(false);
    };
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let want = real.to_string_lossy();
    Ok(info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| mountinfo_unescape(mp) == want))
}

/// A path field of /proc/self/mountinfo decoded: it escapes space, tab, newline and
/// backslash as `\ooo`.
pub fn mountinfo_unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let (f, d) = parse_o("size=10m,ro,uid=1000");
        assert!(f.contains(MsFlags::MS_RDONLY));
        assert_eq!(d, "size=10m,uid=1000");
        assert_eq!(mountinfo_unescape("/a\\040b"), "/a b");
        let mut o = BTreeMap::new();
        o.insert("type".to_string(), "tmpfs".to_string());
        assert!(validate(&o).is_err());
        o.insert("device".to_string(), "tmpfs".to_string());
        assert!(validate(&o).is_ok());
        o.insert("size".to_string(), "1".to_string());
        assert!(validate(&o).is_err());
    }
}
