//! Whether the kernel's OOM killer struck inside a container: the `oom_kill`
//! counter of its memory cgroup (v1 `memory.oom_control`, v2
//! `memory.events`), read when the init starts and again when it exits.

use std::path::{Path, PathBuf};

/// The counter file of `pid`'s memory cgroup, located while `pid` lives.
pub fn counter_path(pid: i32) -> Option<PathBuf> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    locate(&cgroups, &mountinfo, |p| p.exists())
}

/// The `oom_kill` count in a counter file.
pub fn kills(file: &Path) -> Option<u64> {
    parse_kills(&std::fs::read_to_string(file).ok()?)
}

fn parse_kills(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

/// A v1 memory hierarchy wins over the unified one (hybrid layouts have
/// both, and only v1 has the controller there).
fn locate(cgroups: &str, mountinfo: &str, exists: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    let mut v1 = None;
    let mut v2 = None;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "memory") {
            v1 = Some(path);
        } else if controllers.is_empty() {
            v2 = Some(path);
        }
    }
    for m in mountinfo.lines() {
        let Some((left, right)) = m.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let sup: Vec<&str> = right.split(' ').collect();
        if fields.len() < 5 || sup.len() < 3 {
            continue;
        }
        let (root, mountpoint) = (fields[3], fields[4]);
        let (cg_path, file) = match sup[0] {
            "cgroup" if sup[2].split(',').any(|o| o == "memory") => (v1, "memory.oom_control"),
            "cgroup2" if v1.is_none() => (v2, "memory.events"),
            _ => continue,
        };
        let Some(cg_path) = cg_path else { continue };
        let rel = cg_path
            .strip_prefix(root)
            .unwrap_or(cg_path)
            .trim_start_matches('/');
        let candidate = Path::new(mountpoint).join(rel).join(file);
        if exists(&candidate) {
            return Some(candidate);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
25 1 0:23 / /sys rw - sysfs sysfs rw
31 25 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn v1_memory_hierarchy_in_a_hybrid_layout() {
        let cg = "4:memory:/berth/abc\n1:cpu:/berth/abc\n0::/berth/abc\n";
        assert_eq!(
            locate(cg, MOUNTINFO, |_| true),
            Some(PathBuf::from(
                "/sys/fs/cgroup/memory/berth/abc/memory.oom_control"
            ))
        );
    }

    #[test]
    fn unified_hierarchy() {
        let mi = "40 31 0:37 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            locate("0::/system.slice/x\n", mi, |_| true),
            Some(PathBuf::from("/sys/fs/cgroup/system.slice/x/memory.events"))
        );
    }

    #[test]
    fn counters() {
        assert_eq!(
            parse_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            Some(2)
        );
        assert_eq!(
            parse_kills("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
            Some(1)
        );
        assert_eq!(parse_kills("under_oom 0\n"), None);
    }
}
