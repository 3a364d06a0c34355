//! Helpers shared by the integration tests: tar crafting without the tar crate's path checks
//! (so hostile names can be written), mount guards, tool checks.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

pub enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, &'a [u8], u32),
    Owned(&'a str, &'a [u8], u32, u64, u64),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Char(&'a str, u32, u32),
    Fifo(&'a str),
    Xattr(&'a str, &'a [u8], &'a str, &'a [u8]),
}

fn header(name: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_000_000_000);
    h.set_uid(0);
    h.set_gid(0);
    let raw = &mut h.as_gnu_mut().unwrap().name;
    assert!(name.len() < raw.len());
    raw[..name.len()].copy_from_slice(name.as_bytes());
    h
}

fn set_link(h: &mut tar::Header, target: &str) {
    let raw = &mut h.as_gnu_mut().unwrap().linkname;
    raw[..target.len()].copy_from_slice(target.as_bytes());
}

/// Builds an uncompressed tar with names written verbatim.
pub fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            E::Dir(n, m) => {
                let mut h = header(n, tar::EntryType::Directory, *m, 0);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::File(n, data, m) => {
                let mut h = header(n, tar::EntryType::Regular, *m, data.len() as u64);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
            E::Owned(n, data, m, uid, gid) => {
                let mut h = header(n, tar::EntryType::Regular, *m, data.len() as u64);
                h.set_uid(*uid);
                h.set_gid(*gid);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
            E::Symlink(n, t) => {
                let mut h = header(n, tar::EntryType::Symlink, 0o777, 0);
                set_link(&mut h, t);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::Hardlink(n, t) => {
                let mut h = header(n, tar::EntryType::Link, 0o644, 0);
                set_link(&mut h, t);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::Char(n, maj, min) => {
                let mut h = header(n, tar::EntryType::Char, 0o666, 0);
                h.set_device_major(*maj).unwrap();
                h.set_device_minor(*min).unwrap();
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::Fifo(n) => {
                let mut h = header(n, tar::EntryType::Fifo, 0o644, 0);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::Xattr(n, data, key, val) => {
                b.append_pax_extensions([(format!("SCHILY.xattr.{key}").as_str(), *val)])
                    .unwrap();
                let mut h = header(n, tar::EntryType::Regular, 0o644, data.len() as u64);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// Unmounts on drop, also when the test fails.
pub struct MountGuard(pub PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = berth_image::snapshot::unmount_rootfs(&self.0);
    }
}

/// Fails (never skips) when a tool a test needs is missing.
pub fn require_tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("this test needs `{name}` installed (apt-get install {name})");
}

pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
