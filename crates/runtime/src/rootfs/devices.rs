//! /dev inside the container: the default device nodes every container gets,
//! the spec's `linux.devices`, and the conventional symlinks.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::paths::{self, Kind};
use crate::error::{Context, Result};
use crate::sys;

struct Node {
    path: PathBuf,
    kind: u32,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

fn defaults() -> Vec<Node> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(name, major, minor)| Node {
        path: PathBuf::from("/dev").join(name),
        kind: libc::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

fn from_spec(d: &LinuxDevice) -> Node {
    let kind = match d.typ() {
        LinuxDeviceType::B => libc::S_IFBLK,
        LinuxDeviceType::P => libc::S_IFIFO,
        _ => libc::S_IFCHR,
    };
    Node {
        path: d.path().clone(),
        kind,
        major: d.major().max(0) as u64,
        minor: d.minor().max(0) as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    }
}

pub fn create_all(root: &OwnedFd, spec_devices: &[LinuxDevice], in_userns: bool) -> Result<()> {
    let mut nodes = defaults();
    for d in spec_devices {
        let n = from_spec(d);
        nodes.retain(|x| x.path != n.path);
        nodes.push(n);
    }
    for n in &nodes {
        create(root, n, in_userns).context(|| format!("create device {}", n.path.display()))?;
    }
    Ok(())
}

fn create(root: &OwnedFd, n: &Node, in_userns: bool) -> io::Result<()> {
    if in_userns {
        return bind_from_host(root, n);
    }
    let (dir, name) = paths::parent_in_root(root, &n.path)?;
    // A file already there (from the image, or a default the spec
    // overrides) is replaced.
    let _ = rustix::fs::unlinkat(&dir, name.as_c_str(), rustix::fs::AtFlags::empty());
    match sys::mknodat(&dir, &name, n.kind | n.mode, sys::makedev(n.major, n.minor)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => return bind_from_host(root, n),
        Err(e) => return Err(e),
    }
    // mknod applies the umask; set the exact mode and owner asked for.
    rustix::fs::chmodat(
        &dir,
        name.as_c_str(),
        rustix::fs::Mode::from_raw_mode(n.mode),
        rustix::fs::AtFlags::empty(),
    )?;
    rustix::fs::chownat(
        &dir,
        name.as_c_str(),
        Some(rustix::fs::Uid::from_raw(n.uid)),
        Some(rustix::fs::Gid::from_raw(n.gid)),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

/// In a user namespace mknod is refused: bind the host's node instead.
fn bind_from_host(root: &OwnedFd, n: &Node) -> io::Result<()> {
    let target = paths::ensure_in_root(root, &n.path, Kind::File)?;
    sys::mount_path(
        Some(&n.path),
        &sys::fd_path(&target),
        None,
        libc::MS_BIND,
        None,
    )
}

pub fn create_symlinks(root: &OwnedFd, has_devpts: bool) -> Result<()> {
    let mut links = vec![
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "/dev/core"));
    }
    if has_devpts {
        links.push(("pts/ptmx", "/dev/ptmx"));
    }
    for (target, link) in links {
        let (dir, name) = paths::parent_in_root(root, Path::new(link))
            .context(|| format!("open parent of {link}"))?;
        if link == "/dev/ptmx" {
            let _ = rustix::fs::unlinkat(&dir, name.as_c_str(), rustix::fs::AtFlags::empty());
        }
        match rustix::fs::symlinkat(target, &dir, name.as_c_str()) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => {
                return Err(crate::error::Error::Sys {
                    context: format!("symlink {link} -> {target}"),
                    source: e.into(),
                })
            }
        }
    }
    Ok(())
}
