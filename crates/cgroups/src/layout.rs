//! Which cgroup hierarchies are mounted where, read from mountinfo.
//!
//! Three shapes exist in the wild: legacy (v1 only), hybrid (v1 controllers plus a cgroup2 mount,
//! usually at /sys/fs/cgroup/unified, holding no controllers) and unified (v2 only). Everything
//! is derived from the mountinfo text, so tests describe a fake tree by writing mountinfo lines
//! whose mount points are inside a tempdir.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The v1 controllers we know how to create and drive. Mount options that are not in this list
/// (rw, relatime, clone_children, name=systemd, ...) are not controllers.
pub const V1_CONTROLLERS: &[&str] = &[
    "cpuset",
    "cpu",
    "cpuacct",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only v1 hierarchies.
    Legacy,
    /// v1 hierarchies for the controllers plus a controller-less cgroup2 mount.
    Hybrid,
    /// Only cgroup2.
    Unified,
}

/// One mounted v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Hierarchy {
    /// Controllers bound to this hierarchy, e.g. `["cpu", "cpuacct"]` when co-mounted.
    pub controllers: Vec<String>,
    pub mount_point: PathBuf,
    /// The cgroup path (in hierarchy terms) that is visible at `mount_point`; "/" unless the
    /// mount is a bind of a sub-cgroup, as in some containers.
    pub root: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V2Mount {
    pub mount_point: PathBuf,
    pub root: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub mode: Mode,
    /// Empty in unified mode.
    pub v1: Vec<V1Hierarchy>,
    pub unified: Option<V2Mount>,
}

impl Layout {
    /// Reads /proc/self/mountinfo.
    pub fn detect() -> Result<Layout> {
        Self::from_mountinfo_file(Path::new("/proc/self/mountinfo"))
    }

    pub fn from_mountinfo_file(path: &Path) -> Result<Layout> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        Self::from_mountinfo(&text)
    }

    pub fn from_mountinfo(text: &str) -> Result<Layout> {
        let mut v1: Vec<V1Hierarchy> = Vec::new();
        let mut unified: Option<V2Mount> = None;
        for line in text.lines() {
            let Some(m) = parse_line(line) else { continue };
            match m.fstype {
                // With several cgroup2 mounts (bind mounts into containers, a test mount) the
                // first one is the one the init system made; keep it.
                "cgroup2" if unified.is_none() => {
                    unified = Some(V2Mount {
                        mount_point: m.mount_point,
                        root: m.root.to_string(),
                    });
                }
                "cgroup" => {
                    let controllers: Vec<String> = m
                        .super_opts
                        .split(',')
                        .filter(|o| V1_CONTROLLERS.contains(o))
                        .map(str::to_string)
                        .collect();
                    // Named hierarchies (name=systemd) carry no controller; runc's cgroupfs
                    // driver leaves them alone and so do we.
                    if controllers.is_empty() {
                        continue;
                    }
                    // The same hierarchy can be mounted twice; the first mount wins.
                    if v1.iter().any(|h| h.controllers == controllers) {
                        continue;
                    }
                    v1.push(V1Hierarchy {
                        controllers,
                        mount_point: m.mount_point,
                        root: m.root.to_string(),
                    });
                }
                _ => {}
            }
        }
        let mode = match (v1.is_empty(), unified.is_some()) {
            (true, true) => Mode::Unified,
            (false, true) => Mode::Hybrid,
            (false, false) => Mode::Legacy,
            (true, false) => return Err(Error::Layout("no cgroup filesystem is mounted".into())),
        };
        Ok(Layout { mode, v1, unified })
    }

    /// The v1 hierarchy that carries `controller`, if mounted.
    pub fn v1_hierarchy(&self, controller: &str) -> Option<&V1Hierarchy> {
        self.v1
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
    }
}

struct MountLine<'a> {
    root: &'a str,
    mount_point: PathBuf,
    fstype: &'a str,
    super_opts: &'a str,
}

/// mountinfo: `id parent maj:min root mount_point opts [optional...] - fstype source super_opts`.
fn parse_line(line: &str) -> Option<MountLine<'_>> {
    let (pre, post) = line.split_once(" - ")?;
    let mut pre_f = pre.split(' ');
    let root = pre_f.nth(3)?;
    let mount_point = pre_f.next()?;
    let mut post_f = post.split(' ');
    let fstype = post_f.next()?;
    let _source = post_f.next()?;
    let super_opts = post_f.next().unwrap_or("");
    Some(MountLine {
        root,
        mount_point: PathBuf::from(unescape(mount_point)),
        fstype,
        super_opts,
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The calling process's cgroup membership, from /proc/self/cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcCgroups {
    /// (controllers of the hierarchy as listed, path). The v2 entry has an empty controller
    /// list (`0::/path`).
    pub entries: Vec<(Vec<String>, String)>,
}

impl ProcCgroups {
    pub fn read_self() -> Result<ProcCgroups> {
        Self::read(Path::new("/proc/self/cgroup"))
    }

    pub fn read(path: &Path) -> Result<ProcCgroups> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        Ok(Self::parse(&text))
    }

    pub fn parse(text: &str) -> ProcCgroups {
        let mut entries = Vec::new();
        for line in text.lines() {
            let mut f = line.splitn(3, ':');
            let (Some(_id), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let ctrls = if ctrls.is_empty() {
                Vec::new()
            } else {
                ctrls.split(',').map(str::to_string).collect()
            };
            entries.push((ctrls, path.to_string()));
        }
        ProcCgroups { entries }
    }

    /// Our path in the v1 hierarchy carrying `controller`.
    pub fn v1_path(&self, controller: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(c, _)| c.iter().any(|x| x == controller))
            .map(|(_, p)| p.as_str())
    }

    /// Our path in the unified hierarchy.
    pub fn v2_path(&self) -> Option<&str> {
        self.entries
            .iter()
            .find(|(c, _)| c.is_empty())
            .map(|(_, p)| p.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid() {
        let l = Layout::from_mountinfo(HYBRID).unwrap();
        assert_eq!(l.mode, Mode::Hybrid);
        assert_eq!(l.v1.len(), 3);
        assert_eq!(
            l.v1_hierarchy("memory").unwrap().mount_point,
            Path::new("/sys/fs/cgroup/memory")
        );
        assert_eq!(
            l.unified.as_ref().unwrap().mount_point,
            Path::new("/sys/fs/cgroup/unified")
        );
        assert!(l.v1_hierarchy("pids").is_none());
    }

    #[test]
    fn unified_and_legacy() {
        let u = "29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        let l = Layout::from_mountinfo(u).unwrap();
        assert_eq!(l.mode, Mode::Unified);
        assert!(l.v1.is_empty());

        let legacy = "25 22 0:22 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct\n\
                      26 22 0:23 /docker/x /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let l = Layout::from_mountinfo(legacy).unwrap();
        assert_eq!(l.mode, Mode::Legacy);
        assert_eq!(l.v1[0].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(
            l.v1_hierarchy("cpuacct").unwrap().mount_point,
            Path::new("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(l.v1_hierarchy("memory").unwrap().root, "/docker/x");
    }

    #[test]
    fn none_mounted() {
        assert!(matches!(
            Layout::from_mountinfo("1 0 0:1 / / rw - ext4 /dev/sda rw\n"),
            Err(Error::Layout(_))
        ));
    }

    #[test]
    fn escaped_mount_point() {
        let u = "29 23 0:26 / /tmp/a\\040b rw - cgroup2 cgroup2 rw\n";
        let l = Layout::from_mountinfo(u).unwrap();
        assert_eq!(l.unified.unwrap().mount_point, Path::new("/tmp/a b"));
    }

    #[test]
    fn proc_cgroup() {
        let p = ProcCgroups::parse(
            "9:name=systemd:/\n4:memory:/process_api/abc\n2:cpu,cpuacct:/x\n0::/\n",
        );
        assert_eq!(p.v1_path("memory"), Some("/process_api/abc"));
        assert_eq!(p.v1_path("cpuacct"), Some("/x"));
        assert_eq!(p.v1_path("pids"), None);
        assert_eq!(p.v2_path(), Some("/"));
    }
}
